//! Host paths other users can change: ROOTFS and every bind source are opened once and mounted
//! from that descriptor, so a path swapped for a symlink between minibox's check and its mount
//! can never give a container the host's `/`; a volume's flags (ro, nosuid, nodev) hold for
//! every mount below its source too; the /etc files minibox writes in its state directory are
//! read-only in the container; and a mount target is checked on what it resolves to, not on
//! its name. Root only; each test fails while its attack works (issue 17, rows 1-3, 8, 12).

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::json;

use common::bundle::*;
use common::*;

/// The uid of the host user who owns the raced directories (no such user need exist).
const HOST_USER: u32 = 4242;

/// A directory of `HOST_USER`'s, in which `real` (a directory) and a symlink to the host's `/`
/// keep trading places (`renameat2(RENAME_EXCHANGE)`, as fast as the thread can) until dropped.
struct Swapper {
    base: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Swapper {
    /// `fill` makes the real directory's content (at `base/NAME` before the swapping starts).
    fn new(name: &str, fill: impl FnOnce(&Path)) -> Swapper {
        let base = tempfile::Builder::new()
            .prefix("minibox-race-")
            .tempdir()
            .unwrap();
        let real = base.path().join(name);
        fs::create_dir(&real).unwrap();
        fill(&real);
        symlink("/", base.path().join("swap")).unwrap();
        std::os::unix::fs::chown(base.path(), Some(HOST_USER), Some(HOST_USER)).unwrap();
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let dir = fs::File::open(base.path()).unwrap();
        let (name, s, n) = (name.to_string(), stop.clone(), swaps.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                nix::fcntl::renameat2(
                    &dir,
                    name.as_str(),
                    &dir,
                    "swap",
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .expect("renameat2(RENAME_EXCHANGE)");
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
        Swapper {
            base,
            stop,
            swaps,
            thread: Some(thread),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.base.path().join(name)
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Leave the real directory in place (never delete through the link to `/`).
        let _ = fs::remove_file(self.base.path().join("swap"));
        let _ = fs::remove_dir_all(self.base.path());
    }
}

/// How many runs a race test makes. On a8c1f93 (names checked, then mounted by name) the -v
/// race was won within the first few runs and the ROOTFS race within the first ten or so; 150
/// runs leave the attacker far more chances than it ever needed.
const RACE_RUNS: usize = 150;

/// The lines of an error, but the warnings a concurrent test's sweep may add.
fn error_lines(err: &str) -> usize {
    err.lines().filter(|l| !l.contains(": warning: ")).count()
}

/// Names only the host's root directory has (the raced directories hold none of them).
fn looks_like_host_root(listing: &str) -> bool {
    let names: Vec<&str> = listing.lines().collect();
    ["usr", "etc", "boot", "var"]
        .iter()
        .filter(|n| names.contains(n))
        .count()
        >= 2
}

#[test]
fn a_volume_source_swapped_for_a_link_to_the_host_root_is_never_mounted() {
    if !need_root() {
        return;
    }
    let rootfs = Rootfs::new();
    let race = Swapper::new("src", |d| fs::write(d.join("in-src"), "x").unwrap());
    let volume = format!("{}:/v", race.path("src").display());
    let (mut ran, mut refused) = (0, 0);
    for run in 1..=RACE_RUNS {
        let out = run_payload(&rootfs, &["--rm", "-v", &volume], &["ls", "/v"]);
        let listing = stdout(&out);
        assert!(
            !looks_like_host_root(&listing),
            "run #{run}: the container saw the host's / as its volume:\n{listing}"
        );
        if out.status.success() {
            assert!(listing.contains("in-src"), "run #{run}: {listing}");
            ran += 1;
        } else {
            // Refused in one line, naming the volume's source.
            let err = stderr(&out);
            assert_eq!(error_lines(&err), 1, "run #{run}: {err}");
            assert!(
                err.contains(&race.path("src").display().to_string()) || err.contains("swap"),
                "run #{run}: {err}"
            );
            refused += 1;
        }
    }
    let swaps = race.swaps.load(Ordering::Relaxed);
    eprintln!("{ran} runs mounted the real source, {refused} were refused, {swaps} swaps");
    assert!(
        swaps > RACE_RUNS as u64,
        "the swapper barely ran: {swaps} swaps"
    );
    assert!(ran > 0, "no run ever mounted the real directory");
}

/// A ROOTFS whose `/usr/bin/env` is the payload: run as `/usr/bin/env cat /etc/os-release`,
/// the payload fails (the rootfs has no such file) where the host's env and cat print it.
fn fill_rootfs(dir: &Path) {
    populate(dir);
    fs::create_dir_all(dir.join("usr/bin")).unwrap();
    fs::copy(payload_bin(), dir.join("usr/bin/env")).unwrap();
}

fn host_os_release_shown(out: &Output) -> bool {
    stdout(out).contains("ID=") || stdout(out).contains("PRETTY_NAME")
}

#[test]
fn a_rootfs_swapped_for_a_link_to_the_host_root_is_never_the_container_root() {
    if !need_root() {
        return;
    }
    let race = Swapper::new("rootfs", fill_rootfs);
    let rootfs = race.path("rootfs").display().to_string();
    let (mut ran, mut refused) = (0, 0);
    for run in 1..=RACE_RUNS {
        let out = run_minibox(&[
            "run",
            "--rm",
            &rootfs,
            "/usr/bin/env",
            "cat",
            "/etc/os-release",
        ]);
        assert!(
            !host_os_release_shown(&out),
            "run #{run}: the container ran on the host's /:\n{}",
            stdout(&out)
        );
        let err = stderr(&out);
        if err.contains("/etc/os-release") && err.contains("error: cat") {
            ran += 1; // the payload ran, in the real rootfs
        } else {
            assert!(
                err.contains(&rootfs),
                "run #{run}: the swapped ROOTFS got past minibox's checks: {err}"
            );
            assert_eq!(error_lines(&err), 1, "run #{run}: {err}");
            refused += 1;
        }
    }
    let swaps = race.swaps.load(Ordering::Relaxed);
    eprintln!("{ran} runs in the real rootfs, {refused} refused, {swaps} swaps");
    assert!(ran > 0, "no run ever used the real rootfs");
}

#[test]
fn a_bundle_root_swapped_for_a_link_to_the_host_root_is_never_the_container_root() {
    if !need_root() {
        return;
    }
    let race = Swapper::new("rootfs", fill_rootfs);
    let template = Rootfs::new();
    let mut config = spec(&[&template.arg(), "/usr/bin/env"]);
    config["root"]["path"] = json!(race.path("rootfs"));
    config["process"]["args"] = json!(["/usr/bin/env", "cat", "/etc/os-release"]);
    let dir = bundle(&config);
    let (mut ran, mut refused) = (0, 0);
    for run in 1..=RACE_RUNS {
        let out = run_bundle(dir.path(), &format!("race-bundle-{}", std::process::id()));
        assert!(
            !host_os_release_shown(&out),
            "run #{run}: the bundle ran on the host's /:\n{}",
            stdout(&out)
        );
        let err = stderr(&out);
        if err.contains("/etc/os-release") && err.contains("error: cat") {
            ran += 1;
        } else {
            // Refused by minibox, naming the path (not by a later step that tripped on the
            // host's / bound in its place, as pivot_root's EBUSY did before the fix).
            assert!(
                err.contains(&race.path("rootfs").display().to_string()),
                "run #{run}: the swapped root got past minibox's checks: {err}"
            );
            assert_eq!(error_lines(&err), 1, "run #{run}: {err}");
            if refused < 3 {
                eprintln!("run #{run} refused: {}", err.trim_end());
            }
            refused += 1;
        }
    }
    eprintln!("{ran} runs in the real rootfs, {refused} refused");
    assert!(ran > 0, "no run ever used the real rootfs");
}

/// Runs `script` (sh) in a throwaway mount namespace, with `$MINIBOX` the minibox under test
/// and the tests' state and data roots: the mounts it makes never reach the host.
fn in_private_mounts(script: &str) -> Output {
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("MINIBOX", minibox_bin())
        .env("MINIBOX_ROOT", test_state_root())
        .env("MINIBOX_DATA_ROOT", test_data_root())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unshare");
    wait_output(child, std::time::Duration::from_secs(60))
}

/// The options of the mount at `point` in a mountinfo text (per-mount ones, field 6).
fn mount_options<'a>(mountinfo: &'a str, point: &str) -> Option<Vec<&'a str>> {
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(point))
        .and_then(|l| l.split(' ').nth(5))
        .map(|o| o.split(',').collect())
}

/// Row 1: `-v SRC:DST:ro` is a recursive bind; a mount below SRC (here a tmpfs on SRC/sub)
/// must be read-only, nosuid and nodev in the container too, not only the top. Before the fix
/// the container's root wrote into the "read-only" volume's submount, and a device node it made
/// there opened.
#[test]
fn a_volumes_flags_hold_on_its_submounts() {
    if !need_root() {
        return;
    }
    let rootfs = Rootfs::new();
    let src = tempfile::Builder::new()
        .prefix("minibox-submount-")
        .tempdir()
        .unwrap();
    fs::create_dir(src.path().join("sub")).unwrap();
    let run = |volume: &str, args: &str| {
        format!(
            "echo === >&2; \"$MINIBOX\" run --rm -u 0 -v {src}:/v{volume} {rootfs} /payload {args}; \
             echo \"status=$?\"",
            src = src.path().display(),
            rootfs = rootfs.arg(),
        )
    };
    let script = format!(
        "set -u; mount -t tmpfs -o mode=0777 sub {sub} || exit 99; {}; {}; {}; {}",
        run(":ro", "cat /proc/self/mountinfo"),
        run(":ro", "write /v/sub/f planted"),
        run("", "mknod /v/sub/null 1 3"),
        run("", "cat /proc/self/mountinfo"),
        sub = src.path().join("sub").display(),
    );
    let out = in_private_mounts(&script);
    let text = stdout(&out);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    let parts: Vec<&str> = text.split("status=").collect();
    assert_eq!(parts.len(), 5, "{text}\n{err}");
    let ro = mount_options(parts[0], "/v/sub").unwrap_or_else(|| panic!("no /v/sub: {text}"));
    for flag in ["ro", "nosuid", "nodev"] {
        assert!(
            ro.contains(&flag),
            "the submount of a :ro volume lacks {flag}: {ro:?}"
        );
    }
    assert!(
        !parts[2].starts_with('0'),
        "the container wrote into the submount of a read-only volume: {text}\n{err}"
    );
    assert!(
        !src.path().join("sub/f").exists(),
        "a file was planted in a read-only volume"
    );
    assert!(
        !parts[3].starts_with('0') && err.contains("open /v/sub/null"),
        "a device node made in a volume's submount opened: {text}\n{err}"
    );
    let rw = mount_options(parts[3], "/v/sub").unwrap_or_else(|| panic!("no /v/sub: {text}"));
    for flag in ["rw", "nosuid", "nodev"] {
        assert!(
            rw.contains(&flag),
            "the submount of a volume lacks {flag}: {rw:?}"
        );
    }
}

/// Row 8: the container's /etc/hosts, /etc/hostname and /etc/resolv.conf are files of
/// minibox's state directory (a tmpfs under /run shared by every container); the container
/// reads them but can write nothing there, with or without --read-only. Before the fix it
/// wrote 48 MiB into the state directory through them.
#[test]
fn the_etc_files_are_read_only_in_the_container() {
    if !need_root() {
        return;
    }
    let rootfs = Rootfs::new();
    for flags in [
        &["--rm", "-u", "0"][..],
        &["--rm", "-u", "0", "--read-only"][..],
    ] {
        for file in ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"] {
            let out = run_payload(&rootfs, flags, &["write", file, "filled"]);
            assert_ne!(
                out.status.code(),
                Some(0),
                "{flags:?}: the container wrote its {file} (a file of minibox's state dir)"
            );
            assert!(
                stderr(&out).contains("Read-only file system"),
                "{flags:?} {file}: {}",
                stderr(&out)
            );
        }
        let hosts = payload_ok(&rootfs, flags, &["cat", "/etc/hosts"]);
        assert!(hosts.contains("localhost"), "{hosts}");
    }
    // The rootfs's own files are untouched (never edited).
    assert!(!rootfs.path().join("etc/hosts").exists());
}

/// Row 12: `--tmpfs`/`-v` over /proc, /sys or /dev is refused; a rootfs's symlink must not
/// lead a target named elsewhere onto them. Before the fix `--tmpfs /k/kernel` with
/// `k -> /proc/sys` hid /proc/sys/kernel under a tmpfs, and `-v SRC:/up/proc` with `up -> /`
/// replaced /proc.
#[test]
fn a_mount_target_is_checked_on_what_it_resolves_to() {
    if !need_root() {
        return;
    }
    let rootfs = Rootfs::new();
    symlink("/proc/sys", rootfs.path().join("k")).unwrap();
    symlink("/", rootfs.path().join("up")).unwrap();
    symlink("/dev", rootfs.path().join("d")).unwrap();
    symlink("/sys/fs", rootfs.path().join("s")).unwrap();
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("fake"), "x").unwrap();
    let volume = |target: &str| format!("{}:{target}", src.path().display());
    let cases: [(Vec<String>, &str); 5] = [
        (
            vec!["--tmpfs".into(), "/k/kernel".into()],
            "/proc/sys/kernel",
        ),
        (vec!["-v".into(), volume("/up/proc")], "/proc"),
        (vec!["-v".into(), volume("/d/shmx")], "/dev"),
        (vec!["--tmpfs".into(), "/up/dev".into()], "/dev"),
        (vec!["--tmpfs".into(), "/s/cgroup".into()], "/sys/fs/cgroup"),
    ];
    for (flags, covered) in &cases {
        let mut all: Vec<&str> = vec!["--rm", "-u", "0"];
        all.extend(flags.iter().map(String::as_str));
        let out = run_payload(&rootfs, &all, &["ls", covered]);
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(125),
            "{flags:?} was mounted over {covered}: it now lists {:?}",
            stdout(&out)
        );
        assert_eq!(error_lines(&err), 1, "{err}");
        assert!(err.contains("symbolic link"), "{flags:?}: {err}");
    }
    // A target that merely passes through a link inside the rootfs still works.
    fs::create_dir(rootfs.path().join("real")).unwrap();
    symlink("/real", rootfs.path().join("r")).unwrap();
    let listed = payload_ok(
        &rootfs,
        &["--rm", "-v", &volume("/r/v")],
        &["ls", "/real/v"],
    );
    assert!(listed.contains("fake"), "{listed}");
}

/// minibox's own directories (its state root, the containers' layers in its data root) are
/// never a volume's source: a container would reach every other container's files. Checked on
/// the opened source, by what lies above it.
#[test]
fn minibox_own_directories_are_never_a_volume() {
    if !need_root() {
        return;
    }
    let rootfs = Rootfs::new();
    // A first run makes the data root's directories.
    payload_ok(&rootfs, &["--rm"], &["exit", "0"]);
    for dir in [test_data_root().join("containers"), test_state_root()] {
        let volume = format!("{}:/x", dir.display());
        let out = run_payload(&rootfs, &["--rm", "-u", "0", "-v", &volume], &["ls", "/x"]);
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(125),
            "-v {volume} was mounted: {}",
            stdout(&out)
        );
        assert!(err.contains("minibox's own state or data"), "{err}");
    }
}
