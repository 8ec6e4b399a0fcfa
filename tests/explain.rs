//! `--explain` and `inspect`: what they say must be what the kernel holds. Root only.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// Runs `minibox run --explain FLAGS ROOTFS /payload ARGS` and collects the explain lines by
/// step name while the container still runs (`at_exec` is called once `[9/10] exec` is
/// printed, with the container's host pid).
fn explained(
    r: &Rootfs,
    flags: &[&str],
    args: &[&str],
    at_exec: impl FnOnce(u32),
) -> BTreeMap<String, String> {
    let mut child = minibox()
        .args(["run", "--explain"])
        .args(flags)
        .arg(r.arg())
        .arg("/payload")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut steps: BTreeMap<String, String> = BTreeMap::new();
    let mut current = String::new();
    let mut at_exec = Some(at_exec);
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix('[') {
            let (_, rest) = rest.split_once("] ").unwrap();
            let (name, text) = rest.split_once(' ').unwrap();
            current = name.to_string();
            steps.insert(current.clone(), text.trim().to_string());
            if current == "exec" {
                let pid = steps["clone"]
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .parse()
                    .unwrap();
                if let Some(f) = at_exec.take() {
                    f(pid);
                }
            }
        } else if line.trim().starts_with("(config.json: ") {
            // The fields a step carries out, kept apart from what it says the kernel holds.
            steps.insert(format!("{current}:fields"), line.trim().to_string());
        } else {
            let entry = steps
                .get_mut(&current)
                .expect("continuation before any step");
            entry.push('\n');
            entry.push_str(line.trim());
        }
    }
    assert_eq!(
        wait_deadline(&mut child, Duration::from_secs(30)).code(),
        Some(0)
    );
    steps
}

#[test]
fn without_the_flag_nothing_is_said() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let out = run_payload(&r, &[], &["exit", "0"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "");
}

#[test]
fn the_namespaces_printed_are_the_containers() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut seen = String::new();
    let steps = explained(&r, &[], &["sleep", "1"], |pid| {
        seen = ["mnt", "pid", "uts", "ipc", "net", "cgroup"]
            .iter()
            .map(|ns| {
                fs::read_link(format!("/proc/{pid}/ns/{ns}"))
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join(" ");
    });
    let clone = &steps["clone"];
    assert!(clone.contains("is pid 1 inside"), "{clone}");
    assert!(clone.contains(&seen), "printed:\n{clone}\nkernel: {seen}");
    let host = fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .display()
        .to_string();
    assert!(clone.contains(&format!("(host: {host}")), "{clone}");
    for step in [
        "cgroup",
        "mounts",
        "pivot_root",
        "hostname",
        "identity",
        "privileges",
        "seccomp",
        "exec",
        "exit",
    ] {
        assert!(steps.contains_key(step), "no {step} step: {steps:?}");
    }
    assert!(
        steps["pivot_root"].ends_with("(host mounts visible inside: 0)"),
        "{}",
        steps["pivot_root"]
    );
    assert!(
        steps["exit"].starts_with("status 0 after "),
        "{}",
        steps["exit"]
    );
}

#[test]
fn the_counts_match_the_containers_own_view() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let steps = explained(
        &r,
        &["-u", "0", "--hostname", "counted"],
        &["exit", "0"],
        |_| {},
    );
    // Masked paths: those the container really sees as separate mounts.
    let mounts = payload_ok(&r, &["-u", "0"], &["cat", "/proc/self/mountinfo"]);
    let points = mount_points(&mounts);
    let masked = [
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/proc/asound",
        "/sys/devices/virtual/powercap",
    ]
    .iter()
    .filter(|m| points.iter().any(|p| p == *m))
    .count();
    assert!(
        steps["mounts"].contains(&format!("{masked} paths masked")),
        "{} vs {masked}",
        steps["mounts"]
    );
    let dev = payload_ok(&r, &[], &["ls", "/dev"]);
    let nodes = ["null", "zero", "full", "random", "urandom", "tty"]
        .iter()
        .filter(|n| dev.lines().any(|l| l == **n))
        .count();
    assert!(
        steps["mounts"].contains(&format!("/dev ({nodes} nodes)")),
        "{}",
        steps["mounts"]
    );
    // Capabilities: as many as CapPrm has bits.
    let status = payload_ok(&r, &["-u", "0"], &["status"]);
    let prm = status
        .lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .unwrap()
        .trim();
    let kept = u64::from_str_radix(prm, 16).unwrap().count_ones();
    assert!(
        steps["privileges"].starts_with(&format!("capabilities: {kept} of ")),
        "{}",
        steps["privileges"]
    );
    assert!(steps["privileges"].ends_with("no_new_privs=1"));
    assert_eq!(steps["hostname"], "\"counted\"");
    assert!(
        steps["identity"].starts_with("uid 0 gid 0 groups []"),
        "{}",
        steps["identity"]
    );
}

#[test]
fn inspect_reads_the_running_container_from_the_kernel() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let out = minibox()
        .args([
            "run",
            "-d",
            "--name",
            "inspected",
            "-u",
            "mbxtester",
            "-p",
            "127.0.0.1::9000",
            "--hostname",
            "insp",
        ])
        .arg(r.arg())
        .args(["/payload", "sleep", "30"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let json = stdout(&minibox().args(["inspect", "inspected"]).output().unwrap());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let pid = v["Pid"].as_i64().unwrap();
    for ns in ["mnt", "pid", "uts", "ipc", "net", "cgroup"] {
        let link = fs::read_link(format!("/proc/{pid}/ns/{ns}"))
            .unwrap()
            .display()
            .to_string();
        assert_eq!(link, format!("{ns}:[{}]", v["Namespaces"][ns]), "{ns}");
        assert_ne!(
            v["Namespaces"][ns], v["HostNamespaces"][ns],
            "{ns} is the host's"
        );
    }
    assert_eq!(v["Identity"]["Uid"], 1000);
    assert_eq!(v["Identity"]["Groups"], serde_json::json!([29, 44]));
    assert_eq!(v["Capabilities"]["Effective"], serde_json::json!([]));
    assert_eq!(v["Capabilities"]["NoNewPrivs"], true);
    assert_eq!(v["Hostname"], "insp");
    let targets: Vec<&str> = v["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Target"].as_str().unwrap())
        .collect();
    // The root first, then what sits on it (the /etc files, attached from mounts made before
    // the clone, may come before /proc: they are as old as that).
    let fixed: Vec<&str> = targets
        .iter()
        .copied()
        .filter(|t| ["/", "/proc", "/sys", "/dev"].contains(t))
        .collect();
    assert_eq!(fixed, ["/", "/proc", "/sys", "/dev"], "{targets:?}");
    assert_eq!(targets[0], "/", "{targets:?}");
    assert!(
        v["Ports"][0].as_str().unwrap().starts_with("127.0.0.1:"),
        "{}",
        v["Ports"]
    );
    let table = stdout(
        &minibox()
            .args(["inspect", "--format", "table", &id])
            .output()
            .unwrap(),
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("Name") && l.ends_with("inspected")),
        "{table}"
    );
    minibox().args(["rm", "-f", &id]).output().unwrap();
}

/// Every container is made from a config.json (`minibox spec` prints it): each step names the
/// fields it carries out, for a bundle's run as for `minibox run`'s flags.
#[test]
fn each_step_names_the_config_json_fields_behind_it() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let steps = explained(&r, &[], &["exit", "0"], |_| {});
    for (step, field) in [
        ("cgroup", "linux.resources"),
        ("clone", "linux.namespaces"),
        ("mounts", "mounts[]"),
        ("pivot_root", "root.path"),
        ("identity", "process.user"),
        ("privileges", "process.capabilities"),
        ("seccomp", "linux.seccomp"),
        ("exec", "process.args"),
    ] {
        let fields = &steps[&format!("{step}:fields")];
        assert!(fields.contains(field), "{step}: {fields}");
    }
    // The same from a bundle's config.json.
    let bundle = tempfile::tempdir().unwrap();
    let spec = run_minibox(&["spec", &r.arg(), "/payload", "exit", "0"]);
    assert_eq!(spec.status.code(), Some(0), "{}", stderr(&spec));
    fs::write(bundle.path().join("config.json"), &spec.stdout).unwrap();
    let dir = bundle.path().to_string_lossy().into_owned();
    let out = run_minibox(&["run", "--explain", "--bundle", &dir, "explain-bundle"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("(config.json: root.path, root.readonly)"),
        "{err}"
    );
    assert!(err.contains("(config.json: linux.namespaces"), "{err}");
}
