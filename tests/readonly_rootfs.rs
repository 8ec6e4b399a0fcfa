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
fn a_read_only_rootfs_runs_and_lacking_mount_points_are_explained() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    {
        let _ro = ReadOnly::new(r.path());
        assert!(
            std::fs::write(r.path().join("x"), "x").is_err(),
            "the rootfs is not read-only"
        );
        assert_eq!(payload_ok(&r, &[], &["cat", "/.marker"]), r.marker);
        let out = run_payload(&r, &["-u", "0"], &["write", "/y", "y"]);
        assert!(stderr(&out).contains("EROFS"), "{}", stderr(&out));
    }
    // Without /proc, and read-only: minibox cannot make the mount point, and says what to do.
    std::fs::remove_dir(r.path().join("proc")).unwrap();
    let _ro = ReadOnly::new(r.path());
    let out = run_payload(&r, &[], &["exit", "0"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("read-only") && err.contains("/proc") && err.contains("mkdir"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
