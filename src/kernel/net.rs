//! Network: the container has its own network namespace, holding only a loopback interface.
//! Published ports (`-p`) are served by the supervisor: it listens on the host and, for each
//! connection, connects to `127.0.0.1:PORT` from *inside* the container's network namespace (a
//! socket stays in the namespace it was created in) and relays the bytes both ways. No bridge,
//! no veth, no iptables: the host sees nothing of the container's network but those ports.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, send, MsgFlags};

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use serde::{Deserialize, Serialize};

/// `--network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// A new namespace with `lo` up, and nothing else.
    #[default]
    Private,
    /// A new namespace with `lo` down: no network at all.
    None,
    /// The host's own network namespace.
    Host,
}

impl Network {
    pub fn parse(text: &str) -> Result<Network> {
        match text {
            "private" | "default" | "bridge" => Ok(Network::Private),
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            _ => bail!("invalid --network {text:?}: use private, none or host"),
        }
    }
}

/// One `-p [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp]`; host port 0 lets the kernel choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

impl PortMapping {
    pub fn parse(text: &str) -> Result<PortMapping> {
        let bad = |why: &str| {
            anyhow::anyhow!(
                "invalid --publish {text:?}: {why}; use [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp]"
            )
        };
        let spec = match text.rsplit_once('/') {
            Some((s, "tcp")) => s,
            Some((_, proto)) => {
                return Err(bad(&format!(
                    "protocol {proto:?} is not supported, only tcp"
                )))
            }
            None => text,
        };
        // An IPv6 host address comes in brackets: [::1]:8080:80.
        let (host_ip, rest) = if let Some(v6) = spec.strip_prefix('[') {
            let (ip, rest) = v6.split_once("]:").ok_or_else(|| bad("unclosed '['"))?;
            (
                ip.parse::<IpAddr>().map_err(|_| bad("bad host address"))?,
                rest,
            )
        } else {
            match spec.split(':').collect::<Vec<_>>().as_slice() {
                [_, _] => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), spec),
                [ip, ..] => (
                    ip.parse::<IpAddr>().map_err(|_| bad("bad host address"))?,
                    &spec[ip.len() + 1..],
                ),
                _ => return Err(bad("missing CONTAINER_PORT")),
            }
        };
        let (host, container) = rest
            .split_once(':')
            .ok_or_else(|| bad("missing CONTAINER_PORT"))?;
        let host_port = if host.is_empty() {
            0
        } else {
            host.parse::<u16>().map_err(|_| bad("bad host port"))?
        };
        let container_port = container
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("bad container port"))?;
        Ok(PortMapping {
            host_ip,
            host_port,
            container_port,
        })
    }

    /// docker's way of showing it: `0.0.0.0:8080->80/tcp`.
    pub fn display(&self) -> String {
        let ip = match self.host_ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        format!("{ip}:{}->{}/tcp", self.host_port, self.container_port)
    }
}

/// Brings `lo` up in the container's (new, empty) network namespace, so the program can talk to
/// itself on 127.0.0.1 — nothing else is reachable.
pub fn bring_up_loopback() -> Result<()> {
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("socket() to configure lo")?;
    // SAFETY: `ifreq` is plain old data, zero is a valid value for all of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the `ifreq` we own, whose name is
    // NUL-terminated; the flags union member is the one these requests use.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error()).context("reading the flags of lo");
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error()).context("bringing lo up");
        }
    }
    Ok(())
}

/// The host side of the published ports, bound before the container starts (a port in use is
/// an error then, with nothing started) and held until it ends.
pub struct PublishedPorts {
    listeners: Vec<(PortMapping, TcpListener)>,
}

/// Why `-p` could not bind, in the user's terms: a port taken and an address this host does
/// not have are different mistakes.
fn bind_error(e: std::io::Error, asked: PortMapping, addr: SocketAddr) -> anyhow::Error {
    let why = match e.raw_os_error() {
        Some(libc::EADDRNOTAVAIL) => format!(
            "the address {} is not on this host (no interface has it); use one of the \
             host's addresses, or 0.0.0.0 for all",
            asked.host_ip
        ),
        Some(libc::EADDRINUSE) => {
            format!("host port {addr} is not free (another program listens on it?)")
        }
        Some(libc::EACCES) => format!("binding {addr} is not permitted"),
        _ => format!("cannot listen on {addr}"),
    };
    anyhow::Error::new(e).context(format!("cannot publish {}: {why}", asked.display()))
}

impl PublishedPorts {
    pub fn bind(ports: &[PortMapping]) -> Result<PublishedPorts> {
        let mut listeners = vec![];
        for &asked in ports {
            let addr = SocketAddr::new(asked.host_ip, asked.host_port);
            let listener = TcpListener::bind(addr).map_err(|e| bind_error(e, asked, addr))?;
            let host_port = listener.local_addr().context("local_addr")?.port();
            listeners.push((PortMapping { host_port, ..asked }, listener));
        }
        Ok(PublishedPorts { listeners })
    }

    /// The mappings as bound (kernel-chosen host ports filled in).
    pub fn mappings(&self) -> Vec<PortMapping> {
        self.listeners.iter().map(|(m, _)| *m).collect()
    }

    /// Starts serving. Each port has a few threads waiting in `accept`; the one that gets a
    /// connection first makes sure another keeps waiting, then relays that connection itself,
    /// both ways, and goes back to `accept`. No thread is started and nothing is handed over
    /// per connection once warm. The threads live in the container's network namespace
    /// (`netns`, from `/proc/PID/ns/net`): the listening sockets were made on the host before,
    /// the upstream sockets they make now are the container's.
    pub fn serve(self, netns: File) -> Result<()> {
        let netns = Arc::new(netns);
        for (mapping, listener) in self.listeners {
            let port = Arc::new(Port {
                listener,
                container_port: mapping.container_port,
                netns: Arc::clone(&netns),
                waiting: AtomicUsize::new(0),
                threads: AtomicUsize::new(0),
            });
            port.add_acceptor()
                .context("starting a port forwarder thread")?;
        }
        Ok(())
    }
}

/// One published port and its accepting threads.
struct Port {
    listener: TcpListener,
    container_port: u16,
    netns: Arc<File>,
    /// Threads blocked in `accept` (or about to be).
    waiting: AtomicUsize,
    /// All this port's threads.
    threads: AtomicUsize,
}

/// Threads left waiting in `accept` beyond this many end instead.
const MAX_WAITING: usize = 16;

/// At most this many threads (so connections relayed at once) per port; further connections
/// wait in the listen backlog until one is done.
const MAX_THREADS: usize = 512;

impl Port {
    fn add_acceptor(self: &Arc<Self>) -> std::io::Result<()> {
        self.waiting.fetch_add(1, SeqCst);
        self.threads.fetch_add(1, SeqCst);
        let port = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                Arc::clone(&port).accept_loop();
                port.threads.fetch_sub(1, SeqCst);
            });
        if spawned.is_err() {
            self.waiting.fetch_sub(1, SeqCst);
            self.threads.fetch_sub(1, SeqCst);
        }
        spawned.map(drop)
    }

    fn accept_loop(self: Arc<Self>) {
        // setns moves only this thread: the sockets it creates belong to the container.
        if let Err(e) = nix::sched::setns(self.netns.as_ref(), CloneFlags::CLONE_NEWNET) {
            say!(
                "minibox: cannot serve port {}: setns into the container: {e}",
                self.container_port
            );
            self.waiting.fetch_sub(1, SeqCst);
            return;
        }
        let mut buffers = Buffers::new();
        loop {
            let accepted = self.listener.accept();
            // The last one waiting goes to work: someone must take the next connection.
            let last = self.waiting.fetch_sub(1, SeqCst) == 1;
            if last && self.threads.load(SeqCst) < MAX_THREADS && self.add_acceptor().is_err() {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            match accepted {
                Ok((client, _)) => self.forward(client, &mut buffers),
                // Out of fds or memory for a moment: keep serving.
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
            if self.waiting.fetch_add(1, SeqCst) >= MAX_WAITING {
                self.waiting.fetch_sub(1, SeqCst);
                return;
            }
        }
    }

    /// Reaches the container's port and relays the connection until both sides are done.
    fn forward(&self, client: TcpStream, buffers: &mut Buffers) {
        // Nothing listens there (yet): the client's connection is closed, we keep serving.
        let inside = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.container_port);
        let Ok(upstream) = TcpStream::connect_timeout(&inside, std::time::Duration::from_secs(5))
        else {
            return;
        };
        let _ = relay(&client, &upstream, buffers);
    }
}

/// One buffer per direction, kept by a thread across its connections.
struct Buffers {
    up: Half,
    down: Half,
}

impl Buffers {
    fn new() -> Buffers {
        Buffers {
            up: Half::new(),
            down: Half::new(),
        }
    }
}

/// One direction of a relay: bytes read from one side, not yet written to the other.
struct Half {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The reading side said end of file.
    eof: bool,
    /// ... and that was passed on (or needs no passing on).
    done: bool,
}

/// Non-blocking for this call only, without fcntl round trips per connection.
const NOWAIT: MsgFlags = MsgFlags::MSG_DONTWAIT.union(MsgFlags::MSG_NOSIGNAL);

impl Half {
    fn new() -> Half {
        Half {
            buf: vec![0; 64 << 10],
            start: 0,
            end: 0,
            eof: false,
            done: false,
        }
    }

    fn reset(&mut self) {
        (self.start, self.end, self.eof, self.done) = (0, 0, false, false);
    }

    fn wants_read(&self) -> bool {
        !self.eof && self.start == self.end
    }

    fn wants_write(&self) -> bool {
        self.start < self.end
    }

    /// Moves what can move without blocking. `readable`: whether `poll` said there is
    /// something to read (reading otherwise would only cost a syscall to learn EAGAIN).
    /// `other_eof`: the other direction has ended, so the sockets are about to be closed and a
    /// half-close would be a wasted syscall. Err when the connection is broken.
    fn step(
        &mut self,
        from: RawFd,
        to: RawFd,
        mut readable: bool,
        other_eof: bool,
    ) -> nix::Result<()> {
        loop {
            if self.start < self.end {
                match send(to, &self.buf[self.start..self.end], NOWAIT) {
                    Ok(n) => self.start += n,
                    Err(Errno::EAGAIN) => return Ok(()),
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e),
                }
                continue;
            }
            if self.eof {
                if !self.done {
                    self.done = true;
                    if !other_eof {
                        let _ = nix::sys::socket::shutdown(to, nix::sys::socket::Shutdown::Write);
                    }
                }
                return Ok(());
            }
            if !readable {
                return Ok(());
            }
            match recv(from, &mut self.buf, NOWAIT) {
                Ok(0) => self.eof = true,
                Ok(n) => (self.start, self.end) = (0, n),
                Err(Errno::EAGAIN) => readable = false,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Relays both ways between two sockets on one thread, with `poll`: each direction ends when
/// its reader says end of file, which is passed on as a half-close; the relay ends when both
/// have. Never blocks in a read or write, so neither direction can stall the other.
fn relay(client: &TcpStream, upstream: &TcpStream, buffers: &mut Buffers) -> nix::Result<()> {
    let (c, u) = (client.as_raw_fd(), upstream.as_raw_fd());
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let Buffers { up, down } = buffers;
    up.reset();
    down.reset();
    // A client usually speaks first, and has by the time we accepted it.
    let (mut client_readable, mut upstream_readable) = (true, false);
    loop {
        up.step(c, u, client_readable, down.eof)?;
        down.step(u, c, upstream_readable, up.eof)?;
        if up.done && down.done {
            return Ok(());
        }
        let interest = |read: bool, write: bool| {
            let mut f = PollFlags::empty();
            f.set(PollFlags::POLLIN, read);
            f.set(PollFlags::POLLOUT, write);
            f
        };
        // A socket we want nothing from stays out of the poll: POLLHUP is reported whatever
        // the events asked, and would wake us in a loop.
        let client_wants = interest(up.wants_read(), down.wants_write());
        let upstream_wants = interest(down.wants_read(), up.wants_write());
        let mut fds = Vec::with_capacity(2);
        if !client_wants.is_empty() {
            fds.push(PollFd::new(client.as_fd(), client_wants));
        }
        if !upstream_wants.is_empty() {
            fds.push(PollFd::new(upstream.as_fd(), upstream_wants));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        // Readable, closed or failed: in each case a read tells us which.
        let ready = |fd: RawFd| {
            fds.iter().any(|f| {
                f.as_fd().as_raw_fd() == fd
                    && f.revents()
                        .is_some_and(|r| !(r & !PollFlags::POLLOUT).is_empty())
            })
        };
        (client_readable, upstream_readable) = (ready(c), ready(u));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_follows_dockers_syntax() {
        let p = PortMapping::parse("8080:80").unwrap();
        assert_eq!(
            (
                p.host_ip.to_string().as_str(),
                p.host_port,
                p.container_port
            ),
            ("0.0.0.0", 8080, 80)
        );
        let p = PortMapping::parse("127.0.0.1:9000:8080/tcp").unwrap();
        assert_eq!(
            (
                p.host_ip.to_string().as_str(),
                p.host_port,
                p.container_port
            ),
            ("127.0.0.1", 9000, 8080)
        );
        let p = PortMapping::parse("127.0.0.1::8080").unwrap();
        assert_eq!((p.host_port, p.container_port), (0, 8080));
        let p = PortMapping::parse("[::1]:8443:443").unwrap();
        assert_eq!((p.host_ip.to_string().as_str(), p.host_port), ("::1", 8443));
        assert_eq!(
            PortMapping::parse("1.2.3.4:80:8080").unwrap().display(),
            "1.2.3.4:80->8080/tcp"
        );
    }

    #[test]
    fn publish_rejects_nonsense() {
        for bad in [
            "8080",
            "a:80",
            "80:b",
            "80:0",
            "80:70000",
            "300.1.1.1:80:80",
            "80:80/udp",
            "[::1:80:80",
            "",
        ] {
            let e = PortMapping::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid --publish"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn network_modes() {
        assert_eq!(Network::parse("private").unwrap(), Network::Private);
        assert_eq!(Network::parse("none").unwrap(), Network::None);
        assert_eq!(Network::parse("host").unwrap(), Network::Host);
        assert!(Network::parse("wifi").is_err());
    }

    #[test]
    fn a_port_in_use_is_refused_before_anything_starts() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let asked = PortMapping::parse(&format!("127.0.0.1:{port}:80")).unwrap();
        let e = PublishedPorts::bind(&[asked]).err().unwrap().to_string();
        assert!(e.contains("is not free"), "{e}");
        let any = PortMapping::parse("127.0.0.1::80").unwrap();
        let bound = PublishedPorts::bind(&[any]).unwrap().mappings();
        assert_ne!(bound[0].host_port, 0);
    }

    #[test]
    fn an_address_not_on_this_host_is_said_so_not_a_busy_port() {
        // 192.0.2.0/24 is TEST-NET-1: documentation only, never a host's address.
        let asked = PortMapping::parse("192.0.2.1:18090:80").unwrap();
        let e = format!("{:#}", PublishedPorts::bind(&[asked]).err().unwrap());
        assert!(e.contains("192.0.2.1 is not on this host"), "{e}");
        assert!(!e.contains("not free"), "{e}");
    }
}
