//! Published ports on the supervisor's side: the host ports, bound before the container starts
//! (`PublishedPorts`), and the userland relay that serves them: one thread per container, one
//! `epoll` loop over all its listening sockets, connections and UDP flows, every socket
//! non-blocking.
//!
//! An idle connection costs two descriptors and a few bytes (buffers are only kept for bytes a
//! slow side has not taken yet), and no thread: ten thousand idle clients lock no one out,
//! and a new one is accepted as soon as it arrives. For a `private` container the thread
//! enters the container's network namespace first (setns moves only the calling thread), so
//! the upstream sockets it makes are the container's, and it connects to `127.0.0.1:PORT`
//! there; the listening sockets were made on the host before and stay the host's. For a
//! bridge network the thread stays on the host and connects to the container's address (it
//! then serves only the host's own loopback clients: the kernel forwards the rest).
//!
//! A UDP port (`-p 53:53/udp`) has no connections: each client address seen on the host socket
//! gets a flow, a socket of its own connected to the container's port, through which its
//! datagrams go and the answers come back to it; a flow idle for `UDP_IDLE` is forgotten, as
//! docker's proxy does.

use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    accept4, connect, getsockopt, recv, send, shutdown, socket, sockopt, AddressFamily, MsgFlags,
    Shutdown, SockFlag, SockType, SockaddrIn,
};

use crate::model::network::{PortMapping, Proto};

/// The host side of the published ports, bound before the container starts (a port in use is
/// an error then, with nothing started) and held until it ends.
pub struct PublishedPorts {
    listeners: Vec<(PortMapping, Front)>,
}

/// A published port's socket on the host.
pub enum Front {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

impl Front {
    fn bind(proto: Proto, addr: SocketAddr) -> std::io::Result<Front> {
        Ok(match proto {
            Proto::Tcp => Front::Tcp(TcpListener::bind(addr)?),
            Proto::Udp => Front::Udp(UdpSocket::bind(addr)?),
        })
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Front::Tcp(l) => l.local_addr(),
            Front::Udp(u) => u.local_addr(),
        }
    }

    fn set_nonblocking(&self) -> std::io::Result<()> {
        match self {
            Front::Tcp(l) => l.set_nonblocking(true),
            Front::Udp(u) => u.set_nonblocking(true),
        }
    }

    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Front::Tcp(l) => l.as_fd(),
            Front::Udp(u) => u.as_fd(),
        }
    }
}

/// A UDP flow nobody used for this long is forgotten (docker's proxy: 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);
/// At most this many UDP flows per container; a datagram of one more client waits for a slot.
const MAX_FLOWS: usize = 4096;

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
            let listener =
                Front::bind(asked.proto, addr).map_err(|e| bind_error(e, asked, addr))?;
            let host_port = listener.local_addr().context("local_addr")?.port();
            listeners.push((PortMapping { host_port, ..asked }, listener));
        }
        Ok(PublishedPorts { listeners })
    }

    /// The mappings as bound (kernel-chosen host ports filled in).
    pub fn mappings(&self) -> Vec<PortMapping> {
        self.listeners.iter().map(|(m, _)| *m).collect()
    }

    /// Starts serving: one thread for all of this container's ports (see `start`).
    pub fn serve(self, upstream: Upstream) -> Result<Serving> {
        start(self.listeners, upstream)
    }
}

/// The relay thread, while it serves. Dropped, it stops the thread and waits for it: the host
/// ports are free again (a container started again by its restart policy binds them anew,
/// its new network namespace behind them).
pub struct Serving {
    /// Closed to tell the thread to stop.
    stop: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where the relay's connections go.
pub enum Upstream {
    /// `127.0.0.1:PORT` inside this network namespace (`/proc/PID/ns/net`).
    Netns(File),
    /// `ADDRESS:PORT`, from the host.
    Addr(Ipv4Addr),
}

/// Starts the relay thread.
pub fn start(listeners: Vec<(PortMapping, Front)>, upstream: Upstream) -> Result<Serving> {
    if listeners.is_empty() {
        return Ok(Serving {
            stop: None,
            thread: None,
        });
    }
    raise_fd_limit();
    for (_, l) in &listeners {
        l.set_nonblocking()
            .context("making a listening socket non-blocking")?;
    }
    let (stopped, stop) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .context("creating the port relay's stop pipe")?;
    let thread = std::thread::Builder::new()
        .name("minibox-relay".into())
        .stack_size(256 << 10)
        .spawn(move || {
            let target = match &upstream {
                Upstream::Netns(netns) => {
                    // setns moves only this thread: the sockets it creates are the container's.
                    if let Err(e) = nix::sched::setns(netns.as_fd(), CloneFlags::CLONE_NEWNET) {
                        say!(
                            "minibox: cannot serve published ports: setns into the container: {e}"
                        );
                        return;
                    }
                    Ipv4Addr::LOCALHOST
                }
                Upstream::Addr(ip) => *ip,
            };
            if let Err(e) = Relay::new(listeners, target, stopped).and_then(|mut r| r.run()) {
                say!("minibox: the port relay stopped: {e:#}");
            }
        })
        .context("starting the port relay thread")?;
    Ok(Serving {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Each connection holds two descriptors: let the supervisor hold as many as it may (the
/// container does not inherit this: it was cloned before).
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Non-blocking for this call only, and no SIGPIPE on a closed peer.
const NOWAIT: MsgFlags = MsgFlags::MSG_DONTWAIT.union(MsgFlags::MSG_NOSIGNAL);

/// Tokens of the listening sockets count down from here; connections' are `slot * 2 + side`,
/// UDP flows' `FLOW_TOKEN + slot`.
const LISTENER_TOKEN: u64 = u64::MAX;
const FLOW_TOKEN: u64 = 1 << 62;
/// The stop pipe's: below every flow's, above every connection's.
const STOP_TOKEN: u64 = FLOW_TOKEN - 1;

/// One UDP client of a published port: its datagrams go out through `upstream`, which is
/// connected to the container's port, and what comes back goes to `client`.
struct Flow {
    front: usize,
    client: SocketAddr,
    upstream: UdpSocket,
    last: Instant,
}

/// One relayed connection. Side 0 is the client, side 1 the container.
struct Conn {
    sides: [OwnedFd; 2],
    connected: bool,
    /// Bytes read from side `i`, not yet written to the other.
    pending: [Vec<u8>; 2],
    /// Side `i` said end of file.
    eof: [bool; 2],
    /// ... and that was passed on (a half-close of the other side).
    passed: [bool; 2],
    /// Side `i` hung up (its end of file may be behind the bytes still to read).
    hup: [bool; 2],
}

struct Relay {
    epoll: Epoll,
    listeners: Vec<(u16, Front)>,
    target: Ipv4Addr,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    flows: Vec<Option<Flow>>,
    free_flows: Vec<usize>,
    /// (listener, client) → its flow's slot.
    by_client: HashMap<(usize, SocketAddr), usize>,
    swept: Instant,
    scratch: Vec<u8>,
    /// Readable (end of file) once `Serving` is dropped: the relay stops.
    _stop: OwnedFd,
}

enum Step {
    Open,
    Close,
}

impl Relay {
    fn new(listeners: Vec<(PortMapping, Front)>, target: Ipv4Addr, stop: OwnedFd) -> Result<Relay> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("epoll_create")?;
        epoll
            .add(
                stop.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, STOP_TOKEN),
            )
            .context("epoll_ctl")?;
        for (i, (_, l)) in listeners.iter().enumerate() {
            epoll
                .add(
                    l.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, LISTENER_TOKEN - i as u64),
                )
                .context("epoll_ctl")?;
        }
        Ok(Relay {
            epoll,
            listeners: listeners
                .into_iter()
                .map(|(m, l)| (m.container_port, l))
                .collect(),
            target,
            conns: vec![],
            free: vec![],
            flows: vec![],
            free_flows: vec![],
            by_client: HashMap::new(),
            swept: Instant::now(),
            scratch: vec![0; 64 << 10],
            _stop: stop,
        })
    }

    fn run(&mut self) -> Result<()> {
        let mut events = vec![EpollEvent::empty(); 256];
        loop {
            // With UDP flows, wake now and then to forget the idle ones.
            let timeout = match self.by_client.is_empty() {
                true => EpollTimeout::NONE,
                false => EpollTimeout::from(5000u16),
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e).context("epoll_wait"),
            };
            for ev in &events[..n] {
                let token = ev.data();
                if token == STOP_TOKEN {
                    return Ok(());
                }
                if token > LISTENER_TOKEN - self.listeners.len() as u64 {
                    let i = (LISTENER_TOKEN - token) as usize;
                    match self.listeners[i].1 {
                        Front::Tcp(_) => self.accept_all(i),
                        Front::Udp(_) => self.datagrams_in(i),
                    }
                } else if token >= FLOW_TOKEN {
                    self.datagrams_back((token - FLOW_TOKEN) as usize);
                } else {
                    let (slot, side) = ((token / 2) as usize, (token % 2) as usize);
                    self.pump(slot, side, ev.events());
                }
            }
            if self.swept.elapsed() >= Duration::from_secs(1) {
                self.forget_idle_flows(UDP_IDLE);
            }
        }
    }

    /// Every datagram waiting on UDP listener `i`, each sent on through its client's flow.
    fn datagrams_in(&mut self, i: usize) {
        loop {
            let Front::Udp(socket) = &self.listeners[i].1 else {
                return;
            };
            let (n, client) = match socket.recv_from(&mut self.scratch) {
                Ok(got) => got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // Anything else waits for the next wake-up (a loop here could spin for ever).
                Err(_) => return,
            };
            let Some(slot) = self.flow_of(i, client) else {
                continue; // no flow could be made: the datagram is dropped, as UDP allows
            };
            if let Some(flow) = self.flows[slot].as_mut() {
                flow.last = Instant::now();
                let _ = flow.upstream.send(&self.scratch[..n]);
            }
        }
    }

    /// The flow of `client` on listener `i`, made on its first datagram.
    fn flow_of(&mut self, i: usize, client: SocketAddr) -> Option<usize> {
        if let Some(&slot) = self.by_client.get(&(i, client)) {
            return Some(slot);
        }
        if self.by_client.len() >= MAX_FLOWS {
            self.forget_idle_flows(UDP_IDLE / 9);
            if self.by_client.len() >= MAX_FLOWS {
                return None;
            }
        }
        // Made by this thread: in the container's network namespace when it serves one.
        let upstream = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        upstream.connect((self.target, self.listeners[i].0)).ok()?;
        upstream.set_nonblocking(true).ok()?;
        let slot = match self.free_flows.pop() {
            Some(s) => s,
            None => {
                self.flows.push(None);
                self.flows.len() - 1
            }
        };
        let token = EpollEvent::new(EpollFlags::EPOLLIN, FLOW_TOKEN + slot as u64);
        if self.epoll.add(&upstream, token).is_err() {
            self.free_flows.push(slot);
            return None;
        }
        self.flows[slot] = Some(Flow {
            front: i,
            client,
            upstream,
            last: Instant::now(),
        });
        self.by_client.insert((i, client), slot);
        Some(slot)
    }

    /// The container's answers on flow `slot`, each sent to its client from the host port.
    fn datagrams_back(&mut self, slot: usize) {
        let Some(flow) = self.flows.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let Front::Udp(front) = &self.listeners[flow.front].1 else {
            return;
        };
        loop {
            match flow.upstream.recv(&mut self.scratch) {
                Ok(n) => {
                    flow.last = Instant::now();
                    let _ = front.send_to(&self.scratch[..n], flow.client);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                // Nothing listened there (ICMP port unreachable), or an interrupted call.
                Err(e)
                    if e.kind() == std::io::ErrorKind::ConnectionRefused
                        || e.kind() == std::io::ErrorKind::Interrupted =>
                {
                    continue
                }
                Err(_) => return,
            }
        }
    }

    /// Forgets the flows idle for `idle` or longer (closing a socket takes it out of epoll).
    fn forget_idle_flows(&mut self, idle: Duration) {
        self.swept = Instant::now();
        for slot in 0..self.flows.len() {
            let stale = self.flows[slot]
                .as_ref()
                .is_some_and(|f| f.last.elapsed() >= idle);
            if stale {
                if let Some(f) = self.flows[slot].take() {
                    self.by_client.remove(&(f.front, f.client));
                }
                self.free_flows.push(slot);
            }
        }
    }

    /// Takes every waiting client of listener `i`, and starts its connection upstream.
    fn accept_all(&mut self, i: usize) {
        loop {
            let (port, Front::Tcp(listener)) = &self.listeners[i] else {
                return;
            };
            let port = *port;
            // Non-blocking from the start (one call less per connection than setting it).
            let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
            let client = match accept4(listener, flags) {
                Ok(fd) => fd,
                Err(Errno::EAGAIN) => return,
                Err(Errno::EMFILE | Errno::ENFILE) => {
                    // Out of descriptors: the client waits in the backlog; try again shortly.
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    return;
                }
                Err(_) => continue,
            };
            let _ = nix::sys::socket::setsockopt(&client, sockopt::TcpNoDelay, &true);
            let Ok(upstream) = self.connect_upstream(port) else {
                // Nothing listens there (yet): the client's connection is closed.
                continue;
            };
            let conn = Conn {
                sides: [client, upstream],
                connected: false,
                pending: [vec![], vec![]],
                eof: [false; 2],
                passed: [false; 2],
                hup: [false; 2],
            };
            let slot = match self.free.pop() {
                Some(s) => s,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            let flags = EpollFlags::EPOLLIN
                | EpollFlags::EPOLLOUT
                | EpollFlags::EPOLLRDHUP
                | EpollFlags::EPOLLET;
            let added = conn.sides.iter().enumerate().all(|(side, fd)| {
                self.epoll
                    .add(fd, EpollEvent::new(flags, slot as u64 * 2 + side as u64))
                    .is_ok()
            });
            if added {
                self.conns[slot] = Some(conn);
            } else {
                self.free.push(slot);
            }
        }
    }

    /// A non-blocking connect from this thread's network namespace.
    fn connect_upstream(&self, port: u16) -> nix::Result<OwnedFd> {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let _ = nix::sys::socket::setsockopt(&fd, sockopt::TcpNoDelay, &true);
        let addr = SockaddrIn::from(std::net::SocketAddrV4::new(self.target, port));
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) | Err(Errno::EINPROGRESS) => Ok(fd),
            Err(e) => Err(e),
        }
    }

    /// Moves what `events` on `side` of connection `slot` let move; closes it when both ways
    /// are done or either side broke.
    fn pump(&mut self, slot: usize, side: usize, events: EpollFlags) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let step = pump_conn(conn, &mut self.scratch, side, events);
        if let Step::Close = step {
            // Closing the descriptors takes them out of the epoll set.
            self.conns[slot] = None;
            self.free.push(slot);
        }
    }
}

/// Only the ways `events` concern are tried (a readable side: from it; a writable side: what
/// waits for it, then more from the other), so a wake-up costs no read that can only say
/// EAGAIN; a short read ends a way's turn (the socket was drained: new bytes make a new edge)
/// unless the peer hung up (its end of file must be seen now: no edge follows).
fn pump_conn(conn: &mut Conn, scratch: &mut [u8], side: usize, events: EpollFlags) -> Step {
    let mut ways = [false; 2];
    let hangup = events.intersects(EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP);
    conn.hup[side] |= hangup;
    if events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLERR) || hangup {
        ways[side] = true;
    }
    if events.contains(EpollFlags::EPOLLOUT) {
        ways[1 - side] = true;
    }
    if !conn.connected {
        // The upstream connect ends with an edge on its side: writable, or an error. Until
        // then the client's bytes wait (both ways are tried once it is connected).
        let done = EpollFlags::EPOLLOUT | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP;
        if side != 1 || !events.intersects(done) {
            return Step::Open;
        }
        match getsockopt(&conn.sides[1], sockopt::SocketError) {
            Ok(0) if events.contains(EpollFlags::EPOLLOUT) => {}
            Ok(0) => return Step::Open,
            _ => return Step::Close,
        }
        conn.connected = true;
        // What the client sent while we connected is waiting: both ways now.
        ways = [true; 2];
    }
    for (from, &wanted) in ways.iter().enumerate() {
        if !wanted {
            continue;
        }
        let to = 1 - from;
        let (src, dst) = (conn.sides[from].as_raw_fd(), conn.sides[to].as_raw_fd());
        // What the other side did not take last time goes first.
        while !conn.pending[from].is_empty() {
            match send(dst, &conn.pending[from], NOWAIT) {
                Ok(n) => {
                    conn.pending[from].drain(..n);
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => return Step::Close,
            }
        }
        while conn.pending[from].is_empty() && !conn.eof[from] {
            match recv(src, scratch, NOWAIT) {
                Ok(0) => conn.eof[from] = true,
                Ok(n) => {
                    let mut sent = 0;
                    while sent < n {
                        match send(dst, &scratch[sent..n], NOWAIT) {
                            Ok(m) => sent += m,
                            Err(Errno::EINTR) => continue,
                            Err(Errno::EAGAIN) => break,
                            Err(_) => return Step::Close,
                        }
                    }
                    if sent < n {
                        conn.pending[from].extend_from_slice(&scratch[sent..n]);
                    } else if n < scratch.len() && !conn.hup[from] {
                        break;
                    }
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => return Step::Close,
            }
        }
        if conn.eof[from] && conn.pending[from].is_empty() && !conn.passed[from] {
            conn.passed[from] = true;
            // The other way done too: the connection is closed next, which says it.
            if !conn.passed[to] {
                let _ = shutdown(dst, Shutdown::Write);
            }
        }
    }
    if conn.passed[0] && conn.passed[1] {
        return Step::Close;
    }
    Step::Open
}

/// Kept for the tests: a connection to a published port, through whatever serves it.
#[allow(dead_code)]
fn connect_to(addr: IpAddr, port: u16) -> std::io::Result<TcpStream> {
    TcpStream::connect(SocketAddr::new(addr, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// An echo server on loopback, the relay in front of it, many idle clients, then one more
    /// that must be answered at once.
    #[test]
    fn idle_clients_lock_no_one_out() {
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let backend_port = backend.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in backend.incoming().flatten() {
                std::thread::spawn(move || {
                    let (mut r, mut w) = (&s, &s);
                    let _ = std::io::copy(&mut r, &mut w);
                });
            }
        });
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let front_port = front.local_addr().unwrap().port();
        let mapping = PortMapping {
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_port: front_port,
            container_port: backend_port,
            proto: Proto::Tcp,
        };
        let _serving = start(
            vec![(mapping, Front::Tcp(front))],
            Upstream::Addr(Ipv4Addr::LOCALHOST),
        )
        .unwrap();
        let idle: Vec<TcpStream> = (0..300)
            .map(|_| connect_to(IpAddr::V4(Ipv4Addr::LOCALHOST), front_port).unwrap())
            .collect();
        // Each idle client is relayed end to end (one byte there and back), then waits: what is
        // timed below is a new client among them, not the relay's backlog of accepts.
        for mut c in &idle {
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.write_all(b"x").unwrap();
            let mut one = [0u8; 1];
            c.read_exact(&mut one).unwrap();
        }
        let began = Instant::now();
        let mut c = connect_to(IpAddr::V4(Ipv4Addr::LOCALHOST), front_port).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "{:?}",
            began.elapsed()
        );
        drop(idle);
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
