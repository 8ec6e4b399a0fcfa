//! Signals: what the user sends minibox reaches the container.
//!
//! The parent blocks the forwarded signals (and SIGCHLD) before the container exists, so none
//! is lost, then waits for them synchronously: no handler, no thread. The child puts every
//! disposition and the mask back to default before `execve`, since ignored signals and the
//! mask survive exec (Rust itself ignores SIGPIPE).

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
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
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).context("blocking signals")?;
        Ok(Forwarder { set })
    }

    /// Passes signals on to `child` until it ends; returns how it ended.
    pub fn forward_until_exit(&self, child: Pid) -> Result<WaitStatus> {
        loop {
            // SIGCHLD may have been merged with others: always look before waiting.
            match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    return Ok(status)
                }
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("waiting for the container"),
            }
            let sig = self.set.wait().context("waiting for signals")?;
            if sig != Signal::SIGCHLD {
                match kill(child, sig) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => return Err(e).with_context(|| format!("forwarding {sig}")),
                }
            }
        }
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
