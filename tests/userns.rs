//! User namespaces (`--userns auto`, `--uidmap`): each container's ids are a range of host ids
//! of its own, its root an unprivileged host uid. Checked from the host: the credentials of the
//! container's process in /proc, the owners of what it leaves in a volume, the store of ranges,
//! the image's layers (never copied nor chowned).

mod common;
#[path = "common/images.rs"]
mod images_common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use images_common::*;
use serde_json::{json, Value};

/// The machine-wide record of the ranges `--userns auto` gave out.
const RANGES: &str = "/run/minibox-ids/ranges.json";

/// The container's first process on the host, from `inspect`.
fn pid_of(name: &str) -> u32 {
    let out = run_minibox(&["inspect", name]);
    let v: Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("inspect {name}: {e}: {} {}", stdout(&out), stderr(&out)));
    v["Pid"].as_u64().unwrap_or_else(|| panic!("no Pid: {v}")) as u32
}

/// `Uid:`/`Gid:` of /proc/PID/status: real, effective, saved, filesystem.
fn host_ids(pid: u32) -> (Vec<u32>, Vec<u32>) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    };
    (line("Uid:"), line("Gid:"))
}

/// The first line of /proc/PID/uid_map: (inside, outside, count).
fn uid_map(pid: u32) -> (u32, u32, u32) {
    let text = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let n: Vec<u32> = text
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

/// The ranges recorded for containers of this test process's state root.
fn recorded_ranges() -> Vec<Value> {
    let root = test_state_root();
    let text = fs::read_to_string(RANGES).unwrap_or_else(|_| "[]".into());
    let all: Vec<Value> = serde_json::from_str(&text).unwrap();
    all.into_iter()
        .filter(|r| {
            r["owner"]
                .as_str()
                .is_some_and(|o| Path::new(o).starts_with(&root))
        })
        .collect()
}

fn owner_of(id: &str) -> String {
    test_state_root().join(id).to_string_lossy().into_owned()
}

fn start(rootfs: &Rootfs, name: &str, flags: &[&str]) -> String {
    let root = rootfs.arg();
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[&root, "/payload", "sleep", "30"]);
    let out = run_minibox(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn rm(name: &str) {
    let _ = run_minibox(&["rm", "-f", name]);
}

/// A rootfs whose top directory anyone may enter (a tempdir is 0700).
fn open_rootfs() -> Rootfs {
    let rootfs = Rootfs::new();
    fs::set_permissions(rootfs.path(), fs::Permissions::from_mode(0o755)).unwrap();
    rootfs
}

/// A volume directory the container's root may write into (it is no host root).
fn volume_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("minibox-userns-vol-")
        .tempdir_in(test_tmp())
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

#[test]
fn un_container_root_is_an_unprivileged_host_uid_of_its_range() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let id = start(&rootfs, "un-root", &["--userns", "auto", "-u", "0"]);
    let pid = pid_of("un-root");
    let (uids, gids) = host_ids(pid);
    let (inside, first, count) = uid_map(pid);
    assert_eq!((inside, count), (0, 65536));
    assert!(
        first >= 65536,
        "the range starts at the host's own ids: {first}"
    );
    assert_eq!(uids, vec![first; 4], "uid 0 inside is the range's first id");
    assert_eq!(gids.len(), 4);
    assert!(gids.iter().all(|g| *g != 0), "{gids:?}");
    // Inside it is root, with docker's capabilities, over its own namespace only.
    let out = run_minibox(&["exec", "un-root", "/payload", "id"]);
    assert!(stdout(&out).starts_with("uid=0 euid=0"), "{}", stderr(&out));
    // An exec'd process is in the same user namespace: the same host uid.
    let ranges = recorded_ranges();
    let mine: Vec<_> = ranges
        .iter()
        .filter(|r| r["owner"] == owner_of(&id))
        .collect();
    assert_eq!(mine.len(), 1, "{ranges:?}");
    assert_eq!(mine[0]["uid"].as_u64(), Some(first as u64));
    // It is one of the minibox user's subordinate ids.
    let subuid = fs::read_to_string("/etc/subuid").unwrap();
    let (s, n) = subuid
        .lines()
        .find_map(|l| {
            let p: Vec<&str> = l.split(':').collect();
            (p[0] == "minibox")
                .then(|| (p[1].parse::<u64>().unwrap(), p[2].parse::<u64>().unwrap()))
        })
        .expect("a minibox entry in /etc/subuid");
    assert!(s <= first as u64 && first as u64 + 65536 <= s + n);
    rm("un-root");
}

#[test]
fn un_nobody_inside_is_the_ranges_65534_and_host_keeps_todays_ids() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    // `run ROOTFS CMD` keeps uid 65534 inside; on the host it is its range's.
    let out = payload_ok(&rootfs, &["--rm", "--userns", "auto"], &["id"]);
    assert!(out.starts_with("uid=65534 euid=65534"), "{out}");
    start(&rootfs, "un-nobody", &["--userns", "auto"]);
    let pid = pid_of("un-nobody");
    let (_, first, _) = uid_map(pid);
    assert_eq!(host_ids(pid).0, vec![first + 65534; 4]);
    rm("un-nobody");
    // --userns host: the host's own ids, as before.
    start(&rootfs, "un-host", &["--userns", "host"]);
    let pid = pid_of("un-host");
    assert_eq!(host_ids(pid).0, vec![65534; 4]);
    assert_eq!(uid_map(pid), (0, 0, u32::MAX));
    rm("un-host");
}

#[test]
fn un_two_containers_never_share_a_host_uid() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    start(&rootfs, "un-two-a", &["--userns", "auto", "-u", "0"]);
    start(&rootfs, "un-two-b", &["--userns", "auto", "-u", "0"]);
    let (a, b) = (pid_of("un-two-a"), pid_of("un-two-b"));
    let ((_, fa, na), (_, fb, nb)) = (uid_map(a), uid_map(b));
    assert!(
        fa + na <= fb || fb + nb <= fa,
        "ranges overlap: {fa}+{na}, {fb}+{nb}"
    );
    assert_ne!(host_ids(a).0, host_ids(b).0);
    rm("un-two-a");
    rm("un-two-b");
}

#[test]
fn un_ranges_are_freed_at_rm() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let id = start(&rootfs, "un-free", &["--userns", "auto"]);
    assert!(recorded_ranges()
        .iter()
        .any(|r| r["owner"] == owner_of(&id)));
    rm("un-free");
    assert!(!recorded_ranges()
        .iter()
        .any(|r| r["owner"] == owner_of(&id)));
    // --rm frees it too, and a run that fails holds none.
    let out = payload_ok(
        &rootfs,
        &["--rm", "--userns", "auto", "--name", "un-free-rm"],
        &["id"],
    );
    assert!(out.contains("uid=65534"), "{out}");
    let out = run_minibox(&[
        "run",
        "--userns",
        "auto",
        "--name",
        "un-free-fail",
        &rootfs.arg(),
        "/no-such-program",
    ]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    rm("un-free-fail");
    // (Other tests of this process remove containers meanwhile: a range stays recorded
    // between its container's removal and its release, a moment; a leaked one stays.)
    let leaked = || -> Vec<Value> {
        recorded_ranges()
            .into_iter()
            .filter(|r| !Path::new(r["owner"].as_str().unwrap()).exists())
            .collect()
    };
    let mut left = leaked();
    for _ in 0..20 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = leaked();
        left.retain(|r| now.contains(r));
    }
    assert!(left.is_empty(), "ranges of removed containers: {left:?}");
}

#[test]
fn un_a_device_node_made_by_container_root_is_refused() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let vol = volume_dir();
    let v = format!("{}:/v", vol.path().display());
    // /dev/sda's numbers and /dev/mem's: container root may not make either.
    for (major, minor) in [("8", "0"), ("1", "1")] {
        let out = run_payload(
            &rootfs,
            &[
                "--rm",
                "--userns",
                "auto",
                "-u",
                "0",
                "--cap-add",
                "MKNOD",
                "-v",
                &v,
            ],
            &["mknod", "/v/node", major, minor],
        );
        assert_ne!(out.status.code(), Some(0), "mknod {major}:{minor} worked");
        assert!(
            !vol.path().join("node").exists(),
            "a node was left in the volume"
        );
    }
    // Nor in its own layer.
    let out = run_payload(
        &rootfs,
        &["--rm", "--userns", "auto", "-u", "0"],
        &["mknod", "/tmp/node", "1", "1"],
    );
    assert_ne!(out.status.code(), Some(0), "mknod /tmp/node worked");
}

#[test]
fn un_a_setuid_file_planted_in_a_bind_volume_is_owned_by_its_range() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let vol = volume_dir();
    let v = format!("{}:/v", vol.path().display());
    start(
        &rootfs,
        "un-suid",
        &["--userns", "auto", "-u", "0", "-v", &v],
    );
    let pid = pid_of("un-suid");
    let (_, first, _) = uid_map(pid);
    let out = run_minibox(&[
        "exec",
        "un-suid",
        "/payload",
        "copy-mode",
        "/payload",
        "/v/suid",
        "4755",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let md = fs::metadata(vol.path().join("suid")).unwrap();
    assert_eq!(md.uid(), first, "the planted file's host owner");
    assert_ne!(md.uid(), 0);
    assert!(md.gid() != 0);
    // Inside, it is root's.
    let out = run_minibox(&["exec", "un-suid", "/payload", "stat", "/v/suid"]);
    assert!(stdout(&out).contains("uid=0 gid=0"), "{}", stdout(&out));
    // A chown to the host's root is refused: host uid 0 is not mapped.
    let out = run_minibox(&[
        "exec",
        "un-suid",
        "/payload",
        "chown",
        "/v/suid",
        "4294967294",
        "0",
    ]);
    assert_ne!(out.status.code(), Some(0));
    rm("un-suid");
}

#[test]
fn un_uidmap_maps_as_asked() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    start(
        &rootfs,
        "un-map",
        &[
            "--uidmap",
            "0:3000000000:65536",
            "--gidmap",
            "0:3000100000:65536",
            "-u",
            "0",
        ],
    );
    let pid = pid_of("un-map");
    let (uids, gids) = host_ids(pid);
    assert_eq!(uids, vec![3_000_000_000; 4]);
    assert_eq!(gids, vec![3_000_100_000; 4]);
    rm("un-map");
    let out = run_minibox(&[
        "run",
        "--rm",
        "--uidmap",
        "0:3000000000:10",
        &rootfs.arg(),
        "/payload",
        "id",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("uid 65534 is not mapped"),
        "{}",
        stderr(&out)
    );
    let out = run_minibox(&[
        "run",
        "--rm",
        "--userns",
        "keep-id",
        &rootfs.arg(),
        "/payload",
        "id",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("invalid --userns"),
        "{}",
        stderr(&out)
    );
}

/// (inode, owner, group, mode) of every file of every layer of the store.
fn layer_files(env: &Env) -> Vec<(String, u64, u32, u32, u32)> {
    let mut all = vec![];
    for layer in env.layers() {
        for (path, _) in snapshot(&layer) {
            let md = fs::symlink_metadata(&path).unwrap();
            all.push((
                path.to_string_lossy().into_owned(),
                md.ino(),
                md.uid(),
                md.gid(),
                md.mode(),
            ));
        }
    }
    all.sort();
    all
}

#[test]
fn un_an_images_files_keep_their_owners_through_idmapped_layers_never_copied() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let owned = layer(&[
        E::Owned("secret", b"root only".to_vec(), 0o600, 0, 0),
        E::Owned("mine", b"user 1000".to_vec(), 0o600, 1000, 1000),
    ]);
    env.load(
        "un.tar",
        &docker_save(
            &[payload_layer(), owned],
            &json!({"Entrypoint": ["/payload"]}),
            "un-img:1",
        ),
    );
    let before = layer_files(&env);
    assert!(!before.is_empty());
    // Root inside reads root's 0600 file: it owns it, through the id-mapped layer.
    let out = env.ok(&[
        "run", "--rm", "--userns", "auto", "-u", "0", "un-img:1", "cat", "/secret",
    ]);
    assert_eq!(out, "root only");
    let out = env.ok(&[
        "run", "--rm", "--userns", "auto", "-u", "0", "un-img:1", "stat", "/secret", "/mine",
    ]);
    assert!(out.lines().next().unwrap().contains("uid=0 gid=0"), "{out}");
    assert!(
        out.lines().nth(1).unwrap().contains("uid=1000 gid=1000"),
        "{out}"
    );
    // uid 1000 inside reads its own, not root's.
    let out = env.ok(&[
        "run", "--rm", "--userns", "auto", "-u", "1000", "un-img:1", "cat", "/mine",
    ]);
    assert_eq!(out, "user 1000");
    let out = env.mb(&[
        "run", "--rm", "--userns", "auto", "-u", "1000", "un-img:1", "cat", "/secret",
    ]);
    assert_ne!(out.status.code(), Some(0));
    // Writes land in the container's own layer, owned by its range; the image's layers are
    // untouched: the same inodes, owners and modes (no chown copy was made).
    let id = env
        .ok(&[
            "run", "-d", "--userns", "auto", "-u", "0", "un-img:1", "sleep", "30",
        ])
        .trim()
        .to_string();
    let pid: u32 = {
        let v: Value = serde_json::from_str(&env.ok(&["inspect", &id])).unwrap();
        v["Pid"].as_u64().unwrap() as u32
    };
    let (_, first, _) = uid_map(pid);
    env.ok(&["exec", &id, "/payload", "write", "/secret", "changed"]);
    let upper = env.data().join("containers").join(&id).join("upper");
    let md = fs::metadata(upper.join("secret")).unwrap();
    assert_eq!(md.uid(), first);
    assert_eq!(layer_files(&env), before);
    env.ok(&["rm", "-f", &id]);
    let layer_secret = env
        .layers()
        .into_iter()
        .map(|l| l.join("secret"))
        .find(|p| p.exists())
        .unwrap();
    assert_eq!(fs::read(&layer_secret).unwrap(), b"root only");
    assert_eq!(fs::metadata(&layer_secret).unwrap().uid(), 0);
}

#[test]
fn un_an_idmap_volume_shows_the_hosts_owners_and_a_plain_one_does_not() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let vol = volume_dir();
    fs::write(vol.path().join("host-root-only"), "host").unwrap();
    fs::set_permissions(
        vol.path().join("host-root-only"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let plain = format!("{}:/v", vol.path().display());
    let idmap = format!("{}:/v:idmap", vol.path().display());
    let root = ["--rm", "--userns", "auto", "-u", "0"];
    // Not id-mapped (the default): the host root's file is nobody's to the container's root.
    let out = run_payload(
        &rootfs,
        &[&root[..], &["-v", &plain]].concat(),
        &["cat", "/v/host-root-only"],
    );
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    // :idmap: the host's root is the container's root there, both ways.
    let out = payload_ok(
        &rootfs,
        &[&root[..], &["-v", &idmap]].concat(),
        &["cat", "/v/host-root-only"],
    );
    assert_eq!(out, "host");
    payload_ok(
        &rootfs,
        &[&root[..], &["-v", &idmap]].concat(),
        &["write", "/v/w", "x"],
    );
    assert_eq!(fs::metadata(vol.path().join("w")).unwrap().uid(), 0);
    // It needs a user namespace.
    let out = run_payload(&rootfs, &["--rm", "-v", &idmap], &["id"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("idmap"), "{}", stderr(&out));
}

#[test]
fn un_explain_and_inspect_show_the_id_maps_beside_the_credentials() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let out = run_payload(&rootfs, &["--rm", "--explain", "--userns", "auto"], &["id"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let identity = err
        .lines()
        .find(|l| l.contains("] identity"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(identity.contains("uid 65534 gid 65534"), "{identity}");
    assert!(identity.contains("on the host uid 10"), "{identity}");
    assert!(
        identity.contains("user namespace: uids 0-65535 → "),
        "{identity}"
    );
    let out = run_payload(&rootfs, &["--rm", "--explain", "--userns", "host"], &["id"]);
    assert!(
        stderr(&out).contains("the host's own ids"),
        "{}",
        stderr(&out)
    );
    start(&rootfs, "un-inspect", &["--userns", "auto"]);
    let v: Value = serde_json::from_str(&stdout(&run_minibox(&["inspect", "un-inspect"]))).unwrap();
    let pid = v["Pid"].as_u64().unwrap() as u32;
    let (_, first, _) = uid_map(pid);
    let id = &v["Identity"];
    assert_eq!(id["UserNamespace"], "own");
    assert_eq!(id["Uid"].as_u64(), Some(first as u64 + 65534));
    assert_eq!(id["ContainerUid"], 65534);
    assert_eq!(
        id["UidMap"],
        json!([{"ContainerID": 0, "HostID": first, "Size": 65536}])
    );
    assert_ne!(v["Namespaces"]["user"], v["HostNamespaces"]["user"]);
    rm("un-inspect");
}

#[test]
fn un_a_named_volume_and_an_export_keep_the_containers_own_ids() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let vol = format!("un-vol-{}:/data", std::process::id());
    let root = ["--rm", "--userns", "auto", "-u", "0", "-v", &vol];
    payload_ok(&rootfs, &root, &["write", "/data/f", "one"]);
    // The next container (another range) finds it as its root's, and may write it.
    let out = payload_ok(&rootfs, &root, &["stat", "/data/f"]);
    assert!(out.contains("uid=0 gid=0"), "{out}");
    payload_ok(&rootfs, &root, &["write", "/data/f", "two"]);
    assert_eq!(payload_ok(&rootfs, &root, &["cat", "/data/f"]), "two");
    let _ = run_minibox(&["volume", "rm", &vol[..vol.find(':').unwrap()]]);
    // export writes the container's layer with the ids it gave its files, not its range's.
    let id = start(&rootfs, "un-export", &["--userns", "auto", "-u", "1000"]);
    let out = run_minibox(&["exec", "un-export", "/payload", "write", "/tmp/e", "x"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let tarball = test_tmp().join(format!("un-export-{}.tar", std::process::id()));
    let out = run_minibox(&["export", &id, "-o", tarball.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut archive = tar::Archive::new(fs::File::open(&tarball).unwrap());
    let entry = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("tmp/e"))
        .expect("tmp/e in the export");
    assert_eq!(entry.header().uid().unwrap(), 1000);
    let _ = fs::remove_file(&tarball);
    rm("un-export");
    // Another container's network namespace is not joined from a user namespace.
    let out = run_payload(
        &rootfs,
        &[
            "--rm",
            "--userns",
            "auto",
            "--network",
            "container:un-export",
        ],
        &["id"],
    );
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("--userns host"), "{}", stderr(&out));
}

#[test]
fn un_cp_into_a_container_gives_the_copy_to_its_own_ids() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    start(&rootfs, "un-cp", &["--userns", "auto", "-u", "0"]);
    let file = test_tmp().join(format!("un-cp-{}", std::process::id()));
    fs::write(&file, "copied").unwrap();
    std::os::unix::fs::chown(&file, Some(1000), Some(1000)).unwrap();
    let f = file.to_str().unwrap();
    for (flags, owner) in [(vec![], "uid=0 gid=0"), (vec!["-a"], "uid=1000 gid=1000")] {
        let mut args = vec!["cp"];
        args.extend(flags.iter().copied());
        args.extend([f, "un-cp:/tmp/c"]);
        let out = run_minibox(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let out = run_minibox(&["exec", "un-cp", "/payload", "stat", "/tmp/c"]);
        assert!(stdout(&out).contains(owner), "{flags:?}: {}", stdout(&out));
    }
    let _ = fs::remove_file(&file);
    // exec -t: a pty of the container's devpts, given to its user (as its root, in its
    // user namespace: the host's root could not).
    let out = run_minibox(&["exec", "-t", "-u", "1000", "un-cp", "/payload", "tty-info"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("isatty=1,1,1"), "{}", stdout(&out));
    rm("un-cp");
}

#[test]
fn un_minibox_userns_in_the_environment_is_the_default_and_flags_win() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let run = |flags: &[&str]| {
        let root = rootfs.arg();
        let mut args = vec!["run", "-d"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&root, "/payload", "sleep", "30"]);
        let out = minibox()
            .env("MINIBOX_USERNS", "auto")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    };
    run(&["--name", "un-env"]);
    run(&["--name", "un-env-host", "--userns", "host"]);
    // The default gives way where it cannot hold: another container's network.
    run(&["--name", "un-env-net", "--network", "container:un-env-host"]);
    let (auto, host, net) = (
        pid_of("un-env"),
        pid_of("un-env-host"),
        pid_of("un-env-net"),
    );
    assert_ne!(uid_map(auto).1, 0);
    assert_ne!(host_ids(auto).0[0], 65534);
    assert_eq!(uid_map(host), (0, 0, u32::MAX));
    assert_eq!(host_ids(host).0[0], 65534);
    assert_eq!(uid_map(net), (0, 0, u32::MAX));
    for name in ["un-env-net", "un-env", "un-env-host"] {
        rm(name);
    }
}

#[test]
fn un_one_containers_root_cannot_read_anothers_private_files_in_a_shared_volume() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let vol = volume_dir();
    let v = format!("{}:/v", vol.path().display());
    let root = ["--rm", "--userns", "auto", "-u", "0", "-v", &v];
    payload_ok(
        &rootfs,
        &root,
        &["copy-mode", "/etc/passwd", "/v/secret", "600"],
    );
    // (the second run had another range: it is not the owner, and owns no capability over
    // the first one's ids)
    let out = run_payload(&rootfs, &root, &["cat", "/v/secret"]);
    assert_ne!(out.status.code(), Some(0), "read: {}", stdout(&out));
    assert!(stderr(&out).contains("EACCES"), "{}", stderr(&out));
    // Nor change it.
    let out = run_payload(&rootfs, &root, &["chmod", "/v/secret", "644"]);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(
        fs::metadata(vol.path().join("secret")).unwrap().mode() & 0o777,
        0o600
    );
}

/// Takes the file lock minibox takes around the ranges, and drops `owner`'s entry (as a
/// damaged file removed, or a reboot that kept the state root, would).
fn lose_range_of(owner: &str) {
    let lock = fs::File::open("/run/minibox-ids/lock").unwrap();
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .unwrap();
    let text = fs::read_to_string(RANGES).unwrap();
    let mut all: Vec<Value> = serde_json::from_str(&text).unwrap();
    all.retain(|r| r["owner"].as_str() != Some(owner));
    fs::write(RANGES, serde_json::to_vec(&all).unwrap()).unwrap();
}

#[test]
fn un_start_of_an_exited_container_takes_its_range_again() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let name = format!("un-again-{}", std::process::id());
    let out = run_payload(
        &rootfs,
        &["--name", &name, "--userns", "auto"],
        &["exit", "0"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let inspected: Value =
        serde_json::from_str(&stdout(&run_minibox(&["inspect", &name]))).unwrap();
    let id = inspected["Id"].as_str().unwrap().to_string();
    let owner = owner_of(&id);
    let before: Vec<Value> = recorded_ranges()
        .into_iter()
        .filter(|r| r["owner"] == owner.as_str())
        .collect();
    assert_eq!(before.len(), 1, "{before:?}");
    lose_range_of(&owner);
    assert!(recorded_ranges()
        .iter()
        .all(|r| r["owner"] != owner.as_str()));
    // Started again, it runs on the ids its maps name, and they are its own again.
    let out = run_minibox(&["start", "-a", &name]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let after: Vec<Value> = recorded_ranges()
        .into_iter()
        .filter(|r| r["owner"] == owner.as_str())
        .collect();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["uid"], before[0]["uid"]);
    rm(&name);
    assert!(recorded_ranges()
        .iter()
        .all(|r| r["owner"] != owner.as_str()));
}

#[test]
fn un_a_relative_state_root_records_its_ranges_by_absolute_path() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let cwd = tempfile::Builder::new()
        .prefix("minibox-userns-cwd-")
        .tempdir_in(test_tmp())
        .unwrap();
    let mb = |args: &[&str]| {
        let mut all = vec!["--root", "state"];
        all.extend_from_slice(args);
        std::process::Command::new(minibox_bin())
            .current_dir(cwd.path())
            .args(all)
            .env("MINIBOX_DATA_ROOT", test_data_root())
            .output()
            .unwrap()
    };
    let root = rootfs.arg();
    let out = mb(&[
        "run", "-d", "--userns", "auto", &root, "/payload", "sleep", "30",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let text = fs::read_to_string(RANGES).unwrap();
    let all: Vec<Value> = serde_json::from_str(&text).unwrap();
    let want = cwd.path().join("state").join(&id);
    assert!(
        all.iter()
            .any(|r| r["owner"].as_str() == Some(want.to_str().unwrap())),
        "no entry owned by {}: {text}",
        want.display()
    );
    let _ = mb(&["rm", "-f", &id]);
}

#[test]
fn un_commit_keeps_the_ids_the_container_gave_its_files() {
    if !need_root() {
        return;
    }
    let rootfs = open_rootfs();
    let name = format!("un-commit-{}", std::process::id());
    start(&rootfs, &name, &["--userns", "auto", "-u", "0"]);
    for cmd in [
        &["write", "/tmp/c", "x"][..],
        &["chown", "/tmp/c", "5", "5"],
    ] {
        let mut args = vec!["exec", name.as_str(), "/payload"];
        args.extend_from_slice(cmd);
        let out = run_minibox(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let image = format!("{name}:1");
    let out = run_minibox(&["commit", &name, &image]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    rm(&name);
    let out = run_minibox(&[
        "run", "--rm", "--userns", "host", "-u", "0", &image, "/payload", "stat", "/tmp/c",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("uid=5 gid=5"), "{}", stdout(&out));
    let _ = run_minibox(&["rmi", &image]);
}
