//! The OCI runtime CLI as engines drive it (runc's conventions): create leaves no minibox
//! process behind and the container waits for start; state, kill, delete, pause, resume,
//! update, ps ID; the console socket; hooks; --log-format json; and each bad input refused in
//! one line, leaving nothing. Root only; see tests/common.

mod common;

use std::fs;
use std::io::IoSliceMut;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::*;

/// A bundle of the test rootfs running `/payload ARGS`, with its own state root.
struct Bundle {
    rootfs: Rootfs,
    dir: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Bundle {
    fn new(args: &[&str]) -> Bundle {
        let rootfs = Rootfs::new();
        let dir = tempfile::Builder::new()
            .prefix("minibox-ocirt-")
            .tempdir()
            .unwrap();
        let state = tempfile::Builder::new()
            .prefix("minibox-ocirt-state-")
            .tempdir_in(test_tmp())
            .unwrap();
        let mut config = common::bundle::spec(&[]);
        config["root"]["path"] = json!(rootfs.arg());
        config["process"]["args"] = json!(std::iter::once("/payload")
            .chain(args.iter().copied())
            .collect::<Vec<_>>());
        let b = Bundle { rootfs, dir, state };
        b.write(&config);
        b
    }

    fn config(&self) -> Value {
        serde_json::from_str(&fs::read_to_string(self.dir.path().join("config.json")).unwrap())
            .unwrap()
    }

    fn write(&self, config: &Value) {
        fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_string_pretty(config).unwrap(),
        )
        .unwrap();
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// `minibox --root STATE ARGS` with stdio of our choosing (the container inherits it).
    fn mb_to(&self, args: &[&str], out: Stdio, err: Stdio) -> Output {
        let child = minibox()
            .arg("--root")
            .arg(self.state.path())
            .args(args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        wait_output(child, Duration::from_secs(30))
    }

    fn mb(&self, args: &[&str]) -> Output {
        self.mb_to(args, Stdio::piped(), Stdio::piped())
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.mb(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// Fails with status 1 and one line holding `needle`.
    fn refused(&self, args: &[&str], needle: &str) {
        let out = self.mb(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?} was accepted: {err}");
        assert!(
            err.contains(needle) && err.lines().count() == 1,
            "{args:?}: {err:?} lacks {needle:?}"
        );
    }

    fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// `create` with the container's output into `log`.
    fn create(&self, id: &str, extra: &[&str], log: &Path) {
        let mut args = vec!["create", "--bundle", self.path()];
        args.extend_from_slice(extra);
        args.push(id);
        let file = fs::File::create(log).unwrap();
        let out = self.mb_to(
            &args,
            Stdio::from(file.try_clone().unwrap()),
            Stdio::from(file),
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "create: {}",
            fs::read_to_string(log).unwrap_or_default()
        );
    }
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// The minibox processes alive now (by their exe: the binary, or a sealed clone or copy of it).
fn minibox_processes() -> Vec<u32> {
    let bin = fs::canonicalize(minibox_bin()).unwrap();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| {
                e == bin
                    || (e.file_name() == bin.file_name() && runs_sealed(*pid))
                    || e.to_string_lossy().starts_with("/memfd:minibox")
            })
        })
        .collect()
}

/// Whether `pid` runs a sealed minibox: a memfd copy, or the binary through a read-only
/// overlayfs (no upper layer: no path through it writes).
fn runs_sealed(pid: u32) -> bool {
    let exe = format!("/proc/{pid}/exe");
    if fs::read_link(&exe).is_ok_and(|e| e.to_string_lossy().starts_with("/memfd:minibox")) {
        return true;
    }
    nix::sys::statfs::statfs(exe.as_str()).is_ok_and(|fs| {
        fs.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC
            && fs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
    })
}

/// runc CVE-2019-5736: while a created container waits for `start`, its process runs minibox's
/// code inside the container's namespaces. Its `/proc/PID/exe` must not be the host's binary,
/// which a process of the container (one that `exec` started, or one sharing its PID namespace)
/// could open and overwrite once minibox exits.
#[test]
fn a_created_container_holds_no_host_binary_cve_2019_5736() {
    if !need_root() {
        return;
    }
    let b = Bundle::new(&["exit", "0"]);
    let log = b.dir.path().join("out");
    let pid_file = b.dir.path().join("pid");
    let bin = minibox_bin();
    let before = fs::read(&bin).unwrap();
    let host = fs::metadata(&bin).unwrap();
    b.create(
        "oci-cve-ro",
        &["--pid-file", pid_file.to_str().unwrap()],
        &log,
    );
    let pid: u32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(runs_sealed(pid), "the waiting init runs {}", exe.display());
    // What the container would get by opening it is not the host's file, and nothing opens it
    // for writing (a sealed memfd: EPERM; a read-only overlayfs: EROFS).
    use std::os::unix::fs::MetadataExt;
    let seen = fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    assert_ne!((seen.dev(), seen.ino()), (host.dev(), host.ino()));
    let write = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"));
    assert!(write.is_err(), "the sealed copy opened for writing");
    // Nor does the attacker's way round: a fresh descriptor of the same file, reopened for
    // writing through /proc/PID/fd (what exe-attack tries in tests/init.rs).
    let read = fs::File::open(format!("/proc/{pid}/exe")).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&read);
    let reopen = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{fd}"));
    assert!(reopen.is_err(), "the sealed copy reopened for writing");
    b.ok(&["start", "oci-cve-ro"]);
    assert!(wait_until(Duration::from_secs(5), || b.state("oci-cve-ro")
        ["status"]
        == "stopped"));
    b.ok(&["delete", "oci-cve-ro"]);
    assert_eq!(fs::read(&bin).unwrap(), before, "the host binary changed");
}

fn ppid(pid: u32) -> u32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn create_waits_without_minibox_and_start_runs_it() {
    if !need_root() {
        return;
    }
    let b = Bundle::new(&["pid"]);
    let log = b.dir.path().join("out");
    let pid_file = b.dir.path().join("pid");
    b.create(
        "oci-life",
        &["--pid-file", pid_file.to_str().unwrap()],
        &log,
    );
    let pid: u32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let s = b.state("oci-life");
    assert_eq!(s["status"], "created");
    assert_eq!(s["id"], "oci-life");
    assert_eq!(s["pid"], pid);
    assert_eq!(
        s["bundle"],
        fs::canonicalize(b.dir.path()).unwrap().to_str().unwrap()
    );
    assert_eq!(
        s["ociVersion"].as_str().map(|v| v.starts_with("1.")),
        Some(true)
    );
    // The waiting process is not a child of any minibox, and none of it is running.
    assert!(process_lives(pid));
    assert!(
        !minibox_processes().contains(&ppid(pid)),
        "a minibox process stayed behind as the container's parent"
    );
    // It is in its own namespaces and cgroup already.
    assert_ne!(
        fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        fs::read_link("/proc/self/ns/pid").unwrap()
    );
    let pids: Vec<u32> =
        serde_json::from_str(&b.ok(&["ps", "--format", "json", "oci-life"])).unwrap();
    assert_eq!(pids, [pid]);
    assert_eq!(fs::read_to_string(&log).unwrap(), "", "ran before start");
    b.ok(&["start", "oci-life"]);
    assert!(wait_until(Duration::from_secs(5), || !process_lives(pid)
        || fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.contains(") Z "))));
    // Its output went to create's own stdout, the OCI contract.
    assert_eq!(fs::read_to_string(&log).unwrap(), "pid=1 ppid=0\n");
    assert!(wait_until(Duration::from_secs(5), || b.state("oci-life")
        ["status"]
        == "stopped"));
    assert_eq!(b.state("oci-life")["pid"], 0);
    b.refused(&["start", "oci-life"], "stopped");
    b.refused(&["kill", "oci-life", "KILL"], "container not running");
    b.ok(&["delete", "oci-life"]);
    b.refused(&["state", "oci-life"], "does not exist");
    assert_eq!(state_leftovers(b.state.path()), Vec::<String>::new());
}

#[test]
fn kill_pause_resume_update_and_delete_force_of_a_running_container() {
    if !need_root() {
        return;
    }
    let b = Bundle::new(&["trap", "1"]);
    let log = b.dir.path().join("out");
    b.create("oci-run", &[], &log);
    b.ok(&["start", "oci-run"]);
    b.refused(&["start", "oci-run"], "already running");
    assert!(wait_until(Duration::from_secs(5), || fs::read_to_string(
        &log
    )
    .unwrap()
    .contains("ready")));
    b.ok(&["pause", "oci-run"]);
    assert_eq!(b.state("oci-run")["status"], "paused");
    b.ok(&["resume", "oci-run"]);
    assert_eq!(b.state("oci-run")["status"], "running");
    let resources = b.dir.path().join("r.json");
    fs::write(
        &resources,
        r#"{"memory":{"limit":67108864},"pids":{"limit":42}}"#,
    )
    .unwrap();
    b.ok(&[
        "update",
        "--resources",
        resources.to_str().unwrap(),
        "oci-run",
    ]);
    let ps: Vec<Value> = b
        .ok(&["ps", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = ps
        .iter()
        .find(|r| r.to_string().contains("oci-run"))
        .unwrap();
    assert!(row.to_string().contains("42"), "{row}");
    let pid = b.state("oci-run")["pid"].as_u64().unwrap() as u32;
    let group = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let pids_group = group.lines().find(|l| l.contains(":pids:")).unwrap();
    let dir = PathBuf::from("/sys/fs/cgroup/pids").join(
        pids_group
            .split(':')
            .nth(2)
            .unwrap()
            .trim_start_matches('/'),
    );
    if dir.exists() {
        assert_eq!(
            fs::read_to_string(dir.join("pids.max")).unwrap().trim(),
            "42"
        );
    }
    b.refused(&["delete", "oci-run"], "running");
    // runc's kill: ID then SIGNAL; the container's trap answers.
    b.ok(&["kill", "oci-run", "USR1"]);
    assert!(wait_until(Duration::from_secs(5), || fs::read_to_string(
        &log
    )
    .unwrap()
    .contains("got USR1")));
    b.refused(&["kill", "oci-run", "NOPE"], "invalid signal");
    b.ok(&["delete", "--force", "oci-run"]);
    assert!(
        !process_lives(pid)
            || fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap()
                .contains(") Z ")
    );
    assert!(!dir.exists(), "the cgroup {} stayed", dir.display());
}

#[test]
fn bad_runtime_input_is_one_line_and_leaves_nothing() {
    if !need_root() {
        return;
    }
    let b = Bundle::new(&["sleep", "5"]);
    let log = b.dir.path().join("out");
    b.create("oci-dup", &[], &log);
    b.refused(
        &["create", "--bundle", b.path(), "oci-dup"],
        "already exists",
    );
    b.refused(
        &["create", "--bundle", b.path(), "bad/id"],
        "invalid container ID",
    );
    for cmd in ["state", "start", "delete", "pause"] {
        b.refused(&[cmd, "oci-nope"], "does not exist");
    }
    b.refused(&["kill", "oci-nope", "TERM"], "does not exist");
    // A terminal without a socket, a socket without a terminal.
    let mut config = b.config();
    config["process"]["terminal"] = json!(true);
    b.write(&config);
    b.refused(
        &["create", "--bundle", b.path(), "oci-tty"],
        "--console-socket",
    );
    // --log-format json: the error, in the shape engines parse.
    let logfile = b.dir.path().join("log.json");
    let out = b.mb(&[
        "--log",
        logfile.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "oci-nope",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let line: Value = serde_json::from_str(fs::read_to_string(&logfile).unwrap().trim()).unwrap();
    assert_eq!(line["level"], "error");
    let msg = line["msg"].as_str().unwrap();
    assert!(msg.contains("oci-nope does not exist"), "{msg}");
    // runc's lines say error in the message too; engines scan it.
    assert!(msg.contains("error"), "{msg}");
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    // A created container can be deleted (it is killed), and only oci-dup was ever made.
    let pid = b.state("oci-dup")["pid"].as_u64().unwrap() as u32;
    b.ok(&["delete", "oci-dup"]);
    assert!(wait_until(Duration::from_secs(5), || !process_lives(pid)
        || fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.contains(") Z "))));
    let left = state_leftovers(b.state.path());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_pty_master_goes_over_the_console_socket() {
    if !need_root() {
        return;
    }
    let b = Bundle::new(&["stdio"]);
    let mut config = b.config();
    config["process"]["terminal"] = json!(true);
    config["process"]["consoleSize"] = json!({"height": 33, "width": 101});
    b.write(&config);
    let sock = b.dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = nix::sys::socket::recvmsg::<()>(
            std::os::fd::AsRawFd::as_raw_fd(&conn),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                nix::sys::socket::ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("an fd");
        // SAFETY (test): the kernel just gave us this descriptor.
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
    let log = b.dir.path().join("out");
    b.create(
        "oci-tty",
        &["--console-socket", sock.to_str().unwrap()],
        &log,
    );
    let master = receiver.join().unwrap();
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY (test): TIOCGWINSZ fills one winsize.
    let rc = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&master),
            libc::TIOCGWINSZ,
            &mut ws,
        )
    };
    assert_eq!(rc, 0);
    assert_eq!((ws.ws_row, ws.ws_col), (33, 101));
    b.ok(&["start", "oci-tty"]);
    let mut master = fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 256];
    assert!(wait_until(Duration::from_secs(5), || {
        use std::io::Read;
        if let Ok(n) = master.read(&mut buf) {
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        text.contains('\n')
    }));
    assert_eq!(text.trim(), "0=chr 1=chr 2=chr", "stdio is the pty");
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "",
        "nothing went to create's stdio"
    );
    assert!(wait_until(Duration::from_secs(5), || b.state("oci-tty")
        ["status"]
        == "stopped"));
    b.ok(&["delete", "oci-tty"]);
}

#[test]
fn hooks_run_at_their_points_with_the_state_on_stdin() {
    if !need_root() {
        return;
    }
    let b = Bundle::new(&["exit", "0"]);
    let out = b.dir.path().to_str().unwrap().to_string();
    let hook = |name: &str| json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {out}/{name}.json")]}]);
    let mut config = b.config();
    config["hooks"] = json!({
        "createRuntime": hook("createRuntime"),
        "createContainer": hook("createContainer"),
        "poststart": hook("poststart"),
        "poststop": hook("poststop"),
        // Inside the container, after the root switch: /payload is the container's.
        "startContainer": [{"path": "/payload", "args": ["payload", "exit", "0"]}],
    });
    b.write(&config);
    let log = b.dir.path().join("out");
    b.create("oci-hooks", &[], &log);
    let read = |name: &str| -> Value {
        serde_json::from_str(
            &fs::read_to_string(b.dir.path().join(format!("{name}.json"))).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(read("createRuntime")["status"], "creating");
    assert_eq!(read("createRuntime")["id"], "oci-hooks");
    assert!(read("createRuntime")["pid"].as_u64().unwrap() > 0);
    assert_eq!(read("createContainer")["id"], "oci-hooks");
    b.ok(&["start", "oci-hooks"]);
    assert_eq!(read("poststart")["status"], "running");
    assert!(wait_until(Duration::from_secs(5), || b.state("oci-hooks")
        ["status"]
        == "stopped"));
    b.ok(&["delete", "oci-hooks"]);
    assert_eq!(read("poststop")["status"], "stopped");
    // A failing createRuntime hook fails create, and leaves nothing; a timeout too.
    config["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]});
    b.write(&config);
    b.refused(
        &["create", "--bundle", b.path(), "oci-hookfail"],
        "hooks.createRuntime[0]",
    );
    config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    b.write(&config);
    b.refused(&["create", "--bundle", b.path(), "oci-hookslow"], "timeout");
    b.refused(&["state", "oci-hookfail"], "does not exist");
    let _ = &b.rootfs;
}

#[test]
fn run_detached_bundle_is_create_and_start_and_features_say_what_minibox_does() {
    if !need_root() {
        return;
    }
    let b = Bundle::new(&["sleep", "30"]);
    let pid_file = b.dir.path().join("pid");
    // The container keeps run's stdio: a file, so that nobody waits for it to close.
    let log = b.dir.path().join("out");
    let file = fs::File::create(&log).unwrap();
    let out = b.mb_to(
        &[
            "run",
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--bundle",
            b.path(),
            "oci-rund",
        ],
        Stdio::null(),
        Stdio::from(file),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        fs::read_to_string(&log).unwrap()
    );
    let pid: u32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(b.state("oci-rund")["status"], "running");
    assert!(!minibox_processes().contains(&ppid(pid)));
    // The docker-style commands find it by its id, which is its name.
    assert!(b.ok(&["ps"]).contains("oci-rund"));
    b.ok(&["kill", "--all", "oci-rund", "KILL"]);
    assert!(wait_until(Duration::from_secs(5), || b.state("oci-rund")
        ["status"]
        == "stopped"));
    b.ok(&["delete", "oci-rund"]);
    let f: Value = serde_json::from_str(&b.ok(&["features"])).unwrap();
    assert_eq!(f["linux"]["seccomp"]["enabled"], false);
    assert!(f["hooks"].as_array().unwrap().len() == 6);
}

/// runc's order: a program that cannot run fails `create` itself (with docker's 127), and
/// leaves nothing; `start` never reports a success that did not happen.
#[test]
fn create_of_a_program_that_cannot_run_fails_and_leaves_nothing() {
    if !need_root() {
        return;
    }
    let b = Bundle::new(&[]);
    let mut config = b.config();
    config["process"]["args"] = json!(["/nope"]);
    b.write(&config);
    let out = b.mb(&["create", "--bundle", b.path(), "oci-nope"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot run \"/nope\""),
        "{}",
        stderr(&out)
    );
    b.refused(&["state", "oci-nope"], "does not exist");
    assert_eq!(state_leftovers(b.state.path()), Vec::<String>::new());
}
