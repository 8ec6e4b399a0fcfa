//! `--init` (a tiny init as PID 1 that reaps and passes signals on), `top`, and runc's
//! CVE-2019-5736: no process of a container can reach a host binary through /proc/PID/exe.
//! Root only.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::*;

/// `run -d FLAGS ROOTFS /payload ARGS...`; the container's id.
fn detached(r: &Rootfs, flags: &[&str], args: &[&str]) -> String {
    let out = run_payload(r, &[&["-d"], flags].concat(), args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// Waits until the container's log holds `needle`.
fn wait_log(id: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = stdout(&run_minibox(&["logs", id]));
        if logs.contains(needle) {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in the log: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `minibox top ID`, as rows of words (header first).
fn top(id: &str) -> Vec<Vec<String>> {
    let out = run_minibox(&["top", id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

#[test]
fn init_reaps_orphans_that_pid_1_would_leave_as_zombies() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    for (flags, zombies) in [(&[][..], 5), (&["--init"][..], 0)] {
        let id = detached(&r, flags, &["orphans", "5", "30"]);
        wait_log(&id, "orphans 5");
        // The orphans sleep 0.1 s, then exit into PID 1's care.
        std::thread::sleep(Duration::from_millis(800));
        let rows = top(&id);
        run_minibox(&["rm", "-f", &id]);
        assert_eq!(rows[0], ["UID", "PID", "PPID", "CPID", "STAT", "CMD"]);
        let found = rows[1..].iter().filter(|r| r[4] == "Z").count();
        assert_eq!(found, zombies, "{flags:?}: {rows:?}");
        // The first row is the container's PID 1: the init, or CMD itself.
        assert_eq!(rows[1][3], "1", "{rows:?}");
        let first_cmd = rows[1][5..].join(" ");
        if flags.is_empty() {
            assert_eq!(first_cmd, "/payload orphans 5 30");
        } else {
            assert_eq!(first_cmd, "minibox-init /payload /payload orphans 5 30");
            assert_eq!(rows[2][3], "2", "{rows:?}");
        }
    }
}

#[test]
fn init_passes_signals_on_and_keeps_the_exit_status() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // A program that does not handle SIGTERM: as PID 1 the kernel shields it, so stop waits
    // its grace period; under the init, SIGTERM ends it at once.
    let id = detached(&r, &[], &["sleep", "60"]);
    let started = Instant::now();
    run_minibox(&["stop", "-t", "2", &id]);
    assert!(started.elapsed() >= Duration::from_secs(2));
    run_minibox(&["rm", "-f", &id]);
    let id = detached(&r, &["--init"], &["sleep", "60"]);
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let out = run_minibox(&["stop", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        started.elapsed()
    );
    let ps = stdout(&run_minibox(&["ps", "-a", "--format", "json"]));
    let line = ps.lines().find(|l| l.contains(&id)).unwrap_or_default();
    assert!(line.contains("143"), "not ended by SIGTERM: {line}");
    run_minibox(&["rm", "-f", &id]);
    // Any signal reaches CMD.
    let id = detached(&r, &["--init"], &["trap", "2"]);
    wait_log(&id, "ready");
    run_minibox(&["kill", "-s", "USR1", &id]);
    wait_log(&id, "got USR1");
    run_minibox(&["kill", "-s", "HUP", &id]);
    wait_log(&id, "got HUP");
    run_minibox(&["rm", "-f", &id]);
    // CMD's status is the container's.
    for (args, code) in [
        (&["exit", "7"][..], 7),
        (&["kill-self", "TERM"][..], 143),
        (&["exit", "0"][..], 0),
    ] {
        let out = run_payload(&r, &["--init"], args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    }
    let out = run_minibox(&["run", "--init", &r.arg(), "/nope"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("no such file"), "{}", stderr(&out));
}

#[test]
fn no_process_of_the_container_can_reach_a_host_binary_cve_2019_5736() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let bin = minibox_bin();
    let before = fs::read(&bin).unwrap();
    let host = fs::metadata(&bin).unwrap();
    let host_exe = fs::canonicalize(&bin).unwrap().display().to_string();
    for flags in [&["-u", "0"][..], &["-u", "0", "--init"][..]] {
        let out = payload_ok(&r, flags, &["exe-attack"]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(!lines.is_empty(), "{out}");
        for line in &lines {
            assert!(!line.contains("open=ok"), "{flags:?}: {line}");
            assert!(!line.contains("reopen=ok"), "{flags:?}: {line}");
            assert!(!line.contains(&host_exe), "{flags:?}: {line}");
            assert!(
                !line.contains(&format!("dev={} ino={} ", host.dev(), host.ino())),
                "{flags:?}: a process runs the host's minibox: {line}"
            );
        }
        let pid1 = lines.iter().find(|l| l.starts_with("exe 1 ")).unwrap();
        if flags.contains(&"--init") {
            assert!(pid1.contains("target=/memfd:minibox-init"), "{pid1}");
            assert_eq!(lines.len(), 2, "init and CMD: {out}");
        } else {
            assert!(pid1.contains("target=/payload"), "{pid1}");
        }
    }
    assert!(
        fs::read(&bin).unwrap() == before,
        "the host's minibox changed"
    );
}

#[test]
fn top_names_both_pids_and_escapes_what_the_container_chose() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let id = detached(&r, &[], &["later", "30", "\x1b]0;pwned\x07"]);
    std::thread::sleep(Duration::from_millis(200));
    let out = run_minibox(&["top", &id]);
    let text = stdout(&out);
    let row: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    // The host pid is the container's PID 1 as the host sees it.
    let host_status = fs::read_to_string(format!("/proc/{}/status", row[1])).unwrap();
    run_minibox(&["rm", "-f", &id]);
    assert!(
        host_status
            .lines()
            .any(|l| l.starts_with("NSpid:") && l.ends_with("\t1")),
        "{host_status}"
    );
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(
        text.contains("/payload later 30 \\x1b]0;pwned\\x07"),
        "{text}"
    );
    assert_eq!(row[0], "65534", "{text}");
    assert_eq!(row[3], "1", "{text}");
    // An exited or unknown container: one line, status 1.
    let out = run_minibox(&["top", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}
