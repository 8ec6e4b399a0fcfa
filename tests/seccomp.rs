//! Seccomp, on by default: Docker's profile turns away the system calls behind the attacks of
//! issue 14 (nested user namespaces, the kernel keyring, perf, io_uring, userfaultfd,
//! READ_IMPLIES_EXEC), whoever the container runs as; `--cap-add` re-allows what Docker ties to
//! the capability; `--security-opt` chooses another profile or none. Root only: each test runs
//! real containers and asks the kernel, from inside, what it answers.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// `probe=OUTCOME` lines of `payload syscalls PROBES...`, by probe.
fn probe(r: &Rootfs, flags: &[&str], probes: &[&str]) -> BTreeMap<String, String> {
    let mut args = vec!["syscalls"];
    args.extend_from_slice(probes);
    let out = payload_ok(r, flags, &args);
    let seen: BTreeMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(seen.len(), probes.len(), "{out}");
    seen
}

/// Asserts each (probe, outcome) pair.
fn expect(seen: &BTreeMap<String, String>, want: &[(&str, &str)], who: &str) {
    for (name, outcome) in want {
        assert_eq!(seen[*name], *outcome, "{who}: {name}; all: {seen:?}");
    }
}

/// `Seccomp:` and `Seccomp_filters:` of the container's /proc/self/status.
fn seccomp_status(r: &Rootfs, flags: &[&str]) -> (String, String) {
    let status = payload_ok(r, flags, &["status"]);
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {key} in {status}"))
    };
    (field("Seccomp:"), field("Seccomp_filters:"))
}

/// What the default profile must turn away, for anyone (issue 14 rows 2, 5, 6, 9, 10).
const DENIED_TO_ALL: [(&str, &str); 10] = [
    ("unshare-user", "EPERM"),
    ("unshare-user-mnt-cgroup", "EPERM"),
    ("keyctl", "EPERM"),
    ("add_key", "EPERM"),
    ("request_key", "EPERM"),
    ("perf_event_open", "EPERM"),
    ("io_uring_setup", "EPERM"),
    ("userfaultfd", "EPERM"),
    ("personality-read-implies-exec", "EPERM"),
    ("set_mempolicy", "EPERM"),
];

/// What it must still allow (or answer as libc expects).
const STILL_WORKS: [(&str, &str); 5] = [
    ("personality-linux", "OK"),
    ("personality-query", "OK"),
    ("getppid", "OK"),
    ("mkdir", "OK"),
    // ENOSYS, not EPERM: glibc then falls back to clone, whose flags the filter checks.
    ("clone3", "ENOSYS"),
];

fn names(pairs: &[(&'static str, &'static str)]) -> Vec<&'static str> {
    pairs.iter().map(|(n, _)| *n).collect()
}

#[test]
fn the_default_filter_turns_the_attacks_away_for_nobody_and_for_root() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let all: Vec<&str> = names(&DENIED_TO_ALL)
        .into_iter()
        .chain(names(&STILL_WORKS))
        .collect();
    for flags in [&[][..], &["-u", "0"][..]] {
        let who = format!("{flags:?}");
        assert_eq!(
            seccomp_status(&r, flags),
            ("2".to_string(), "1".to_string()),
            "{who}"
        );
        let seen = probe(&r, flags, &all);
        expect(&seen, &DENIED_TO_ALL, &who);
        expect(&seen, &STILL_WORKS, &who);
    }
}

#[test]
fn unconfined_means_no_filter_and_the_attacks_work_again() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let flags = ["--security-opt", "seccomp=unconfined"];
    assert_eq!(
        seccomp_status(&r, &flags),
        ("0".to_string(), "0".to_string())
    );
    // What the filter stops is really possible without it: the tests above can fail.
    let seen = probe(
        &r,
        &flags,
        &[
            "unshare-user",
            "unshare-user-mnt-cgroup",
            "keyctl",
            "personality-read-implies-exec",
            "clone3",
        ],
    );
    expect(
        &seen,
        &[
            ("unshare-user", "OK"),
            ("unshare-user-mnt-cgroup", "OK"),
            ("keyctl", "OK"),
            ("personality-read-implies-exec", "OK"),
            // A null clone_args of size 0: the kernel itself says EINVAL.
            ("clone3", "EINVAL"),
        ],
        "unconfined",
    );
}

#[test]
fn cap_add_re_allows_what_docker_ties_to_the_capability() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // Docker's profile allows unshare, setns, mount... and a plain clone3 with CAP_SYS_ADMIN.
    let seen = probe(
        &r,
        &["-u", "0", "--cap-add", "SYS_ADMIN"],
        &["unshare-user", "setns", "clone3", "keyctl", "set_mempolicy"],
    );
    expect(
        &seen,
        &[
            ("unshare-user", "OK"),
            // Allowed through to the kernel, which refuses the bad arguments itself.
            ("setns", "EBADF"),
            ("clone3", "EINVAL"),
            // Not tied to any capability: still denied.
            ("keyctl", "EPERM"),
            ("set_mempolicy", "EPERM"),
        ],
        "-u 0 --cap-add SYS_ADMIN",
    );
    // CAP_SYS_NICE re-allows the NUMA memory policy calls.
    let nice = probe(
        &r,
        &["-u", "0", "--cap-add", "SYS_NICE"],
        &["set_mempolicy", "unshare-user"],
    );
    expect(
        &nice,
        &[("set_mempolicy", "OK"), ("unshare-user", "EPERM")],
        "-u 0 --cap-add SYS_NICE",
    );
    // A non-root container keeps no capability, so --cap-add re-allows nothing.
    let nobody = probe(&r, &["--cap-add", "SYS_ADMIN"], &["unshare-user"]);
    expect(&nobody, &[("unshare-user", "EPERM")], "nobody --cap-add");
}

#[test]
fn a_profile_file_in_dockers_format_decides_per_rule() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.json");
    fs::write(
        &profile,
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO",
                 "includes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]
        }"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let flags = ["--security-opt", opt.as_str()];
    assert_eq!(seccomp_status(&r, &flags).0, "2");
    let seen = probe(&r, &flags, &["mkdir", "getppid", "keyctl", "unshare-user"]);
    expect(
        &seen,
        &[
            ("mkdir", "EACCES"),
            ("getppid", "SIGSYS"),
            // The rule applies only with CAP_SYS_ADMIN, which nobody lacks.
            ("keyctl", "OK"),
            ("unshare-user", "OK"),
        ],
        "custom profile",
    );
    // The old `:` separator works as docker's does.
    let colon = format!("seccomp:{}", profile.display());
    let seen = probe(&r, &["--security-opt", &colon], &["mkdir"]);
    expect(&seen, &[("mkdir", "EACCES")], "seccomp:PATH");
}

#[test]
fn no_new_privileges_is_accepted_since_minibox_always_sets_it() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    for opt in [
        "no-new-privileges",
        "no-new-privileges=true",
        "no-new-privileges:true",
    ] {
        let status = payload_ok(&r, &["--security-opt", opt], &["status"]);
        assert!(status.contains("NoNewPrivs:\t1"), "{opt}: {status}");
    }
}

/// Every directory named `name` below the cgroup mounts (a few levels down).
fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name() == name {
                found.push(e.path());
            }
            if depth < 6 {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    found
}

fn container_dirs(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn bad_profiles_and_options_are_one_line_125_and_leave_nothing() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let state = tempfile::tempdir().unwrap();
    let root = state.path().to_string_lossy().into_owned();
    let parent = format!("mbxseccomp{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        format!("seccomp={}", path.display())
    };
    let malformed = write(
        "malformed.json",
        "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [ {\"names\": [\"read\"] \"action\": 1} ]\n}",
    );
    let bad_action = write(
        "action.json",
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["write"],"action":"SCMP_ACT_PERMIT"}]}"#,
    );
    let bad_op = write(
        "op.json",
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_ALMOST"}]}]}"#,
    );
    let missing = format!("seccomp={}", dir.path().join("missing.json").display());
    // Valid, but too big for the kernel: found by the compiler, after the cgroup was made.
    let rules: Vec<String> = (0..700)
        .map(|v| {
            format!(
                r#"{{"names":["read","write","getpid","getppid"],"action":"SCMP_ACT_ALLOW",
                "args":[{{"index":0,"value":{v},"op":"SCMP_CMP_EQ"}},{{"index":1,"value":{v},"op":"SCMP_CMP_EQ"}}]}}"#
            )
        })
        .collect();
    let too_big = write(
        "big.json",
        &format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{}]}}"#,
            rules.join(",")
        ),
    );
    let cases: Vec<(String, &str)> = vec![
        (malformed, "line 3 column"),
        (
            bad_action,
            "syscalls[1].action: \"SCMP_ACT_PERMIT\" is not a seccomp action",
        ),
        (bad_op, "syscalls[0].args[0].op: \"SCMP_CMP_ALMOST\""),
        (missing, "missing.json: No such file"),
        (too_big, "BPF instructions; the kernel takes 1 to 4096"),
        ("seccomp=".into(), "unsupported --security-opt"),
        ("apparmor=unconfined".into(), "unsupported --security-opt"),
        (
            "no-new-privileges=false".into(),
            "minibox always sets no_new_privs",
        ),
    ];
    for (opt, needle) in &cases {
        let out = minibox()
            .args(["--root", &root, "run", "--security-opt", opt])
            .args(["--cgroup-parent", &parent, "--memory", "64m"])
            .arg(r.arg())
            .args(["/payload", "exit", "0"])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{opt}: {err}");
        assert!(
            err.starts_with("minibox: ") && err.lines().count() == 1,
            "{opt}: {err:?}"
        );
        assert!(err.contains(needle), "{opt}: {needle:?} not in {err:?}");
        assert_eq!(stdout(&out), "", "{opt}");
        assert_eq!(container_dirs(state.path()), Vec::<PathBuf>::new(), "{opt}");
        assert_eq!(cgroup_dirs_named(&parent), Vec::<PathBuf>::new(), "{opt}");
    }
    let ps = minibox()
        .args(["--root", &root, "ps", "-a", "-q"])
        .output()
        .unwrap();
    assert_eq!(stdout(&ps), "");
}

/// `--explain`'s seccomp step, while the container runs.
fn explained_seccomp(r: &Rootfs, flags: &[&str]) -> String {
    let mut child = minibox()
        .args(["run", "--explain"])
        .args(flags)
        .arg(r.arg())
        .args(["/payload", "exit", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    let mut inside = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.starts_with('[') {
            inside = line.contains("] seccomp ");
            assert!(
                !inside || line.starts_with("[8/10] seccomp "),
                "the seccomp step is the 8th of 10: {line}"
            );
        }
        if inside {
            text.push_str(line.trim());
            text.push('\n');
        }
    }
    assert_eq!(
        wait_deadline(&mut child, Duration::from_secs(30)).code(),
        Some(0)
    );
    text
}

#[test]
fn explain_says_which_filter_and_what_the_kernel_holds() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let text = explained_seccomp(&r, &[]);
    assert!(
        text.contains("seccomp     profile docker default: "),
        "{text}"
    );
    // As many as the profile lists for x86_64 and libseccomp knows: well over 300.
    let allowed: usize = text
        .split("docker default: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(allowed > 300, "{text}");
    assert!(text.contains("default errno 1 (EPERM)"), "{text}");
    assert!(
        text.contains("kernel: Seccomp: 2 (filter), Seccomp_filters: 1"),
        "{text}"
    );
    let text = explained_seccomp(&r, &["--security-opt", "seccomp=unconfined"]);
    assert!(text.contains("unconfined: no filter"), "{text}");
    assert!(text.contains("kernel: Seccomp: 0 (none)"), "{text}");
}

#[test]
fn inspect_shows_the_filter_in_force() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    for (flags, profile, mode, filters) in [
        (&[][..], "docker default", 2, 1),
        (
            &["--security-opt", "seccomp=unconfined"][..],
            "unconfined",
            0,
            0,
        ),
    ] {
        let out = minibox()
            .args(["run", "-d"])
            .args(flags)
            .arg(r.arg())
            .args(["/payload", "sleep", "30"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let id = stdout(&out).trim().to_string();
        let json = stdout(&minibox().args(["inspect", &id]).output().unwrap());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        minibox().args(["rm", "-f", &id]).output().unwrap();
        assert_eq!(v["Seccomp"]["Profile"], profile, "{json}");
        assert_eq!(v["Seccomp"]["Mode"], mode, "{json}");
        assert_eq!(v["Seccomp"]["Filters"], filters, "{json}");
    }
}
