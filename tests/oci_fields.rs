//! config.json fields minibox honours beyond docker's shape, each checked by running a bundle
//! and looking at the outcome from inside the container (the payload) or on the host: process
//! (rlimits, umask, additionalGids, the five capability sets, noNewPrivileges, oomScoreAdj),
//! domainname, the mount list, namespaces (absent, new, joined), user namespaces with id maps,
//! devices and the device rules, sysctl, masked and read-only paths, rootfsPropagation. And what
//! minibox still cannot honour is refused by name, leaving nothing behind. Root only.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use common::bundle::*;
use common::*;

/// `minibox spec FLAGS ROOTFS /payload` with `args` as the process.
fn config(r: &Rootfs, flags: &[&str], args: &[&str]) -> Value {
    let root = r.arg();
    let mut all = flags.to_vec();
    all.extend_from_slice(&[&root, "/payload"]);
    let mut args_all = vec!["/payload"];
    args_all.extend_from_slice(args);
    with_args(&spec(&all), &args_all)
}

/// Runs `config` as a bundle; it must succeed. Returns its stdout.
fn run_ok(config: &Value, id: &str) -> String {
    let b = bundle(config);
    let out = run_bundle(b.path(), id);
    assert_eq!(out.status.code(), Some(0), "{id}: {}", stderr(&out));
    stdout(&out)
}

/// Runs `config` as a bundle with a state root of its own; it must be refused (125) with one
/// line naming `what`, and leave no record.
fn refused(config: &Value, what: &str) {
    let state = tempfile::tempdir().unwrap();
    let b = bundle(config);
    let out = run_minibox(&[
        "--root",
        state.path().to_str().unwrap(),
        "run",
        "--bundle",
        b.path().to_str().unwrap(),
        "oci-refused",
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{what}: {err}");
    assert!(err.contains(what), "{err:?} lacks {what:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    // The store's lock file may stay; no container's directory may.
    let left: Vec<PathBuf> = fs::read_dir(state.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(left.is_empty(), "{what}: left {left:?}");
}

/// The value of a `Key:\tvalue` line of /proc/PID/status text.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("{key} not in {status}"))
        .trim()
}

/// A host directory every uid may write (a container's mapped root is "other" there).
fn open_host_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("minibox-host-")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

#[test]
fn process_rlimits_umask_groups_and_oom_score_reach_the_container() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // A hard limit above ours: only init's CAP_SYS_RESOURCE lets the container have it.
    let mut ours = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we own.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut ours) },
        0
    );
    // Raising a hard limit needs CAP_SYS_RESOURCE, which this host may deny even to root (then
    // the run fails naming setrlimit, as runc's does).
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let eff = u64::from_str_radix(status_field(&status, "CapEff"), 16).unwrap();
    let may_raise = eff & (1 << 24) != 0;
    let raised = if may_raise {
        ours.rlim_max.saturating_mul(2).max(1 << 20)
    } else {
        ours.rlim_max
    };
    let mut c = config(&r, &["-u", "mbxtester"], &["cat", "/proc/self/limits"]);
    set(
        &mut c,
        "/process/rlimits",
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
            {"type": "RLIMIT_MSGQUEUE", "soft": 1000, "hard": raised},
        ]),
    );
    if !may_raise {
        let mut over = c.clone();
        set(
            &mut over,
            "/process/rlimits",
            json!([{"type": "RLIMIT_MSGQUEUE", "soft": 1000, "hard": ours.rlim_max + 1}]),
        );
        let b = bundle(&over);
        let out = run_bundle(b.path(), "oci-rlimit-over");
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("setrlimit(RLIMIT_MSGQUEUE"),
            "{}",
            stderr(&out)
        );
    }
    set(&mut c, "/process/user/umask", json!(0o027));
    set(&mut c, "/process/user/additionalGids", json!([29, 44, 7]));
    set(&mut c, "/process/oomScoreAdj", json!(123));
    let limits = run_ok(&c, "oci-rlimits");
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in {limits}"))
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let nofile = line("Max open files");
    assert_eq!(&nofile[3..5], ["100", "200"], "{nofile:?}");
    let msgqueue = line("Max msgqueue size");
    assert_eq!(
        &msgqueue[3..5],
        ["1000".to_string(), raised.to_string()],
        "{msgqueue:?}"
    );
    let status = run_ok(
        &with_args(&c, &["/payload", "cat", "/proc/self/status"]),
        "oci-umask",
    );
    assert_eq!(status_field(&status, "Umask"), "0027");
    assert_eq!(status_field(&status, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&status, "Groups"), "7 29 44");
    let oom = run_ok(
        &with_args(&c, &["/payload", "cat", "/proc/self/oom_score_adj"]),
        "oci-oom",
    );
    assert_eq!(oom.trim(), "123");
    // A file the process creates gets the umask.
    let made = run_ok(
        &with_args(
            &c,
            &["/payload", "exec", "/payload", "write", "/tmp/made", "x"],
        ),
        "oci-umask-file",
    );
    assert_eq!(made, "");
    let mode = fs::metadata(r.path().join("tmp/made")).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o640, "umask 027 on a 0666 create");
}

#[test]
fn the_five_capability_sets_are_each_their_own() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // A non-root user keeps NET_BIND_SERVICE through exec only by the ambient set.
    let mut c = config(&r, &["-u", "mbxtester"], &["status"]);
    set(
        &mut c,
        "/process/capabilities",
        json!({
            "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
            "permitted": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
            "effective": ["CAP_KILL"],
            "inheritable": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"],
        }),
    );
    let status = run_ok(&c, "oci-caps");
    let nbs = 1u64 << 10;
    let kill = 1u64 << 5;
    for (set, want) in [
        ("CapBnd", nbs | kill),
        ("CapInh", nbs),
        ("CapAmb", nbs),
        ("CapPrm", nbs),
        ("CapEff", nbs),
    ] {
        let got = u64::from_str_radix(status_field(&status, set), 16).unwrap();
        assert_eq!(got, want, "{set}: {status}");
    }
    // An ambient capability the kernel cannot raise (not in both permitted and inheritable) is
    // a warning and left out, as with runc and crun (`crun spec`'s default config has such).
    let mut unraisable = c.clone();
    set(
        &mut unraisable,
        "/process/capabilities/ambient",
        json!(["CAP_KILL"]),
    );
    let b = bundle(&unraisable);
    let out = run_bundle(b.path(), "oci-caps-unraisable");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "warning: process.capabilities.ambient: CAP_KILL not in both permitted and inheritable"
        ),
        "{}",
        stderr(&out)
    );
    let ambient = u64::from_str_radix(status_field(&stdout(&out), "CapAmb"), 16).unwrap();
    assert_eq!(ambient, 0, "{}", stdout(&out));
}

#[test]
fn no_new_privileges_false_lets_a_setuid_program_raise_privileges() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let suid = r.path().join("suid");
    fs::copy(payload_bin(), &suid).unwrap();
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    let mut c = config(&r, &["-u", "mbxtester"], &["exec", "/suid", "id"]);
    set(&mut c, "/process/noNewPrivileges", json!(false));
    let raised = run_ok(&c, "oci-nnp-off");
    assert!(raised.starts_with("uid=1000 euid=0 "), "{raised}");
    set(&mut c, "/process/noNewPrivileges", json!(true));
    let kept = run_ok(&c, "oci-nnp-on");
    assert!(kept.starts_with("uid=1000 euid=1000 "), "{kept}");
}

#[test]
fn hostname_and_domainname() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut c = config(&r, &[], &["cat", "/proc/sys/kernel/domainname"]);
    set(&mut c, "/domainname", json!("example.org"));
    assert_eq!(run_ok(&c, "oci-domain").trim(), "example.org");
    let host = fs::read_to_string("/proc/sys/kernel/domainname").unwrap();
    assert_ne!(host.trim(), "example.org");
    set(&mut c, "/domainname", json!("bad name"));
    refused(&c, "domainname \"bad name\" is invalid");
}

/// Field 5 (mount point), field 6 (per-mount options), the type and the super options.
fn mount_line<'a>(mountinfo: &'a str, point: &str) -> (Vec<&'a str>, &'a str, &'a str) {
    let line = mountinfo
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(point))
        .unwrap_or_else(|| panic!("{point} not mounted: {mountinfo}"));
    let (left, right) = line.split_once(" - ").unwrap();
    let f: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    (
        f[5].split(',').collect(),
        r[0],
        r.get(2).copied().unwrap_or(""),
    )
}

#[test]
fn mounts_are_made_in_order_with_their_options() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let host = open_host_dir();
    fs::write(host.path().join("hello"), "hi from the host").unwrap();
    fs::create_dir(host.path().join("sub")).unwrap();
    let file = host.path().join("file.txt");
    fs::write(&file, "a bound file").unwrap();
    let mut c = config(&r, &["-u", "0"], &["cat", "/proc/self/mountinfo"]);
    let mut mounts = c["mounts"].as_array().unwrap().clone();
    let h = host.path().to_str().unwrap();
    mounts.extend([
        json!({"destination": "/data", "type": "bind", "source": h,
               "options": ["rbind", "ro", "nosuid", "noexec", "nodev", "rprivate"]}),
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "size=1m", "mode=0700", "noatime"]}),
        // In order: the tmpfs first, then a bind inside it.
        json!({"destination": "/stack", "type": "tmpfs", "source": "tmpfs", "options": []}),
        json!({"destination": "/stack/inner", "source": format!("{h}/sub"),
               "options": ["bind"]}),
        json!({"destination": "/etc/bound.txt", "source": file.to_str().unwrap(),
               "options": ["bind", "ro"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["ro", "nosuid", "noexec", "nodev"]}),
    ]);
    c["mounts"] = Value::Array(mounts);
    let info = run_ok(&c, "oci-mounts");
    let (flags, typ, _) = mount_line(&info, "/data");
    assert_eq!(typ, host_fs_type(h), "{info}");
    for f in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(flags.contains(&f), "/data lacks {f}: {flags:?}");
    }
    let (flags, typ, sup) = mount_line(&info, "/scratch");
    assert_eq!(typ, "tmpfs");
    assert!(
        flags.contains(&"noatime") && flags.contains(&"nodev"),
        "{flags:?}"
    );
    assert!(
        sup.contains("size=1024k") && sup.contains("mode=700"),
        "{sup}"
    );
    assert_eq!(mount_line(&info, "/stack").1, "tmpfs");
    mount_line(&info, "/stack/inner");
    assert!(mount_line(&info, "/etc/bound.txt").0.contains(&"ro"));
    assert_eq!(mount_line(&info, "/dev/mqueue").1, "mqueue");
    let (flags, typ, _) = mount_line(&info, "/sys/fs/cgroup");
    assert_eq!(typ, "cgroup2");
    assert!(flags.contains(&"ro"));
    // What the container sees through them, and that the read-only bind is read-only.
    let read = run_ok(
        &with_args(&c, &["/payload", "cat", "/data/hello"]),
        "oci-m1",
    );
    assert_eq!(read, "hi from the host");
    let read = run_ok(
        &with_args(&c, &["/payload", "cat", "/etc/bound.txt"]),
        "oci-m2",
    );
    assert_eq!(read, "a bound file");
    let b = bundle(&with_args(&c, &["/payload", "write", "/data/new", "x"]));
    let out = run_bundle(b.path(), "oci-m3");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("EROFS"), "{}", stderr(&out));
    assert!(!host.path().join("new").exists());
    // The bound file's mount point was made in the rootfs (a bundle's root is written).
    assert!(r.path().join("etc/bound.txt").is_file());
    // A relative source is the bundle's.
    let b = bundle(&Value::Null);
    fs::create_dir(b.path().join("shared")).unwrap();
    fs::write(b.path().join("shared/note"), "in the bundle").unwrap();
    let mut rel = with_args(&c, &["/payload", "cat", "/from-bundle/note"]);
    rel["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/from-bundle", "source": "shared", "options": ["bind"]}));
    write_config(b.path(), &rel);
    let out = run_bundle(b.path(), "oci-m4");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "in the bundle");
}

fn host_fs_type(path: &str) -> String {
    let out = std::process::Command::new("findmnt")
        .args(["-n", "-o", "FSTYPE", "-T", path])
        .output()
        .expect("findmnt");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn mount_destinations_stay_inside_the_rootfs() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let host = open_host_dir();
    let target = host.path().join("victim");
    // A symlink in the rootfs aiming at a host directory, by absolute and by `..` path.
    let up = "../".repeat(20);
    let escape = format!("{up}{}", host.path().display());
    std::os::unix::fs::symlink(&escape, r.path().join("evil")).unwrap();
    std::os::unix::fs::symlink(host.path(), r.path().join("evil-abs")).unwrap();
    let with_mount = |dest: &str| {
        let mut c = config(&r, &[], &["ls", "/"]);
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
        c
    };
    // While the links' targets are missing inside the rootfs, nothing is made anywhere.
    for dest in ["/evil/victim", "/evil-abs/victim"] {
        let b = bundle(&with_mount(dest));
        let out = run_bundle(b.path(), "oci-escape");
        assert_eq!(out.status.code(), Some(125), "{dest}: {}", stderr(&out));
        assert!(
            !target.exists(),
            "{dest}: a mount point was made on the host"
        );
    }
    // Once the target exists inside the rootfs, the links lead there, never to the host.
    let inside = r.path().join(host.path().strip_prefix("/").unwrap());
    fs::create_dir_all(&inside).unwrap();
    for dest in ["/evil/victim", "/evil-abs/victim"] {
        run_ok(&with_mount(dest), "oci-escape-inside");
        assert!(
            !target.exists(),
            "{dest}: a mount point was made on the host"
        );
        assert!(inside.join("victim").is_dir(), "{dest}: not made inside");
        fs::remove_dir(inside.join("victim")).unwrap();
    }
    // A destination that is itself a symlink is refused by name.
    std::os::unix::fs::symlink("/etc", r.path().join("etc-link")).unwrap();
    let mut c2 = config(&r, &[], &["ls", "/"]);
    c2["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/etc-link", "type": "tmpfs", "source": "tmpfs"}));
    let b = bundle(&c2);
    let out = run_bundle(b.path(), "oci-escape2");
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/etc-link in the rootfs is a symbolic link"),
        "{}",
        stderr(&out)
    );
}

fn ns_link(pid: &str, ns: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn namespaces_absent_are_the_hosts_and_a_path_is_joined() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // Only mount, pid and uts: the network and ipc namespaces are the host's.
    let mut c = config(
        &r,
        &["--network", "host"],
        &["readlink", "/proc/self/ns/net"],
    );
    c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "pid"}, {"type": "uts"}]);
    let net = run_ok(&c, "oci-ns-host");
    assert_eq!(net.trim(), ns_link("self", "net"));
    let ipc = run_ok(
        &with_args(&c, &["/payload", "readlink", "/proc/self/ns/ipc"]),
        "oci-ns-ipc",
    );
    assert_eq!(ipc.trim(), ns_link("self", "ipc"));
    // A new time namespace when the kernel has them.
    if Path::new("/proc/self/ns/time").exists() {
        let mut t = with_args(&c, &["/payload", "readlink", "/proc/self/ns/time"]);
        t["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        let time = run_ok(&t, "oci-ns-time");
        assert_ne!(time.trim(), ns_link("self", "time"));
    }
    // Join a network namespace someone else made.
    let mut holder = std::process::Command::new("unshare")
        .args(["--net", "--ipc", "sleep", "30"])
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare");
    let pid = holder.id().to_string();
    let start = std::time::Instant::now();
    while ns_link(&pid, "net") == ns_link("self", "net") {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut j = config(&r, &[], &["readlink", "/proc/self/ns/net"]);
    j["annotations"] = json!({});
    j["linux"]["namespaces"] = json!([
        {"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "cgroup"},
        {"type": "network", "path": format!("/proc/{pid}/ns/net")},
        {"type": "ipc", "path": format!("/proc/{pid}/ns/ipc")},
    ]);
    let joined = run_ok(&j, "oci-ns-join");
    assert_eq!(joined.trim(), ns_link(&pid, "net"));
    let joined = run_ok(
        &with_args(&j, &["/payload", "readlink", "/proc/self/ns/ipc"]),
        "oci-ns-join-ipc",
    );
    assert_eq!(joined.trim(), ns_link(&pid, "ipc"));
    // A PID namespace someone else made (its init runs): the container is not its PID 1.
    let mut pid_holder = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "sleep", "30"])
        .stdin(Stdio::null())
        .spawn()
        .expect("unshare");
    let hp = pid_holder.id();
    let start = std::time::Instant::now();
    while fs::read_to_string(format!("/proc/{hp}/task/{hp}/children"))
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let their_pid_ns = ns_link(&hp.to_string(), "pid_for_children");
    let mut p = config(&r, &[], &["readlink", "/proc/self/ns/pid"]);
    p["linux"]["namespaces"] = json!([
        {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"},
        {"type": "pid", "path": format!("/proc/{hp}/ns/pid_for_children")},
    ]);
    assert_eq!(run_ok(&p, "oci-ns-join-pid").trim(), their_pid_ns);
    let me = run_ok(&with_args(&p, &["/payload", "pid"]), "oci-ns-join-pid2");
    assert!(!me.starts_with("pid=1 "), "{me}");
    let _ = pid_holder.kill();
    let _ = pid_holder.wait();
    // A path that is not a namespace of that type is refused by name.
    let mut wrong = j.clone();
    wrong["linux"]["namespaces"][4]["path"] = json!(format!("/proc/{pid}/ns/ipc"));
    refused(
        &wrong,
        &format!("network path /proc/{pid}/ns/ipc is not a network namespace"),
    );
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn a_user_namespace_makes_root_inside_an_unprivileged_uid_outside() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    fs::set_permissions(r.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // The rootfs is the host root's: the container's root (uid 100000 outside) may not write
    // it, so the mount point is there already.
    fs::create_dir(r.path().join("shared")).unwrap();
    let host = open_host_dir();
    let mut c = config(&r, &["-u", "0"], &["id"]);
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["uidMappings"] = map.clone();
    c["linux"]["gidMappings"] = map;
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/shared", "source": host.path().to_str().unwrap(), "options": ["rbind"]
    }));
    let id = run_ok(&c, "oci-userns-id");
    assert!(id.starts_with("uid=0 euid=0 suid=0 gid=0 "), "{id}");
    let map = run_ok(
        &with_args(&c, &["/payload", "cat", "/proc/self/uid_map"]),
        "oci-userns-map",
    );
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    // A file root makes inside belongs to the unprivileged uid on the host.
    run_ok(
        &with_args(&c, &["/payload", "write", "/shared/made", "x"]),
        "oci-userns-file",
    );
    let meta = fs::metadata(host.path().join("made")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (100000, 100000));
    // And the process, seen from the host, is uid 100000.
    let b = bundle(&with_args(&c, &["/payload", "sleep", "3"]));
    let child = minibox()
        .args([
            "run",
            "--rm",
            "--bundle",
            b.path().to_str().unwrap(),
            "oci-userns-ps",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = container_pid(child.id());
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(
        status_field(&status, "Uid"),
        "100000\t100000\t100000\t100000"
    );
    assert_eq!(
        status_field(&status, "Gid"),
        "100000\t100000\t100000\t100000"
    );
    let out = wait_output(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Maps that leave the process's uid out are refused by name.
    let mut unmapped = c.clone();
    unmapped["process"]["user"]["uid"] = json!(70000);
    refused(
        &unmapped,
        "process.user.uid 70000 is not mapped by linux.uidMappings",
    );
}

#[test]
fn devices_are_made_and_the_device_rules_enforced() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut c = config(
        &r,
        &["-u", "0"],
        &["stat", "/dev/mynull", "/dev/sub/myzero"],
    );
    c["linux"]["devices"] = json!([
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
         "fileMode": 0o620, "uid": 0, "gid": 5},
        {"path": "/dev/sub/myzero", "type": "c", "major": 1, "minor": 5},
    ]);
    // An engine's rule list: deny all, then allow what the container has.
    let allow = |major: i64, minor: Option<i64>| json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"});
    c["linux"]["resources"] = json!({"devices": [
        {"allow": false, "access": "rwm"},
        allow(1, Some(3)), allow(1, Some(5)), allow(1, Some(7)), allow(1, Some(8)),
        allow(1, Some(9)), allow(5, Some(0)), allow(136, None),
    ]});
    let stat = run_ok(&c, "oci-devices");
    let lines: Vec<&str> = stat.lines().collect();
    assert!(lines[0].contains("type=chr mode=620 uid=0 gid=5"), "{stat}");
    assert!(lines[0].contains("rdev=1:3"), "{stat}");
    assert!(
        lines[1].contains("type=chr mode=666") && lines[1].contains("rdev=1:5"),
        "{stat}"
    );
    // The node opens: it sits on a mount of its own, not the nodev /dev.
    let wrote = run_ok(
        &with_args(&c, &["/payload", "write", "/dev/mynull", "x"]),
        "oci-devices-open",
    );
    assert_eq!(wrote, "");
    // A node made later in /dev opens nothing, as before.
    let b = bundle(&with_args(
        &c,
        &["/payload", "mknod", "/dev/late", "1", "3"],
    ));
    let out = run_bundle(b.path(), "oci-devices-late");
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    // A node the bundle lists but its rules do not allow is made, and opens nothing: the
    // device cgroup says EPERM (the six default nodes are always allowed, as runc and crun
    // append them to every rule list).
    let mut denied = with_args(&c, &["/payload", "open", "/dev/myfuse", "rw"]);
    denied["linux"]["devices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"path": "/dev/myfuse", "type": "c", "major": 10, "minor": 229}));
    let b = bundle(&denied);
    let out = run_bundle(b.path(), "oci-devices-denied");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("open /dev/myfuse: EPERM"),
        "{}",
        stderr(&out)
    );
    // A list the device cgroup cannot apply (a hole in a wildcard) is refused by name.
    let mut hole = c.clone();
    hole["linux"]["resources"] = json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "access": "rwm"},
        {"allow": false, "type": "c", "major": 1, "minor": 9, "access": "rw"},
    ]});
    refused(&hole, "linux.resources.devices[2] (deny c 1:9 rw)");
}

#[test]
fn sysctls_masked_and_readonly_paths_and_root_propagation() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    fs::write(r.path().join("etc/secret"), "do not read").unwrap();
    fs::create_dir(r.path().join("srv")).unwrap();
    let mut c = config(&r, &["-u", "0"], &["cat", "/proc/sys/net/ipv4/ip_forward"]);
    c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    c["linux"]["maskedPaths"] = json!(["/etc/secret", "/proc/kcore"]);
    c["linux"]["readonlyPaths"] = json!(["/srv", "/proc/sys"]);
    c["linux"]["rootfsPropagation"] = json!("shared");
    let host_forward = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    assert_eq!(run_ok(&c, "oci-sysctl").trim(), "1");
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward,
        "the host's own knob changed"
    );
    let shm = run_ok(
        &with_args(&c, &["/payload", "cat", "/proc/sys/kernel/shmmni"]),
        "oci-sysctl-ipc",
    );
    assert_eq!(shm.trim(), "1234");
    let secret = run_ok(
        &with_args(&c, &["/payload", "cat", "/etc/secret"]),
        "oci-masked",
    );
    assert_eq!(secret, "");
    let b = bundle(&with_args(&c, &["/payload", "write", "/srv/x", "x"]));
    let out = run_bundle(b.path(), "oci-readonly");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("EROFS"), "{}", stderr(&out));
    let info = run_ok(
        &with_args(&c, &["/payload", "cat", "/proc/self/mountinfo"]),
        "oci-propagation",
    );
    let root = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(root.contains(" shared:"), "{root}");
    // A knob that is the host's alone is refused by name.
    let mut host_knob = c.clone();
    host_knob["linux"]["sysctl"] = json!({"vm.swappiness": "0"});
    refused(&host_knob, "linux.sysctl vm.swappiness is not namespaced");
}

#[test]
fn what_minibox_cannot_honour_is_refused_by_name() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let base = config(&r, &[], &["id"]);
    for (pointer, value, what) in [
        (
            "/process/apparmorProfile",
            json!("docker-default"),
            "process.apparmorProfile is not supported",
        ),
        (
            "/process/selinuxLabel",
            json!("system_u:system_r:container_t:s0"),
            "process.selinuxLabel is not supported",
        ),
        (
            "/linux/intelRdt",
            json!({"closID": "x"}),
            "linux.intelRdt is not supported",
        ),
        (
            "/linux/mountLabel",
            json!("system_u:object_r:container_file_t"),
            "linux.mountLabel is not supported",
        ),
        (
            "/linux/resources/hugepageLimits",
            json!([{"pageSize": "2MB", "limit": 2097152}]),
            "linux.resources.hugepageLimits",
        ),
        (
            "/linux/resources/unified",
            json!({"memory.high": "1000000"}),
            "linux.resources.unified",
        ),
    ] {
        let mut c = base.clone();
        set(&mut c, pointer, value);
        refused(&c, what);
    }
    // Mounts with options minibox does not make, and destinations it does not accept.
    for (mount, what) in [
        (
            json!({"destination": "/x", "type": "nfs", "source": "srv:/x"}),
            "type \"nfs\" is not supported",
        ),
        (
            json!({"destination": "/x", "type": "tmpfs", "options": ["idmap"]}),
            "option idmap is for binds",
        ),
    ] {
        let mut c = base.clone();
        c["mounts"].as_array_mut().unwrap().push(mount);
        refused(&c, what);
    }
}

/// The host directory of the container's group in the v1 hierarchy of `controller`, from its
/// /proc/PID/cgroup (the test runs in the host's cgroup namespace).
fn v1_group(pid: u32, controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        list.split(',').any(|c| c == controller).then(|| {
            let mount = if controller == "cpu" && Path::new("/sys/fs/cgroup/cpu").is_dir() {
                "cpu".to_string()
            } else {
                list.to_string()
            };
            Path::new("/sys/fs/cgroup")
                .join(mount)
                .join(path.trim_start_matches('/'))
        })
    })
}

#[test]
fn resources_reach_the_containers_cgroup() {
    if !need_root() {
        return;
    }
    let v1 = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
        && Path::new("/sys/fs/cgroup/cpuset/cpuset.cpus").exists();
    if !v1 {
        eprintln!("this check reads cgroup v1 files; tests/cgroup_v2.rs covers v2 in the VM");
    }
    let r = Rootfs::new();
    let mut c = config(&r, &[], &["sleep", "3"]);
    c["linux"]["resources"] = json!({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20},
        "cpu": {"shares": 512, "quota": 25000, "period": 50000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 50},
    });
    let b = bundle(&c);
    let child = minibox()
        .args([
            "run",
            "--rm",
            "--bundle",
            b.path().to_str().unwrap(),
            "oci-resources",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = container_pid(child.id());
    if v1 {
        let read = |controller: &str, file: &str| {
            let dir = v1_group(pid, controller).expect("a group");
            fs::read_to_string(dir.join(file))
                .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
                .trim()
                .to_string()
        };
        assert_eq!(
            read("memory", "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            read("memory", "memory.soft_limit_in_bytes"),
            (32u64 << 20).to_string()
        );
        if v1_group(pid, "memory")
            .unwrap()
            .join("memory.memsw.limit_in_bytes")
            .exists()
        {
            assert_eq!(
                read("memory", "memory.memsw.limit_in_bytes"),
                (128u64 << 20).to_string()
            );
        }
        assert_eq!(read("cpu", "cpu.shares"), "512");
        assert_eq!(read("cpu", "cpu.cfs_period_us"), "50000");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "25000");
        assert_eq!(read("cpuset", "cpuset.cpus"), "0");
        assert_eq!(read("cpuset", "cpuset.mems"), "0");
        assert_eq!(read("pids", "pids.max"), "50");
    }
    let out = wait_output(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    if v1 {
        // On cgroup v1 the unified map cannot be honoured: refused by name, nothing left.
        let mut unified = c.clone();
        unified["linux"]["resources"] = json!({"unified": {"memory.high": "100000000"}});
        refused(&unified, "linux.resources.unified needs cgroup v2");
    }
}

/// A bundle that joins, by path, a namespace minibox itself runs in (the caller's: the host's
/// or a pod's) must not rename it nor tune it: no default hostname is set there, and a
/// hostname or a namespaced sysctl for it is refused. Run inside a throwaway uts + network
/// namespace playing the host, so that a regression renames nothing real.
#[test]
fn a_joined_namespace_of_the_callers_own_is_not_renamed_or_tuned() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut c = config(&r, &[], &["hostname"]);
    // Join the uts and network namespaces of whoever runs minibox (the shell below).
    let namespaces: Vec<Value> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "uts" && n["type"] != "network")
        .cloned()
        .chain([
            json!({"type": "uts", "path": "/proc/self/ns/uts"}),
            json!({"type": "network", "path": "/proc/self/ns/net"}),
        ])
        .collect();
    c["linux"]["namespaces"] = json!(namespaces);
    c["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("org.minibox.network");
    c.as_object_mut().unwrap().remove("hostname");
    let state = tempfile::tempdir().unwrap();
    let in_throwaway_host = |config: &Value, id: &str| {
        let b = bundle(config);
        let script = format!(
            "hostname before-{id}; {bin} --root {root} run --bundle {dir} {id}; echo \"rc=$?\"; \
             hostname; cat /proc/sys/net/ipv4/ip_default_ttl",
            bin = minibox_bin().display(),
            root = state.path().display(),
            dir = b.path().display(),
        );
        let out = std::process::Command::new("unshare")
            .args(["--uts", "--net", "sh", "-c", &script])
            .env("MINIBOX_DATA_ROOT", test_data_root())
            .output()
            .unwrap();
        (stdout(&out), stderr(&out))
    };
    // No hostname asked: the joined namespace keeps its name (the container sees it too).
    let (out, err) = in_throwaway_host(&c, "joinuts");
    assert_eq!(out, "before-joinuts\nrc=0\nbefore-joinuts\n64\n", "{err}");
    // A hostname, or a net.* sysctl, for the caller's own namespace: refused, nothing changed.
    let mut named = c.clone();
    named["hostname"] = json!("renamed");
    let (out, err) = in_throwaway_host(&named, "joinname");
    assert_eq!(out, "rc=125\nbefore-joinname\n64\n", "{err}");
    assert!(err.contains("would rename the host"), "{err}");
    let mut tuned = c.clone();
    tuned["linux"]["sysctl"] = json!({"net.ipv4.ip_default_ttl": "99"});
    let (out, err) = in_throwaway_host(&tuned, "jointtl");
    assert_eq!(out, "rc=125\nbefore-jointtl\n64\n", "{err}");
    assert!(
        err.contains("needs a network namespace of the container's"),
        "{err}"
    );
}
