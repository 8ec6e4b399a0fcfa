//! `run -d -t`: the container's terminal outlives the command that started it. The detached
//! supervisor listens on `attach.sock` in the container's (root-only) state directory; one
//! `minibox attach` at a time connects there, sees what the terminal prints (it goes to the log
//! as well), and, if the container was run with `-i`, types into it.
//!
//! The socket is SOCK_SEQPACKET, so each message arrives whole; its first byte says what it is:
//! - client → supervisor: `i` + keys typed; `w` + rows, cols (u16 little-endian each): the
//!   attached terminal's size (sent first, and after each SIGWINCH);
//! - supervisor → client: `o` + what the terminal printed; `x` + the container's exit status
//!   (i32 little-endian), last; `b` alone: another client is attached, this one is refused.
//!
//! The supervisor serves it from its one poll loop (`Relay`), never blocking on a client: one
//! that does not keep up with the output is let go.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

use crate::kernel::pty;

/// The socket's name in the container's state directory.
pub const SOCKET: &str = "attach.sock";
/// The largest message either side sends.
pub const MESSAGE_MAX: usize = 16 * 1024;
/// Output waiting for a slow client beyond this: the client is let go.
const CLIENT_BACKLOG_MAX: usize = 1 << 20;

pub const KEYS: u8 = b'i';
pub const SIZE: u8 = b'w';
pub const OUTPUT: u8 = b'o';
pub const EXITED: u8 = b'x';
pub const BUSY: u8 = b'b';

/// A seqpacket unix socket of ours, close-on-exec.
pub fn seqpacket(nonblocking: bool) -> Result<OwnedFd> {
    let mut flags = SockFlag::SOCK_CLOEXEC;
    if nonblocking {
        flags |= SockFlag::SOCK_NONBLOCK;
    }
    socket::socket(AddressFamily::Unix, SockType::SeqPacket, flags, None)
        .context("creating the attach socket")
}

/// The socket's address in `dir`, short whatever the directory's path (a unix socket's path
/// holds 107 bytes): through the directory's descriptor, which must stay open while it is used.
fn address(dir: &Path) -> Result<(File, UnixAddr)> {
    let handle = File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let short = format!("/proc/self/fd/{}/{SOCKET}", handle.as_raw_fd());
    let addr = UnixAddr::new(short.as_str()).context("the attach socket's address")?;
    Ok((handle, addr))
}

/// `minibox attach`'s end: connected to the supervisor listening in `dir` (blocking).
pub fn connect(dir: &Path) -> Result<OwnedFd> {
    let sock = seqpacket(false)?;
    let (_dir, addr) = address(dir)?;
    socket::connect(sock.as_raw_fd(), &addr)
        .with_context(|| format!("connecting to {}", dir.join(SOCKET).display()))?;
    Ok(sock)
}

/// Sends one message (no SIGPIPE should the other side be gone).
pub fn send(fd: BorrowedFd<'_>, msg: &[u8]) -> nix::Result<usize> {
    socket::send(fd.as_raw_fd(), msg, MsgFlags::MSG_NOSIGNAL)
}

/// The detached supervisor's side: its listening socket and the client attached, if any.
pub struct AttachPoint {
    path: PathBuf,
    listener: OwnedFd,
    /// `-i` at run: the client's keys go to the terminal.
    interactive: bool,
    client: Option<Client>,
    /// The container's terminal, once it is there.
    master: Option<OwnedFd>,
    /// Keys on their way to the terminal (non-blocking, so it may be full).
    to_master: Vec<u8>,
}

struct Client {
    fd: OwnedFd,
    /// Messages not sent yet, and their total size.
    out: VecDeque<Vec<u8>>,
    queued: usize,
}

/// What of the attach point poll found ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    Listener,
    Client,
    Master,
}

impl AttachPoint {
    /// Listens on `dir/attach.sock` (mode 0600), before the container starts, so that `attach`
    /// works as soon as `run -d` has printed the id.
    pub fn listen(dir: &Path, interactive: bool) -> Result<AttachPoint> {
        let path = dir.join(SOCKET);
        let _ = std::fs::remove_file(&path);
        let listener = seqpacket(true)?;
        let (_dir, addr) = address(dir)?;
        socket::bind(listener.as_raw_fd(), &addr)
            .with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod of {}", path.display()))?;
        socket::listen(&listener, socket::Backlog::new(4).context("backlog")?)
            .with_context(|| format!("listening on {}", path.display()))?;
        Ok(AttachPoint {
            path,
            listener,
            interactive,
            client: None,
            master: None,
            to_master: Vec::new(),
        })
    }

    /// The container's terminal has come: keys typed go there from now on.
    pub fn set_master(&mut self, master: OwnedFd) {
        self.master = Some(master);
    }

    /// What to poll for.
    pub fn interests(&self) -> Vec<(Ready, BorrowedFd<'_>, PollFlags)> {
        let mut all = vec![(Ready::Listener, self.listener.as_fd(), PollFlags::POLLIN)];
        if let (false, Some(master)) = (self.to_master.is_empty(), &self.master) {
            all.push((Ready::Master, master.as_fd(), PollFlags::POLLOUT));
        }
        if let Some(client) = &self.client {
            let mut events = PollFlags::empty();
            // A client's keys are read only once the previous ones are in the terminal.
            if self.to_master.is_empty() {
                events |= PollFlags::POLLIN;
            }
            if !client.out.is_empty() {
                events |= PollFlags::POLLOUT;
            }
            // Nothing to wait for (keys held back by a full terminal, no output): not polled,
            // or a hung-up client would wake the loop again and again.
            if !events.is_empty() {
                all.push((Ready::Client, client.fd.as_fd(), events));
            }
        }
        all
    }

    /// Serves what poll found ready.
    pub fn step(&mut self, ready: Ready) {
        match ready {
            Ready::Listener => self.accept(),
            Ready::Master => self.write_master(),
            Ready::Client => {
                self.flush_client();
                if self.to_master.is_empty() {
                    self.read_client();
                }
            }
        }
    }

    /// What the terminal printed, for the client too.
    pub fn output(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(MESSAGE_MAX - 1) {
            let mut msg = Vec::with_capacity(chunk.len() + 1);
            msg.push(OUTPUT);
            msg.extend_from_slice(chunk);
            self.queue(msg);
        }
    }

    /// The container has ended with `code`: the client is told (a second at most), then let go.
    pub fn ended(&mut self, code: i32) {
        let mut msg = vec![EXITED];
        msg.extend_from_slice(&code.to_le_bytes());
        self.queue(msg);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        while let Some(client) = &self.client {
            if client.out.is_empty() || std::time::Instant::now() >= deadline {
                break;
            }
            let mut fds = [nix::poll::PollFd::new(
                client.fd.as_fd(),
                PollFlags::POLLOUT,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
            self.flush_client();
        }
        self.client = None;
    }

    fn queue(&mut self, msg: Vec<u8>) {
        let Some(client) = &mut self.client else {
            return;
        };
        client.queued += msg.len();
        client.out.push_back(msg);
        if client.queued > CLIENT_BACKLOG_MAX {
            // It does not read: the container must not wait for it, nor memory grow.
            self.client = None;
        }
    }

    fn accept(&mut self) {
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let Ok(fd) = socket::accept4(&self.listener, flags) else {
            return;
        };
        if self.client.is_some() {
            let _ = send(fd.as_fd(), &[BUSY]);
            return;
        }
        self.client = Some(Client {
            fd,
            out: VecDeque::new(),
            queued: 0,
        });
    }

    fn flush_client(&mut self) {
        let Some(client) = &mut self.client else {
            return;
        };
        while let Some(msg) = client.out.front() {
            match send(client.fd.as_fd(), msg) {
                Ok(_) => {
                    client.queued -= msg.len();
                    client.out.pop_front();
                }
                Err(Errno::EAGAIN | Errno::EINTR) => return,
                Err(_) => {
                    self.client = None;
                    return;
                }
            }
        }
    }

    fn read_client(&mut self) {
        let Some(client) = &mut self.client else {
            return;
        };
        let mut buf = vec![0u8; MESSAGE_MAX];
        let n = match socket::recv(client.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => {
                // Detached (or gone): the container goes on.
                self.client = None;
                return;
            }
            Ok(n) => n,
            Err(Errno::EAGAIN | Errno::EINTR) => return,
            Err(_) => {
                self.client = None;
                return;
            }
        };
        match (buf[0], &buf[1..n]) {
            (KEYS, keys) if self.interactive && self.master.is_some() => {
                self.to_master.extend_from_slice(keys);
                self.write_master();
            }
            (SIZE, [r0, r1, c0, c1]) => {
                if let Some(master) = &self.master {
                    // SAFETY: `winsize` is plain data, all zeros valid.
                    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
                    ws.ws_row = u16::from_le_bytes([*r0, *r1]);
                    ws.ws_col = u16::from_le_bytes([*c0, *c1]);
                    // A size that cannot be set is no reason to stop anything.
                    let _ = pty::set_window_size(master, &ws);
                }
            }
            // Keys without -i (docker shows output only), or a message we do not know.
            _ => {}
        }
    }

    fn write_master(&mut self) {
        let Some(master) = &self.master else {
            self.to_master.clear();
            return;
        };
        match nix::unistd::write(master, &self.to_master) {
            Ok(n) => {
                self.to_master.drain(..n);
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(_) => self.to_master.clear(),
        }
    }
}

impl Drop for AttachPoint {
    /// The container has ended: nothing to attach to any more.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
