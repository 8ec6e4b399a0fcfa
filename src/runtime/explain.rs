//! `--explain`: a run that narrates, as it happens, each step of making the container and the
//! kernel object it made — with values read back from the kernel, not a canned text. The
//! container's own steps are reported by its init over the report pipe; the supervisor prints
//! everything on stderr, so CMD's output stays clean. Off, it costs a branch per step.

use std::fs;

use nix::unistd::{getgroups, getresgid, getresuid};

use crate::kernel::namespaces::{self, Kind, CONTAINER_KINDS};

/// The steps, in order (their number is their place here), each with the config.json fields
/// it carries out: every container, `minibox run`'s too, is made from one (`minibox spec`).
const STEPS: [(&str, &str); 10] = [
    ("cgroup", "linux.cgroupsPath, linux.resources"),
    (
        "clone",
        "linux.namespaces, linux.uidMappings, linux.gidMappings",
    ),
    (
        "mounts",
        "mounts[], linux.maskedPaths, linux.readonlyPaths, linux.devices",
    ),
    ("pivot_root", "root.path, root.readonly"),
    ("hostname", "hostname, domainname"),
    ("identity", "process.user"),
    (
        "privileges",
        "process.capabilities, process.rlimits, process.noNewPrivileges",
    ),
    ("seccomp", "linux.seccomp"),
    ("exec", "process.args, process.env, process.cwd"),
    ("exit", ""),
];

/// Prints one step: `[3/10] mounts      TEXT`, continuation lines aligned under TEXT.
/// The step's config.json fields close its text: `(config.json: linux.namespaces)`.
pub fn print(step: &str, text: &str) {
    let place = STEPS.iter().position(|(s, _)| *s == step);
    let n = place.map_or(0, |i| i + 1);
    let fields = place.and_then(|i| STEPS.get(i)).map_or("", |(_, f)| *f);
    // `run --explain=FILE` draws them beside the picture.
    super::explain_page::record(super::explain_page::Step {
        number: n,
        of: STEPS.len(),
        name: step.into(),
        text: text.into(),
        fields: fields.into(),
    });
    let indent = " ".repeat(19);
    let mut text = text.replace('\n', &format!("\n{indent}"));
    if !fields.is_empty() {
        text.push_str(&format!("\n{indent}(config.json: {fields})"));
    }
    say!("[{n}/{}] {step:<11} {text}", STEPS.len());
}

/// `mnt:[4026532281] pid:[4026532284] ...` for a process (`self` or a pid).
pub fn namespaces_of(pid: &str) -> String {
    CONTAINER_KINDS
        .iter()
        .chain([Kind::User].iter())
        .map(|k| k.proc_name())
        .map(|ns| namespace_link(pid, ns).unwrap_or_else(|| format!("{ns}:?")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What `/proc/PID/ns/NS` names: `mnt:[4026532281]`.
pub fn namespace_link(pid: &str, ns: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .ok()
        .map(|l| l.display().to_string())
}

/// The mount points in this process's view that are not the container's own: after the root
/// switch, 0.
pub fn foreign_mounts() -> usize {
    let own = |m: &str| {
        m == "/"
            // minibox's own files (runtime::network), not the host's
            || ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"].contains(&m)
            || ["/proc", "/sys", "/dev"]
                .iter()
                .any(|p| m == *p || m.starts_with(&format!("{p}/")))
    };
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| !own(m))
        .count()
}

/// (mounts[], linux.maskedPaths, linux.readonlyPaths)
pub fn mounts(mounted: usize, masked: usize, frozen: usize) -> String {
    let nodes = crate::kernel::rootfs::DEVICES.len();
    format!(
        "/ made rslave; ROOTFS overlaid with the container's own layer; {mounted} mounts \
         (mounts[]): /proc, /dev ({nodes} nodes), /sys ro...; {masked} paths masked \
         (linux.maskedPaths), {frozen} read-only (linux.readonlyPaths)"
    )
}

pub fn pivoted(rootfs: &std::path::Path) -> String {
    format!(
        "new root = {} with the container's own layer over it; old root detached (host mounts visible inside: {})",
        rootfs.display(),
        foreign_mounts()
    )
}

pub fn hostname() -> String {
    nix::unistd::gethostname().map_or("?".into(), |h| format!("{:?}", h.to_string_lossy()))
}

pub fn exec(args: &[String], env: &[String]) -> String {
    let var = |k: &str| {
        env.iter()
            .find_map(|e| e.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_string()
    };
    format!(
        "{}  (PATH={} HOME={})",
        args.join(" "),
        var("PATH"),
        var("HOME")
    )
}

/// How it ended, with what its cgroup measured.
pub fn exit(
    code: i32,
    took: std::time::Duration,
    usage: &crate::kernel::cgroup::Usage,
    removed: Option<bool>,
) -> String {
    let peak = usage
        .memory_peak
        .map_or("-".into(), crate::kernel::cgroup::human_bytes);
    let cpu = usage
        .cpu_usec
        .map_or("-".into(), |u| format!("{:.2} s", u as f64 / 1e6));
    let group = match removed {
        Some(true) => "cgroup removed",
        Some(false) => "cgroup NOT removed",
        None => "no cgroup",
    };
    format!(
        "status {code} after {:.2} s; peak memory {peak}; cpu {cpu}; {group}",
        took.as_secs_f64()
    )
}

/// The credentials the kernel holds for us now.
pub fn identity(name: Option<&str>) -> String {
    let (uid, gid) = (getresuid(), getresgid());
    let groups = getgroups().map(|g| {
        g.iter()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    });
    match (uid, gid, groups) {
        (Ok(u), Ok(g), Ok(groups)) => {
            let from = name.map_or("no passwd entry".to_string(), |n| {
                format!("rootfs /etc/passwd: {n}")
            });
            format!(
                "uid {} gid {} groups [{groups}] ({from}); {}",
                u.real,
                g.real,
                id_maps_of_self(u.real.as_raw(), g.real.as_raw())
            )
        }
        _ => "credentials unreadable".into(),
    }
}

/// Our ids on the host, through our user namespace's maps (read from inside, the kernel shows
/// the outside ids as the host's).
fn id_maps_of_self(uid: u32, gid: u32) -> String {
    let read = |f: &str| fs::read_to_string(format!("/proc/self/{f}")).unwrap_or_default();
    let (uids, gids) = (
        namespaces::parse_id_map(&read("uid_map")),
        namespaces::parse_id_map(&read("gid_map")),
    );
    let whole = |maps: &[namespaces::IdMap]| {
        maps.len() == 1 && maps[0].inside == 0 && maps[0].outside == 0 && maps[0].count == u32::MAX
    };
    if whole(&uids) && whole(&gids) {
        return "the host's own ids (no user namespace: uid 0 here is the host's root)".into();
    }
    let host = |maps: &[namespaces::IdMap], id| {
        namespaces::host_id(maps, id).map_or("unmapped".into(), |h| h.to_string())
    };
    format!(
        "on the host uid {} gid {} (user namespace: uids {}; gids {})",
        host(&uids, uid),
        host(&gids, gid),
        crate::model::userns::describe(&uids),
        crate::model::userns::describe(&gids)
    )
}

/// How many capabilities we kept, of how many the kernel has, and no_new_privs.
pub fn privileges() -> String {
    let kept = caps::read(None, caps::CapSet::Permitted).map(|s| s.len());
    let all = caps::runtime::thread_all_supported().len();
    let nnp = nix::sys::prctl::get_no_new_privs().map(|b| b as u8);
    match (kept, nnp) {
        (Ok(kept), Ok(nnp)) => format!("capabilities: {kept} of {all} kept; no_new_privs={nnp}"),
        _ => "capabilities unreadable".into(),
    }
}

/// The filter we run under: what the profile allows, and what the kernel says it holds.
pub fn seccomp(filter: Option<&crate::kernel::seccomp::Program>) -> String {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kernel = crate::kernel::seccomp::kernel_view(&status);
    match filter {
        Some(program) => format!("{}\nkernel: {kernel}", program.summary),
        None => format!("unconfined: no filter\nkernel: {kernel}"),
    }
}
