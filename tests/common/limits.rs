//! What limits do, checked the same way whichever cgroup driver enforces them: the v1 and v2
//! suites call these, then check their own driver's files and that no group is left.

use std::time::{Duration, Instant};

use super::*;

/// A memhog past `--memory 32m` is OOM-killed: exit 137, said in words, remembered by `ps -a`.
pub fn memhog_past_the_limit_is_oom_killed_and_said_so(r: &Rootfs, name: &str) {
    let out = run_payload(r, &["--memory", "32m", "--name", name], &["memhog", "64"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(137), "{err}");
    let said = format!("minibox: container {name} was killed: out of memory (limit 32 MiB, peak ");
    assert!(err.contains(&said), "{err}");
    assert!(!stdout(&out).contains("allocated 64 MiB"));
    let ps = stdout(
        &minibox()
            .args(["ps", "-a", "--format", "json"])
            .output()
            .unwrap(),
    );
    let row: serde_json::Value = ps
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["Name"] == name)
        .unwrap();
    assert_eq!(row["OOMKilled"], true);
    assert!(
        row["Status"].as_str().unwrap().ends_with("(OOM killed)"),
        "{row}"
    );
    minibox().args(["rm", name]).output().unwrap();
}

/// The same memhog under the limit finishes, and nothing is said of memory.
pub fn memhog_under_the_limit_succeeds(r: &Rootfs) {
    let out = run_payload(r, &["--memory", "32m"], &["memhog", "16"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("allocated 16 MiB"),
        "{}",
        stdout(&out)
    );
    assert!(!stderr(&out).contains("out of memory"), "{}", stderr(&out));
}

/// A cpuhog under `--cpus 0.25` gets about a quarter of a CPU over 2 s.
pub fn cpuhog_gets_about_its_share(r: &Rootfs) {
    let out = payload_ok(r, &["--cpus", "0.25"], &["cpuhog", "2"]);
    let field = |k: &str| -> f64 {
        out.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap()
            .parse()
            .unwrap()
    };
    let share = field("cpu_usec=") / field("wall_usec=");
    eprintln!("cpuhog under --cpus 0.25 got {share:.3} of a CPU");
    assert!(
        (0.15..=0.35).contains(&share),
        "got {share:.3} of a CPU, asked 0.25: {out}"
    );
}

/// A forkbomb under `--pids-limit 20` gets fewer than 20 processes.
pub fn forkbomb_is_contained_by_the_pids_limit(r: &Rootfs) {
    let out = payload_ok(r, &["--pids-limit", "20"], &["forkbomb", "100"]);
    let forked: u32 = out
        .trim()
        .strip_prefix("forked=")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(forked < 20, "{out}");
    assert!(out.contains(&format!("failed={}", 100 - forked)), "{out}");
}

/// Each bad limit: one clear line, status 125; `after_each` checks nothing was made.
pub fn bad_limits_are_refused(r: &Rootfs, after_each: impl Fn(&str)) {
    for (flag, value, needle) in [
        ("--memory", "0", "invalid --memory"),
        ("--memory", "-1", "invalid --memory"),
        ("--memory", "12x", "invalid --memory"),
        ("--memory", "1k", "too small"),
        ("--cpus", "0", "invalid --cpus"),
        ("--cpus", "abc", "invalid --cpus"),
        ("--cpus", "1000", "more than this host's"),
        ("--pids-limit", "-2", "invalid --pids-limit"),
    ] {
        let out = run_minibox(&[
            "run",
            &format!("{flag}={value}"),
            &r.arg(),
            "/payload",
            "exit",
            "0",
        ]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{flag} {value}: {err}");
        assert!(
            err.contains(needle) && err.lines().count() == 1,
            "{flag} {value}: {err}"
        );
        after_each(&format!("{flag} {value}"));
    }
}

/// `ps` shows a 40 MiB memhold as about 40 MiB of its 64 MiB limit, and a cpuhog held to half
/// a CPU at about 50%, and names the cgroup driver (`v1` or `v2`).
pub fn ps_reports_the_groups_memory_and_cpu(r: &Rootfs, driver: &str) {
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
    let hog = detach(&["--memory", "64m"], &["memhold", "40", "30"]);
    let spinner = detach(&["--cpus", "0.5"], &["cpuhog", "30"]);
    let start = Instant::now();
    while !stdout(&minibox().args(["logs", &hog]).output().unwrap()).contains("allocated 40 MiB") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "memhold never finished allocating"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ps = stdout(&minibox().args(["ps", "--format", "json"]).output().unwrap());
    let rows: Vec<serde_json::Value> = ps
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |id: &str| rows.iter().find(|r| r["ID"] == id).unwrap().clone();
    let mem = row(&hog)["MemUsage"].as_u64().unwrap() as f64 / (1 << 20) as f64;
    assert!(
        (39.0..=48.0).contains(&mem),
        "ps says {mem:.1} MiB for a 40 MiB hog: {ps}"
    );
    assert_eq!(row(&hog)["MemLimit"], 64u64 << 20);
    let cpu = row(&spinner)["CPUPerc"].as_f64().unwrap();
    assert!(
        (25.0..=75.0).contains(&cpu),
        "ps says {cpu:.1}% for a hog held to 0.5 CPU: {ps}"
    );
    let table = stdout(&minibox().arg("ps").output().unwrap());
    let hog_line = table.lines().find(|l| l.starts_with(&hog[..12])).unwrap();
    assert!(hog_line.contains("MiB / 64MiB"), "{table}");
    assert!(
        hog_line.split_whitespace().any(|w| w == driver),
        "no {driver} in {table}"
    );
    let out = minibox()
        .args(["rm", "-f", &hog, &spinner])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
