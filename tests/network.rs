//! Networking: `--network private|none|host` and `-p` published ports relayed into the
//! container's namespace. Root only; loopback addresses only.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// A detached container, removed (with -f) when dropped.
struct Detached {
    id: String,
}

impl Detached {
    fn start(r: &Rootfs, flags: &[&str], cmd: &[&str]) -> Detached {
        let out = minibox()
            .args(["run", "-d"])
            .args(flags)
            .arg(r.arg())
            .args(cmd)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        Detached {
            id: stdout(&out).trim().to_string(),
        }
    }

    /// The host port bound for `container_port`, from `minibox port`.
    fn host_port(&self, container_port: u16) -> u16 {
        let out = stdout(&minibox().args(["port", &self.id]).output().unwrap());
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{container_port}/tcp -> ")))
            .unwrap_or_else(|| panic!("{container_port} not published: {out}"));
        line.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn logs(&self) -> String {
        stdout(&minibox().args(["logs", &self.id]).output().unwrap())
    }

    fn wait_log(&self, needle: &str) {
        let start = Instant::now();
        while !self.logs().contains(needle) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{needle:?} never logged: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let _ = minibox().args(["rm", "-f", &self.id]).output();
    }
}

fn http_get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn the_hello_server_answers_through_a_published_port() {
    if !need_root() {
        return;
    }
    let rootfs = hello_rootfs();
    let out = minibox()
        .args([
            "run",
            "-d",
            "-p",
            "127.0.0.1::8080",
            "-e",
            "GREETING=Hello from minibox",
        ])
        .arg(&rootfs)
        .arg("/main")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let c = Detached {
        id: stdout(&out).trim().to_string(),
    };
    c.wait_log("Start listening...");
    let port = c.host_port(8080);
    let reply = http_get(port);
    assert!(
        reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with("Hello from minibox"),
        "{reply}"
    );
    let ps = stdout(&minibox().arg("ps").output().unwrap());
    assert!(ps.contains(&format!("127.0.0.1:{port}->8080/tcp")), "{ps}");
}

#[test]
fn two_hundred_concurrent_requests_are_all_answered() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let c = Detached::start(
        &r,
        &["-p", "127.0.0.1::9000"],
        &["/payload", "http", "9000"],
    );
    c.wait_log("listening 9000");
    let port = c.host_port(9000);
    let threads: Vec<_> = (0..200)
        .map(|_| std::thread::spawn(move || http_get(port)))
        .collect();
    let ok = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|r| r.ends_with("payload 9000"))
        .count();
    assert_eq!(ok, 200);
}

#[test]
fn ten_mebibytes_go_through_intact_both_ways_with_half_close() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let c = Detached::start(
        &r,
        &["-p", "127.0.0.1::7000"],
        &["/payload", "echo", "7000"],
    );
    c.wait_log("listening 7000");
    let port = c.host_port(7000);
    let data: Vec<u8> = (0..10 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&sent).unwrap();
        // Half-close: the echo server sees EOF, finishes, and closes its side.
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the relayed bytes differ");
}

#[test]
fn a_port_not_listened_on_yet_closes_cleanly_then_works() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let c = Detached::start(
        &r,
        &["-p", "127.0.0.1::9100"],
        &["/payload", "later", "2", "http", "9100"],
    );
    let port = c.host_port(9100);
    // Nobody listens inside yet: the connection is accepted, then closed without a reply.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\n\r\n");
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(reply.is_empty(), "{:?}", String::from_utf8_lossy(&reply));
    c.wait_log("listening 9100");
    assert!(http_get(port).ends_with("payload 9100"));
}

#[test]
fn a_published_port_in_use_is_refused_and_leaves_nothing() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    // A state root of its own, so other tests' containers do not count.
    let state = tempfile::tempdir().unwrap();
    let root = state.path().to_str().unwrap();
    let out = minibox()
        .args([
            "--root",
            root,
            "run",
            "-d",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            &r.arg(),
            "/payload",
            "sleep",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("is not free") && stderr(&out).lines().count() == 1,
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stdout(
            &minibox()
                .args(["--root", root, "ps", "-a", "-q"])
                .output()
                .unwrap()
        ),
        ""
    );
    assert_eq!(
        std::fs::read_dir(state.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count(),
        0
    );
}

#[test]
fn the_container_cannot_reach_the_hosts_loopback() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = host.local_addr().unwrap().to_string();
    let out = run_payload(&r, &[], &["connect", &addr]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).starts_with("failed"), "{}", stdout(&out));
    // With the host's network it can.
    assert_eq!(
        payload_ok(&r, &["--network", "host"], &["connect", &addr]).trim(),
        "connected"
    );
}

#[test]
fn network_none_has_lo_down_and_host_shares_the_hosts() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    assert_eq!(
        payload_ok(&r, &["--network", "none"], &["ifaces"]).trim(),
        "lo down"
    );
    assert_eq!(
        payload_ok(&r, &["--network", "private"], &["ifaces"]).trim(),
        "lo up"
    );
    let host_ifaces = payload_ok(&r, &["--network", "host"], &["ifaces"]);
    assert!(host_ifaces.lines().count() > 1, "{host_ifaces}");
    let out = run_payload(
        &r,
        &["--network", "host", "-p", "8080:8080"],
        &["exit", "0"],
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("--network host"), "{}", stderr(&out));
    let out = run_payload(&r, &["--network", "wifi"], &["exit", "0"]);
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn a_short_lived_command_with_a_published_port_still_runs_cleanly() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    for _ in 0..20 {
        let out = run_payload(&r, &["--rm", "-p", "127.0.0.1::80"], &["exit", "0"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stderr(&out), "");
    }
}

#[test]
fn an_address_not_on_this_host_is_said_so_and_exited_containers_show_no_ports() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let state = tempfile::tempdir().unwrap();
    let root = state.path().to_str().unwrap();
    let mb = |args: &[&str]| {
        minibox()
            .args(["--root", root])
            .args(args)
            .output()
            .unwrap()
    };
    // 192.0.2.0/24 is TEST-NET-1: no host has it.
    let out = mb(&[
        "run",
        "-p",
        "192.0.2.1:18090:80",
        &r.arg(),
        "/payload",
        "id",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("192.0.2.1 is not on this host") && !err.contains("not free"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A container that published a port and exited holds it no more.
    let out = mb(&[
        "run",
        "-p",
        "127.0.0.1::80",
        &r.arg(),
        "/payload",
        "exit",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&mb(&["ps", "-a"]));
    assert!(
        table.contains("Exited (0)") && !table.contains("->"),
        "{table}"
    );
    let json = stdout(&mb(&["ps", "-a", "--format", "json"]));
    assert!(json.contains("\"Ports\":\"\""), "{json}");
}
