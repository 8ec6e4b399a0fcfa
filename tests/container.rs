//! `minibox run`: the container checked from inside (with the test payload) and from outside.
//! Root only; see tests/common.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::BufReader;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// Docker's 14 default capabilities less NET_RAW (bit 13) as a /proc/self/status mask.
const DOCKER_DEFAULT_CAPS: &str = "00000000a80405fb";
const ZERO_CAPS: &str = "0000000000000000";

fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

#[test]
fn runs_as_nobody_with_no_groups_by_default() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    assert_eq!(
        payload_ok(&r, &[], &["id"]).trim(),
        "uid=65534 euid=65534 suid=65534 gid=65534 egid=65534 sgid=65534 groups="
    );
}

#[test]
fn user_is_resolved_in_the_rootfs_passwd_and_group() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let id = payload_ok(&r, &["--user", "mbxtester"], &["id"]);
    assert_eq!(
        id.trim(),
        "uid=1000 euid=1000 suid=1000 gid=1000 egid=1000 sgid=1000 groups=29,44"
    );
    let env = payload_ok(&r, &["--user", "mbxtester"], &["env"]);
    assert!(env.lines().any(|l| l == "HOME=/home/mbxtester"), "{env}");
    let id = payload_ok(&r, &["-u", "4242:mbxaudio"], &["id"]);
    assert_eq!(
        id.trim(),
        "uid=4242 euid=4242 suid=4242 gid=29 egid=29 sgid=29 groups="
    );
}

#[test]
fn nobody_has_no_capabilities_and_no_new_privs() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let status = payload_ok(&r, &[], &["status"]);
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(&status, set), ZERO_CAPS, "{set}");
    }
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
}

#[test]
fn root_keeps_dockers_default_capabilities_adjustable() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let status = payload_ok(&r, &["--user", "0"], &["status"]);
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(status_field(&status, set), DOCKER_DEFAULT_CAPS, "{set}");
    }
    assert_eq!(status_field(&status, "CapInh"), ZERO_CAPS);
    assert_eq!(status_field(&status, "CapAmb"), ZERO_CAPS);
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");

    // +NET_ADMIN (bit 12), -CHOWN (bit 0).
    let status = payload_ok(
        &r,
        &["-u", "0", "--cap-add", "NET_ADMIN", "--cap-drop", "chown"],
        &["status"],
    );
    let expected = format!("{:016x}", (0xa80405fbu64 | 1 << 12) & !1);
    assert_eq!(status_field(&status, "CapEff"), expected);
    assert_eq!(status_field(&status, "CapBnd"), expected);
}

#[test]
fn hostname_is_the_short_id_or_the_flag() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let host = payload_ok(&r, &[], &["hostname"]);
    let host = host.trim();
    assert_eq!(host.len(), 12, "{host}");
    assert!(host.chars().all(|c| c.is_ascii_hexdigit()), "{host}");
    let env = payload_ok(&r, &[], &["env"]);
    assert_eq!(
        env.lines().filter(|l| l.starts_with("HOSTNAME=")).count(),
        1
    );
    assert_eq!(
        payload_ok(&r, &["--hostname", "box-1"], &["hostname"]).trim(),
        "box-1"
    );
    let ours = nix::unistd::gethostname().unwrap();
    assert_ne!(ours.to_string_lossy(), "box-1");
}

#[test]
fn command_is_pid_1_and_sees_no_host_process() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    assert_eq!(payload_ok(&r, &[], &["pid"]).trim(), "pid=1 ppid=0");
    assert_eq!(payload_ok(&r, &[], &["pids"]).trim(), "1");
}

#[test]
fn the_rootfs_is_slash_and_no_host_mount_is_visible() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    assert_eq!(payload_ok(&r, &[], &["cat", "/.marker"]), r.marker);
    let mounts = payload_ok(&r, &[], &["cat", "/proc/self/mountinfo"]);
    let allowed: BTreeSet<&str> = [
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
        "/proc/asound",
        "/sys/devices/virtual/powercap",
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        // minibox's generated files, as docker mounts them.
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
    ]
    .into();
    let seen = mount_points(&mounts);
    for m in &seen {
        assert!(
            allowed.contains(m.as_str()),
            "unexpected mount {m} inside:\n{mounts}"
        );
    }
    assert_eq!(seen.iter().filter(|m| *m == "/").count(), 1, "{mounts}");
    let root_line = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    // `/` is the overlay of ROOTFS and the container's own layer, nodev; the host paths
    // behind it are not named (the layers reach overlayfs as /proc/self/fd/N).
    let fs_type = root_line
        .split(" - ")
        .nth(1)
        .and_then(|t| t.split(' ').next());
    assert_eq!(fs_type, Some("overlay"), "{root_line}");
    assert!(root_line.contains(",nodev"), "{root_line}");
    assert!(
        !root_line.contains(r.path().to_str().unwrap()),
        "{root_line}"
    );
}

#[test]
fn dev_holds_only_the_safe_nodes_and_links() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let dev = payload_ok(&r, &[], &["ls", "/dev"]);
    let names: Vec<&str> = dev.lines().collect();
    assert_eq!(
        names,
        [
            "core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
            "stdout", "tty", "urandom", "zero"
        ]
    );
    assert_eq!(
        payload_ok(&r, &[], &["readlink", "/dev/fd"]).trim(),
        "/proc/self/fd"
    );
    // nobody can use the nodes.
    payload_ok(&r, &[], &["write", "/dev/null", "x"]);
}

#[test]
fn sys_and_kernel_knobs_are_read_only_and_secrets_masked() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // Even root inside cannot write /proc/sys or /sys.
    let out = run_payload(
        &r,
        &["-u", "0"],
        &["write", "/proc/sys/kernel/hostname", "evil"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("EROFS"), "{}", stderr(&out));
    let out = run_payload(
        &r,
        &["-u", "0"],
        &["write", "/sys/kernel/uevent_helper", "x"],
    );
    assert!(stderr(&out).contains("EROFS"), "{}", stderr(&out));
    assert_eq!(payload_ok(&r, &[], &["ls", "/sys/firmware"]), "");
    assert_eq!(payload_ok(&r, &[], &["ls", "/proc/acpi"]), "");
    if fs::metadata("/proc/keys").is_ok() {
        assert_eq!(payload_ok(&r, &[], &["cat", "/proc/keys"]), "");
    }
}

#[test]
fn only_fds_0_1_2_reach_the_command() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // Hand minibox extra descriptors, as a careless caller would.
    let cmd = format!(
        "exec 5</etc/hostname 7>/dev/null; exec {} run {} /payload fds",
        minibox_bin().display(),
        r.arg()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .env("MINIBOX_ROOT", test_state_root())
        .env("MINIBOX_DATA_ROOT", test_data_root())
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "fds=0,1,2", "{}", stderr(&out));
}

#[test]
fn env_has_defaults_flags_and_host_pass_through() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let out = minibox()
        .env("MBX_FROM_HOST", "hostvalue")
        .args([
            "run",
            "-e",
            "A=1",
            "--env",
            "B=x=y",
            "-e",
            "MBX_FROM_HOST",
            "-e",
            "MBX_UNSET",
        ])
        .args([&r.arg(), "/payload", "env"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let env = stdout(&out);
    let lines: Vec<&str> = env.lines().collect();
    for want in [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/nonexistent",
        "A=1",
        "B=x=y",
        "MBX_FROM_HOST=hostvalue",
    ] {
        assert!(lines.contains(&want), "{want} missing from {env}");
    }
    assert!(!env.contains("MBX_UNSET"), "{env}");
    assert_eq!(lines.len(), 6, "{env}");
}

#[test]
fn workdir_defaults_to_root_and_follows_the_flag() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    assert_eq!(payload_ok(&r, &[], &["cwd"]).trim(), "/");
    assert_eq!(payload_ok(&r, &["-w", "/tmp"], &["cwd"]).trim(), "/tmp");
    // A missing workdir is created, as docker does.
    assert_eq!(
        payload_ok(&r, &["--workdir", "/srv/app"], &["cwd"]).trim(),
        "/srv/app"
    );
    // In the container's own layer: ROOTFS is never written.
    assert!(!r.path().join("srv").exists());
}

#[test]
fn loopback_is_the_only_interface_and_it_is_up() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    assert_eq!(payload_ok(&r, &[], &["ifaces"]).trim(), "lo up");
}

#[test]
fn exit_status_is_the_commands() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    for code in ["0", "3", "42", "255"] {
        let out = run_payload(&r, &[], &["exit", code]);
        assert_eq!(out.status.code(), Some(code.parse().unwrap()));
        assert_eq!(stderr(&out), "");
    }
}

#[test]
fn command_not_found_is_127_and_not_executable_is_126() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let root = r.arg();
    let out = run_minibox(&["run", &root, "/nope"]);
    assert_eq!(out.status.code(), Some(127));
    let err = stderr(&out);
    assert!(
        err.starts_with("minibox: ") && err.contains("\"/nope\"") && err.lines().count() == 1,
        "{err}"
    );

    let out = run_minibox(&["run", &root, "nope-in-path"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("PATH"), "{}", stderr(&out));

    fs::write(r.path().join("data.txt"), "not a program").unwrap();
    fs::set_permissions(r.path().join("data.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_minibox(&["run", &root, "/data.txt"]);
    assert_eq!(out.status.code(), Some(126));
    assert!(
        stderr(&out).contains("cannot be executed"),
        "{}",
        stderr(&out)
    );

    // Executable only by root: nobody gets 126 too.
    fs::copy(r.path().join("payload"), r.path().join("rootonly")).unwrap();
    fs::set_permissions(r.path().join("rootonly"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        run_minibox(&["run", &root, "/rootonly", "exit", "0"])
            .status
            .code(),
        Some(126)
    );
    assert_eq!(
        run_minibox(&["run", "-u", "0", &root, "/rootonly", "exit", "0"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn death_by_signal_is_128_plus_n() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut child = minibox()
        .args(["run", &r.arg(), "/payload", "sleep", "30"])
        .spawn()
        .unwrap();
    let pid = container_pid(child.id());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let status = wait_deadline(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(137));
}

#[test]
fn signals_sent_to_minibox_reach_the_container() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut child = minibox()
        .args(["run", &r.arg(), "/payload", "trap", "6"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(read_line(&mut out), "ready");
    let me = nix::unistd::Pid::from_raw(child.id() as i32);
    use nix::sys::signal::Signal::*;
    for (sig, name) in [
        (SIGTERM, "TERM"),
        (SIGINT, "INT"),
        (SIGHUP, "HUP"),
        (SIGQUIT, "QUIT"),
        (SIGUSR1, "USR1"),
        (SIGUSR2, "USR2"),
    ] {
        nix::sys::signal::kill(me, sig).unwrap();
        assert_eq!(read_line(&mut out), format!("got {name}"));
    }
    assert_eq!(
        wait_deadline(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
}

#[test]
fn killing_minibox_kills_the_container() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let name = format!("killed-{}", std::process::id());
    let mut child = minibox()
        .args(["run", "--name", &name, &r.arg(), "/payload", "sleep", "60"])
        .spawn()
        .unwrap();
    let pid = container_pid(child.id());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let start = Instant::now();
    while fs::metadata(format!("/proc/{pid}")).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "container {pid} outlived minibox"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Nobody was left to clean up after it: rm does (its state, and its cgroup if it has one).
    let out = minibox().args(["rm", &name]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn read_only_flag_freezes_the_rootfs() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let out = run_payload(&r, &["--read-only", "-u", "0"], &["write", "/newfile", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("EROFS"), "{}", stderr(&out));
    // Without it, root inside may write (into the container's own layer, not ROOTFS).
    let name = format!("ro-{}", std::process::id());
    payload_ok(
        &r,
        &["--name", &name, "-u", "0"],
        &["write", "/newfile", "x"],
    );
    assert!(!r.path().join("newfile").exists());
    let out = minibox().args(["rm", &name]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn the_host_and_the_rootfs_are_left_as_they_were() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let before = snapshot(r.path());
    let mounts_before = host_mount_points();
    payload_ok(&r, &[], &["cat", "/proc/self/mountinfo"]);
    payload_ok(&r, &["-u", "0", "--read-only"], &["ls", "/"]);
    assert_eq!(run_payload(&r, &[], &["exit", "7"]).status.code(), Some(7));
    assert_eq!(snapshot(r.path()), before, "the rootfs changed on disk");
    assert_eq!(
        host_mount_points(),
        mounts_before,
        "the host's mount table changed"
    );
}

#[test]
fn a_symlink_in_the_rootfs_never_leads_out_of_it() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // A host directory the rootfs tries to point its mount points at.
    let victim = tempfile::tempdir().unwrap();
    fs::remove_dir(r.path().join("proc")).unwrap();
    std::os::unix::fs::symlink(victim.path(), r.path().join("proc")).unwrap();
    // And a passwd that is really the host's (with a user only the host knows).
    let host_passwd = victim.path().join("passwd");
    fs::write(&host_passwd, "mbxhostonly:x:4321:4321::/:/bin/sh\n").unwrap();
    fs::remove_file(r.path().join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink(&host_passwd, r.path().join("etc/passwd")).unwrap();

    let mounts_before = host_mount_points();
    let out = run_payload(&r, &["-u", "mbxhostonly"], &["id"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("unknown user"), "{}", stderr(&out));

    // /proc -> host dir: refused, never followed.
    let out = run_payload(&r, &[], &["id"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/proc in the rootfs is a symbolic link"),
        "{}",
        stderr(&out)
    );
    // Even one pointing inside the rootfs: /proc must be a real directory.
    fs::remove_file(r.path().join("proc")).unwrap();
    std::os::unix::fs::symlink("/", r.path().join("proc")).unwrap();
    let out = run_payload(&r, &[], &["id"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(
        fs::read_dir(victim.path()).unwrap().count(),
        1,
        "the host dir was touched"
    );
    assert_eq!(host_mount_points(), mounts_before);
}

#[test]
fn the_hello_example_serves_in_a_container_and_stops_on_sigterm() {
    if !need_root() {
        return;
    }
    let rootfs = hello_rootfs();
    let mut child = minibox()
        .args(["run", rootfs.to_str().unwrap(), "/main"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(read_line(&mut out), "Start listening...");
    let pid = container_pid(child.id());
    // It listens on :8080 in its own network namespace, as nobody.
    let tcp = fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
    assert!(
        tcp.lines()
            .any(|l| l.contains(":1F90 ") && l.contains(" 0A ")),
        "{tcp}"
    );
    let host_tcp = fs::read_to_string("/proc/self/net/tcp").unwrap();
    assert!(!host_tcp
        .lines()
        .any(|l| l.contains("00000000:1F90 ") && l.contains(" 0A ")));
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains("65534")),
        "{status}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(
        wait_deadline(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
}

#[test]
fn minibox_refuses_to_run_without_root() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let out = minibox()
        .args(["run", &r.arg(), "/payload", "id"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("must run as root"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_input_is_one_clear_line_status_125_and_leaves_nothing() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let root = r.arg();
    let file = r.path().join(".marker").to_string_lossy().into_owned();
    let before = snapshot(r.path());
    let mounts_before = host_mount_points();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "/nonexistent-minibox-rootfs", "/payload"],
            "ROOTFS /nonexistent-minibox-rootfs",
        ),
        (vec!["run", &file, "/payload"], "is not a directory"),
        (vec!["run", "", "/payload"], "<ROOTFS>"),
        (vec!["run", "/", "/payload"], "host's own root"),
        (
            vec!["run", "-u", "nosuchuser", &root, "/payload"],
            "unknown user \"nosuchuser\"",
        ),
        (
            vec!["run", "-u", "0:nosuchgroup", &root, "/payload"],
            "unknown group",
        ),
        (
            vec!["run", "-e", "=x", &root, "/payload"],
            "invalid --env \"=x\"",
        ),
        (
            vec!["run", "--frobnicate", &root, "/payload"],
            "--frobnicate",
        ),
        (vec!["run", &root], "<CMD>"),
        (
            vec!["run", "--name", "bad name", &root, "/payload"],
            "invalid container name",
        ),
        (
            vec!["run", "-u", "0", "--cap-add", "FLY", &root, "/payload"],
            "unknown capability",
        ),
        (
            vec!["run", "-w", "relative", &root, "/payload"],
            "--workdir",
        ),
        (
            vec!["run", "--hostname", "bad host", &root, "/payload"],
            "--hostname",
        ),
    ];
    for (args, needle) in cases {
        let out = run_minibox(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert!(
            err.starts_with("minibox: ") && err.lines().count() == 1,
            "{args:?}: {err:?}"
        );
        assert!(err.contains(needle), "{args:?}: {needle:?} not in {err:?}");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    assert_eq!(
        snapshot(r.path()),
        before,
        "a failed run changed the rootfs"
    );
    assert_eq!(
        host_mount_points(),
        mounts_before,
        "a failed run changed the host's mounts"
    );
}

#[test]
fn device_nodes_in_the_rootfs_open_nothing_and_the_container_has_its_own_session() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // A world-writable node shipped in the image (here /dev/null's numbers): the rootfs is nodev.
    let node = r.path().join("devnode");
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    fs::set_permissions(&node, fs::Permissions::from_mode(0o666)).unwrap();
    let out = run_payload(&r, &["-u", "0"], &["write", "/devnode", "x"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a device node in the rootfs could be opened"
    );
    assert!(stderr(&out).contains("EACCES"), "{}", stderr(&out));
    // The container leads its own session: the caller's terminal is not its controlling one.
    let mut child = minibox()
        .args(["run", &r.arg(), "/payload", "sleep", "5"])
        .spawn()
        .unwrap();
    let pid = container_pid(child.id());
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let session: u32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(session, pid, "not a session leader: {stat}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_fifo_or_device_as_passwd_is_refused_never_opened() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let passwd = r.path().join("etc/passwd");
    fs::remove_file(&passwd).unwrap();
    nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    // A writer waits in open(2) until someone opens the FIFO for reading: if minibox opened
    // it, the writer would get through.
    let writer_path = passwd.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let opened = fs::OpenOptions::new().write(true).open(&writer_path);
        let _ = tx.send(opened.is_ok());
    });
    let began = Instant::now();
    let out = run_payload(&r, &[], &["id"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("/etc/passwd in the rootfs is not a regular file (a FIFO)")
            && err.lines().count() == 1,
        "{err}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "minibox hung on the FIFO"
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "minibox opened the FIFO (its writer got through)"
    );
    // Let the writer go.
    let _ = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&passwd);
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(true));

    // A symlink to a character device (/dev/zero's numbers) inside the rootfs.
    fs::remove_file(&passwd).unwrap();
    nix::sys::stat::mknod(
        &r.path().join("dev/zero"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 5),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", &passwd).unwrap();
    let began = Instant::now();
    let out = run_payload(&r, &["-u", "0"], &["id"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("/etc/passwd in the rootfs is not a regular file (a character device)"),
        "{err}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "minibox read the device"
    );
    fs::remove_file(r.path().join("dev/zero")).unwrap();
}

#[test]
fn a_reserved_id_in_passwd_or_the_flag_is_refused_not_run_as_root() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    fs::write(
        r.path().join("etc/passwd"),
        format!("{PASSWD}app:x:4294967295:4294967295::/:/bin/sh\n"),
    )
    .unwrap();
    fs::write(
        r.path().join("etc/group"),
        format!("{GROUP}evil:x:4294967295:mbxtester\n"),
    )
    .unwrap();
    for (user, needle) in [
        ("app", "/etc/passwd line 4: \"app\" has uid 4294967295"),
        (
            "mbxtester",
            "/etc/group line 6: \"evil\" has gid 4294967295",
        ),
        (
            "4294967295",
            "--user \"4294967295\": uid 4294967295 is out of range",
        ),
        ("0:4294967295", "gid 4294967295 is out of range"),
    ] {
        let out = run_payload(&r, &["-u", user], &["id"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "-u {user}: {err}");
        assert_eq!(stdout(&out), "", "-u {user} ran");
        assert!(
            err.starts_with("minibox: ") && err.lines().count() == 1 && err.contains(needle),
            "-u {user}: {needle:?} not in {err:?}"
        );
    }
    // 65535, the legacy overflow id, is an ordinary one.
    assert!(payload_ok(&r, &["-u", "65535:65535"], &["id"]).starts_with("uid=65535 "));
}

#[test]
fn a_passwd_with_invalid_utf8_still_runs_and_its_broken_lines_match_nothing() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut passwd = PASSWD.as_bytes().to_vec();
    passwd.extend_from_slice(b"br\xffoken:x:1500:1500::/:/bin/sh\n");
    fs::write(r.path().join("etc/passwd"), passwd).unwrap();
    assert!(payload_ok(&r, &[], &["id"]).starts_with("uid=65534 "));
    assert!(payload_ok(&r, &["-u", "mbxtester"], &["id"]).starts_with("uid=1000 "));
    let out = run_payload(&r, &["-u", "broken"], &["id"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("unknown user \"broken\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_state_root_in_a_kernel_filesystem_or_in_the_rootfs_is_refused_and_not_made() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let root = r.arg();
    // In each cgroup hierarchy minibox would use, a mkdir would have made a cgroup.
    let name = format!("minibox-roottest-{}", std::process::id());
    let mut kernel_dirs: Vec<std::path::PathBuf> = minibox_cgroup_parents(&name);
    kernel_dirs.push(format!("/proc/{name}").into());
    kernel_dirs.push(format!("/sys/kernel/{name}/state").into());
    for dir in &kernel_dirs {
        let state = dir.to_string_lossy().into_owned();
        for (args, code) in [
            (vec!["--root", &state, "run", &root, "/payload", "id"], 125),
            (vec!["--root", &state, "ps"], 1),
        ] {
            let out = run_minibox(&args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
            assert!(
                err.contains(&format!("--root {state} is inside")) && err.lines().count() == 1,
                "{args:?}: {err}"
            );
            assert!(!dir.exists(), "{state} was made");
        }
    }
    // Inside the rootfs, the container could rewrite the records minibox trusts.
    let inside = r.path().join("var/minibox-state");
    let inside_arg = inside.to_string_lossy().into_owned();
    let before = snapshot(r.path());
    let out = run_minibox(&["--root", &inside_arg, "run", &root, "/payload", "id"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("overlap") && err.lines().count() == 1, "{err}");
    assert_eq!(stdout(&out), "");
    assert_eq!(
        snapshot(r.path()),
        before,
        "the refused run changed the rootfs"
    );
}
