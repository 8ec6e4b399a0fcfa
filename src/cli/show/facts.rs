//! What `show` draws: one running container, read back at one moment — from the kernel
//! (`/proc/PID/…`, its cgroup's files, netlink in its network namespace) and from minibox's own
//! records (the state, the config.json it was made from, the image and network stores).
//!
//! Plain data, serialisable (the ui sends it as JSON). The values `inspect` shows are taken from
//! `inspect`'s own reading (`inspect::facts`), so the picture and `inspect` never disagree; what
//! `inspect` does not read (the process tree, the user namespace's map, the layers, the device
//! nodes, the network's links) is read here. Strings are kept as the kernel or the record holds
//! them, escaped for a terminal where they came from the container (`printable`), and never
//! escaped for XML or HTML: the renderers do that.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;

use crate::cli::{inspect, top};
use crate::kernel::cgroup::{self, ContainerCgroup};
use crate::kernel::namespaces::{host_id, IdMap};
use crate::kernel::netlink::Netlink;
use crate::kernel::rootfs;
use crate::runtime::explain::namespace_link;
use crate::store::networks::Networks;
use crate::store::state::{now_ms, ContainerState, Status, Store};
use crate::text::{date_time, printable, printable_bytes};

/// Everything the picture shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facts {
    /// When it was read, ms since the epoch.
    pub taken_ms: u64,
    pub id: String,
    pub name: String,
    pub status: String,
    pub image: Option<String>,
    pub command: Vec<String>,
    pub hostname: String,
    pub host: Host,
    /// The container's first process, as the host numbers it.
    pub pid: Option<i32>,
    /// The minibox process that waits for it (none for a container an engine supervises).
    pub supervisor: Option<i32>,
    pub namespaces: Vec<Namespace>,
    pub processes: Vec<Process>,
    pub users: Users,
    pub rights: Rights,
    pub cgroup: Option<Cgroup>,
    pub rootfs: Rootfs,
    pub mounts: Vec<Mount>,
    pub devices: Vec<Device>,
    pub masked: Vec<PathRule>,
    pub readonly: Vec<PathRule>,
    pub network: Net,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Host {
    pub hostname: String,
    pub kernel: String,
}

/// One kind of namespace: the container's and the host's (inode numbers name them).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Namespace {
    /// As `/proc/PID/ns` names it: `mnt`, `pid`, ...
    pub kind: String,
    pub container: Option<u64>,
    pub host: Option<u64>,
}

impl Namespace {
    /// A namespace of its own (both read, and different).
    pub fn is_new(&self) -> bool {
        self.container.is_some() && self.container != self.host
    }
}

/// One process of the container.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Process {
    pub host_pid: i32,
    /// Its pid inside the container's PID namespace.
    pub pid: String,
    pub host_ppid: String,
    /// 0 for the first process, 1 for its children...
    pub depth: usize,
    /// Effective uid and gid, as the container numbers them.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The uid's name in the container's /etc/passwd.
    pub user: Option<String>,
    /// The uid on the host (the user namespace's map applied).
    pub host_uid: Option<u32>,
    /// Its command line, escaped for one line.
    pub cmd: String,
    pub state: String,
    pub capabilities: usize,
    pub no_new_privs: bool,
    pub seccomp: Option<u64>,
}

/// The user namespace's maps: container id → host id.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Users {
    pub uid_map: Vec<IdRange>,
    pub gid_map: Vec<IdRange>,
}

impl Users {
    /// The host's own map (`0 0 4294967295`): every id is the same inside and out.
    pub fn is_identity(&self) -> bool {
        self.uid_map.len() == 1
            && self.uid_map[0].inside == 0
            && self.uid_map[0].outside == 0
            && self.uid_map[0].count == u32::MAX
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// What the first process may do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rights {
    /// Its effective capabilities, by name (`CAP_CHOWN`...).
    pub capabilities: Vec<String>,
    /// How many capabilities this kernel has.
    pub all_capabilities: usize,
    pub no_new_privs: bool,
    pub seccomp: Seccomp,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Seccomp {
    /// `docker default`, `unconfined`, a profile file.
    pub profile: Option<String>,
    /// The kernel's `Seccomp` mode (0 none, 2 filter) and its count of filters.
    pub mode: Option<u64>,
    pub filters: Option<u64>,
    /// What happens to a system call the profile does not name (`SCMP_ACT_ERRNO` …).
    pub default_action: Option<String>,
    /// System calls allowed outright, allowed when their arguments pass, and named with another
    /// action (an error, a kill).
    pub allowed: usize,
    pub allowed_if: usize,
    pub refused: usize,
    /// A few of those refused by name.
    pub refused_examples: Vec<String>,
}

/// The cgroup and what the kernel counts in it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cgroup {
    pub driver: String,
    pub path: String,
    /// The limit files and their values.
    pub settings: BTreeMap<String, String>,
    pub memory_used: Option<u64>,
    pub memory_peak: Option<u64>,
    /// `None`: no limit.
    pub memory_limit: Option<u64>,
    pub cpu_usec: Option<u64>,
    /// CPU use now, in % of one CPU (over a short sample); `None` when not sampled.
    pub cpu_percent: Option<f64>,
    /// The CPU limit, in CPUs (0.5 = half a CPU); `None`: no limit.
    pub cpu_limit: Option<f64>,
    pub pids: Option<u64>,
    pub pids_limit: Option<u64>,
    pub oom_kills: u64,
}

/// What `/` is made of.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rootfs {
    /// The image's layers, bottom first (empty for a ROOTFS directory).
    pub layers: Vec<Layer>,
    /// The ROOTFS directory, when not an image.
    pub dir: Option<String>,
    /// The container's own layer: where its writes land (host directory, bytes so far).
    pub own_layer: Option<Layer>,
    pub read_only: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Layer {
    /// The layer's diff id (sha256 hex), or empty for the container's own.
    pub id: String,
    pub host_dir: String,
    pub bytes: u64,
    pub files: u64,
}

/// One mount of the container's table (besides `/`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Mount {
    pub target: String,
    pub fstype: String,
    /// What the kernel calls its source (a device, `proc`, `tmpfs`...).
    pub source: String,
    /// For a bind mount or volume: the host path behind it (from its config.json).
    pub host_source: Option<String>,
    /// The mount's own flags, as the kernel holds them (`ro,nosuid,nodev,...`).
    pub options: String,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// `/proc`, `/sys`, `/dev` and what belongs to them.
    #[default]
    System,
    /// A `-v`, `--mount` or `--tmpfs` mount, or a bundle's bind.
    Volume,
    /// minibox's own `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`.
    Etc,
    /// Over a masked path.
    Masked,
    /// Over a read-only path.
    ReadOnly,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Device {
    pub name: String,
    /// `c` or `b`.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
}

/// A masked or read-only path, and whether the kernel has a mount over it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PathRule {
    pub path: String,
    pub applied: bool,
}

/// The network, from inside and from the host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Net {
    /// `private`, `none`, `host`, `container:NAME`, or a bridge network's name.
    pub mode: String,
    pub interfaces: Vec<Interface>,
    pub bridge: Option<Bridge>,
    pub ports: Vec<Port>,
    /// Its /etc/hosts: (address, names).
    pub hosts: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Interface {
    pub name: String,
    pub kind: Option<String>,
    pub up: bool,
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Bridge {
    pub network: String,
    /// The Linux bridge.
    pub name: String,
    pub subnet: String,
    pub gateway: String,
    /// The host end of the container's veth pair, and whether the kernel has it on the bridge.
    pub veth: String,
    pub veth_on_bridge: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Port {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// How traffic gets in: `DNAT` (the kernel) or `relay` (minibox's supervisor).
    pub via: String,
}

/// How CPU use is measured: a sample of its own, since an earlier reading, or not at all.
#[derive(Debug, Clone, Copy)]
pub enum CpuWindow {
    Sample(Duration),
    Since { usec: u64, at: Instant },
    None,
}

/// The plain words for each namespace: what it holds, and what a new one means.
pub const NAMESPACE_WORDS: [(&str, &str, &str); 8] = [
    ("mnt", "mounts", "its own mount table"),
    ("pid", "process ids", "its own process numbers, from 1"),
    ("net", "network", "its own interfaces, addresses, ports"),
    ("uts", "hostname", "its own hostname"),
    (
        "ipc",
        "IPC objects",
        "its own shared memory, semaphores, queues",
    ),
    ("cgroup", "cgroup view", "sees its own cgroup as the root"),
    (
        "user",
        "user ids",
        "its own user and group ids, mapped to the host's",
    ),
    ("time", "clocks", "its own boot and monotonic clock offsets"),
];

/// Reads container `c` (resolved from `store`) now. It must be running.
pub fn collect(store: &Store, c: &ContainerState, cpu: CpuWindow) -> Result<Facts> {
    let Some(first) = c.pid.filter(|p| c.is_running() && p.is_alive()) else {
        bail!(
            "container {} is not running: show draws a running container (see minibox ps -a)",
            c.name
        );
    };
    let pid = first.pid;
    let seen = inspect::facts(c)?;
    let config = read_config(store, &c.id);
    let mut f = Facts {
        taken_ms: now_ms(),
        id: c.id.clone(),
        name: c.name.clone(),
        status: match c.status {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
        .into(),
        image: c.image.as_ref().map(|i| i.reference.clone()),
        command: c
            .command
            .iter()
            .map(|a| printable(a).into_owned())
            .collect(),
        hostname: c.hostname.clone(),
        host: host(),
        pid: seen["Pid"].as_i64().map(|p| p as i32),
        supervisor: c.supervisor.filter(|s| s.is_alive()).map(|s| s.pid),
        ..Facts::default()
    };
    f.namespaces = namespaces(&seen, pid);
    f.users = Users {
        uid_map: id_map(pid, "uid_map"),
        gid_map: id_map(pid, "gid_map"),
    };
    f.processes = processes(pid, &f.users);
    f.rights = rights(&seen, config.as_ref());
    f.cgroup = c
        .cgroup
        .as_ref()
        .and_then(cgroup::reopen)
        .map(|cg| cgroup_facts(&seen, cg.as_ref(), cpu));
    let (mounts, root_ro) = mounts(&seen, c, config.as_ref());
    f.mounts = mounts;
    f.rootfs = rootfs_facts(c, root_ro);
    f.devices = devices(pid);
    let listed = |key: &str| -> Vec<String> {
        config
            .as_ref()
            .and_then(|v| v["linux"][key].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.as_str().map(String::from))
            .collect()
    };
    let rule = |p: String| PathRule {
        applied: f.mounts.iter().any(|m| m.target == p),
        path: p,
    };
    f.masked = listed("maskedPaths").into_iter().map(rule).collect();
    f.readonly = listed("readonlyPaths").into_iter().map(rule).collect();
    f.network = network(store, c, pid, config.as_ref());
    Ok(f)
}

/// The config.json minibox keeps in the container's state directory (`exec` reads it too).
fn read_config(store: &Store, id: &str) -> Option<Value> {
    let path = store.dir(id).join(crate::store::state::CONFIG_FILE);
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn host() -> Host {
    let uts = nix::sys::utsname::uname().ok();
    Host {
        hostname: nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default(),
        kernel: uts
            .map(|u| {
                format!(
                    "{} {}",
                    u.sysname().to_string_lossy(),
                    u.release().to_string_lossy()
                )
            })
            .unwrap_or_default(),
    }
}

/// `inspect`'s six, then the user and time namespaces (which it does not list).
fn namespaces(seen: &Value, pid: i32) -> Vec<Namespace> {
    let inode = |link: Option<String>| -> Option<u64> {
        link?.split_once('[')?.1.trim_end_matches(']').parse().ok()
    };
    NAMESPACE_WORDS
        .iter()
        .map(|(kind, _, _)| {
            let (container, host) = match seen["Namespaces"].get(kind) {
                Some(v) => (v.as_u64(), seen["HostNamespaces"][kind].as_u64()),
                None => (
                    inode(namespace_link(&pid.to_string(), kind)),
                    inode(namespace_link("self", kind)),
                ),
            };
            Namespace {
                kind: kind.to_string(),
                container,
                host,
            }
        })
        .collect()
}

/// `/proc/PID/uid_map` (or gid_map): `inside outside count` a line.
fn id_map(pid: i32, file: &str) -> Vec<IdRange> {
    parse_id_map(&std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default())
}

pub fn parse_id_map(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|l| {
            let n: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            match n.as_slice() {
                [inside, outside, count] => Some(IdRange {
                    inside: *inside,
                    outside: *outside,
                    count: *count,
                }),
                _ => None,
            }
        })
        .collect()
}

/// `top`'s rows, as a tree (children under their parent), with each one's user and rights.
fn processes(first: i32, users: &Users) -> Vec<Process> {
    let rows = top::processes(first).unwrap_or_default();
    let passwd = rootfs::open_dir(Path::new(&format!("/proc/{first}/root")))
        .ok()
        .and_then(|root| rootfs::read_file_in(&root, "etc/passwd").ok());
    let maps: Vec<IdMap> = users
        .uid_map
        .iter()
        .map(|r| IdMap {
            inside: r.inside,
            outside: r.outside,
            count: r.count,
        })
        .collect();
    let host_pids: Vec<String> = rows.iter().map(|r| r.pid.to_string()).collect();
    let mut order: Vec<(usize, usize)> = vec![];
    // Roots: processes whose parent is not in the container (the first one, and any that
    // `exec` joined in).
    let mut stack: Vec<(usize, usize)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| !host_pids.contains(&r.ppid))
        .map(|(i, _)| (i, 0))
        .rev()
        .collect();
    while let Some((i, depth)) = stack.pop() {
        if order.iter().any(|(j, _)| *j == i) {
            continue;
        }
        order.push((i, depth));
        let parent = rows[i].pid.to_string();
        stack.extend(
            rows.iter()
                .enumerate()
                .filter(|(_, r)| r.ppid == parent)
                .map(|(j, _)| (j, depth + 1))
                .rev(),
        );
    }
    order
        .into_iter()
        .map(|(i, depth)| {
            let r = &rows[i];
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", r.pid)).unwrap_or_default();
            let ids = inspect::identity(&status);
            let caps = inspect::capabilities(&status);
            let uid = ids["Uid"].as_u64().map(|u| u as u32);
            Process {
                host_pid: r.pid,
                pid: r.container_pid.clone(),
                host_ppid: r.ppid.clone(),
                depth,
                uid,
                gid: ids["Gid"].as_u64().map(|g| g as u32),
                user: uid.and_then(|u| crate::model::user::describe(u, passwd.as_deref()).0),
                host_uid: uid.and_then(|u| host_id(&maps, u)),
                cmd: r.cmd.clone(),
                state: r.state.clone(),
                capabilities: caps["Effective"].as_array().map_or(0, Vec::len),
                no_new_privs: caps["NoNewPrivs"] == true,
                seccomp: inspect::status_field(&status, "Seccomp").and_then(|s| s.parse().ok()),
            }
        })
        .collect()
}

fn rights(seen: &Value, config: Option<&Value>) -> Rights {
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut seccomp = Seccomp {
        profile: seen["Seccomp"]["Profile"].as_str().map(String::from),
        mode: seen["Seccomp"]["Mode"].as_u64(),
        filters: seen["Seccomp"]["Filters"].as_u64(),
        ..Seccomp::default()
    };
    if let Some(filter) = config
        .map(|c| &c["linux"]["seccomp"])
        .filter(|f| f.is_object())
    {
        summarize_seccomp(filter, &mut seccomp);
    }
    Rights {
        capabilities: names(&seen["Capabilities"]["Effective"]),
        all_capabilities: caps::all().len(),
        no_new_privs: seen["Capabilities"]["NoNewPrivs"] == true,
        seccomp,
    }
}

/// Counts an OCI `linux.seccomp` section's rules by what they do.
pub fn summarize_seccomp(filter: &Value, s: &mut Seccomp) {
    s.default_action = filter["defaultAction"].as_str().map(String::from);
    for rule in filter["syscalls"].as_array().into_iter().flatten() {
        let names: Vec<&str> = rule["names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let conditional = rule["args"].as_array().is_some_and(|a| !a.is_empty());
        match (rule["action"].as_str(), conditional) {
            (Some("SCMP_ACT_ALLOW"), false) => s.allowed += names.len(),
            (Some("SCMP_ACT_ALLOW"), true) => s.allowed_if += names.len(),
            _ => {
                s.refused += names.len();
                for n in names {
                    if s.refused_examples.len() < 6 && !s.refused_examples.iter().any(|e| e == n) {
                        s.refused_examples.push(n.to_string());
                    }
                }
            }
        }
    }
}

fn cgroup_facts(seen: &Value, cg: &dyn ContainerCgroup, cpu: CpuWindow) -> Cgroup {
    let cgv = &seen["Cgroup"];
    let settings: BTreeMap<String, String> = cgv["Settings"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Cgroup {
        driver: cgv["Driver"].as_str().unwrap_or(cg.driver()).to_string(),
        path: cgv["Path"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| cg.path().display().to_string()),
        memory_used: cgv["MemoryCurrent"].as_u64(),
        memory_peak: cgv["MemoryPeak"].as_u64(),
        cpu_usec: cgv["CpuUsec"].as_u64(),
        oom_kills: cgv["OomKills"].as_u64().unwrap_or(0),
        ..Cgroup::default()
    };
    let (memory, cpus, pids) = limits_of(&settings);
    out.memory_limit = memory;
    out.cpu_limit = cpus;
    out.pids_limit = pids;
    out.settings = settings;
    out.pids = pids_current(cg);
    let (before, began) = match cpu {
        CpuWindow::Sample(d) => {
            let before = cg.usage().cpu_usec;
            let began = Instant::now();
            std::thread::sleep(d);
            out.cpu_usec = cg.usage().cpu_usec;
            (before, began)
        }
        CpuWindow::Since { usec, at } => (Some(usec), at),
        CpuWindow::None => (None, Instant::now()),
    };
    if let (Some(a), Some(b)) = (before, out.cpu_usec) {
        let wall = began.elapsed().as_micros() as f64;
        if wall > 0.0 {
            out.cpu_percent = Some(b.saturating_sub(a) as f64 * 100.0 / wall);
        }
    }
    out
}

/// How many processes and threads the group holds: `pids.current`, in the v2 group or the
/// v1 pids hierarchy's.
pub fn pids_current(cg: &dyn ContainerCgroup) -> Option<u64> {
    cg.paths().iter().find_map(|p| {
        std::fs::read_to_string(p.join("pids.current"))
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

/// The memory limit (bytes), the CPU limit (CPUs) and the pids limit the limit files hold;
/// `None` for each that is not limited (v2's `max`, v1's `-1` or its huge "unlimited").
pub fn limits_of(settings: &BTreeMap<String, String>) -> (Option<u64>, Option<f64>, Option<u64>) {
    let number = |k: &str| -> Option<u64> { settings.get(k)?.trim().parse().ok() };
    // v1 says "unlimited" with the largest page-aligned i64.
    let memory = number("memory.max")
        .or_else(|| number("memory.limit_in_bytes"))
        .filter(|m| *m < (1u64 << 62));
    let cpus = match settings.get("cpu.max") {
        Some(v2) => {
            let mut parts = v2.split_whitespace();
            match (
                parts.next().and_then(|q| q.parse::<f64>().ok()),
                parts.next(),
            ) {
                (Some(quota), Some(period)) => period
                    .parse::<f64>()
                    .ok()
                    .filter(|p| *p > 0.0)
                    .map(|p| quota / p),
                _ => None,
            }
        }
        None => match (
            settings
                .get("cpu.cfs_quota_us")
                .and_then(|q| q.trim().parse::<i64>().ok()),
            number("cpu.cfs_period_us"),
        ) {
            (Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
            _ => None,
        },
    };
    let pids = number("pids.max");
    (memory, cpus, pids)
}

/// The container's mount table, each mount given its role and (for a bind) its host source;
/// and whether `/` itself is read-only.
fn mounts(seen: &Value, c: &ContainerState, config: Option<&Value>) -> (Vec<Mount>, bool) {
    let configured: Vec<(String, String, String)> = config
        .and_then(|v| v["mounts"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (s("destination"), s("type"), s("source"))
        })
        .collect();
    let listed = |key: &str| -> Vec<String> {
        config
            .and_then(|v| v["linux"][key].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.as_str().map(String::from))
            .collect()
    };
    let (masked, readonly) = (listed("maskedPaths"), listed("readonlyPaths"));
    let volume_targets: Vec<String> = c
        .volumes
        .iter()
        .filter_map(|v| {
            let v = v.strip_suffix(":ro").unwrap_or(v);
            v.rsplit_once(':').map(|(_, t)| t.to_string())
        })
        .collect();
    let mut root_ro = false;
    let mut out: Vec<Mount> = vec![];
    for m in seen["Mounts"].as_array().into_iter().flatten() {
        let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
        let target = unescape_mountinfo(&s("Target"));
        let options = s("Options");
        if target == "/" {
            root_ro = options.split(',').any(|o| o == "ro");
            continue;
        }
        let role = if masked.contains(&target) {
            Role::Masked
        } else if readonly.contains(&target) {
            Role::ReadOnly
        } else if ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"].contains(&target.as_str()) {
            Role::Etc
        } else if volume_targets.contains(&target)
            || configured
                .iter()
                .any(|(d, t, _)| *d == target && (t == "bind" || t == "tmpfs") && !is_system(d))
        {
            Role::Volume
        } else {
            Role::System
        };
        let host_source = configured
            .iter()
            .rev()
            .find(|(d, t, _)| *d == target && t == "bind")
            .map(|(_, _, s)| s.clone());
        // The same target mounted twice (a read-only remount): the last one is what is seen.
        out.retain(|o| o.target != target);
        out.push(Mount {
            target,
            fstype: s("Type"),
            source: s("Source"),
            host_source,
            options,
            role,
        });
    }
    (out, root_ro)
}

fn is_system(target: &str) -> bool {
    ["/proc", "/sys", "/dev"]
        .iter()
        .any(|p| target == *p || target.starts_with(&format!("{p}/")))
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal escapes.
pub fn unescape_mountinfo(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    printable_bytes(&out)
}

fn rootfs_facts(c: &ContainerState, read_only: bool) -> Rootfs {
    let layers = c
        .image
        .as_ref()
        .map(|image| {
            image
                .lower
                .iter()
                .rev()
                .map(|dir| {
                    let (bytes, files) = du(dir);
                    Layer {
                        id: dir
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        host_dir: dir.display().to_string(),
                        bytes,
                        files,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let own_layer = c.layer.as_ref().map(|dir| {
        let upper = dir.join("upper");
        let (bytes, files) = du(&upper);
        Layer {
            id: String::new(),
            host_dir: upper.display().to_string(),
            bytes,
            files,
        }
    });
    Rootfs {
        dir: c.image.is_none().then(|| c.rootfs.display().to_string()),
        layers,
        own_layer,
        read_only,
    }
}

/// Bytes and files below `dir`, without following symlinks or leaving its filesystem; at most
/// 200,000 entries are counted (a picture, not an audit).
fn du(dir: &Path) -> (u64, u64) {
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return (0, 0);
    };
    let (mut bytes, mut files) = (0u64, 0u64);
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            files += 1;
            if files > 200_000 {
                return (bytes, files);
            }
            if md.is_dir() && md.dev() == top.dev() {
                stack.push(e.path());
            } else if md.is_file() {
                bytes += md.len();
            }
        }
    }
    (bytes, files)
}

/// The device nodes in the container's `/dev`, read through its root (resolved inside it).
fn devices(pid: i32) -> Vec<Device> {
    use nix::fcntl::OFlag;
    let Ok(root) = rootfs::open_dir(Path::new(&format!("/proc/{pid}/root"))) else {
        return vec![];
    };
    let Ok(dev) = rootfs::open_in(&root, "dev", OFlag::O_RDONLY | OFlag::O_DIRECTORY) else {
        return vec![];
    };
    let Ok(mut dir) = nix::dir::Dir::from_fd(dev) else {
        return vec![];
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
    let names: Vec<std::ffi::CString> = dir
        .iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .collect();
    let mut out: Vec<Device> = names
        .iter()
        .filter_map(|name| {
            // SAFETY: `fd` is the open directory `dir`, alive for this closure; no link followed.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let st = nix::sys::stat::fstatat(
                borrowed,
                name.as_c_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .ok()?;
            let kind = match st.st_mode & libc::S_IFMT {
                libc::S_IFCHR => 'c',
                libc::S_IFBLK => 'b',
                _ => return None,
            };
            Some(Device {
                name: printable_bytes(name.to_bytes()),
                kind,
                major: libc::major(st.st_rdev) as u64,
                minor: libc::minor(st.st_rdev) as u64,
                mode: st.st_mode & 0o7777,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.major, a.minor, &a.name).cmp(&(b.major, b.minor, &b.name)));
    out
}

fn network(store: &Store, c: &ContainerState, pid: i32, config: Option<&Value>) -> Net {
    let mode = config
        .and_then(|v| v["annotations"][crate::model::oci::annotations::ANNOTATION_NETWORK].as_str())
        .unwrap_or("private")
        .to_string();
    let mut net = Net {
        mode,
        ..Net::default()
    };
    // Inside: every link and address of its namespace, by netlink.
    if let Ok(netns) = File::open(format!("/proc/{pid}/ns/net")) {
        if let Ok(mut nl) = Netlink::open_in(&netns) {
            let addresses = nl.addresses().unwrap_or_default();
            for l in nl.links().unwrap_or_default() {
                net.interfaces.push(Interface {
                    addresses: addresses
                        .iter()
                        .filter(|(i, _, _)| *i == l.index)
                        .map(|(_, ip, p)| format!("{ip}/{p}"))
                        .collect(),
                    name: printable(&l.name).into_owned(),
                    kind: l.kind,
                    up: l.up,
                });
            }
        }
    }
    // Outside: the bridge network it is leased on, and its veth there.
    let lease = Networks::existing(store.root()).and_then(|nets| {
        nets.list().ok()?.into_iter().find_map(|n| {
            let lease = nets
                .leases(&n.name)
                .ok()?
                .into_iter()
                .find(|l| l.container == c.id)?;
            Some((n, lease))
        })
    });
    if let Some((n, lease)) = lease {
        let on_bridge = Netlink::open()
            .and_then(|mut nl| {
                let links = nl.links()?;
                let bridge = links.iter().find(|l| l.name == n.bridge).map(|l| l.index);
                Ok(links.iter().any(|l| {
                    l.name == lease.veth && l.controller.is_some() && l.controller == bridge
                }))
            })
            .unwrap_or(false);
        net.bridge = Some(Bridge {
            network: n.name.clone(),
            name: n.bridge.clone(),
            subnet: n.subnet.to_string(),
            gateway: n.gateway.to_string(),
            veth: lease.veth.clone(),
            veth_on_bridge: on_bridge,
        });
    }
    net.ports = c
        .ports
        .iter()
        .map(|p| Port {
            host_ip: p.host_ip.to_string(),
            host_port: p.host_port,
            container_port: p.container_port,
            via: if net.bridge.is_some() {
                "DNAT (the host's own 127.0.0.1: relay)".into()
            } else {
                "relay".into()
            },
        })
        .collect();
    // Its /etc/hosts, as minibox wrote it in the state directory (and bound in).
    let hosts = std::fs::read(store.dir(&c.id).join("hosts")).unwrap_or_default();
    net.hosts = printable_bytes(&hosts)
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (ip, names) = l.split_once(char::is_whitespace)?;
            Some((
                ip.to_string(),
                names.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })
        .collect();
    net
}

/// `2024-05-01 16:20:31 UTC` for ms since the epoch (the one civil-date formatter, text.rs's).
pub fn utc(ms: u64) -> String {
    format!("{} UTC", date_time(ms / 1000).replacen('T', " ", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_from_either_drivers_files() {
        let v2: BTreeMap<String, String> = [
            ("memory.max", "67108864"),
            ("cpu.max", "50000 100000"),
            ("pids.max", "max"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(limits_of(&v2), (Some(67_108_864), Some(0.5), None));
        let v1: BTreeMap<String, String> = [
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("cpu.cfs_quota_us", "-1"),
            ("cpu.cfs_period_us", "100000"),
            ("pids.max", "64"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(limits_of(&v1), (None, None, Some(64)));
    }

    #[test]
    fn id_maps_and_the_identity_map() {
        let host = Users {
            uid_map: parse_id_map("         0          0 4294967295\n"),
            gid_map: vec![],
        };
        assert!(host.is_identity());
        let mapped = Users {
            uid_map: parse_id_map("0 100000 65536\n"),
            gid_map: vec![],
        };
        assert!(!mapped.is_identity());
        assert_eq!(
            mapped.uid_map,
            vec![IdRange {
                inside: 0,
                outside: 100_000,
                count: 65_536
            }]
        );
    }

    #[test]
    fn seccomp_rules_are_counted_by_what_they_do() {
        let filter = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            ]
        });
        let mut s = Seccomp::default();
        summarize_seccomp(&filter, &mut s);
        assert_eq!((s.allowed, s.allowed_if, s.refused), (2, 1, 1));
        assert_eq!(s.refused_examples, vec!["clone3"]);
        assert_eq!(s.default_action.as_deref(), Some("SCMP_ACT_ERRNO"));
    }

    #[test]
    fn mountinfo_escapes_are_undone_and_control_characters_shown() {
        assert_eq!(unescape_mountinfo("/data\\040dir"), "/data dir");
        assert_eq!(unescape_mountinfo("/x\\033y"), "/x\\x1by");
        assert_eq!(unescape_mountinfo("/plain\\"), "/plain\\");
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
