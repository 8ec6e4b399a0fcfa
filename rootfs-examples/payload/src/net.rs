//! Network subcommands: a tiny HTTP server, a TCP echo server and a TCP
//! connect probe, for testing network namespaces and port forwarding.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket,
};
use std::thread;
use std::time::Duration;

use crate::names::describe;
use crate::{exit, outln, parse_arg, Error, Result};

/// Longest a single read/write may stall on an HTTP connection.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest HTTP request head (request line + headers) accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Timeout of `connect`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// `http PORT`: answers every request with body `payload PORT`.
pub fn http(args: &[&OsStr]) -> Result {
    let port: u16 = parse_arg("PORT", args[0])?;
    let listener = listen(port)?;
    let body = format!("payload {port}");
    serve(listener, "http", move |stream| answer_http(stream, &body))
}

/// `echo PORT`: sends back everything a client sends, until it half-closes
/// the connection; then half-closes our side too.
pub fn echo(args: &[&OsStr]) -> Result {
    let port: u16 = parse_arg("PORT", args[0])?;
    let listener = listen(port)?;
    serve(listener, "echo", echo_back)
}

/// `udp-echo PORT`: prints `listening`, then answers each datagram with `udp PORT: ` and the
/// datagram, to whoever sent it.
pub fn udp_echo(args: &[&OsStr]) -> Result {
    let port: u16 = parse_arg("PORT", args[0])?;
    let socket = bind_udp(port)?;
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = socket
            .recv_from(&mut buf)
            .map_err(|err| Error::io("recv_from", &err))?;
        let mut answer = format!("udp {port}: ").into_bytes();
        answer.extend_from_slice(&buf[..n]);
        socket
            .send_to(&answer, from)
            .map_err(|err| Error::io("send_to", &err))?;
    }
}

/// `connect HOST:PORT`: prints `connected`, or `failed: ERROR` and exits 1.
pub fn connect(args: &[&OsStr]) -> Result {
    let target = args[0]
        .to_str()
        .ok_or_else(|| Error::Usage(format!("invalid HOST:PORT {:?}", args[0])))?;
    match try_connect(target) {
        Ok(_) => outln!("connected"),
        Err(reason) => {
            outln!("failed: {reason}")?;
            exit(1)
        }
    }
}

/// Connects to each address `target` resolves to until one succeeds.
fn try_connect(target: &str) -> std::result::Result<TcpStream, String> {
    let addresses = addresses_of(target)?;
    let mut last_error = String::from("no address found");
    for address in addresses {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(err) => last_error = describe(&err),
        }
    }
    Err(last_error)
}

/// `HOST:PORT` as addresses: an IP as it is, a name through /etc/hosts only (this static
/// program has no NSS: it reads the file as libc's `files` backend does).
fn addresses_of(target: &str) -> std::result::Result<Vec<SocketAddr>, String> {
    if let Ok(addrs) = target.to_socket_addrs().map(|a| a.collect::<Vec<_>>()) {
        if target.parse::<SocketAddr>().is_ok() {
            return Ok(addrs);
        }
    }
    let (host, port) = target
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid HOST:PORT {target:?}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid port in {target:?}"))?;
    let found = hosts_lookup(host).map_err(|err| describe(&err))?;
    if found.is_empty() {
        return Err(format!("{host}: not in /etc/hosts"));
    }
    Ok(found
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

/// Every address /etc/hosts gives `name` (case-insensitive, in file order).
fn hosts_lookup(name: &str) -> io::Result<Vec<IpAddr>> {
    let text = std::fs::read_to_string("/etc/hosts")?;
    let mut found = vec![];
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        if words.any(|w| w.eq_ignore_ascii_case(name)) && !found.contains(&ip) {
            found.push(ip);
        }
    }
    Ok(found)
}

/// `resolve NAME`: prints each address /etc/hosts gives NAME, or `unresolved` and exits 1.
pub fn resolve(args: &[&OsStr]) -> Result {
    let name = args[0]
        .to_str()
        .ok_or_else(|| Error::Usage(format!("invalid NAME {:?}", args[0])))?;
    let found = hosts_lookup(name).map_err(|err| Error::io("/etc/hosts", &err))?;
    if found.is_empty() {
        outln!("unresolved")?;
        exit(1)
    }
    for ip in found {
        outln!("{ip}")?;
    }
    Ok(())
}

/// `ask HOST:PORT`: connects, half-closes, prints what the server sends (or `failed: ERROR`,
/// exit 1).
pub fn ask(args: &[&OsStr]) -> Result {
    let target = args[0]
        .to_str()
        .ok_or_else(|| Error::Usage(format!("invalid HOST:PORT {:?}", args[0])))?;
    let mut stream = match try_connect(target) {
        Ok(s) => s,
        Err(reason) => {
            outln!("failed: {reason}")?;
            exit(1)
        }
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(b"ask\n");
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = String::new();
    if let Err(err) = stream.read_to_string(&mut answer) {
        outln!("failed: {}", describe(&err))?;
        exit(1)
    }
    outln!("{}", answer.trim_end())
}

/// `peer PORT`: a server telling each client the address it sees it from: `peer IP:PORT`.
pub fn peer(args: &[&OsStr]) -> Result {
    let port: u16 = parse_arg("PORT", args[0])?;
    let listener = listen(port)?;
    serve(listener, "peer", |mut stream| {
        let who = stream.peer_addr()?;
        stream.write_all(format!("peer {who}\n").as_bytes())?;
        stream.shutdown(Shutdown::Write)
    })
}

/// Binds 0.0.0.0:`port` and prints `listening PORT` once clients can connect.
fn listen(port: u16) -> Result<TcpListener> {
    // A client that resets the connection must not kill the server through
    // SIGPIPE (which our start-up code leaves at its inherited action).
    // SAFETY: SIG_IGN is always a valid disposition.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(Error::last_os("signal SIGPIPE"));
    }
    // Many clients at once (a relay's idle connections): as many descriptors as allowed.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener =
        TcpListener::bind(address).map_err(|err| Error::io(format!("listen {port}"), &err))?;
    outln!("listening {port}")?;
    io::stdout()
        .flush()
        .map_err(|err| Error::io("stdout", &err))?;
    Ok(listener)
}

/// Accepts connections forever, running `handle` on a new thread for each.
/// Per-connection problems are reported on stderr and do not stop the server.
fn serve<F>(listener: TcpListener, name: &'static str, handle: F) -> Result
where
    F: Fn(TcpStream) -> io::Result<()> + Clone + Send + 'static,
{
    loop {
        let stream = match listener.accept() {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                // E.g. EMFILE: report, back off a little, keep serving.
                eprintln!("payload: {name}: accept: {}", describe(&err));
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let handle = handle.clone();
        let spawned = thread::Builder::new().spawn(move || {
            if let Err(err) = handle(stream) {
                eprintln!("payload: {name}: {}", describe(&err));
            }
        });
        if let Err(err) = spawned {
            eprintln!("payload: {name}: cannot start thread: {}", describe(&err));
        }
    }
}

/// Copies the client's bytes back to it as they arrive (no buffering of the
/// whole stream), then shuts down our sending side.
fn echo_back(stream: TcpStream) -> io::Result<()> {
    // `&TcpStream` implements both `Read` and `Write`.
    let (mut reader, mut writer) = (&stream, &stream);
    io::copy(&mut reader, &mut writer)?;
    stream.shutdown(Shutdown::Write)
}

/// Reads one request head and answers it with `body`.
fn answer_http(mut stream: TcpStream, body: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    if !read_head(&mut stream)? {
        // The client went away (or sent an oversized head): nothing to answer.
        return Ok(());
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         \r\n\
         {body}",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    // Close gracefully: half-close, then discard whatever the client still
    // sends (e.g. a request body) so the kernel does not reset the
    // connection and destroy the response before the client read it.
    stream.shutdown(Shutdown::Write)?;
    stream.set_read_timeout(Some(Duration::from_secs(1)))?;
    // Errors here (e.g. the timeout) no longer matter: the answer is out.
    let _ = io::copy(&mut stream, &mut io::sink());
    Ok(())
}

/// Reads until the blank line ending a request head. Returns `false` if the
/// client closes first or the head exceeds `MAX_HEAD` bytes.
fn read_head(stream: &mut TcpStream) -> io::Result<bool> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while head.len() <= MAX_HEAD {
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        // Only the new bytes, plus the 3 before them, can end the head.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if head[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `duo PORT SECS HOST:PORT`: an echo server on PORT (in a thread), and after SECS one `ask`
/// of HOST:PORT, printed as `asked ANSWER` (or `asked failed: ERROR`); serves on until killed.
pub fn duo(args: &[&OsStr]) -> Result {
    let port: u16 = parse_arg("PORT", args[0])?;
    let secs: f64 = parse_arg("SECS", args[1])?;
    let target = args[2]
        .to_str()
        .ok_or_else(|| Error::Usage(format!("invalid HOST:PORT {:?}", args[2])))?
        .to_string();
    let listener = listen(port)?;
    thread::spawn(move || serve(listener, "duo", echo_back));
    thread::sleep(Duration::from_secs_f64(secs));
    match try_connect(&target) {
        Ok(mut stream) => {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.write_all(b"ask\n");
            let _ = stream.shutdown(Shutdown::Write);
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            outln!("asked {}", answer.trim_end())?;
        }
        Err(reason) => outln!("asked failed: {reason}")?,
    }
    io::stdout()
        .flush()
        .map_err(|err| Error::io("stdout", &err))?;
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// `arp-claim IFACE IP`: what an ARP spoofer does. Five gratuitous ARP replies, broadcast from
/// IFACE, say IP is at IFACE's MAC. Needs a packet socket (CAP_NET_RAW). Prints `sent MAC`, or
/// `failed: ERRNO` and exits 1.
pub fn arp_claim(args: &[&OsStr]) -> Result {
    let iface = args[0]
        .to_str()
        .ok_or_else(|| Error::Usage(format!("invalid IFACE {:?}", args[0])))?;
    let ip: Ipv4Addr = parse_arg("IP", args[1])?;
    match send_arp_claims(iface, ip) {
        Ok(mac) => outln!("sent {mac}"),
        Err(err) => {
            outln!("failed: {}", describe(&err))?;
            exit(1)
        }
    }
}

fn send_arp_claims(iface: &str, ip: Ipv4Addr) -> io::Result<String> {
    let mac_text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))?;
    let mac: Vec<u8> = mac_text
        .trim()
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap_or(0))
        .collect();
    if mac.len() != 6 {
        return Err(io::Error::other(format!("{iface} has no MAC address")));
    }
    let name = std::ffi::CString::new(iface).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated name; the call only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    let arp = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, arp as i32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nothing else.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut frame = vec![0xffu8; 6]; // to everyone
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x08, 0x06]); // ARP
    frame.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 2]); // Ethernet/IPv4, reply
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&ip.octets());
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = arp;
    to.sll_ifindex = index as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    send_times(&sock, &frame, &to, Duration::from_millis(100))?;
    Ok(mac_text.trim().to_string())
}

/// `udp-forge SRC DST:PORT TEXT`: what an address forger does. Five UDP datagrams carrying
/// TEXT to DST:PORT, their IPv4 source SRC written by hand (a raw socket, CAP_NET_RAW). Prints
/// `sent`, or `failed: ERRNO` and exits 1.
pub fn udp_forge(args: &[&OsStr]) -> Result {
    let src: Ipv4Addr = parse_arg("SRC", args[0])?;
    let dst: std::net::SocketAddrV4 = parse_arg("DST:PORT", args[1])?;
    let text = args[2].as_encoded_bytes();
    match send_forged(src, dst, text) {
        Ok(()) => outln!("sent"),
        Err(err) => {
            outln!("failed: {}", describe(&err))?;
            exit(1)
        }
    }
}

fn send_forged(src: Ipv4Addr, dst: std::net::SocketAddrV4, text: &[u8]) -> io::Result<()> {
    // SAFETY: plain socket(2); the descriptor is owned below. IPPROTO_RAW implies IP_HDRINCL.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nothing else.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let total = (20 + 8 + text.len()) as u16;
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0x40, 0, 64, libc::IPPROTO_UDP as u8, 0, 0]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.ip().octets());
    packet.extend_from_slice(&4242u16.to_be_bytes());
    packet.extend_from_slice(&dst.port().to_be_bytes());
    packet.extend_from_slice(&((8 + text.len()) as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0]); // no UDP checksum (IPv4 allows it)
    packet.extend_from_slice(text);
    // SAFETY: sockaddr_in is plain data; zeroed is a valid value.
    let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    to.sin_family = libc::AF_INET as u16;
    to.sin_addr.s_addr = u32::from_ne_bytes(dst.ip().octets());
    send_times(&sock, &packet, &to, Duration::from_millis(50))
}

/// `udp-recv PORT SECS`: prints `listening`, then `from IP TEXT` for each datagram that comes
/// within SECS, then `done`.
pub fn udp_recv(args: &[&OsStr]) -> Result {
    let port: u16 = parse_arg("PORT", args[0])?;
    let secs: f64 = parse_arg("SECS", args[1])?;
    let socket = bind_udp(port)?;
    let end = std::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut buf = [0u8; 2048];
    while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            break;
        }
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            outln!("from {} {}", from.ip(), String::from_utf8_lossy(&buf[..n]))?;
        }
    }
    outln!("done")
}

/// `sniff IP SECS`: for SECS, counts the IPv4 packets addressed to IP that reach this
/// network namespace's interfaces (a packet socket, CAP_NET_RAW; our own outgoing ones are
/// not counted). Prints `seen N`, or `failed: ERRNO` and exits 1.
pub fn sniff(args: &[&OsStr]) -> Result {
    let ip: Ipv4Addr = parse_arg("IP", args[0])?;
    let secs: f64 = parse_arg("SECS", args[1])?;
    match count_packets_to(ip, Duration::from_secs_f64(secs)) {
        Ok(n) => outln!("seen {n}"),
        Err(err) => {
            outln!("failed: {}", describe(&err))?;
            exit(1)
        }
    }
}

fn count_packets_to(ip: Ipv4Addr, how_long: Duration) -> io::Result<usize> {
    let proto = (libc::ETH_P_IP as u16).to_be();
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, proto as i32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nothing else.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&sock);
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: tv outlives the call; the length is its own.
    unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let end = std::time::Instant::now() + how_long;
    let mut seen = 0;
    let mut buf = [0u8; 2048];
    while std::time::Instant::now() < end {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: buf and from outlive the call; the lengths are theirs.
        let n = unsafe {
            libc::recvfrom(
                raw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n >= 20 && from.sll_pkttype != libc::PACKET_OUTGOING && buf[16..20] == ip.octets() {
            seen += 1;
        }
    }
    Ok(seen)
}

/// Sends `bytes` to `to` (a socket address of its own type) five times, `gap` apart.
fn send_times<A>(
    sock: &std::os::fd::OwnedFd,
    bytes: &[u8],
    to: &A,
    gap: Duration,
) -> io::Result<()> {
    for _ in 0..5 {
        // SAFETY: bytes and to outlive the call; the lengths are theirs.
        let n = unsafe {
            libc::sendto(
                std::os::fd::AsRawFd::as_raw_fd(sock),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (to as *const A).cast(),
                std::mem::size_of::<A>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        thread::sleep(gap);
    }
    Ok(())
}

/// A UDP socket on PORT of every address; `listening` printed once it is.
fn bind_udp(port: u16) -> Result<UdpSocket> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))
        .map_err(|err| Error::io(format!("bind udp {port}"), &err))?;
    outln!("listening")?;
    io::stdout()
        .flush()
        .map_err(|err| Error::io("stdout", &err))?;
    Ok(socket)
}
