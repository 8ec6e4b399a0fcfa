//! Observing and scripting containers (issue 21): `stats`, `logs --tail/-t/--since`,
//! `inspect -f`, `--label` with `ps --filter`/`--format`, `system df`/`prune`, `images`' times.
//! Each test runs containers in a state and data root of its own and checks what they did:
//! stats' memory against the cgroup's files, which containers a filter picks, what prune left.
//! Root only; see tests/common.

mod common;
#[path = "common/images.rs"]
mod images_common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use images_common::*;
use serde_json::{json, Value};

/// A state and data root of the test's own; its containers are removed at the end.
struct World {
    env: Env,
    rootfs: Rootfs,
}

impl World {
    fn new() -> World {
        World {
            env: Env::new(),
            rootfs: Rootfs::new(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.env.ok(args)
    }

    /// `run -d [FLAGS] ROOTFS /payload ARGS...`; the full id.
    fn detach(&self, flags: &[&str], payload: &[&str]) -> String {
        let root = self.rootfs.arg();
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(flags);
        args.push(&root);
        args.push("/payload");
        args.extend_from_slice(payload);
        self.ok(&args).trim().to_string()
    }

    /// Runs the payload in the foreground to its end.
    fn run(&self, flags: &[&str], payload: &[&str]) {
        let root = self.rootfs.arg();
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.push(&root);
        args.push("/payload");
        args.extend_from_slice(payload);
        self.env.mb(&args);
    }

    fn wait_log(&self, id: &str, text: &str) -> String {
        let start = Instant::now();
        loop {
            let got = self.ok(&["logs", id]);
            if got.contains(text) {
                return got;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no {text:?} in {got:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The names `ps ARGS --format {{.Names}}` prints, sorted.
    fn names(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["ps"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--format", "{{.Names}}"]);
        let mut names: Vec<String> = self.ok(&all).lines().map(String::from).collect();
        names.sort();
        names
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let ids = self.env.mb(&["ps", "-a", "-q"]);
        for id in stdout(&ids).lines() {
            self.env.mb(&["rm", "-f", id]);
        }
    }
}

/// A `key value` line of a cgroup file.
fn key_of(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// What the container's memory group says it uses, less inactive files (docker's figure).
fn cgroup_memory(group: &Path, driver: &str) -> u64 {
    let read = |f: &str| fs::read_to_string(group.join(f)).unwrap();
    if driver == "cgroup v1" {
        let usage: u64 = read("memory.usage_in_bytes").trim().parse().unwrap();
        usage - key_of(&read("memory.stat"), "total_inactive_file")
    } else {
        let usage: u64 = read("memory.current").trim().parse().unwrap();
        usage - key_of(&read("memory.stat"), "inactive_file")
    }
}

#[test]
fn stats_reads_memory_as_the_cgroup_holds_it_and_cpu_of_a_busy_container() {
    if !need_root() {
        return;
    }
    let w = World::new();
    let mem = w.detach(
        &["--name", "wo-stats-mem", "--memory", "64m"],
        &["memhold", "24", "120"],
    );
    let busy = w.detach(&["--name", "wo-stats-cpu"], &["cpuhog", "120"]);
    // memhold has touched its 24 MiB once the group holds that much.
    let inspected: Value = serde_json::from_str(&w.ok(&["inspect", &mem])).unwrap();
    let group = Path::new(inspected["Cgroup"]["Path"].as_str().unwrap()).to_path_buf();
    let driver = inspected["Cgroup"]["Driver"].as_str().unwrap().to_string();
    let start = Instant::now();
    while cgroup_memory(&group, &driver) < 24 << 20 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "memhold never held 24 MiB"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let out = w.ok(&["stats", "--no-stream", "--format", "json", &mem, &busy]);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    let m = &rows[0];
    assert_eq!(m["Name"], "wo-stats-mem");
    let shown = m["MemUsageBytes"].as_u64().unwrap();
    let kernel = cgroup_memory(&group, &driver);
    assert!(
        shown.abs_diff(kernel) < 1 << 20,
        "stats says {shown}, the cgroup {kernel} ({driver}, {})",
        group.display()
    );
    assert!(shown >= 24 << 20, "{m}");
    assert_eq!(m["MemLimitBytes"], json!(64u64 << 20), "{m}");
    assert_eq!(m["PidsCurrent"], 1, "{m}");
    assert!(m["MemUsage"].as_str().unwrap().ends_with(" / 64MiB"), "{m}");
    let percent = m["MemPercent"].as_f64().unwrap();
    assert!((37.0..60.0).contains(&percent), "{m}");
    let c = &rows[1];
    assert_eq!(c["Name"], "wo-stats-cpu");
    assert!(
        c["CPUPercent"].as_f64().unwrap() > 5.0,
        "a spinning container used no CPU: {c}"
    );
    assert_eq!(m["Cgroup"], json!(driver));

    // The table: docker's columns, one row per container.
    let table = w.ok(&["stats", "--no-stream", &mem]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID   NAME")
            && lines[0].contains("MEM USAGE / LIMIT")
            && lines[0].ends_with("PIDS"),
        "{table}"
    );
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[1].contains("wo-stats-mem") && lines[1].contains("/ 64MiB"),
        "{table}"
    );
    // A template, and an unknown container.
    let t = w.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}={{.PIDs}}",
        &mem,
    ]);
    assert_eq!(t.trim(), "wo-stats-mem=1");
    let e = w.env.fails(&["stats", "--no-stream", "wo-nosuch"]);
    assert!(e.contains("no such container: wo-nosuch"), "{e}");
}

#[test]
fn stats_refreshes_until_stopped_and_costs_little_cpu() {
    if !need_root() {
        return;
    }
    let w = World::new();
    w.detach(&["--name", "wo-live"], &["sleep", "120"]);
    let mut child = minibox()
        .env("MINIBOX_ROOT", w.env.dir.path().join("state"))
        .env("MINIBOX_DATA_ROOT", w.env.data())
        .args(["stats", "--format", "{{.Name}} {{.PIDs}}"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3_600));
    let ticks = |pid: u32| -> u64 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let before = ticks(child.id());
    std::thread::sleep(Duration::from_secs(5));
    let used = ticks(child.id()) - before;
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let frames = text.lines().filter(|l| *l == "wo-live 1").count();
    assert!(frames >= 6, "a reading a second: {text:?}");
    // 5 s at 100 ticks a second: under 5% of one CPU is 25 ticks.
    assert!(used < 25, "stats used {used} ticks in 5 s");
}

#[test]
fn labels_select_exactly_the_containers_that_carry_them() {
    if !need_root() {
        return;
    }
    let w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("labels");
    fs::write(&file, "# from a file\nteam=core\ntier=db\n").unwrap();
    let file = file.to_string_lossy().into_owned();
    w.detach(
        &[
            "--name",
            "wo-lab-a",
            "-l",
            "team=core",
            "--label",
            "tier=web",
        ],
        &["sleep", "120"],
    );
    w.detach(
        &["--name", "wo-lab-b", "--label-file", &file],
        &["sleep", "120"],
    );
    w.detach(
        &["--name", "wo-lab-c", "-l", "team=db", "-l", "flag"],
        &["sleep", "120"],
    );
    w.run(&["--name", "wo-lab-d", "-l", "team=core"], &["exit", "3"]);

    assert_eq!(
        w.names(&["--filter", "label=team=core"]),
        ["wo-lab-a", "wo-lab-b"]
    );
    assert_eq!(
        w.names(&["-a", "-f", "label=team=core"]),
        ["wo-lab-a", "wo-lab-b", "wo-lab-d"]
    );
    // Every label filter must match.
    assert_eq!(
        w.names(&["-f", "label=team=core", "-f", "label=tier=web"]),
        ["wo-lab-a"]
    );
    assert_eq!(w.names(&["-f", "label=tier"]), ["wo-lab-a", "wo-lab-b"]);
    assert_eq!(w.names(&["-f", "label=flag"]), ["wo-lab-c"]);
    assert!(w.names(&["-f", "label=team=nobody"]).is_empty());
    // One key's values are alternatives; different keys must all match.
    assert_eq!(
        w.names(&["-f", "name=lab-a", "-f", "name=lab-c"]),
        ["wo-lab-a", "wo-lab-c"]
    );
    assert_eq!(
        w.names(&["-f", "name=lab-a", "-f", "label=team=db"]),
        Vec::<String>::new()
    );
    // status= looks at exited containers without -a.
    assert_eq!(w.names(&["-f", "status=exited"]), ["wo-lab-d"]);
    assert_eq!(
        w.names(&[
            "-f",
            "status=exited",
            "-f",
            "status=running",
            "-f",
            "label=team=core"
        ]),
        ["wo-lab-a", "wo-lab-b", "wo-lab-d"]
    );
    assert_eq!(w.names(&["-f", "exited=3"]), ["wo-lab-d"]);
    let a_id = w.ok(&["ps", "-q", "-f", "name=^wo-lab-a$"]);
    assert_eq!(
        w.names(&["-f", &format!("id={}", &a_id.trim()[..6])]),
        ["wo-lab-a"]
    );
    // Shown by inspect and ps.
    assert_eq!(
        w.ok(&["inspect", "-f", "{{json .Config.Labels}}", "wo-lab-b"])
            .trim(),
        r#"{"team":"core","tier":"db"}"#
    );
    assert_eq!(
        w.ok(&[
            "ps",
            "-f",
            "name=wo-lab-c",
            "--format",
            "{{.Names}}:{{.Labels}}"
        ])
        .trim(),
        "wo-lab-c:flag=,team=db"
    );
    let table = w.ok(&[
        "ps",
        "-f",
        "label=tier=web",
        "--format",
        "table {{.Names}}\\t{{.State}}",
    ]);
    assert_eq!(
        table.lines().collect::<Vec<_>>(),
        ["NAMES      STATE", "wo-lab-a   running"]
    );
    // Bad filters and labels: one line, nothing made.
    let e = w.env.fails(&["ps", "-f", "colour=red"]);
    assert!(e.contains("invalid filter 'colour'"), "{e}");
    let root = w.rootfs.arg();
    let out = w.env.mb(&[
        "run",
        "-l",
        "=x",
        "--name",
        "wo-lab-bad",
        &root,
        "/payload",
        "exit",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid label"), "{}", stderr(&out));
    assert!(w.names(&["-a", "-f", "name=wo-lab-bad"]).is_empty());
}

#[test]
fn inspect_templates_read_dockers_fields() {
    if !need_root() {
        return;
    }
    let w = World::new();
    let id = w.detach(&["--name", "wo-insp"], &["trap", "1"]);
    w.wait_log(&id, "ready");
    let ps: Value = serde_json::from_str(
        w.ok(&["ps", "--format", "json"])
            .lines()
            .find(|l| l.contains("wo-insp"))
            .unwrap(),
    )
    .unwrap();
    let pid = w.ok(&["inspect", "-f", "{{.State.Pid}}", "wo-insp"]);
    assert_eq!(pid.trim(), ps["Pid"].to_string());
    // The pid is the container's first process: its command line is the payload's.
    let cmdline = fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap();
    assert!(cmdline.starts_with(b"/payload\0trap"), "{cmdline:?}");
    assert_eq!(
        w.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Running}} {{.Name}} {{.Path}} {{json .Args}}",
            &id
        ])
        .trim(),
        "running true wo-insp /payload [\"trap\",\"1\"]"
    );
    let created = w.ok(&["inspect", "-f", "{{.Created}}", &id]);
    assert!(
        created.starts_with("20") && created.trim().ends_with('Z'),
        "{created}"
    );
    assert_eq!(
        w.ok(&["inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}} [{{.NetworkSettings.IPAddress}}]", &id]).trim(),
        "private []"
    );
    w.ok(&["kill", "-s", "USR1", &id]);
    let start = Instant::now();
    while w.ok(&["inspect", "-f", "{{.State.Status}}", &id]).trim() != "exited" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "trap never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        w.ok(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}",
            &id
        ])
        .trim(),
        "false 0 0"
    );
    let finished = w.ok(&["inspect", "-f", "{{.State.FinishedAt}}", &id]);
    assert!(finished.trim() > created.trim(), "{finished} {created}");
    // Several containers: a line each; a bad template: status 1, one line.
    let two = w.detach(
        &["--name", "wo-insp-2", "--memory", "32m", "--cpus", "0.5"],
        &["sleep", "60"],
    );
    assert_eq!(
        w.ok(&["inspect", "-f", "{{.Name}}", &id, &two])
            .lines()
            .collect::<Vec<_>>(),
        ["wo-insp", "wo-insp-2"]
    );
    let out = w.env.mb(&["inspect", "-f", "{{.State.Pid", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("template parsing error"),
        "{}",
        stderr(&out)
    );
    // docker's JSON shape.
    let v: Value = serde_json::from_str(&w.ok(&["inspect", &two])).unwrap();
    assert_eq!(v["State"]["Status"], "running");
    assert!(v["State"]["StartedAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(v["RestartCount"], 0);
    assert_eq!(v["Config"]["Labels"], json!({}));
    assert_eq!(v["HostConfig"]["Memory"], 32u64 << 20);
    assert_eq!(v["HostConfig"]["NanoCpus"], 500_000_000u64);
    assert_eq!(v["HostConfig"]["NetworkMode"], "private");
}

#[test]
fn logs_tail_timestamps_and_since() {
    if !need_root() {
        return;
    }
    let w = World::new();
    let spew = w.detach(&["--name", "wo-logs-spew"], &["spew", "20", "0"]);
    let all = w.wait_log(&spew, "done");
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 21, "{all}");
    let tail = w.ok(&["logs", "--tail", "3", &spew]);
    assert_eq!(tail.lines().collect::<Vec<_>>(), lines[18..]);
    assert_eq!(w.ok(&["logs", "-n", "0", &spew]), "");
    assert_eq!(w.ok(&["logs", "--tail", "all", &spew]), all);
    let e = w.env.fails(&["logs", "--tail", "x", &spew]);
    assert!(e.contains("invalid --tail"), "{e}");

    // Two moments: `ready`, then, later, `got USR1`.
    let trap = w.detach(&["--name", "wo-logs-trap"], &["trap", "1"]);
    w.wait_log(&trap, "ready");
    std::thread::sleep(Duration::from_millis(1_500));
    let between = w.ok(&["inspect", "-f", "{{.State.StartedAt}}", &trap]);
    let before_signal = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(200));
    w.ok(&["kill", "-s", "USR1", &trap]);
    w.wait_log(&trap, "got USR1");
    let stamped = w.ok(&["logs", "-t", &trap]);
    let stamps: Vec<&str> = stamped
        .lines()
        .map(|l| l.split_once(' ').unwrap().0)
        .collect();
    assert_eq!(stamps.len(), 2, "{stamped}");
    assert!(
        stamps.iter().all(|s| s.len() == 30 && s.ends_with('Z')),
        "{stamped}"
    );
    assert!(stamps[0] < stamps[1], "{stamped}");
    // Milliseconds: the start is recorded to the millisecond, the lines to the nanosecond.
    assert!(
        stamps[0][..23] >= between.trim()[..23],
        "{stamped} {between}"
    );
    // --since: an RFC 3339 time between the two lines, then relative and Unix forms.
    let since = format!(
        "{}",
        before_signal
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    );
    assert_eq!(w.ok(&["logs", "--since", &since, &trap]).trim(), "got USR1");
    assert_eq!(
        w.ok(&["logs", "--since", stamps[1], &trap]).trim(),
        "got USR1"
    );
    assert_eq!(
        w.ok(&["logs", "--since", stamps[0], &trap]).lines().count(),
        2
    );
    assert_eq!(w.ok(&["logs", "--since", "1h", &trap]).lines().count(), 2);
    assert_eq!(w.ok(&["logs", "--until", stamps[1], &trap]).trim(), "ready");
    assert_eq!(
        w.ok(&["logs", "-t", "--tail", "1", &trap]).trim(),
        format!("{} got USR1", stamps[1])
    );
    let e = w.env.fails(&["logs", "--since", "yesterday", &trap]);
    assert!(e.contains("invalid --since"), "{e}");

    // -f with --tail: the last line so far, then what comes, until the container ends.
    let slow = w.detach(&["--name", "wo-logs-follow"], &["trap", "1"]);
    w.wait_log(&slow, "ready");
    let child = minibox()
        .env("MINIBOX_ROOT", w.env.dir.path().join("state"))
        .env("MINIBOX_DATA_ROOT", w.env.data())
        .args(["logs", "-f", "--tail", "1", &slow])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    w.ok(&["kill", "-s", "USR1", &slow]);
    let out = wait_output(child, Duration::from_secs(20));
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        ["ready", "got USR1"]
    );
}

#[test]
fn prune_removes_what_nothing_uses_and_leaves_running_containers() {
    if !need_root() {
        return;
    }
    let w = World::new();
    // Three images: one a running container uses, one tagged and unused, one dangling (its
    // tag moved to another image).
    let used = w.env.load(
        "used.tar",
        &docker_save(
            &[payload_layer()],
            &json!({"Cmd": ["/payload", "sleep", "120"]}),
            "wo-used:1",
        ),
    );
    assert!(used.contains("wo-used:1"), "{used}");
    let first = docker_save(
        &[payload_layer()],
        &json!({"Cmd": ["/payload", "id"]}),
        "wo-spare:1",
    );
    w.env.load("spare1.tar", &first);
    let old_id = w.ok(&["images", "-q"]).lines().count();
    w.env.load(
        "spare2.tar",
        &docker_save(
            &[payload_layer()],
            &json!({"Cmd": ["/payload", "env"]}),
            "wo-spare:1",
        ),
    );
    assert_eq!(w.ok(&["images", "-q"]).lines().count(), old_id + 1);
    let images = w.ok(&["images"]);
    assert!(images.contains("<none>"), "{images}");
    // docker's CREATED: how long ago, not the raw time.
    assert!(
        images.contains(" ago") && !images.contains("2024-01-01T"),
        "{images}"
    );

    let running = w
        .ok(&["run", "-d", "--name", "wo-prune-up", "wo-used:1"])
        .trim()
        .to_string();
    w.run(&["--name", "wo-prune-done"], &["exit", "0"]);
    w.run(&["--name", "wo-prune-failed"], &["exit", "7"]);
    w.ok(&["volume", "create", "wo-prune-vol"]);
    let df = w.ok(&["system", "df", "--format", "json"]);
    let kinds: Vec<Value> = df
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kinds[0]["Type"], "Images");
    assert_eq!(kinds[0]["TotalCount"], "3");
    assert_eq!(kinds[0]["Active"], "1");
    assert_eq!(kinds[1]["Type"], "Containers");
    assert_eq!(kinds[1]["TotalCount"], "3");
    assert_eq!(kinds[1]["Active"], "1");
    assert_eq!(kinds[2]["TotalCount"], "1");
    assert!(kinds[0]["SizeBytes"].as_u64().unwrap() > 0, "{df}");
    let table = w.ok(&["system", "df"]);
    assert!(table.starts_with("TYPE            TOTAL"), "{table}");
    assert!(table.contains("Build Cache"), "{table}");

    // Without -f, a "no" changes nothing.
    let mut cmd = minibox();
    cmd.env("MINIBOX_ROOT", w.env.dir.path().join("state"))
        .env("MINIBOX_DATA_ROOT", w.env.data())
        .args(["system", "prune"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    }
    let out = wait_output(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("WARNING! This will remove"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.names(&["-a"]).len(), 3);

    let pruned = w.ok(&["system", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    assert!(
        pruned.contains("Deleted Images:") && pruned.contains("Total reclaimed space:"),
        "{pruned}"
    );
    assert_eq!(w.names(&["-a"]), ["wo-prune-up"]);
    let images = w.ok(&["images"]);
    assert!(!images.contains("<none>"), "{images}");
    assert!(
        images.contains("wo-spare") && images.contains("wo-used"),
        "{images}"
    );
    assert!(w.ok(&["volume", "ls"]).contains("wo-prune-vol"));
    // -a takes the unused tagged image too; --volumes the volume; the running one stays.
    let pruned = w.ok(&["system", "prune", "-a", "-f", "--volumes"]);
    assert!(pruned.contains("untagged: wo-spare:1"), "{pruned}");
    assert!(
        pruned.contains("Deleted Volumes:\nwo-prune-vol"),
        "{pruned}"
    );
    let images = w.ok(&["images"]);
    assert!(
        !images.contains("wo-spare") && images.contains("wo-used"),
        "{images}"
    );
    assert_eq!(w.names(&[]), ["wo-prune-up"]);
    assert_eq!(
        w.ok(&["inspect", "-f", "{{.State.Running}}", &running])
            .trim(),
        "true"
    );
}

/// A container swapping one of its directories for a symlink to a host directory while
/// `system df` walks its layer: the walk never follows it (a 64 MB host file is never counted).
#[test]
fn df_never_walks_through_a_directory_swapped_for_a_symlink() {
    if !need_root() {
        return;
    }
    let w = World::new();
    w.run(&["--name", "wo-df-swap"], &["write", "/tmp/mine", "x"]);
    let id = w.ok(&["ps", "-a", "-q", "--filter", "name=wo-df-swap"]);
    let state: Value = serde_json::from_slice(
        &fs::read(
            w.env
                .dir
                .path()
                .join("state")
                .join(stdout_full_id(&w, id.trim()))
                .join("state.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let upper = Path::new(state["layer"].as_str().unwrap()).join("upper");
    assert!(upper.join("tmp/mine").exists());
    // The host's directory, with a big (sparse) file, on the same filesystem.
    let host = tempfile::tempdir_in(test_tmp()).unwrap();
    fs::File::create(host.path().join("big"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    std::os::unix::fs::symlink(host.path(), upper.join("tmp.link")).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, upper) = (stop.clone(), upper.clone());
        std::thread::spawn(move || {
            let dir = std::ffi::CString::new(upper.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a path we own, opened as a directory.
            let fd = unsafe { libc::open(dir.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY) };
            assert!(fd >= 0);
            let (a, b) = (c"tmp", c"tmp.link");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: two names in the directory `fd`; RENAME_EXCHANGE swaps them atomically.
                unsafe { libc::renameat2(fd, a.as_ptr(), fd, b.as_ptr(), libc::RENAME_EXCHANGE) };
            }
            // SAFETY: our descriptor.
            unsafe { libc::close(fd) };
        })
    };
    for _ in 0..60 {
        let df = w.ok(&["system", "df", "--format", "json"]);
        let containers: Value = serde_json::from_str(df.lines().nth(1).unwrap()).unwrap();
        let bytes = containers["SizeBytes"].as_u64().unwrap();
        assert!(
            bytes < 1 << 20,
            "df walked into the host's directory: {bytes} bytes"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(host.path().join("big").exists());
}

fn stdout_full_id(w: &World, short: &str) -> String {
    w.ok(&["inspect", "-f", "{{.Id}}", short])
        .trim()
        .to_string()
}
