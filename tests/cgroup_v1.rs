//! cgroup v1 limits, checked against the kernel. They need root and a host whose memory, cpu,
//! cpuacct and pids controllers are mounted as cgroup v1 hierarchies: a legacy or hybrid host
//! (like our CI machine) runs them natively; a pure cgroup v2 host runs them in a VM that mounts
//! v1 hierarchies (`tests/vm/cgroup-tests.sh v1`). Every test is named `v1_*`, so
//! tests/run-all.sh can run them on their own. Run them one at a time (`--test-threads=1`):
//! several check that no group is left.
//!
//! On a shared host the v1 trees belong to others: these tests only read them, and write to or
//! remove nothing but groups they made themselves, below their own group.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// The controllers minibox's v1 driver uses (and the tests check: freezer is optional).
const CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "pids", "devices"];

/// A cgroup v1 hierarchy as this test process sees it.
struct Mount {
    controllers: Vec<String>,
    /// The group of the hierarchy that is mounted (`/` unless a subtree is bind-mounted).
    root: String,
    point: PathBuf,
}

fn v1_mounts() -> Vec<Mount> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter_map(|line| {
            let (fields, after) = line.split_once(" - ")?;
            let after: Vec<&str> = after.split(' ').collect();
            if after.first() != Some(&"cgroup") {
                return None;
            }
            let fields: Vec<&str> = fields.split(' ').collect();
            Some(Mount {
                controllers: after.get(2)?.split(',').map(String::from).collect(),
                root: fields.get(3)?.to_string(),
                point: PathBuf::from(fields.get(4)?),
            })
        })
        .collect()
}

fn mount_of(controller: &str) -> Option<Mount> {
    v1_mounts()
        .into_iter()
        .find(|m| m.controllers.iter().any(|c| c == controller))
}

/// True when the test may go on; fails the test on a host without v1 hierarchies.
fn need_v1() -> bool {
    if !need_root() {
        return false;
    }
    for c in CONTROLLERS {
        assert!(
            mount_of(c).is_some(),
            "this host has no cgroup v1 '{c}' hierarchy (none in /proc/self/mountinfo): these \
             tests run natively on a cgroup v1 or hybrid host, and on a pure cgroup v2 host in \
             the VM with `tests/vm/cgroup-tests.sh v1` (tests/run-all.sh does)"
        );
    }
    true
}

/// The host path of `pid`'s group in `controller`'s hierarchy (`pid` may be "self").
fn group_of(pid: &str, controller: &str) -> PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = text
        .lines()
        .find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
            list.split(',').any(|c| c == controller).then_some(path)
        })
        .unwrap_or_else(|| panic!("no {controller} line in /proc/{pid}/cgroup: {text}"));
    let mount = mount_of(controller).unwrap();
    let below = rel
        .strip_prefix(mount.root.as_str())
        .unwrap_or_else(|| panic!("{rel} is outside the {controller} mount"));
    mount.point.join(below.trim_start_matches('/'))
}

/// The group this test process runs in: minibox, its child, puts its groups below it.
fn own_group(controller: &str) -> PathBuf {
    group_of("self", controller)
}

/// The container's group in each hierarchy, found from the process's side.
fn container_groups(pid: u32) -> Vec<(&'static str, PathBuf)> {
    CONTROLLERS
        .into_iter()
        .map(|c| (c, group_of(&pid.to_string(), c)))
        .collect()
}

fn group<'a>(groups: &'a [(&str, PathBuf)], controller: &str) -> &'a Path {
    &groups.iter().find(|(c, _)| *c == controller).unwrap().1
}

/// Every directory below `dir`, `dir` included, if it exists.
fn dirs_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        out.push(d);
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    out
}

/// minibox's default parent in our own group, and every group in it, in every hierarchy.
fn minibox_dirs() -> BTreeSet<PathBuf> {
    CONTROLLERS
        .into_iter()
        .flat_map(|c| dirs_below(&own_group(c).join("minibox")))
        .collect()
}

fn has_processes(dir: &Path) -> bool {
    dirs_below(dir)
        .iter()
        .any(|d| fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty()))
}

/// Fails if a group appeared below minibox's parent since `before` and is still there. Every
/// container of the test has ended by now; a new group that still has processes belongs to
/// another minibox on this host (say a concurrent test run sharing a root group) and is not
/// counted.
fn assert_no_group_left(before: &BTreeSet<PathBuf>) {
    let left: Vec<PathBuf> = minibox_dirs()
        .difference(before)
        .filter(|d| !has_processes(d))
        .cloned()
        .collect();
    assert!(left.is_empty(), "groups left behind: {left:?}");
}

fn spawn_payload(r: &Rootfs, flags: &[&str], payload_args: &[&str]) -> Child {
    minibox()
        .arg("run")
        .args(flags)
        .arg(r.arg())
        .arg("/payload")
        .args(payload_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn v1_limits_are_in_the_groups_files_while_it_runs_and_the_groups_go_after() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    let r = Rootfs::new();
    let child = spawn_payload(
        &r,
        &["--memory", "48m", "--cpus", "0.5", "--pids-limit", "30"],
        &["sleep", "2"],
    );
    let pid = container_pid(child.id());
    let groups = container_groups(pid);
    for (c, g) in &groups {
        assert_eq!(g.parent().unwrap(), own_group(c).join("minibox"), "{c}");
        assert_eq!(g.file_name().unwrap().len(), 64, "{}", g.display());
        assert_eq!(read(g.join("cgroup.procs")), pid.to_string(), "{c}");
    }
    let memory = group(&groups, "memory");
    assert_eq!(
        read(memory.join("memory.limit_in_bytes")),
        (48u64 << 20).to_string()
    );
    if memory.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            read(memory.join("memory.memsw.limit_in_bytes")),
            (48u64 << 20).to_string(),
            "no swap on top"
        );
    }
    let cpu = group(&groups, "cpu");
    assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(group(&groups, "pids").join("pids.max")), "30");
    let out = wait_output(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for (c, g) in &groups {
        assert!(!g.exists(), "{c} group {} left behind", g.display());
    }
    assert_no_group_left(&before);
}

#[test]
fn v1_no_flag_still_gets_groups_without_limits() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    let r = Rootfs::new();
    let child = spawn_payload(&r, &[], &["sleep", "1"]);
    let groups = container_groups(container_pid(child.id()));
    for (c, g) in &groups {
        assert_eq!(g.parent().unwrap(), own_group(c).join("minibox"), "{c}");
    }
    let memory: u64 = read(group(&groups, "memory").join("memory.limit_in_bytes"))
        .parse()
        .unwrap();
    assert!(memory >= 1 << 62, "memory.limit_in_bytes is {memory}");
    assert_eq!(read(group(&groups, "cpu").join("cpu.cfs_quota_us")), "-1");
    // The one limit a run gets unasked: podman's default process limit.
    assert_eq!(read(group(&groups, "pids").join("pids.max")), "2048");
    assert_eq!(
        wait_output(child, Duration::from_secs(60)).status.code(),
        Some(0)
    );
    assert!(groups.iter().all(|(_, g)| !g.exists()));
    assert_no_group_left(&before);
}

#[test]
fn v1_the_container_sees_its_own_groups_as_roots() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    let r = Rootfs::new();
    let out = payload_ok(&r, &["--memory", "32m"], &["cat", "/proc/self/cgroup"]);
    for c in CONTROLLERS {
        let line = out
            .lines()
            .find(|l| l.split(':').nth(1).unwrap().split(',').any(|x| x == c))
            .unwrap_or_else(|| panic!("no {c} line: {out}"));
        assert!(line.ends_with(":/"), "{line}");
    }
    assert_no_group_left(&before);
}

#[test]
fn v1_memhog_past_the_limit_is_oom_killed_and_said_so() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    limits::memhog_past_the_limit_is_oom_killed_and_said_so(&Rootfs::new(), "v1hog");
    assert_no_group_left(&before);
}

#[test]
fn v1_memhog_under_the_limit_succeeds() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    limits::memhog_under_the_limit_succeeds(&Rootfs::new());
    assert_no_group_left(&before);
}

#[test]
fn v1_cpuhog_gets_about_its_share() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    limits::cpuhog_gets_about_its_share(&Rootfs::new());
    assert_no_group_left(&before);
}

#[test]
fn v1_forkbomb_is_contained_by_the_pids_limit() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    limits::forkbomb_is_contained_by_the_pids_limit(&Rootfs::new());
    assert_no_group_left(&before);
}

#[test]
fn v1_every_kind_of_end_removes_the_groups() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    let r = Rootfs::new();
    // Normal exit, failing exit, CMD not found, OOM kill, killed from outside, minibox
    // SIGTERM'd.
    assert_eq!(
        run_payload(&r, &["-m", "16m"], &["exit", "3"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(
        run_minibox(&["run", "-m", "16m", &r.arg(), "/nope"])
            .status
            .code(),
        Some(127)
    );
    assert_eq!(
        run_payload(&r, &["-m", "16m"], &["memhog", "64"])
            .status
            .code(),
        Some(137)
    );
    let child = spawn_payload(&r, &["-m", "16m", "--pids-limit", "5"], &["sleep", "30"]);
    let pid = container_pid(child.id());
    let groups = container_groups(pid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(
        wait_output(child, Duration::from_secs(30)).status.code(),
        Some(137)
    );
    assert!(groups.iter().all(|(_, g)| !g.exists()), "{groups:?}");
    let mut child = spawn_payload(&r, &["-m", "16m"], &["trap", "1"]);
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    assert_eq!(read_line(&mut out), "ready");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(
        wait_deadline(&mut child, Duration::from_secs(30)).code(),
        Some(0)
    );
    assert_no_group_left(&before);
}

#[test]
fn v1_twenty_containers_at_once_get_their_own_groups() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    let r = Rootfs::new();
    let children: Vec<Child> = (0..20)
        .map(|_| {
            spawn_payload(
                &r,
                &["--memory", "16m", "--pids-limit", "10"],
                &["sleep", "3"],
            )
        })
        .collect();
    let mut groups: Vec<PathBuf> = children
        .iter()
        .flat_map(|c| container_groups(container_pid(c.id())))
        .map(|(_, g)| g)
        .collect();
    groups.sort();
    groups.dedup();
    // cpu and cpuacct share a group where they are co-mounted.
    let per_container = CONTROLLERS
        .iter()
        .map(|c| mount_of(c).unwrap().point)
        .collect::<BTreeSet<_>>()
        .len();
    assert_eq!(groups.len(), 20 * per_container);
    for child in children {
        let out = wait_output(child, Duration::from_secs(120));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert!(groups.iter().all(|g| !g.exists()));
    assert_no_group_left(&before);
}

#[test]
fn v1_groups_are_made_only_below_minibox_own_group() {
    if !need_v1() {
        return;
    }
    let everywhere = || -> Vec<PathBuf> {
        CONTROLLERS
            .iter()
            .flat_map(|c| dirs_below(&mount_of(c).unwrap().point))
            .collect()
    };
    let named_minibox = || -> BTreeSet<PathBuf> {
        everywhere()
            .into_iter()
            .filter(|d| d.ends_with("minibox"))
            .collect()
    };
    let minibox_before = named_minibox();
    let before = minibox_dirs();
    let r = Rootfs::new();
    let child = spawn_payload(&r, &["--memory", "16m"], &["sleep", "2"]);
    let groups = container_groups(container_pid(child.id()));
    let id = groups[0].1.file_name().unwrap().to_owned();
    let expected: BTreeSet<PathBuf> = groups.iter().map(|(_, g)| g.clone()).collect();
    // Anywhere in the hierarchies, the container's id names its groups and nothing else, and
    // the only new `minibox` groups are in our own groups (one with processes of its own
    // belongs to another minibox on this host).
    let everywhere = everywhere();
    let named_id: BTreeSet<PathBuf> = everywhere
        .iter()
        .filter(|d| d.file_name() == Some(id.as_os_str()))
        .cloned()
        .collect();
    assert_eq!(named_id, expected);
    let own_parents: BTreeSet<PathBuf> = CONTROLLERS
        .iter()
        .map(|c| own_group(c).join("minibox"))
        .collect();
    for d in named_minibox().difference(&minibox_before) {
        assert!(
            own_parents.contains(d) || has_processes(d),
            "a minibox group outside ours: {}",
            d.display()
        );
    }
    let out = wait_output(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_group_left(&before);
}

/// Groups this test makes below its own, one per hierarchy; removed on drop (they must be
/// empty by then: minibox removed what it made inside).
struct TestGroups(Vec<PathBuf>);

impl Drop for TestGroups {
    fn drop(&mut self) {
        let failed: Vec<String> = self
            .0
            .iter()
            .filter_map(|g| {
                fs::remove_dir(g)
                    .err()
                    .map(|e| format!("{}: {e}", g.display()))
            })
            .collect();
        if !std::thread::panicking() {
            assert!(failed.is_empty(), "cannot remove test groups: {failed:?}");
        }
    }
}

#[test]
fn v1_groups_go_below_the_group_minibox_runs_in() {
    if !need_v1() {
        return;
    }
    let r = Rootfs::new();
    // One group per hierarchy below our own (cpu and cpuacct may share one).
    let name = format!("mbxtest-own-{}", std::process::id());
    let mut dirs: Vec<PathBuf> = CONTROLLERS
        .iter()
        .map(|c| own_group(c).join(&name))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        fs::create_dir(d).unwrap();
    }
    let made = TestGroups(dirs.clone());
    let procs: Vec<String> = made
        .0
        .iter()
        .map(|d| d.join("cgroup.procs").display().to_string())
        .collect();
    // minibox starts in those groups: the shell moves itself there, then becomes minibox (with
    // the environment the tests give minibox).
    let mut sh = Command::new("sh");
    for (key, value) in minibox().get_envs() {
        match value {
            Some(value) => sh.env(key, value),
            None => sh.env_remove(key),
        };
    }
    let child = sh
        .arg("-c")
        .arg(r#"for f in $MBX_PROCS; do echo $$ > "$f" || exit 99; done; exec "$@""#)
        .arg("sh")
        .arg(minibox_bin())
        .args([
            "run",
            "--pids-limit",
            "7",
            &r.arg(),
            "/payload",
            "sleep",
            "2",
        ])
        .env("MBX_PROCS", procs.join(" "))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = container_pid(child.id());
    let groups = container_groups(pid);
    for (c, g) in &groups {
        assert_eq!(
            g.parent().unwrap(),
            own_group(c).join(&name).join("minibox"),
            "{c}"
        );
    }
    assert_eq!(read(group(&groups, "pids").join("pids.max")), "7");
    let out = wait_output(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for d in &made.0 {
        assert_eq!(
            dirs_below(d),
            std::slice::from_ref(d),
            "left below {}",
            d.display()
        );
    }
}

#[test]
fn v1_cgroup_parent_is_honoured_and_removed_when_empty() {
    if !need_v1() {
        return;
    }
    let r = Rootfs::new();
    let child = spawn_payload(
        &r,
        &["--cgroup-parent", "/mbxtest/sub", "--pids-limit", "5"],
        &["sleep", "1"],
    );
    let groups = container_groups(container_pid(child.id()));
    for (c, g) in &groups {
        assert_eq!(g.parent().unwrap(), own_group(c).join("mbxtest/sub"), "{c}");
    }
    assert_eq!(read(group(&groups, "pids").join("pids.max")), "5");
    assert_eq!(
        wait_output(child, Duration::from_secs(60)).status.code(),
        Some(0)
    );
    for c in CONTROLLERS {
        let parent = own_group(c).join("mbxtest");
        assert!(!parent.exists(), "{} left behind", parent.display());
    }
}

#[test]
fn v1_a_parent_outside_our_own_group_is_refused() {
    if !need_v1() {
        return;
    }
    let r = Rootfs::new();
    let out = run_payload(
        &r,
        &["--cgroup-parent", "minibox/../../escape", "--memory", "16m"],
        &["exit", "0"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("invalid --cgroup-parent") && err.lines().count() == 1,
        "{err}"
    );
    for c in CONTROLLERS {
        let outside = own_group(c).parent().map(|p| p.join("escape"));
        assert!(!outside.is_some_and(|p| p.exists()), "{c}");
    }
}

#[test]
fn v1_bad_limits_are_refused_and_create_nothing() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    limits::bad_limits_are_refused(&Rootfs::new(), |_| assert_no_group_left(&before));
}

#[test]
fn v1_ps_reports_the_groups_memory_and_cpu() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    limits::ps_reports_the_groups_memory_and_cpu(&Rootfs::new(), "v1");
    assert_no_group_left(&before);
}

#[test]
fn v1_explain_names_the_driver_and_reads_the_groups_values_back() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    let r = Rootfs::new();
    let mut child = minibox()
        .args([
            "run",
            "--explain",
            "--memory",
            "48m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "30",
        ])
        .arg(r.arg())
        .args(["/payload", "sleep", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let groups = container_groups(container_pid(child.id()));
    let files: Vec<String> = [
        ("memory", "memory.limit_in_bytes"),
        ("cpu", "cpu.cfs_period_us"),
        ("cpu", "cpu.cfs_quota_us"),
        ("pids", "pids.max"),
    ]
    .iter()
    .map(|(c, f)| format!("{f}={}", read(group(&groups, c).join(f))))
    .collect();
    assert_eq!(
        wait_deadline(&mut child, Duration::from_secs(60)).code(),
        Some(0)
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let cgroup_step: String = err
        .lines()
        .skip_while(|l| !l.starts_with("[1/10] cgroup"))
        .take_while(|l| !l.starts_with("[2/10]"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(cgroup_step.contains("(cgroup v1)"), "{err}");
    for (controller, path) in &groups {
        assert!(
            cgroup_step.contains(&path.display().to_string()),
            "{controller} group {} not in {cgroup_step}",
            path.display()
        );
    }
    for f in &files {
        assert!(cgroup_step.contains(f.as_str()), "{f} not in {cgroup_step}");
    }
    assert!(
        err.contains("[10/10] exit        status 0 after") && err.contains("cgroup removed"),
        "{err}"
    );
    assert_no_group_left(&before);
}

#[test]
fn v1_processes_left_in_the_groups_are_killed_before_they_go() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    let r = Rootfs::new();
    let child = spawn_payload(&r, &["--memory", "16m"], &["sleep", "1"]);
    let groups = container_groups(container_pid(child.id()));
    // A process outside the container's namespaces joins its groups: it outlives PID 1.
    let mut straggler = Command::new(payload_bin())
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    for (_, g) in &groups {
        fs::write(g.join("cgroup.procs"), straggler.id().to_string()).unwrap();
    }
    let out = wait_output(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = wait_deadline(&mut straggler, Duration::from_secs(10));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(nix::sys::signal::SIGKILL as i32),
        "{status:?}"
    );
    assert!(groups.iter().all(|(_, g)| !g.exists()), "{groups:?}");
    assert_no_group_left(&before);
}

#[test]
fn v1_a_host_block_device_node_opens_nothing() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    devices::a_host_block_device_node_opens_nothing(&Rootfs::new(), "v1disk");
    assert_no_group_left(&before);
}

#[test]
fn v1_a_device_flag_gives_the_node_with_its_permissions() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    devices::a_device_flag_gives_the_node_with_its_permissions(&Rootfs::new());
    assert_no_group_left(&before);
}

#[test]
fn v1_a_bundle_denying_dev_null_gets_eperm() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    devices::a_bundle_denying_dev_null_gets_eperm(&Rootfs::new(), "v1null");
    assert_no_group_left(&before);
}

#[test]
fn v1_device_rules_are_in_the_devices_group_said_by_inspect_and_go_with_it() {
    if !need_v1() {
        return;
    }
    let before = minibox_dirs();
    let r = Rootfs::new();
    let child = spawn_payload(&r, &["--name", "v1devices"], &["sleep", "3"]);
    let pid = container_pid(child.id());
    let devices = group_of(&pid.to_string(), "devices");
    assert_eq!(
        devices.parent().unwrap(),
        own_group("devices").join("minibox")
    );
    // docker's rules after a reset to deny-all: the six nodes, the console, the ptys, tun,
    // mknod of anything; nothing else (not "a *:* rwm").
    let list = read(devices.join("devices.list"));
    let lines: Vec<&str> = list.lines().collect();
    for rule in [
        "c 1:3 rwm",
        "c 1:7 rwm",
        "c 136:* rwm",
        "c 10:200 rwm",
        "c *:* m",
        "b *:* m",
    ] {
        assert!(lines.contains(&rule), "{rule} not in devices.list: {list}");
    }
    assert_eq!(lines.len(), 12, "{list}");
    let inspect = minibox().args(["inspect", "v1devices"]).output().unwrap();
    let facts: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        facts["Devices"], "docker default: 12 device rules, all others denied",
        "{facts}"
    );
    assert_eq!(
        facts["Cgroup"]["Settings"]["devices.list"], "12 device rules, all others denied",
        "{facts}"
    );
    let out = wait_output(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!devices.exists(), "{} left behind", devices.display());
    minibox().args(["rm", "v1devices"]).output().unwrap();
    assert_no_group_left(&before);
}
