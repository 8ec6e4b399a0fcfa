//! The flags a docker user's scripts rely on (issue 21): `--env-file`, `--ulimit`,
//! `--stop-signal`, `--stop-timeout`, `-P`, `-p PORT`, `/udp`, and `cp`. Each test runs a
//! container and reads what it printed, its limits from /proc, or the files it left. Root
//! only; see tests/common.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// What `read` returns once it holds `text` (20 s at most).
fn wait_for(text: &str, read: impl Fn() -> String) -> String {
    let start = Instant::now();
    loop {
        let got = read();
        if got.contains(text) {
            return got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no {text:?} in {got:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A state root of our own; whatever still runs in it is removed at the end.
struct StateRoot(tempfile::TempDir);

impl StateRoot {
    fn new() -> StateRoot {
        StateRoot(
            tempfile::Builder::new()
                .prefix("minibox-state-")
                .tempdir()
                .unwrap(),
        )
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// `minibox --root ROOT ARGS...`
    fn mb(&self, args: &[&str]) -> Output {
        let root = self.path().to_string_lossy().into_owned();
        let mut all = vec!["--root", root.as_str()];
        all.extend_from_slice(args);
        run_minibox(&all)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.mb(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// `run -d` of the payload; returns the full id.
    fn detach(&self, r: &Rootfs, flags: &[&str], payload: &[&str]) -> String {
        let root = r.arg();
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(flags);
        args.push(&root);
        args.push("/payload");
        args.extend_from_slice(payload);
        self.ok(&args).trim().to_string()
    }

    fn inspect(&self, id: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["inspect", id])).unwrap();
        match v {
            serde_json::Value::Array(mut a) => a.remove(0),
            v => v,
        }
    }

    /// Waits until the container's output holds `text`.
    fn wait_log(&self, id: &str, text: &str) -> String {
        wait_for(text, || self.ok(&["logs", id]))
    }
}

impl Drop for StateRoot {
    fn drop(&mut self) {
        let ids = self.mb(&["ps", "-a", "-q"]);
        for id in stdout(&ids).lines() {
            self.mb(&["rm", "-f", id]);
        }
    }
}

fn env_lines(out: &str) -> Vec<&str> {
    out.lines().collect()
}

#[test]
fn env_file_sets_variables_and_e_wins_over_it() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one.env"), dir.path().join("two.env"));
    fs::write(
        &one,
        "# settings\n\nWF_A=1\n  WF_B=two words \nWF_Q=\"kept\"\nWF_FROM_HOST\nWF_UNSET\nWF_OVER=file\n",
    )
    .unwrap();
    fs::write(&two, "WF_A=second file\n").unwrap();
    let out = minibox()
        .env("WF_FROM_HOST", "hostvalue")
        .env_remove("WF_UNSET")
        .args(["run", "--env-file"])
        .arg(&one)
        .arg("--env-file")
        .arg(&two)
        .args(["-e", "WF_OVER=flag", &r.arg(), "/payload", "env"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let env = stdout(&out);
    let lines = env_lines(&env);
    for want in [
        "WF_A=second file",
        "WF_B=two words ",
        "WF_Q=\"kept\"",
        "WF_FROM_HOST=hostvalue",
        "WF_OVER=flag",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from {env}");
    }
    assert!(!env.contains("WF_UNSET"), "{env}");
    assert!(!env.contains("settings"), "{env}");
}

#[test]
fn a_bad_env_file_is_one_line_and_status_125() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.env");
    fs::write(&bad, "OK=1\nNOT OK=2\n").unwrap();
    let missing = dir.path().join("missing.env");
    for (file, says) in [(&bad, "line 2"), (&missing, "cannot read it")] {
        let out = minibox()
            .args(["run", "--env-file"])
            .arg(file)
            .args([&r.arg(), "/payload", "env"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{err}");
        assert!(err.contains("--env-file") && err.contains(says), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// `/proc/self/limits`'s row for `name` (`Max open files`...): (soft, hard).
fn limit_row(limits: &str, name: &str) -> (String, String) {
    let line = limits
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} in {limits}"));
    let cols: Vec<&str> = line[name.len()..].split_whitespace().collect();
    (cols[0].to_string(), cols[1].to_string())
}

#[test]
fn ulimits_are_the_containers_limits() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let limits = payload_ok(
        &r,
        &[
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "core=0",
            "--ulimit",
            "nproc=4096:8192",
            "--ulimit",
            "stack=-1",
            "--ulimit",
            "nofile=100:200",
        ],
        &["cat", "/proc/self/limits"],
    );
    // A later --ulimit of the same name wins, as in docker.
    assert_eq!(
        limit_row(&limits, "Max open files"),
        ("100".into(), "200".into()),
        "{limits}"
    );
    assert_eq!(
        limit_row(&limits, "Max core file size"),
        ("0".into(), "0".into())
    );
    assert_eq!(
        limit_row(&limits, "Max processes"),
        ("4096".into(), "8192".into())
    );
    assert_eq!(
        limit_row(&limits, "Max stack size"),
        ("unlimited".into(), "unlimited".into())
    );
}

#[test]
fn bad_ulimits_are_refused_with_125_and_nothing_left() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    for bad in ["nofile", "files=1", "nofile=2:1", "nofile=x"] {
        let out = run_payload(&r, &["--ulimit", bad], &["id"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{bad}: {err}");
        assert!(err.contains("invalid --ulimit"), "{bad}: {err}");
    }
}

#[test]
fn stop_sends_the_stop_signal_and_waits_the_stop_timeout() {
    if !need_root() {
        return;
    }
    let (s, r) = (StateRoot::new(), Rootfs::new());
    // --stop-signal: what `stop` sends, as the container saw it.
    let id = s.detach(&r, &["--stop-signal", "usr1"], &["trap", "1"]);
    s.wait_log(&id, "ready");
    assert_eq!(s.inspect(&id)["StopSignal"], "SIGUSR1");
    let start = Instant::now();
    s.ok(&["stop", &id]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let logs = s.ok(&["logs", &id]);
    assert!(
        logs.contains("got USR1") && !logs.contains("got TERM"),
        "{logs}"
    );

    // --stop-timeout: a container that takes the signal and goes on is killed after it.
    let id = s.detach(&r, &["--stop-timeout", "1"], &["trap", "5"]);
    s.wait_log(&id, "ready");
    assert_eq!(s.inspect(&id)["StopTimeout"], 1);
    let start = Instant::now();
    s.ok(&["stop", &id]);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert!(s.ok(&["logs", &id]).contains("got TERM"));
    let ps = s.ok(&["ps", "-a", "--format", "json"]);
    assert!(ps.contains("Exited (137)"), "{ps}");

    // -t wins over --stop-timeout, as in docker.
    let id = s.detach(&r, &["--stop-timeout", "30"], &["trap", "5"]);
    s.wait_log(&id, "ready");
    let start = Instant::now();
    s.ok(&["stop", "-t", "0", &id]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn bad_stop_flags_are_refused_with_125() {
    if !need_root() {
        return;
    }
    let (s, r) = (StateRoot::new(), Rootfs::new());
    let root = r.arg();
    for (flag, value) in [
        ("--stop-signal", "SIGNOPE"),
        ("--stop-signal", "99"),
        ("--stop-timeout", "-2"),
        ("--stop-timeout", "soon"),
    ] {
        let out = s.mb(&["run", "-d", flag, value, &root, "/payload", "sleep", "5"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
    assert_eq!(s.ok(&["ps", "-a", "-q"]), "", "a refused run left a record");
}

/// A network + mount namespace playing the host (`unshare --net --mount`), so that published
/// ports bind there and the test's traffic stays in it (loopback only).
struct TestHost {
    holder: Child,
    pid: u32,
    /// minibox's state and data roots, on a tmpfs mounted in the namespace.
    dir: tempfile::TempDir,
}

impl TestHost {
    fn new() -> TestHost {
        let dir = tempfile::Builder::new()
            .prefix("minibox-wf-host-")
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
        while fs::read_link(format!("/proc/{pid}/ns/net")).map_or(true, |ns| ns == ours) {
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

    fn ok(&self, args: &[&str]) -> String {
        let out = self.mb(args);
        assert!(out.status.success(), "minibox {args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// `f` on a thread in the namespace's network (setns moves only that thread).
    fn client<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = fs::File::open(format!("/proc/{}/ns/net", self.pid)).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                    f()
                })
                .join()
                .unwrap()
        })
    }

    /// `minibox port NAME`'s lines, as (container side, host address).
    fn ports(&self, name: &str) -> Vec<(String, String)> {
        self.ok(&["port", name])
            .lines()
            .map(|l| {
                let (c, h) = l.split_once(" -> ").unwrap_or_else(|| panic!("{l}"));
                (c.to_string(), h.to_string())
            })
            .collect()
    }

    fn wait_log(&self, name: &str, text: &str) {
        wait_for(text, || stdout(&self.mb(&["logs", name])));
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        for id in stdout(&self.mb(&["ps", "-a", "-q"])).lines() {
            self.mb(&["rm", "-f", id]);
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// `GET /` on ADDRESS (retried for up to 10 s while the server starts): the answer's body.
fn http_get(addr: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect(addr) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            if s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").is_ok() {
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if let Some((_, body)) = out.split_once("\r\n\r\n") {
                    return body.to_string();
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nothing answered on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One datagram to ADDRESS from a socket of our own; its answer (retried while it starts).
fn udp_ask(addr: &str, text: &str) -> (String, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let start = Instant::now();
    loop {
        socket.send_to(text.as_bytes(), addr).unwrap();
        let mut buf = [0u8; 2048];
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            return (
                String::from_utf8_lossy(&buf[..n]).into_owned(),
                from.to_string(),
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no answer from {addr}"
        );
    }
}

#[test]
fn p_port_alone_publishes_on_a_port_the_kernel_picks() {
    if !need_root() {
        return;
    }
    let (host, r) = (TestHost::new(), Rootfs::new());
    let root = r.arg();
    host.ok(&[
        "run",
        "-d",
        "--name",
        "wf-pick",
        "-p",
        "8080",
        "-p",
        "127.0.0.1::8081",
        &root,
        "/payload",
        "http",
        "8080",
    ]);
    let ports = host.ports("wf-pick");
    assert_eq!(ports.len(), 2, "{ports:?}");
    assert_eq!(ports[0].0, "8080/tcp");
    let any = ports[0]
        .1
        .strip_prefix("0.0.0.0:")
        .unwrap_or_else(|| panic!("{ports:?}"));
    let port: u16 = any.parse().unwrap();
    assert!(port != 0 && port != 8080, "{ports:?}");
    assert!(
        ports[1].1.starts_with("127.0.0.1:") && ports[1].0 == "8081/tcp",
        "{ports:?}"
    );
    // The port the kernel picked is the container's 8080.
    let body = host.client(|| http_get(&format!("127.0.0.1:{port}")));
    assert_eq!(body.trim(), "payload 8080");
    let ps = host.ok(&["ps"]);
    assert!(ps.contains(&format!("0.0.0.0:{port}->8080/tcp")), "{ps}");
}

#[test]
fn udp_ports_relay_datagrams_both_ways_per_client() {
    if !need_root() {
        return;
    }
    let (host, r) = (TestHost::new(), Rootfs::new());
    let root = r.arg();
    host.ok(&[
        "run",
        "-d",
        "--name",
        "wf-udp",
        "-p",
        "127.0.0.1:5399:5300/udp",
        "-p",
        "5301/udp",
        &root,
        "/payload",
        "udp-echo",
        "5300",
    ]);
    host.wait_log("wf-udp", "listening");
    let ports = host.ports("wf-udp");
    assert_eq!(
        ports[0],
        ("5300/udp".to_string(), "127.0.0.1:5399".to_string()),
        "{ports:?}"
    );
    assert_eq!(ports[1].0, "5301/udp", "{ports:?}");
    assert!(!ports[1].1.ends_with(":0"), "{ports:?}");
    // Two clients, each answered by the container's 5300, from the host port it asked.
    let (a, b) = host.client(|| {
        (
            udp_ask("127.0.0.1:5399", "from a"),
            udp_ask("127.0.0.1:5399", "from b"),
        )
    });
    assert_eq!(
        a,
        ("udp 5300: from a".to_string(), "127.0.0.1:5399".to_string())
    );
    assert_eq!(
        b,
        ("udp 5300: from b".to_string(), "127.0.0.1:5399".to_string())
    );
    // TCP on the same number is not published.
    let tcp = host.client(|| TcpStream::connect("127.0.0.1:5399").is_err());
    assert!(tcp, "a /udp port answered TCP");
    let ps = host.ok(&["ps"]);
    assert!(ps.contains("127.0.0.1:5399->5300/udp"), "{ps}");
}

#[test]
fn publish_all_publishes_each_exposed_port() {
    if !need_root() {
        return;
    }
    let (host, r) = (TestHost::new(), Rootfs::new());
    let root = r.arg();
    host.ok(&[
        "run",
        "-d",
        "--name",
        "wf-all",
        "--expose",
        "7000",
        "--expose",
        "7001/udp",
        "--expose",
        "7002",
        "-p",
        "127.0.0.1:7992:7002",
        "-P",
        &root,
        "/payload",
        "http",
        "7000",
    ]);
    let ports = host.ports("wf-all");
    let sides: Vec<&str> = ports.iter().map(|(c, _)| c.as_str()).collect();
    // -p's own 7002 stays as asked; -P adds the others once each.
    assert_eq!(sides, ["7002/tcp", "7000/tcp", "7001/udp"], "{ports:?}");
    assert_eq!(ports[0].1, "127.0.0.1:7992");
    let port: u16 = ports[1]
        .1
        .strip_prefix("0.0.0.0:")
        .unwrap()
        .parse()
        .unwrap();
    let body = host.client(|| http_get(&format!("127.0.0.1:{port}")));
    assert_eq!(body.trim(), "payload 7000");
    // Without -P, --expose publishes nothing.
    host.ok(&[
        "run", "-d", "--name", "wf-none", "--expose", "7000", &root, "/payload", "sleep", "30",
    ]);
    assert_eq!(host.ports("wf-none"), []);
}

#[test]
fn bad_ports_are_refused_with_125() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    for flags in [
        &["-p", "53/sctp"][..],
        &["-p", "8000-8001:80-81"],
        &["--expose", "x"],
        &["--expose", "80/sctp"],
    ] {
        let out = run_payload(&r, flags, &["id"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// A rootfs with files to copy: /data/a, /data/sub/b, /data/link -> a, and /tmp (1777).
fn rootfs_with_data() -> Rootfs {
    let r = Rootfs::new();
    let data = r.path().join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("a"), "file a\n").unwrap();
    fs::write(data.join("sub/b"), "file b\n").unwrap();
    std::os::unix::fs::symlink("a", data.join("link")).unwrap();
    r
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn cp_copies_both_ways_into_running_and_stopped_containers() {
    if !need_root() {
        return;
    }
    let (s, r) = (StateRoot::new(), rootfs_with_data());
    let out = tempfile::tempdir().unwrap();
    let o = |p: &str| out.path().join(p);
    let id = s.detach(&r, &["--name", "wf-cp-run"], &["sleep", "60"]);
    // A directory onto a new name becomes it; onto an existing directory goes inside it.
    s.ok(&["cp", "wf-cp-run:/data", &o("copy").display().to_string()]);
    assert_eq!(read(&o("copy/a")), "file a\n");
    assert_eq!(read(&o("copy/sub/b")), "file b\n");
    assert_eq!(fs::read_link(o("copy/link")).unwrap(), Path::new("a"));
    s.ok(&["cp", "wf-cp-run:/data/", &o("copy").display().to_string()]);
    assert_eq!(read(&o("copy/data/sub/b")), "file b\n");
    // SRC/. copies the contents; a file onto a directory goes inside it.
    fs::create_dir(o("dot")).unwrap();
    s.ok(&["cp", "wf-cp-run:/data/.", &o("dot").display().to_string()]);
    assert_eq!(read(&o("dot/a")), "file a\n");
    // Into the container: the container reads what was copied.
    fs::write(o("in.txt"), "from the host\n").unwrap();
    s.ok(&["cp", &o("in.txt").display().to_string(), "wf-cp-run:/tmp/"]);
    s.ok(&[
        "cp",
        &o("in.txt").display().to_string(),
        "wf-cp-run:/tmp/renamed",
    ]);
    for path in ["/tmp/in.txt", "/tmp/renamed"] {
        let got = s.ok(&["exec", "wf-cp-run", "/payload", "cat", path]);
        assert_eq!(got, "from the host\n", "{path}");
    }
    // ROOTFS is never written: the copies are in the container's own layer.
    assert!(!r.path().join("tmp/in.txt").exists());
    s.ok(&["rm", "-f", &id]);

    // A stopped container: what it wrote comes out, what goes in lands in its layer.
    let out_run = s.mb(&[
        "run",
        "--name",
        "wf-cp-stopped",
        &r.arg(),
        "/payload",
        "write",
        "/tmp/made",
        "inside",
    ]);
    assert_eq!(out_run.status.code(), Some(0), "{}", stderr(&out_run));
    s.ok(&[
        "cp",
        "wf-cp-stopped:/tmp/made",
        &o("made").display().to_string(),
    ]);
    assert_eq!(read(&o("made")), "inside");
    s.ok(&[
        "cp",
        &o("in.txt").display().to_string(),
        "wf-cp-stopped:/data/sub/",
    ]);
    let id = s
        .ok(&["ps", "-a", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|c| c["Name"] == "wf-cp-stopped")
        .map(|c| c["ID"].as_str().unwrap().to_string())
        .expect("wf-cp-stopped in ps");
    let layer = test_data_root()
        .join("containers")
        .join(id)
        .display()
        .to_string();
    assert_eq!(
        read(&Path::new(&layer).join("upper/data/sub/in.txt")),
        "from the host\n"
    );
    assert!(!r.path().join("data/sub/in.txt").exists());
    // The overlay it was mounted on for the copy was this cp's alone: nothing left on the host.
    assert!(
        !host_mount_points().iter().any(|m| m.contains(&layer)),
        "a mount of {layer} is left"
    );
}

#[test]
fn cp_errors_are_docker_s() {
    if !need_root() {
        return;
    }
    let (s, r) = (StateRoot::new(), rootfs_with_data());
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("f");
    fs::write(&file, "x").unwrap();
    let f = file.display().to_string();
    s.detach(&r, &["--name", "wf-cp-err"], &["sleep", "60"]);
    for (args, says) in [
        (
            vec!["cp", "wf-cp-err:/nope", "/tmp/x"],
            "no such file or directory",
        ),
        (vec!["cp", "nosuch:/data", "/tmp/x"], "no such container"),
        (vec!["cp", &f, "/tmp/x"], "at least one container"),
        (
            vec!["cp", "wf-cp-err:/a", "wf-cp-err:/b"],
            "between containers",
        ),
        (vec!["cp", &f, "wf-cp-err:/nodir/"], "does not exist"),
        (
            vec!["cp", "wf-cp-err:/data", &f],
            "cannot copy a directory to a file",
        ),
    ] {
        let o = s.mb(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// The host's files a hostile container points at: `secret` to read, `victim` to overwrite.
fn host_bait() -> tempfile::TempDir {
    let h = tempfile::Builder::new()
        .prefix("minibox-wf-bait-")
        .tempdir()
        .unwrap();
    fs::write(h.path().join("secret"), "host secret\n").unwrap();
    fs::write(h.path().join("victim"), "host victim\n").unwrap();
    h
}

/// A rootfs whose symlinks point at the host's bait: absolute, climbing, and to one file.
fn hostile_rootfs(bait: &Path) -> Rootfs {
    let r = rootfs_with_data();
    let b = bait.display().to_string();
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, r.path().join(name)).unwrap();
    };
    link(&b, "abs");
    link(&format!("../../../../../../../..{b}"), "data/climb");
    link(&format!("{b}/secret"), "data/secret");
    link(&format!("{b}/victim"), "tmp/victim");
    r
}

fn assert_bait_untouched(bait: &Path) {
    let mut names: Vec<String> = fs::read_dir(bait)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["secret", "victim"],
        "cp wrote into the host's directory"
    );
    assert_eq!(
        read(&bait.join("victim")),
        "host victim\n",
        "cp overwrote a host file"
    );
}

#[test]
fn cp_never_follows_a_containers_symlinks_onto_the_host() {
    if !need_root() {
        return;
    }
    let bait = host_bait();
    let (s, r) = (StateRoot::new(), hostile_rootfs(bait.path()));
    let out = tempfile::tempdir().unwrap();
    let o = |p: &str| out.path().join(p).display().to_string();
    let file = o("payload.txt");
    fs::write(&file, "overwritten\n").unwrap();
    s.detach(&r, &["--name", "wf-cp-evil"], &["sleep", "60"]);
    let out_run = s.mb(&[
        "run",
        "--name",
        "wf-cp-evil-stopped",
        &r.arg(),
        "/payload",
        "id",
    ]);
    assert_eq!(out_run.status.code(), Some(0), "{}", stderr(&out_run));
    for c in ["wf-cp-evil", "wf-cp-evil-stopped"] {
        // Reading through a link resolves inside the container: the host's secret is not there.
        for src in ["/abs/secret", "/data/climb/secret"] {
            let got = s.mb(&["cp", &format!("{c}:{src}"), &o("leak")]);
            assert_eq!(got.status.code(), Some(1), "{c}:{src}: {}", stderr(&got));
            assert!(
                !Path::new(&o("leak")).exists(),
                "{c}:{src} was read from the host"
            );
        }
        // A link itself is copied as a link, never as the file it names.
        s.ok(&["cp", &format!("{c}:/data/secret"), &o(&format!("{c}-link"))]);
        let meta = fs::symlink_metadata(o(&format!("{c}-link"))).unwrap();
        assert!(meta.file_type().is_symlink(), "{c}: the link was followed");
        s.ok(&["cp", &format!("{c}:/data"), &o(&format!("{c}-tree"))]);
        let climb = fs::symlink_metadata(o(&format!("{c}-tree/climb"))).unwrap();
        assert!(climb.file_type().is_symlink());
        // Writing through a link: into the container's own tree, or refused; never the host's.
        for dst in [
            "/abs/",
            "/abs/new",
            "/data/climb/new",
            "/tmp/victim",
            "/data/secret",
        ] {
            let _ = s.mb(&["cp", &file, &format!("{c}:{dst}")]);
            assert_bait_untouched(bait.path());
        }
        let copy_dir = s.mb(&["cp", &o(&format!("{c}-tree")), &format!("{c}:/abs/x")]);
        assert_ne!(copy_dir.status.code(), None);
        assert_bait_untouched(bait.path());
    }
    // What replaced the container's /tmp/victim link is a file of the container's.
    let got = s.ok(&["exec", "wf-cp-evil", "/payload", "cat", "/tmp/victim"]);
    assert_eq!(got, "overwritten\n");
}

#[test]
fn cp_into_a_directory_the_container_swaps_for_a_symlink_stays_inside() {
    if !need_root() {
        return;
    }
    let bait = host_bait();
    let (s, r) = (StateRoot::new(), rootfs_with_data());
    let id = s.detach(&r, &["--name", "wf-cp-race"], &["sleep", "120"]);
    let pid = s.inspect(&id)["Pid"].as_i64().expect("Pid");
    let tmp = format!("/proc/{pid}/root/tmp");
    fs::create_dir(format!("{tmp}/d")).unwrap();
    std::os::unix::fs::symlink(bait.path(), format!("{tmp}/l")).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), "raced\n").unwrap();
    let f = file.path().display().to_string();
    // As the container would: /tmp/d is a directory, then a symlink to the host's directory,
    // swapped atomically as fast as the kernel allows, while cp writes into /tmp/d.
    let stop = std::sync::atomic::AtomicBool::new(false);
    /// Stops the swapping however the loop ends (a failed assertion included).
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let dir = fs::File::open(&tmp).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                nix::fcntl::renameat2(
                    &dir,
                    "d",
                    &dir,
                    "l",
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .unwrap();
            }
        });
        let _stop = Stop(&stop);
        let start = Instant::now();
        let mut copied = 0;
        while start.elapsed() < Duration::from_secs(8) {
            if s.mb(&["cp", &f, "wf-cp-race:/tmp/d/"]).status.success() {
                copied += 1;
            }
            s.mb(&["cp", &f, "wf-cp-race:/tmp/d/named"]);
            assert_bait_untouched(bait.path());
        }
        assert!(copied > 0, "no copy went through: the race was never run");
    });
    assert_bait_untouched(bait.path());
}

/// The README's first command (the one that builds and runs hello).
fn readme_first_command() -> String {
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let block = readme
        .split("```sh\n")
        .nth(1)
        .expect("a sh block in README.md");
    let command = block.split("```").next().unwrap().trim().to_string();
    assert!(command.contains("rootfs-examples/build.sh"), "{command}");
    assert_eq!(command.lines().count(), 1, "{command}");
    command
}

/// Runs the README's first command in a copy of the checkout where every program it runs is a
/// stub that writes one line (its arguments, its uid) to a log, with PATH holding only the
/// stubs and `id`, and `sudo` only when `with_sudo`: what ran, in order.
fn run_readme_command(as_uid: u32, with_sudo: bool) -> (i32, Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::Builder::new()
        .prefix("minibox-wf-readme-")
        .tempdir()
        .unwrap();
    let root = t.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o777)).unwrap();
    let log = root.join("log");
    fs::write(&log, "").unwrap();
    fs::set_permissions(&log, fs::Permissions::from_mode(0o666)).unwrap();
    let stub = |path: &Path, body: &str| {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    };
    let record = |name: &str| format!("echo \"{name} $* uid=$(id -u)\" >> {}", log.display());
    let bin = root.join("bin");
    stub(&bin.join("apt-get"), &record("apt-get"));
    stub(&bin.join("cargo"), &record("cargo"));
    if with_sudo {
        stub(
            &bin.join("sudo"),
            &format!("{}\nexec \"$@\"", record("sudo")),
        );
    }
    std::os::unix::fs::symlink("/usr/bin/id", bin.join("id")).unwrap();
    let checkout = root.join("checkout");
    stub(
        &checkout.join("rootfs-examples/build.sh"),
        &record("build.sh"),
    );
    stub(&checkout.join("target/release/minibox"), &record("minibox"));
    let status = Command::new("/usr/bin/setpriv")
        .args([
            &format!("--reuid={as_uid}"),
            &format!("--regid={as_uid}"),
            "--clear-groups",
            "/bin/sh",
            "-c",
            &readme_first_command(),
        ])
        .current_dir(&checkout)
        .env_clear()
        .env("PATH", &bin)
        .status()
        .unwrap();
    let ran = read(&log).lines().map(String::from).collect();
    (status.code().unwrap_or(-1), ran)
}

#[test]
fn readme_first_command_runs_as_root_without_sudo_and_as_a_user_with_it() {
    if !need_root() {
        return;
    }
    // Root on a fresh Debian: no sudo anywhere, everything runs as root.
    let (code, ran) = run_readme_command(0, false);
    assert_eq!(code, 0, "{ran:?}");
    assert_eq!(
        ran,
        [
            "apt-get update uid=0",
            "apt-get install -y libseccomp-dev pkg-config uid=0",
            "build.sh  uid=0",
            "cargo build --release uid=0",
            "minibox run ./rootfs-examples/hello/rootfs /main uid=0",
        ]
    );
    // A user: apt-get and minibox through sudo, the builds as the user.
    let (code, ran) = run_readme_command(65534, true);
    assert_eq!(code, 0, "{ran:?}");
    assert_eq!(
        ran,
        [
            "sudo apt-get update uid=65534",
            "apt-get update uid=65534",
            "sudo apt-get install -y libseccomp-dev pkg-config uid=65534",
            "apt-get install -y libseccomp-dev pkg-config uid=65534",
            "build.sh  uid=65534",
            "cargo build --release uid=65534",
            "sudo ./target/release/minibox run ./rootfs-examples/hello/rootfs /main uid=65534",
            "minibox run ./rootfs-examples/hello/rootfs /main uid=65534",
        ]
    );
}
