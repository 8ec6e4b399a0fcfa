//! A terminal for the container (`-t`): a pseudo-terminal from the container's *own* devpts
//! instance, whose slave becomes its stdin, stdout, stderr and controlling terminal, and whose
//! master goes to the supervisor over a socket (SCM_RIGHTS).
//!
//! The same three pieces serve every way a terminal is wanted: `run -t` (the supervisor relays
//! the master), and later `exec -t` and OCI's `--console-socket` (the master goes to whoever
//! listens on the socket).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::sys::stat::Mode;
use nix::unistd::Uid;

/// The multiplexer of the devpts mounted at the container's `/dev/pts` (a `newinstance`): the
/// pty it makes is numbered and visible in the container only, never among the host's.
const CONTAINER_PTMX: &str = "/dev/pts/ptmx";

/// A new pty from the devpts at `/dev/pts` (the container's, once it has pivoted): (master,
/// slave). The slave is opened from the master (TIOCGPTPEER), not by a path an image could
/// have a say in.
pub fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    let master = nix::fcntl::open(
        CONTAINER_PTMX,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {CONTAINER_PTMX} for the container's terminal"))?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the live pointer (unlockpt; grantpt has nothing
    // to do on devpts).
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    Errno::result(rc).context("unlocking the container's pty (TIOCSPTLCK)")?;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes its flags by value and returns a new descriptor, owned below.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let fd = Errno::result(fd).context("opening the container's pty slave (TIOCGPTPEER)")?;
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let slave = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((master, slave))
}

/// Gives the terminal whose master is `master` a window size; its foreground process group
/// gets SIGWINCH from the kernel if the size changed.
pub fn set_window_size(master: &impl AsFd, size: &libc::winsize) -> Result<()> {
    // SAFETY: TIOCSWINSZ reads one winsize from the live pointer.
    let rc = unsafe { libc::ioctl(master.as_fd().as_raw_fd(), libc::TIOCSWINSZ, size) };
    Errno::result(rc).context("setting the container's terminal size (TIOCSWINSZ)")?;
    Ok(())
}

/// In the container's first process, a session leader without a terminal (it called setsid):
/// `slave` becomes its 0, 1 and 2 and its controlling terminal, owned by its user (so a
/// program may reopen its tty, as in a login session).
pub fn become_terminal_of_this_session(slave: &OwnedFd, uid: u32) -> Result<()> {
    nix::unistd::fchown(slave, Some(Uid::from_raw(uid)), None).context("chown of the pty")?;
    // SAFETY: TIOCSCTTY takes an int by value (0: do not steal a terminal another session has).
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(rc).context("making the pty the controlling terminal (TIOCSCTTY)")?;
    nix::unistd::dup2_stdin(slave).context("dup2 of the pty onto 0")?;
    nix::unistd::dup2_stdout(slave).context("dup2 of the pty onto 1")?;
    nix::unistd::dup2_stderr(slave).context("dup2 of the pty onto 2")?;
    Ok(())
}

/// A connected pair of sockets to pass a descriptor from the container to the supervisor.
/// Close-on-exec, and datagram-like: one message is one descriptor.
pub fn fd_channel() -> Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("creating the socket for the container's terminal")
}

/// Sends `fd` over `socket` (SCM_RIGHTS): the receiver gets its own descriptor of the same
/// open file.
pub fn send_fd(socket: &impl AsFd, fd: &impl AsFd) -> Result<()> {
    let fds = [fd.as_fd().as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(b"pty")];
    sendmsg::<()>(
        socket.as_fd().as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .context("sending the pty master to minibox")?;
    Ok(())
}

/// Receives one descriptor sent by `send_fd` (close-on-exec). `wait`: block until it comes;
/// otherwise it must be there already.
pub fn recv_fd(socket: &impl AsFd, wait: bool) -> Result<OwnedFd> {
    let mut byte = [0u8; 8];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut flags = MsgFlags::MSG_CMSG_CLOEXEC;
    if !wait {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    let msg = recvmsg::<()>(
        socket.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut space),
        flags,
    )
    .context("receiving the container's pty master")?;
    let mut received = Vec::new();
    for cmsg in msg.cmsgs().context("reading the control message")? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            // SAFETY: the kernel just installed these descriptors in our table; we own them.
            received.extend(
                fds.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if received.len() != 1 {
        bail!(
            "the container sent {} descriptors for its terminal, not one",
            received.len()
        );
    }
    Ok(received.remove(0))
}
