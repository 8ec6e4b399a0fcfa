//! Signals: what the user sends minibox reaches the container.
//!
//! The parent blocks the forwarded signals (and SIGCHLD) before the container exists, so none
//! is lost, then reads them from a signalfd (see `supervisor`): no handler, no thread. The child puts every
//! disposition and the mask back to default before `execve`, since ignored signals and the
//! mask survive exec (Rust itself ignores SIGPIPE).

use anyhow::{Context, Result};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

/// What minibox passes on to the container.
pub const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Signals held for synchronous handling by the parent.
pub struct Forwarder {
    set: SigSet,
}

impl Forwarder {
    /// Blocks the forwarded signals and SIGCHLD in this (single-threaded) process.
    pub fn block() -> Result<Self> {
        let mut set = SigSet::empty();
        for sig in FORWARDED {
            set.add(sig);
        }
        set.add(Signal::SIGCHLD);
        // Held too, but not passed on: the caller's window changed, and the container's
        // terminal (-t) follows (the kernel then signals the container itself).
        set.add(Signal::SIGWINCH);
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("blocking signals")?;
        // The supervisor reads and writes the terminal it relays; in the background of a shell
        // the kernel would stop it for that, leaving the container unserved. Blocked, these
        // are never sent: a read fails with EIO instead (the container's input ends).
        let mut stops = SigSet::empty();
        stops.add(Signal::SIGTTIN);
        stops.add(Signal::SIGTTOU);
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stops), None)
            .context("blocking terminal stops")?;
        Ok(Forwarder { set })
    }

    /// The signals held (forwarded ones, SIGCHLD and SIGWINCH), for a signalfd.
    pub fn set(&self) -> &SigSet {
        &self.set
    }
}

/// In the child before `execve`: every signal back to its default action, none blocked.
pub fn reset_for_exec() -> Result<()> {
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler, so no code of ours can run in signal context.
        unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) }
            .with_context(|| format!("resetting {sig} to its default action"))?;
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).context("unblocking signals")
}

/// Reaps a child we give up on.
pub fn reap(child: Pid) {
    let _ = waitpid(child, None);
}
