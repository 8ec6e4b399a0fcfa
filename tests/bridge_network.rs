//! Bridge networks: containers that reach each other by name, `host.docker.internal`, ports
//! published by DNAT, and everything gone after `rm` / `network rm` / a killed supervisor.
//!
//! Nothing here touches the real host's interfaces, routes or firewall: every test makes a
//! throwaway network namespace and mount namespace that plays the host (`TestHost`: `unshare
//! --net --mount`, a tmpfs for minibox's state and data roots), and runs minibox inside it.
//! Traffic goes only to loopback and to addresses inside namespaces the test made. Root only.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A network namespace + mount namespace playing the host, held by a `sleep` in them.
struct TestHost {
    holder: Child,
    pid: u32,
    /// minibox's state and data roots live in a tmpfs below this (mounted in the namespace).
    dir: tempfile::TempDir,
}

impl TestHost {
    fn new() -> TestHost {
        need_root();
        let dir = tempfile::Builder::new()
            .prefix("minibox-nethost-")
            .tempdir()
            .unwrap();
        let holder = Command::new("unshare")
            .args([
                "--net",
                "--mount",
                "--propagation",
                "private",
                "sleep",
                "600",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare");
        let pid = holder.id();
        let ours = fs::read_link("/proc/self/ns/net").unwrap();
        let start = Instant::now();
        while fs::read_link(format!("/proc/{pid}/ns/net")).ok() == Some(ours.clone())
            || fs::read_link(format!("/proc/{pid}/ns/net")).is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "unshare never ran"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let host = TestHost { holder, pid, dir };
        let d = host.dir.path().display().to_string();
        let out = host.sh(&format!("mount -t tmpfs tmpfs {d} && ip link set lo up"));
        assert!(out.status.success(), "{}", stderr(&out));
        host
    }

    /// A command in the test host's namespaces, with minibox's roots set ($M is minibox, $P the
    /// payload).
    fn command(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("timeout");
        c.args([
            "60",
            "nsenter",
            "-t",
            &self.pid.to_string(),
            "--net",
            "--mount",
            "--",
        ])
        .env("MINIBOX_ROOT", d.join("run"))
        .env("MINIBOX_DATA_ROOT", d.join("data"))
        .env("M", minibox_bin())
        .env("P", payload_bin())
        .stdin(Stdio::null());
        c
    }

    fn sh(&self, script: &str) -> Output {
        self.command().args(["sh", "-c", script]).output().unwrap()
    }

    fn mb(&self, args: &[&str]) -> Output {
        self.command()
            .arg(minibox_bin())
            .args(args)
            .output()
            .unwrap()
    }

    fn mb_ok(&self, args: &[&str]) -> String {
        let out = self.mb(args);
        assert!(
            out.status.success(),
            "minibox {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// A path of the test host's mount namespace, as this process can read it.
    fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.pid))
    }

    fn state_root(&self) -> PathBuf {
        self.path(&self.dir.path().join("run").display().to_string())
    }

    fn links(&self) -> String {
        stdout(&self.sh("ip -o link show"))
    }

    fn tables(&self) -> String {
        stdout(&self.sh("nft list tables"))
    }

    fn logs(&self, c: &str) -> String {
        stdout(&self.mb(&["logs", c]))
    }

    fn wait_log(&self, c: &str, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let logs = self.logs(c);
            if logs.contains(needle) {
                return logs;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{needle:?} never logged by {c}: {logs}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address `container` has on `network`, from `minibox network inspect`.
    fn ip_of(&self, network: &str, container: &str) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.mb_ok(&["network", "inspect", network])).unwrap();
        let c = v["Containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Name"] == container)
            .unwrap_or_else(|| panic!("{container} not on {network}: {v}"));
        c["IPv4Address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string()
    }

    /// The MAC of `container`'s eth0, as it reads it.
    fn mac_of(&self, container: &str) -> String {
        self.mb_ok(&[
            "exec",
            container,
            "/payload",
            "cat",
            "/sys/class/net/eth0/address",
        ])
        .trim()
        .to_string()
    }

    fn leases(&self, network: &str) -> String {
        fs::read_to_string(
            self.state_root()
                .join("networks")
                .join(network)
                .join("leases.json"),
        )
        .unwrap_or_default()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = self.sh("for c in $($M ps -aq); do $M rm -f $c >/dev/null 2>&1; done");
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        if !std::thread::panicking() {
            assert_real_host_clean();
        }
    }
}

/// The real host (this test process's namespace) never has a minibox link or table.
fn assert_real_host_clean() {
    let links = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !links.contains("mbx"),
        "a minibox link on the real host: {links}"
    );
    let tables = String::from_utf8_lossy(
        &Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !tables.contains("minibox"),
        "minibox's table on the real host: {tables}"
    );
}

fn rootfs() -> Rootfs {
    Rootfs::new()
}

#[test]
fn two_containers_talk_by_name_both_ways_and_a_later_one_is_known() {
    let host = TestHost::new();
    let r = rootfs();
    host.mb_ok(&["network", "create", "app"]);
    // a asks b at 3 s: b is started after a, so a's hosts file must learn of it.
    host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "app",
        &r.arg(),
        "/payload",
        "duo",
        "7000",
        "3",
        "b:7000",
    ]);
    host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "b",
        "--network",
        "app",
        "--network-alias",
        "bee",
        &r.arg(),
        "/payload",
        "duo",
        "7000",
        "0.5",
        "a:7000",
    ]);
    assert!(
        host.wait_log("b", "asked").contains("asked ask"),
        "{}",
        host.logs("b")
    );
    assert!(
        host.wait_log("a", "asked").contains("asked ask"),
        "{}",
        host.logs("a")
    );
    // By alias too, and every name resolves to the address the network gave.
    let b_ip = host.ip_of("app", "b");
    let out = host.mb_ok(&[
        "run",
        "--rm",
        "--network",
        "app",
        &r.arg(),
        "/payload",
        "resolve",
        "bee",
    ]);
    assert_eq!(out.trim(), b_ip);
    let out = host.mb_ok(&[
        "run",
        "--rm",
        "--network",
        "app",
        &r.arg(),
        "/payload",
        "ask",
        "bee:7000",
    ]);
    assert_eq!(out.trim(), "ask");
    // Its own files: hostname, and localhost.
    let out = host.mb_ok(&[
        "run",
        "--rm",
        "--network",
        "app",
        "--hostname",
        "h1",
        "--add-host",
        "db.example:192.0.2.7",
        &r.arg(),
        "/payload",
        "cat",
        "/etc/hosts",
    ]);
    assert!(out.starts_with("127.0.0.1\tlocalhost\n"), "{out}");
    assert!(out.contains("\th1 "), "{out}");
    assert!(out.contains("192.0.2.7\tdb.example\n"), "{out}");
    assert!(
        out.contains("host.docker.internal host.minibox.internal"),
        "{out}"
    );
    let out = host.mb_ok(&[
        "run",
        "--rm",
        "--network",
        "app",
        "--hostname",
        "h1",
        &r.arg(),
        "/payload",
        "cat",
        "/etc/hostname",
    ]);
    assert_eq!(out, "h1\n");
    let out = host.mb_ok(&[
        "run",
        "--rm",
        "--network",
        "app",
        "--dns",
        "192.0.2.53",
        &r.arg(),
        "/payload",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(out.starts_with("nameserver 192.0.2.53\n"), "{out}");
    // The rootfs was never edited.
    assert!(!r.path().join("etc/hosts").exists());
}

#[test]
fn the_seeds_flow_redis_through_host_docker_internal_and_by_name() {
    let host = TestHost::new();
    let r = rootfs();
    // The default network, made on first use.
    host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "redis",
        "--network",
        "bridge",
        "-p",
        "6379:6379",
        &r.arg(),
        "/payload",
        "echo",
        "6379",
    ]);
    host.wait_log("redis", "listening 6379");
    let ls = host.mb_ok(&["network", "ls"]);
    assert!(ls.contains("bridge") && ls.contains("10.88.0.0/16"), "{ls}");
    for target in [
        "host.docker.internal:6379",
        "host.minibox.internal:6379",
        "redis:6379",
    ] {
        let out = host.mb_ok(&[
            "run",
            "--rm",
            "--network",
            "bridge",
            &r.arg(),
            "/payload",
            "ask",
            target,
        ]);
        assert_eq!(out.trim(), "ask", "{target}");
    }
    // From the (test) host itself: loopback (the relay) and the bridge's address (DNAT).
    let out = host.sh("$P ask 127.0.0.1:6379; $P ask 10.88.0.1:6379");
    assert_eq!(stdout(&out), "ask\nask\n", "{}", stderr(&out));
}

#[test]
fn containers_on_different_networks_cannot_reach_each_other() {
    let host = TestHost::new();
    let r = rootfs();
    host.mb_ok(&["network", "create", "n1"]);
    host.mb_ok(&["network", "create", "--subnet", "10.99.0.0/24", "n2"]);
    host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "n2",
        &r.arg(),
        "/payload",
        "echo",
        "7000",
    ]);
    host.wait_log("srv", "listening 7000");
    let ip = host.ip_of("n2", "srv");
    assert!(ip.starts_with("10.99.0."), "{ip}");
    let same = host.mb_ok(&[
        "run",
        "--rm",
        "--network",
        "n2",
        &r.arg(),
        "/payload",
        "connect",
        &format!("{ip}:7000"),
    ]);
    assert_eq!(same.trim(), "connected");
    let other = host.mb(&[
        "run",
        "--rm",
        "--network",
        "n1",
        &r.arg(),
        "/payload",
        "connect",
        &format!("{ip}:7000"),
    ]);
    assert!(stdout(&other).starts_with("failed"), "{}", stdout(&other));
    let other = host.mb(&[
        "run",
        "--rm",
        "--network",
        "n1",
        &r.arg(),
        "/payload",
        "resolve",
        "srv",
    ]);
    assert_eq!(stdout(&other).trim(), "unresolved");
}

#[test]
fn container_mode_shares_the_network_namespace() {
    let host = TestHost::new();
    let r = rootfs();
    host.mb_ok(&["network", "create", "n"]);
    host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "--network",
        "n",
        &r.arg(),
        "/payload",
        "echo",
        "7000",
    ]);
    host.wait_log("a", "listening 7000");
    let mine = host.mb_ok(&[
        "run",
        "--rm",
        "--network",
        "n",
        &r.arg(),
        "/payload",
        "readlink",
        "/proc/self/ns/net",
    ]);
    let joined = host.mb_ok(&[
        "run",
        "--rm",
        "--network",
        "container:a",
        &r.arg(),
        "/payload",
        "readlink",
        "/proc/self/ns/net",
    ]);
    let state: serde_json::Value = serde_json::from_str(&host.mb_ok(&["inspect", "a"])).unwrap();
    let pid = state.to_string();
    let pid = find_pid(&state).unwrap_or_else(|| panic!("no pid in {pid}"));
    let theirs = fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(
        joined.trim(),
        theirs.to_string_lossy(),
        "container:a is not in a's namespace"
    );
    assert_ne!(mine.trim(), joined.trim());
    let out = host.mb_ok(&[
        "run",
        "--rm",
        "--network",
        "container:a",
        &r.arg(),
        "/payload",
        "ask",
        "127.0.0.1:7000",
    ]);
    assert_eq!(out.trim(), "ask");
    let refused = host.mb(&[
        "run",
        "--rm",
        "--network",
        "container:a",
        "-p",
        "80:80",
        &r.arg(),
        "/payload",
        "id",
    ]);
    assert_eq!(refused.status.code(), Some(125));
}

/// The first `"Pid"`/`"pid"` number anywhere in an inspect document.
fn find_pid(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k.eq_ignore_ascii_case("pid") {
                    if let Some(n) = x.as_u64().or_else(|| x.get("pid").and_then(|p| p.as_u64())) {
                        return Some(n);
                    }
                }
            }
            m.values().find_map(find_pid)
        }
        serde_json::Value::Array(a) => a.iter().find_map(find_pid),
        _ => None,
    }
}

#[test]
fn the_server_sees_the_clients_own_address() {
    let host = TestHost::new();
    let r = rootfs();
    host.mb_ok(&["network", "create", "n"]);
    host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "n",
        "-p",
        "8080:8000",
        &r.arg(),
        "/payload",
        "peer",
        "8000",
    ]);
    host.wait_log("srv", "listening 8000");
    // A client outside the host: its own namespace, a veth to the test host (TEST-NET-1).
    let mut client = Command::new("nsenter")
        .args([
            "-t",
            &host.pid.to_string(),
            "--net",
            "--mount",
            "--",
            "unshare",
            "--net",
            "sleep",
            "300",
        ])
        .spawn()
        .unwrap();
    let cpid = client.id();
    std::thread::sleep(Duration::from_millis(300));
    let inner = find_child(cpid).unwrap_or(cpid);
    let setup = host.sh(&format!(
        "ip link add ext0 type veth peer name ext1 netns {inner} && ip addr add 192.0.2.1/24 dev ext0 \
         && ip link set ext0 up && nsenter -t {inner} --net sh -c 'ip addr add 192.0.2.2/24 dev ext1 \
         && ip link set ext1 up && ip link set lo up'"
    ));
    assert!(setup.status.success(), "{}", stderr(&setup));
    let out = Command::new("nsenter")
        .args(["-t", &inner.to_string(), "--net", "--"])
        .arg(payload_bin())
        .args(["ask", "192.0.2.1:8080"])
        .output()
        .unwrap();
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        stdout(&out).starts_with("peer 192.0.2.2:"),
        "the server saw {} {}",
        stdout(&out),
        stderr(&out)
    );
}

/// `nsenter ... unshare ... sleep`: the sleep's pid (nsenter forks for --mount? it execs).
fn find_child(pid: u32) -> Option<u32> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

#[test]
fn rm_and_network_rm_leave_nothing_behind() {
    let host = TestHost::new();
    let r = rootfs();
    host.mb_ok(&["network", "create", "n"]);
    host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "n",
        "-p",
        "9000:9000",
        &r.arg(),
        "/payload",
        "echo",
        "9000",
    ]);
    host.wait_log("srv", "listening 9000");
    assert!(host.leases("n").contains("\"srv\""), "{}", host.leases("n"));
    assert!(host.links().contains("mbxv"), "{}", host.links());
    let ruleset = stdout(&host.sh("nft list ruleset"));
    assert!(ruleset.contains("tcp . 9000 : "), "{ruleset}");
    assert!(
        ruleset.contains(" . 02:42:"),
        "no guard for the veth: {ruleset}"
    );
    let refused = host.mb(&["network", "rm", "n"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a network in use was removed"
    );
    host.mb_ok(&["rm", "-f", "srv"]);
    assert!(!host.leases("n").contains("srv"), "{}", host.leases("n"));
    assert!(!host.links().contains("mbxv"), "{}", host.links());
    let ruleset = stdout(&host.sh("nft list ruleset"));
    assert!(!ruleset.contains("9000"), "{ruleset}");
    assert!(!ruleset.contains(" . 02:42:"), "{ruleset}");
    host.mb_ok(&["network", "rm", "n"]);
    assert!(!host.links().contains("mbx"), "{}", host.links());
    assert!(!host.tables().contains("minibox"), "{}", host.tables());
    assert!(!host.state_root().join("networks/n").exists());
}

#[test]
fn a_killed_supervisors_leftovers_go_with_the_next_command() {
    let host = TestHost::new();
    let r = rootfs();
    host.mb_ok(&["network", "create", "n"]);
    let id = host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "n",
        "-p",
        "9100:9100",
        &r.arg(),
        "/payload",
        "echo",
        "9100",
    ]);
    host.wait_log("srv", "listening 9100");
    let state: serde_json::Value = serde_json::from_slice(
        &fs::read(host.state_root().join(id.trim()).join("state.json")).unwrap(),
    )
    .unwrap();
    let supervisor = state["supervisor"]["pid"].as_i64().unwrap();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let start = Instant::now();
    while Instant::now() - start < Duration::from_secs(5) && process_lives(supervisor as u32) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        host.leases("n").contains("srv"),
        "the lease went before any command ran"
    );
    host.mb_ok(&["ps", "-a"]);
    assert!(!host.leases("n").contains("srv"), "{}", host.leases("n"));
    let ruleset = stdout(&host.sh("nft list ruleset"));
    assert!(!ruleset.contains("9100"), "{ruleset}");
    assert!(!ruleset.contains(" . 02:42:"), "{ruleset}");
    assert!(!host.links().contains("mbxv"), "{}", host.links());
}

#[test]
fn publishing_with_no_network_is_refused_as_docker_does() {
    let host = TestHost::new();
    let r = rootfs();
    let out = host.mb(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-p",
        "9999:8080",
        &r.arg(),
        "/payload",
        "id",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out)
            .contains("conflicting options: port publishing and the container type network mode"),
        "{}",
        stderr(&out)
    );
    let out = host.mb(&[
        "run",
        "--rm",
        "--network",
        "nosuchnet",
        &r.arg(),
        "/payload",
        "id",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("network nosuchnet not found"),
        "{}",
        stderr(&out)
    );
    assert!(!host.links().contains("mbx"), "{}", host.links());
}

#[test]
fn every_container_gets_hosts_hostname_and_resolv_conf() {
    let host = TestHost::new();
    let r = rootfs();
    for net in ["private", "none", "host"] {
        let out = host.mb_ok(&[
            "run",
            "--rm",
            "--network",
            net,
            "--hostname",
            "box1",
            &r.arg(),
            "/payload",
            "cat",
            "/etc/hostname",
        ]);
        assert_eq!(out, "box1\n", "{net}");
        let out = host.mb_ok(&[
            "run",
            "--rm",
            "--network",
            net,
            &r.arg(),
            "/payload",
            "resolve",
            "localhost",
        ]);
        assert!(out.contains("127.0.0.1"), "{net}: {out}");
        let out = host.mb_ok(&[
            "run",
            "--rm",
            "--network",
            net,
            &r.arg(),
            "/payload",
            "cat",
            "/etc/resolv.conf",
        ]);
        assert!(out.contains("nameserver "), "{net}: {out}");
    }
    let out = host.mb_ok(&[
        "run",
        "--rm",
        "--hostname",
        "box1",
        &r.arg(),
        "/payload",
        "resolve",
        "box1",
    ]);
    assert_eq!(out.trim(), "127.0.1.1");
}

#[test]
fn the_private_relay_holds_2000_idle_clients_and_answers_a_new_one_at_once() {
    let host = TestHost::new();
    let r = rootfs();
    host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "-p",
        "127.0.0.1:7700:7000",
        &r.arg(),
        "/payload",
        "echo",
        "7000",
    ]);
    host.wait_log("srv", "listening 7000");
    let netns = fs::File::open(format!("/proc/{}/ns/net", host.pid)).unwrap();
    // This thread only enters the test host's network namespace.
    let measured = std::thread::spawn(move || {
        nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let (_, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard)
            .unwrap();
        let mut idle = vec![];
        for i in 0..2000 {
            let s = TcpStream::connect("127.0.0.1:7700")
                .unwrap_or_else(|e| panic!("idle client {i}: {e}"));
            idle.push(s);
        }
        // Let the relay take them all upstream.
        std::thread::sleep(Duration::from_millis(500));
        let began = Instant::now();
        let mut c = TcpStream::connect("127.0.0.1:7700").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"new").unwrap();
        let mut got = [0u8; 3];
        c.read_exact(&mut got).unwrap();
        let took = began.elapsed();
        assert_eq!(&got, b"new");
        // The idle ones were really relayed, the first and the last alike.
        for i in [0, 1999] {
            let s = &mut idle[i];
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"old").unwrap();
            let mut got = [0u8; 3];
            s.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"old");
        }
        took
    })
    .join()
    .unwrap();
    assert!(
        measured < Duration::from_millis(100),
        "a new client waited {measured:?}"
    );
}

#[test]
fn the_real_host_is_untouched() {
    need_root();
    let snapshot = || {
        let links = Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout;
        let names: Vec<String> = String::from_utf8_lossy(&links)
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
            .collect();
        let tables = Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap()
            .stdout;
        let forward = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
        (
            names,
            String::from_utf8_lossy(&tables).into_owned(),
            forward,
        )
    };
    let before = snapshot();
    {
        let host = TestHost::new();
        let r = rootfs();
        host.mb_ok(&[
            "run",
            "-d",
            "--name",
            "x",
            "--network",
            "bridge",
            "-p",
            "7300:7300",
            &r.arg(),
            "/payload",
            "echo",
            "7300",
        ]);
        host.wait_log("x", "listening 7300");
        assert!(host.links().contains("mbx-"));
        assert!(host.tables().contains("minibox"));
    }
    assert_eq!(
        before,
        snapshot(),
        "the real host's links, nft tables or ip_forward changed"
    );
}

/// Issue 17 row 9: with docker's default `CAP_NET_RAW`, container root on a bridge network
/// broadcast ARP replies claiming a neighbour's address, and the host (and every other
/// container) sent that neighbour's traffic to it. Root in a container has no `NET_RAW` now:
/// the claim is refused, and the host's neighbour entry stays the victim's.
#[test]
fn container_root_cannot_spoof_a_neighbours_arp_on_a_bridge() {
    let host = TestHost::new();
    let r = rootfs();
    host.mb_ok(&["network", "create", "spoofnet"]);
    host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "victim",
        "--network",
        "spoofnet",
        &r.arg(),
        "/payload",
        "http",
        "8000",
    ]);
    host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "spoofer",
        "-u",
        "0",
        "--network",
        "spoofnet",
        &r.arg(),
        "/payload",
        "sleep",
        "120",
    ]);
    host.wait_log("victim", "listening 8000");
    let victim_ip = host.ip_of("spoofnet", "victim");
    let (victim_mac, spoofer_mac) = (host.mac_of("victim"), host.mac_of("spoofer"));
    assert_ne!(victim_mac, spoofer_mac);
    // The host talks to the victim: its neighbour entry holds the victim's MAC.
    let neigh = || stdout(&host.sh(&format!("ip neigh show {victim_ip}")));
    let out = host.sh(&format!("$P connect {victim_ip}:8000"));
    assert!(stdout(&out).contains("connected"), "{}", stderr(&out));
    assert!(neigh().contains(&victim_mac), "{}", neigh());
    // Past the neighbour table's locktime (1 s), a claim would replace it.
    std::thread::sleep(Duration::from_millis(1500));
    let claim = host.mb(&[
        "exec",
        "spoofer",
        "/payload",
        "arp-claim",
        "eth0",
        &victim_ip,
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let after = neigh();
    assert!(
        !after.contains(&spoofer_mac) && after.contains(&victim_mac),
        "the spoofer took {victim_ip}: {after} (claim: {}{})",
        stdout(&claim),
        stderr(&claim)
    );
    assert!(stdout(&claim).contains("EPERM"), "{}", stdout(&claim));
}

/// Issue 17 row 9 with `--cap-add NET_RAW` (ping-like tools, or docker's default): minibox's
/// `bridge minibox` table guards every container's veth. The spoofer's ARP claims of its
/// neighbour's address leave the host's neighbour entry the victim's and bring it none of the
/// victim's traffic, and a datagram it forges with the victim's source address never arrives
/// (its honest one does: the raw socket works, only the forgery is stopped).
#[test]
fn ns_with_net_raw_a_container_can_neither_take_a_neighbours_traffic_nor_forge_its_address() {
    let host = TestHost::new();
    let r = rootfs();
    host.mb_ok(&["network", "create", "ns-guard", "--subnet", "10.123.0.0/24"]);
    let (victim_ip, spoofer_ip, gateway) = ("10.123.0.2", "10.123.0.3", "10.123.0.1");
    let rootfs = r.arg();
    let run = |args: String| host.mb_ok(&args.split_whitespace().collect::<Vec<_>>());
    run(format!(
        "run -d --name ns-victim --network ns-guard --ip {victim_ip} {rootfs} /payload http 8000"
    ));
    run(format!(
        "run -d --name ns-spoofer -u 0 --cap-add NET_RAW --network ns-guard --ip {spoofer_ip} \
         {rootfs} /payload sleep 120"
    ));
    host.wait_log("ns-victim", "listening 8000");
    let (victim_mac, spoofer_mac) = (host.mac_of("ns-victim"), host.mac_of("ns-spoofer"));
    assert_ne!(victim_mac, spoofer_mac);
    // The host talks to the victim: its neighbour entry, and the bridge's forwarding
    // database, hold the victim's MAC.
    let neigh = || stdout(&host.sh(&format!("ip neigh show {victim_ip}")));
    let talk = || stdout(&host.sh(&format!("$P connect {victim_ip}:8000")));
    assert!(talk().contains("connected"));
    assert!(neigh().contains(&victim_mac), "{}", neigh());
    // Past the neighbour table's locktime (1 s), a claim would replace it.
    std::thread::sleep(Duration::from_millis(1500));
    let claim = host.mb_ok(&[
        "exec",
        "ns-spoofer",
        "/payload",
        "arp-claim",
        "eth0",
        victim_ip,
    ]);
    assert!(claim.contains("sent"), "NET_RAW was given: {claim}");
    // The spoofer listens for the victim's traffic while the host sends it some.
    let sniffer = host
        .command()
        .arg(minibox_bin())
        .args(["exec", "ns-spoofer", "/payload", "sniff", victim_ip, "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        talk();
    }
    let sniffed = stdout(&sniffer.wait_with_output().unwrap());
    let after = neigh();
    assert!(
        !after.contains(&spoofer_mac) && after.contains(&victim_mac),
        "the spoofer took {victim_ip}: {after} (claim: {claim})"
    );
    assert_eq!(
        sniffed.trim(),
        "seen 0",
        "the spoofer got the victim's traffic"
    );
    // A forged source address: the host hears the honest datagram only.
    let listener = host
        .command()
        .args([payload_bin().to_str().unwrap(), "udp-recv", "9999", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let to = format!("{gateway}:9999");
    for (src, text) in [(victim_ip, "forged"), (spoofer_ip, "honest")] {
        let sent = host.mb_ok(&[
            "exec",
            "ns-spoofer",
            "/payload",
            "udp-forge",
            src,
            &to,
            text,
        ]);
        assert!(sent.contains("sent"), "{sent}");
    }
    let heard = stdout(&listener.wait_with_output().unwrap());
    assert!(
        heard.contains(&format!("from {spoofer_ip} honest")),
        "{heard}"
    );
    assert!(
        !heard.contains("forged"),
        "a forged source got through: {heard}"
    );
}

/// Between two runs of its restart policy a container keeps its address, its guard entry and
/// its ports: every command's sweep (a `ps` here) must not take them for an ended container's.
#[test]
fn a_restarting_container_keeps_its_lease_guard_and_ports_through_the_sweep() {
    let host = TestHost::new();
    let r = rootfs();
    host.mb_ok(&["network", "create", "n"]);
    host.mb_ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--network",
        "n",
        "--restart",
        "always",
        "-p",
        "9200:9200",
        &r.arg(),
        "/payload",
        "sleep",
        "0.3",
    ]);
    // Each ps is a sweep; it runs while the container waits for its next run.
    let start = Instant::now();
    loop {
        let ps = host.mb_ok(&["ps", "-a"]);
        if ps.contains("Restarting") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{ps}");
        std::thread::sleep(Duration::from_millis(10));
    }
    host.mb_ok(&["ps", "-a"]);
    assert!(host.leases("n").contains("again"), "{}", host.leases("n"));
    let ruleset = stdout(&host.sh("nft list ruleset"));
    assert!(ruleset.contains("9200"), "{ruleset}");
    assert!(ruleset.contains(" . 02:42:"), "{ruleset}");
    host.mb_ok(&["rm", "-f", "again"]);
    assert!(!host.leases("n").contains("again"), "{}", host.leases("n"));
}
