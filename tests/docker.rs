//! Docker drives minibox (issue 19): Debian's dockerd 20.10 (package docker.io), started by the
//! test inside a throwaway network+mount namespace (`unshare --net --mount --fork`, a tmpfs on
//! /run) with its own data root, exec root, socket, pidfile and cgroup parent, no iptables, no
//! bridge, and minibox added as the runtime `minibox` (`--add-runtime`). The seed's hello image
//! and a payload image are `docker load`ed from archives the test builds; then `docker run
//! --runtime minibox --network none` as a docker user runs it: `--rm` with exit statuses,
//! `-d` + `logs` + `exec` + `stop`, `-it` through a pty, `--memory` (checked in the cgroup).
//! Afterwards nothing is left: no container, no dockerd or containerd, no process in the
//! namespace, no cgroup. Root only.

mod common;
#[path = "common/images.rs"]
mod images_common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde_json::json;

use common::*;
use images_common::{docker_save, hello_config, hello_layer, payload_layer};

/// Debian's docker.io CLI and daemon (not whatever else a PATH may hold).
const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";

/// A dockerd of the test's own, in a network and mount namespace of its own.
struct Dockerd {
    dir: tempfile::TempDir,
    /// `unshare`, whose child is dockerd.
    namespace: Child,
    /// The namespace's network namespace (dev, inode), to find what is left in it.
    netns: (u64, u64),
    cgroup_parent: String,
}

impl Dockerd {
    fn start() -> Dockerd {
        for (path, package) in [(DOCKER, "docker.io"), (DOCKERD, "docker.io")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install Debian's {package} (tests/run-all.sh does)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("mbx-docker-")
            .tempdir_in(test_tmp())
            .unwrap();
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}").unwrap();
        let cgroup_parent = format!("mbxdocker-{}", std::process::id());
        let runtime = format!("minibox={}", minibox_bin().display());
        // dockerd's managed containerd and the shims live in the namespace too; /run is a
        // tmpfs of its own there, so nothing of the host's /run is seen or written.
        let script = r#"mount -t tmpfs tmpfs /run && exec "$@""#;
        let namespace = Command::new("unshare")
            .args([
                "--net", "--mount", "--fork", "sh", "-c", script, "sh", DOCKERD,
            ])
            .arg(format!("--config-file={}", d.join("daemon.json").display()))
            .arg(format!("--data-root={}", d.join("data").display()))
            .arg(format!("--exec-root={}", d.join("exec").display()))
            .arg(format!("--host=unix://{}", d.join("docker.sock").display()))
            .arg(format!("--pidfile={}", d.join("docker.pid").display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-forward=false",
                "--storage-driver=vfs",
            ])
            .arg(format!("--cgroup-parent={cgroup_parent}"))
            .arg(format!("--add-runtime={runtime}"))
            .stdin(Stdio::null())
            .stdout(File::create(d.join("dockerd.log")).unwrap())
            .stderr(File::create(d.join("dockerd.err")).unwrap())
            .spawn()
            .unwrap();
        let mut daemon = Dockerd {
            dir,
            namespace,
            netns: (0, 0),
            cgroup_parent,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if daemon.docker(&["version"]).status.success() {
                break;
            }
            if let Ok(Some(status)) = daemon.namespace.try_wait() {
                panic!("dockerd ended ({status}): {}", daemon.log());
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer: {}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let pid = daemon.pid();
        use std::os::unix::fs::MetadataExt;
        let ns = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap();
        daemon.netns = (ns.dev(), ns.ino());
        assert_ne!(
            daemon.netns,
            {
                let own = std::fs::metadata("/proc/self/ns/net").unwrap();
                (own.dev(), own.ino())
            },
            "dockerd runs in the host's network namespace"
        );
        daemon
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn pid(&self) -> i32 {
        std::fs::read_to_string(self.path().join("docker.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.path().join(f)).unwrap_or_default();
        let text = read("dockerd.err") + &read("dockerd.log");
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    fn cli(&self) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.arg("-H")
            .arg(format!(
                "unix://{}",
                self.path().join("docker.sock").display()
            ))
            .stdin(Stdio::null());
        cmd
    }

    /// `docker ARGS` to its end (60 s at most).
    fn docker(&self, args: &[&str]) -> Output {
        let child = self
            .cli()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_output(child, Duration::from_secs(60))
    }

    /// `docker ARGS`, which must succeed; its stdout, trimmed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}{}\ndockerd: {}",
            stdout(&out),
            stderr(&out),
            self.log()
        );
        stdout(&out).trim().to_string()
    }

    fn load(&self, name: &str, archive: &[u8]) {
        let file = self.path().join(format!("{name}.tar"));
        std::fs::write(&file, archive).unwrap();
        let said = self.ok(&["load", "-i", file.to_str().unwrap()]);
        assert!(said.contains(name), "{said}");
    }

    /// Processes still in the namespace's network namespace.
    fn processes_in_namespace(&self) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        let mut left = vec![];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(ns) = std::fs::metadata(format!("/proc/{name}/ns/net")) else {
                continue;
            };
            if (ns.dev(), ns.ino()) == self.netns {
                let cmd = std::fs::read_to_string(format!("/proc/{name}/cmdline"))
                    .unwrap_or_default()
                    .replace('\0', " ");
                left.push(format!("{name}: {cmd}"));
            }
        }
        left
    }

    fn kill_all_in_namespace(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let left = self.processes_in_namespace();
            if left.is_empty() {
                return;
            }
            for p in left {
                if let Some(Ok(pid)) = p.split(':').next().map(str::parse::<i32>) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The groups named as the daemon's cgroup parent, in every hierarchy (the name holds the
    /// test's pid: no one else's).
    fn cgroup_parents(&self) -> Vec<PathBuf> {
        fn find(dir: &Path, name: &str, depth: usize, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if e.file_name() == name {
                    out.push(e.path());
                } else if depth > 0 {
                    find(&e.path(), name, depth - 1, out);
                }
            }
        }
        let mut out = vec![];
        find(
            Path::new("/sys/fs/cgroup"),
            &self.cgroup_parent,
            4,
            &mut out,
        );
        out
    }

    /// Stops everything it ran, then itself; returns what stayed behind.
    fn stop(&mut self) -> Vec<String> {
        let ids = self.docker(&["ps", "-aq"]);
        for id in stdout(&ids).split_whitespace() {
            self.docker(&["rm", "-f", id]);
        }
        if let Ok(pid) = std::fs::read_to_string(self.path().join("docker.pid")) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.namespace.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.namespace.kill();
                let _ = self.namespace.wait();
                return vec![format!("dockerd did not stop: {}", self.log())];
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut left = self.processes_in_namespace();
        for group in self.cgroup_parents() {
            // Empty groups only: rmdir refuses one with processes or children.
            let mut below: Vec<PathBuf> = walk_dirs(&group);
            below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for dir in below {
                if let Err(e) = std::fs::remove_dir(&dir) {
                    left.push(format!("cgroup {}: {e}", dir.display()));
                }
            }
        }
        left
    }
}

fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk_dirs(&e.path()));
        }
    }
    out
}

impl Drop for Dockerd {
    /// After a failure too: dockerd goes, then whatever stayed in its namespace is killed and
    /// the groups go.
    fn drop(&mut self) {
        if self.namespace.try_wait().ok().flatten().is_none() {
            let _ = self.stop();
        }
        if !self.processes_in_namespace().is_empty() {
            self.kill_all_in_namespace();
            let _ = self.stop();
        }
    }
}

/// A pseudo-terminal for `docker run -it`: docker runs on its slave, the test types into and
/// reads its master.
struct Pty {
    master: File,
    slave: OwnedFd,
    seen: Vec<u8>,
}

impl Pty {
    fn new() -> Pty {
        let size = nix::pty::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        Pty {
            master: File::from(pty.master),
            slave: pty.slave,
            seen: vec![],
        }
    }

    fn spawn(&self, mut cmd: Command) -> Child {
        let io = || Stdio::from(self.slave.try_clone().unwrap());
        cmd.stdin(io()).stdout(io()).stderr(io());
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn().unwrap()
    }

    fn read_some(&mut self, ms: u16) {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.master.read(&mut buf) {
                self.seen.extend_from_slice(&buf[..n]);
            }
        }
    }

    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared on the terminal: {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            self.read_some(100);
        }
    }
}

/// The host path of a process's memory cgroup limit file (v1 or v2) and its value.
fn memory_limit_of(pid: &str) -> (PathBuf, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let line = |want: &dyn Fn(&str) -> bool| {
        text.lines().find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, list, path) = (p.next()?, p.next()?, p.next()?);
            want(list).then(|| path.trim_start_matches('/').to_string())
        })
    };
    let file = match line(&|list| list.split(',').any(|c| c == "memory")) {
        Some(path) => Path::new("/sys/fs/cgroup/memory")
            .join(path)
            .join("memory.limit_in_bytes"),
        None => Path::new("/sys/fs/cgroup")
            .join(line(&|list| list.is_empty()).unwrap())
            .join("memory.max"),
    };
    let value = std::fs::read_to_string(&file).unwrap().trim().to_string();
    (file, value)
}

#[test]
fn docker_runs_containers_with_minibox_as_its_runtime() {
    if !need_root() {
        return;
    }
    let mut d = Dockerd::start();
    d.load(
        "mbx-hello",
        &docker_save(&[hello_layer()], &hello_config(), "mbx-hello:latest"),
    );
    d.load(
        "mbx-payload",
        &docker_save(
            &[payload_layer()],
            &json!({"Cmd": ["/payload", "id"]}),
            "mbx-payload:latest",
        ),
    );
    let run = ["run", "--runtime", "minibox", "--network", "none"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        run.iter().chain(extra).copied().collect()
    };
    let docker = |args: Vec<&str>| d.docker(&args);

    // --rm, and docker's exit statuses: the program's own, 127 not found, 126 not executable.
    let out = docker(with(&["--rm", "mbx-payload"]));
    assert_eq!(out.status.code(), Some(0), "{}{}", stderr(&out), d.log());
    assert!(stdout(&out).starts_with("uid=0 "), "{}", stdout(&out));
    let out = docker(with(&["--rm", "mbx-payload", "/payload", "exit", "3"]));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = docker(with(&["--rm", "mbx-payload", "/nope"]));
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let out = docker(with(&["--rm", "mbx-payload", "/etc/passwd"]));
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    // -d, logs, exec, stop: the program sees SIGTERM from `docker stop` and ends by itself.
    let id = d.ok(&with(&["-d", "mbx-payload", "/payload", "trap", "1"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.ok(&["logs", &id]).contains("ready") {
        assert!(Instant::now() < deadline, "no ready in the logs");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        d.ok(&["exec", &id, "/payload", "pid"]).split(' ').count(),
        2
    );
    let exec_id = d.ok(&["exec", "-u", "65534", &id, "/payload", "id"]);
    assert!(exec_id.starts_with("uid=65534 "), "{exec_id}");
    let out = d.docker(&["exec", &id, "/payload", "exit", "5"]);
    assert_eq!(out.status.code(), Some(5));
    d.ok(&["stop", "-t", "10", &id]);
    assert!(d.ok(&["logs", &id]).contains("got TERM"));
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &id]), "0");
    d.ok(&["rm", &id]);

    // The hello server, detached: it says it listens.
    let hello = d.ok(&with(&["-d", "mbx-hello"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !d.ok(&["logs", &hello]).contains("Start listening") {
        assert!(Instant::now() < deadline, "hello said nothing: {}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", &hello]);
    let uid = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(uid.contains("Uid:\t65534\t"), "{uid}");
    d.ok(&["rm", "-f", &hello]);

    // --memory: the container's cgroup holds the limit.
    let limited = d.ok(&with(&[
        "-d",
        "--memory",
        "64m",
        "mbx-payload",
        "/payload",
        "sleep",
        "60",
    ]));
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", &limited]);
    let (file, value) = memory_limit_of(&pid);
    assert_eq!(value, (64u64 << 20).to_string(), "{}", file.display());
    assert!(
        file.to_string_lossy().contains(&d.cgroup_parent),
        "{} is not below --cgroup-parent {}",
        file.display(),
        d.cgroup_parent
    );
    d.ok(&["rm", "-f", &limited]);

    // -it through a terminal: what is typed reaches the program, its status comes back.
    let mut pty = Pty::new();
    let mut cmd = d.cli();
    cmd.args(run)
        .args(["--rm", "-it", "mbx-payload", "/payload", "echo-lines"]);
    let mut child = pty.spawn(cmd);
    std::thread::sleep(Duration::from_millis(500));
    pty.master.write_all(b"hello there\r").unwrap();
    pty.wait_for("got: hello there");
    pty.master.write_all(b"exit 4\r").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "docker run -it did not end");
        pty.read_some(50);
    };
    assert_eq!(
        status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&pty.seen)
    );

    // Nothing left: no container, no process in the namespace, no cgroup.
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let left = d.stop();
    assert!(left.is_empty(), "left behind: {left:?}");
}
