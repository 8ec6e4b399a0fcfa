//! cgroup v2 limits, checked against the kernel. They need root and a pure cgroup v2 host; on a
//! hybrid host (like our CI machine) tests/vm/cgroup-tests.sh runs them in a VM. Every test is
//! named `v2_*`, so tests/run-all.sh can leave them out of the native run on such a host.
//! Run them one at a time (`--test-threads=1`): several check that no group is left anywhere.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::*;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// True when the test may go on; fails the test on a host without cgroup v2 controllers.
fn need_v2() -> bool {
    if !need_root() {
        return false;
    }
    let controllers =
        fs::read_to_string(format!("{CGROUP_ROOT}/cgroup.controllers")).unwrap_or_default();
    for c in ["memory", "cpu", "pids"] {
        assert!(
            controllers.split_whitespace().any(|x| x == c),
            "this host has no cgroup v2 '{c}' controller at {CGROUP_ROOT}: run these tests in the \
             VM with tests/vm/cgroup-tests.sh (tests/run-all.sh does)"
        );
    }
    true
}

/// The container groups under `parent` right now.
fn groups_under(parent: &str) -> Vec<String> {
    match fs::read_dir(format!("{CGROUP_ROOT}/{parent}")) {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    }
}

/// The host path of the cgroup a process is in.
fn cgroup_of(pid: u32) -> PathBuf {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        rel.len() > 1,
        "pid {pid} ({cmdline:?}) is in no group of its own: {text}"
    );
    PathBuf::from(format!("{CGROUP_ROOT}{rel}"))
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

fn read(path: PathBuf) -> String {
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn v2_limits_are_in_the_groups_files_while_it_runs_and_the_group_goes_after() {
    if !need_v2() {
        return;
    }
    let r = Rootfs::new();
    let child = spawn_payload(
        &r,
        &["--memory", "48m", "--cpus", "0.5", "--pids-limit", "30"],
        &["sleep", "2"],
    );
    let pid = container_pid(child.id());
    let group = cgroup_of(pid);
    assert_eq!(
        group.parent().unwrap(),
        PathBuf::from(format!("{CGROUP_ROOT}/minibox"))
    );
    assert_eq!(group.file_name().unwrap().len(), 64, "{}", group.display());
    assert_eq!(read(group.join("memory.max")), (48u64 << 20).to_string());
    assert_eq!(read(group.join("memory.swap.max")), "0");
    assert_eq!(read(group.join("cpu.max")), "50000 100000");
    assert_eq!(read(group.join("pids.max")), "30");
    assert_eq!(read(group.join("cgroup.procs")), pid.to_string());
    let out = wait_output(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!group.exists(), "{} left behind", group.display());
}

#[test]
fn v2_no_flag_still_gets_a_group_without_limits() {
    if !need_v2() {
        return;
    }
    let r = Rootfs::new();
    let child = spawn_payload(&r, &[], &["sleep", "1"]);
    let group = cgroup_of(container_pid(child.id()));
    assert_eq!(read(group.join("memory.max")), "max");
    assert_eq!(read(group.join("cpu.max")), "max 100000");
    // The one limit a run gets unasked: podman's default process limit.
    assert_eq!(read(group.join("pids.max")), "2048");
    assert_eq!(
        wait_output(child, Duration::from_secs(60)).status.code(),
        Some(0)
    );
    assert!(!group.exists());
}

#[test]
fn v2_the_container_sees_its_own_group_as_root() {
    if !need_v2() {
        return;
    }
    let r = Rootfs::new();
    assert_eq!(
        payload_ok(&r, &["--memory", "32m"], &["cat", "/proc/self/cgroup"]).trim(),
        "0::/"
    );
}

#[test]
fn v2_memhog_past_the_limit_is_oom_killed_and_said_so() {
    if !need_v2() {
        return;
    }
    limits::memhog_past_the_limit_is_oom_killed_and_said_so(&Rootfs::new(), "hog");
    assert!(
        groups_under("minibox").is_empty(),
        "{:?}",
        groups_under("minibox")
    );
}

#[test]
fn v2_memhog_under_the_limit_succeeds() {
    if !need_v2() {
        return;
    }
    limits::memhog_under_the_limit_succeeds(&Rootfs::new());
    assert!(
        groups_under("minibox").is_empty(),
        "{:?}",
        groups_under("minibox")
    );
}

#[test]
fn v2_cpuhog_gets_about_its_share() {
    if !need_v2() {
        return;
    }
    limits::cpuhog_gets_about_its_share(&Rootfs::new());
}

#[test]
fn v2_forkbomb_is_contained_by_the_pids_limit() {
    if !need_v2() {
        return;
    }
    limits::forkbomb_is_contained_by_the_pids_limit(&Rootfs::new());
}

#[test]
fn v2_every_kind_of_end_removes_the_group() {
    if !need_v2() {
        return;
    }
    let r = Rootfs::new();
    // Normal exit, failing exit, CMD not found, killed from outside, minibox SIGTERM'd.
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
    let child = spawn_payload(&r, &["-m", "16m"], &["sleep", "30"]);
    let pid = container_pid(child.id());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(
        wait_output(child, Duration::from_secs(30)).status.code(),
        Some(137)
    );
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
    assert!(
        groups_under("minibox").is_empty(),
        "{:?}",
        groups_under("minibox")
    );
}

#[test]
fn v2_twenty_containers_at_once_get_their_own_groups() {
    if !need_v2() {
        return;
    }
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
        .map(|c| cgroup_of(container_pid(c.id())))
        .collect();
    groups.sort();
    groups.dedup();
    assert_eq!(groups.len(), 20);
    for child in children {
        let out = wait_output(child, Duration::from_secs(120));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert!(groups.iter().all(|g| !g.exists()));
    assert!(
        groups_under("minibox").is_empty(),
        "{:?}",
        groups_under("minibox")
    );
}

#[test]
fn v2_cgroup_parent_is_honoured() {
    if !need_v2() {
        return;
    }
    let r = Rootfs::new();
    let child = spawn_payload(
        &r,
        &["--cgroup-parent", "/mbxtest/sub", "--pids-limit", "5"],
        &["sleep", "1"],
    );
    let group = cgroup_of(container_pid(child.id()));
    assert_eq!(
        group.parent().unwrap(),
        PathBuf::from(format!("{CGROUP_ROOT}/mbxtest/sub"))
    );
    assert_eq!(read(group.join("pids.max")), "5");
    assert_eq!(
        wait_output(child, Duration::from_secs(60)).status.code(),
        Some(0)
    );
    assert!(groups_under("mbxtest/sub").is_empty());
    fs::remove_dir(format!("{CGROUP_ROOT}/mbxtest/sub")).unwrap();
    fs::remove_dir(format!("{CGROUP_ROOT}/mbxtest")).unwrap();
}

#[test]
fn v2_a_parent_with_processes_of_its_own_is_explained() {
    if !need_v2() {
        return;
    }
    let r = Rootfs::new();
    let busy = PathBuf::from(format!("{CGROUP_ROOT}/mbxbusy"));
    fs::create_dir(&busy).unwrap();
    let mut sleeper = std::process::Command::new(payload_bin())
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    fs::write(busy.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    let out = run_payload(
        &r,
        &["--cgroup-parent", "mbxbusy", "--memory", "16m"],
        &["exit", "0"],
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("no internal processes") && err.contains("mbxbusy"),
        "{err}"
    );
    assert!(groups_under("mbxbusy").is_empty());
    fs::remove_dir(&busy).unwrap();
}

#[test]
fn v2_bad_limits_are_refused_and_create_nothing() {
    if !need_v2() {
        return;
    }
    let before = groups_under("minibox");
    limits::bad_limits_are_refused(&Rootfs::new(), |what| {
        assert_eq!(groups_under("minibox"), before, "{what} created a group");
    });
}

#[test]
fn v2_ps_reports_the_groups_memory_and_cpu() {
    if !need_v2() {
        return;
    }
    limits::ps_reports_the_groups_memory_and_cpu(&Rootfs::new(), "v2");
    assert!(
        groups_under("minibox").is_empty(),
        "{:?}",
        groups_under("minibox")
    );
}

#[test]
fn v2_explain_reads_the_groups_values_back() {
    if !need_v2() {
        return;
    }
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
    let group = cgroup_of(container_pid(child.id()));
    let files: Vec<String> = ["memory.max", "cpu.max", "pids.max", "memory.swap.max"]
        .iter()
        .map(|f| {
            let value = read(group.join(f));
            if value.contains(' ') {
                format!("{f}=\"{value}\"")
            } else {
                format!("{f}={value}")
            }
        })
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
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        cgroup_step.contains(&format!("created {} (cgroup v2)", group.display())),
        "{err}"
    );
    for f in &files {
        assert!(cgroup_step.contains(f.as_str()), "{f} not in {cgroup_step}");
    }
    assert!(
        err.contains("[10/10] exit        status 0 after") && err.contains("cgroup removed"),
        "{err}"
    );
}

#[test]
fn v2_the_smallest_memory_limit_allowed_still_starts_a_container() {
    if !need_v2() {
        return;
    }
    let r = Rootfs::new();
    // minibox refuses less than 4 MiB; 4 MiB must then be enough for setup and exec.
    assert_eq!(
        payload_ok(&r, &["--memory", "4m"], &["id"])
            .split(' ')
            .next(),
        Some("uid=65534")
    );
}

#[test]
fn v2_a_host_block_device_node_opens_nothing() {
    if !need_v2() {
        return;
    }
    devices::a_host_block_device_node_opens_nothing(&Rootfs::new(), "v2disk");
}

#[test]
fn v2_a_device_flag_gives_the_node_with_its_permissions() {
    if !need_v2() {
        return;
    }
    devices::a_device_flag_gives_the_node_with_its_permissions(&Rootfs::new());
}

#[test]
fn v2_a_bundle_denying_dev_null_gets_eperm() {
    if !need_v2() {
        return;
    }
    devices::a_bundle_denying_dev_null_gets_eperm(&Rootfs::new(), "v2null");
}

/// Whether the kernel still holds BPF program `id` (`BPF_PROG_GET_FD_BY_ID`).
fn bpf_program_exists(id: u32) -> bool {
    // union bpf_attr for BPF_PROG_GET_FD_BY_ID: prog_id, next_id, open_flags.
    let attr: [u32; 3] = [id, 0, 0];
    // SAFETY: `attr` is a fully initialised 12-byte prefix of union bpf_attr for this command,
    // valid for the whole call; the kernel only reads it.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 13, attr.as_ptr(), 12) };
    if fd >= 0 {
        // SAFETY: the descriptor was just returned to us and is closed once.
        unsafe { libc::close(fd as i32) };
        return true;
    }
    let errno = std::io::Error::last_os_error();
    assert_eq!(
        errno.raw_os_error(),
        Some(libc::ENOENT),
        "BPF_PROG_GET_FD_BY_ID {id}: {errno}"
    );
    false
}

#[test]
fn v2_the_device_program_is_attached_said_by_inspect_and_goes_with_the_group() {
    if !need_v2() {
        return;
    }
    let r = Rootfs::new();
    let child = spawn_payload(&r, &["--name", "v2devices"], &["sleep", "3"]);
    let pid = container_pid(child.id());
    let group = cgroup_of(pid);
    let inspect = minibox().args(["inspect", "v2devices"]).output().unwrap();
    let facts: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        facts["Devices"], "docker default: 12 device rules, all others denied",
        "{facts}"
    );
    // Read back from the kernel: the program attached to the group, and what it holds.
    let said = facts["Cgroup"]["Settings"]["devices"]
        .as_str()
        .unwrap_or_default();
    let (id, holds) = said
        .strip_prefix("BPF program ")
        .and_then(|s| s.split_once(": "))
        .unwrap_or_else(|| panic!("no device program in {facts}"));
    assert_eq!(holds, "12 device rules, all others denied", "{said}");
    let id: u32 = id.parse().unwrap();
    assert!(bpf_program_exists(id));
    let out = wait_output(child, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!group.exists(), "{} left behind", group.display());
    // The kernel frees a removed group's programs a moment later.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bpf_program_exists(id) {
        assert!(
            std::time::Instant::now() < deadline,
            "BPF program {id} outlived the container's group"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    minibox().args(["rm", "v2devices"]).output().unwrap();
}

/// `stats` reads the unified files: memory as `memory.current` less `inactive_file`, the limit
/// from `memory.max`, tasks from `pids.current`, CPU from `cpu.stat`.
#[test]
fn v2_stats_reads_the_unified_files() {
    if !need_v2() {
        return;
    }
    let r = Rootfs::new();
    let detach = |flags: &[&str], payload: &[&str]| -> String {
        let out = minibox()
            .args(["run", "-d"])
            .args(flags)
            .arg(r.arg())
            .arg("/payload")
            .args(payload)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    let hog = detach(&["--memory", "64m"], &["memhold", "24", "60"]);
    let spinner = detach(&[], &["cpuhog", "60"]);
    let inspected: serde_json::Value = serde_json::from_str(&stdout(
        &minibox().args(["inspect", &hog]).output().unwrap(),
    ))
    .unwrap();
    let group = PathBuf::from(inspected["Cgroup"]["Path"].as_str().unwrap());
    let in_use = || -> u64 {
        let current: u64 = fs::read_to_string(group.join("memory.current"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let stat = fs::read_to_string(group.join("memory.stat")).unwrap();
        let inactive: u64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("inactive_file ")?.trim().parse().ok())
            .unwrap();
        current - inactive
    };
    let start = std::time::Instant::now();
    while in_use() < 24 << 20 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "memhold never held 24 MiB"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = minibox()
        .args(["stats", "--no-stream", "--format", "json", &hog, &spinner])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let shown = rows[0]["MemUsageBytes"].as_u64().unwrap();
    let kernel = in_use();
    assert!(
        shown.abs_diff(kernel) < 1 << 20,
        "stats {shown}, memory.current less inactive_file {kernel}"
    );
    assert_eq!(rows[0]["MemLimitBytes"], 64u64 << 20);
    assert_eq!(rows[0]["PidsCurrent"], 1);
    assert_eq!(rows[0]["Cgroup"], "cgroup v2");
    assert!(
        rows[1]["CPUPercent"].as_f64().unwrap() > 20.0,
        "{:?}",
        rows[1]
    );
    for id in [&hog, &spinner] {
        minibox().args(["rm", "-f", id]).output().unwrap();
    }
}
