//! `-v`, `--mount`, `--tmpfs` and named volumes, checked by writing through them (and failing
//! to, where read-only) from inside a container.

mod common;
#[path = "common/images.rs"]
mod images_common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use images_common::*;
use serde_json::json;

/// The payload image, with `/data/seed` (owned by nobody) and `/etc/motd`.
fn volume_image(env: &Env) {
    let extra = layer(&[
        E::Dir("data/", 0o755),
        E::Owned("data/seed", b"from the image".to_vec(), 0o644, 65534, 65534),
        E::File("etc/motd", b"motd".to_vec(), 0o644),
    ]);
    // /data itself belongs to nobody: the volume seeded from it does too.
    let mut own = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_uid(65534);
    h.set_gid(65534);
    h.set_size(0);
    h.set_cksum();
    own.append_data(&mut h, "data/", std::io::empty()).unwrap();
    let own = own.into_inner().unwrap();
    env.load(
        "vol.tar",
        &docker_save(
            &[payload_layer(), extra, own],
            &json!({"Entrypoint": ["/payload"]}),
            "vol:1",
        ),
    );
}

fn mountinfo_line(env: &Env, flags: &[&str], target: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["vol:1", "cat", "/proc/self/mountinfo"]);
    let info = env.ok(&args);
    info.lines()
        .find(|l| l.split(' ').nth(4) == Some(target))
        .unwrap_or_else(|| panic!("{target} not mounted: {info}"))
        .to_string()
}

#[test]
fn a_bind_mount_writes_to_the_host_and_ro_refuses_writes() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    volume_image(&env);
    let host = env.dir.path().join("host");
    fs::create_dir(&host).unwrap();
    let bind = format!("{}:/mnt/h", host.display());
    env.ok(&[
        "run", "--rm", "-u", "0", "-v", &bind, "vol:1", "write", "/mnt/h/f", "x",
    ]);
    assert_eq!(fs::read_to_string(host.join("f")).unwrap(), "x");
    let line = mountinfo_line(&env, &["-v", &bind], "/mnt/h");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    // :ro — the write fails, and nothing reaches the host.
    let ro = format!("{}:/mnt/h:ro", host.display());
    let out = env.mb(&[
        "run", "--rm", "-u", "0", "-v", &ro, "vol:1", "write", "/mnt/h/g", "x",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert!(!host.join("g").exists());
    // --mount type=bind,readonly likewise.
    let m = format!("type=bind,source={},target=/m,readonly", host.display());
    let out = env.mb(&[
        "run", "--rm", "-u", "0", "--mount", &m, "vol:1", "write", "/m/g", "x",
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!host.join("g").exists());
    // A plain-directory ROOTFS takes volumes too.
    let r = Rootfs::new();
    let out = payload_ok(
        &r,
        &["-u", "0", "-v", &bind],
        &["write", "/mnt/h/plain", "y"],
    );
    assert_eq!(out, "");
    assert_eq!(fs::read_to_string(host.join("plain")).unwrap(), "y");
    assert!(
        !r.path().join("mnt").exists(),
        "the mount point was made in ROOTFS"
    );
}

#[test]
fn a_named_volume_is_seeded_from_the_image_and_outlives_its_containers() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    volume_image(&env);
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "-v",
            "store:/data",
            "vol:1",
            "cat",
            "/data/seed"
        ]),
        "from the image"
    );
    let data = env.data().join("volumes/store/_data");
    assert_eq!(
        fs::read_to_string(data.join("seed")).unwrap(),
        "from the image"
    );
    assert_eq!(
        fs::metadata(&data).unwrap().uid(),
        65534,
        "the image's owner of /data"
    );
    // nobody writes to it; a later container sees the write; the image is not changed.
    env.ok(&[
        "run",
        "--rm",
        "-v",
        "store:/data",
        "vol:1",
        "write",
        "/data/new",
        "kept",
    ]);
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=store,target=/data",
            "vol:1",
            "cat",
            "/data/new"
        ]),
        "kept"
    );
    assert!(env.ok(&["volume", "ls"]).contains("store"));
    let inspect = env.ok(&["volume", "inspect", "store"]);
    assert!(inspect.contains("_data"), "{inspect}");
    // A container record that mounts it keeps it.
    let id = env
        .ok(&["run", "-d", "-v", "store:/data", "vol:1", "sleep", "0"])
        .trim()
        .to_string();
    let e = env.fails(&["volume", "rm", "store"]);
    assert!(e.contains("in use"), "{e}");
    env.ok(&["rm", "-f", &id]);
    env.ok(&["volume", "rm", "store"]);
    assert!(!data.exists());
    // volume create makes an empty one: not seeded when first used.
    env.ok(&["volume", "create", "empty"]);
    assert_eq!(
        env.ok(&["run", "--rm", "-v", "empty:/data", "vol:1", "ls", "/data"]),
        ""
    );
    let e = env.fails(&["run", "--rm", "-v", "bad name:/data", "vol:1", "ls", "/"]);
    assert!(e.contains("invalid"), "{e}");
}

#[test]
fn tmpfs_mounts_are_fresh_nosuid_nodev_and_sized() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    volume_image(&env);
    let line = mountinfo_line(&env, &["--tmpfs", "/scratch:size=1m,mode=1770"], "/scratch");
    assert!(line.contains(" - tmpfs "), "{line}");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    assert!(
        line.contains("size=1024k") && line.contains("mode=1770"),
        "{line}"
    );
    let line = mountinfo_line(
        &env,
        &["--mount", "type=tmpfs,target=/run/x,tmpfs-size=2m"],
        "/run/x",
    );
    assert!(line.contains("size=2048k"), "{line}");
    // The image's content at that path is hidden, not changed.
    assert_eq!(
        env.ok(&["run", "--rm", "--tmpfs", "/data", "vol:1", "ls", "/data"]),
        ""
    );
}

#[test]
fn read_only_with_tmpfs_and_a_volume_leaves_exactly_those_writable() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    volume_image(&env);
    let flags = ["--read-only", "--tmpfs", "/tmp", "-v", "state:/data"];
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(&flags);
        all.push("vol:1");
        all.extend_from_slice(args);
        env.mb(&all)
    };
    assert!(run(&["write", "/tmp/x", "1"]).status.success());
    assert!(run(&["write", "/data/x", "1"]).status.success());
    for denied in ["/etc/x", "/x", "/etc/motd"] {
        let out = run(&["write", denied, "1"]);
        assert!(!out.status.success(), "{denied} was writable");
    }
    // A server of that shape stops cleanly on `minibox stop`, its data kept.
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(&flags);
    all.extend_from_slice(&["vol:1", "trap", "1"]);
    let id = env.ok(&all).trim().to_string();
    std::thread::sleep(std::time::Duration::from_millis(300));
    env.ok(&["stop", "-t", "5", &id]);
    let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &id])).unwrap();
    assert_eq!(inspect["ExitCode"], json!(0), "{inspect}");
    assert_eq!(
        fs::read_to_string(env.data().join("volumes/state/_data/x")).unwrap(),
        "1"
    );
}

#[test]
fn a_container_path_through_a_symlink_stays_inside_the_root() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let victim = env.dir.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o755)).unwrap();
    let v = Box::leak(victim.to_string_lossy().into_owned().into_boxed_str()) as &'static str;
    let l = layer(&[E::Symlink("escape", v), E::Symlink("up", "../../../..")]);
    env.load(
        "sym.tar",
        &docker_save(
            &[payload_layer(), l],
            &json!({"Entrypoint": ["/payload"]}),
            "sym:1",
        ),
    );
    // /escape resolves inside the root, where its target does not exist: refused.
    let e = env.fails(&["run", "--rm", "--tmpfs", "/escape/sub", "sym:1", "ls", "/"]);
    assert!(e.contains("/escape"), "{e}");
    // /up/.. stops at the container's /: the mount point is made there.
    let root = env.ok(&["run", "--rm", "--tmpfs", "/up/sub2", "sym:1", "ls", "/"]);
    assert!(root.lines().any(|l| l == "sub2"), "{root}");
    let left: Vec<_> = fs::read_dir(&victim).unwrap().collect();
    assert!(left.is_empty(), "a mount point was made on the host");
    assert!(!std::path::Path::new("/sub2").exists());
}

#[test]
fn bad_volume_flags_are_refused_before_anything_is_made() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    volume_image(&env);
    for (flags, needle) in [
        (vec!["-v", "/nonexistent-minibox-x:/x"], "does not exist"),
        (vec!["-v", "data:relative"], "absolute path"),
        (vec!["-v", "data:/x:rx"], "not supported"),
        (vec!["--tmpfs", "/t:mode=9"], "octal"),
        (vec!["--mount", "type=nfs,target=/x"], "not supported"),
        (vec!["--tmpfs", "/a", "--tmpfs", "/a"], "twice"),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(&flags);
        args.extend_from_slice(&["vol:1", "ls", "/"]);
        let out = env.mb(&args);
        assert_eq!(out.status.code(), Some(125), "{flags:?}");
        assert!(stderr(&out).contains(needle), "{flags:?}: {}", stderr(&out));
    }
    assert!(!env.data().join("volumes/data").exists());
    assert!(env.ok(&["ps", "-a", "-q"]).is_empty());
}
