//! Host paths other users can change: ROOTFS and every bind source are opened once and mounted
//! from that descriptor, so a path swapped for a symlink between minibox's check and its mount
//! can never give a container the host's `/`; and a volume's flags (ro, nosuid, nodev) hold for
//! every mount below its source too. Root only; each test fails while its attack works.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
            assert_eq!(err.trim_end().lines().count(), 1, "run #{run}: {err}");
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
            assert_eq!(err.trim_end().lines().count(), 1, "run #{run}: {err}");
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
            assert_eq!(err.trim_end().lines().count(), 1, "run #{run}: {err}");
            refused += 1;
        }
    }
    eprintln!("{ran} runs in the real rootfs, {refused} refused");
    assert!(ran > 0, "no run ever used the real rootfs");
}
