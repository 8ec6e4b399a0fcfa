//! A ROOTFS that is read-only on the host works as it is. Its own test binary: it mounts on
//! the host for a moment, which the other binaries' mount-table checks must not see.

mod common;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use common::*;

/// Bind-mounts a directory read-only onto itself for as long as it lives.
struct ReadOnly(std::path::PathBuf);

impl ReadOnly {
    fn new(dir: &std::path::Path) -> ReadOnly {
        let none: Option<&str> = None;
        mount(Some(dir), dir, none, MsFlags::MS_BIND, none).unwrap();
        let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(none, dir, none, ro, none).unwrap();
        ReadOnly(dir.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        umount2(&self.0, MntFlags::MNT_DETACH).unwrap();
    }
}

#[test]
fn a_read_only_rootfs_runs_and_writes_go_to_the_containers_layer() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // Without /proc, /sys, /dev: the mount points are made in the container's layer.
    for d in ["proc", "sys", "dev"] {
        std::fs::remove_dir(r.path().join(d)).unwrap();
    }
    let before = snapshot(r.path());
    let _ro = ReadOnly::new(r.path());
    assert!(
        std::fs::write(r.path().join("x"), "x").is_err(),
        "the rootfs is not read-only"
    );
    assert_eq!(payload_ok(&r, &[], &["cat", "/.marker"]), r.marker);
    // Root inside writes into its own layer, above the read-only ROOTFS.
    let out = run_payload(
        &r,
        &["--rm", "-u", "0", "-w", "/new"],
        &["write", "/y", "y"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // --read-only still freezes it.
    let out = run_payload(
        &r,
        &["--rm", "-u", "0", "--read-only"],
        &["write", "/y", "y"],
    );
    assert!(stderr(&out).contains("EROFS"), "{}", stderr(&out));
    assert_eq!(snapshot(r.path()), before, "the read-only ROOTFS changed");
}
