//! The caller's terminal during `run -it`: raw for the run, so that every key (Ctrl-C, Ctrl-Z,
//! Ctrl-\ included) goes to the container's own terminal, whose line discipline acts on it;
//! and put back as it was on every way out (`RawMode`'s drop, and the panic hook through
//! `restore_after_panic`, since `process::exit` runs no destructor).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Mutex;

use anyhow::{Context, Result};

use crate::kernel::pty;
use nix::errno::Errno;
use nix::sys::termios::{self, SetArg, Termios};

/// The mode to put back, for the panic hook.
static SAVED: Mutex<Option<(RawFd, Termios)>> = Mutex::new(None);

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    termios::tcgetattr(fd).is_ok()
}

/// The caller's terminal in raw mode until this is dropped.
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    /// Makes `fd`'s terminal raw (cfmakeraw), remembering its mode.
    pub fn enter(fd: BorrowedFd<'_>) -> Result<RawMode> {
        let saved = termios::tcgetattr(fd).context("reading the terminal's mode")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some((fd.as_raw_fd(), saved.clone()));
        termios::tcsetattr(fd, SetArg::TCSADRAIN, &raw).context("making the terminal raw")?;
        Ok(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore(self.fd, &self.saved);
        SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

fn restore(fd: RawFd, mode: &Termios) {
    // SAFETY: the descriptor is one of minibox's own stdio, open for its whole life.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    // TCSAFLUSH would drop what the user typed ahead; TCSADRAIN waits for our output only.
    let _ = termios::tcsetattr(fd, SetArg::TCSADRAIN, mode);
}

/// For the panic hook: the terminal goes back to its mode even when no destructor runs.
pub fn restore_after_panic() {
    // try_lock: a panic while the lock is held must not deadlock the hook.
    if let Ok(mut saved) = SAVED.try_lock() {
        if let Some((fd, mode)) = saved.take() {
            restore(fd, &mode);
        }
    }
}

/// The caller's window size, if fd 0, 1 or 2 is a terminal.
pub fn caller_window_size() -> Option<libc::winsize> {
    [
        std::io::stdin().as_fd(),
        std::io::stdout().as_fd(),
        std::io::stderr().as_fd(),
    ]
    .into_iter()
    .find_map(|fd| get_window_size(fd).ok())
}

fn get_window_size(fd: BorrowedFd<'_>) -> nix::Result<libc::winsize> {
    // SAFETY: `winsize` is plain data, all zeros valid.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize to the live pointer.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    Errno::result(rc).map(|_| ws)
}

/// Gives the container's terminal (through its master) the caller's size; its foreground
/// process group gets SIGWINCH from the kernel when the size changes.
pub fn copy_window_size(master: BorrowedFd<'_>) -> Result<()> {
    match caller_window_size() {
        Some(ws) => pty::set_window_size(&master, &ws),
        None => Ok(()),
    }
}
