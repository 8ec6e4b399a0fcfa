//! config.json in both directions, and its checks.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Root, Spec};
use serde_json::{json, Value};

use super::annotations::*;
use super::read::*;
use super::write::*;
use crate::kernel::cgroup::Limits;
use crate::kernel::namespaces::Kind;
use crate::model::network::Network;
use crate::model::setup::default_mounts;
use crate::model::spec::{ContainerSpec, SHORT_ID_LEN};
use crate::model::user::NOBODY;

fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n\
         nobody:x:65534:65534::/nonexistent:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("etc/group"),
        "app:x:1000:\nstaff:x:50:app\n",
    )
    .unwrap();
    dir
}

/// What `minibox run FLAGS ROOTFS /main` drafts from its flags.
fn drafted(root: &Path, flags: &[&str]) -> ContainerSpec {
    use clap::Parser;
    let mut argv = vec!["minibox", "run"];
    argv.extend_from_slice(flags);
    argv.extend_from_slice(&[root.to_str().unwrap(), "/main", "--port", "1"]);
    let cli = crate::cli::Cli::try_parse_from(&argv).expect("argv parses");
    let crate::cli::Command::Run(args) = cli.command else {
        panic!("not a run command: {argv:?}");
    };
    crate::cli::run::spec_from_run_args(&args, Path::new("/nonexistent-minibox-data")).unwrap()
}

#[test]
fn flags_survive_the_round_trip_through_the_oci_spec() {
    let dir = rootfs();
    let cases: &[&[&str]] = &[
        &[],
        &["-u", "0"],
        &["-u", "0", "--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN"],
        &["-u", "0", "--cap-drop", "ALL"],
        &["-u", "app"],
        &["-u", "4242:50"],
        &["--read-only"],
        &["--memory", "64m", "--cpus", "0.5", "--pids-limit", "20"],
        &["--network", "none"],
        &["--network", "host"],
        &["--network", "bridge", "-p", "8080:80"],
        &[
            "--network",
            "web",
            "--ip",
            "10.89.0.9",
            "--add-host",
            "db:192.0.2.1",
            "--add-host",
            "gw:host-gateway",
            "--dns",
            "192.0.2.53",
            "--network-alias",
            "w",
        ],
        &["--network", "container:db"],
        &[
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1::81",
            "-p",
            "[::1]:9090:90/tcp",
        ],
        &["-e", "A=1", "-e", "EMPTY=", "-e", "EQ=a=b"],
        &["-w", "/srv", "--hostname", "h1"],
        &["--cgroup-parent", "/outer/inner"],
        &[
            "--device",
            "/dev/null:/dev/mynull:rw",
            "--device",
            "/dev/zero",
        ],
        &[
            "-v",
            "/tmp:/host-tmp:ro",
            "-v",
            "vol:/data",
            "--tmpfs",
            "/t:size=1m,mode=700",
        ],
        &[
            "--mount",
            "type=tmpfs,target=/run",
            "--mount",
            "type=bind,source=/etc,target=/e",
        ],
    ];
    for flags in cases {
        // A bundle's root is used as given: the private layer is the front end's to add;
        // so are the volumes' flags (their mounts are in the mount list, see cli::run), and
        // whether the pids limit is the default (config.json only has the number).
        let draft = drafted(dir.path(), flags);
        let c = ContainerSpec {
            private_layer: false,
            volumes: vec![],
            limits: Limits {
                pids_default: false,
                ..draft.limits
            },
            ..draft
        };
        let oci = spec_from_container(&c);
        let back = container_from_spec(&oci, Path::new("/"), &c.id)
            .unwrap_or_else(|e| panic!("{flags:?}: {e:#}"));
        assert_eq!(back, c, "{flags:?}");
        // And through the JSON text, as a bundle would carry it.
        let text = to_json(&oci).unwrap();
        let reread: Spec = serde_json::from_str(&text).unwrap();
        assert_eq!(
            container_from_spec(&reread, Path::new("/"), &c.id).unwrap(),
            c,
            "{flags:?} via JSON"
        );
    }
}

#[test]
fn the_spec_says_what_minibox_does() {
    let dir = rootfs();
    let c = drafted(
        dir.path(),
        &["-u", "0", "--read-only", "--memory", "64m", "-p", "8080:80"],
    );
    let v = serde_json::to_value(spec_from_container(&c)).unwrap();
    let caps = &v["process"]["capabilities"];
    assert_eq!(caps["bounding"].as_array().unwrap().len(), 13);
    let sorted = |v: &Value| {
        let mut l: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        l.sort();
        l
    };
    assert_eq!(sorted(&caps["effective"]), sorted(&caps["bounding"]));
    assert_eq!(sorted(&caps["permitted"]), sorted(&caps["bounding"]));
    assert_eq!(caps["ambient"], json!([]));
    assert_eq!(caps["inheritable"], json!([]));
    assert_eq!(v["process"]["noNewPrivileges"], json!(true));
    assert_eq!(v["process"].get("rlimits"), None);
    assert_eq!(v["root"]["readonly"], json!(true));
    assert_eq!(
        v["linux"]["resources"]["memory"],
        json!({"limit": 64 << 20, "swap": 64 << 20})
    );
    assert_eq!(v["linux"]["maskedPaths"][2], json!("/proc/kcore"));
    assert_eq!(v["linux"]["readonlyPaths"][3], json!("/proc/sys"));
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(ns, ["mount", "pid", "uts", "ipc", "network", "cgroup"]);
    assert_eq!(v["annotations"][ANNOTATION_NETWORK], json!("private"));
    assert_eq!(
        v["annotations"][ANNOTATION_PORTS],
        json!("0.0.0.0:8080:80/tcp")
    );
    let host = drafted(dir.path(), &["--network", "host"]);
    let v = serde_json::to_value(spec_from_container(&host)).unwrap();
    assert!(!v["linux"]["namespaces"].to_string().contains("network"));
}

#[test]
fn every_capability_has_an_oci_name() {
    for cap in caps::all() {
        assert!(oci_cap(cap).is_some(), "{cap}");
    }
}

#[test]
fn printed_json_is_stable() {
    let dir = rootfs();
    let c = drafted(dir.path(), &["-u", "0", "-p", "1:2"]);
    let a = to_json(&spec_from_container(&c)).unwrap();
    let b = to_json(&spec_from_container(&c)).unwrap();
    assert_eq!(a, b);
    let v: Value = serde_json::from_str(&a).unwrap();
    let bounding: Vec<&str> = v["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let mut sorted = bounding.clone();
    sorted.sort();
    assert_eq!(bounding, sorted);
}

#[test]
fn the_default_bundle_runs_sh_as_nobody_from_rootfs() {
    let bundle = rootfs();
    std::fs::create_dir(bundle.path().join("rootfs")).unwrap();
    let oci = default_bundle_spec();
    let v = serde_json::to_value(&oci).unwrap();
    assert_eq!(v["root"]["path"], json!("rootfs"));
    assert_eq!(v["process"]["args"], json!(["sh"]));
    assert_eq!(v["process"]["terminal"], json!(false));
    let id = "a".repeat(64);
    let c = container_from_spec(&oci, bundle.path(), &id).unwrap();
    assert_eq!(
        c.rootfs,
        bundle.path().join("rootfs").canonicalize().unwrap()
    );
    assert_eq!((c.identity.uid, c.identity.gid), (NOBODY, NOBODY));
    assert_eq!(c.hostname, "minibox");
    assert_eq!(c.cgroup_path, Path::new("minibox").join(&id));
    assert!(c.capabilities.bounding.is_empty());
}

/// A good config (what `minibox run ROOTFS /main` would use), changed at one JSON pointer.
fn changed(root: &Path, pointer: &str, value: Option<Value>) -> Spec {
    let base = spec_from_container(&drafted(root, &[]));
    let mut v = serde_json::to_value(base).unwrap();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let mut at = &mut v;
    for part in parent.split('/').filter(|p| !p.is_empty()) {
        if at.get(part).is_none() {
            at[part] = json!({});
        }
        at = &mut at[part];
    }
    match value {
        Some(value) => at[key] = value,
        None => {
            at.as_object_mut().unwrap().remove(key);
        }
    }
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{pointer}: {e}"))
}

fn refusal(root: &Path, pointer: &str, value: Option<Value>) -> String {
    let oci = changed(root, pointer, value);
    match container_from_spec(&oci, Path::new("/"), &"b".repeat(64)) {
        Ok(_) => panic!("{pointer} was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn what_minibox_cannot_honour_is_refused_by_name() {
    let dir = rootfs();
    let ours: Vec<Value> = default_mounts()
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    let with = |extra: Value| {
        let mut list = ours.clone();
        list.push(extra);
        Value::Array(list)
    };
    let namespaces =
        |types: &[&str]| json!(types.iter().map(|t| json!({"type": t})).collect::<Vec<_>>());
    let all_ns = ["mount", "pid", "uts", "ipc", "network", "cgroup"];
    let cases: Vec<(&str, Option<Value>, &str)> = vec![
        (
            "/linux/intelRdt",
            Some(json!({"closID": "x"})),
            "linux.intelRdt is not supported",
        ),
        (
            "/linux/uidMappings",
            Some(json!([{"containerID": 0, "hostID": 1000, "size": 1}])),
            "linux.uidMappings/gidMappings need a new user namespace",
        ),
        (
            "/linux/gidMappings",
            Some(json!([{"containerID": 0, "hostID": 1000, "size": 1}])),
            "linux.uidMappings/gidMappings need a new user namespace",
        ),
        (
            "/mounts",
            Some(with(
                json!({"destination": "/data", "type": "nfs", "source": "srv:/x"}),
            )),
            "mounts[5] type \"nfs\" is not supported",
        ),
        (
            "/mounts",
            Some(with(
                json!({"destination": "/data", "type": "bind", "source": "/nonexistent-mbx", "options": ["rbind"]}),
            )),
            "mounts[5]: the bind source /nonexistent-mbx cannot be used",
        ),
        (
            "/mounts",
            Some(with(json!({"destination": "data", "type": "tmpfs"}))),
            "mounts[5].destination \"data\" must be an absolute path",
        ),
        (
            "/mounts",
            Some(with(
                json!({"destination": "/data", "type": "tmpfs", "options": ["idmap"]}),
            )),
            "mounts[5]: option idmap is for binds",
        ),
        (
            "/process/rlimits",
            Some(json!([{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 20}])),
            "process.rlimits[0] RLIMIT_NOFILE: soft 20 is above hard 10",
        ),
        (
            "/process/rlimits",
            Some(
                json!([{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 1}, {"type": "RLIMIT_NOFILE", "hard": 10, "soft": 1}]),
            ),
            "process.rlimits[1]: RLIMIT_NOFILE is listed twice",
        ),
        (
            "/process/consoleSize",
            Some(json!({"height": 70000, "width": 80})),
            "process.consoleSize.height 70000",
        ),
        (
            "/process/apparmorProfile",
            Some(json!("docker-default")),
            "process.apparmorProfile",
        ),
        (
            "/process/selinuxLabel",
            Some(json!("system_u:system_r:container_t")),
            "process.selinuxLabel",
        ),
        (
            "/process/oomScoreAdj",
            Some(json!(5000)),
            "process.oomScoreAdj 5000 is out of range",
        ),
        (
            "/process/scheduler",
            Some(json!({"policy": "SCHED_ISO"})),
            "process.scheduler.policy SCHED_ISO is not supported",
        ),
        (
            "/process/capabilities/inheritable",
            Some(json!(["CAP_KILL"])),
            "process.capabilities.inheritable has CAP_KILL, which is not in bounding",
        ),
        (
            "/process/capabilities/effective",
            Some(json!(["CAP_KILL"])),
            "process.capabilities.effective has CAP_KILL, which is not in permitted",
        ),
        (
            "/process/user/uid",
            Some(json!(u32::MAX)),
            "process.user.uid 4294967295",
        ),
        (
            "/process/user/gid",
            Some(json!(u32::MAX)),
            "process.user.gid 4294967295",
        ),
        (
            "/process/user/additionalGids",
            Some(json!([50, u32::MAX])),
            "process.user.additionalGids",
        ),
        (
            "/process/user/umask",
            Some(json!(0o1000)),
            "process.user.umask 1000 is invalid",
        ),
        (
            "/process/user/username",
            Some(json!("bob")),
            "process.user.username",
        ),
        ("/process/args", Some(json!([])), "process.args is empty"),
        ("/process/args", None, "process.args is empty"),
        (
            "/process/args",
            Some(json!(["/main", "a\u{0}b"])),
            "process.args[1]",
        ),
        (
            "/process/env",
            Some(json!(["PATH=/bin", "NOEQUALS"])),
            "process.env[1]",
        ),
        ("/process/cwd", Some(json!("relative")), "process.cwd"),
        ("/process", None, "process is missing"),
        ("/root", None, "root.path is missing"),
        ("/root/path", Some(json!("")), "root.path is empty"),
        (
            "/root/path",
            Some(json!("/")),
            "root.path / is the host's own root",
        ),
        (
            "/root/path",
            Some(json!("/nonexistent-minibox")),
            "root.path /nonexistent-minibox: cannot open",
        ),
        (
            "/ociVersion",
            Some(json!("2.0.0")),
            "ociVersion \"2.0.0\" is not supported",
        ),
        ("/ociVersion", Some(json!("")), "ociVersion is missing"),
        (
            "/hostname",
            Some(json!("bad name")),
            "hostname \"bad name\" is invalid",
        ),
        (
            "/domainname",
            Some(json!("bad name")),
            "domainname \"bad name\" is invalid",
        ),
        (
            "/hooks",
            Some(json!({"prestart": [{"path": "bin/true"}]})),
            "hooks.prestart[0].path bin/true is not absolute",
        ),
        (
            "/hooks",
            Some(json!({"poststop": [{"path": "/bin/true", "timeout": 0}]})),
            "hooks.poststop[0].timeout 0",
        ),
        ("/solaris", Some(json!({})), "solaris is not supported"),
        ("/linux", None, "linux is missing"),
        (
            "/linux/sysctl",
            Some(json!({"kernel.pid_max": "1000"})),
            "linux.sysctl kernel.pid_max is not namespaced",
        ),
        (
            "/linux/devices",
            Some(json!([{"path": "/etc/sda", "type": "b", "major": 8, "minor": 0}])),
            "linux.devices[0].path /etc/sda must be below /dev",
        ),
        (
            "/linux/rootfsPropagation",
            Some(json!("sideways")),
            "linux.rootfsPropagation \"sideways\" is invalid",
        ),
        (
            "/linux/mountLabel",
            Some(json!("system_u:object_r:container_file_t")),
            "linux.mountLabel",
        ),
        (
            "/linux/personality",
            Some(json!({"domain": "LINUX32", "flags": ["X"]})),
            "linux.personality.flags",
        ),
        (
            "/linux/maskedPaths",
            Some(json!(["relative"])),
            "linux.maskedPaths \"relative\" must be an absolute path",
        ),
        (
            "/linux/readonlyPaths",
            Some(json!(["/proc/../etc"])),
            "linux.readonlyPaths \"/proc/../etc\" must not contain '..'",
        ),
        (
            "/linux/namespaces",
            Some(namespaces(&[&all_ns[..], &["user"]].concat())),
            "a new user namespace, which needs linux.uidMappings",
        ),
        (
            "/linux/namespaces",
            Some(namespaces(&[&all_ns[..], &["pid"]].concat())),
            "linux.namespaces[6]: pid is listed twice",
        ),
        (
            "/linux/namespaces",
            Some(
                json!([{"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network", "path": "/proc/self/ns/uts"}, {"type": "cgroup"}]),
            ),
            "linux.namespaces[4] network path /proc/self/ns/uts is not a network namespace",
        ),
        (
            "/linux/resources",
            Some(json!({"memory": {"limit": 67108864, "swap": 1000}})),
            "linux.resources.memory.swap 1000 is below memory.limit",
        ),
        (
            "/linux/resources",
            Some(json!({"memory": {"swap": 67108864}})),
            "linux.resources.memory.swap 67108864 needs a memory.limit",
        ),
        (
            "/linux/resources",
            Some(json!({"memory": {"limit": 1000}})),
            "linux.resources.memory.limit 1000 is too small",
        ),
        (
            "/linux/resources",
            Some(json!({"memory": {"limit": 67108864, "reservation": -5}})),
            "linux.resources.memory.reservation -5 is invalid",
        ),
        (
            "/linux/resources",
            Some(json!({"cpu": {"shares": 1}})),
            "linux.resources.cpu.shares 1 is out of range",
        ),
        (
            "/linux/resources",
            Some(json!({"cpu": {"quota": 50000, "period": 10}})),
            "linux.resources.cpu.period 10 is out of range",
        ),
        (
            "/linux/resources",
            Some(json!({"cpu": {"quota": 10}})),
            "linux.resources.cpu.quota 10",
        ),
        (
            "/linux/resources",
            Some(json!({"cpu": {"cpus": "0-1;rm"}})),
            "linux.resources.cpu.cpus \"0-1;rm\" is invalid",
        ),
        (
            "/linux/resources",
            Some(json!({"pids": {"limit": 0}})),
            "linux.resources.pids.limit 0",
        ),
        (
            "/linux/resources",
            Some(json!({"unified": {"../../memory.high": "1"}})),
            "linux.resources.unified key \"../../memory.high\" is not a file",
        ),
        (
            "/linux/resources",
            Some(json!({"blockIO": {"weight": 5}})),
            "linux.resources.blockIO.weight 5 is out of range",
        ),
        (
            "/linux/cgroupsPath",
            Some(json!("system.slice:minibox:x")),
            "linux.cgroupsPath \"system.slice:minibox:x\"",
        ),
        (
            "/linux/cgroupsPath",
            Some(json!("minibox/../../escape")),
            "linux.cgroupsPath \"minibox/../../escape\" must not contain '..'",
        ),
        (
            "/linux/cgroupsPath",
            Some(json!("/")),
            "linux.cgroupsPath \"/\" names no group",
        ),
        (
            "/annotations/org.minibox.network",
            Some(json!("a b")),
            "annotation org.minibox.network \"a b\" is invalid",
        ),
        (
            "/annotations/org.minibox.network",
            Some(json!("host")),
            "annotation org.minibox.network \"host\" contradicts linux.namespaces",
        ),
        (
            "/annotations/org.minibox.ports",
            Some(json!("8080:80,nope")),
            "annotation org.minibox.ports",
        ),
        (
            "/annotations/org.minibox.colour",
            Some(json!("blue")),
            "annotation \"org.minibox.colour\" is not known",
        ),
    ];
    for (pointer, value, expected) in cases {
        let err = refusal(dir.path(), pointer, value);
        assert!(
            err.contains(expected),
            "{pointer}: {err:?} lacks {expected:?}"
        );
        assert!(!err.contains('\n'), "{pointer}: not one line: {err}");
    }
}

#[test]
fn harmless_variants_are_accepted() {
    let dir = rootfs();
    let id = "c".repeat(64);
    let ok = |pointer: &str, value: Option<Value>| {
        let oci = changed(dir.path(), pointer, value);
        container_from_spec(&oci, Path::new("/"), &id)
            .unwrap_or_else(|e| panic!("{pointer}: {e:#}"))
    };
    // Unknown annotations outside minibox's own prefix belong to someone else.
    ok("/annotations/com.example.owner", Some(json!("me")));
    // Without minibox's annotation, a network namespace means a private network.
    assert_eq!(ok("/annotations", None).network, Network::Private);
    assert_eq!(ok("/hostname", None).hostname, &id[..SHORT_ID_LEN]);
    assert_eq!(
        ok("/linux/cgroupsPath", None).cgroup_path,
        Path::new("minibox").join(&id)
    );
    assert_eq!(
        ok("/linux/cgroupsPath", Some(json!("/a/./b"))).cgroup_path,
        Path::new("a/b")
    );
    assert_eq!(
        ok(
            "/linux/resources",
            Some(json!({"memory": {"limit": -1}, "pids": {"limit": -1}}))
        )
        .limits,
        Limits::default()
    );
    assert_eq!(
        ok("/linux/resources", Some(json!({"cpu": {"quota": 20000}})))
            .limits
            .cpu_quota,
        Some(20000)
    );
    ok("/linux/rootfsPropagation", Some(json!("rslave")));
    // Fields minibox honours now, beyond docker's shape.
    assert!(
        !ok("/process/noNewPrivileges", Some(json!(false)))
            .setup
            .no_new_privs
    );
    assert!(!ok("/process/noNewPrivileges", None).setup.no_new_privs);
    assert_eq!(
        ok("/process/user/umask", Some(json!(0o077))).setup.umask,
        0o077
    );
    assert_eq!(
        ok("/process/oomScoreAdj", Some(json!(-500)))
            .setup
            .oom_score_adj,
        Some(-500)
    );
    let capped = ok(
        "/process/capabilities",
        Some(json!({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                    "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]})),
    );
    assert_eq!(capped.capabilities.ambient.len(), 1);
    assert!(capped.capabilities.effective.is_empty());
    // `crun spec`'s: ambient without inheritable is left out (a warning), not refused.
    let crun = ok(
        "/process/capabilities",
        Some(json!({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                        "effective": ["CAP_KILL"], "inheritable": [], "ambient": ["CAP_KILL"]})),
    );
    assert!(crun.capabilities.ambient.is_empty());
    assert_eq!(crun.capabilities.permitted.len(), 1);
    assert!(ok("/linux/maskedPaths", Some(json!([])))
        .setup
        .masked_paths
        .is_empty());
    assert_eq!(
        ok("/linux/readonlyPaths", Some(json!(["/etc"])))
            .setup
            .readonly_paths,
        ["etc"]
    );
    assert_eq!(
        ok("/linux/sysctl", Some(json!({"net.ipv4.ip_forward": "1"})))
            .setup
            .sysctl,
        [("net.ipv4.ip_forward".to_string(), "1".to_string())]
    );
    let shared = ok(
        "/linux/namespaces",
        Some(json!([{"type": "mount"}, {"type": "uts"}, {"type": "network"}])),
    );
    assert!(!shared.setup.namespaces.has(Kind::Pid));
    ok("/process/user/umask", None);
    ok("/process/capabilities", None);
    ok("/hooks", Some(json!({})));
    let c = ok(
        "/hooks",
        Some(json!({"createRuntime": [{"path": "/bin/true", "timeout": 5}]})),
    );
    assert_eq!(c.hooks.create_runtime().as_ref().map(Vec::len), Some(1));
    let c = ok("/process/terminal", Some(json!(true)));
    assert!(c.tty);
    assert_eq!(c.console_size, None);
    // The runtime spec asks runtimes to ignore properties it does not define.
    ok("/linux/somethingNew", Some(json!(1)));
}

#[test]
fn a_relative_root_path_stays_inside_the_bundle() {
    let outer = tempfile::tempdir().unwrap();
    let bundle = outer.path().join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    std::fs::create_dir(outer.path().join("beside")).unwrap();
    std::os::unix::fs::symlink("/", bundle.join("to-host")).unwrap();
    std::os::unix::fs::symlink("../beside", bundle.join("to-beside")).unwrap();
    let id = "d".repeat(64);
    let with_root = |path: &str| {
        let mut oci = default_bundle_spec();
        let mut root = Root::default();
        root.set_path(PathBuf::from(path));
        oci.set_root(Some(root));
        container_from_spec(&oci, &bundle, &id).map_err(|e| format!("{e:#}"))
    };
    let inside = with_root("./rootfs/../rootfs").unwrap();
    assert_eq!(inside.rootfs, bundle.join("rootfs").canonicalize().unwrap());
    // Deep enough `..`s reach the host's /; a symlink to / too.
    let deep = "../".repeat(40);
    let err = with_root(&deep).unwrap_err();
    assert!(err.contains("the host's own root"), "{err}");
    let err = with_root("to-host").unwrap_err();
    assert!(
        err.contains("root.path to-host is the host's own root"),
        "{err}"
    );
    for escape in ["../beside", "to-beside", "rootfs/../../beside"] {
        let err = with_root(escape).unwrap_err();
        assert!(
            err.contains(&format!("root.path {escape} resolves to")),
            "{err}"
        );
        assert!(err.contains("outside the bundle"), "{err}");
    }
    // An absolute path may be anywhere but /, as runc allows.
    let beside = outer.path().join("beside");
    assert!(with_root(beside.to_str().unwrap()).is_ok());
}

#[test]
fn a_bad_config_file_is_named_with_line_and_column() {
    let bundle = tempfile::tempdir().unwrap();
    let err = format!("{:#}", load(bundle.path()).unwrap_err());
    assert!(
        err.contains("config.json") && err.contains("No such file"),
        "{err}"
    );
    std::fs::write(
        bundle.path().join("config.json"),
        "{\n  \"ociVersion\": \"1.1.0\",\n  oops\n}",
    )
    .unwrap();
    let err = format!("{:#}", load(bundle.path()).unwrap_err());
    assert!(err.contains("line 3 column 3"), "{err}");
    std::fs::write(
        bundle.path().join("config.json"),
        "{\"ociVersion\": \"1.1.0\",\n \"process\": {\"cwd\": \"/\", \"user\": {\"uid\": \"zero\"}}}",
    )
    .unwrap();
    let err = format!("{:#}", load(bundle.path()).unwrap_err());
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("invalid type"), "{err}");
    std::fs::write(
        bundle.path().join("config.json"),
        to_json(&default_bundle_spec()).unwrap(),
    )
    .unwrap();
    assert_eq!(load(bundle.path()).unwrap(), default_bundle_spec());
}
