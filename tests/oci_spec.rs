//! The OCI model: `minibox spec` prints the config.json a run uses, and a bundle made from it
//! (`minibox run --bundle DIR ID`) is the same container, as seen from inside. Hostile and
//! broken configs are refused by name and leave nothing behind. Root only; see tests/common.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use common::bundle::*;
use common::*;

/// What the container says of itself: credentials, capabilities, hostname, cwd, environment.
const FACTS: [&[&str]; 5] = [&["id"], &["status"], &["hostname"], &["cwd"], &["env"]];

#[test]
fn a_bundle_made_by_minibox_spec_is_the_same_container_as_the_run() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let root = r.arg();
    let variants: [(&str, &[&str]); 2] = [
        (
            "root",
            &[
                "-u",
                "0",
                "--cap-drop",
                "CHOWN",
                "--cap-add",
                "NET_ADMIN",
                "--read-only",
                "--hostname",
                "ocibox",
                "-w",
                "/tmp",
                "-e",
                "GREETING=hello",
            ],
        ),
        (
            "user",
            &["-u", "mbxtester", "--hostname", "ocibox2", "-e", "A=1"],
        ),
    ];
    for (variant, flags) in variants {
        let mut spec_args = flags.to_vec();
        spec_args.extend_from_slice(&[&root, "/payload", "id"]);
        let config = spec(&spec_args);
        for fact in FACTS {
            let from_run = payload_ok(&r, flags, fact);
            let mut args = vec!["/payload"];
            args.extend_from_slice(fact);
            let b = bundle(&with_args(&config, &args));
            let out = run_bundle(b.path(), &format!("oci-{variant}-{}", fact[0]));
            assert_eq!(
                out.status.code(),
                Some(0),
                "{variant} {fact:?}: {}",
                stderr(&out)
            );
            assert_eq!(stdout(&out), from_run, "{variant}: {fact:?} differs");
        }
    }
    // The first variant asked for a read-only root: the bundle's is too.
    let mut spec_args = variants[0].1.to_vec();
    spec_args.extend_from_slice(&[&root, "/payload", "write", "/probe", "x"]);
    let b = bundle(&spec(&spec_args));
    let out = run_bundle(b.path(), "oci-readonly");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("EROFS"), "{}", stderr(&out));
    assert!(!r.path().join("probe").exists());
    // The same config without `readonly` writes, and the file lands in the rootfs.
    let mut writable = spec(&spec_args);
    writable["root"]["readonly"] = json!(false);
    write_config(b.path(), &writable);
    let out = run_bundle(b.path(), "oci-writable");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(r.path().join("probe")).unwrap(), "x");
}

#[test]
fn the_hostname_minibox_spec_chose_is_the_bundles() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let config = spec(&[&r.arg(), "/payload", "hostname"]);
    let chosen = config["hostname"].as_str().expect("a hostname").to_string();
    assert_eq!(chosen.len(), 12, "{chosen}");
    let b = bundle(&config);
    let out = run_bundle(b.path(), "oci-hostname");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), chosen);
}

#[test]
fn the_default_config_runs_the_bundles_own_rootfs_as_nobody() {
    if !need_root() {
        return;
    }
    let config = spec(&[]);
    assert_eq!(config["root"]["path"], json!("rootfs"));
    assert_eq!(config["process"]["args"], json!(["sh"]));
    assert_eq!(config["process"]["terminal"], json!(false));
    let b = bundle(&with_args(&config, &["/payload", "id"]));
    populate(&b.path().join("rootfs"));
    let out = run_bundle(b.path(), "oci-default");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        "uid=65534 euid=65534 suid=65534 gid=65534 egid=65534 sgid=65534 groups="
    );
    let b2 = bundle(&with_args(&config, &["/payload", "status"]));
    populate(&b2.path().join("rootfs"));
    let status = stdout(&run_bundle(b2.path(), "oci-default-caps"));
    for set in [
        "CapPrm:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
    ] {
        assert!(status.contains(set), "{set} not in {status}");
    }
}

/// Field 5 (mount point), field 6 (per-mount options) and the type after " - ".
fn mountinfo(text: &str) -> Vec<(String, Vec<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let typ = right.split(' ').next()?;
            Some((
                f.get(4)?.to_string(),
                f.get(5)?.split(',').map(String::from).collect(),
                typ.to_string(),
            ))
        })
        .collect()
}

#[test]
fn the_mounts_minibox_spec_prints_are_the_containers() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let config = spec(&[&r.arg(), "/payload", "cat", "/proc/self/mountinfo"]);
    let b = bundle(&config);
    let out = run_bundle(b.path(), "oci-mounts");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = mountinfo(&stdout(&out));
    let mounts = config["mounts"].as_array().expect("mounts");
    assert!(!mounts.is_empty());
    for m in mounts {
        let dest = m["destination"].as_str().unwrap();
        let (_, flags, typ) = table
            .iter()
            .rev()
            .find(|(point, _, _)| point == dest)
            .unwrap_or_else(|| panic!("{dest} is not mounted in the container"));
        assert_eq!(typ, m["type"].as_str().unwrap(), "{dest}");
        let said: Vec<&str> = m["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        for flag in ["nosuid", "nodev", "noexec"] {
            assert_eq!(
                said.contains(&flag),
                flags.iter().any(|f| f == flag),
                "{dest}: {flag} in config {said:?}, in the kernel {flags:?}"
            );
        }
        let ro = flags.iter().any(|f| f == "ro");
        assert_eq!(said.contains(&"ro"), ro, "{dest}: ro; kernel {flags:?}");
    }
    // The read-only paths are read-only mounts.
    for path in config["linux"]["readonlyPaths"].as_array().unwrap() {
        let path = path.as_str().unwrap();
        if let Some((_, flags, _)) = table.iter().rev().find(|(p, _, _)| p == path) {
            assert!(flags.iter().any(|f| f == "ro"), "{path}: {flags:?}");
        }
    }
}

/// A state root of its own, to see that a refused run leaves nothing in it.
struct State(tempfile::TempDir);

impl State {
    fn new() -> State {
        State(tempfile::tempdir().expect("tempdir"))
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--root", self.0.path().to_str().unwrap(), "run"];
        all.extend_from_slice(args);
        run_minibox(&all)
    }

    /// The containers recorded: one directory each.
    fn containers(&self) -> Vec<PathBuf> {
        fs::read_dir(self.0.path())
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs the bundle, expects minibox's own failure (125) with one line naming `what`, and
/// nothing recorded.
fn refused(state: &State, dir: &Path, id: &str, what: &str) {
    let out = state.run(&["--bundle", dir.to_str().unwrap(), id]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{id}: {err}");
    assert!(err.contains(what), "{id}: {err:?} lacks {what:?}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{id}: not one line: {err}"
    );
    assert!(
        state.containers().is_empty(),
        "{id} left {:?}",
        state.containers()
    );
}

#[test]
fn root_paths_that_escape_the_bundle_are_refused() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let outer = tempfile::tempdir().unwrap();
    let dir = outer.path().join("bundle");
    populate(&dir.join("rootfs"));
    populate(&outer.path().join("beside"));
    std::os::unix::fs::symlink("/", dir.join("to-host")).unwrap();
    std::os::unix::fs::symlink("../beside", dir.join("to-beside")).unwrap();
    let base = with_args(&spec(&[&r.arg(), "/payload", "id"]), &["/payload", "id"]);
    let state = State::new();
    let deep = "../".repeat(40);
    for (path, what) in [
        (deep.as_str(), "is the host's own root /"),
        ("to-host", "root.path to-host is the host's own root /"),
        ("../beside", "root.path ../beside resolves to"),
        ("to-beside", "outside the bundle"),
        ("rootfs/../../beside", "outside the bundle"),
        ("missing", "root.path missing: cannot open"),
    ] {
        let mut config = base.clone();
        config["root"]["path"] = json!(path);
        write_config(&dir, &config);
        refused(&state, &dir, "oci-hostile", what);
    }
    // The same bundle with `..` that stays inside runs.
    let mut config = base.clone();
    config["root"]["path"] = json!("./rootfs/../rootfs");
    write_config(&dir, &config);
    let out = state.run(&["--rm", "--bundle", dir.to_str().unwrap(), "oci-inside"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("uid=65534 "), "{}", stdout(&out));
}

#[test]
fn broken_and_unsupported_configs_are_named_and_leave_nothing() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let good = spec(&[&r.arg(), "/payload", "id"]);
    let state = State::new();
    let b = bundle(&good);
    fs::write(
        b.path().join("config.json"),
        "{\n  \"ociVersion\": \"1.1.0\",\n  \"process\": {\n    \"args\": [\"/payload\",]\n  }\n}\n",
    )
    .unwrap();
    refused(&state, b.path(), "oci-json", "line 4 column");
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/ociVersion",
            json!("2.0.0"),
            "ociVersion \"2.0.0\" is not supported",
        ),
        (
            "/linux/seccomp",
            json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            "defaultAction: SCMP_ACT_NOTIFY needs a seccomp agent",
        ),
        (
            "/process/rlimits",
            json!([{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 20}]),
            "process.rlimits[0] RLIMIT_NOFILE: soft 20 is above hard 10",
        ),
        (
            "/linux/uidMappings",
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
            "linux.uidMappings/gidMappings need a new user namespace",
        ),
        (
            "/process/user/uid",
            json!(u32::MAX),
            "process.user.uid 4294967295",
        ),
        ("/process/args", json!([]), "process.args is empty"),
    ];
    for (pointer, value, what) in cases {
        let mut config = good.clone();
        set(&mut config, pointer, value);
        write_config(b.path(), &config);
        refused(&state, b.path(), "oci-bad", what);
    }
    write_config(b.path(), &good);
    let bad_forms: [(&[&str], &str); 3] = [
        (&["oci-x", "/payload", "id"], "give only the container's ID"),
        (&["a b"], "invalid container ID \"a b\""),
        (&["-u", "0", "oci-y"], "cannot be used with"),
    ];
    for (args, what) in bad_forms {
        let mut all = vec!["--bundle", b.path().to_str().unwrap()];
        all.extend_from_slice(args);
        let out = state.run(&all);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(what), "{args:?}: {}", stderr(&out));
        assert!(state.containers().is_empty());
    }
    // And the good config still runs: nothing above was the config's own fault.
    let out = state.run(&["--rm", "--bundle", b.path().to_str().unwrap(), "oci-good"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn minibox_run_rootfs_cmd_is_unchanged() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // ROOTFS CMD, and CMD arguments that look like flags, still mean what they did.
    let out = payload_ok(&r, &["--hostname", "plain"], &["hostname"]);
    assert_eq!(out.trim(), "plain");
    let out = run_payload(&r, &[], &["exit", "--bundle"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        !stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
}
