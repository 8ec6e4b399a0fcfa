//! The supervisor's watch: pass signals on to the container, copy a detached container's output
//! into its log, and notice when it ends. One thread, one `poll` over a signalfd and the output
//! pipe: nothing runs in signal context.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::runtime::signals::Forwarder;

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

/// Where a detached container's output goes: the read end of its stdout/stderr pipe, and the log.
pub struct Relay {
    pub pipe: File,
    pub log: LogFile,
}

/// Passes signals on to `child` and relays its output until it ends; returns how it ended.
pub fn watch(child: Pid, forwarder: &Forwarder, mut relay: Option<Relay>) -> Result<WaitStatus> {
    let signals = SignalFd::with_flags(
        forwarder.set(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .context("signalfd")?;
    loop {
        if let Some(status) = reap(child)? {
            if let Some(relay) = relay.as_mut() {
                drain(relay)?;
                if relay.log.lost > 0 {
                    say!(
                        "minibox: {} bytes of the container's output were lost (log not writable)",
                        relay.log.lost
                    );
                }
            }
            return Ok(status);
        }
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(r) = &relay {
            fds.push(PollFd::new(r.pipe.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let output_ready = fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        while let Some(info) = signals.read_signal().context("reading signalfd")? {
            let sig = Signal::try_from(info.ssi_signo as i32).ok();
            if let Some(sig) = sig.filter(|s| *s != Signal::SIGCHLD) {
                match kill(child, sig) {
                    Ok(()) | Err(Errno::ESRCH) => {}
                    Err(e) => return Err(e).with_context(|| format!("forwarding {sig}")),
                }
            }
        }
        if output_ready {
            if let Some(r) = relay.as_mut() {
                if !copy_once(r)? {
                    // Every writer closed its end; no need to watch it any more.
                    relay = None;
                }
            }
        }
    }
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

/// Copies what the pipe holds now into the log; false at end of file.
fn copy_once(relay: &mut Relay) -> Result<bool> {
    let mut buf = [0u8; 64 * 1024];
    match (&relay.pipe).read(&mut buf) {
        Ok(0) => Ok(false),
        Ok(n) => {
            // A full disk loses output, not the container: the pipe is still drained.
            if relay.log.write(&buf[..n]).is_err() {
                relay.log.lost += n as u64;
            }
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
            Ok(true)
        }
        Err(e) => Err(e).context("reading the container's output"),
    }
}

/// After the container's end: what it wrote last, until every writer is gone (its other
/// processes die with its PID 1), and no more than a second's wait.
fn drain(relay: &mut Relay) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        let mut fds = [PollFd::new(relay.pipe.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(100u16)).unwrap_or(0) == 0 {
            continue;
        }
        if !copy_once(relay)? {
            break;
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
