//! OCI hooks: programs config.json asks to run at points of the container's life, each given
//! the container's state JSON on stdin (runtime-spec `config.md`, "POSIX-platform Hooks").
//!
//! Where each point runs, and who runs it:
//! - `prestart`, `createRuntime`: during `create`, once the namespaces exist and before the
//!   root switch, in the runtime's namespaces: by `create` itself, while the child waits;
//! - `createContainer`: right after, in the container's namespaces, before the root switch
//!   (the path resolves on the host's filesystem): by the child;
//! - `startContainer`: at `start`, inside the container, just before the exec: by the child;
//! - `poststart`: after `start`, in the runtime's namespaces: by `start`;
//! - `poststop`: at `delete`, in the runtime's namespaces: by `delete`.
//!
//! A failing hook (non-zero exit, or past its `timeout`) fails `create` or `start`; a failing
//! `poststart` or `poststop` hook is a warning, as the spec says.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Hook, Hooks};

use crate::model::oci::read::hook_lists;

/// The hooks of one point (`createRuntime`, ...), by their config.json name.
pub fn of<'a>(hooks: &'a Hooks, point: &str) -> &'a [Hook] {
    hook_lists(hooks)
        .into_iter()
        .find(|(name, _)| *name == point)
        .map_or(&[], |(_, list)| list)
}

/// True when `create` must stop the child before its root switch to run hooks.
pub fn has_runtime_hooks(h: &Hooks) -> bool {
    !of(h, "prestart").is_empty() || !of(h, "createRuntime").is_empty()
}

/// The state `prestart` hooks read: `created`, where `createRuntime`'s (run at the same point)
/// says `creating`. prestart is runtime-spec 1.0's hook, which 1.0 runs "after the start
/// operation is called", on a created container; crun and the OCI validation suite
/// (`hooks_stdin`) say `created` there. runtime-spec 1.1 deprecates it for the
/// createRuntime/createContainer/startContainer hooks, which run while it is `creating`.
pub fn prestart_state(creating: &str) -> String {
    creating.replacen("\"status\":\"creating\"", "\"status\":\"created\"", 1)
}

/// Runs the hooks of `point` in order, each with `state` on stdin; the first failure stops.
pub fn run(hooks: &Hooks, point: &str, state: &str) -> Result<()> {
    for (i, hook) in of(hooks, point).iter().enumerate() {
        run_one(hook, state)
            .with_context(|| format!("hooks.{point}[{i}] ({}) failed", hook.path().display()))?;
    }
    Ok(())
}

/// `run`, for the points whose failure is only a warning.
pub fn run_warning_only(hooks: &Hooks, point: &str, state: &str) {
    if let Err(e) = run(hooks, point, state) {
        say!("minibox: warning: {e:#}");
    }
}

/// One hook: `path` with `args` (args[0] its argv[0]) and only `env`, its stderr kept for the
/// error message, killed past its timeout.
fn run_one(hook: &Hook, state: &str) -> Result<()> {
    let mut command = Command::new(hook.path());
    if let Some(args) = hook.args().as_ref().filter(|a| !a.is_empty()) {
        command.arg0(&args[0]).args(&args[1..]);
    }
    command.env_clear();
    for entry in hook.env().iter().flatten() {
        if let Some((key, value)) = entry.split_once('=') {
            command.env(key, value);
        }
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().context("cannot start it")?;
    // The state is far smaller than a pipe's buffer: written at once; a hook that does not
    // read it is no error (EPIPE).
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(state.as_bytes());
    }
    let deadline = hook
        .timeout()
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for it")? {
            break status;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "it did not finish within its timeout of {} s, and was killed",
                hook.timeout().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.by_ref().take(4096).read_to_string(&mut stderr);
    }
    let said = stderr.trim();
    if said.is_empty() {
        bail!("it ended with {status}")
    }
    bail!("it ended with {status}: {said}")
}
