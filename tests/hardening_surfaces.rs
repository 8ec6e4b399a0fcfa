//! The surfaces images, the OCI CLI, export, exec and pull added (issue 17's review): each
//! test repeats one attack that worked and fails while it still does.

mod common;
#[path = "common/images.rs"]
mod images_common;

use std::fs;

use common::*;
use images_common::*;
use serde_json::json;

fn image_id(env: &Env, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", key])).unwrap();
    v["Id"].as_str().unwrap().to_string()
}

/// Row 5: a hostile image named like another image's id (`sha256:<id>`, its 64 or 12 hex
/// digits; by `RepoTags`, an OCI `ref.name` annotation, `tag` or `pull`) shadowed it: `run
/// <id>` ran the hostile one. Such names are refused everywhere a tag is made, and ids resolve
/// before names even when an older store holds one.
#[test]
fn a_tag_that_reads_as_an_image_id_never_shadows_that_image() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    env.load(
        "victim.tar",
        &docker_save(
            &[payload_layer()],
            &json!({"Env": ["WHO=victim"]}),
            "victim:1",
        ),
    );
    let victim = image_id(&env, "victim:1");
    let hex = &victim["sha256:".len()..];
    let hostile_config = json!({"Env": ["WHO=hostile"]});
    let names = [
        victim.clone(),
        hex.to_string(),
        format!("{hex}:latest"),
        hex[..12].to_string(),
        format!("{}:latest", &hex[..12]),
    ];
    for (i, name) in names.iter().enumerate() {
        // By docker save's RepoTags.
        let file = env.dir.path().join(format!("hostile{i}.tar"));
        fs::write(
            &file,
            docker_save(&[payload_layer()], &hostile_config, name),
        )
        .unwrap();
        let err = env.fails(&["load", "-i", file.to_str().unwrap()]);
        assert!(
            err.contains("image id") || err.contains("invalid"),
            "{name}: {err}"
        );
        // By an OCI layout's ref.name annotation.
        let layout = env.dir.path().join(format!("layout{i}"));
        oci_layout(&layout, &[payload_layer()], &hostile_config, name);
        // (A bare name is no tag at all: the image loads untagged, or the load is refused.)
        env.mb(&["load", "-i", layout.to_str().unwrap()]);
        // By `tag`.
        let err = env.fails(&["tag", "victim:1", name]);
        assert!(
            err.contains("image id") || err.contains("invalid"),
            "{name}: {err}"
        );
        // By `pull` (refused before anything is asked of a registry).
        let err = env.fails(&["pull", "--insecure", name]);
        assert!(
            err.contains("image id") || err.contains("invalid"),
            "{name}: {err}"
        );
    }
    let index_path = env.data().join("images.json");
    let index: serde_json::Value = serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    assert_eq!(
        index["tags"],
        json!({"victim:1": victim}),
        "no tag but the victim's"
    );
    for key in [victim.as_str(), hex, &hex[..12]] {
        assert_eq!(image_id(&env, key), victim, "{key} names the victim");
    }
    // A store written before the refusal: a hostile image holding such tags.
    env.load(
        "other.tar",
        &docker_save(&[payload_layer()], &hostile_config, "other:1"),
    );
    let hostile = image_id(&env, "other:1");
    assert_ne!(hostile, victim);
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    for name in [
        victim.clone(),
        format!("{hex}:latest"),
        format!("{}:latest", &hex[..12]),
    ] {
        index["tags"][name] = json!(hostile);
    }
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    for key in [victim.as_str(), hex, &hex[..12]] {
        assert_eq!(image_id(&env, key), victim, "{key} names the victim");
    }
    let out = env.ok(&["run", "--rm", &hex[..12], "/payload", "env"]);
    assert!(out.contains("WHO=victim"), "{out}");
}

fn wait_for(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    done()
}

fn state_of(env: &Env, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", key])).unwrap();
    // docker's shape: `.State` is an object, its `Status` the word.
    v["State"]["Status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Row 6: runc's `kill ID 15` was read as docker's `kill A B` when a container was named
/// "15": both got SIGKILL. The form is now told by the arguments' shape: ID gets TERM, and
/// the container named "15" runs on.
#[test]
fn kill_id_and_a_number_signals_the_id_even_when_a_container_is_named_so() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let rootfs = Rootfs::new();
    let target = "kill-shape-target";
    let id = env
        .ok(&[
            "run",
            "-d",
            "--name",
            target,
            &rootfs.arg(),
            "/payload",
            "trap",
            "1",
        ])
        .trim()
        .to_string();
    env.ok(&[
        "run",
        "-d",
        "--name",
        "15",
        &rootfs.arg(),
        "/payload",
        "sleep",
        "60",
    ]);
    assert!(wait_for(std::time::Duration::from_secs(10), || env
        .ok(&["logs", target])
        .contains("ready")));
    env.ok(&["kill", &id, "15"]);
    assert!(
        wait_for(std::time::Duration::from_secs(10), || env
            .ok(&["logs", target])
            .contains("got TERM")),
        "the target got TERM: {}",
        env.ok(&["logs", target])
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        state_of(&env, "15"),
        "running",
        "the container named 15 runs on"
    );
    env.ok(&["rm", "-f", target, "15"]);
}

/// A directory a host user owns, holding links to a root-only file under every name minibox
/// ever used for its temporary files there.
struct Planted {
    dir: tempfile::TempDir,
    victim: std::path::PathBuf,
    _victim_dir: tempfile::TempDir,
}

impl Planted {
    fn new() -> Planted {
        use std::os::unix::fs::PermissionsExt;
        let victim_dir = tempfile::tempdir_in(test_tmp()).unwrap();
        let victim = victim_dir.path().join("root-only");
        fs::write(&victim, "root's secret").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
        let dir = tempfile::tempdir_in(test_tmp()).unwrap();
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        Planted {
            dir,
            victim,
            _victim_dir: victim_dir,
        }
    }

    fn plant(&self, name: &str) {
        std::os::unix::fs::symlink(&self.victim, self.dir.path().join(name)).unwrap();
    }

    fn assert_victim_untouched(&self) {
        assert_eq!(
            String::from_utf8_lossy(&fs::read(&self.victim).unwrap()),
            "root's secret",
            "the root-only file was written through a planted link"
        );
    }

    /// What is in the directory besides the links planted there.
    fn made(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| !e.file_type().unwrap().is_symlink())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// Row 7: `export -o D/x.tar` wrote `D/x.partial` and `exec --pid-file D/f` wrote `D/.f.PID`,
/// both following symlinks and truncating: a host user owning D overwrote root-only files.
/// Links are planted under every name the old code could pick (for the pid file, every pid
/// the exec could get); the files minibox makes now are never opened through a link.
#[test]
fn output_files_are_never_written_through_a_planted_link() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let rootfs = Rootfs::new();
    let id = env
        .ok(&["run", "-d", &rootfs.arg(), "/payload", "sleep", "60"])
        .trim()
        .to_string();

    let export = Planted::new();
    export.plant("x.partial");
    export.plant("x.tar");
    let target = export.dir.path().join("x.tar");
    env.ok(&["export", "-o", target.to_str().unwrap(), &id]);
    export.assert_victim_untouched();
    assert_eq!(export.made(), ["x.tar"], "the export, and nothing else");
    let tar = fs::read(&target).unwrap();
    assert!(
        tar.windows(b"payload".len()).any(|w| w == b"payload"),
        "the export holds the rootfs"
    );

    let pid_file = Planted::new();
    let last: u32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for pid in (last + 1..last + 3000).map(|p| p % max) {
        pid_file.plant(&format!(".f.{pid}"));
    }
    let f = pid_file.dir.path().join("f");
    env.ok(&[
        "exec",
        "--pid-file",
        f.to_str().unwrap(),
        &id,
        "/payload",
        "id",
    ]);
    pid_file.assert_victim_untouched();
    assert_eq!(pid_file.made(), ["f"], "the pid file, and nothing else");
    let pid: u32 = fs::read_to_string(&f).unwrap().trim().parse().unwrap();
    assert!(pid > 0);
    env.ok(&["rm", "-f", &id]);
}

/// Exports container `id` to a file, killed if it runs past `limit`: the tar's bytes, or
/// `None` if it ran on.
fn export_within(env: &Env, id: &str, limit: std::time::Duration) -> Option<Vec<u8>> {
    let out = env.dir.path().join("race-export.tar");
    let _ = fs::remove_file(&out);
    let mut cmd = minibox();
    cmd.env("MINIBOX_ROOT", env.dir.path().join("state"))
        .env("MINIBOX_DATA_ROOT", env.data())
        .args(["export", id])
        .stdout(fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let start = std::time::Instant::now();
    loop {
        // A rootfs of a few MiB exports to a few MiB: far more is a device read on and on.
        if fs::metadata(&out).map_or(0, |m| m.len()) > 256 << 20 {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success() || status.code() == Some(1), "{status}");
            return Some(fs::read(&out).unwrap());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Each entry of a tar: path, type, size and data.
fn tar_entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>)> {
    use std::io::Read;
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let kind = e.header().entry_type();
            let mut data = vec![];
            e.read_to_end(&mut data).unwrap();
            (path, kind, data)
        })
        .collect()
}

/// Runs `attack` on ROOTFS (what container root does to its own files) while exporting again
/// and again, until `won` says an export shows the attack worked or `tries` exports passed.
/// (Before the fix, both races below won within 60 exports, most within 30; 300 are tried.)
fn export_race(
    slots: usize,
    tries: usize,
    prepare: impl Fn(&std::path::Path, usize),
    attack: impl Fn(&std::path::Path, usize) + Send + Sync + 'static,
    won: impl Fn(Option<&[u8]>) -> Option<String>,
) {
    let env = Env::new();
    let rootfs = Rootfs::new();
    for i in 0..slots {
        prepare(rootfs.path(), i);
    }
    let id = env
        .ok(&["run", "-d", &rootfs.arg(), "/payload", "sleep", "300"])
        .trim()
        .to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let root = rootfs.path().to_path_buf();
    let attacker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..slots {
                    attack(&root, i);
                }
            }
        })
    };
    let mut verdict = None;
    let start = std::time::Instant::now();
    for n in 0..tries {
        let tar = export_within(&env, &id, std::time::Duration::from_secs(60));
        verdict = won(tar.as_deref())
            .map(|how| format!("{how} (export {n}, after {:?})", start.elapsed()));
        if verdict.is_some() {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    attacker.join().unwrap();
    env.ok(&["rm", "-f", &id]);
    if let Some(how) = verdict {
        panic!("the attack won: {how}");
    }
}

/// Row 10: export checked a file's type, then opened it by name: a device node swapped in
/// between made it read a host device (or `/dev/zero` without end). Entries are now opened
/// `O_PATH` and typed on that descriptor; a device node is never opened.
#[test]
fn export_never_opens_a_device_node_swapped_for_a_file() {
    if !need_root() {
        return;
    }
    export_race(
        4,
        300,
        |root, i| {
            fs::write(root.join(format!("swap{i}")), "x").unwrap();
            nix::sys::stat::mknod(
                &root.join(format!(".dev{i}")),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o644),
                nix::sys::stat::makedev(1, 5),
            )
            .unwrap();
        },
        |root, i| {
            // /dev/zero's node and the file trade places, again and again.
            let dir = fs::File::open(root).unwrap();
            let (dev, file) = (format!(".dev{i}"), format!("swap{i}"));
            for _ in 0..64 {
                let _ = nix::fcntl::renameat2(
                    &dir,
                    dev.as_str(),
                    &dir,
                    file.as_str(),
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                );
            }
        },
        |tar| {
            let Some(tar) = tar else {
                return Some("export read /dev/zero without end".into());
            };
            for (path, kind, data) in tar_entries(tar) {
                if path.contains("swap") && kind == tar::EntryType::Regular && data != b"x" {
                    return Some(format!(
                        "{path} holds a device's bytes: {:?}",
                        &data[..8.min(data.len())]
                    ));
                }
            }
            None
        },
    );
}

/// Row 11: export wrote a header with the size it stat'ed, then copied to EOF: a file grown
/// meanwhile injected entries of its own (here a setuid-root `evil`). Exactly the header's
/// size is written now.
#[test]
fn a_file_growing_during_export_injects_no_entries() {
    if !need_root() {
        return;
    }
    // What the file grows by: the rest of its 512-byte block, then a tar entry of its own.
    let mut injection = vec![0u8; 511];
    let mut h = tar::Header::new_gnu();
    h.set_path("evil").unwrap();
    h.set_size(4);
    h.set_mode(0o4755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    injection.extend_from_slice(h.as_bytes());
    let mut data = b"evil".to_vec();
    data.resize(512, 0);
    injection.extend_from_slice(&data);
    let injection = std::sync::Arc::new(injection);
    export_race(
        4,
        300,
        |root, i| fs::write(root.join(format!("grow{i}")), "x").unwrap(),
        move |root, i| {
            use std::os::unix::fs::FileExt;
            if let Ok(f) = fs::OpenOptions::new()
                .write(true)
                .open(root.join(format!("grow{i}")))
            {
                for _ in 0..64 {
                    let _ = f.set_len(1);
                    let _ = f.write_all_at(&injection, 1);
                }
            }
        },
        |tar| {
            let tar = tar.expect("export finishes");
            let entries = tar_entries(tar);
            if let Some((path, ..)) = entries.iter().find(|(p, ..)| p.contains("evil")) {
                return Some(format!("the archive holds an injected {path}"));
            }
            None
        },
    );
}

/// Row 14: a 250-byte id was accepted by `create`, then `delete` failed (the rename it makes
/// was too long a name): the record could never be removed. The longest id `create` takes
/// now is created and deleted; one byte more is refused and leaves nothing.
#[test]
fn every_id_create_takes_can_be_deleted() {
    if !need_root() {
        return;
    }
    let rootfs = Rootfs::new();
    let state = tempfile::tempdir_in(test_tmp()).unwrap();
    let dir = tempfile::tempdir_in(test_tmp()).unwrap();
    // `spec` writes DIR/config.json, as runc's does.
    let made = run_minibox(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert!(made.status.success(), "{}", stderr(&made));
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    config["root"]["path"] = json!(rootfs.arg());
    config["process"]["args"] = json!(["/payload", "sleep", "30"]);
    fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    // The created container keeps create's stdio: a file, not a pipe that would never close.
    let err_file = dir.path().join("stderr");
    let mb = |args: &[&str]| {
        let status = minibox()
            .arg("--root")
            .arg(state.path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(&err_file).unwrap())
            .status()
            .unwrap();
        (status, fs::read_to_string(&err_file).unwrap())
    };
    let bundle = dir.path().to_str().unwrap();
    // The longest: created, then deleted. (Ids unique to this test: cgroups are named by them.)
    let prefix = format!("idlen{}", std::process::id());
    let mut created = None;
    for len in (200..=255).rev() {
        let id = format!("{prefix}{}", "i".repeat(len - prefix.len()));
        let (status, err) = mb(&["create", "--bundle", bundle, &id]);
        if status.success() {
            created = Some(id);
            break;
        }
        assert_eq!(status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("bytes long"), "{err}");
        assert!(
            fs::read_dir(state.path()).map_or(true, |d| d.count() == 0),
            "a refused id left {:?}",
            fs::read_dir(state.path()).unwrap().collect::<Vec<_>>()
        );
    }
    let id = created.expect("some id of 200 bytes or more is taken");
    let (status, err) = mb(&["delete", "--force", &id]);
    if !status.success() {
        // The attack won: at least stop the container's process.
        mb(&["kill", &id, "KILL"]);
        panic!("delete of a {}-byte id: {err}", id.len());
    }
    let left: Vec<_> = fs::read_dir(state.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(&prefix))
        .collect();
    assert!(left.is_empty(), "the record stayed: {left:?}");
}
