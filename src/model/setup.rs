//! How the container's init sets it up, beyond who runs what: the mount list, masked and
//! read-only paths, namespaces and id maps, device nodes, rlimits, umask, sysctls... each read
//! from config.json (`from_oci`, every value checked, what minibox cannot honour refused by
//! name) and written back (`write_oci`), so `minibox spec` prints what a run does. `minibox run`
//! gets docker's defaults (`docker`).

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path};

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{
    Linux, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxIdMapping, LinuxIdMappingBuilder,
    LinuxNamespace, LinuxNamespaceType, Mount, PosixRlimit, PosixRlimitBuilder, PosixRlimitType,
    Process, Spec,
};

use crate::kernel::cgroup::devices::{Access, DeviceRules, Kind as DeviceKind, Rule};
use crate::kernel::cgroup::Tuning;
use crate::kernel::mounts::{self, DeviceNode, MountSpec};
use crate::kernel::namespaces::{self, IdMap, Kind, Namespaces};
use crate::kernel::process::{self as kproc, Rlimit};
use crate::kernel::rootfs::{DEVICES, MASKED_PATHS, READONLY_PATHS};
use crate::model::process_attrs::{self, ProcessAttrs};

/// A filesystem minibox mounts in every container, as config.json writes it.
struct FixedMount {
    destination: &'static str,
    typ: &'static str,
    source: &'static str,
    options: &'static [&'static str],
}

/// The mounts `kernel::rootfs` makes, in its order and with its flags (tests/oci_spec.rs checks
/// them against a container's mountinfo). The six device nodes bound into `/dev` are the
/// runtime spec's default devices, which `linux.devices` does not list.
const MOUNTS: [FixedMount; 5] = [
    FixedMount {
        destination: "/proc",
        typ: "proc",
        source: "proc",
        options: &["nosuid", "noexec", "nodev"],
    },
    FixedMount {
        destination: "/sys",
        typ: "sysfs",
        source: "sysfs",
        options: &["nosuid", "noexec", "nodev", "ro"],
    },
    FixedMount {
        destination: "/dev",
        typ: "tmpfs",
        source: "tmpfs",
        options: &["nosuid", "nodev", "strictatime", "mode=755", "size=65536k"],
    },
    FixedMount {
        destination: "/dev/pts",
        typ: "devpts",
        source: "devpts",
        options: &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ],
    },
    FixedMount {
        destination: "/dev/shm",
        typ: "tmpfs",
        source: "shm",
        options: &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
];

/// minibox's default mounts (docker's), as config.json writes them.
pub fn default_mounts() -> Vec<Mount> {
    MOUNTS.iter().map(fixed_mount_of).collect()
}

fn fixed_mount_of(m: &FixedMount) -> Mount {
    let mut mount = Mount::default();
    mount.set_destination(m.destination.into());
    mount.set_typ(Some(m.typ.into()));
    mount.set_source(Some(m.source.into()));
    mount.set_options(Some(m.options.iter().map(|o| o.to_string()).collect()));
    mount
}

/// The umask every docker-style container starts with.
pub const DOCKER_UMASK: u32 = 0o022;

/// Everything init does that config.json describes beyond process, root and hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// `mounts`, in order.
    pub mounts: Vec<MountSpec>,
    /// `linux.maskedPaths`, relative to the root.
    pub masked_paths: Vec<String>,
    /// `linux.readonlyPaths`, relative to the root.
    pub readonly_paths: Vec<String>,
    /// `linux.rootfsPropagation` (`rslave`, `shared`...).
    pub rootfs_propagation: Option<String>,
    /// `linux.namespaces`.
    pub namespaces: Namespaces,
    /// `linux.uidMappings` / `gidMappings`, for a new user namespace.
    pub uid_mappings: Vec<IdMap>,
    pub gid_mappings: Vec<IdMap>,
    /// `linux.devices` (their rules are in `resources.devices`).
    pub devices: Vec<DeviceNode>,
    /// `process.rlimits`.
    pub rlimits: Vec<Rlimit>,
    /// `process.user.umask`.
    pub umask: u32,
    /// `process.noNewPrivileges`.
    pub no_new_privs: bool,
    /// `process.oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
    /// `domainname`.
    pub domainname: Option<String>,
    /// `linux.sysctl`, sorted by key.
    pub sysctl: Vec<(String, String)>,
    /// `linux.resources` beyond the memory limit, CPU quota and pids (`ContainerSpec.limits`).
    pub resources: Tuning,
    /// ioPriority, scheduler, execCPUAffinity, personality, memoryPolicy.
    pub attrs: ProcessAttrs,
    /// `linux.netDevices`: (host name, name inside), sorted.
    pub net_devices: Vec<(String, String)>,
}

impl Setup {
    /// docker's: its mounts, masked and read-only paths, namespaces, umask and no_new_privs.
    pub fn docker(network_namespace: bool) -> Setup {
        let mounts = default_mounts();
        Setup {
            mounts: checked_mounts(&mounts, Path::new("/"))
                .expect("minibox's own default mounts are valid"),
            masked_paths: MASKED_PATHS.iter().map(|p| p.to_string()).collect(),
            readonly_paths: READONLY_PATHS.iter().map(|p| p.to_string()).collect(),
            rootfs_propagation: None,
            namespaces: Namespaces::docker(network_namespace),
            uid_mappings: vec![],
            gid_mappings: vec![],
            devices: vec![],
            rlimits: vec![],
            umask: DOCKER_UMASK,
            no_new_privs: true,
            oom_score_adj: None,
            domainname: None,
            sysctl: vec![],
            resources: Tuning {
                devices: DeviceRules::docker(),
                ..Tuning::default()
            },
            attrs: ProcessAttrs::default(),
            net_devices: vec![],
        }
    }

    /// `--device HOST[:CONTAINER][:PERMISSIONS]` (docker's): the host's node is made in the
    /// container's `/dev` with its type, numbers, mode and owner, and the device cgroup allows
    /// it with PERMISSIONS (letters of `rwm`, default all three). The host path is looked at
    /// once, here: the container gets a node of its own, never the host's inode.
    pub fn add_host_device(&mut self, flag: &str) -> Result<()> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let parts: Vec<&str> = flag.split(':').collect();
        let (host, rest) = match parts[..] {
            [host, ref rest @ ..] if rest.len() <= 2 && !host.is_empty() => (host, rest),
            _ => bail!(
                "invalid --device {flag:?}: use HOST_PATH[:CONTAINER_PATH][:PERMISSIONS], such \
                 as /dev/fuse or /dev/sdb:/dev/xvdb:rw"
            ),
        };
        let (target, access) = match rest {
            [] => (host, "rwm"),
            [one] if Access::parse(one).is_some() => (host, *one),
            [one] => (*one, "rwm"),
            [target, access] => (*target, *access),
            _ => unreachable!("at most two parts after HOST_PATH"),
        };
        let Some(access) = Access::parse(access) else {
            bail!("invalid --device {flag:?}: permissions {access:?} must be letters of rwm");
        };
        let rel = inside_path("--device container path", Path::new(target))?;
        let Some(below) = rel.strip_prefix("dev/").filter(|r| !r.is_empty()) else {
            bail!("invalid --device {flag:?}: the container path {target} must be below /dev");
        };
        if self.devices.iter().any(|d| d.path == below) {
            bail!("invalid --device {flag:?}: the container already has /dev/{below}");
        }
        let meta = std::fs::metadata(host)
            .map_err(|e| anyhow!("--device {flag}: cannot use {host}: {e}"))?;
        let kind = if meta.file_type().is_char_device() {
            DeviceKind::Char
        } else if meta.file_type().is_block_device() {
            DeviceKind::Block
        } else {
            bail!("--device {flag}: {host} is not a device node: give a character or block device");
        };
        let (major, minor) = (
            nix::sys::stat::major(meta.rdev()),
            nix::sys::stat::minor(meta.rdev()),
        );
        let rule = Rule::new(true, kind, Some(major as u32), Some(minor as u32), access)
            .map_err(|e| anyhow!("--device {flag}: {e}"))?;
        // One of the six nodes every container has: only its rule is new (docker's
        // `--device /dev/zero` is allowed and changes nothing else).
        if let Some((_, ma, mi)) = DEVICES.iter().find(|(name, _, _)| *name == below) {
            if kind != DeviceKind::Char || (*ma, *mi) != (major, minor) {
                bail!(
                    "invalid --device {flag:?}: /dev/{below} is the container's own \
                     ({ma}:{mi}); give another container path"
                );
            }
            self.resources.devices.rules.push(rule);
            return Ok(());
        }
        self.devices.push(DeviceNode {
            path: below.to_string(),
            kind: if kind == DeviceKind::Block { 'b' } else { 'c' },
            major,
            minor,
            mode: meta.mode() & 0o777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
        self.resources.devices.rules.push(rule);
        Ok(())
    }

    /// Whether the container has a user namespace of its own, mapped by the parent.
    pub fn new_user_namespace(&self) -> bool {
        self.namespaces.creates(Kind::User)
    }
}

/// Reads the setup from config.json. `ids` are the process's uid, gid and additional gids
/// (each must be mapped in a new user namespace).
pub fn from_oci(
    oci: &Spec,
    process: &Process,
    linux: &Linux,
    bundle: &Path,
    ids: (u32, u32, &[u32]),
) -> Result<Setup> {
    let namespaces = checked_namespaces(linux.namespaces().as_deref().unwrap_or_default())?;
    let mounts = checked_mounts(oci.mounts().as_deref().unwrap_or_default(), bundle)?;
    let (uid_mappings, gid_mappings) = checked_id_maps(linux, &namespaces, ids)?;
    let devices = checked_devices(linux.devices().as_deref().unwrap_or_default(), &mounts)?;
    let rootfs_propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") => None,
        Some(p) if mounts::propagation(p).is_some() => Some(p.to_string()),
        Some(p) => bail!(
            "linux.rootfsPropagation {p:?} is invalid: use shared, slave, private or unbindable \
             (or their r- forms)"
        ),
    };
    let domainname = match oci.domainname().as_deref() {
        None | Some("") => None,
        Some(d) => {
            crate::model::names::check_hostname(d).map_err(|_| {
                anyhow!("domainname {d:?} is invalid: use 1 to 64 letters, digits, '-' or '.'")
            })?;
            namespaces::check_uts(&namespaces, "domainname")?;
            Some(d.to_string())
        }
    };
    let oom_score_adj = checked_oom_score_adj(process)?;
    let umask = match process.user().umask() {
        None => DOCKER_UMASK,
        Some(m) if m <= 0o777 => m,
        Some(m) => bail!("process.user.umask {m:o} is invalid: use 0 to 0777"),
    };
    Ok(Setup {
        masked_paths: checked_paths("linux.maskedPaths", linux.masked_paths())?,
        readonly_paths: checked_paths("linux.readonlyPaths", linux.readonly_paths())?,
        rootfs_propagation,
        uid_mappings,
        gid_mappings,
        devices,
        rlimits: checked_rlimits(process.rlimits().as_deref().unwrap_or_default())?,
        umask,
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        oom_score_adj,
        domainname,
        sysctl: checked_sysctl(linux.sysctl().as_ref(), &namespaces)?,
        // Read with the limits (`oci::read::checked_limits`), device rules too.
        resources: Tuning::default(),
        attrs: process_attrs::checked(process, linux)?,
        net_devices: checked_net_devices(linux, &namespaces)?,
        mounts,
        namespaces,
    })
}

/// `process.oomScoreAdj`, within the kernel's -1000..=1000.
pub fn checked_oom_score_adj(process: &Process) -> Result<Option<i32>> {
    match process.oom_score_adj() {
        None => Ok(None),
        Some(n) if (-1000..=1000).contains(&n) => Ok(Some(n)),
        Some(n) => bail!("process.oomScoreAdj {n} is out of range: use -1000 to 1000"),
    }
}

/// Writes the setup into config.json, as `from_oci` reads it.
pub fn write_oci(s: &Setup, spec: &mut Spec) {
    s.attrs.write_oci(spec);
    if let Some(linux) = spec.linux_mut() {
        let devices = s.net_devices.iter().map(|(host, inside)| {
            let mut d = oci_spec::runtime::LinuxNetDevice::default();
            d.set_name(Some(inside.clone()));
            (host.clone(), d)
        });
        linux.set_net_devices((!s.net_devices.is_empty()).then(|| devices.collect()));
    }
    spec.set_mounts(Some(s.mounts.iter().map(mount_of).collect()));
    spec.set_domainname(s.domainname.clone());
    if let Some(process) = spec.process_mut() {
        process.set_rlimits((!s.rlimits.is_empty()).then(|| {
            s.rlimits
                .iter()
                .filter_map(|r| {
                    PosixRlimitBuilder::default()
                        .typ(r.name.parse::<PosixRlimitType>().ok()?)
                        .soft(r.soft)
                        .hard(r.hard)
                        .build()
                        .ok()
                })
                .collect()
        }));
        process.user_mut().set_umask(Some(s.umask));
        process.set_no_new_privileges(Some(s.no_new_privs));
        process.set_oom_score_adj(s.oom_score_adj);
    }
    let Some(linux) = spec.linux_mut() else {
        return;
    };
    let mut list: Vec<LinuxNamespace> = s
        .namespaces
        .new
        .iter()
        .map(|k| {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(oci_kind(*k));
            ns
        })
        .collect();
    list.extend(s.namespaces.join.iter().map(|(k, path)| {
        let mut ns = LinuxNamespace::default();
        ns.set_typ(oci_kind(*k));
        ns.set_path(Some(path.clone()));
        ns
    }));
    linux.set_namespaces(Some(list));
    let maps = |m: &[IdMap]| {
        (!m.is_empty()).then(|| {
            m.iter()
                .filter_map(|m| {
                    LinuxIdMappingBuilder::default()
                        .container_id(m.inside)
                        .host_id(m.outside)
                        .size(m.count)
                        .build()
                        .ok()
                })
                .collect()
        })
    };
    linux.set_uid_mappings(maps(&s.uid_mappings));
    linux.set_gid_mappings(maps(&s.gid_mappings));
    linux.set_devices((!s.devices.is_empty()).then(|| {
        s.devices
            .iter()
            .map(|d| {
                let mut l = LinuxDevice::default();
                l.set_path(Path::new("/dev").join(&d.path));
                l.set_typ(match d.kind {
                    'b' => LinuxDeviceType::B,
                    'p' => LinuxDeviceType::P,
                    _ => LinuxDeviceType::C,
                });
                l.set_major(d.major as i64);
                l.set_minor(d.minor as i64);
                l.set_file_mode(Some(d.mode));
                l.set_uid(Some(d.uid));
                l.set_gid(Some(d.gid));
                l
            })
            .collect()
    }));
    let rules = &s.resources.devices.rules;
    if !rules.is_empty() {
        let mut r = linux.resources().clone().unwrap_or_default();
        r.set_devices(Some(rules.iter().map(device_cgroup_of).collect()));
        linux.set_resources(Some(r));
    }
    linux.set_sysctl((!s.sysctl.is_empty()).then(|| s.sysctl.iter().cloned().collect()));
    let abs = |l: &[String]| Some(l.iter().map(|p| format!("/{p}")).collect());
    linux.set_masked_paths(abs(&s.masked_paths));
    linux.set_readonly_paths(abs(&s.readonly_paths));
    linux.set_rootfs_propagation(s.rootfs_propagation.clone());
}

fn mount_of(m: &MountSpec) -> Mount {
    let mut mount = Mount::default();
    mount.set_destination(m.destination.clone());
    mount.set_typ(m.typ.clone());
    mount.set_source(m.source.clone());
    mount.set_options(Some(m.options.clone()));
    mount
}

fn oci_kind(k: Kind) -> LinuxNamespaceType {
    use LinuxNamespaceType as T;
    match k {
        Kind::Mount => T::Mount,
        Kind::Pid => T::Pid,
        Kind::Uts => T::Uts,
        Kind::Ipc => T::Ipc,
        Kind::Net => T::Network,
        Kind::Cgroup => T::Cgroup,
        Kind::User => T::User,
        Kind::Time => T::Time,
    }
}

fn kind_of(t: LinuxNamespaceType) -> Kind {
    use LinuxNamespaceType as T;
    match t {
        T::Mount => Kind::Mount,
        T::Pid => Kind::Pid,
        T::Uts => Kind::Uts,
        T::Ipc => Kind::Ipc,
        T::Network => Kind::Net,
        T::Cgroup => Kind::Cgroup,
        T::User => Kind::User,
        T::Time => Kind::Time,
    }
}

/// An absolute path without `..`: its relative form below `/`.
fn inside_path(field: &str, path: &Path) -> Result<String> {
    if !path.is_absolute() {
        bail!(
            "{field} {:?} must be an absolute path inside the container",
            path.display().to_string()
        );
    }
    let mut parts = vec![];
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::RootDir | Component::CurDir => {}
            _ => bail!(
                "{field} {:?} must not contain '..'",
                path.display().to_string()
            ),
        }
    }
    Ok(parts.join("/"))
}

pub(crate) fn checked_mounts(given: &[Mount], bundle: &Path) -> Result<Vec<MountSpec>> {
    given
        .iter()
        .enumerate()
        .map(|(i, m)| checked_mount(i, m, bundle))
        .collect()
}

fn checked_mount(i: usize, m: &Mount, bundle: &Path) -> Result<MountSpec> {
    let field = format!("mounts[{i}]");
    let rel = inside_path(&format!("{field}.destination"), m.destination())?;
    if rel.is_empty() {
        bail!("{field}.destination / is the container's root: give a path below it");
    }
    if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
        bail!("{field} uidMappings/gidMappings (id-mapped mounts) are not supported yet");
    }
    let options = m.options().clone().unwrap_or_default();
    let typ = m.typ().clone().filter(|t| !t.is_empty());
    let bind_type = matches!(typ.as_deref(), Some("bind") | Some("none"));
    let parsed = mounts::parse_options(&options, bind_type).map_err(|e| anyhow!("{field}: {e}"))?;
    if !parsed.ignored.is_empty() {
        say!(
            "minibox: warning: {field}: option {} means nothing to a bind mount (no filesystem \
             takes it); ignored, as runc does",
            parsed.ignored.join(",")
        );
    }
    let mut source = m.source().clone();
    if parsed.bind {
        let Some(src) = source.as_ref().filter(|s| !s.as_os_str().is_empty()) else {
            bail!("{field}: a bind mount needs a source (a host path)");
        };
        let host = if src.is_absolute() {
            src.clone()
        } else {
            bundle.join(src)
        };
        std::fs::metadata(&host).map_err(|e| {
            anyhow!(
                "{field}: the bind source {} cannot be used: {e}",
                host.display()
            )
        })?;
        source = Some(host);
    } else {
        if !typ.as_deref().is_some_and(|t| mounts::TYPES.contains(&t)) {
            bail!(
                "{field} type {:?} is not supported: use bind, {}",
                typ.as_deref().unwrap_or(""),
                mounts::TYPES.join(", ")
            );
        }
    }
    Ok(MountSpec {
        destination: m.destination().clone(),
        typ,
        source,
        options,
        parsed,
    })
}

/// `linux.netDevices`: host device → its name inside (its own when none is given).
fn checked_net_devices(linux: &Linux, ns: &Namespaces) -> Result<Vec<(String, String)>> {
    const SECTION: &str = "runtime-spec config-linux.md#network-devices";
    let Some(given) = linux.net_devices().as_ref().filter(|d| !d.is_empty()) else {
        return Ok(vec![]);
    };
    if !ns.has(Kind::Net) {
        bail!(
            "linux.netDevices needs a network namespace of the container's own (or one it \
             joins): add {{\"type\": \"network\"}} to linux.namespaces ({SECTION})"
        );
    }
    let valid = |n: &str| {
        !n.is_empty()
            && n.len() < 16
            && n != "."
            && n != ".."
            && !n.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
    };
    let mut out = vec![];
    for (host, dev) in given {
        let inside = dev
            .name()
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or(host.clone());
        for name in [host, &inside] {
            if !valid(name) {
                bail!(
                    "linux.netDevices: {name:?} is not a network device name (1 to 15 \
                     characters, no '/', ':' or space) ({SECTION})"
                );
            }
        }
        if host == "lo" {
            bail!("linux.netDevices: lo cannot move: every namespace has its own ({SECTION})");
        }
        out.push((host.clone(), inside));
    }
    out.sort();
    Ok(out)
}

fn checked_paths(field: &str, given: &Option<Vec<String>>) -> Result<Vec<String>> {
    given
        .iter()
        .flatten()
        .map(|p| inside_path(field, Path::new(p)))
        .collect()
}

fn checked_namespaces(list: &[LinuxNamespace]) -> Result<Namespaces> {
    let mut seen = HashSet::new();
    let mut ns = Namespaces::default();
    for (i, n) in list.iter().enumerate() {
        let kind = kind_of(n.typ());
        let name = kind.oci_name();
        if !seen.insert(kind) {
            bail!("linux.namespaces[{i}]: {name} is listed twice");
        }
        if kind == Kind::Time && !Path::new("/proc/self/ns/time").exists() {
            bail!("linux.namespaces[{i}] time: this kernel has no time namespaces");
        }
        match n.path() {
            None => ns.new.push(kind),
            Some(path) => {
                let found = namespaces::kind_of_file(path).map_err(|why| {
                    anyhow!(
                        "linux.namespaces[{i}] {name} path {}: {why}",
                        path.display()
                    )
                })?;
                if found != kind.flag() {
                    bail!(
                        "linux.namespaces[{i}] {name} path {} is not a {name} namespace",
                        path.display()
                    );
                }
                ns.join.push((kind, path.clone()));
            }
        }
    }
    Ok(ns)
}

fn checked_id_maps(
    linux: &Linux,
    ns: &Namespaces,
    (uid, gid, groups): (u32, u32, &[u32]),
) -> Result<(Vec<IdMap>, Vec<IdMap>)> {
    let read = |field: &str, given: &Option<Vec<LinuxIdMapping>>| -> Result<Vec<IdMap>> {
        let list = given.clone().unwrap_or_default();
        if list.len() > 340 {
            bail!(
                "linux.{field} has {} lines: the kernel takes at most 340",
                list.len()
            );
        }
        list.iter()
            .enumerate()
            .map(|(i, m)| {
                let ok = m.size() > 0
                    && m.container_id().checked_add(m.size()).is_some()
                    && m.host_id().checked_add(m.size()).is_some();
                if !ok {
                    bail!("linux.{field}[{i}] is invalid: size must be at least 1 and the range fit in 32 bits");
                }
                Ok(IdMap {
                    inside: m.container_id(),
                    outside: m.host_id(),
                    count: m.size(),
                })
            })
            .collect()
    };
    let uids = read("uidMappings", linux.uid_mappings())?;
    let gids = read("gidMappings", linux.gid_mappings())?;
    if !ns.creates(Kind::User) {
        if !uids.is_empty() || !gids.is_empty() {
            bail!(
                "linux.uidMappings/gidMappings need a new user namespace: add {{\"type\": \
                 \"user\"}} to linux.namespaces"
            );
        }
        return Ok((uids, gids));
    }
    if uids.is_empty() || gids.is_empty() {
        bail!(
            "linux.namespaces has a new user namespace, which needs linux.uidMappings and \
             linux.gidMappings (e.g. containerID 0, hostID 100000, size 65536)"
        );
    }
    if !namespaces::is_mapped(&uids, uid) {
        bail!("process.user.uid {uid} is not mapped by linux.uidMappings");
    }
    for g in std::iter::once(&gid).chain(groups) {
        if !namespaces::is_mapped(&gids, *g) {
            bail!("process.user gid {g} is not mapped by linux.gidMappings");
        }
    }
    Ok((uids, gids))
}

fn checked_devices(given: &[LinuxDevice], mounts: &[MountSpec]) -> Result<Vec<DeviceNode>> {
    if given.is_empty() {
        return Ok(vec![]);
    }
    let dev_tmpfs = mounts
        .iter()
        .any(|m| m.destination == Path::new("/dev") && m.typ.as_deref() == Some("tmpfs"));
    if !dev_tmpfs {
        bail!(
            "linux.devices needs a tmpfs mounted on /dev in mounts: minibox makes the nodes in \
             a /dev of the container's own"
        );
    }
    let mut seen = HashSet::new();
    given
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let field = format!("linux.devices[{i}]");
            let rel = inside_path(&format!("{field}.path"), d.path())?;
            let Some(below) = rel.strip_prefix("dev/").filter(|r| !r.is_empty()) else {
                bail!("{field}.path {} must be below /dev", d.path().display());
            };
            if DEVICES.iter().any(|(name, _, _)| *name == below) {
                bail!("{field}.path /dev/{below} is one of the nodes minibox always makes");
            }
            if !seen.insert(below.to_string()) {
                bail!("{field}.path /dev/{below} is listed twice");
            }
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => 'c',
                LinuxDeviceType::B => 'b',
                LinuxDeviceType::P => 'p',
                LinuxDeviceType::A => bail!("{field}.type a is not a kind of node: use c, b or p"),
            };
            if d.major() < 0 || d.minor() < 0 {
                bail!("{field}: major and minor must not be negative");
            }
            Ok(DeviceNode {
                path: below.to_string(),
                kind,
                major: d.major() as u64,
                minor: d.minor() as u64,
                mode: d.file_mode().unwrap_or(0o666) & 0o777,
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            })
        })
        .collect()
}

/// `linux.resources.devices`: each rule checked by name, and the list as a whole (the device
/// cgroup must be able to apply it).
pub fn checked_device_rules(given: &[LinuxDeviceCgroup]) -> Result<DeviceRules> {
    let rules = given
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let field = format!("linux.resources.devices[{i}]");
            let kind = match r.typ() {
                None | Some(LinuxDeviceType::A) => DeviceKind::All,
                Some(LinuxDeviceType::C) => DeviceKind::Char,
                Some(LinuxDeviceType::B) => DeviceKind::Block,
                Some(t) => bail!(
                    "{field}.type {} is not a type the device cgroup knows: use a, c or b",
                    t.as_str()
                ),
            };
            let number = |name: &str, n: Option<i64>| -> Result<Option<u32>> {
                match n {
                    // -1 is how some engines write "all" (runc's wildcard).
                    None | Some(-1) => Ok(None),
                    Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                        anyhow!("{field}.{name} {n} is invalid: give a device number, or leave it out for all")
                    }),
                }
            };
            let access = match r.access().as_deref() {
                None => Access::ALL,
                Some(a) => Access::parse(a).ok_or_else(|| {
                    anyhow!("{field}.access {a:?} is invalid: use letters of rwm")
                })?,
            };
            Rule::new(
                r.allow(),
                kind,
                number("major", r.major())?,
                number("minor", r.minor())?,
                access,
            )
            .map_err(|e| anyhow!("{field}: {e}"))
        })
        .collect::<Result<Vec<Rule>>>()?;
    let rules = DeviceRules::config(rules);
    rules.filter()?;
    Ok(rules)
}

/// A rule as config.json writes it.
fn device_cgroup_of(rule: &Rule) -> LinuxDeviceCgroup {
    let mut d = LinuxDeviceCgroup::default();
    d.set_allow(rule.allow);
    d.set_typ(Some(match rule.nodes.kind {
        DeviceKind::All => LinuxDeviceType::A,
        DeviceKind::Char => LinuxDeviceType::C,
        DeviceKind::Block => LinuxDeviceType::B,
    }));
    d.set_major(rule.nodes.major.map(i64::from));
    d.set_minor(rule.nodes.minor.map(i64::from));
    d.set_access(Some(rule.access.to_string()));
    d
}

pub fn checked_rlimits(given: &[PosixRlimit]) -> Result<Vec<Rlimit>> {
    let mut seen = HashSet::new();
    given
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name = r.typ().to_string();
            if kproc::resource(&name).is_none() {
                bail!("process.rlimits[{i}] {name} is not known to this minibox");
            }
            if !seen.insert(name.clone()) {
                bail!("process.rlimits[{i}]: {name} is listed twice");
            }
            if r.soft() > r.hard() {
                bail!(
                    "process.rlimits[{i}] {name}: soft {} is above hard {}",
                    r.soft(),
                    r.hard()
                );
            }
            Ok(Rlimit {
                name,
                soft: r.soft(),
                hard: r.hard(),
            })
        })
        .collect()
}

/// docker's `--ulimit` names, each the kernel's `RLIMIT_*` of the same name.
pub const ULIMIT_NAMES: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit NAME=SOFT[:HARD]`, docker's syntax (HARD defaults to SOFT; -1 is unlimited), each
/// becoming a `process.rlimits` entry; a later flag for the same name wins, as in docker.
pub fn parse_ulimits(flags: &[String]) -> Result<Vec<Rlimit>> {
    let mut limits: Vec<Rlimit> = vec![];
    for flag in flags {
        let bad = |why: String| {
            anyhow::anyhow!(
                "invalid --ulimit {flag:?}: {why}; use NAME=SOFT[:HARD], e.g. nofile=1024:2048"
            )
        };
        let (name, values) = flag.split_once('=').ok_or_else(|| bad("no '='".into()))?;
        if !ULIMIT_NAMES.contains(&name) {
            return Err(bad(format!(
                "{name:?} is not a limit's name (one of {})",
                ULIMIT_NAMES.join(", ")
            )));
        }
        let value = |text: &str| -> Result<u64> {
            match text.parse::<i64>() {
                Ok(-1) => Ok(libc::RLIM_INFINITY),
                Ok(n) if n >= 0 => Ok(n as u64),
                _ => Err(bad(format!(
                    "{text:?} is not a limit (a number, or -1 for unlimited)"
                ))),
            }
        };
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (value(s)?, value(h)?),
            None => (value(values)?, value(values)?),
        };
        if soft > hard {
            return Err(bad(format!(
                "the soft limit must not be above the hard one ({} > {})",
                shown_limit(soft),
                shown_limit(hard)
            )));
        }
        let name = format!("RLIMIT_{}", name.to_ascii_uppercase());
        limits.retain(|l| l.name != name);
        limits.push(Rlimit { name, soft, hard });
    }
    Ok(limits)
}

fn shown_limit(value: u64) -> String {
    match value {
        libc::RLIM_INFINITY => "unlimited".into(),
        n => n.to_string(),
    }
}

fn checked_sysctl(
    given: Option<&HashMap<String, String>>,
    ns: &Namespaces,
) -> Result<Vec<(String, String)>> {
    let mut list: Vec<(String, String)> = given
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    list.sort();
    for (key, value) in &list {
        let ok = !key.is_empty()
            && !key.contains("..")
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !ok || value.contains('\0') {
            bail!("linux.sysctl {key:?} is not a sysctl name (letters, digits, '.', '_', '-')");
        }
        // A namespace the container shares with the host is never its to tune: one made for
        // it, or one joined by path that is not minibox's own (the host's).
        let has = |kind: Kind| {
            ns.creates(kind)
                || ns
                    .join
                    .iter()
                    .any(|(k, p)| *k == kind && !namespaces::is_callers_own(kind, p))
        };
        match kproc::sysctl_namespace(key) {
            None => bail!(
                "linux.sysctl {key} is not namespaced: setting it would change the host; \
                 minibox allows net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, \
                 kernel.hostname and kernel.domainname"
            ),
            Some("ipc") if !has(Kind::Ipc) => {
                bail!("linux.sysctl {key} needs an ipc namespace of the container's")
            }
            Some("network") if !has(Kind::Net) => {
                bail!("linux.sysctl {key} needs a network namespace of the container's")
            }
            Some("uts") if !has(Kind::Uts) => {
                bail!("linux.sysctl {key} needs a uts namespace of the container's")
            }
            _ => {}
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: serde_json::Value) -> LinuxDeviceCgroup {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn device_rules_are_read_by_name_and_written_back_alike() {
        let engine = vec![
            rule(json!({"allow": false, "access": "rwm"})),
            rule(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"})),
            rule(json!({"allow": true, "type": "c", "major": 136, "access": "rw"})),
            rule(json!({"allow": false, "type": "b", "major": -1, "minor": -1, "access": "m"})),
        ];
        let rules = checked_device_rules(&engine).unwrap();
        let text: Vec<String> = rules.rules.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            text,
            [
                "deny a rwm",
                "allow c 1:3 rwm",
                "allow c 136:* rw",
                "deny b *:* m"
            ]
        );
        let back: Vec<Rule> = rules
            .rules
            .iter()
            .map(|r| {
                let d = device_cgroup_of(r);
                checked_device_rules(&[d]).unwrap().rules[0]
            })
            .collect();
        assert_eq!(back, rules.rules);
        let err = |v| checked_device_rules(&[rule(v)]).unwrap_err().to_string();
        assert!(err(json!({"allow": true, "type": "c", "access": "rwx"}))
            .contains("linux.resources.devices[0].access \"rwx\" is invalid"));
        assert!(err(json!({"allow": true, "type": "c", "access": ""})).contains("access"));
        assert!(err(json!({"allow": true, "type": "p"})).contains("use a, c or b"));
        assert!(err(json!({"allow": true, "type": "c", "major": -5})).contains("major -5"));
        assert!(err(json!({"allow": true, "type": "b", "major": 5000})).contains("out of range"));
        let hole = checked_device_rules(&[
            rule(json!({"allow": true, "type": "c", "access": "rwm"})),
            rule(json!({"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rw"})),
        ]);
        assert!(hole.is_ok(), "an allow-all list may deny c 1:3");
        let hole = checked_device_rules(&[
            rule(json!({"allow": false, "access": "rwm"})),
            rule(json!({"allow": true, "type": "c", "access": "rwm"})),
            rule(json!({"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rw"})),
        ])
        .unwrap_err()
        .to_string();
        assert!(hole.contains("linux.resources.devices[2]"), "{hole}");
    }

    #[test]
    fn a_host_device_is_made_in_dev_and_allowed_as_docker_spells_it() {
        let mut s = Setup::docker(true);
        s.add_host_device("/dev/null:/dev/mynull:rw").unwrap();
        s.add_host_device("/dev/zero:/dev/sub/z").unwrap();
        s.add_host_device("/dev/full:r").unwrap();
        assert_eq!(
            s.devices.len(),
            2,
            "/dev/full is made anyway: only its rule is added"
        );
        let e = s
            .add_host_device("/dev/zero:/dev/null")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/dev/null is the container's own (1:3)"), "{e}");
        let node = &s.devices[0];
        let host = {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata("/dev/null").unwrap();
            (m.mode() & 0o777, m.uid(), m.gid())
        };
        assert_eq!(
            (node.path.as_str(), node.kind, node.major, node.minor),
            ("mynull", 'c', 1, 3)
        );
        assert_eq!(
            (node.mode, node.uid, node.gid),
            host,
            "the host node's mode and owner"
        );
        assert_eq!(s.devices[1].path, "sub/z");
        let added: Vec<String> = s.resources.devices.rules[DOCKER_RULES..]
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            added,
            ["allow c 1:3 rw", "allow c 1:5 rwm", "allow c 1:7 r"]
        );
        assert!(s
            .resources
            .devices
            .summary()
            .starts_with("docker default + 3 --device"));
        let err = |flag: &str| {
            Setup::docker(true)
                .add_host_device(flag)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("/dev/null:/dev/x:rwx").contains("letters of rwm"),
            "rwx"
        );
        assert!(err("/dev/null:/etc/x").contains("must be below /dev"));
        assert!(err("/dev/null:/dev/../x").contains("'..'"));
        assert!(err("/etc/passwd:/dev/x").contains("not a device node"));
        assert!(err("/nonexistent-mbx:/dev/x").contains("cannot use /nonexistent-mbx"));
        assert!(err("a:b:c:d").contains("invalid --device"));
        assert!(err("").contains("invalid --device"));
        let mut twice = Setup::docker(true);
        twice.add_host_device("/dev/null:/dev/a").unwrap();
        assert!(twice
            .add_host_device("/dev/zero:/dev/a")
            .unwrap_err()
            .to_string()
            .contains("already has /dev/a"));
    }

    /// How many rules docker's own list has, before `--device` adds any.
    const DOCKER_RULES: usize = crate::kernel::cgroup::devices::DOCKER_DEFAULT.len();

    #[test]
    fn sysctls_must_be_the_containers() {
        let ns = Namespaces::docker(true);
        let map = |k: &str| HashMap::from([(k.to_string(), "1".to_string())]);
        assert!(checked_sysctl(Some(&map("net.ipv4.ip_forward")), &ns).is_ok());
        assert!(checked_sysctl(Some(&map("kernel.shmmax")), &ns).is_ok());
        let err =
            |k: &str, ns: &Namespaces| checked_sysctl(Some(&map(k)), ns).unwrap_err().to_string();
        assert!(err("kernel.pid_max", &ns).contains("not namespaced"));
        assert!(err("vm.swappiness", &ns).contains("vm.swappiness is not namespaced"));
        assert!(err("net.ipv4/../x", &ns).contains("not a sysctl name"));
        assert!(err("net.ipv4.ip_forward", &Namespaces::docker(false))
            .contains("needs a network namespace"));
    }

    #[test]
    fn namespaces_must_be_of_their_type() {
        let ns =
            |v: serde_json::Value| -> Vec<LinuxNamespace> { serde_json::from_value(v).unwrap() };
        let ok = checked_namespaces(&ns(json!([
            {"type": "mount"}, {"type": "network", "path": "/proc/self/ns/net"}
        ])))
        .unwrap();
        assert_eq!(ok.new, [Kind::Mount]);
        assert!(ok.has(Kind::Net) && !ok.creates(Kind::Net) && !ok.has(Kind::Pid));
        let e = checked_namespaces(&ns(json!([
            {"type": "mount"}, {"type": "network", "path": "/proc/self/ns/uts"}
        ])))
        .unwrap_err()
        .to_string();
        assert!(e.contains("is not a network namespace"), "{e}");
        let e = checked_namespaces(&ns(json!([
            {"type": "mount"}, {"type": "ipc", "path": "/etc/passwd"}
        ])))
        .unwrap_err()
        .to_string();
        assert!(e.contains("it is not a namespace file"), "{e}");
        // No mount: the caller's is shared (the runtime spec's rule for a missing type).
        let shared = checked_namespaces(&ns(json!([{"type": "pid"}]))).unwrap();
        assert!(!shared.has(Kind::Mount));
    }

    #[test]
    fn mounts_are_checked_by_name() {
        let m = |v: serde_json::Value| -> Vec<Mount> { serde_json::from_value(v).unwrap() };
        let err = |v| {
            checked_mounts(&m(v), Path::new("/"))
                .unwrap_err()
                .to_string()
        };
        assert!(err(json!([{"destination": "rel", "type": "tmpfs"}])).contains("absolute"));
        assert!(err(json!([{"destination": "/x", "type": "nfs"}])).contains("type \"nfs\""));
        assert!(
            err(json!([{"destination": "/x", "type": "bind", "source": "/nonexistent-mbx"}]))
                .contains("/nonexistent-mbx")
        );
        assert!(
            err(json!([{"destination": "/x", "options": ["rbind"]}])).contains("needs a source")
        );
        // A bind's filesystem options mean nothing: ignored (a warning), as runc.
        let bind = json!([{"destination": "/x", "source": "/tmp", "options": ["bind", "mode=1"]}]);
        assert_eq!(
            checked_mounts(&m(bind), Path::new("/")).unwrap()[0]
                .parsed
                .ignored,
            ["mode=1"]
        );
        let ok = checked_mounts(
            &m(json!([{"destination": "/a/b", "source": "/tmp", "options": ["rbind", "ro"]}])),
            Path::new("/"),
        )
        .unwrap();
        assert!(ok[0].parsed.bind && ok[0].parsed.recursive);
        // `dev` is honoured: the device cgroup decides which nodes open.
        let dev = checked_mounts(
            &m(json!([
                {"destination": "/x", "type": "tmpfs", "options": ["dev"]},
                {"destination": "/y", "source": "/tmp", "options": ["bind", "dev"]}
            ])),
            Path::new("/"),
        )
        .unwrap();
        assert!(dev
            .iter()
            .all(|m| m.parsed.cleared.contains(nix::mount::MsFlags::MS_NODEV)));
        let rel = checked_mounts(
            &m(json!([{"destination": "/a", "source": "tmp", "type": "bind"}])),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(rel[0].source.as_deref(), Some(Path::new("/tmp")));
    }
    #[test]
    fn ulimits_follow_dockers_syntax() {
        let flags = ["nofile=1024:2048", "core=0", "stack=-1", "nofile=10:20"].map(String::from);
        let l = parse_ulimits(&flags).unwrap();
        let got: Vec<(&str, u64, u64)> = l
            .iter()
            .map(|r| (r.name.as_str(), r.soft, r.hard))
            .collect();
        assert_eq!(
            got,
            [
                ("RLIMIT_CORE", 0, 0),
                ("RLIMIT_STACK", libc::RLIM_INFINITY, libc::RLIM_INFINITY),
                ("RLIMIT_NOFILE", 10, 20),
            ]
        );
        // Every name docker knows is the kernel's.
        for name in ULIMIT_NAMES {
            let l = parse_ulimits(&[format!("{name}=1")]).unwrap();
            assert!(kproc::resource(&l[0].name).is_some(), "{name}");
        }
        for bad in [
            "nofile",
            "files=1",
            "nofile=2:1",
            "nofile=x",
            "nofile=-2",
            "nofile=-1:5",
            "NOFILE=1",
        ] {
            let e = parse_ulimits(&[bad.to_string()]).unwrap_err().to_string();
            assert!(e.contains("invalid --ulimit"), "{bad}: {e}");
        }
    }
}
