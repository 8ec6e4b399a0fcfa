//! Shared helpers for minibox's integration tests: a throwaway rootfs holding the static test
//! payload, and a way to run minibox on it with a deadline.
//!
//! These tests need root (namespaces, mounts). CI runs as root. On a non-root machine they fail
//! saying so, unless MINIBOX_SKIP_ROOT_TESTS=1 explicitly asks to skip them.
#![allow(dead_code)]

pub mod bundle;
pub mod devices;
pub mod limits;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The minibox binary under test (`MINIBOX_BIN` overrides, e.g. inside the VM).
pub fn minibox_bin() -> PathBuf {
    std::env::var_os("MINIBOX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_minibox")))
}

fn target_dir() -> PathBuf {
    match option_env!("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

/// The static test payload (`MINIBOX_PAYLOAD` overrides).
pub fn payload_bin() -> PathBuf {
    let path = std::env::var_os("MINIBOX_PAYLOAD")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("x86_64-unknown-linux-gnu/release/payload"));
    assert!(
        path.exists(),
        "the static test payload {} is missing: build it with rootfs-examples/build.sh",
        path.display()
    );
    path
}

/// The hello example's rootfs, as rootfs-examples/build.sh leaves it.
pub fn hello_rootfs() -> PathBuf {
    let dir = std::env::var_os("MINIBOX_HELLO_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-examples/hello/rootfs")
        });
    assert!(
        dir.join("main").exists(),
        "{}/main is missing: build it with rootfs-examples/build.sh",
        dir.display()
    );
    dir
}

/// True when the test may go on; fails the test when not root, unless told to skip.
pub fn need_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("MINIBOX_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
        eprintln!("skipped: not root and MINIBOX_SKIP_ROOT_TESTS=1");
        return false;
    }
    panic!("this test needs root (namespaces and mounts): run it with sudo, as CI does");
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
    mbxtester:x:1000:1000:tester:/home/mbxtester:/sbin/nologin\n\
    nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n";
pub const GROUP: &str = "root:x:0:\nmbxtester:x:1000:\nmbxaudio:x:29:mbxtester\n\
    mbxvideo:x:44:other,mbxtester\nnogroup:x:65534:\n";

/// A throwaway rootfs: `/payload`, `/etc/passwd`, `/etc/group`, the mount points, a marker.
pub struct Rootfs {
    pub dir: tempfile::TempDir,
    pub marker: String,
}

impl Rootfs {
    pub fn new() -> Rootfs {
        let dir = tempfile::Builder::new()
            .prefix("minibox-test-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path();
        for d in ["etc", "proc", "dev", "sys", "tmp"] {
            fs::create_dir(root.join(d)).expect("mkdir");
        }
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
        fs::copy(payload_bin(), root.join("payload")).expect("copy payload");
        fs::write(root.join("etc/passwd"), PASSWD).expect("passwd");
        fs::write(root.join("etc/group"), GROUP).expect("group");
        let marker = format!("rootfs-marker-{}", std::process::id());
        fs::write(root.join(".marker"), &marker).expect("marker");
        Rootfs { dir, marker }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn arg(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        // Never delete through a mount that leaked to the host: that would delete host files.
        let prefix = self.path().to_string_lossy().into_owned();
        if host_mount_points().iter().any(|m| m.starts_with(&prefix)) {
            panic!("a mount under {prefix} leaked to the host; not deleting it");
        }
    }
}

/// Mount points of the host (this test process's mount namespace).
pub fn host_mount_points() -> Vec<String> {
    mount_points(&fs::read_to_string("/proc/self/mountinfo").expect("mountinfo"))
}

/// Field 5 of each mountinfo line.
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(String::from)
        .collect()
}

/// Every path below `dir` with its type, mode, size, owner and mtime: to see that a run
/// changed nothing on disk.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("entry");
            let md = entry.path().symlink_metadata().expect("lstat");
            let desc = format!(
                "{:o} {} {}:{} {}.{}",
                md.mode(),
                md.size(),
                md.uid(),
                md.gid(),
                md.mtime(),
                md.mtime_nsec()
            );
            out.insert(entry.path(), desc);
            if md.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out
}

/// Where the tests' containers are recorded: under cargo's scratch dir for tests, not the
/// host's /run/minibox (a test that needs its own root passes --root, which wins).
pub fn test_state_root() -> PathBuf {
    test_tmp().join(format!("minibox-state-{}", std::process::id()))
}

/// Where the tests' containers keep their writable layers: likewise under cargo's scratch dir,
/// one per test process, not the host's /var/lib/minibox (`--data-root` wins over it).
pub fn test_data_root() -> PathBuf {
    test_tmp().join(format!("minibox-data-{}", std::process::id()))
}

/// Cargo's scratch directory for integration tests (the system's temp dir without one).
pub fn test_tmp() -> PathBuf {
    option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

pub fn minibox() -> Command {
    let mut cmd = Command::new(minibox_bin());
    cmd.stdin(Stdio::null())
        .env("MINIBOX_ROOT", test_state_root())
        .env("MINIBOX_DATA_ROOT", test_data_root());
    cmd
}

/// The container layer directories under a data root (`<data-root>/containers/*`).
pub fn layer_dirs(data_root: &Path) -> Vec<PathBuf> {
    match fs::read_dir(data_root.join("containers")) {
        Ok(dir) => dir.map(|e| e.expect("entry").path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => panic!("listing {}: {e}", data_root.display()),
    }
}

/// Runs `minibox ARGS` to completion (30 s at most) and returns what it did.
pub fn run_minibox(args: &[&str]) -> Output {
    let child = minibox()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn minibox");
    wait_output(child, Duration::from_secs(30))
}

/// `minibox run [FLAGS] ROOTFS /payload SUBCOMMAND...`
pub fn run_payload(rootfs: &Rootfs, flags: &[&str], payload_args: &[&str]) -> Output {
    let root = rootfs.arg();
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.push(&root);
    args.push("/payload");
    args.extend_from_slice(payload_args);
    run_minibox(&args)
}

/// Like `run_payload`, but asserts the container exited 0 and returns its stdout.
pub fn payload_ok(rootfs: &Rootfs, flags: &[&str], payload_args: &[&str]) -> String {
    let out = run_payload(rootfs, flags, payload_args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "minibox run {flags:?} ... {payload_args:?}: stdout {:?} stderr {:?}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits for a child with a deadline; kills it (and fails the test) past the deadline.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    // Read while it runs: a child writing more than a pipe holds (64 KiB) would otherwise
    // block for ever on a reader that waits for its end.
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                p.read_to_end(&mut bytes).expect("read the child's output");
            }
            bytes
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_deadline(&mut child, limit);
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

pub fn wait_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("minibox did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The host pid of minibox's child (the container's PID 1), once it has exec'd CMD (its
/// program name is no longer minibox's): by then it is in its namespaces and cgroup.
pub fn container_pid(minibox_pid: u32) -> u32 {
    let start = Instant::now();
    let comm = |pid: u32| fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    // Not minibox's own comm: just after spawn it may still be the test thread's name.
    let bin = minibox_bin();
    let own: String = bin
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .take(15)
        .collect();
    loop {
        let path = format!("/proc/{minibox_pid}/task/{minibox_pid}/children");
        if let Ok(text) = fs::read_to_string(&path) {
            if let Some(pid) = text
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
            {
                let name = comm(pid);
                if !name.is_empty() && name.trim_end() != own {
                    return pid;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no container process appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Reads one line from a child's stdout (blocking).
pub fn read_line(reader: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read line");
    line.trim_end().to_string()
}

/// Where minibox puts the groups of `--cgroup-parent PARENT` on this host, one directory per
/// hierarchy: `<cgroup2 root>/PARENT` when the unified hierarchy offers memory, cpu and pids,
/// else `<this process's group>/PARENT` in each cgroup v1 hierarchy of memory, cpu, cpuacct
/// and pids (minibox, our child, starts in our groups).
pub fn minibox_cgroup_parents(parent: &str) -> Vec<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mounts: Vec<(String, String, PathBuf)> = mountinfo
        .lines()
        .filter_map(|line| {
            let (fields, after) = line.split_once(" - ")?;
            let f: Vec<&str> = fields.split(' ').collect();
            let a: Vec<&str> = after.split(' ').collect();
            let options = if a.first() == Some(&"cgroup2") {
                "cgroup2".to_string()
            } else if a.first() == Some(&"cgroup") {
                a.get(2)?.to_string()
            } else {
                return None;
            };
            Some((options, f.get(3)?.to_string(), PathBuf::from(f.get(4)?)))
        })
        .collect();
    if let Some((_, _, point)) = mounts.iter().find(|(o, _, _)| o == "cgroup2") {
        let have = fs::read_to_string(point.join("cgroup.controllers")).unwrap_or_default();
        if ["memory", "cpu", "pids"]
            .iter()
            .all(|c| have.split_whitespace().any(|h| h == *c))
        {
            return vec![point.join(parent)];
        }
    }
    let own = fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    let mut dirs = Vec::new();
    for controller in ["memory", "cpu", "cpuacct", "pids"] {
        let Some((_, root, point)) = mounts
            .iter()
            .find(|(o, _, _)| o.split(',').any(|c| c == controller))
        else {
            continue;
        };
        let Some(rel) = own.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
            list.split(',').any(|c| c == controller).then_some(path)
        }) else {
            continue;
        };
        let below = rel.strip_prefix(root.as_str()).unwrap_or(rel);
        let dir = point.join(below.trim_start_matches('/')).join(parent);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// The groups below `dir` (not `dir` itself), if it exists.
pub fn groups_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
                stack.push(e.path());
            }
        }
    }
    out
}

/// True while `pid` is a process that has not ended (not a zombie waiting to be reaped).
pub fn process_lives(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        !matches!(state, None | Some("Z") | Some("X"))
    })
}

/// The live processes whose command line is exactly `argv`.
pub fn processes_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .filter(|pid| process_lives(*pid))
        .collect()
}

/// What a state root holds besides its lock and the compiled seccomp programs minibox keeps for
/// the next run (`.seccomp-*`): the records and leftovers of containers.
pub fn state_leftovers(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .expect("read the state root")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "lock" && !n.starts_with(".seccomp-"))
        .collect()
}
