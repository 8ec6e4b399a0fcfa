//! The supervisor's watch: pass signals on to the container, relay its stdin, stdout and stderr
//! (`stdio`: to and from minibox's own, or into a detached container's log), and notice when
//! it ends. One thread, one `poll` over a signalfd and the pipes: nothing runs in signal
//! context, and nothing blocks.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
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

/// A log file stops growing past this; it then becomes `log.1` (replacing the previous one) and
/// a new `log` starts: at most twice this on disk per container.
pub const LOG_MAX_BYTES: u64 = 8 << 20;

/// The current log of the container whose state directory is `dir`, and the previous one.
pub fn log_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("log"), dir.join("log.1"))
}

/// A size-bounded, rotating log.
pub struct LogFile {
    dir: PathBuf,
    file: File,
    size: u64,
    is_our_stdio: bool,
    /// Bytes of output that could not be written (a full disk).
    pub lost: u64,
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log {}", path.display()))
}

impl LogFile {
    pub fn open(dir: &Path) -> Result<LogFile> {
        let (current, _) = log_paths(dir);
        let file = open_log(&current)?;
        let size = file.metadata().map_or(0, |m| m.len());
        Ok(LogFile {
            dir: dir.to_path_buf(),
            file,
            size,
            is_our_stdio: false,
            lost: 0,
        })
    }

    /// Makes this log our own stdout and stderr too (the detached supervisor's messages, an
    /// OOM kill say, belong with the container's output), now and after each rotation.
    pub fn become_stdio(&mut self) -> Result<()> {
        nix::unistd::dup2_stdout(&self.file).context("pointing stdout at the log")?;
        nix::unistd::dup2_stderr(&self.file).context("pointing stderr at the log")?;
        self.is_our_stdio = true;
        Ok(())
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.size + bytes.len() as u64 > LOG_MAX_BYTES && self.size > 0 {
            self.rotate()?;
        }
        self.file
            .write_all(bytes)
            .context("writing the container's log")?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let (current, previous) = log_paths(&self.dir);
        fs::rename(&current, &previous).context("rotating the container's log")?;
        self.file = open_log(&current)?;
        self.size = 0;
        if self.is_our_stdio {
            self.become_stdio()?;
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_and_rotates_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..(3 * LOG_MAX_BYTES / chunk.len() as u64) {
            log.write(&chunk).unwrap();
        }
        log.write(b"last words\n").unwrap();
        let (current, previous) = log_paths(dir.path());
        let (now, before) = (
            fs::metadata(&current).unwrap().len(),
            fs::metadata(&previous).unwrap().len(),
        );
        assert!(
            now <= LOG_MAX_BYTES && before <= LOG_MAX_BYTES,
            "{now} {before}"
        );
        assert!(fs::read_to_string(&current)
            .unwrap()
            .ends_with("last words\n"));
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            2,
            "only log and log.1"
        );
    }
}
