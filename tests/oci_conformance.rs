//! Bundles the way other tools write them: what the OCI runtime-tools validation suite, `crun
//! spec`, Docker and older seccomp profiles put in config.json, each run by minibox and checked
//! from inside the container or on the host (issue 19). Each test here stands for a class of
//! failure the validation suite found (tests/oci-validation/run.sh; the README's table). Root
//! only.

mod common;

use serde_json::{json, Value};

use common::bundle::*;
use common::*;

/// `minibox spec ROOTFS /payload ARGS...`: minibox's own bundle of the test rootfs.
fn config(r: &Rootfs, args: &[&str]) -> Value {
    let root = r.arg();
    let mut all = vec!["/payload"];
    all.extend_from_slice(args);
    with_args(&spec(&[&root, "/payload"]), &all)
}

/// Runs `config` as a bundle; it must succeed. Returns its stdout.
fn run_ok(config: &Value, id: &str) -> String {
    let b = bundle(config);
    let out = run_bundle(b.path(), id);
    assert_eq!(out.status.code(), Some(0), "{id}: {}", stderr(&out));
    stdout(&out)
}

/// A profile written before close_range (Linux 5.9) and its peers existed: Docker's default
/// with the newer calls taken out of its allow lists, so the default action (EPERM) answers
/// them, as older Docker and podman profiles and runtime-tools' generator do.
fn profile_without_new_calls(config: &mut Value) {
    const NEWER: [&str; 8] = [
        "close_range",
        "faccessat2",
        "openat2",
        "pidfd_open",
        "pidfd_send_signal",
        "pidfd_getfd",
        "epoll_pwait2",
        "mount_setattr",
    ];
    let rules = config["linux"]["seccomp"]["syscalls"]
        .as_array_mut()
        .expect("minibox spec writes a seccomp profile");
    for rule in rules {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| !NEWER.contains(&n.as_str().unwrap_or_default()));
        }
    }
}

#[test]
fn an_old_seccomp_profile_without_no_new_privileges_still_starts() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut c = config(&r, &["fds"]);
    profile_without_new_calls(&mut c);
    // Without noNewPrivileges the filter goes in before the identity change (it needs
    // CAP_SYS_ADMIN then): every step of minibox's after it runs under the profile.
    c["process"]["noNewPrivileges"] = json!(false);
    assert_eq!(run_ok(&c, "oci-old-seccomp").trim(), "fds=0,1,2");
    // And the filter is the container's: the calls it lacks stay refused.
    let mut c = config(&r, &["syscalls", "close_range"]);
    profile_without_new_calls(&mut c);
    c["process"]["noNewPrivileges"] = json!(false);
    let out = run_ok(&c, "oci-old-seccomp-2");
    assert!(out.contains("close_range=EPERM"), "{out}");
}

/// A state root of the test's own, for the OCI lifecycle commands.
struct StateRoot(tempfile::TempDir);

impl StateRoot {
    fn new() -> StateRoot {
        StateRoot(
            tempfile::Builder::new()
                .prefix("minibox-conf-state-")
                .tempdir_in(test_tmp())
                .unwrap(),
        )
    }

    /// `minibox --root STATE ARGS`; its stderr (which a created container keeps, as create's)
    /// goes through a file, so that no pipe waits for the container.
    fn mb(&self, args: &[&str]) -> (Option<i32>, String) {
        let log = tempfile::NamedTempFile::new_in(test_tmp()).unwrap();
        let mut child = minibox()
            .arg("--root")
            .arg(self.0.path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let status = wait_deadline(&mut child, std::time::Duration::from_secs(30));
        (status.code(), std::fs::read_to_string(log.path()).unwrap())
    }

    fn ok(&self, args: &[&str]) {
        let (code, err) = self.mb(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
    }

    /// `create --bundle DIR --pid-file DIR/pid ID`; returns the pid it wrote.
    fn create(&self, bundle: &std::path::Path, id: &str) -> String {
        let pid_file = bundle.join("pid");
        self.ok(&[
            "create",
            "--bundle",
            bundle.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            id,
        ]);
        std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .to_string()
    }
}

impl Drop for StateRoot {
    /// Whatever a failed test left: each container of this root, force-deleted.
    fn drop(&mut self) {
        for entry in std::fs::read_dir(self.0.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path().is_dir() {
                let id = entry.file_name().to_string_lossy().into_owned();
                let _ = self.mb(&["delete", "--force", &id]);
            }
        }
    }
}

/// `start` returns once the program runs (runc's contract, which the validation suite's kill
/// tests rely on): a signal sent right after it reaches the program, not minibox's waiting
/// init (which, as PID 1 of its namespace, would drop it).
#[test]
fn start_returns_once_the_program_has_been_executed() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut c = config(&r, &["sleep", "5"]);
    // A startContainer hook runs inside the container between start's word and the exec: a
    // slow one shows whether start waits for the exec.
    c["hooks"] = json!({
        "startContainer": [{"path": "/payload", "args": ["payload", "sleep", "0.5"]}]
    });
    let b = bundle(&c);
    let s = StateRoot::new();
    let pid = s.create(b.path(), "conf-start");
    s.ok(&["start", "conf-start"]);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.ends_with("payload"),
        "start returned while the container ran {}",
        exe.display()
    );
    s.ok(&["delete", "--force", "conf-start"]);
}

/// runtime-tools' linux_seccomp: a profile that refuses getcwd, without noNewPrivileges (so
/// installed before minibox's last steps). minibox proves the cwd is inside the container
/// with getcwd (runc CVE-2024-21626) before that filter goes in.
#[test]
fn a_profile_refusing_getcwd_still_starts() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut c = config(&r, &["status"]);
    c["process"]["noNewPrivileges"] = json!(false);
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
    });
    let out = run_ok(&c, "oci-no-getcwd");
    assert!(out.contains("Seccomp:\t2"), "{out}");
}

/// A whole disk of this machine, `major:minor` (a real one when there is one, else a loop
/// device: throttling takes any disk).
fn some_disk() -> String {
    let mut disks: Vec<(bool, String)> = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
            let virtual_ = ["loop", "ram", "zram", "dm-", "nbd"]
                .iter()
                .any(|p| name.starts_with(p));
            Some((virtual_, dev.trim().to_string()))
        })
        .collect();
    disks.sort();
    disks
        .first()
        .expect("this machine has no block device")
        .1
        .clone()
}

/// The host path of the container's group for `controller` (v1), or its v2 group.
fn cgroup_dir(pid: &str, controller: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let line = |pred: &dyn Fn(&str) -> bool| {
        text.lines().find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, list, path) = (p.next()?, p.next()?, p.next()?);
            pred(list).then(|| path.to_string())
        })
    };
    match line(&|list| list.split(',').any(|c| c == controller)) {
        Some(path) => std::path::Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(path.trim_start_matches('/')),
        None => std::path::Path::new("/sys/fs/cgroup").join(
            line(&|list| list.is_empty())
                .unwrap()
                .trim_start_matches('/'),
        ),
    }
}

/// Docker's config.json has `"blockIO": {"weight": 0}` (no weight: ignored, as runc); a
/// throttle reaches the v1 blkio or the v2 io group of the container.
#[test]
fn block_io_as_docker_writes_it_runs_and_throttles_reach_the_group() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut c = config(&r, &["exit", "0"]);
    c["linux"]["resources"]["blockIO"] = json!({"weight": 0});
    run_ok(&c, "oci-blkio-docker");
    let disk = some_disk();
    let (major, minor) = disk.split_once(':').unwrap();
    let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
    let mut c = config(&r, &["sleep", "10"]);
    c["linux"]["resources"]["blockIO"] = json!({
        "weight": 0,
        "throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
        "throttleReadIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]
    });
    let b = bundle(&c);
    let s = StateRoot::new();
    let pid_file = b.path().join("pid");
    s.ok(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "conf-blkio",
    ]);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let v1 = cgroup_dir(&pid, "blkio");
    if v1.join("blkio.throttle.write_bps_device").exists() {
        let read = |f: &str| std::fs::read_to_string(v1.join(f)).unwrap();
        assert_eq!(
            read("blkio.throttle.write_bps_device").trim(),
            format!("{disk} 1048576")
        );
        assert_eq!(
            read("blkio.throttle.read_iops_device").trim(),
            format!("{disk} 100")
        );
    } else {
        let io_max = std::fs::read_to_string(v1.join("io.max")).unwrap();
        assert!(
            io_max.contains(&format!("{disk} rbps=max wbps=1048576 riops=100 wiops=max")),
            "{io_max}"
        );
    }
    s.ok(&["delete", "--force", "conf-blkio"]);
}

/// `crun spec`'s default capabilities: ambient ones without inheritable. runc and crun run it,
/// saying the ambient ones cannot be raised; so does minibox, leaving them out.
#[test]
fn crun_specs_ambient_capabilities_without_inheritable_are_a_warning() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut c = config(&r, &["status"]);
    let three = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    c["process"]["user"] = json!({"uid": 0, "gid": 0});
    c["process"]["capabilities"] = json!({
        "bounding": three, "effective": three, "permitted": three,
        "inheritable": [], "ambient": three
    });
    let b = bundle(&c);
    let out = run_bundle(b.path(), "oci-crun-caps");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning") && err.contains("CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE"),
        "{err}"
    );
    let status = stdout(&out);
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10), CAP_AUDIT_WRITE (29).
    assert!(status.contains("CapPrm:\t0000000020000420"), "{status}");
    assert!(status.contains("CapAmb:\t0000000000000000"), "{status}");
}

/// `minibox spec` as `runc spec`: it writes ./config.json (or DIR/config.json with --bundle),
/// never over an existing one; `--rootless` maps the caller to root in a user namespace. The
/// written bundle runs.
#[test]
fn spec_writes_config_json_as_runc_spec_does() {
    if !need_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = minibox()
        .arg("spec")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "",
        "spec printed instead of writing config.json"
    );
    let written = dir.path().join("config.json");
    let text = std::fs::read_to_string(&written).unwrap();
    let config: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(config["root"]["path"], "rootfs");
    // Again: refused, the file untouched (runc: "File config.json exists. Remove it first").
    let again = minibox()
        .arg("spec")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));
    assert_eq!(std::fs::read_to_string(&written).unwrap(), text);
    // --bundle DIR and --rootless; the bundle then runs as root of its own user namespace.
    let b = tempfile::tempdir().unwrap();
    let out = run_minibox(&["spec", "--rootless", "--bundle", b.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut rootless: Value =
        serde_json::from_str(&std::fs::read_to_string(b.path().join("config.json")).unwrap())
            .unwrap();
    let uid = nix::unistd::geteuid().as_raw();
    assert_eq!(
        rootless["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": uid, "size": 1}])
    );
    assert!(rootless["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "user"));
    rootless["process"]["args"] = json!(["/payload", "id"]);
    write_config(b.path(), &rootless);
    populate(&b.path().join("rootfs"));
    let out = run_bundle(b.path(), "oci-spec-rootless");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("uid=0 "), "{}", stdout(&out));
}

/// A mount namespace given by path is joined (runtime-tools' linux_ns_path): the container's
/// mounts are made in it, under the rootfs, and the container is chroot'ed there (pivot_root
/// would move the root of every process of that namespace). `exec` reaches the same root.
/// Nothing leaks to the host's mount namespace.
#[test]
fn a_mount_namespace_given_by_path_is_joined() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut holder = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sleep", "60"])
        .spawn()
        .unwrap();
    let ns = format!("/proc/{}/ns/mnt", holder.id());
    // unshare execs sleep once its namespace is made.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_link(&ns).ok() == std::fs::read_link("/proc/self/ns/mnt").ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "unshare made no namespace"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut c = config(&r, &["sleep", "10"]);
    for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "mount" {
            n["path"] = json!(ns);
        }
    }
    let b = bundle(&c);
    let s = StateRoot::new();
    let pid_file = b.path().join("pid");
    s.ok(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "conf-mntns",
    ]);
    s.ok(&["start", "conf-mntns"]);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
        std::fs::read_link(&ns).unwrap()
    );
    // Its root is the rootfs (the marker file is at its top), for the first process and an
    // exec'd one.
    let marker = std::fs::read_to_string(format!("/proc/{pid}/root/.marker")).unwrap();
    assert_eq!(marker, r.marker);
    let out = minibox()
        .arg("--root")
        .arg(s.0.path())
        .args(["exec", "conf-mntns", "/payload", "cat", "/.marker"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), r.marker);
    s.ok(&["delete", "--force", "conf-mntns"]);
    let _ = holder.kill();
    let _ = holder.wait();
}

/// runtime-tools' linux_ns_itype: no namespace listed, so each is the caller's (the runtime
/// spec's rule), the mount one included. The container is chroot'ed into its rootfs; the
/// mounts made for it in the caller's namespace go with it, and no mount that was already at
/// root.path is touched.
#[test]
fn a_bundle_without_namespaces_shares_the_callers_and_leaves_no_mount() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // A mount of the user's own at root.path, there before and after.
    let root = r.arg();
    let _bind = UserBind::new(&root);
    let mut c = config(&r, &["sleep", "10"]);
    c["linux"]["namespaces"] = json!([]);
    c["annotations"]
        .as_object_mut()
        .unwrap()
        .remove("org.minibox.network");
    c["linux"].as_object_mut().unwrap().remove("maskedPaths");
    c["linux"].as_object_mut().unwrap().remove("readonlyPaths");
    c.as_object_mut().unwrap().remove("hostname");
    let b = bundle(&c);
    let s = StateRoot::new();
    let pid_file = b.path().join("pid");
    let before = host_mount_points();
    s.ok(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "conf-nons",
    ]);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap(),
            std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap(),
            "{ns}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/root/.marker")).unwrap(),
        r.marker
    );
    assert!(
        host_mount_points().len() > before.len(),
        "its mounts are the caller's"
    );
    s.ok(&["delete", "--force", "conf-nons"]);
    assert_eq!(host_mount_points(), before, "a mount stayed behind");
}

/// A bind mount of a directory onto itself in the test's (the host's) namespace, undone
/// (with whatever is stacked on it) when dropped.
struct UserBind(String);

impl UserBind {
    fn new(dir: &str) -> UserBind {
        let bind = std::process::Command::new("mount")
            .args(["--bind", dir, dir])
            .status()
            .unwrap();
        assert!(bind.success());
        UserBind(dir.to_string())
    }
}

impl Drop for UserBind {
    fn drop(&mut self) {
        while host_mount_points().contains(&self.0) {
            let out = std::process::Command::new("umount")
                .args(["-l", &self.0])
                .status();
            if !out.is_ok_and(|s| s.success()) {
                return;
            }
        }
    }
}

/// runtime-tools' mounts test: options given comma-joined in one entry (`"mode=755,size=1k"`)
/// are read as a list, and a bind given a tmpfs's options runs (the kernel ignores them for a
/// bind, and runc passes them; minibox says so).
#[test]
fn comma_joined_mount_options_and_a_binds_filesystem_options() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut c = config(&r, &["cat", "/proc/self/mountinfo"]);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("seen"), "bound\n").unwrap();
    c["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/small", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid,noexec", "mode=700,size=1k"]}),
        json!({"destination": "/bound", "type": "bind", "source": host.path(),
               "options": ["rbind,ro", "mode=755", "size=1k"]}),
    ]);
    let b = bundle(&c);
    let out = run_bundle(b.path(), "oci-comma");
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{err}");
    let line = |point: &str| {
        text.lines()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .unwrap_or_else(|| panic!("{point} not mounted: {text}"))
            .to_string()
    };
    let small = line("/small");
    assert!(
        small.contains("nosuid") && small.contains("noexec"),
        "{small}"
    );
    assert!(
        small.contains("size=4k") && small.contains("mode=700"),
        "{small}"
    );
    assert!(line("/bound").contains(" ro,"), "{}", line("/bound"));
    assert!(
        err.contains("mode=755,size=1k") && err.contains("ignored"),
        "{err}"
    );
}

/// A tmpfs of the test's own at `dir`, unmounted when dropped.
struct UserTmpfs(String);

impl UserTmpfs {
    fn new(dir: &str) -> UserTmpfs {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "mbx-sub", dir])
            .status()
            .unwrap();
        assert!(ok.success());
        UserTmpfs(dir.to_string())
    }
}

impl Drop for UserTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l", &self.0])
            .status();
    }
}

/// Recursive mount attributes: `rro` (with `rnosuid`, `rnoexec`) on an `rbind` reaches the
/// submount under the bound directory too (and so does a plain `ro`: minibox flags a bind's
/// whole tree). `rdev` lifts nodev: the device cgroup guards what opens there.
#[test]
fn recursive_mount_attributes_reach_submounts() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let host = tempfile::tempdir().unwrap();
    let sub = host.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let _sub = UserTmpfs::new(sub.to_str().unwrap());
    let mut c = config(&r, &["cat", "/proc/self/mountinfo"]);
    c["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/plain", "type": "bind", "source": host.path(),
               "options": ["rbind", "ro"]}),
        json!({"destination": "/rec", "type": "bind", "source": host.path(),
               "options": ["rbind", "rro", "rnosuid", "rnoexec"]}),
    ]);
    let text = run_ok(&c, "oci-rro");
    let opts = |point: &str| -> String {
        text.lines()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .unwrap_or_else(|| panic!("{point} not mounted: {text}"))
            .split(' ')
            .nth(5)
            .unwrap()
            .to_string()
    };
    // minibox sets a bind's flags on its whole tree: a plain `ro` holds below too.
    for point in ["/plain", "/plain/sub"] {
        assert!(opts(point).starts_with("ro,"), "{point}: {}", opts(point));
    }
    for point in ["/rec", "/rec/sub"] {
        let o = opts(point);
        assert!(
            o.starts_with("ro,") && o.contains("nosuid") && o.contains("noexec"),
            "{point}: {o}"
        );
    }
    // `rdev` asks the tree's nodev off: the device cgroup, not the mount, decides what opens.
    let mut dev = config(&r, &["cat", "/proc/self/mountinfo"]);
    dev["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/x", "type": "bind", "source": host.path(), "options": ["rbind", "rdev"]}),
    );
    let text = run_ok(&dev, "oci-rdev");
    let x = text
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/x"))
        .unwrap_or_else(|| panic!("/x not mounted: {text}"));
    assert!(!x.split(' ').nth(5).unwrap().contains("nodev"), "{x}");
}

/// `/proc/PID/stat` field `n` (1-based), after the command name.
fn stat_field(pid: &str, n: usize) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(n - 3).unwrap().to_string()
}

/// process.ioPriority, process.scheduler, linux.personality, linux.memoryPolicy reach the
/// container's process (read on the host: ioprio_get, /proc/PID/stat, personality, numa_maps);
/// process.execCPUAffinity reaches an exec'd one (the spec keeps the first process out of it).
#[test]
fn scheduling_personality_memory_policy_and_exec_affinity_are_applied() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut c = config(&r, &["sleep", "10"]);
    c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 7});
    c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    c["linux"]["personality"] = json!({"domain": "LINUX32"});
    c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    let b = bundle(&c);
    let s = StateRoot::new();
    let pid_file = b.path().join("pid");
    s.ok(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "conf-sched",
    ]);
    s.ok(&["start", "conf-sched"]);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, pid) reads no memory of ours.
    let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid.parse::<i32>().unwrap()) };
    assert_eq!((ioprio >> 13, ioprio & 0xff), (3, 7), "ioprio {ioprio:#x}");
    assert_eq!(stat_field(&pid, 19), "7", "nice");
    assert_eq!(
        stat_field(&pid, 41),
        libc::SCHED_BATCH.to_string(),
        "policy"
    );
    let persona = std::fs::read_to_string(format!("/proc/{pid}/personality")).unwrap();
    assert_eq!(persona.trim(), "00000008");
    let numa = std::fs::read_to_string(format!("/proc/{pid}/numa_maps")).unwrap();
    assert!(numa.lines().any(|l| l.contains(" bind:0")), "{numa}");
    // execCPUAffinity: an exec'd process runs on the CPUs asked (the last one we may use).
    let mine = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let last = (0..nix::sched::CpuSet::count())
        .rfind(|&c| mine.is_set(c).unwrap_or(false))
        .unwrap();
    let process = b.path().join("process.json");
    std::fs::write(
        &process,
        json!({"cwd": "/", "args": ["/payload", "cat", "/proc/self/status"],
               "user": {"uid": 0, "gid": 0}, "env": ["PATH=/"],
               "execCPUAffinity": {"initial": "0", "final": last.to_string()}})
        .to_string(),
    )
    .unwrap();
    let out = minibox()
        .arg("--root")
        .arg(s.0.path())
        .args(["exec", "--process", process.to_str().unwrap(), "conf-sched"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = stdout(&out);
    assert!(
        status.contains(&format!("Cpus_allowed_list:\t{last}\n")),
        "{status}"
    );
    s.ok(&["delete", "--force", "conf-sched"]);
}

/// linux.netDevices: a host device moves into the container's network namespace, renamed, its
/// address kept; a virtual one is gone with the namespace. Only ever inside a throwaway network
/// namespace that plays the host (`unshare --net`), with veth links (this kernel has no dummy
/// driver; a moved veth end takes its peer along when its namespace goes).
#[test]
fn net_devices_move_into_the_container_renamed_with_their_addresses() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let dir = tempfile::tempdir().unwrap();
    let mut bundles = vec![];
    for (n, args) in [(0, vec!["ifaces"]), (1, vec!["cat", "/proc/net/fib_trie"])] {
        let mut c = config(&r, &args);
        c["linux"]["netDevices"] = json!({format!("mbxdm{n}"): {"name": format!("eth7{n}")}});
        let b = dir.path().join(format!("b{n}"));
        std::fs::create_dir(&b).unwrap();
        write_config(&b, &c);
        bundles.push(b);
    }
    let script = format!(
        "set -e
         ip link add mbxdm0 type veth peer name mbxdp0
         ip link add mbxdm1 type veth peer name mbxdp1
         ip addr add 10.77.0.5/24 dev mbxdm1
         \"$MB\" run --rm --bundle {b0} conf-netdev0
         \"$MB\" run --rm --bundle {b1} conf-netdev1
         # (The kernel takes a namespace down in the background.)
         for i in $(seq 100); do
             n=$(ip -o link show | grep -c mbxd || true)
             [ \"$n\" = 0 ] && break
             sleep 0.1
         done
         echo \"$n\"",
        b0 = bundles[0].display(),
        b1 = bundles[1].display()
    );
    let out = std::process::Command::new("unshare")
        .args(["--net", "--mount", "--fork", "sh", "-c", &script])
        .env("MB", minibox_bin())
        .env("MINIBOX_ROOT", dir.path().join("state"))
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}{err}");
    assert!(text.contains("eth70 down"), "{text}");
    assert!(text.contains("10.77.0.5"), "{text}");
    // Both dummies went with the containers' namespaces.
    assert_eq!(text.lines().last(), Some("0"), "{text}");
}

/// What minibox does not apply is refused in one line naming the field and the runtime spec's
/// section; linux.intelRdt says whether the host has RDT at all.
#[test]
fn unapplied_fields_are_refused_with_their_spec_section() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let has_rdt = std::path::Path::new("/sys/fs/resctrl/schemata").exists();
    for (pointer, value, needles) in [
        (
            "/linux/intelRdt",
            json!({"closID": "mbx"}),
            vec![
                "linux.intelRdt",
                if has_rdt { "resctrl" } else { "no Intel RDT" },
                "config-linux.md#intelrdt",
            ],
        ),
        (
            "/linux/resources/hugepageLimits",
            json!([{"pageSize": "2MB", "limit": 1048576}]),
            vec![
                "linux.resources.hugepageLimits",
                "config-linux.md#huge-page-limits",
            ],
        ),
        (
            "/linux/timeOffsets",
            json!({"monotonic": {"secs": 1, "nanosecs": 0}}),
            vec![
                "linux.timeOffsets",
                "config-linux.md#offset-for-time-namespace",
            ],
        ),
    ] {
        let mut c = config(&r, &["exit", "0"]);
        set(&mut c, pointer, value);
        let b = bundle(&c);
        let out = run_bundle(b.path(), "oci-refused-section");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{pointer}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        for n in needles {
            assert!(err.contains(n), "{err} lacks {n}");
        }
    }
}

/// containerd's shim kills with a number (`kill --all ID 9`, `kill ID 15`): a number is runc's
/// SIGNAL, even where it is also the prefix of another container's id (ids are hex).
#[test]
fn a_numeric_signal_is_never_taken_for_another_containers_id() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let s = StateRoot::new();
    let create = |id: &str| {
        let b = bundle(&config(&r, &["sleep", "20"]));
        s.ok(&["create", "--bundle", b.path().to_str().unwrap(), id]);
        s.ok(&["start", id]);
    };
    create("9abc0def");
    create("conf-victim");
    s.ok(&["kill", "--all", "conf-victim", "9"]);
    let state = |id: &str| -> Value {
        let out = minibox()
            .arg("--root")
            .arg(s.0.path())
            .args(["state", id])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while state("conf-victim")["status"] != "stopped" {
        assert!(
            std::time::Instant::now() < deadline,
            "conf-victim was not killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        state("9abc0def")["status"],
        "running",
        "the wrong container was killed"
    );
    create("conf-victim2");
    s.ok(&["kill", "conf-victim2", "15"]);
    assert_eq!(
        state("9abc0def")["status"],
        "running",
        "the wrong container was killed"
    );
    s.ok(&["delete", "--force", "9abc0def"]);
    s.ok(&["delete", "conf-victim"]);
    s.ok(&["delete", "--force", "conf-victim2"]);
}

/// Where each of `points` is in a mountinfo text (its line number), each listed exactly once.
fn mountinfo_positions(text: &str, points: &[&str]) -> Vec<usize> {
    let listed = mount_points(text);
    points
        .iter()
        .map(|p| {
            let at: Vec<usize> = (0..listed.len()).filter(|&i| listed[i] == *p).collect();
            assert_eq!(at.len(), 1, "{p} is listed {} times: {text}", at.len());
            at[0]
        })
        .collect()
}

/// runtime-tools' `mounts`: config.json's mounts show in `/proc/self/mountinfo` in the listed
/// order, binds and tmpfs mixed. The kernel lists mounts by when each was made, and a bind's
/// tree is opened before the clone: unless the child renews it as it attaches it, every bind
/// comes first, before the root even. The renewed bind keeps its flags and submounts; in a
/// user namespace too.
#[test]
fn mounts_are_listed_in_config_order_with_their_flags() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    std::fs::set_permissions(
        r.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // Made here: root in a user namespace may not make them in a rootfs the host's root owns.
    for d in ["om-a", "om-b", "om-c", "om-d"] {
        std::fs::create_dir(r.path().join(d)).unwrap();
    }
    let host = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        host.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sub = host.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let _sub = UserTmpfs::new(sub.to_str().unwrap());
    let mut c = config(&r, &["cat", "/proc/self/mountinfo"]);
    c["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/om-a", "type": "tmpfs", "source": "tmpfs"}),
        json!({"destination": "/om-b", "type": "bind", "source": host.path(),
               "options": ["bind", "ro"]}),
        json!({"destination": "/om-c", "type": "tmpfs", "source": "tmpfs"}),
        json!({"destination": "/om-d", "type": "bind", "source": host.path(),
               "options": ["rbind", "nosuid", "shared"]}),
    ]);
    let points = ["/", "/om-a", "/om-b", "/om-c", "/om-d", "/om-d/sub"];
    let check = |text: &str| {
        let at = mountinfo_positions(text, &points);
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "mounts out of config.json's order ({points:?} at lines {at:?}): {text}"
        );
        let opts = |point: &str| {
            let line = text
                .lines()
                .find(|l| l.split(' ').nth(4) == Some(point))
                .unwrap();
            (
                line.split(' ').nth(5).unwrap().to_string(),
                line.to_string(),
            )
        };
        assert!(opts("/om-b").0.starts_with("ro,"), "{}", opts("/om-b").1);
        for point in ["/om-d", "/om-d/sub"] {
            assert!(opts(point).0.contains("nosuid"), "{}", opts(point).1);
        }
        assert!(opts("/om-d").1.contains(" shared:"), "{}", opts("/om-d").1);
    };
    check(&run_ok(&c, "om-mount-order"));
    // The same in a user namespace (root inside, 100000 outside).
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["uidMappings"] = map.clone();
    c["linux"]["gidMappings"] = map;
    check(&run_ok(&c, "om-mount-order-userns"));
}

/// runtime-tools' `hooks_stdin`: a `prestart` hook (runtime-spec 1.0's, run "after the start
/// operation is called") reads the state of a `created` container, as crun gives it;
/// `createRuntime`, run at the same point, reads `creating` (1.1); `poststart` reads
/// `running`, `poststop` `stopped`; each with the container's pid, bundle and annotations.
#[test]
fn prestart_hooks_read_a_created_container() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap().to_string();
    let hook = |name: &str| json!([{"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {o}/{name}")]}]);
    let mut c = config(&r, &["exit", "0"]);
    c["annotations"] = json!({"org.example.om": "hooks"});
    c["hooks"] = json!({
        "prestart": hook("prestart"),
        "createRuntime": hook("createRuntime"),
        "poststart": hook("poststart"),
        "poststop": hook("poststop"),
    });
    let b = bundle(&c);
    let s = StateRoot::new();
    let pid: u64 = s.create(b.path(), "om-hooks").parse().unwrap();
    s.ok(&["start", "om-hooks"]);
    let mut stopped = false;
    for _ in 0..500 {
        let (_, text) = s.mb(&["state", "om-hooks"]);
        if text.contains("\"stopped\"") {
            stopped = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(stopped, "om-hooks did not stop");
    s.ok(&["delete", "om-hooks"]);
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(out.path().join(name))
            .unwrap_or_else(|e| panic!("hook {name} wrote nothing: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"))
    };
    for (name, status) in [
        ("prestart", "created"),
        ("createRuntime", "creating"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let state = read(name);
        assert_eq!(state["status"], status, "{name}: {state}");
        assert_eq!(state["id"], "om-hooks", "{name}: {state}");
        assert_eq!(
            state["bundle"].as_str(),
            b.path().to_str(),
            "{name}: {state}"
        );
        assert_eq!(
            state["annotations"]["org.example.om"], "hooks",
            "{name}: {state}"
        );
        if name != "poststop" {
            assert_eq!(state["pid"].as_u64(), Some(pid), "{name}: {state}");
        }
    }
}

/// runtime-tools' `linux_cgroups_memory` (and Docker's `--memory-swappiness`,
/// `--oom-kill-disable`): swappiness, disableOOMKiller and kernelTCP reach the container's v1
/// memory group; cgroup v2 has no file for them, and refuses them by name. (`kernel` stays a
/// warning: Linux takes the write and ignores it.)
#[test]
fn memory_swappiness_oom_killer_and_kernel_tcp_reach_the_v1_group() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut c = config(&r, &["sleep", "5"]);
    set(
        &mut c,
        "/linux/resources/memory",
        json!({"limit": 64 << 20, "swappiness": 10, "disableOOMKiller": true,
               "kernelTCP": 50593792}),
    );
    let b = bundle(&c);
    let s = StateRoot::new();
    let v1 = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .any(|l| {
            l.split(':')
                .nth(1)
                .unwrap_or("")
                .split(',')
                .any(|c| c == "memory")
        });
    if !v1 {
        let (code, err) = s.mb(&["create", "--bundle", b.path().to_str().unwrap(), "om-mem"]);
        assert_ne!(code, Some(0), "cgroup v2 took swappiness: {err}");
        assert!(
            err.contains("memory.swappiness is not supported on this host's cgroup v2"),
            "{err}"
        );
        return;
    }
    let pid = s.create(b.path(), "om-mem");
    let group = cgroup_dir(&pid, "memory");
    let read = |file: &str| std::fs::read_to_string(group.join(file)).unwrap();
    assert_eq!(read("memory.swappiness").trim(), "10");
    assert!(
        read("memory.oom_control").contains("oom_kill_disable 1"),
        "{}",
        read("memory.oom_control")
    );
    assert_eq!(read("memory.kmem.tcp.limit_in_bytes").trim(), "50593792");
    s.ok(&["delete", "--force", "om-mem"]);
    // Out of range: one line naming the field, nothing made.
    set(&mut c, "/linux/resources/memory/swappiness", json!(101));
    write_config(b.path(), &c);
    let (code, err) = s.mb(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "om-mem-bad",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("swappiness 101 is invalid"), "{err}");
    let (_, state) = s.mb(&["state", "om-mem-bad"]);
    assert!(state.contains("does not exist"), "{state}");
}
