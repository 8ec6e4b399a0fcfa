//! A docker user's lifecycle (issue 21): `pause`/`unpause` by name (the cgroup freezer really
//! holds the processes), a paused container that `stop`, `kill` and `rm -f` still end; `start`
//! of an exited container (its files kept, `-a`/`-i` giving its output and status), `restart`,
//! `--restart` policies kept by the supervisor, `wait`, `rename`. Each test runs containers in
//! a state root of its own and checks pids, freezer files and exit codes. Root only; see
//! tests/common.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A state root of our own; whatever still runs in it is removed at the end.
struct StateRoot(tempfile::TempDir);

impl StateRoot {
    fn new() -> StateRoot {
        StateRoot(
            tempfile::Builder::new()
                .prefix("minibox-wl-state-")
                .tempdir()
                .unwrap(),
        )
    }

    fn root(&self) -> String {
        self.0.path().to_string_lossy().into_owned()
    }

    /// `minibox --root ROOT ARGS...`
    fn mb(&self, args: &[&str]) -> Output {
        let root = self.root();
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

    fn inspect(&self, key: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", key])).unwrap()
    }

    /// The container's row of `ps -a --format json`.
    fn row(&self, key: &str) -> serde_json::Value {
        self.ok(&["ps", "-a", "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["Name"] == key || v["ID"] == key)
            .unwrap_or_else(|| panic!("{key} not in ps -a"))
    }

    /// The host pid of the container's first process, once it runs.
    fn pid(&self, key: &str) -> u32 {
        let v = self.row(key);
        let pid = v["Pid"].as_u64().unwrap_or(0) as u32;
        assert!(pid > 0, "{key} has no pid: {v}");
        pid
    }

    /// The container's freezer state as the kernel says: true while frozen.
    fn frozen(&self, key: &str) -> bool {
        let row = self.row(key);
        let paths: Vec<PathBuf> = row["Cgroup"]["paths"]
            .as_array()
            .expect("a cgroup")
            .iter()
            .map(|p| PathBuf::from(p.as_str().unwrap()))
            .collect();
        match row["Cgroup"]["driver"].as_str() {
            Some("cgroup v2") => {
                let events = std::fs::read_to_string(paths[0].join("cgroup.events")).unwrap();
                events.lines().any(|l| l == "frozen 1")
            }
            _ => {
                let freezer = paths
                    .iter()
                    .find(|p| p.starts_with("/sys/fs/cgroup/freezer"))
                    .expect("a freezer group");
                let state = std::fs::read_to_string(freezer.join("freezer.state")).unwrap();
                state.trim() == "FROZEN"
            }
        }
    }

    /// Polls `check` for up to 20 s.
    fn until(&self, what: &str, check: impl Fn() -> bool) {
        let start = Instant::now();
        while !check() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "waited for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// Where a pid's process stands (`/proc/PID/stat` field 3), or `None` once it is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

fn gone(pid: u32) -> bool {
    matches!(proc_state(pid), None | Some('Z') | Some('X'))
}

#[test]
fn pause_by_name_freezes_and_ps_inspect_and_state_say_paused() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    let id = s.detach(&r, &["--name", "wl-pause"], &["sleep", "60"]);
    assert!(!s.frozen("wl-pause"));
    assert_eq!(s.ok(&["pause", "wl-pause"]).trim(), "wl-pause");
    assert!(s.frozen("wl-pause"), "the freezer does not hold it");
    let ps = s.ok(&["ps"]);
    let line = ps.lines().find(|l| l.contains("wl-pause")).unwrap();
    assert!(line.contains("(Paused)"), "{ps}");
    assert_eq!(s.row("wl-pause")["State"], "paused");
    let v = s.inspect("wl-pause");
    assert_eq!(v["State"]["Status"], "paused", "{v}");
    assert_eq!(v["State"]["Paused"], true);
    let state: serde_json::Value = serde_json::from_str(&s.ok(&["state", &id])).unwrap();
    assert_eq!(state["status"], "paused");
    // docker's errors, status 1.
    let again = s.mb(&["pause", "wl-pause"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already paused"),
        "{}",
        stderr(&again)
    );
    // docker's word and runc's both thaw.
    assert_eq!(s.ok(&["unpause", "wl-pause"]).trim(), "wl-pause");
    assert!(!s.frozen("wl-pause"));
    assert_eq!(s.inspect("wl-pause")["State"]["Status"], "running");
    s.ok(&["pause", &id[..12]]);
    assert!(s.frozen("wl-pause"));
    s.ok(&["resume", "wl-pause"]);
    assert!(!s.frozen("wl-pause"));
    let not_paused = s.mb(&["unpause", "wl-pause"]);
    assert_eq!(not_paused.status.code(), Some(1));
    assert!(stderr(&not_paused).contains("not paused"));
}

#[test]
fn stop_of_a_paused_container_thaws_it_and_finishes() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    // `trap` answers TERM by exiting: the stop signal must reach a thawed process.
    s.detach(&r, &["--name", "wl-pstop"], &["trap", "1"]);
    let pid = s.pid("wl-pstop");
    s.ok(&["pause", "wl-pstop"]);
    assert!(s.frozen("wl-pstop"));
    let began = Instant::now();
    assert_eq!(s.ok(&["stop", "-t", "5", "wl-pstop"]).trim(), "wl-pstop");
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "stop took {:?}: TERM did not reach it",
        began.elapsed()
    );
    assert!(gone(pid), "pid {pid} lives on");
    let v = s.inspect("wl-pstop");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["State"]["ExitCode"], 0, "trap exits 0 after TERM: {v}");
}

#[test]
fn kill_of_a_paused_container_ends_it() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    s.detach(&r, &["--name", "wl-pkill"], &["sleep", "60"]);
    let pid = s.pid("wl-pkill");
    s.ok(&["pause", "wl-pkill"]);
    assert!(s.frozen("wl-pkill"));
    s.ok(&["kill", "wl-pkill"]);
    s.until("the killed container to exit", || {
        s.row("wl-pkill")["State"] == "exited"
    });
    assert!(gone(pid));
    assert_eq!(s.inspect("wl-pkill")["State"]["ExitCode"], 137);
}

#[test]
fn rm_f_of_a_paused_container_removes_it() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    s.detach(&r, &["--name", "wl-prm"], &["sleep", "60"]);
    let pid = s.pid("wl-prm");
    let group = s.row("wl-prm")["Cgroup"]["paths"][0]
        .as_str()
        .unwrap()
        .to_string();
    s.ok(&["pause", "wl-prm"]);
    assert!(s.frozen("wl-prm"));
    let began = Instant::now();
    assert_eq!(s.ok(&["rm", "-f", "wl-prm"]).trim(), "wl-prm");
    assert!(began.elapsed() < Duration::from_secs(5));
    assert!(gone(pid), "pid {pid} lives on");
    assert!(!Path::new(&group).exists(), "{group} is left");
    assert!(!s.ok(&["ps", "-a"]).contains("wl-prm"));
}

#[test]
fn start_runs_an_exited_container_again_with_its_files_and_a_gives_its_status() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    // First run: the file is not there yet (cat fails).
    s.detach(&r, &["--name", "wl-start"], &["cat", "/tmp/planted"]);
    assert_eq!(s.ok(&["wait", "wl-start"]).trim(), "1");
    // Planted into its own layer while it is stopped; `start` must find it there.
    let host = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(host.path(), "kept across starts\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    s.ok(&["cp", host.path().to_str().unwrap(), "wl-start:/tmp/planted"]);
    let out = s.mb(&["start", "-a", "wl-start"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "kept across starts\n");
    assert!(!r.path().join("tmp/planted").exists(), "ROOTFS was written");
    // Detached: prints the name; `wait` gives the status.
    assert_eq!(s.ok(&["start", "wl-start"]).trim(), "wl-start");
    assert_eq!(s.ok(&["wait", "wl-start"]).trim(), "0");
    // -a's status is the container's.
    s.detach(&r, &["--name", "wl-start3"], &["exit", "3"]);
    s.ok(&["wait", "wl-start3"]);
    assert_eq!(s.mb(&["start", "-a", "wl-start3"]).status.code(), Some(3));
}

#[test]
fn start_i_feeds_stdin() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    s.detach(&r, &["--name", "wl-stdin"], &["count-stdin"]);
    s.ok(&["wait", "wl-stdin"]);
    assert!(s.ok(&["logs", "wl-stdin"]).contains("bytes=0"));
    let root = s.root();
    let mut child = minibox()
        .args(["--root", &root, "start", "-i", "wl-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"first line\nsecond\n")
        .unwrap();
    let out = wait_output(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("bytes=18 lines=2 first=first line"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn runc_start_of_an_unknown_id_fails_as_before() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let out = s.mb(&["start", "wl-nothing-here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let many = s.mb(&["start", "-a", "wl-x", "wl-y"]);
    assert_eq!(many.status.code(), Some(1));
    assert!(stderr(&many).contains("cannot start and attach multiple"));
}

#[test]
fn on_failure_restarts_with_a_backoff_then_gives_up() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    let began = Instant::now();
    s.detach(
        &r,
        &["--name", "wl-onfail", "--restart", "on-failure:2"],
        &["later", "0.2", "exit", "3"],
    );
    // Between runs ps says so, as docker's.
    s.until("ps to say Restarting", || {
        s.ok(&["ps"])
            .lines()
            .any(|l| l.contains("wl-onfail") && l.contains("Restarting (3)"))
    });
    assert_eq!(s.ok(&["wait", "wl-onfail"]).trim(), "3");
    // Three runs of 0.2 s, and waits of 100 then 200 ms between them.
    assert!(
        began.elapsed() >= Duration::from_millis(900),
        "{:?}",
        began.elapsed()
    );
    let v = s.inspect("wl-onfail");
    assert_eq!(v["RestartCount"], 2, "{v}");
    assert_eq!(v["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(s.row("wl-onfail")["RestartCount"], 2);
    // Given up for good: nothing starts it later.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(s.inspect("wl-onfail")["RestartCount"], 2);
    // A clean exit is no failure.
    s.detach(
        &r,
        &["--name", "wl-onok", "--restart", "on-failure"],
        &["exit", "0"],
    );
    assert_eq!(s.ok(&["wait", "wl-onok"]).trim(), "0");
    assert_eq!(s.inspect("wl-onok")["RestartCount"], 0);
}

#[test]
fn always_restarts_a_new_process_until_stop() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    s.detach(
        &r,
        &["--init", "--name", "wl-always", "--restart", "always"],
        &["sleep", "60"],
    );
    let first = s.pid("wl-always");
    // Ended by a signal (passed on by --init: PID 1 ignores what it does not handle) that is neither KILL nor its stop signal: the policy brings it back.
    s.ok(&["kill", "-s", "USR1", "wl-always"]);
    s.until("a second process", || {
        let v = s.row("wl-always");
        v["State"] == "running" && v["Pid"].as_u64().is_some_and(|p| p != first as u64)
    });
    let second = s.pid("wl-always");
    assert!(gone(first) && !gone(second));
    assert_eq!(s.inspect("wl-always")["RestartCount"], 1);
    // stop ends it, and the policy with it.
    assert_eq!(s.ok(&["stop", "-t", "1", "wl-always"]).trim(), "wl-always");
    assert!(gone(second));
    std::thread::sleep(Duration::from_millis(500));
    let v = s.inspect("wl-always");
    assert_eq!(v["State"]["Status"], "exited", "{v}");
    assert_eq!(v["RestartCount"], 1);
    assert!(!s.ok(&["ps"]).contains("wl-always"));
    // `start` puts the policy back in force.
    s.ok(&["start", "wl-always"]);
    let third = s.pid("wl-always");
    s.ok(&["kill", "-s", "USR1", "wl-always"]);
    s.until("a fourth process", || {
        let v = s.row("wl-always");
        v["State"] == "running" && v["Pid"].as_u64().is_some_and(|p| p != third as u64)
    });
    // KILL ends the policy too.
    s.ok(&["kill", "wl-always"]);
    assert_eq!(s.ok(&["wait", "wl-always"]).trim(), "137");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.inspect("wl-always")["State"]["Status"], "exited");
}

#[test]
fn published_ports_serve_the_restarted_process() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    s.detach(
        &r,
        &[
            "--init",
            "--name",
            "wl-port",
            "--restart",
            "always",
            "-p",
            "127.0.0.1::8080",
        ],
        &["http", "8080"],
    );
    let port_line = s.ok(&["port", "wl-port"]);
    let port: u16 = port_line
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ask = || -> Option<String> {
        let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut answer = String::new();
        c.read_to_string(&mut answer).ok()?;
        Some(answer)
    };
    s.until("the first answer", || {
        ask().is_some_and(|a| a.contains("payload 8080"))
    });
    let first = s.pid("wl-port");
    s.ok(&["kill", "-s", "USR1", "wl-port"]);
    s.until("the restarted process", || {
        let v = s.row("wl-port");
        v["State"] == "running" && v["Pid"].as_u64().is_some_and(|p| p != first as u64)
    });
    s.until("an answer from the restarted process", || {
        ask().is_some_and(|a| a.contains("payload 8080"))
    });
    assert_eq!(s.ok(&["port", "wl-port"]), port_line, "the host port moved");
}

#[test]
fn restart_gives_a_new_process() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    s.detach(&r, &["--name", "wl-restart"], &["sleep", "60"]);
    let first = s.pid("wl-restart");
    let began = Instant::now();
    assert_eq!(
        s.ok(&["restart", "-t", "1", "wl-restart"]).trim(),
        "wl-restart"
    );
    assert!(began.elapsed() < Duration::from_secs(5));
    let second = s.pid("wl-restart");
    assert_ne!(first, second);
    assert!(gone(first) && !gone(second));
    assert_eq!(s.inspect("wl-restart")["State"]["Status"], "running");
    // An exited one just starts.
    s.ok(&["stop", "-t", "0", "wl-restart"]);
    s.ok(&["restart", "wl-restart"]);
    assert!(!gone(s.pid("wl-restart")));
}

#[test]
fn wait_prints_each_exit_code() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    // Long enough that a loaded machine's second `run -d` cannot outlast it.
    s.detach(&r, &["--name", "wl-wait3"], &["later", "2", "exit", "3"]);
    s.detach(&r, &["--name", "wl-wait0"], &["later", "0.1", "exit", "0"]);
    let began = Instant::now();
    assert_eq!(s.ok(&["wait", "wl-wait3", "wl-wait0"]), "3\n0\n");
    assert!(
        began.elapsed() >= Duration::from_millis(500),
        "wait returned before wl-wait3 ended"
    );
    let missing = s.mb(&["wait", "wl-wait0", "wl-nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stdout(&missing), "0\n");
    assert!(stderr(&missing).contains("no such container: wl-nope"));
}

#[test]
fn rename_keeps_names_unique() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    let id = s.detach(&r, &["--name", "wl-old"], &["sleep", "60"]);
    s.detach(&r, &["--name", "wl-taken"], &["sleep", "60"]);
    s.ok(&["rename", "wl-old", "wl-new"]);
    assert_eq!(s.inspect("wl-new")["Id"], id.as_str());
    assert_eq!(s.mb(&["inspect", "wl-old"]).status.code(), Some(1));
    let taken = s.mb(&["rename", "wl-new", "wl-taken"]);
    assert_eq!(taken.status.code(), Some(1));
    assert!(
        stderr(&taken).contains("already in use"),
        "{}",
        stderr(&taken)
    );
    let bad = s.mb(&["rename", "wl-new", "-bad name"]);
    assert_ne!(bad.status.code(), Some(0));
    assert_eq!(s.inspect("wl-new")["Name"], "wl-new");
    // The running container answers to its new name.
    s.ok(&["stop", "-t", "0", "wl-new"]);
}

#[test]
fn restart_and_rm_conflict_and_leave_nothing() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    let out = s.mb(&[
        "run",
        "--rm",
        "--restart",
        "always",
        &r.arg(),
        "/payload",
        "exit",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("--restart and --rm"),
        "{}",
        stderr(&out)
    );
    let bad = s.mb(&[
        "run",
        "--restart",
        "sometimes",
        &r.arg(),
        "/payload",
        "exit",
        "0",
    ]);
    assert_eq!(bad.status.code(), Some(125));
    assert!(stderr(&bad).contains("on-failure"), "{}", stderr(&bad));
    assert_eq!(s.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn a_signal_to_a_foreground_supervisor_ends_the_policy() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    let root = s.root();
    let child = minibox()
        .args([
            "--root",
            &root,
            "run",
            "--init",
            "--name",
            "wl-fg",
            "--restart",
            "always",
            &r.arg(),
            "/payload",
            "sleep",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    s.until("the foreground container to run", || {
        s.ok(&["ps", "-q"]).lines().count() == 1 && s.row("wl-fg")["State"] == "running"
    });
    let pid = s.pid("wl-fg");
    // What Ctrl-C (or a service manager's TERM) does to `minibox run`: passed on, and final.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = wait_output(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));
    assert!(gone(pid));
    let v = s.row("wl-fg");
    assert_eq!(v["State"], "exited", "{v}");
    assert_eq!(v["RestartCount"], 0, "{v}");
}

#[test]
fn stop_and_rm_of_a_restarting_container_end_the_policy() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    for name in ["wl-loop-stop", "wl-loop-rm"] {
        s.detach(&r, &["--name", name, "--restart", "always"], &["exit", "1"]);
    }
    // Waits of 100, 200, 400, 800 ms: by the fourth restart it spends most time waiting.
    s.until("four restarts", || {
        ["wl-loop-stop", "wl-loop-rm"]
            .iter()
            .all(|n| s.row(n)["RestartCount"].as_u64() >= Some(4))
    });
    let refused = s.mb(&["rm", "wl-loop-rm"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("restarting") || stderr(&refused).contains("running"),
        "{}",
        stderr(&refused)
    );
    let began = Instant::now();
    s.ok(&["stop", "wl-loop-stop"]);
    s.ok(&["rm", "-f", "wl-loop-rm"]);
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    assert!(!s.ok(&["ps", "-a"]).contains("wl-loop-rm"));
    let count = s.row("wl-loop-stop")["RestartCount"].as_u64();
    std::thread::sleep(Duration::from_secs(2));
    let v = s.row("wl-loop-stop");
    assert_eq!(v["State"], "exited", "{v}");
    assert_eq!(
        v["RestartCount"].as_u64(),
        count,
        "it was started again: {v}"
    );
    assert!(!s.ok(&["ps"]).contains("wl-loop-stop"));
}

/// In a throwaway network and mount namespace playing the host (as tests/bridge_network.rs
/// does): nothing of the real host's interfaces or firewall is touched.
#[test]
fn rename_on_a_bridge_network_renames_it_in_the_neighbours_hosts() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let dir = tempfile::Builder::new()
        .prefix("minibox-wl-nethost-")
        .tempdir()
        .unwrap();
    let d = dir.path().display().to_string();
    let script = format!(
        r#"set -e
mount -t tmpfs tmpfs {d}
ip link set lo up
M="{bin} --root {d}/state --data-root {d}/data"
$M network create wl-net >/dev/null
A=$($M run -d --network wl-net --name wl-ren-a {rootfs} /payload sleep 60)
B=$($M run -d --network wl-net --name wl-ren-b {rootfs} /payload sleep 60)
$M rename wl-ren-a wl-ren-c
echo "hosts:"; cat {d}/state/$B/hosts
echo "resolved:"; $M exec wl-ren-b /payload resolve wl-ren-c
$M rm -f wl-ren-c wl-ren-b >/dev/null
$M network rm wl-net >/dev/null
"#,
        bin = minibox_bin().display(),
        rootfs = r.arg(),
    );
    let child = std::process::Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "sh", "-c"])
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_output(child, Duration::from_secs(60));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let hosts = text.split("resolved:").next().unwrap();
    assert!(hosts.contains("wl-ren-c"), "{text}");
    assert!(!hosts.contains("wl-ren-a"), "{text}");
    let resolved = text.split("resolved:").nth(1).unwrap();
    assert!(resolved.trim().starts_with("10."), "{text}");
}

/// docker's attach to a container without a terminal: what it writes from then on, Ctrl-C
/// passed on to it, and its status as attach's.
#[test]
fn attach_to_a_container_without_a_terminal_follows_its_output_and_passes_signals_on() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    s.detach(&r, &["--name", "wl-attach"], &["trap", "1"]);
    s.until("the container is ready", || {
        stdout(&s.mb(&["logs", "wl-attach"])).contains("ready")
    });
    let attach = std::process::Command::new(minibox_bin())
        .args(["--root", &s.root(), "attach", "wl-attach"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // attach is following once it has looked the container up; a signal before would end it.
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(attach.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = attach.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Only what came after attach: "ready" was written before it.
    assert_eq!(stdout(&out), "got INT\n");
    assert_eq!(s.inspect("wl-attach")["State"]["Status"], "exited");
    // A foreground container's output is its own terminal's: refused in one line.
    s.ok(&[
        "run",
        "--name",
        "wl-attach-fg",
        &r.arg(),
        "/payload",
        "exit",
        "0",
    ]);
    let fg = s.mb(&["attach", "wl-attach-fg"]);
    assert_eq!(fg.status.code(), Some(1));
}

/// `system prune` leaves a container its restart policy is about to start again (docker's
/// rule), and says nothing failed.
#[test]
fn prune_leaves_a_restarting_container() {
    if !need_root() {
        return;
    }
    let s = StateRoot::new();
    let r = Rootfs::new();
    s.detach(
        &r,
        &["--name", "wl-prune", "--restart", "always"],
        &["exit", "1"],
    );
    s.until("the container waits for its next run", || {
        s.inspect("wl-prune")["State"]["Restarting"] == true
    });
    let out = s.mb(&["system", "prune", "-f"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        s.inspect("wl-prune")["Name"]
            .as_str()
            .map(|n| n.trim_start_matches('/')),
        Some("wl-prune")
    );
    s.ok(&["rm", "-f", "wl-prune"]);
}
