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
