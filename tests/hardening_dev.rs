//! The container's `/dev`: its six device nodes are its own (issue 14, row 1), so root inside
//! cannot change the host's, and a node made inside still opens nothing. Root only.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use common::*;

/// The six nodes, with the device numbers docker gives them.
const NODES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// `payload stat` output, one map per line: `type=chr mode=666 ...`.
fn parse_stat(text: &str) -> Vec<BTreeMap<String, String>> {
    text.lines()
        .map(|line| {
            line.split(' ')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Puts the host's nodes back as they were, should a broken minibox let the container change
/// them: a failing test must not leave the host with a `/dev/null` nobody may write.
struct HostNodesGuard(Vec<(PathBuf, u32, u32, u32)>);

impl HostNodesGuard {
    fn new(names: &[&str]) -> HostNodesGuard {
        HostNodesGuard(
            names
                .iter()
                .map(|n| {
                    let path = PathBuf::from(format!("/dev/{n}"));
                    let md = fs::metadata(&path).unwrap();
                    (path, md.mode() & 0o7777, md.uid(), md.gid())
                })
                .collect(),
        )
    }

    /// The nodes whose mode or owner differs now from what it was.
    fn changed(&self) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|(path, mode, uid, gid)| {
                let md = fs::metadata(path).unwrap();
                let now = (md.mode() & 0o7777, md.uid(), md.gid());
                (now != (*mode, *uid, *gid)).then(|| {
                    format!(
                        "{}: {:o} {}:{} became {:o} {}:{}",
                        path.display(),
                        mode,
                        uid,
                        gid,
                        now.0,
                        now.1,
                        now.2
                    )
                })
            })
            .collect()
    }
}

impl Drop for HostNodesGuard {
    fn drop(&mut self) {
        for (path, mode, uid, gid) in &self.0 {
            let Ok(md) = fs::metadata(path) else { continue };
            if (md.mode() & 0o7777, md.uid(), md.gid()) == (*mode, *uid, *gid) {
                continue;
            }
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(*mode));
            let _ = std::os::unix::fs::chown(path, Some(*uid), Some(*gid));
        }
    }
}

#[test]
fn root_inside_changes_only_its_own_device_nodes() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let guard = HostNodesGuard::new(&["full", "null"]);
    for node in ["/dev/full", "/dev/null"] {
        // Root inside may: they are its nodes.
        payload_ok(&r, &["-u", "0"], &["chmod", node, "600"]);
        payload_ok(&r, &["-u", "0"], &["chown", node, "1000", "1000"]);
    }
    assert_eq!(
        guard.changed(),
        Vec::<String>::new(),
        "the container changed the host's device nodes"
    );
    // And the next container gets fresh ones again.
    let stats = parse_stat(&payload_ok(&r, &[], &["stat", "/dev/full", "/dev/null"]));
    for st in &stats {
        assert_eq!(
            (&st["mode"][..], &st["uid"][..], &st["gid"][..]),
            ("666", "0", "0"),
            "{st:?}"
        );
    }
}

#[test]
fn the_six_nodes_are_the_containers_own_and_work() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut paths: Vec<String> = NODES.iter().map(|(n, _, _)| format!("/dev/{n}")).collect();
    // A masked file is covered by the container's /dev/null, not the host's.
    let masked = ["/proc/keys", "/proc/timer_list"]
        .into_iter()
        .find(|p| fs::metadata(p).is_ok());
    paths.extend(masked.map(String::from));
    let args: Vec<&str> = std::iter::once("stat")
        .chain(paths.iter().map(String::as_str))
        .collect();
    let stats = parse_stat(&payload_ok(&r, &[], &args));
    assert_eq!(stats.len(), paths.len());
    for ((name, major, minor), st) in NODES.iter().zip(&stats) {
        let host = fs::metadata(format!("/dev/{name}")).unwrap();
        assert_eq!(st["type"], "chr", "/dev/{name}: {st:?}");
        assert_eq!(
            st["rdev"],
            format!("{major}:{minor}"),
            "/dev/{name}: {st:?}"
        );
        assert_eq!(
            (&st["mode"][..], &st["uid"][..], &st["gid"][..]),
            ("666", "0", "0"),
            "/dev/{name}: {st:?}"
        );
        let inside = (
            st["dev"].parse::<u64>().unwrap(),
            st["ino"].parse().unwrap(),
        );
        assert_ne!(
            inside,
            (host.dev(), host.ino()),
            "/dev/{name} inside is the host's inode"
        );
    }
    if let Some(path) = masked {
        let (null, st) = (&stats[0], &stats[NODES.len()]);
        assert_eq!(
            (&st["dev"], &st["ino"]),
            (&null["dev"], &null["ino"]),
            "{path} is not masked by the container's own /dev/null: {st:?}"
        );
    }
    // /dev/null reads empty and swallows writes; /dev/zero reads zeros.
    assert_eq!(payload_ok(&r, &[], &["cat", "/dev/null"]), "");
    payload_ok(&r, &[], &["write", "/dev/null", "x"]);
    let out = run_payload(&r, &[], &["write", "/dev/full", "x"]);
    assert!(stderr(&out).contains("ENOSPC"), "{}", stderr(&out));
}

#[test]
fn a_node_root_makes_in_dev_opens_nothing() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    for path in ["/dev/evil", "/dev/shm/evil"] {
        // /dev/null's numbers, 0666: harmless if it opened, but it must not.
        let out = run_payload(&r, &["-u", "0"], &["mknod", path, "1", "3"]);
        assert_eq!(
            stdout(&out).trim(),
            format!("made {path}"),
            "{}",
            stderr(&out)
        );
        assert_eq!(out.status.code(), Some(1), "a node made in {path} opened");
        assert!(stderr(&out).contains("EACCES"), "{}", stderr(&out));
    }
}
