//! Images: `load` (docker save, OCI layout), `pull` from a local registry, `import`, `images`,
//! `rmi`, `tag`, `export`, and `run IMAGE` — each checked by running the container. Every
//! image is built here, entry by entry; the hostile layers too.

mod common;
#[path = "common/images.rs"]
mod images_common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use images_common::*;
use serde_json::json;

fn payload_image(env: &Env, tag: &str, config: serde_json::Value) {
    let out = env.load("img.tar", &docker_save(&[payload_layer()], &config, tag));
    assert!(out.contains(&format!("Loaded image: {tag}")), "{out}");
}

#[test]
fn the_seed_image_loads_and_serves_by_name() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let out = env.load(
        "hello.tar",
        &docker_save(&[hello_layer()], &hello_config(), "hello:1"),
    );
    assert!(out.contains("Loaded image: hello:1"), "{out}");
    let list = env.ok(&["images"]);
    assert!(list.starts_with("REPOSITORY"), "{list}");
    assert!(list.contains("hello") && list.contains(" 1 "), "{list}");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let id = env
        .ok(&["run", "-d", "-p", &publish, "hello:1"])
        .trim()
        .to_string();
    let answer = http_get(port);
    assert!(answer.contains("Hello World"), "{answer}");
    let inspect: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", &id])).unwrap();
    assert_eq!(inspect["Image"], "hello:1");
    assert_eq!(inspect["ExposedPorts"], json!(["8080/tcp"]));
    assert_eq!(inspect["Command"], json!(["/main"]));
    assert_eq!(inspect["Identity"]["Uid"], json!(65534), "{inspect}");
    assert!(env.ok(&["ps"]).contains("hello:1"));
    env.ok(&["stop", &id]);
    env.ok(&["rm", &id]);
}

#[test]
fn an_oci_layout_loads_as_a_directory_and_as_a_tar() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let layout = env.dir.path().join("layout");
    oci_layout(
        &layout,
        &[payload_layer()],
        &json!({"Cmd": ["/payload", "id"]}),
        "oci/pay:2",
    );
    let out = env.ok(&["load", "-i", layout.to_str().unwrap()]);
    assert!(out.contains("Loaded image: oci/pay:2"), "{out}");
    let id = env.ok(&["run", "--rm", "oci/pay:2"]);
    assert!(id.contains("uid=65534"), "{id}");
    assert!(layer_dirs(&env.data()).is_empty(), "--rm left a layer");
    // The same as a tar on stdin: the layers are already there, nothing new is unpacked.
    let before = env.layers();
    let file = env.dir.path().join("layout.tar");
    fs::write(&file, tar_dir(&layout)).unwrap();
    let out = Command::new(minibox_bin())
        .env("MINIBOX_ROOT", env.dir.path().join("state"))
        .env("MINIBOX_DATA_ROOT", env.data())
        .arg("load")
        .stdin(fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.layers(), before);
    assert!(env.scratch().is_empty(), "{:?}", env.scratch());
}

#[test]
fn the_image_config_applies_and_flags_override_it() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    payload_image(
        &env,
        "cfg:1",
        json!({
            "Entrypoint": ["/payload"], "Cmd": ["env"], "Env": ["A=1", "PATH=/img"],
            "User": "mbxtester", "WorkingDir": "/srv", "StopSignal": "SIGINT"
        }),
    );
    let env_out = env.ok(&["run", "--rm", "cfg:1"]);
    assert!(
        env_out.contains("A=1\n") && env_out.contains("PATH=/img\n"),
        "{env_out}"
    );
    assert!(env_out.contains("HOME=/home/mbxtester"), "{env_out}");
    let env_out = env.ok(&["run", "--rm", "-e", "A=2", "cfg:1"]);
    assert!(
        env_out.contains("A=2\n") && !env_out.contains("A=1\n"),
        "{env_out}"
    );
    assert_eq!(env.ok(&["run", "--rm", "cfg:1", "cwd"]).trim(), "/srv");
    assert_eq!(
        env.ok(&["run", "--rm", "-w", "/tmp", "cfg:1", "cwd"])
            .trim(),
        "/tmp"
    );
    assert!(env.ok(&["run", "--rm", "cfg:1", "id"]).contains("uid=1000"));
    assert!(env
        .ok(&["run", "--rm", "-u", "0", "cfg:1", "id"])
        .contains("uid=0"));
    let out = env.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "/payload",
        "cfg:1",
        "hostname",
    ]);
    assert!(!out.is_empty());
    // --entrypoint alone drops the image's Cmd too (docker's rule).
    let err = env.fails(&["run", "--rm", "--entrypoint", "", "cfg:1"]);
    assert!(err.contains("no Entrypoint or Cmd"), "{err}");
    // StopSignal: the trap prints the signal minibox stop sends.
    let id = env
        .ok(&["run", "-d", "cfg:1", "trap", "1"])
        .trim()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(300));
    env.ok(&["stop", "-t", "5", &id]);
    let logs = env.ok(&["logs", &id]);
    assert!(logs.contains("got INT"), "{logs}");
    let spec = env.ok(&["spec", "cfg:1"]);
    assert!(spec.contains("org.minibox.image.layers"), "{spec}");
    assert!(spec.contains("\"/payload\""), "{spec}");
}

#[test]
fn whiteouts_and_opaque_dirs_hide_the_layers_below() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let bottom = layer(&[
        E::File("gone", b"old".to_vec(), 0o644),
        E::File("keep", b"kept".to_vec(), 0o644),
        E::Dir("opq/", 0o755),
        E::File("opq/old", b"old".to_vec(), 0o644),
        E::Dir("dir/", 0o755),
        E::File("dir/a", b"a".to_vec(), 0o644),
    ]);
    let top = layer(&[
        E::File(".wh.gone", vec![], 0o644),
        E::File("opq/.wh..wh..opq", vec![], 0o644),
        E::File("opq/new", b"new".to_vec(), 0o644),
        E::File("dir/.wh.a", vec![], 0o644),
        E::File("dir/b", b"b".to_vec(), 0o644),
    ]);
    env.load(
        "wh.tar",
        &docker_save(
            &[payload_layer(), bottom, top],
            &json!({"Entrypoint": ["/payload"]}),
            "wh:1",
        ),
    );
    let root = env.ok(&["run", "--rm", "wh:1", "ls", "/"]);
    assert!(!root.lines().any(|l| l == "gone"), "{root}");
    assert!(root.lines().any(|l| l == "keep"), "{root}");
    assert_eq!(env.ok(&["run", "--rm", "wh:1", "ls", "/opq"]), "new\n");
    assert_eq!(env.ok(&["run", "--rm", "wh:1", "ls", "/dir"]), "b\n");
    // The top layer holds overlayfs's own whiteout and opaque marker.
    let layers = env.layers();
    let top_dir = layers
        .iter()
        .find(|l| l.join("opq/new").exists())
        .expect("the top layer");
    let md = fs::symlink_metadata(top_dir.join("gone")).unwrap();
    assert!(md.file_type().is_char_device() && md.rdev() == 0);
    let opaque = xattr(&top_dir.join("opq"), "trusted.overlay.opaque");
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    // export shows the merged view, deletions applied.
    let id = env
        .ok(&["run", "-d", "wh:1", "sleep", "0"])
        .trim()
        .to_string();
    let tarball = env.dir.path().join("out.tar");
    std::thread::sleep(std::time::Duration::from_millis(500));
    env.ok(&["export", &id, "-o", tarball.to_str().unwrap()]);
    let names = tar_names(&fs::read(&tarball).unwrap());
    assert!(names.contains(&"keep".to_string()), "{names:?}");
    assert!(names.contains(&"opq/new".to_string()), "{names:?}");
    for hidden in ["gone", "opq/old", "dir/a"] {
        assert!(
            !names.contains(&hidden.to_string()),
            "{hidden} in {names:?}"
        );
    }
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 64];
    // SAFETY: valid C strings and a writable buffer of its length.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (rc >= 0).then(|| {
        buf.truncate(rc as usize);
        buf
    })
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            e.path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_string()
        })
        .collect()
}

#[test]
fn containers_of_one_image_keep_their_writes_apart() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    payload_image(&env, "apart:1", json!({"Entrypoint": ["/payload"]}));
    let a = env.ok(&[
        "run",
        "-u",
        "0",
        "apart:1",
        "write",
        "/etc/marker",
        "from-a",
    ]);
    assert_eq!(a, "");
    let err = env.mb(&["run", "--rm", "apart:1", "cat", "/etc/marker"]);
    assert_ne!(err.status.code(), Some(0), "B saw A's write");
    for l in env.layers() {
        assert!(
            !l.join("etc/marker").exists(),
            "a write reached the image's layer"
        );
    }
    // rmi is refused while A's record uses the image; allowed once it is gone.
    let e = env.fails(&["rmi", "apart:1"]);
    assert!(e.contains("use it"), "{e}");
    for id in env.ok(&["ps", "-a", "-q"]).lines() {
        env.ok(&["rm", id]);
    }
    let out = env.ok(&["rmi", "apart:1"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert!(env.layers().is_empty(), "{:?}", env.layers());
    assert!(!env.ok(&["images"]).contains("apart"));
}

#[test]
fn tag_import_and_export_round_trip() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    payload_image(&env, "round:1", json!({"Entrypoint": ["/payload"]}));
    env.ok(&["tag", "round:1", "round:2"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["image", "inspect", "round:2"])).unwrap();
    assert_eq!(inspect["RepoTags"], json!(["round:1", "round:2"]));
    let id = env
        .ok(&["run", "-u", "0", "round:2", "write", "/made-here", "hi"])
        .trim()
        .to_string();
    assert_eq!(id, "");
    let cid = env.ok(&["ps", "-a", "-q"]).trim().to_string();
    let tarball = env.dir.path().join("export.tar");
    env.ok(&["export", &cid, "-o", tarball.to_str().unwrap()]);
    let names = tar_names(&fs::read(&tarball).unwrap());
    assert!(names.contains(&"made-here".to_string()) && names.contains(&"payload".to_string()));
    env.ok(&["import", tarball.to_str().unwrap(), "imported:1"]);
    let out = env.ok(&["run", "--rm", "imported:1", "/payload", "cat", "/made-here"]);
    assert_eq!(out, "hi");
    // Untagging one of two tags keeps the image.
    assert!(env.ok(&["rmi", "round:1"]).contains("Untagged: round:1"));
    assert!(env.ok(&["images"]).contains("round"));
    let e = env.fails(&["import", tarball.to_str().unwrap(), "Bad Name"]);
    assert!(e.contains("invalid image reference"), "{e}");
}

/// The hostile layers: each refused with its reason, leaving no layer, no scratch, and
/// nothing written outside the store.
#[test]
fn hostile_layers_are_refused_and_write_nothing_outside() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let victim = env.dir.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("passwd"), "host's").unwrap();
    let v = Box::leak(victim.to_string_lossy().into_owned().into_boxed_str()) as &'static str;
    let cases: Vec<(Vec<E>, &str)> = vec![
        (
            vec![E::RawFile(b"../escape".to_vec(), b"x".to_vec())],
            "contains '..'",
        ),
        (
            vec![E::RawFile(b"a/../../escape".to_vec(), b"x".to_vec())],
            "contains '..'",
        ),
        (
            vec![E::RawFile(format!("{v}/abs").into_bytes(), b"x".to_vec())],
            "absolute path",
        ),
        (
            vec![
                E::Symlink("link", v),
                E::File("link/through", b"x".to_vec(), 0o644),
            ],
            "symbolic link",
        ),
        (
            vec![E::Symlink("link", v), E::Dir("link/sub/", 0o755)],
            "symbolic link",
        ),
        (vec![E::Hardlink("h", "../victim/passwd")], "contains '..'"),
        (vec![E::Hardlink("h", "/etc/passwd")], "absolute path"),
        (
            vec![E::Symlink("s", v), E::Hardlink("h", "s/passwd")],
            "symbolic link",
        ),
        (
            vec![E::Hardlink("h", "missing")],
            "not a file of this layer",
        ),
        (
            vec![E::File(".wh.", vec![], 0o644)],
            "whiteout names no file",
        ),
    ];
    for (i, (entries, why)) in cases.into_iter().enumerate() {
        let tar = docker_save(&[layer(&entries)], &json!({}), &format!("bad:{i}"));
        let file = env.dir.path().join(format!("bad{i}.tar"));
        fs::write(&file, tar).unwrap();
        let err = env.fails(&["load", "-i", file.to_str().unwrap()]);
        assert!(err.contains(why), "case {i}: {why:?} not in {err:?}");
        assert_eq!(err.lines().count(), 1, "case {i}: {err}");
        assert!(env.layers().is_empty(), "case {i}: a layer was kept");
        assert!(
            env.scratch().is_empty(),
            "case {i}: scratch left: {:?}",
            env.scratch()
        );
    }
    let left: Vec<_> = fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("passwd")]);
    assert_eq!(fs::read_to_string(victim.join("passwd")).unwrap(), "host's");
    for stray in ["escape", "abs"] {
        assert!(!env.dir.path().join(stray).exists());
        assert!(!env.data().join(stray).exists());
    }
    assert!(!Path::new("/escape").exists());
}

/// What an image may say and gets exactly: owners, setuid bits, device nodes, FIFOs, a
/// symlink pointing anywhere (only data), a later entry replacing an earlier one.
#[test]
fn layers_are_applied_exactly_as_the_image_says() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let l = layer(&[
        E::Dir("./", 0o755),
        E::Owned("suid", b"x".to_vec(), 0o4755, 1000, 29),
        E::Owned("plain", b"x".to_vec(), 0o644, 0, 0),
        E::Char("null", 1, 3, 0o666),
        E::Fifo("fifo"),
        E::Symlink("abs-link", "/etc/shadow"),
        E::File("twice", b"first".to_vec(), 0o644),
        E::File("twice", b"second".to_vec(), 0o600),
        E::File("orig", b"o".to_vec(), 0o644),
        E::Hardlink("hard", "orig"),
        E::File("deep/er/file", b"d".to_vec(), 0o644),
    ]);
    env.load("exact.tar", &docker_save(&[l], &json!({}), "exact:1"));
    let dir = &env.layers()[0];
    let md = |p: &str| fs::symlink_metadata(dir.join(p)).unwrap();
    assert_eq!(
        (
            md("suid").mode() & 0o7777,
            md("suid").uid(),
            md("suid").gid()
        ),
        (0o4755, 1000, 29)
    );
    assert_eq!(md("plain").mode() & 0o7777, 0o644);
    assert!(md("null").file_type().is_char_device());
    assert_eq!(
        (md("null").rdev(), md("null").mode() & 0o777),
        (libc::makedev(1, 3), 0o666)
    );
    assert!(md("fifo").file_type().is_fifo());
    assert_eq!(
        fs::read_link(dir.join("abs-link")).unwrap(),
        Path::new("/etc/shadow")
    );
    assert_eq!(fs::read_to_string(dir.join("twice")).unwrap(), "second");
    assert_eq!(md("twice").mode() & 0o777, 0o600);
    assert_eq!(md("hard").ino(), md("orig").ino());
    assert_eq!(md("deep/er").mode() & 0o777, 0o755);
    assert_eq!(md("suid").mtime(), 1_700_000_000);
    // The store is root's alone.
    assert_eq!(
        fs::metadata(env.data()).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

/// A registry of our own on 127.0.0.1 (Debian's docker-registry), stopped when dropped.
struct Registry {
    child: Child,
    port: u16,
    storage: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let storage = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = storage.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .args(["serve", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed().as_secs() < 20, "the registry did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Registry {
            child,
            port,
            storage,
        }
    }

    fn push(&self, archive: &Path, name: &str) {
        let out = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                &format!("docker-archive:{}", archive.display()),
                &format!("docker://127.0.0.1:{}/{name}", self.port),
            ])
            .output()
            .expect("skopeo (apt-get install skopeo)");
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pulled_from_a_local_registry_and_run() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let registry = Registry::start();
    let archive = env.dir.path().join("hello.tar");
    fs::write(
        &archive,
        docker_save(&[hello_layer()], &hello_config(), "hello:1"),
    )
    .unwrap();
    registry.push(&archive, "hello:1");
    let reference = format!("127.0.0.1:{}/hello:1", registry.port);
    let out = env.ok(&["pull", "--insecure", &reference]);
    assert!(out.contains("sha256:"), "{out}");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    let id = env
        .ok(&["run", "-d", "-p", &publish, &reference])
        .trim()
        .to_string();
    assert!(http_get(port).contains("Hello World"));
    env.ok(&["rm", "-f", &id]);
    // Pulled again: nothing new to unpack.
    let before = env.layers();
    env.ok(&["pull", "--insecure", &reference]);
    assert_eq!(env.layers(), before);
}

#[test]
fn a_layer_whose_digest_does_not_match_fails_the_pull_and_stores_nothing() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let registry = Registry::start();
    let archive = env.dir.path().join("p.tar");
    fs::write(&archive, docker_save(&[payload_layer()], &json!({}), "p:1")).unwrap();
    registry.push(&archive, "p:1");
    // Swap the stored layer's bytes for another tar: the registry serves it as it is.
    let blobs = registry
        .storage
        .path()
        .join("data/docker/registry/v2/blobs/sha256");
    let mut tampered = 0;
    for prefix in fs::read_dir(&blobs).unwrap() {
        for blob in fs::read_dir(prefix.unwrap().path()).unwrap() {
            let data = blob.unwrap().path().join("data");
            if fs::metadata(&data).unwrap().len() > 100_000 {
                let mut bytes = fs::read(&data).unwrap();
                let n = bytes.len();
                bytes[n / 2] ^= 0xff;
                fs::write(&data, bytes).unwrap();
                tampered += 1;
            }
        }
    }
    assert_eq!(tampered, 1, "one layer blob");
    let err = env.fails(&[
        "pull",
        "--insecure",
        &format!("127.0.0.1:{}/p:1", registry.port),
    ]);
    assert!(err.contains("digest") || err.contains("corrupt"), "{err}");
    assert!(env.layers().is_empty(), "{:?}", env.layers());
    assert!(env.scratch().is_empty(), "{:?}", env.scratch());
    assert_eq!(env.ok(&["images"]).lines().count(), 1, "only the header");
}

/// A load cut short (a truncated archive, a killed process) leaves no layer that a later run
/// would use; what a dead load left in the scratch directory is swept by the next one.
#[test]
fn an_interrupted_load_leaves_nothing_used_later() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let full = docker_save(&[payload_layer()], &json!({}), "cut:1");
    // Cut inside the layer: its data is there in part only.
    let cut = &full[..full.len() / 2];
    let file = env.dir.path().join("cut.tar");
    fs::write(&file, cut).unwrap();
    let err = env.fails(&["load", "-i", file.to_str().unwrap()]);
    assert!(!err.is_empty());
    assert!(env.layers().is_empty(), "{:?}", env.layers());
    assert!(env.scratch().is_empty(), "{:?}", env.scratch());
    assert_eq!(env.ok(&["images"]).lines().count(), 1);
    // A killed load's half-made layer (its pid gone) is removed by the next command.
    let stale = env.data().join("tmp/999999999-layer-0123456789abcdef");
    fs::create_dir_all(stale.join("usr/bin")).unwrap();
    env.load("ok.tar", &full);
    assert!(!stale.exists(), "a dead load's scratch was kept");
    assert_eq!(env.layers().len(), 1);
}

/// A device node an image ships is made as it says, yet opens nothing: the container's root
/// is mounted nodev.
#[test]
fn an_image_device_node_opens_nothing_in_the_container() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let nodes = layer(&[E::Char("mem-null", 1, 3, 0o666)]);
    env.load(
        "dev.tar",
        &docker_save(
            &[payload_layer(), nodes],
            &json!({"Entrypoint": ["/payload"]}),
            "dev:1",
        ),
    );
    let stat = env.ok(&["run", "--rm", "-u", "0", "dev:1", "stat", "/mem-null"]);
    assert!(
        stat.contains("type=c") && stat.contains("rdev=1:3"),
        "{stat}"
    );
    let out = env.mb(&["run", "--rm", "-u", "0", "dev:1", "cat", "/mem-null"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
}

/// A registry of the test's own that wants a Bearer token (as Docker Hub does) and serves an
/// index of two platforms: pull gets the token, picks linux/amd64, and checks every digest.
#[test]
fn pull_takes_a_bearer_token_and_picks_linux_amd64_from_an_index() {
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    if !need_root() {
        return;
    }
    let env = Env::new();
    let layers = [payload_layer()];
    let config = config_for(&layers, &json!({"Cmd": ["/payload", "id"]}));
    let put = |m: &mut HashMap<String, (String, Vec<u8>)>, media: &str, bytes: Vec<u8>| {
        let d = sha256(&bytes);
        m.insert(d.clone(), (media.to_string(), bytes));
        d
    };
    let mut blobs = HashMap::new();
    let cfg = put(&mut blobs, "application/octet-stream", config.clone());
    let layer_digest = put(&mut blobs, "application/octet-stream", layers[0].clone());
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layers[0].len()}],
    }))
    .unwrap();
    let m = put(
        &mut blobs,
        "application/vnd.oci.image.manifest.v1+json",
        manifest.clone(),
    );
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(b"other"), "size": 5,
             "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": manifest.len(),
             "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    }))
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tokens = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (t, r, halt) = (tokens.clone(), refused.clone(), stop.clone());
    listener.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while start.elapsed().as_secs() < 30 && !halt.load(Ordering::SeqCst) {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(5));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let mut auth = String::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h
                    .strip_prefix("authorization: ")
                    .or_else(|| h.strip_prefix("Authorization: "))
                {
                    auth = v.trim().to_string();
                }
            }
            let mut out = stream;
            let reply =
                |out: &mut std::net::TcpStream, status: &str, headers: &str, body: &[u8]| {
                    let _ = write!(
                    out,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
                    body.len()
                );
                    let _ = out.write_all(body);
                };
            if path.starts_with("/token?") {
                assert!(
                    path.contains("scope=repository%3Aauth%2Fimg%3Apull")
                        || path.contains("scope=repository:auth/img:pull"),
                    "{path}"
                );
                t.fetch_add(1, Ordering::SeqCst);
                reply(
                    &mut out,
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    br#"{"token":"secret"}"#,
                );
                continue;
            }
            if auth != "Bearer secret" {
                r.fetch_add(1, Ordering::SeqCst);
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"reg\",scope=\"repository:auth/img:pull\"\r\n"
                );
                reply(&mut out, "401 Unauthorized", &challenge, b"");
                continue;
            }
            let (media, body) = if path == "/v2/auth/img/manifests/1" {
                (
                    "application/vnd.oci.image.index.v1+json".to_string(),
                    index.clone(),
                )
            } else if let Some(d) = path
                .strip_prefix("/v2/auth/img/manifests/")
                .or_else(|| path.strip_prefix("/v2/auth/img/blobs/"))
            {
                match blobs.get(d) {
                    Some((media, bytes)) => (media.clone(), bytes.clone()),
                    None => {
                        reply(&mut out, "404 Not Found", "", b"");
                        continue;
                    }
                }
            } else {
                reply(&mut out, "404 Not Found", "", b"");
                continue;
            };
            reply(
                &mut out,
                "200 OK",
                &format!("Content-Type: {media}\r\n"),
                &body,
            );
        }
    });
    let reference = format!("127.0.0.1:{port}/auth/img:1");
    let out = env.ok(&["pull", "--insecure", &reference]);
    assert!(out.contains(&sha256(&config)), "{out}");
    assert!(tokens.load(Ordering::SeqCst) >= 1, "no token was asked for");
    assert!(
        refused.load(Ordering::SeqCst) >= 1,
        "the registry never asked for a token"
    );
    let id = env.ok(&["run", "--rm", &reference]);
    assert!(id.contains("uid=65534"), "{id}");
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
}

/// More layers than `/proc/self/fd/N` paths fit in one page of overlay options: the container
/// still starts, its lower layers named by short links in its own layer directory.
#[test]
fn an_image_of_many_layers_still_mounts() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let names: Vec<&'static str> = (0..240)
        .map(|i| Box::leak(format!("f{i:03}").into_boxed_str()) as &'static str)
        .collect();
    let mut layers = vec![payload_layer()];
    for n in &names {
        layers.push(layer(&[E::File(n, n.as_bytes().to_vec(), 0o644)]));
    }
    env.load(
        "many.tar",
        &docker_save(&layers, &json!({"Entrypoint": ["/payload"]}), "many:1"),
    );
    let root = env.ok(&["run", "--rm", "many:1", "ls", "/"]);
    let found = root.lines().filter(|l| l.starts_with('f')).count();
    assert_eq!(found, 240, "{root}");
    assert_eq!(env.ok(&["run", "--rm", "many:1", "cat", "/f239"]), "f239");
}

/// docker 25's `docker save`: manifest.json naming `blobs/sha256/…` files of an OCI layout,
/// here with gzip layers; a blob that does not hash to its name is refused.
#[test]
fn a_docker_25_archive_loads_and_its_blob_names_are_checked() {
    if !need_root() {
        return;
    }
    let env = Env::new();
    let dir = env.dir.path().join("d25");
    oci_layout(
        &dir,
        &[payload_layer()],
        &json!({"Cmd": ["/payload", "id"]}),
        "ignored",
    );
    let read = |p: &str| {
        serde_json::from_slice::<serde_json::Value>(&fs::read(dir.join(p)).unwrap()).unwrap()
    };
    let index = read("index.json");
    let m = index["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let manifest = read(&format!("blobs/sha256/{m}"));
    let cfg = manifest["config"]["digest"].as_str().unwrap()[7..].to_string();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap()[7..].to_string();
    let entry = json!([{
        "Config": format!("blobs/sha256/{cfg}"),
        "RepoTags": ["new:25"],
        "Layers": [format!("blobs/sha256/{layer}")],
    }]);
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&entry).unwrap(),
    )
    .unwrap();
    let out = env.load("d25.tar", &tar_dir(&dir));
    assert!(out.contains("Loaded image: new:25"), "{out}");
    assert!(env.ok(&["run", "--rm", "new:25"]).contains("uid=65534"));
    // The same archive with the layer's bytes changed: refused, nothing new kept.
    env.ok(&["rmi", "new:25"]);
    let path = dir.join(format!("blobs/sha256/{layer}"));
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x55;
    fs::write(&path, bytes).unwrap();
    let file = env.dir.path().join("bad25.tar");
    fs::write(&file, tar_dir(&dir)).unwrap();
    let err = env.fails(&["load", "-i", file.to_str().unwrap()]);
    assert!(err.contains("digest") || err.contains("corrupt"), "{err}");
    assert!(env.layers().is_empty() && env.scratch().is_empty());
}
