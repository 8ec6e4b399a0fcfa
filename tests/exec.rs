//! `minibox exec`: a new process in a running container, in all its namespaces and its
//! cgroup, with its credentials, capabilities, seccomp filter, environment and working
//! directory; docker's form and the OCI runtime's; and no way for the container to reach the
//! host's minibox binary while it joins (CVE-2019-5736). Root only.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{openpty, Winsize};

use common::*;

/// `run -d FLAGS ROOTFS /payload ARGS...`; the container's id.
fn detached(r: &Rootfs, flags: &[&str], args: &[&str]) -> String {
    let out = run_payload(r, &[&["-d"], flags].concat(), args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

/// Removes the container when the test ends, however it ends.
struct Gone(String);
impl Drop for Gone {
    fn drop(&mut self) {
        run_minibox(&["rm", "-f", &self.0]);
    }
}

/// The host pid of the container's first process, from its state record.
fn first_pid(id: &str) -> i32 {
    let text = fs::read_to_string(test_state_root().join(id).join("state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["pid"]["pid"]
        .as_i64()
        .expect("a running container has a pid") as i32
}

/// `minibox exec ARGS...`, to its end.
fn exec(args: &[&str]) -> std::process::Output {
    run_minibox(&[&["exec"], args].concat())
}

/// Like `exec`, asserting status 0; its stdout.
fn exec_ok(args: &[&str]) -> String {
    let out = exec(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "exec {args:?}: {}",
        stderr(&out)
    );
    stdout(&out)
}

/// The host pid of the container's process whose command line is `cmd`, from `minibox top`.
fn pid_in_top(id: &str, cmd: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = run_minibox(&["top", id]);
        let found = stdout(&out)
            .lines()
            .find(|l| l.ends_with(cmd))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok());
        if let Some(pid) = found {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "{cmd:?} not in top: {}",
            stdout(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lines of /proc/PID/status that start with one of `keys`.
fn status_lines(text: &str, keys: &[&str]) -> Vec<String> {
    text.lines()
        .filter(|l| keys.iter().any(|k| l.starts_with(k)))
        .map(String::from)
        .collect()
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_the_container_and_top_shows_it() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let id = detached(&r, &["--pids-limit", "50"], &["sleep", "60"]);
    let _gone = Gone(id.clone());
    let first = first_pid(&id);
    let out = exec(&["-d", &id, "/payload", "sleep", "31"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid = pid_in_top(&id, "/payload sleep 31");
    for ns in ["mnt", "pid", "uts", "ipc", "net", "cgroup", "time"] {
        let theirs = fs::read_link(format!("/proc/{first}/ns/{ns}"));
        let ours = fs::read_link(format!("/proc/{pid}/ns/{ns}"));
        if ns == "time" && theirs.is_err() {
            continue;
        }
        assert_eq!(ours.unwrap(), theirs.unwrap(), "{ns} namespace");
    }
    // Not the host's: the container's own namespaces were joined.
    assert_ne!(
        fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
        fs::read_link("/proc/self/ns/mnt").unwrap()
    );
    let cgroup = |p: i32| fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cgroup(pid), cgroup(first));
    assert!(cgroup(pid).contains(&id), "{}", cgroup(pid));
    // Inside, it has a pid of the container's namespace, and the container's pid 1 sees it.
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status_lines(&status, &["NSpid:"]).join("");
    assert_eq!(nspid.split_whitespace().count(), 3, "{nspid}");
    let seen = exec_ok(&[&id, "/payload", "pids"]);
    let inner: String = nspid.split_whitespace().last().unwrap().into();
    assert!(seen.lines().any(|l| l == inner), "{seen}");
}

#[test]
fn exec_has_the_containers_credentials_capabilities_and_seccomp_filter() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("profile.json");
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    for flags in [
        vec!["-u", "0", "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN"],
        vec!["-u", "mbxtester"],
    ] {
        let flags: Vec<&str> = [&flags[..], &["--security-opt", &opt]].concat();
        let id = detached(&r, &flags, &["sleep", "60"]);
        let _gone = Gone(id.clone());
        let host = fs::read_to_string(format!("/proc/{}/status", first_pid(&id))).unwrap();
        let keys = [
            "Uid:",
            "Gid:",
            "Groups:",
            "CapInh:",
            "CapPrm:",
            "CapEff:",
            "CapBnd:",
            "CapAmb:",
            "NoNewPrivs:",
            "Seccomp:",
            "Seccomp_filters:",
        ];
        let want = status_lines(&host, &keys);
        assert!(want.contains(&"Seccomp:\t2".to_string()), "{want:?}");
        // payload `status` prints the Cap/NoNewPrivs/Seccomp lines; `cat` gives them all.
        let got = exec_ok(&[&id, "/payload", "cat", "/proc/self/status"]);
        assert_eq!(status_lines(&got, &keys), want, "{flags:?}");
        // The same filter: what the profile denies is denied to the exec'd process too.
        let probe = exec_ok(&[&id, "/payload", "syscalls", "mkdir"]);
        assert_eq!(probe.trim(), "mkdir=EACCES", "{flags:?}");
    }
}

#[test]
fn exec_keeps_status_user_workdir_and_environment() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let id = detached(&r, &["-e", "FROMRUN=1", "-w", "/tmp"], &["sleep", "60"]);
    let _gone = Gone(id.clone());
    let code = |args: &[&str]| exec(&[&[id.as_str()], args].concat()).status.code();
    assert_eq!(code(&["/payload", "exit", "7"]), Some(7));
    assert_eq!(code(&["/payload", "exit", "0"]), Some(0));
    let out = exec(&[&id, "/nope"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("no such file"), "{}", stderr(&out));
    let out = exec(&[&id, "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    // A process exec cannot set up is docker's 126 too, in one line naming why.
    for (flags, why) in [
        (&["-u", "nosuch"][..], "unknown user \"nosuch\""),
        (&["-w", "/nonexistent-dir"][..], "/nonexistent-dir"),
    ] {
        let out = exec(&[flags, &[id.as_str(), "/payload", "exit", "0"]].concat());
        assert_eq!(out.status.code(), Some(126), "{flags:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{flags:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    }
    // The container's user, or -u (a uid, or a name from the container's own passwd).
    assert!(exec_ok(&[&id, "/payload", "id"]).starts_with("uid=65534 "));
    assert!(exec_ok(&["-u", "0", &id, "/payload", "id"]).starts_with("uid=0 "));
    let named = exec_ok(&["-u", "mbxtester", &id, "/payload", "id"]);
    assert!(
        named.starts_with("uid=1000 ") && named.contains("groups=29,44"),
        "{named}"
    );
    // Its working directory, or -w.
    assert_eq!(exec_ok(&[&id, "/payload", "cwd"]).trim(), "/tmp");
    assert_eq!(
        exec_ok(&["-w", "/etc", &id, "/payload", "cwd"]).trim(),
        "/etc"
    );
    // Its environment, and -e on top.
    let env = exec_ok(&["-e", "EXTRA=2", "-e", "FROMRUN=3", &id, "/payload", "env"]);
    let short = &id[..12];
    for want in [
        "FROMRUN=3",
        "EXTRA=2",
        &format!("HOSTNAME={short}"),
        "PATH=",
    ] {
        assert!(env.lines().any(|l| l.starts_with(want)), "{want} in {env}");
    }
    assert!(exec_ok(&[&id, "/payload", "env"]).contains("FROMRUN=1\n"));
    // -u NAME gets that user's home.
    let env = exec_ok(&["-u", "mbxtester", &id, "/payload", "env"]);
    assert!(env.contains("HOME=/home/mbxtester\n"), "{env}");
}

#[test]
fn exec_into_an_exited_or_unknown_container_is_one_line_and_status_1() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let out = run_payload(&r, &["--name", "exec-exited"], &["exit", "0"]);
    assert_eq!(out.status.code(), Some(0));
    let _gone = Gone("exec-exited".into());
    for (container, want) in [
        ("exec-exited", "container exec-exited is not running"),
        ("exec-no-such", "no such container: exec-no-such"),
    ] {
        let out = exec(&[container, "/payload", "id"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn exec_i_passes_stdin_and_d_returns_at_once() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let id = detached(&r, &[], &["sleep", "60"]);
    let _gone = Gone(id.clone());
    let feed = |flags: &[&str]| {
        let mut child = minibox()
            .args([&["exec"], flags, &[&id, "/payload", "count-stdin"]].concat())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"one\ntwo\n");
        drop(stdin);
        stdout(&wait_output(child, Duration::from_secs(30)))
    };
    assert_eq!(feed(&["-i"]).trim(), "bytes=8 lines=2 first=one");
    assert_eq!(feed(&[]).trim(), "bytes=0 lines=0 first=");
    let began = Instant::now();
    let out = exec(&["-d", &id, "/payload", "sleep", "5"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    let pid = pid_in_top(&id, "/payload sleep 5");
    assert!(fs::metadata(format!("/proc/{pid}")).is_ok());
}

#[test]
fn exec_t_gets_a_terminal_of_the_containers_own() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let id = detached(&r, &[], &["sleep", "60"]);
    let _gone = Gone(id.clone());
    let size = Winsize {
        ws_row: 27,
        ws_col: 91,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&size), None).unwrap();
    let mut master = File::from(pty.master);
    let slave: OwnedFd = pty.slave;
    let io = || Stdio::from(slave.try_clone().unwrap());
    let mut cmd = minibox();
    cmd.args(["exec", "-it", &id, "/payload", "tty-info"])
        .stdin(io())
        .stdout(io())
        .stderr(io());
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
    let mut child = cmd.spawn().unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(50u16)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            if let Ok(n) = master.read(&mut buf) {
                seen.extend_from_slice(&buf[..n]);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "exec -it did not finish");
    };
    let shown = String::from_utf8_lossy(&seen);
    assert_eq!(status.code(), Some(0), "{shown}");
    for want in [
        "isatty=1,1,1",
        "session_leader=1",
        "foreground=own",
        "ctty=ok",
        "size=27x91",
        "term=xterm",
    ] {
        assert!(shown.contains(want), "{want} missing in {shown:?}");
    }
    let ours = nix::sys::stat::fstat(&slave).unwrap();
    assert!(
        !shown.contains(&format!("stdin={}:{}", ours.st_dev, ours.st_rdev)),
        "{shown}"
    );
}

#[test]
fn the_oci_form_runs_a_process_json_and_writes_its_pid_file() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let id = detached(&r, &["--name", "exec-oci"], &["sleep", "60"]);
    let _gone = Gone(id.clone());
    let dir = tempfile::tempdir().unwrap();
    let process = |args: &str| {
        let path = dir.path().join("process.json");
        fs::write(
            &path,
            format!(
                r#"{{"terminal": false, "user": {{"uid": 1000, "gid": 1000}},
                    "args": {args}, "env": ["PATH=/bin", "FROMJSON=yes"], "cwd": "/tmp",
                    "noNewPrivileges": true,
                    "rlimits": [{{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}}]}}"#
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    // In the foreground: the caller's own stdout (the OCI contract), the status kept.
    let file = process(r#"["/payload", "env"]"#);
    let out = exec(&["--process", &file, "exec-oci"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "PATH=/bin\nFROMJSON=yes\n");
    let file = process(r#"["/payload", "cwd"]"#);
    assert_eq!(exec_ok(&["--process", &file, "exec-oci"]).trim(), "/tmp");
    let file = process(r#"["/payload", "exit", "9"]"#);
    assert_eq!(
        exec(&["--process", &file, "exec-oci"]).status.code(),
        Some(9)
    );
    // Detached: minibox returns, leaves no process of its own, and the pid file holds the
    // process's host pid.
    let file = process(r#"["/payload", "sleep", "30"]"#);
    let pid_file = dir.path().join("pid");
    let pid_arg = pid_file.display().to_string();
    // (The process keeps the caller's stdio, as the OCI contract has it: not the test's pipes.)
    let status = minibox()
        .args([
            "exec",
            "--process",
            &file,
            "--detach",
            "--pid-file",
            &pid_arg,
            "exec-oci",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("Uid:\t1000\t1000\t1000\t1000"), "{status}");
    let ppid: i32 = status_lines(&status, &["PPid:"])[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let parent = fs::read_link(format!("/proc/{ppid}/exe")).unwrap_or_default();
    assert!(
        !parent.display().to_string().contains("minibox"),
        "{parent:?}"
    );
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains("256") && l.contains("512")),
        "{limits}"
    );
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        fs::read_link(format!("/proc/{}/ns/pid", first_pid(&id))).unwrap()
    );
    // runc's flags without --process.
    let out = exec(&[
        "--cwd",
        "/etc",
        "--user",
        "0:0",
        "--pid-file",
        &pid_arg,
        "exec-oci",
        "/payload",
        "cwd",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "/etc");
}

#[test]
fn a_container_made_from_a_bundle_is_exec_able() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let bundle = tempfile::tempdir().unwrap();
    let out = run_minibox(&["spec", &r.arg(), "/payload", "sleep", "60"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fs::write(bundle.path().join("config.json"), &out.stdout).unwrap();
    let dir = bundle.path().display().to_string();
    // runc's `run -d`: the container keeps the caller's stdio (the OCI contract), so it gets
    // none of ours to hold open.
    let status = minibox()
        .args(["run", "-d", "--bundle", &dir, "exec-bundle"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let _gone = Gone("exec-bundle".into());
    assert!(exec_ok(&["exec-bundle", "/payload", "id"]).starts_with("uid=65534 "));
}

#[test]
fn no_container_process_can_open_minibox_while_exec_joins_cve_2019_5736() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // The exploit's own CMD: a script whose interpreter is the joining process's exe.
    fs::write(r.path().join("evil"), "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(r.path().join("evil"), fs::Permissions::from_mode(0o755)).unwrap();
    let bin = minibox_bin();
    let before = fs::read(&bin).unwrap();
    let host = fs::metadata(&bin).unwrap();
    let id = detached(&r, &["-u", "0"], &["exe-watch", "6"]);
    let _gone = Gone(id.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stdout(&run_minibox(&["logs", &id])).contains("watching") {
        assert!(Instant::now() < deadline, "the watcher never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let began = Instant::now();
    let mut runs = 0;
    while began.elapsed() < Duration::from_secs(4) {
        let out = exec(&["-u", "0", &id, "/payload", "exit", "0"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        exec(&["-u", "0", &id, "/evil"]);
        runs += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let log = stdout(&run_minibox(&["logs", &id]));
        if log.contains("done") {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher never finished: {log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(runs >= 3, "{runs}");
    let seen: BTreeMap<&str, &str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("seen "))
        .map(|l| (l, l))
        .collect();
    // The joining processes were seen, and what they run could not even be looked at.
    assert!(seen.keys().any(|l| l.starts_with("target=EACCES")), "{log}");
    let host_inode = format!("dev={} ino={} ", host.dev(), host.ino());
    for line in log.lines() {
        assert!(
            !line.contains("-ok "),
            "an open for writing succeeded: {line}\n{log}"
        );
        assert!(
            !line.contains(&host_inode),
            "the host's minibox was reachable: {line}"
        );
    }
    assert!(
        fs::read(&bin).unwrap() == before,
        "the host's minibox changed"
    );
}
