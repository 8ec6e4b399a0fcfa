//! What the device cgroup does, checked the same way whichever driver loads it (v1 writes
//! `devices.allow`/`devices.deny`, v2 attaches a BPF program): the v1 and v2 suites call these,
//! then check their own driver's side and that nothing is left. Each one fails while the attack
//! it names works: without a device cgroup the nodes below open.

use std::fs;

use serde_json::json;

use super::bundle::*;
use super::*;

/// A block device this host lets root open (its disk when it may, else a loop device): the
/// attack below works with it unless the container's device cgroup stops it. Its numbers.
pub fn host_block_device() -> (String, String) {
    let partitions = fs::read_to_string("/proc/partitions").unwrap_or_default();
    let disks = partitions.lines().skip(2).filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((
            format!("/dev/{}", f.get(3)?),
            f.first()?.to_string(),
            f.get(1)?.to_string(),
        ))
    });
    let loops = (0..8).map(|n| (format!("/dev/loop{n}"), "7".to_string(), n.to_string()));
    let opens = |path: &str| fs::File::open(path).is_ok();
    let found = disks.chain(loops).find(|(path, _, _)| opens(path));
    let (_, major, minor) = found.unwrap_or_else(|| {
        panic!(
            "this host lets root open no block device (no disk in /proc/partitions, no \
             /dev/loop*): nothing to attack with; load the loop module"
        )
    });
    (major, minor)
}

/// A bundle's config: root with docker's capabilities (CAP_MKNOD among them) and docker's
/// device rules, as `minibox spec -u 0` writes them.
fn root_config(r: &Rootfs) -> serde_json::Value {
    let root = r.arg();
    spec(&["-u", "0", "--cap-add", "MKNOD", &root, "/payload"])
}

/// Runs a bundle; returns its output.
fn run(config: &serde_json::Value, id: &str) -> std::process::Output {
    let b = bundle(config);
    run_bundle(b.path(), id)
}

fn assert_eperm(out: &std::process::Output, what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{what}: {} {err}", stdout(out));
    assert!(
        err.contains("EPERM"),
        "{what}: expected EPERM from the device cgroup, got {err}"
    );
}

/// Container root with CAP_MKNOD makes a node of a host block device (its disk where the host
/// lets root read it) in a tmpfs mounted `dev`, and lists one in `linux.devices`: neither
/// opens (the host opens it).
pub fn a_host_block_device_node_opens_nothing(r: &Rootfs, id: &str) {
    let (major, minor) = host_block_device();
    let mut c = root_config(r);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "dev", "mode=755"]
    }));
    let made = with_args(&c, &["/payload", "mkblk", "/mnt/disk", &major, &minor]);
    let out = run(&made, &format!("{id}-mkblk"));
    assert_eq!(
        stdout(&out).trim(),
        "made /mnt/disk",
        "mknod is allowed, as docker allows it: {}",
        stderr(&out)
    );
    assert_eperm(
        &out,
        &format!("opening b {major}:{minor} made in a dev tmpfs"),
    );
    let mut listed = with_args(&c, &["/payload", "open", "/dev/hostdisk", "r"]);
    listed["linux"]["devices"] = json!([{
        "path": "/dev/hostdisk", "type": "b",
        "major": major.parse::<i64>().unwrap(), "minor": minor.parse::<i64>().unwrap()
    }]);
    assert_eperm(
        &run(&listed, &format!("{id}-listed")),
        &format!("opening b {major}:{minor} listed in linux.devices but not allowed"),
    );
}

/// `--device /dev/null:/dev/mynull` is read and written; a node allowed `r` only
/// (`/dev/kmsg`, whose driver lets root open it for writing) cannot be opened for writing.
pub fn a_device_flag_gives_the_node_with_its_permissions(r: &Rootfs) {
    let flags = ["--device", "/dev/null:/dev/mynull"];
    payload_ok(r, &flags, &["write", "/dev/mynull", "x"]);
    assert_eq!(payload_ok(r, &flags, &["cat", "/dev/mynull"]), "");
    let writable = ["-u", "0", "--device", "/dev/kmsg:/dev/mykmsg:w"];
    let opened = payload_ok(r, &writable, &["open", "/dev/mykmsg", "w"]);
    assert_eq!(opened.trim(), "opened /dev/mykmsg");
    let read_only = ["-u", "0", "--device", "/dev/kmsg:/dev/mykmsg:r"];
    let out = run_payload(r, &read_only, &["open", "/dev/mykmsg", "w"]);
    assert_eperm(&out, "writing a --device node allowed r only");
}

/// A bundle whose rules deny `/dev/null` (c 1:3) by name: it does not open, `/dev/zero` does.
pub fn a_bundle_denying_dev_null_gets_eperm(r: &Rootfs, id: &str) {
    let mut c = root_config(r);
    c["linux"]["resources"]["devices"]
        .as_array_mut()
        .expect("docker's rules in minibox spec's config")
        .push(json!({"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
    assert_eperm(
        &run(
            &with_args(&c, &["/payload", "open", "/dev/null", "rw"]),
            &format!("{id}-null"),
        ),
        "opening /dev/null, denied by linux.resources.devices",
    );
    let out = run(
        &with_args(&c, &["/payload", "open", "/dev/zero", "rw"]),
        &format!("{id}-zero"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
