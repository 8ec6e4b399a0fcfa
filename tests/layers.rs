//! Each container writes into a layer of its own, under a root-only data root: ROOTFS is never
//! modified, containers do not see each other's writes, and what a container plants there is
//! out of every host user's reach (issue 14 rows 3 and 9). Each test has its own data root, so
//! it can count the layers it made.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// A data root of this test's own, removed (with any layer left in it) when dropped.
fn data_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("minibox-data-")
        .tempdir_in(test_tmp())
        .expect("data root")
}

fn dr(d: &tempfile::TempDir) -> String {
    d.path().to_string_lossy().into_owned()
}

/// `minibox run --data-root DATA FLAGS ROOTFS /payload ARGS...`
fn run_in(d: &tempfile::TempDir, r: &Rootfs, flags: &[&str], args: &[&str]) -> Output {
    let data = dr(d);
    let mut all = vec!["--data-root", data.as_str()];
    all.extend_from_slice(flags);
    run_payload(r, &all, args)
}

fn ok_in(d: &tempfile::TempDir, r: &Rootfs, flags: &[&str], args: &[&str]) -> String {
    let out = run_in(d, r, flags, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{flags:?} {args:?}: stdout {:?} stderr {:?}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn rm(names: &[&str]) {
    let out = minibox().arg("rm").args(names).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "rm: {}", stderr(&out));
}

/// The one layer directory under the data root.
fn only_layer(d: &tempfile::TempDir) -> PathBuf {
    let dirs = layer_dirs(d.path());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn a_plain_rootfs_is_never_modified() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // No mount points: minibox used to make them in ROOTFS.
    for dir in ["proc", "sys", "dev"] {
        fs::remove_dir(r.path().join(dir)).unwrap();
    }
    fs::write(r.path().join("etc/motd"), "original").unwrap();
    let before = snapshot(r.path());
    let d = data_root();
    let cwd = ok_in(&d, &r, &["--rm", "-w", "/new/dir"], &["cwd"]);
    assert_eq!(cwd.trim(), "/new/dir");
    // Even with --read-only the workdir is made: in the layer (issue 14's bad-input list).
    let cwd = ok_in(&d, &r, &["--rm", "--read-only", "-w", "/ro/dir"], &["cwd"]);
    assert_eq!(cwd.trim(), "/ro/dir");
    ok_in(
        &d,
        &r,
        &["--rm", "-u", "0"],
        &["write", "/etc/motd", "changed"],
    );
    ok_in(&d, &r, &["--rm", "-u", "0"], &["write", "/tmp/marker", "x"]);
    assert_eq!(ok_in(&d, &r, &["--rm"], &["cat", "/etc/motd"]), "original");
    assert_eq!(snapshot(r.path()), before, "running it changed ROOTFS");
    assert_eq!(
        fs::read_to_string(r.path().join("etc/motd")).unwrap(),
        "original"
    );
    assert!(layer_dirs(d.path()).is_empty(), "--rm left a layer");
}

#[test]
fn containers_of_one_rootfs_do_not_see_each_others_writes() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let d = data_root();
    let a = format!("layer-a-{}", std::process::id());
    ok_in(&d, &r, &["--name", &a], &["write", "/tmp/marker", "from a"]);
    // B, started after A wrote and exited (its layer still there), does not see it.
    let out = run_in(&d, &r, &["--rm"], &["cat", "/tmp/marker"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("ENOENT"), "{}", stderr(&out));
    assert!(!r.path().join("tmp/marker").exists(), "A wrote into ROOTFS");
    // A's write is in A's layer, and only there.
    let layer = only_layer(&d);
    assert_eq!(
        fs::read_to_string(layer.join("upper/tmp/marker")).unwrap(),
        "from a"
    );
    // And two at once: each running container has its own layer.
    let one = format!("layer-1-{}", std::process::id());
    let two = format!("layer-2-{}", std::process::id());
    for n in [&one, &two] {
        ok_in(&d, &r, &["-d", "--name", n], &["sleep", "30"]);
    }
    assert_eq!(layer_dirs(d.path()).len(), 3);
    let out = minibox()
        .args(["rm", "-f", &one, &two, &a])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(layer_dirs(d.path()).is_empty(), "rm left layers behind");
}

/// Runs the static payload on the host as uid/gid 65534 with no groups.
fn as_nobody(payload: &Path, args: &[&str]) -> Output {
    let child = Command::new(payload)
        .args(args)
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn payload as nobody");
    wait_output(child, Duration::from_secs(10))
}

#[test]
fn what_a_container_plants_is_out_of_host_users_reach() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let d = data_root();
    let name = format!("planter-{}", std::process::id());
    // As root inside: a setuid-root copy of a program, and a 0666 device node (/dev/null's
    // numbers: harmless if the test fails).
    ok_in(
        &d,
        &r,
        &["--name", &name, "-u", "0"],
        &["copy-mode", "/payload", "/suid", "4755"],
    );
    let node_name = format!("node-{}", std::process::id());
    ok_in(
        &d,
        &r,
        &["--name", &node_name, "-u", "0"],
        &["mknod-mode", "/node", "666", "1", "3"],
    );
    assert!(!r.path().join("suid").exists() && !r.path().join("node").exists());
    let layers = layer_dirs(d.path());
    assert_eq!(layers.len(), 2);
    let suid = layers
        .iter()
        .map(|l| l.join("upper/suid"))
        .find(|p| p.exists())
        .expect("the planted binary is in a layer");
    let node = layers
        .iter()
        .map(|l| l.join("upper/node"))
        .find(|p| p.exists())
        .expect("the planted node is in a layer");
    // They really are there, as planted: what a host user must not reach.
    let md = fs::metadata(&suid).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o4755));
    let md = fs::symlink_metadata(&node).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.mode() & 0o777, 0o666);
    for dir in layers.iter().chain([&d.path().join("containers")]) {
        let md = fs::metadata(dir).unwrap();
        assert_eq!(
            (md.uid(), md.mode() & 0o777),
            (0, 0o700),
            "{}",
            dir.display()
        );
    }

    // A host user, with a copy of the payload it can surely run.
    let tools = tempfile::tempdir().unwrap();
    fs::set_permissions(tools.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let payload = tools.path().join("payload");
    fs::copy(payload_bin(), &payload).unwrap();
    let control = as_nobody(&payload, &["id"]);
    assert_eq!(control.status.code(), Some(0), "{}", stderr(&control));
    assert!(stdout(&control).contains("65534"), "{}", stdout(&control));
    let s = suid.to_string_lossy().into_owned();
    let n = node.to_string_lossy().into_owned();
    for args in [
        vec!["cat", s.as_str()],
        vec!["write", n.as_str(), "x"],
        vec!["ls", s.trim_end_matches("/suid")],
    ] {
        let out = as_nobody(&payload, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("EACCES"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // Nor can it exec the setuid binary.
    let exec = Command::new(&suid).arg("id").uid(65534).gid(65534).output();
    match exec {
        Ok(out) => panic!("a host user ran the planted binary: {}", stdout(&out)),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}"),
    }
    rm(&[&name, &node_name]);
    assert!(layer_dirs(d.path()).is_empty());
}

#[test]
fn rm_removes_the_layer_and_a_failed_start_leaves_none() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let d = data_root();
    let name = format!("kept-{}", std::process::id());
    ok_in(&d, &r, &["--name", &name, "-u", "0"], &["write", "/f", "x"]);
    let layer = only_layer(&d);
    assert!(layer.join("upper/f").exists());
    rm(&[&name]);
    assert!(!layer.exists(), "rm left the layer");
    // A run that fails to start: CMD missing (127), a bad --user (125, before anything).
    let missing = format!("/nope-{}", std::process::id());
    let out = minibox()
        .args(["run", "--data-root", &dr(&d), &r.arg(), &missing])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let out = run_in(&d, &r, &["-u", "nosuchuser"], &["id"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        layer_dirs(d.path()).is_empty(),
        "a failed start left a layer"
    );
    // A bad flag does not even make the data root.
    let fresh = d.path().join("never-made");
    let fresh_s = fresh.to_string_lossy().into_owned();
    let out = run_payload(&r, &["--data-root", &fresh_s, "--frobnicate"], &["id"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(!fresh.exists());
    // No record of it either.
    let ps = minibox()
        .args(["ps", "-a", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(ps.status.code(), Some(0));
    assert!(
        !stdout(&ps).contains(&missing),
        "a failed run left a record"
    );
}

#[test]
fn a_data_root_inside_rootfs_is_refused_and_odd_paths_work() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let inside = r.path().join("var/lib/minibox");
    let inside_s = inside.to_string_lossy().into_owned();
    let out = run_payload(&r, &["--data-root", &inside_s], &["id"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("overlap") && err.contains("--data-root"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        !r.path().join("var").exists(),
        "the refused data root was made in ROOTFS"
    );

    // `,`, `:` and `\` would break overlayfs's option string if paths went into it as text.
    let odd = tempfile::Builder::new()
        .prefix("odd,lowerdir=:x\\y-")
        .tempdir_in(test_tmp())
        .unwrap();
    let rootfs = odd.path().join("root,fs:a\\b");
    fs::create_dir(&rootfs).unwrap();
    fs::copy(payload_bin(), rootfs.join("payload")).unwrap();
    let data = odd.path().join("data,upperdir=:c\\d");
    let (rootfs_s, data_s) = (
        rootfs.to_string_lossy().into_owned(),
        data.to_string_lossy().into_owned(),
    );
    let out = minibox()
        .args(["run", "--rm", "--data-root", &data_s, &rootfs_s])
        .args(["/payload", "cwd"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/\n");
    let out = minibox()
        .args(["run", "--rm", "-u", "0", "--data-root", &data_s, &rootfs_s])
        .args(["/payload", "write", "/w", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!rootfs.join("w").exists());
    assert!(layer_dirs(&data).is_empty());
}

/// A data root where overlayfs cannot put an upper layer (on an overlayfs, here) is one clear
/// line naming it, status 125, and nothing left. Mounted in a mount namespace of its own, so
/// the host's mount table never sees it.
#[test]
fn a_data_root_that_cannot_hold_a_layer_is_one_clear_line() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let base = tempfile::tempdir_in(test_tmp()).unwrap();
    for d in ["lower", "upper", "work", "merged"] {
        fs::create_dir(base.path().join(d)).unwrap();
    }
    let b = base.path().to_string_lossy().into_owned();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={b}/lower,upperdir={b}/upper,workdir={b}/work \
         {b}/merged && exec \"$0\" run --data-root {b}/merged/data \"$1\" /payload id"
    );
    let child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .arg(minibox_bin())
        .arg(r.arg())
        .env("MINIBOX_ROOT", test_state_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare");
    let out = wait_output(child, Duration::from_secs(30));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("{b}/merged/data")) && err.contains("--data-root"),
        "{err}"
    );
    // What minibox wrote through that overlay is in its upper: no container layer is left.
    let upper_data = base.path().join("upper/data");
    assert!(
        upper_data.join("containers").is_dir(),
        "minibox never got there"
    );
    assert!(layer_dirs(&upper_data).is_empty(), "a layer was left");
}
