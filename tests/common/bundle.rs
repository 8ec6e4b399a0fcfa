//! OCI bundles for tests: `minibox spec` output as JSON, a bundle directory holding a
//! config.json, and running it with `minibox run --rm --bundle DIR ID`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{json, Value};

use super::{payload_bin, run_minibox, stderr, stdout, GROUP, PASSWD};

/// `minibox spec ARGS...` as JSON (with no ARGS, the config.json `minibox spec --bundle DIR`
/// writes).
pub fn spec(args: &[&str]) -> Value {
    if args.is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let out = run_minibox(&["spec", "--bundle", dir.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "minibox spec: {}", stderr(&out));
        let text = fs::read_to_string(dir.path().join("config.json")).unwrap();
        return serde_json::from_str(&text).expect("minibox spec writes JSON");
    }
    let mut all = vec!["spec"];
    all.extend_from_slice(args);
    let out = run_minibox(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "minibox spec {args:?}: {}",
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out)).expect("minibox spec prints JSON")
}

/// A bundle directory holding `config`.
pub fn bundle(config: &Value) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("minibox-bundle-")
        .tempdir()
        .expect("tempdir");
    write_config(dir.path(), config);
    dir
}

pub fn write_config(dir: &Path, config: &Value) {
    let text = serde_json::to_string_pretty(config).unwrap();
    fs::write(dir.join("config.json"), text).expect("config.json");
}

/// `minibox [--root STATE] run --rm --bundle DIR ID`.
pub fn run_bundle(dir: &Path, id: &str) -> std::process::Output {
    run_minibox(&["run", "--rm", "--bundle", dir.to_str().unwrap(), id])
}

/// Sets the value at a JSON pointer, making the objects on the way.
pub fn set(config: &mut Value, pointer: &str, value: Value) {
    let mut at = config;
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    for part in &parts[..parts.len() - 1] {
        if at.get(part).is_none() {
            at[part] = json!({});
        }
        at = &mut at[part];
    }
    at[parts[parts.len() - 1]] = value;
}

pub fn with_args(config: &Value, args: &[&str]) -> Value {
    let mut config = config.clone();
    config["process"]["args"] = json!(args);
    config
}

/// Fills `dir` as `Rootfs::new` does: the payload, passwd and group, the mount points.
pub fn populate(dir: &Path) {
    for d in ["etc", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy(payload_bin(), dir.join("payload")).unwrap();
    fs::write(dir.join("etc/passwd"), PASSWD).unwrap();
    fs::write(dir.join("etc/group"), GROUP).unwrap();
}
