//! `minibox ui [--listen ADDR:PORT]`: a small, read-only web page of this machine's containers,
//! their usage refreshed in place, each opening its picture (`show`'s, redrawn live).
//!
//! HTTP comes from `tiny_http`: synchronous, four small dependencies, no async runtime — and
//! only this command reaches it. Requests are answered one at a time on this thread; every
//! answer is a read of the state directory, the cgroup files and /proc, nothing is ever written.
//!
//! Who may read it: on a loopback address (the default), root and the user who ran `sudo
//! minibox ui` — the owner of the connecting socket is looked up in /proc/net/tcp, so another
//! user of the machine is refused — and only with a loopback `Host` (a web page elsewhere
//! cannot rebind a name of its own to 127.0.0.1 and read it). Anyone else, and everyone when
//! listening on another address, must present the token printed at start (`?token=...`, or an
//! `Authorization: Bearer ...` header).

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;
use tiny_http::{Header, Method, Request, Response, Server};

use super::facts::{self, CpuWindow};
use super::{page, svg};
use crate::kernel::cgroup;
use crate::store::state::{now_ms, ContainerState, Status, Store};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7780";

/// One row of the list (`/api/containers`).
#[derive(Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub short_id: String,
    pub name: String,
    pub image: Option<String>,
    pub status: String,
    pub running: bool,
    pub pid: Option<i32>,
    pub memory_used: Option<u64>,
    pub memory_limit: Option<u64>,
    pub cpu_percent: Option<f64>,
    pub cpu_limit: Option<f64>,
    pub pids: Option<u64>,
    pub pids_limit: Option<u64>,
    pub ports: Vec<String>,
    pub network: String,
}

struct Ui<'a> {
    store: &'a Store,
    bound: SocketAddr,
    token: String,
    /// Who may read without the token (loopback only): root, and the user behind sudo.
    trusted: Option<Vec<u32>>,
    /// Each container's last CPU reading, for its use since.
    cpu: HashMap<String, (u64, Instant)>,
    /// Each container's network mode (from its config.json; it does not change).
    networks: HashMap<String, String>,
}

/// `minibox ui`
pub fn serve(store: &Store, listen: &str) -> Result<i32> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        anyhow!("--listen {listen:?}: give an address and a port, such as {DEFAULT_LISTEN}")
    })?;
    let token = new_token()?;
    let server =
        Server::http(addr).map_err(|e| anyhow!("--listen {listen}: cannot listen there: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .context("the address minibox ui listens on")?;
    let sudo_uid = std::env::var("SUDO_UID").ok().and_then(|u| u.parse().ok());
    let trusted = addr
        .ip()
        .is_loopback()
        .then(|| [0].into_iter().chain(sudo_uid).collect::<Vec<u32>>());
    let url = format!("http://{bound}/");
    match &trusted {
        Some(_) => {
            out!("minibox ui: {url}  (read-only; Ctrl-C stops it)");
            out!(
                "served to root{} on this machine; anyone else needs the token: {url}?token={token}",
                sudo_uid.map_or(String::new(), |u| format!(" and uid {u}"))
            );
        }
        None => {
            out!("minibox ui: {url}?token={token}  (read-only; Ctrl-C stops it)");
            out!("not a loopback address: every request needs the token (?token=... or Authorization: Bearer ...)");
        }
    }
    let _ = std::io::stdout().flush();
    let mut ui = Ui {
        store,
        bound,
        token,
        trusted,
        cpu: HashMap::new(),
        networks: HashMap::new(),
    };
    for request in server.incoming_requests() {
        ui.answer(request);
    }
    Ok(0)
}

/// 128 random bits, as hex.
fn new_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom for the ui's token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// An answer: status, content type, body, and the CSP of an HTML page's own script.
struct Answer {
    status: u16,
    kind: &'static str,
    body: String,
    script: Option<&'static str>,
}

impl Answer {
    fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            kind: "text/plain; charset=utf-8",
            body: body.into(),
            script: None,
        }
    }
}

impl Ui<'_> {
    fn answer(&mut self, request: Request) {
        let answer = match self.refusal(&request) {
            Some(no) => no,
            None => match request.method() {
                Method::Get | Method::Head => self.route(request.url()),
                _ => Answer::text(405, "minibox ui is read-only: GET only\n"),
            },
        };
        let head = *request.method() == Method::Head;
        let csp = page::csp(answer.script);
        let mut response = Response::from_string(if head { String::new() } else { answer.body })
            .with_status_code(answer.status);
        for (k, v) in [
            ("Content-Type", answer.kind),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
            ("Content-Security-Policy", csp.as_str()),
        ] {
            if let Ok(h) = Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                response.add_header(h);
            }
        }
        // A client that went away is no concern of ours.
        let _ = request.respond(response);
    }

    /// Why this request is refused, if it is.
    fn refusal(&self, request: &Request) -> Option<Answer> {
        let header = |name: &str| {
            request
                .headers()
                .iter()
                .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str().to_string())
        };
        let given = query_param(request.url(), "token")
            .or_else(|| {
                header("Authorization")
                    .and_then(|a| a.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
            })
            .or_else(|| header("X-Minibox-Token"));
        if given.is_some_and(|t| same(&t, &self.token)) {
            return None;
        }
        let needs_token = Answer::text(
            403,
            "minibox ui: this request needs the token minibox ui printed when it started: add ?token=TOKEN to the address\n",
        );
        let Some(trusted) = &self.trusted else {
            return Some(needs_token);
        };
        if !host_is_loopback(header("Host").as_deref(), self.bound.port()) {
            return Some(Answer::text(
                403,
                "minibox ui: the Host header names no loopback address: open http://127.0.0.1:PORT/ itself (or add the token)\n",
            ));
        }
        let owner = request
            .remote_addr()
            .and_then(|peer| socket_owner(*peer, self.bound));
        match owner {
            Some(uid) if trusted.contains(&uid) => None,
            _ => Some(needs_token),
        }
    }

    fn route(&mut self, url: &str) -> Answer {
        let path = url.split('?').next().unwrap_or("");
        if path == "/" {
            return Answer {
                status: 200,
                kind: "text/html; charset=utf-8",
                body: page::list_page(),
                script: Some(page::LIST_SCRIPT),
            };
        }
        if path == "/api/containers" {
            let rows = self.rows();
            return Answer {
                status: 200,
                kind: "application/json",
                body: serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into()),
                script: None,
            };
        }
        let (id, what) = if let Some(rest) = path.strip_prefix("/api/c/") {
            (rest, "json")
        } else if let Some(rest) = path.strip_prefix("/c/") {
            match rest.strip_suffix(".svg") {
                Some(id) => (id, "svg"),
                None => (rest, "page"),
            }
        } else {
            return Answer::text(404, "minibox ui: no such page\n");
        };
        let Some(c) = self.container(id) else {
            return Answer::text(404, "minibox ui: no such container\n");
        };
        let f = match self.facts(&c) {
            Ok(f) => f,
            Err(e) => return Answer::text(410, format!("minibox ui: {e:#}\n")),
        };
        match what {
            "json" => Answer {
                status: 200,
                kind: "application/json",
                body: serde_json::to_string(&f).unwrap_or_else(|_| "{}".into()),
                script: None,
            },
            "svg" => Answer {
                status: 200,
                kind: "image/svg+xml",
                body: svg::render(&f),
                script: None,
            },
            _ => Answer {
                status: 200,
                kind: "text/html; charset=utf-8",
                body: page::picture_page(&f),
                script: Some(page::PICTURE_SCRIPT),
            },
        }
    }

    /// A container by its full id (what the list links to), as it is now.
    fn container(&self, id: &str) -> Option<ContainerState> {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return None;
        }
        self.store
            .list()
            .ok()?
            .into_iter()
            .find(|c| c.id == id)
            .map(ContainerState::observed)
    }

    fn facts(&mut self, c: &ContainerState) -> Result<facts::Facts> {
        let window = match self.cpu.get(&c.id) {
            Some(&(usec, at)) => CpuWindow::Since { usec, at },
            None => CpuWindow::None,
        };
        let f = facts::collect(self.store, c, window)?;
        if let Some(usec) = f.cgroup.as_ref().and_then(|g| g.cpu_usec) {
            self.cpu.insert(c.id.clone(), (usec, Instant::now()));
        }
        Ok(f)
    }

    /// Every container, with what its cgroup counts now.
    fn rows(&mut self) -> Vec<Row> {
        let now = now_ms();
        let all = self.store.list().unwrap_or_default();
        self.cpu.retain(|id, _| all.iter().any(|c| &c.id == id));
        all.into_iter()
            .map(ContainerState::observed)
            .map(|c| self.row(c, now))
            .collect()
    }

    fn row(&mut self, c: ContainerState, now: u64) -> Row {
        let running = c.status == Status::Running && c.pid.is_some_and(|p| p.is_alive());
        let network = self
            .networks
            .entry(c.id.clone())
            .or_insert_with(|| network_of(self.store, &c.id))
            .clone();
        let mut row = Row {
            short_id: c.short_id().to_string(),
            id: c.id.clone(),
            name: c.name.clone(),
            image: c.image.as_ref().map(|i| i.reference.clone()),
            status: status_words(&c, now),
            running,
            pid: c.pid.filter(|_| running).map(|p| p.pid),
            memory_used: None,
            memory_limit: None,
            cpu_percent: None,
            cpu_limit: None,
            pids: None,
            pids_limit: None,
            ports: if running {
                c.ports.iter().map(|p| p.display()).collect()
            } else {
                vec![]
            },
            network,
        };
        let Some(cg) = c
            .cgroup
            .as_ref()
            .filter(|_| running)
            .and_then(cgroup::reopen)
        else {
            return row;
        };
        let usage = cg.usage();
        let (memory, cpus, pids) = facts::limits_of(&cg.settings().into_iter().collect());
        row.memory_used = usage.memory_current;
        row.memory_limit = memory;
        row.cpu_limit = cpus;
        row.pids_limit = pids;
        row.pids = facts::pids_current(cg.as_ref());
        if let Some(usec) = usage.cpu_usec {
            if let Some(&(before, at)) = self.cpu.get(&c.id) {
                let wall = at.elapsed().as_micros() as f64;
                if wall > 0.0 {
                    row.cpu_percent = Some(usec.saturating_sub(before) as f64 * 100.0 / wall);
                }
            }
            self.cpu.insert(c.id.clone(), (usec, Instant::now()));
        }
        row
    }
}

fn status_words(c: &ContainerState, now: u64) -> String {
    use crate::cli::lifecycle::human_duration;
    match c.status {
        Status::Created => "created".into(),
        Status::Running => format!(
            "up {}",
            human_duration(now.saturating_sub(c.started_ms.unwrap_or(now))).to_lowercase()
        ),
        Status::Exited => match c.exit_code {
            Some(code) => format!("exited ({code})"),
            None => "exited".into(),
        },
    }
}

fn network_of(store: &Store, id: &str) -> String {
    let path = store.dir(id).join(crate::store::state::CONFIG_FILE);
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v["annotations"][crate::model::oci::annotations::ANNOTATION_NETWORK]
                .as_str()
                .map(String::from)
        })
        .unwrap_or_else(|| "private".into())
}

/// `name`'s value in a URL's query, percent-decoding nothing (tokens are hex).
fn query_param(url: &str, name: &str) -> Option<String> {
    url.split_once('?')?.1.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A `Host` header that names this machine's loopback: `127.0.0.1:PORT`, `localhost:PORT`,
/// `[::1]:PORT` (any 127.x address too).
pub fn host_is_loopback(host: Option<&str>, port: u16) -> bool {
    let Some(host) = host else { return false };
    let (name, given) = match host.rsplit_once(':') {
        Some((n, p)) if !n.ends_with(':') && !p.contains(']') => (n, p.parse::<u16>().ok()),
        _ => (host, None),
    };
    if given.is_some_and(|p| p != port) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The uid owning the socket at `peer` connected to `ours`, from /proc/net/tcp (or tcp6): the
/// user behind a loopback connection.
pub fn socket_owner(peer: SocketAddr, ours: SocketAddr) -> Option<u32> {
    let find = |file: &str, local: &str, remote: &str| -> Option<u32> {
        let table = std::fs::read_to_string(file).ok()?;
        owner_in(&table, local, remote)
    };
    match (peer, ours) {
        (SocketAddr::V4(p), SocketAddr::V4(o)) => find(
            "/proc/net/tcp",
            &hex_v4(p.ip(), p.port()),
            &hex_v4(o.ip(), o.port()),
        )
        // A dual-stack client socket shows the IPv4 addresses mapped into IPv6.
        .or_else(|| {
            find(
                "/proc/net/tcp6",
                &hex_v6(&p.ip().to_ipv6_mapped(), p.port()),
                &hex_v6(&o.ip().to_ipv6_mapped(), o.port()),
            )
        }),
        (SocketAddr::V6(p), SocketAddr::V6(o)) => find(
            "/proc/net/tcp6",
            &hex_v6(p.ip(), p.port()),
            &hex_v6(o.ip(), o.port()),
        ),
        _ => None,
    }
}

/// In a /proc/net/tcp table, the uid of the socket from `local` to `remote`.
pub fn owner_in(table: &str, local: &str, remote: &str) -> Option<u32> {
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1)?.eq_ignore_ascii_case(local) && f.get(2)?.eq_ignore_ascii_case(remote))
            .then(|| f.get(7)?.parse().ok())
            .flatten()
    })
}

/// The kernel prints each 32-bit word of an address as it lies in memory (little-endian here),
/// then the port in hex: 127.0.0.1:80 is `0100007F:0050`.
fn hex_v4(ip: &std::net::Ipv4Addr, port: u16) -> String {
    format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip.octets()))
}

fn hex_v6(ip: &std::net::Ipv6Addr, port: u16) -> String {
    let o = ip.octets();
    let words: String = o
        .chunks(4)
        .map(|w| format!("{:08X}", u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .collect();
    format!("{words}:{port:04X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_host_header_passes() {
        assert!(host_is_loopback(Some("127.0.0.1:7780"), 7780));
        assert!(host_is_loopback(Some("localhost:7780"), 7780));
        assert!(host_is_loopback(Some("[::1]:7780"), 7780));
        assert!(host_is_loopback(Some("127.0.0.1"), 7780));
        assert!(!host_is_loopback(Some("127.0.0.1:8000"), 7780));
        assert!(!host_is_loopback(Some("evil.example:7780"), 7780));
        assert!(!host_is_loopback(Some("localhost.evil.example:7780"), 7780));
        assert!(!host_is_loopback(Some("10.0.0.1:7780"), 7780));
        assert!(!host_is_loopback(None, 7780));
    }

    #[test]
    fn the_owner_of_a_loopback_connection_is_read_from_the_tcp_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1E64 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:D431 0100007F:1E64 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1
   2: 0100007F:1E64 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
";
        let us: SocketAddr = "127.0.0.1:7780".parse().unwrap();
        let client: SocketAddr = "127.0.0.1:54321".parse().unwrap();
        let (SocketAddr::V4(c), SocketAddr::V4(u)) = (client, us) else {
            unreachable!()
        };
        assert_eq!(hex_v4(c.ip(), c.port()), "0100007F:D431");
        assert_eq!(
            owner_in(table, &hex_v4(c.ip(), c.port()), &hex_v4(u.ip(), u.port())),
            Some(1000)
        );
        assert_eq!(owner_in(table, "0100007F:AAAA", "0100007F:1E64"), None);
        let mapped = std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped();
        assert_eq!(hex_v6(&mapped, 80), "0000000000000000FFFF00000100007F:0050");
    }

    #[test]
    fn tokens_are_compared_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert_eq!(
            query_param("/c/x?a=1&token=ff", "token").as_deref(),
            Some("ff")
        );
        assert_eq!(query_param("/c/x", "token"), None);
    }
}
