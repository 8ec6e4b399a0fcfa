//! The flags a docker user's scripts rely on (issue 21): `--env-file`, `--ulimit`,
//! `--stop-signal`, `--stop-timeout`, `-P`, `-p PORT`, `/udp`, and `cp`. Each test runs a
//! container and reads what it printed, its limits from /proc, or the files it left. Root
//! only; see tests/common.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

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
        let start = Instant::now();
        loop {
            let logs = self.ok(&["logs", id]);
            if logs.contains(text) {
                return logs;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no {text:?} in {logs:?}"
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
