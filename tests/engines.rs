//! minibox under real engines, as their runtime: podman (through conmon) and containerd
//! (through its runc v2 shim, `ctr run --runc-binary`). Each engine is started with private
//! state directories under a temp dir; the image is the test rootfs, imported from a tarball.
//! Root only; see tests/common. Needs `podman` and `containerd` (.ci/run installs them).
//!
//! Measured here: podman's default nofile and nproc ulimits exceed this machine's hard limits
//! (nofile 20000), and every runtime, runc included, fails setrlimit with EPERM: the tests give
//! podman `--ulimit nofile=20000:20000 --ulimit nproc=4096:4096`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=4096:4096",
];

fn run(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is it installed? .ci/run installs it)"));
    wait_output(child, limit)
}

fn ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd, Duration::from_secs(120));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{shown}: stdout {:?} stderr {:?}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The test rootfs as a tarball, for `podman import`.
fn rootfs_tarball(rootfs: &Rootfs, dir: &Path) -> PathBuf {
    let tar = dir.join("rootfs.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(rootfs.path())
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// podman with every directory of its own under `dir`, and minibox as its runtime.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        Podman {
            dir: tempfile::Builder::new()
                // podman refuses a runroot path longer than 50 characters: the system's /tmp.
                .prefix("mbx-podman-")
                .tempdir()
                .unwrap(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(["--storage-driver", "vfs"])
            .arg("--runtime")
            .arg(minibox_bin())
            .args(args);
        c
    }

    fn import(&self, rootfs: &Rootfs) -> String {
        let tar = rootfs_tarball(rootfs, self.dir.path());
        ok(&mut self.cmd(&[
            "import",
            tar.to_str().unwrap(),
            "localhost/minibox-test:latest",
        ]));
        "localhost/minibox-test:latest".into()
    }
}

#[test]
fn podman_runs_its_containers_with_minibox() {
    if !need_root() {
        return;
    }
    let rootfs = Rootfs::new();
    let p = Podman::new();
    let image = p.import(&rootfs);
    let podman_run = |extra: &[&str], payload: &[&str]| {
        let mut args = vec!["run", "--network", "none"];
        args.extend_from_slice(&ULIMITS);
        args.extend_from_slice(extra);
        args.push(&image);
        args.push("/payload");
        args.extend_from_slice(payload);
        p.cmd(&args)
    };
    // Foreground, removed after: its output and its exit status come back through conmon.
    let out = ok(&mut podman_run(&["--rm"], &["cat", "/.marker"]));
    assert_eq!(out.trim(), rootfs.marker);
    let out = run(
        &mut podman_run(&["--rm"], &["exit", "7"]),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    // Detached: ps, logs, stop (its trap answers TERM), rm.
    let id = ok(&mut podman_run(&["-d"], &["trap", "1"]))
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = ok(&mut p.cmd(&["ps", "--no-trunc", "--format", "{{.ID}} {{.Status}}"]));
    assert!(ps.contains(&id) && ps.contains("Up"), "{ps}");
    // exec: podman calls `minibox exec --process FILE --detach --pid-file ...` through conmon;
    // the process is in the container (its PID namespace: not pid 1, but a low pid), with
    // the container's user, and its exit status comes back.
    let out = ok(&mut p.cmd(&["exec", &id, "/payload", "id"]));
    assert!(out.starts_with("uid=0 "), "{out}");
    let out = ok(&mut p.cmd(&["exec", &id, "/payload", "pid"]));
    assert!(
        out.starts_with("pid=") && !out.starts_with("pid=1 "),
        "{out}"
    );
    let out = run(
        &mut p.cmd(&["exec", &id, "/payload", "exit", "5"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    ok(&mut p.cmd(&["stop", "-t", "10", &id]));
    let logs = ok(&mut p.cmd(&["logs", &id]));
    assert!(
        logs.contains("ready") && logs.contains("got TERM"),
        "{logs}"
    );
    let ps = ok(&mut p.cmd(&["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Status}}"]));
    assert!(ps.contains(&format!("{id} Exited (0)")), "{ps}");
    ok(&mut p.cmd(&["rm", &id]));
    // -t: the container's stdio is a terminal (the pty minibox sent conmon).
    let out = ok(&mut podman_run(&["--rm", "-t"], &["stdio"]));
    assert_eq!(out.trim(), "0=chr 1=chr 2=chr");
}

/// containerd with its own root, state and socket under a temp dir, killed when dropped.
struct Containerd {
    dir: tempfile::TempDir,
    daemon: Child,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::Builder::new()
            // A unix socket's path has at most 108 bytes: the system's /tmp.
            .prefix("mbx-ctd-")
            .tempdir()
            .unwrap();
        let d = dir.path().display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("containerd (is it installed? .ci/run installs it)");
        let c = Containerd { dir, daemon };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while run(&mut c.ctr(&["version"]), Duration::from_secs(10))
            .status
            .code()
            != Some(0)
        {
            assert!(
                std::time::Instant::now() < deadline,
                "containerd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.dir.path().join("c.sock"))
            .args(args);
        c
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn containerd_runs_its_tasks_with_minibox_through_the_runc_shim() {
    if !need_root() {
        return;
    }
    let rootfs = Rootfs::new();
    // The image: imported into podman from the rootfs tarball, saved as an OCI archive.
    let p = Podman::new();
    let image = p.import(&rootfs);
    let archive = p.dir.path().join("image.oci.tar");
    ok(&mut p.cmd(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        &image,
    ]));
    let c = Containerd::start();
    ok(&mut c.ctr(&["images", "import", archive.to_str().unwrap()]));
    let bin = minibox_bin();
    let bin = bin.to_str().unwrap();
    let out = ok(&mut c.ctr(&[
        "run",
        "--runc-binary",
        bin,
        "--rm",
        &image,
        "mbx-ctd-1",
        "/payload",
        "cat",
        "/.marker",
    ]));
    assert_eq!(out.trim(), rootfs.marker);
    let out = run(
        &mut c.ctr(&[
            "run",
            "--runc-binary",
            bin,
            "--rm",
            &image,
            "mbx-ctd-2",
            "/payload",
            "exit",
            "3",
        ]),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Detached: ps, pause, resume, kill, delete through the shim.
    ok(&mut c.ctr(&[
        "run",
        "-d",
        "--runc-binary",
        bin,
        &image,
        "mbx-ctd-3",
        "/payload",
        "sleep",
        "60",
    ]));
    let ps = ok(&mut c.ctr(&["task", "ps", "mbx-ctd-3"]));
    assert!(ps.lines().count() >= 2, "{ps}");
    ok(&mut c.ctr(&["task", "pause", "mbx-ctd-3"]));
    assert!(ok(&mut c.ctr(&["task", "ls"])).contains("PAUSED"));
    ok(&mut c.ctr(&["task", "resume", "mbx-ctd-3"]));
    ok(&mut c.ctr(&["task", "kill", "-s", "SIGKILL", "mbx-ctd-3"]));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ok(&mut c.ctr(&["task", "ls"])).contains("STOPPED") {
        assert!(
            std::time::Instant::now() < deadline,
            "the task did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(&mut c.ctr(&["task", "delete", "mbx-ctd-3"]));
    ok(&mut c.ctr(&["container", "delete", "mbx-ctd-3"]));
}
