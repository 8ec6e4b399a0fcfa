//! The supervisor's watch: pass signals on to the container, relay its stdin, stdout and stderr
//! (`stdio`: to and from minibox's own, or into a detached container's log), and notice when
//! it ends. One thread, one `poll` over a signalfd and the pipes: nothing runs in signal
//! context, and nothing blocks.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::runtime::signals::Forwarder;
use crate::runtime::stdio::Relay;

/// Set once the supervisor has passed on a signal that asks the container to end (INT, TERM,
/// QUIT, HUP: Ctrl-C on a foreground run, or whoever signals the supervisor): its restart
/// policy no longer applies, as after `minibox stop`.
static ASKED_TO_END: AtomicBool = AtomicBool::new(false);

/// True once the container was asked to end through its supervisor (see `ASKED_TO_END`).
pub fn asked_to_end() -> bool {
    ASKED_TO_END.load(Ordering::Relaxed)
}

/// Passes signals on to `child` and relays its stdio until it ends; returns how it ended.
pub fn watch(child: Pid, forwarder: &Forwarder, mut relay: Relay) -> Result<WaitStatus> {
    let signals = SignalFd::with_flags(
        forwarder.set(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .context("signalfd")?;
    loop {
        if let Some(status) = reap(child)? {
            drain(&mut relay)?;
            relay.ended(crate::runtime::status::from_wait(status).unwrap_or(1));
            if relay.lost() > 0 {
                say!(
                    "minibox: {} bytes of the container's output were lost (log not writable)",
                    relay.lost()
                );
            }
            return Ok(status);
        }
        let ready = poll_relay(&relay, Some(&signals), PollTimeout::NONE)?;
        while let Some(info) = signals.read_signal().context("reading signalfd")? {
            let sig = Signal::try_from(info.ssi_signo as i32).ok();
            if sig == Some(Signal::SIGWINCH) {
                // A size that cannot be set is no reason to stop the container.
                let _ = relay.resize();
                continue;
            }
            if let Some(sig) = sig.filter(|s| *s != Signal::SIGCHLD) {
                if matches!(
                    sig,
                    Signal::SIGINT | Signal::SIGTERM | Signal::SIGQUIT | Signal::SIGHUP
                ) {
                    ASKED_TO_END.store(true, Ordering::Relaxed);
                }
                match kill(child, sig) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => return Err(e).with_context(|| format!("forwarding {sig}")),
                }
            }
        }
        for stream in ready {
            relay.step(stream)?;
        }
    }
}

/// One `poll` over the signalfd (if any) and what the relay's streams wait for; returns the
/// streams that are ready.
fn poll_relay(
    relay: &Relay,
    signals: Option<&SignalFd>,
    timeout: PollTimeout,
) -> Result<Vec<usize>> {
    let interests = relay.interests();
    let mut fds: Vec<PollFd> = signals
        .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
        .into_iter()
        .collect();
    let first = fds.len();
    fds.extend(interests.iter().map(|(_, fd, ev)| PollFd::new(*fd, *ev)));
    match poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(Errno::EINTR) => return Ok(Vec::new()),
        Err(e) => return Err(e).context("poll"),
    }
    Ok(interests
        .iter()
        .zip(&fds[first..])
        .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
        .map(|((stream, _, _), _)| *stream)
        .collect())
}

/// `Some(status)` once the child has ended.
fn reap(child: Pid) -> Result<Option<WaitStatus>> {
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                return Ok(Some(status))
            }
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for the container"),
        }
    }
}

/// After the container's end: what it wrote last, all of it. Its other processes died with its
/// PID 1, so its pipes reach end of file once emptied; only a write end smuggled out of the
/// container could keep them open, so reading stops after a second. What was read is still
/// written out, as fast as the reader takes it (or drops it: a closed stdout).
fn drain(relay: &mut Relay) -> Result<()> {
    // Nobody reads the container's stdin any more.
    relay.stop_input();
    let deadline = Instant::now() + Duration::from_secs(1);
    while !relay.is_done() {
        if Instant::now() >= deadline {
            relay.stop_reading();
        }
        for stream in poll_relay(relay, None, PollTimeout::from(100u16))? {
            relay.step(stream)?;
        }
    }
    Ok(())
}
