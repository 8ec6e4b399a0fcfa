//! `run --explain=FILE`: the steps `--explain` tells, kept as they are told, and one call once
//! the container's program runs, so that a front end can draw the container at that very moment
//! (the drawing is the front end's, `cli::show`: the runtime only keeps the steps and calls).
//! Without `--explain=FILE` nothing is kept and the call is a lock and a `None`.

use std::sync::Mutex;

/// One step, as `explain::print` told it.
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub number: usize,
    pub of: usize,
    pub name: String,
    pub text: String,
    /// The config.json fields it carries out.
    pub fields: String,
}

/// Called with the container's host pid and the steps so far.
pub type Started = Box<dyn FnOnce(i32, &[Step]) + Send>;

static STEPS: Mutex<Vec<Step>> = Mutex::new(Vec::new());
static STARTED: Mutex<Option<Started>> = Mutex::new(None);

/// Keeps every step told from now on, and calls `hook` once the program runs.
pub fn when_started(hook: Started) {
    *STARTED.lock().unwrap_or_else(|e| e.into_inner()) = Some(hook);
}

/// One step told (from `explain::print`): kept only when someone waits for the start.
pub(crate) fn record(step: Step) {
    if STARTED.lock().is_ok_and(|h| h.is_some()) {
        STEPS.lock().unwrap_or_else(|e| e.into_inner()).push(step);
    }
}

/// The program runs (from the launcher, once it has exec'd): the hook is called, once.
pub fn started(pid: i32) {
    let hook = STARTED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(hook) = hook {
        let steps = std::mem::take(&mut *STEPS.lock().unwrap_or_else(|e| e.into_inner()));
        hook(pid, &steps);
    }
}
