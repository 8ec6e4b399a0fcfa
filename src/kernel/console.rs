//! The container's terminal for an OCI `create` with `process.terminal`: a pty made from the
//! container's own devpts, whose master goes to the caller over `--console-socket` (runc's
//! protocol: one message carrying the fd with SCM_RIGHTS), and whose slave becomes the
//! process's stdio and controlling terminal.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;

/// A terminal's size, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSize {
    pub rows: u16,
    pub cols: u16,
}

/// Opens a pty from our `/dev/ptmx` (after the root switch: the container's own devpts),
/// hands its master to the caller through `socket`, and makes the slave our stdin, stdout,
/// stderr and controlling terminal. The slave belongs to the container's user, who must be
/// able to reopen it (`/dev/tty`).
pub fn install(socket: &UnixStream, size: Option<ConsoleSize>, uid: u32) -> Result<()> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .context("opening /dev/ptmx in the container")?;
    grantpt(&master).context("grantpt")?;
    unlockpt(&master).context("unlockpt")?;
    let name = ptsname_r(&master).context("ptsname")?;
    let slave: OwnedFd = open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening the pty {name}"))?;
    nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(uid)), None)
        .with_context(|| format!("giving the pty {name} to uid {uid}"))?;
    if let Some(size) = size {
        set_size(&slave, size)?;
    }
    let fds = [master.as_fd().as_raw_fd()];
    let payload = [IoSlice::new(b"/dev/ptmx")];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &payload,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .context("sending the pty's master over --console-socket")?;
    drop(master);
    nix::unistd::dup2_stdin(&slave).context("the pty as stdin")?;
    nix::unistd::dup2_stdout(&slave).context("the pty as stdout")?;
    nix::unistd::dup2_stderr(&slave).context("the pty as stderr")?;
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal another session's terminal)
    // and reads no memory of ours; fd 0 is the slave, open.
    let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    Errno::result(rc).context("making the pty our controlling terminal (TIOCSCTTY)")?;
    Ok(())
}

fn set_size(tty: &OwnedFd, size: ConsoleSize) -> Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize, which `ws` is, for the duration of the call.
    let rc = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    Errno::result(rc).context("setting the console size (TIOCSWINSZ)")?;
    Ok(())
}
