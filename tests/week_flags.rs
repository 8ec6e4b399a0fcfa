//! The flags a docker user's scripts rely on (issue 21): `--env-file`, `--ulimit`,
//! `--stop-signal`, `--stop-timeout`, `-P`, `-p PORT`, `/udp`, and `cp`. Each test runs a
//! container and reads what it printed, its limits from /proc, or the files it left. Root
//! only; see tests/common.

mod common;

use std::fs;

use common::*;

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
