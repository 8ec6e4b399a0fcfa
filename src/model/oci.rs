//! The OCI runtime spec (`config.json`, runtime-spec 1.x) as minibox's one description of a
//! container.
//!
//! Two front ends describe containers, and both go through a `Spec` to reach the runtime:
//!
//! ```text
//! run flags ─(cli::run: docker's defaults, each flag checked)─▶ draft ContainerSpec
//!           ─spec_from_container─▶ Spec   (what `minibox spec` prints)
//! DIR/config.json ─load─▶ Spec            (`minibox run --bundle DIR ID`)
//! Spec ─container_from_spec (every field checked)─▶ ContainerSpec ─▶ launcher, init
//! ```
//!
//! `container_from_spec` is the only way to the launcher: whatever a bundle may not ask for,
//! flags cannot slip past either, and `minibox spec` prints exactly what a run uses. The checked
//! form stays a small type of minibox's own rather than `Spec` itself: it holds only what
//! minibox does, each value already decided (a canonical rootfs, one capability set, limits in
//! the kernel's units), so the launcher and init never re-read optional JSON.
//!
//! What the spec has no field for travels in annotations:
//! - `org.minibox.network`: `private` (own network namespace, `lo` up), `none` (own namespace,
//!   `lo` down), `host` (no network namespace), `container:NAME` (no namespace of its own: that
//!   container's), or the name of a minibox network (`bridge`...: own namespace, plugged into
//!   it). Without it: `private` when `linux.namespaces` has `network`, else `host`. A `network`
//!   namespace with a `path` joins that namespace (e.g. `/proc/PID/ns/net`).
//! - `org.minibox.ip`, `org.minibox.dns`, `org.minibox.add-hosts`,
//!   `org.minibox.network-aliases`: `--ip`, `--dns`, `--add-host`, `--network-alias`
//!   (comma-separated lists).
//! - `org.minibox.ports`: published ports, comma-separated, each in `-p`'s syntax
//!   `HOST_IP:HOST_PORT:CONTAINER_PORT/tcp`.
//! - `org.minibox.init`: `true` for `--init` (a tiny init is PID 1 and runs process.args as
//!   its child, forwarding signals and reaping zombies).
//! - `org.minibox.seccomp`: what to call `linux.seccomp` for people (`docker default`, a
//!   profile file's path); the filter itself is `linux.seccomp`, resolved for the container's
//!   capabilities. Without `linux.seccomp` a bundle's container has no filter, as in runc.
//!
//! How a run is called and told about (its name, `--explain`, `-d`, `--rm`) is not part of the
//! container: the caller sets those. A bundle without `hostname` gets the short id (docker's
//! default); without `linux.cgroupsPath`, the group `minibox/<id>`. A cgroupsPath is placed as
//! `--cgroup-parent` is: below the cgroup2 root, or below minibox's own group on cgroup v1,
//! whether it starts with `/` or not.
//!
//! A field minibox cannot honour yet is refused by name, never ignored: above all one whose
//! absence would weaken isolation (seccomp, AppArmor, SELinux). The mounts, paths, namespaces,
//! devices, rlimits and the rest of what init sets up are read and written by `model::setup`.
//! Properties the runtime spec does not define are ignored, as it requires.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{
    Capabilities, Capability as OciCap, Hook, Hooks, Linux, LinuxCapabilities, LinuxCpu,
    LinuxMemory, LinuxPids, LinuxResources, Mount, Process, Root, Spec, User,
};

use crate::kernel::caps::{CapSets, Capability, CapsHashSet};
use crate::kernel::cgroup::{Limits, Tuning, CPU_PERIOD_US, MIN_MEMORY};
use crate::kernel::console::ConsoleSize;
use crate::kernel::namespaces::{self, Kind};
use crate::kernel::seccomp::SeccompProfile;
use crate::model::network::{NetOptions, Network, PortMapping};
use crate::model::setup::{self, Setup};
use crate::model::spec::{build_env, check_hostname, read_in_root, ContainerSpec, SHORT_ID_LEN};
use crate::model::user::{self, Identity, NOBODY};
use crate::model::volume::{ImageUse, VolumeMount, VolumeSource};

/// `--network`, for a config.json.
pub const ANNOTATION_NETWORK: &str = "org.minibox.network";
/// `-p`, for a config.json.
pub const ANNOTATION_PORTS: &str = "org.minibox.ports";
/// The seccomp profile's name, for `--explain`, `ps` and `inspect`.
pub const ANNOTATION_SECCOMP: &str = "org.minibox.seccomp";
/// `--init`: `true` runs a tiny init as PID 1, with process.args as its child.
pub const ANNOTATION_INIT: &str = "org.minibox.init";
/// `--ip`, `--dns`, `--add-host`, `--network-alias`, for a config.json.
pub const ANNOTATION_IP: &str = "org.minibox.ip";
pub const ANNOTATION_DNS: &str = "org.minibox.dns";
pub const ANNOTATION_ADD_HOSTS: &str = "org.minibox.add-hosts";
pub const ANNOTATION_ALIASES: &str = "org.minibox.network-aliases";
const KNOWN_ANNOTATIONS: [&str; 8] = [
    ANNOTATION_SECCOMP,
    ANNOTATION_INIT,
    ANNOTATION_NETWORK,
    ANNOTATION_PORTS,
    ANNOTATION_IP,
    ANNOTATION_DNS,
    ANNOTATION_ADD_HOSTS,
    ANNOTATION_ALIASES,
];

/// The image a container is made from (`hello:1`), its id, its layer directories (a JSON
/// array, top first; `root.path` is the first), its stop signal and exposed ports.
pub const ANNOTATION_IMAGE: &str = "org.minibox.image";
pub const ANNOTATION_IMAGE_ID: &str = "org.minibox.image.id";
pub const ANNOTATION_IMAGE_LAYERS: &str = "org.minibox.image.layers";
pub const ANNOTATION_STOP_SIGNAL: &str = "org.minibox.image.stop-signal";
pub const ANNOTATION_EXPOSED_PORTS: &str = "org.minibox.image.exposed-ports";
const IMAGE_ANNOTATIONS: [&str; 5] = [
    ANNOTATION_IMAGE,
    ANNOTATION_IMAGE_ID,
    ANNOTATION_IMAGE_LAYERS,
    ANNOTATION_STOP_SIGNAL,
    ANNOTATION_EXPOSED_PORTS,
];

/// The umask every container starts with (docker's); init sets it.
pub const UMASK: u32 = 0o022;

/// Where a container's group goes when nothing says otherwise (`--cgroup-parent`'s default).
const DEFAULT_CGROUP_PARENT: &str = "minibox";

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

/// The config.json a container is made from: what `minibox spec` prints.
pub fn spec_from_container(c: &ContainerSpec) -> Spec {
    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_string());
    let mut root = Root::default();
    root.set_path(c.rootfs.clone());
    root.set_readonly(Some(c.read_only));
    spec.set_root(Some(root));
    spec.set_process(Some(process_of(c)));
    spec.set_hostname((!c.hostname.is_empty()).then(|| c.hostname.clone()));
    spec.set_linux(Some(linux_of(c)));
    setup::write_oci(&c.setup, &mut spec);
    let mut annotations = HashMap::new();
    // A joined namespace is said by its path in linux.namespaces.
    if !matches!(c.network, Network::Join(_)) {
        annotations.insert(ANNOTATION_NETWORK.to_string(), c.network.name());
    }
    let mut list = |key: &str, items: Vec<String>| {
        if !items.is_empty() {
            annotations.insert(key.to_string(), items.join(","));
        }
    };
    list(
        ANNOTATION_IP,
        c.net.ip.iter().map(|i| i.to_string()).collect(),
    );
    list(
        ANNOTATION_DNS,
        c.net.dns.iter().map(|i| i.to_string()).collect(),
    );
    list(
        ANNOTATION_ADD_HOSTS,
        c.net
            .add_hosts
            .iter()
            .map(|(n, a)| format!("{n}:{a}"))
            .collect(),
    );
    list(ANNOTATION_ALIASES, c.net.aliases.clone());
    if !c.ports.is_empty() {
        let ports: Vec<String> = c.ports.iter().map(port_text).collect();
        annotations.insert(ANNOTATION_PORTS.to_string(), ports.join(","));
    }
    if let Some(profile) = &c.seccomp {
        annotations.insert(ANNOTATION_SECCOMP.to_string(), profile.name.clone());
    }
    if c.init {
        annotations.insert(ANNOTATION_INIT.to_string(), "true".into());
    }
    if let Some(image) = &c.image {
        annotations.insert(ANNOTATION_IMAGE.into(), image.reference.clone());
        annotations.insert(ANNOTATION_IMAGE_ID.into(), image.id.clone());
        let layers: Vec<String> = image
            .lower
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        annotations.insert(
            ANNOTATION_IMAGE_LAYERS.into(),
            serde_json::to_string(&layers).unwrap_or_default(),
        );
        if let Some(sig) = &image.stop_signal {
            annotations.insert(ANNOTATION_STOP_SIGNAL.into(), sig.clone());
        }
        if !image.exposed_ports.is_empty() {
            annotations.insert(
                ANNOTATION_EXPOSED_PORTS.into(),
                image.exposed_ports.join(","),
            );
        }
    }
    spec.set_annotations(Some(annotations));
    spec
}

fn process_of(c: &ContainerSpec) -> Process {
    let mut user = User::default();
    user.set_uid(c.identity.uid);
    user.set_gid(c.identity.gid);
    user.set_umask(Some(UMASK));
    user.set_additional_gids((!c.identity.groups.is_empty()).then(|| c.identity.groups.clone()));
    let set =
        |s: &CapsHashSet| -> Capabilities { s.iter().filter_map(|&cap| oci_cap(cap)).collect() };
    let sets = &c.capabilities;
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set(&sets.bounding)));
    caps.set_effective(Some(set(&sets.effective)));
    caps.set_permitted(Some(set(&sets.permitted)));
    caps.set_inheritable(Some(set(&sets.inheritable)));
    caps.set_ambient(Some(set(&sets.ambient)));
    let mut process = Process::default();
    process.set_terminal(Some(c.tty));
    process.set_console_size(c.console_size.and_then(|s| {
        oci_spec::runtime::BoxBuilder::default()
            .height(u64::from(s.rows))
            .width(u64::from(s.cols))
            .build()
            .ok()
    }));
    process.set_user(user);
    process.set_args(Some(c.args.clone()));
    process.set_env(Some(c.env.clone()));
    process.set_cwd(c.workdir.clone());
    process.set_capabilities(Some(caps));
    process
}

/// minibox's default mounts (docker's), as config.json writes them.
pub(crate) fn default_mounts() -> Vec<Mount> {
    MOUNTS.iter().map(mount_of).collect()
}

fn mount_of(m: &FixedMount) -> Mount {
    let mut mount = Mount::default();
    mount.set_destination(m.destination.into());
    mount.set_typ(Some(m.typ.into()));
    mount.set_source(Some(m.source.into()));
    mount.set_options(Some(m.options.iter().map(|o| o.to_string()).collect()));
    mount
}

/// A `-v`, `--mount` or `--tmpfs` mount, as config.json writes it.
pub fn volume_mount_of(v: &VolumeMount) -> Mount {
    let mut mount = Mount::default();
    mount.set_destination(v.target.clone());
    let mut options: Vec<String> = vec![];
    match &v.source {
        VolumeSource::Bind(path) | VolumeSource::Named { path, .. } => {
            mount.set_typ(Some("bind".into()));
            mount.set_source(Some(path.clone()));
            options.push("rbind".into());
        }
        VolumeSource::Tmpfs { size, mode } => {
            mount.set_typ(Some("tmpfs".into()));
            mount.set_source(Some("tmpfs".into()));
            options.extend(size.map(|s| format!("size={s}")));
            options.extend(mode.map(|m| format!("mode={m:o}")));
        }
    }
    options.extend(["nosuid".to_string(), "nodev".to_string()]);
    if v.read_only {
        options.push("ro".into());
    }
    mount.set_options(Some(options));
    mount
}

/// The image annotations, checked: every layer an existing directory, the first `root.path`.
fn checked_image(
    annotations: Option<&HashMap<String, String>>,
    rootfs: &Path,
) -> Result<Option<ImageUse>> {
    let Some(a) = annotations else {
        return Ok(None);
    };
    let Some(layers) = a.get(ANNOTATION_IMAGE_LAYERS) else {
        if a.contains_key(ANNOTATION_IMAGE) {
            bail!("annotation {ANNOTATION_IMAGE} without {ANNOTATION_IMAGE_LAYERS}: give both");
        }
        return Ok(None);
    };
    let layers: Vec<PathBuf> = serde_json::from_str(layers).map_err(|e| {
        anyhow!("annotation {ANNOTATION_IMAGE_LAYERS} is not a JSON array of paths: {e}")
    })?;
    let mut lower = vec![];
    for (i, l) in layers.iter().enumerate() {
        let p = l
            .canonicalize()
            .ok()
            .filter(|p| p.is_dir() && p != Path::new("/") && l.is_absolute())
            .ok_or_else(|| {
                anyhow!(
                    "annotation {ANNOTATION_IMAGE_LAYERS}[{i}] {} is not an absolute path of a                      directory: pull or load the image again",
                    l.display()
                )
            })?;
        lower.push(p);
    }
    if lower.first().map(PathBuf::as_path) != Some(rootfs) {
        bail!("annotation {ANNOTATION_IMAGE_LAYERS} must start with root.path");
    }
    Ok(Some(ImageUse {
        reference: a.get(ANNOTATION_IMAGE).cloned().unwrap_or_default(),
        id: a.get(ANNOTATION_IMAGE_ID).cloned().unwrap_or_default(),
        lower,
        stop_signal: a.get(ANNOTATION_STOP_SIGNAL).cloned(),
        exposed_ports: a
            .get(ANNOTATION_EXPOSED_PORTS)
            .map(|p| p.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    }))
}

/// `linux` but what `setup::write_oci` writes (namespaces, paths, devices...).
fn linux_of(c: &ContainerSpec) -> Linux {
    let mut linux = Linux::default();
    linux.set_resources(resources_of(&c.limits, &c.setup.resources));
    linux.set_seccomp(c.seccomp.as_ref().map(|p| p.filter.clone()));
    let cgroup = !c.cgroup_path.as_os_str().is_empty();
    linux.set_cgroups_path(cgroup.then(|| c.cgroup_path.clone()));
    linux
}

fn resources_of(limits: &Limits, tuning: &Tuning) -> Option<LinuxResources> {
    if limits.is_empty() && *tuning == Tuning::default() {
        return None;
    }
    let mut r = LinuxResources::default();
    if limits.memory.is_some() || tuning.memory_reservation.is_some() {
        let mut memory = LinuxMemory::default();
        memory.set_limit(limits.memory.map(|b| b as i64));
        // memory+swap = memory unless asked: no swap on top (docker's --memory alone).
        memory.set_swap(tuning.memory_swap.or(limits.memory.map(|b| b as i64)));
        memory.set_reservation(tuning.memory_reservation.map(|b| b as i64));
        r.set_memory(Some(memory));
    }
    let cpu_asked = limits.cpu_quota.is_some()
        || tuning.cpu_shares.is_some()
        || tuning.cpu_period.is_some()
        || tuning.wants_cpuset();
    if cpu_asked {
        let mut cpu = LinuxCpu::default();
        cpu.set_quota(limits.cpu_quota.map(|q| q as i64));
        let period = tuning
            .cpu_period
            .or(limits.cpu_quota.map(|_| CPU_PERIOD_US));
        cpu.set_period(period);
        cpu.set_shares(tuning.cpu_shares);
        cpu.set_cpus(tuning.cpus.clone());
        cpu.set_mems(tuning.mems.clone());
        r.set_cpu(Some(cpu));
    }
    if !tuning.unified.is_empty() {
        r.set_unified(Some(tuning.unified.iter().cloned().collect()));
    }
    if let Some(pids) = limits.pids {
        let mut p = LinuxPids::default();
        p.set_limit(pids as i64);
        r.set_pids(Some(p));
    }
    Some(r)
}

/// `minibox spec` without arguments: a bundle's config.json as `runc spec` makes one, with
/// minibox's defaults (nobody, no capabilities, docker's environment), for a rootfs in
/// `rootfs/` beside it and `sh` as the program.
pub fn default_bundle_spec() -> Spec {
    let hostname = "minibox";
    let container = ContainerSpec {
        id: String::new(),
        name: None,
        rootfs: PathBuf::from("rootfs"),
        args: vec!["sh".into()],
        env: build_env(&[], hostname, "/", |_| None).unwrap_or_default(),
        hostname: hostname.into(),
        workdir: PathBuf::from("/"),
        identity: Identity {
            uid: NOBODY,
            gid: NOBODY,
            groups: vec![],
            home: "/".into(),
            name: None,
        },
        capabilities: CapSets::default(),
        // Docker's default filter, as every minibox container has unless told otherwise.
        seccomp: SeccompProfile::docker_default(&CapsHashSet::new()).ok(),
        tty: false,
        init: false,
        read_only: false,
        limits: Limits::default(),
        cgroup_path: PathBuf::new(),
        network: Network::Private,
        ports: vec![],
        net: Default::default(),
        explain: false,
        private_layer: false,
        setup: Setup::docker(true),
        image: None,
        volumes: vec![],
        hooks: Hooks::default(),
        console_size: None,
    };
    spec_from_container(&container)
}

/// Pretty JSON for a config.json. Capability sets and annotations are unordered in `Spec`;
/// they are sorted here, so the same container always prints the same file.
pub fn to_json(spec: &Spec) -> Result<String> {
    let mut value = serde_json::to_value(spec).context("encoding config.json")?;
    if let Some(sets) = value
        .pointer_mut("/process/capabilities")
        .and_then(|v| v.as_object_mut())
    {
        for set in sets.values_mut().filter_map(|s| s.as_array_mut()) {
            set.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
    if let Some(annotations) = value.get_mut("annotations").and_then(|v| v.as_object_mut()) {
        annotations.sort_keys();
    }
    serde_json::to_string_pretty(&value).context("encoding config.json")
}

/// Reads `BUNDLE/config.json`. Malformed JSON, or a value of the wrong type, is named with its
/// line and column.
pub fn load(bundle: &Path) -> Result<Spec> {
    const MAX: u64 = 16 << 20;
    let path = bundle.join("config.json");
    let cannot = |e: std::io::Error| {
        anyhow!(
            "cannot read the bundle's {}: {e}; give a bundle directory holding config.json \
             (`minibox spec > DIR/config.json` writes one)",
            path.display()
        )
    };
    // The bundle is the caller's; still, a FIFO must not hang us, nor a huge file be slurped.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        bail!("the bundle's {} is not a regular file", path.display());
    }
    let mut text = String::new();
    file.take(MAX).read_to_string(&mut text).map_err(cannot)?;
    serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{}: {e}: fix the file (`minibox spec` prints a valid one)",
            path.display()
        )
    })
}

/// The container a Spec describes, every field checked: what minibox cannot honour is refused
/// by name. A relative `root.path` is taken inside `bundle`; `id` is the container's id (64 hex
/// digits). `name` and `explain` are left for the caller.
pub fn container_from_spec(oci: &Spec, bundle: &Path, id: &str) -> Result<ContainerSpec> {
    check_version(oci.version())?;
    refuse_outside_linux(oci)?;
    let root = oci
        .root()
        .as_ref()
        .context("root.path is missing: give the directory of the container's files")?;
    let rootfs = root_path(root.path(), bundle)?;
    let hooks = checked_hooks(oci.hooks().as_ref())?;
    let process = oci.process().as_ref().context(
        "process is missing: config.json must say what to run (process.args, process.cwd...)",
    )?;
    refuse_process_extras(process)?;
    let console_size = checked_console_size(process)?;
    let args = checked_args(process)?;
    let env = checked_env(process)?;
    let workdir = checked_cwd(process)?;
    let (uid, gid, groups) = checked_user(process.user())?;
    let image = checked_image(oci.annotations().as_ref(), &rootfs)?;
    let passwd = read_in_root(&rootfs, image.as_ref(), "etc/passwd")?;
    let (name, home) = user::describe(uid, passwd.as_deref());
    let capabilities = checked_capabilities(process)?;
    let linux = oci
        .linux()
        .as_ref()
        .context("linux is missing: minibox needs linux.namespaces (at least mount)")?;
    refuse_linux_extras(linux)?;
    let setup = setup::from_oci(oci, process, linux, bundle, (uid, gid, &groups))?;
    let netns = NetNs::of(&setup.namespaces);
    let (limits, tuning) = checked_limits(linux.resources().as_ref())?;
    let setup = Setup {
        resources: tuning,
        ..setup
    };
    let cgroup_path = checked_cgroup_path(linux.cgroups_path().as_deref(), id)?;
    let (network, ports, net) = checked_extras(oci.annotations().as_ref(), netns)?;
    // A joined UTS namespace keeps its owner's name (a pod's, the host's) unless asked.
    let uts = setup.namespaces.creates(Kind::Uts);
    let hostname = match oci.hostname().as_deref().filter(|h| !h.is_empty()) {
        Some(h) => {
            check_hostname(h).map_err(|_| {
                anyhow!("hostname {h:?} is invalid: use 1 to 64 letters, digits, '-' or '.'")
            })?;
            namespaces::check_uts(&setup.namespaces, "hostname")?;
            h.to_string()
        }
        None if uts => id.get(..SHORT_ID_LEN).unwrap_or(id).to_string(),
        None => String::new(),
    };
    Ok(ContainerSpec {
        id: id.to_string(),
        name: None,
        rootfs,
        args,
        env,
        hostname,
        workdir,
        identity: Identity {
            uid,
            gid,
            groups,
            home,
            name,
        },
        capabilities,
        seccomp: checked_seccomp(oci, linux),
        tty: process.terminal() == Some(true),
        init: checked_init(oci.annotations().as_ref())?,
        read_only: root.readonly().unwrap_or(false),
        limits,
        cgroup_path,
        network,
        ports,
        net,
        explain: false,
        // An image's layers are shared: a container always writes into a layer of its own.
        private_layer: image.is_some(),
        setup,
        image,
        // -v and --mount arrive as mounts (setup.mounts); the flags' own form is the front end's.
        volumes: vec![],
        hooks,
        console_size,
    })
}

/// `org.minibox.init`: `true` or `false` (absent: false).
fn checked_init(annotations: Option<&HashMap<String, String>>) -> Result<bool> {
    match annotations
        .and_then(|a| a.get(ANNOTATION_INIT))
        .map(String::as_str)
    {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => {
            bail!("annotation {ANNOTATION_INIT} {other:?} is invalid: use true or false")
        }
    }
}

/// `linux.seccomp` as the launcher compiles it (a bad rule is found then, before the clone),
/// named by the annotation `minibox spec` writes, else by where it came from.
fn checked_seccomp(oci: &Spec, linux: &Linux) -> Option<SeccompProfile> {
    let filter = linux.seccomp().as_ref()?;
    let name = oci
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_SECCOMP))
        .cloned()
        .unwrap_or_else(|| "config.json linux.seccomp".into());
    Some(SeccompProfile {
        name,
        filter: filter.clone(),
    })
}

/// Every hook of every point: an absolute path, a timeout above zero when one is given. They
/// run at the points the runtime spec names (`runtime::hooks`).
fn checked_hooks(given: Option<&Hooks>) -> Result<Hooks> {
    let Some(hooks) = given else {
        return Ok(Hooks::default());
    };
    for (point, list) in hook_lists(hooks) {
        for (i, hook) in list.iter().enumerate() {
            if !hook.path().is_absolute() {
                bail!(
                    "hooks.{point}[{i}].path {} is not absolute: give the hook's full path",
                    hook.path().display()
                );
            }
            if hook.timeout().is_some_and(|t| t <= 0) {
                bail!(
                    "hooks.{point}[{i}].timeout {} is invalid: give seconds above zero, or no \
                     timeout",
                    hook.timeout().unwrap_or_default()
                );
            }
            if let Some((j, bad)) = hook
                .env()
                .iter()
                .flatten()
                .enumerate()
                .find(|(_, e)| !e.contains('='))
            {
                bail!("hooks.{point}[{i}].env[{j}] {bad:?} is not KEY=VALUE");
            }
        }
    }
    Ok(hooks.clone())
}

/// The hook lists by their config.json names, in the order the lifecycle reaches them.
pub fn hook_lists(hooks: &Hooks) -> [(&'static str, &[Hook]); 6] {
    #[allow(deprecated)]
    let prestart = hooks.prestart();
    fn list(l: &Option<Vec<Hook>>) -> &[Hook] {
        l.as_deref().unwrap_or_default()
    }
    [
        ("prestart", list(prestart)),
        ("createRuntime", list(hooks.create_runtime())),
        ("createContainer", list(hooks.create_container())),
        ("startContainer", list(hooks.start_container())),
        ("poststart", list(hooks.poststart())),
        ("poststop", list(hooks.poststop())),
    ]
}

/// `process.consoleSize`: the size of the terminal the container gets (`process.terminal`).
fn checked_console_size(p: &Process) -> Result<Option<ConsoleSize>> {
    let size = match p.console_size() {
        Some(b) => {
            let fit = |n: u64, what: &str| {
                u16::try_from(n).map_err(|_| {
                    anyhow!("process.consoleSize.{what} {n} is too large (at most 65535)")
                })
            };
            Some(ConsoleSize {
                rows: fit(b.height(), "height")?,
                cols: fit(b.width(), "width")?,
            })
        }
        None => None,
    };
    Ok(size.filter(|_| p.terminal() == Some(true)))
}

fn check_version(version: &str) -> Result<()> {
    if version.is_empty() {
        bail!("ociVersion is missing: give the runtime-spec version, e.g. \"1.1.0\"");
    }
    match version.split('.').next().map(str::parse::<u64>) {
        Some(Ok(1)) => Ok(()),
        _ => bail!(
            "ociVersion {version:?} is not supported: minibox reads runtime-spec 1.x \
             (e.g. \"1.1.0\")"
        ),
    }
}

fn refuse_outside_linux(oci: &Spec) -> Result<()> {
    for (field, set) in [
        ("solaris", oci.solaris().is_some()),
        ("windows", oci.windows().is_some()),
        ("vm", oci.vm().is_some()),
        ("zos", oci.zos().is_some()),
    ] {
        if set {
            bail!("{field} is not supported: minibox runs Linux containers in namespaces");
        }
    }
    Ok(())
}

/// A relative `root.path` lives in the bundle: after resolving `..` and symlinks it must still
/// be there. An absolute one may be anywhere (as runc allows) but the host's own `/`.
fn root_path(path: &Path, bundle: &Path) -> Result<PathBuf> {
    if path.as_os_str().is_empty() {
        bail!("root.path is empty: give the directory of the container's files");
    }
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        bundle.join(path)
    };
    let canonical = joined.canonicalize().map_err(|e| {
        anyhow!(
            "root.path {}: cannot open {}: {e}; give the directory of the container's files",
            path.display(),
            joined.display()
        )
    })?;
    if !canonical.is_dir() {
        bail!(
            "root.path {} ({}) is not a directory",
            path.display(),
            canonical.display()
        );
    }
    if canonical == Path::new("/") {
        bail!(
            "root.path {} is the host's own root /: give a separate directory",
            path.display()
        );
    }
    if !path.is_absolute() {
        let bundle = bundle
            .canonicalize()
            .with_context(|| format!("opening the bundle {}", bundle.display()))?;
        if !canonical.starts_with(&bundle) {
            bail!(
                "root.path {} resolves to {}, outside the bundle {}: a relative root.path must \
                 stay inside the bundle (give an absolute path for a rootfs elsewhere)",
                path.display(),
                canonical.display(),
                bundle.display()
            );
        }
    }
    Ok(canonical)
}

/// What no process of minibox's can have, a container's first or an exec'd one: refused by
/// name, since running without it would weaken the isolation asked for (or it is Windows').
pub(crate) fn refuse_unenforceable(p: &Process) -> Result<()> {
    if p.command_line().is_some() {
        bail!("process.commandLine is not supported (Windows only): give process.args");
    }
    for (field, value) in [
        ("apparmorProfile", p.apparmor_profile()),
        ("selinuxLabel", p.selinux_label()),
    ] {
        if value.as_ref().is_some_and(|v| !v.is_empty()) {
            bail!(
                "process.{field} is not supported: minibox cannot apply it, and running without \
                 it would weaken the container's isolation"
            );
        }
    }
    Ok(())
}

fn refuse_process_extras(p: &Process) -> Result<()> {
    let not_yet = |field: &str| Err(anyhow!("process.{field} is not supported yet"));
    refuse_unenforceable(p)?;
    if p.io_priority().is_some() {
        return not_yet("ioPriority");
    }
    if p.scheduler().is_some() {
        return not_yet("scheduler");
    }
    if p.exec_cpu_affinity().is_some() {
        return not_yet("execCPUAffinity");
    }
    Ok(())
}

pub(crate) fn checked_args(p: &Process) -> Result<Vec<String>> {
    let args = p.args().clone().unwrap_or_default();
    match args.first() {
        None => bail!("process.args is empty: give the program to run and its arguments"),
        Some(cmd) if cmd.is_empty() => bail!("process.args[0] is empty: give the program to run"),
        _ => {}
    }
    if let Some(i) = args.iter().position(|a| a.contains('\0')) {
        bail!("process.args[{i}] contains a NUL byte");
    }
    Ok(args)
}

pub(crate) fn checked_env(p: &Process) -> Result<Vec<String>> {
    let env = p.env().clone().unwrap_or_default();
    for (i, entry) in env.iter().enumerate() {
        let ok = entry.split_once('=').is_some_and(|(k, _)| !k.is_empty()) && !entry.contains('\0');
        if !ok {
            bail!("process.env[{i}] {entry:?} is not KEY=VALUE");
        }
    }
    Ok(env)
}

pub(crate) fn checked_cwd(p: &Process) -> Result<PathBuf> {
    let cwd = p.cwd();
    if !cwd.is_absolute() {
        bail!(
            "process.cwd {:?} must be an absolute path inside the container",
            cwd.display().to_string()
        );
    }
    Ok(cwd.clone())
}

fn checked_user(u: &User) -> Result<(u32, u32, Vec<u32>)> {
    // u32::MAX is (uid_t)-1, "leave unchanged" to setresuid: it would run the process as root.
    let id = |field: &str, n: u32| {
        if n == user::RESERVED_ID {
            bail!("process.user.{field} {n} is not a valid id ((uid_t)-1 means \"unchanged\")");
        }
        Ok(n)
    };
    let uid = id("uid", u.uid())?;
    let gid = id("gid", u.gid())?;
    let groups = u.additional_gids().clone().unwrap_or_default();
    for g in &groups {
        id("additionalGids", *g)?;
    }
    if u.username().is_some() {
        bail!("process.user.username is not supported (Windows only): give process.user.uid");
    }
    Ok((uid, gid, groups))
}

/// The five sets as given; the kernel's own rules are checked here, so that a bad set is
/// named before anything is made: effective and ambient within permitted, ambient and
/// inheritable within what the bounding set (and inheritable) allow.
fn checked_capabilities(p: &Process) -> Result<CapSets> {
    let Some(sets) = p.capabilities() else {
        return Ok(CapSets::default());
    };
    let convert = |name: &str, set: &Option<Capabilities>| -> Result<CapsHashSet> {
        set.iter()
            .flatten()
            .map(|c| {
                format!("CAP_{c}").parse::<Capability>().map_err(|_| {
                    anyhow!("process.capabilities.{name}: CAP_{c} is not known to this minibox")
                })
            })
            .collect()
    };
    let sets = CapSets {
        bounding: convert("bounding", sets.bounding())?,
        effective: convert("effective", sets.effective())?,
        permitted: convert("permitted", sets.permitted())?,
        inheritable: convert("inheritable", sets.inheritable())?,
        ambient: convert("ambient", sets.ambient())?,
    };
    let outside = |a: &CapsHashSet, b: &CapsHashSet| a.difference(b).next().copied();
    let both: CapsHashSet = sets
        .permitted
        .intersection(&sets.inheritable)
        .copied()
        .collect();
    for (name, cap, within) in [
        (
            "effective",
            outside(&sets.effective, &sets.permitted),
            "permitted",
        ),
        (
            "ambient",
            outside(&sets.ambient, &both),
            "both permitted and inheritable",
        ),
        (
            "inheritable",
            outside(&sets.inheritable, &sets.bounding),
            "bounding",
        ),
    ] {
        if let Some(cap) = cap {
            bail!(
                "process.capabilities.{name} has {cap}, which is not in {within}: the kernel \
                 allows no such set"
            );
        }
    }
    Ok(sets)
}

fn refuse_linux_extras(l: &Linux) -> Result<()> {
    let not_yet = |field: &str| Err(anyhow!("linux.{field} is not supported yet"));
    if l.mount_label().as_ref().is_some_and(|m| !m.is_empty()) {
        bail!(
            "linux.mountLabel is not supported: minibox has no SELinux support, and mounting \
             without the label would weaken the container's isolation"
        );
    }
    if l.intel_rdt().is_some() {
        bail!("linux.intelRdt is not supported");
    }
    if l.memory_policy().is_some() {
        return not_yet("memoryPolicy");
    }
    if l.personality().is_some() {
        return not_yet("personality");
    }
    if l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        return not_yet("timeOffsets (time namespaces)");
    }
    if l.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return not_yet("netDevices");
    }
    Ok(())
}

fn checked_limits(r: Option<&LinuxResources>) -> Result<(Limits, Tuning)> {
    let Some(r) = r else {
        return Ok((Limits::default(), Tuning::default()));
    };
    let not_yet = |field: &str| Err(anyhow!("linux.resources.{field} is not supported yet"));
    if r.block_io().is_some() {
        return not_yet("blockIO");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        return not_yet("hugepageLimits");
    }
    if r.network().is_some() {
        return not_yet("network");
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return not_yet("rdma");
    }
    let mut tuning = Tuning::default();
    let mut unified: Vec<(String, String)> = r
        .unified()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    unified.sort();
    for (key, value) in &unified {
        let file_like = key.contains('.') && !key.starts_with('.');
        if key.contains('/') || key.contains("..") || !file_like || value.contains('\0') {
            bail!(
                "linux.resources.unified key {key:?} is not a file of the group (such as \
                 memory.high): no '/', no '..'"
            );
        }
    }
    tuning.unified = unified;
    let memory = match r.memory() {
        Some(m) => checked_memory(m, &mut tuning)?,
        None => None,
    };
    let cpu_quota = match r.cpu() {
        Some(c) => checked_cpu(c, &mut tuning)?,
        None => None,
    };
    let limits = Limits {
        memory,
        cpu_quota,
        pids: match r.pids().map(|p| p.limit()) {
            None | Some(-1) => None,
            Some(n) if n >= 1 => Some(n as u64),
            Some(n) => bail!(
                "linux.resources.pids.limit {n} is not supported: use a number of at least 1, \
                 or -1 for no limit"
            ),
        },
    };
    Ok((limits, tuning))
}

fn checked_memory(m: &LinuxMemory, tuning: &mut Tuning) -> Result<Option<u64>> {
    let not_yet = |field: &str| {
        Err(anyhow!(
            "linux.resources.memory.{field} is not supported yet"
        ))
    };
    if m.kernel().is_some() {
        return not_yet("kernel");
    }
    if m.kernel_tcp().is_some() {
        return not_yet("kernelTCP");
    }
    if m.swappiness().is_some() {
        return not_yet("swappiness");
    }
    if m.disable_oom_killer() == Some(true) {
        return not_yet("disableOOMKiller");
    }
    if m.use_hierarchy().is_some() {
        return not_yet("useHierarchy");
    }
    if m.check_before_update().is_some() {
        return not_yet("checkBeforeUpdate");
    }
    let limit = match m.limit() {
        None | Some(-1) => None,
        Some(n) if n >= MIN_MEMORY as i64 => Some(n as u64),
        Some(n) if n > 0 => bail!(
            "linux.resources.memory.limit {n} is too small: a container needs at least {} MiB \
             to start",
            MIN_MEMORY >> 20
        ),
        Some(n) => bail!("linux.resources.memory.limit {n} is invalid: give bytes, or -1"),
    };
    tuning.memory_reservation = match m.reservation() {
        None | Some(-1) => None,
        Some(n) if n >= 0 => Some(n as u64),
        Some(n) => bail!("linux.resources.memory.reservation {n} is invalid: give bytes, or -1"),
    };
    tuning.memory_swap = match (m.swap(), limit) {
        (None, _) => None,
        // memory+swap = memory: no swap on top, minibox's default.
        (Some(s), Some(l)) if s == l as i64 => None,
        (Some(-1), _) => Some(-1),
        (Some(s), Some(l)) if s > l as i64 => Some(s),
        (Some(s), Some(l)) => bail!(
            "linux.resources.memory.swap {s} is below memory.limit {l}: swap is memory plus \
             swap, at least the limit (or -1 for no limit)"
        ),
        (Some(s), None) => bail!(
            "linux.resources.memory.swap {s} needs a memory.limit (swap counts memory plus \
             swap)"
        ),
    };
    Ok(limit)
}

fn checked_cpu(c: &LinuxCpu, tuning: &mut Tuning) -> Result<Option<u64>> {
    let not_yet = |field: &str| Err(anyhow!("linux.resources.cpu.{field} is not supported yet"));
    if c.idle().is_some() {
        return not_yet("idle");
    }
    if c.burst().is_some() {
        return not_yet("burst");
    }
    if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
        return not_yet("realtimeRuntime/realtimePeriod");
    }
    tuning.cpu_shares = match c.shares() {
        None | Some(0) => None,
        Some(s) if (2..=262_144).contains(&s) => Some(s),
        Some(s) => bail!("linux.resources.cpu.shares {s} is out of range: use 2 to 262144"),
    };
    tuning.cpu_period = match c.period() {
        None | Some(0) | Some(CPU_PERIOD_US) => None,
        Some(p) if (1000..=1_000_000).contains(&p) => Some(p),
        Some(p) => bail!("linux.resources.cpu.period {p} is out of range: use 1000 to 1000000 µs"),
    };
    let set = |field: &str, v: &Option<String>| -> Result<Option<String>> {
        match v.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(list)
                if list
                    .chars()
                    .all(|ch| ch.is_ascii_digit() || ch == '-' || ch == ',') =>
            {
                Ok(Some(list.to_string()))
            }
            Some(list) => {
                bail!("linux.resources.cpu.{field} {list:?} is invalid: give a list such as 0-1,3")
            }
        }
    };
    tuning.cpus = set("cpus", c.cpus())?;
    tuning.mems = set("mems", c.mems())?;
    match c.quota() {
        None | Some(-1) => Ok(None),
        // The kernel's smallest quota is 1 ms.
        Some(q) if q >= 1000 => Ok(Some(q as u64)),
        Some(q) => bail!(
            "linux.resources.cpu.quota {q} is invalid: give at least 1000 µs per period, or -1"
        ),
    }
}

fn checked_cgroup_path(given: Option<&Path>, id: &str) -> Result<PathBuf> {
    let Some(path) = given else {
        return Ok(Path::new(DEFAULT_CGROUP_PARENT).join(id));
    };
    let text = path.display().to_string();
    if text.contains(':') {
        bail!(
            "linux.cgroupsPath {text:?} (systemd's slice:prefix:name form) is not supported yet: \
             give a path such as minibox/NAME"
        );
    }
    let mut clean = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => clean.push(name),
            Component::RootDir | Component::CurDir => {}
            _ => bail!("linux.cgroupsPath {text:?} must not contain '..'"),
        }
    }
    if clean.as_os_str().is_empty() {
        bail!("linux.cgroupsPath {text:?} names no group: give a path such as minibox/NAME");
    }
    Ok(clean)
}

/// `-p`'s own syntax, so that `PortMapping::parse` reads it back.
fn port_text(p: &PortMapping) -> String {
    let ip = match p.host_ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    format!("{ip}:{}:{}/tcp", p.host_port, p.container_port)
}

/// The network namespace a config.json asks for.
#[derive(Debug, PartialEq)]
enum NetNs {
    /// None of its own: the host's, or (by annotation) another container's.
    None,
    New,
    /// Joined by path (init joins it with the other namespaces given by path).
    Join(PathBuf),
}

impl NetNs {
    fn of(namespaces: &namespaces::Namespaces) -> NetNs {
        let joined = namespaces.join.iter().find(|(k, _)| *k == Kind::Net);
        match joined {
            Some((_, path)) => NetNs::Join(path.clone()),
            None if namespaces.creates(Kind::Net) => NetNs::New,
            None => NetNs::None,
        }
    }
}

fn checked_extras(
    annotations: Option<&HashMap<String, String>>,
    netns: NetNs,
) -> Result<(Network, Vec<PortMapping>, NetOptions)> {
    let empty = HashMap::new();
    let annotations = annotations.unwrap_or(&empty);
    let mut keys: Vec<&String> = annotations.keys().collect();
    keys.sort();
    for key in keys {
        if key.starts_with("org.minibox.")
            && !KNOWN_ANNOTATIONS.contains(&key.as_str())
            && !IMAGE_ANNOTATIONS.contains(&key.as_str())
        {
            bail!(
                "annotation {key:?} is not known to this minibox (it knows {})",
                KNOWN_ANNOTATIONS.join(", ")
            );
        }
    }
    let given = annotations.get(ANNOTATION_NETWORK).map(String::as_str);
    let network = match (given, &netns) {
        (None, NetNs::New) => Network::Private,
        (None, NetNs::None) => Network::Host,
        (_, NetNs::Join(path)) => {
            if let Some(other) = given {
                bail!(
                    "annotation {ANNOTATION_NETWORK} {other:?} contradicts linux.namespaces, \
                     which joins the network namespace {}",
                    path.display()
                );
            }
            Network::Join(path.clone())
        }
        (Some(text), _) => Network::parse(text)
            .map_err(|e| anyhow!("annotation {ANNOTATION_NETWORK} {text:?} is invalid: {e:#}"))?,
    };
    let own = network.has_own_namespace() || matches!(network, Network::Join(_));
    if own != (netns != NetNs::None) {
        bail!(
            "annotation {ANNOTATION_NETWORK} {:?} contradicts linux.namespaces, which {} a \
             network namespace",
            network.name(),
            if netns != NetNs::None { "has" } else { "lacks" }
        );
    }
    let list = |key: &str| -> Vec<String> {
        annotations
            .get(key)
            .map(String::as_str)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    };
    let ports = list(ANNOTATION_PORTS)
        .iter()
        .map(|p| PortMapping::parse(p).with_context(|| format!("annotation {ANNOTATION_PORTS}")))
        .collect::<Result<Vec<_>>>()?;
    if network == Network::Host && !ports.is_empty() {
        bail!(
            "annotation {ANNOTATION_PORTS} cannot be used with the host's network: the \
             container already uses the host's ports"
        );
    }
    if matches!(
        network,
        Network::None | Network::Container(_) | Network::Join(_)
    ) && !ports.is_empty()
    {
        bail!(
            "conflicting options: port publishing and the container type network mode \
             ({ANNOTATION_PORTS} with network {})",
            network.name()
        );
    }
    let ip = list(ANNOTATION_IP);
    let net = NetOptions::parse(
        &network,
        ip.first().map(String::as_str),
        &list(ANNOTATION_ADD_HOSTS),
        &list(ANNOTATION_DNS),
        &list(ANNOTATION_ALIASES),
    )
    .context("annotations org.minibox.*")?;
    Ok((network, ports, net))
}

/// The runtime spec's name for one of the kernel's capabilities.
fn oci_cap(cap: Capability) -> Option<OciCap> {
    cap.to_string()
        .strip_prefix("CAP_")
        .and_then(|name| name.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
            // so are the volumes' flags (their mounts are in the mount list, see cli::run).
            let c = ContainerSpec {
                private_layer: false,
                volumes: vec![],
                ..drafted(dir.path(), flags)
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
        assert_eq!(caps["bounding"].as_array().unwrap().len(), 14);
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
        let ours: Vec<Value> = MOUNTS
            .iter()
            .map(|m| serde_json::to_value(mount_of(m)).unwrap())
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
                Some(with(
                    json!({"destination": "/data", "type": "tmpfs", "options": ["dev"]}),
                )),
                "mounts[5]: option dev is not supported on a tmpfs",
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
                "mounts[5]: option idmap (id-mapped mounts)",
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
                Some(json!({"policy": "SCHED_OTHER"})),
                "process.scheduler",
            ),
            (
                "/process/capabilities/ambient",
                Some(json!(["CAP_KILL"])),
                "process.capabilities.ambient has CAP_KILL, which is not in both permitted",
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
                Some(json!({"domain": "LINUX32"})),
                "linux.personality",
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
            ("/linux/namespaces", None, "linux.namespaces lacks mount"),
            (
                "/linux/namespaces",
                Some(namespaces(&[&all_ns[..], &["user"]].concat())),
                "a new user namespace, which needs linux.uidMappings",
            ),
            (
                "/linux/namespaces",
                Some(namespaces(&["pid", "uts"])),
                "linux.namespaces lacks mount",
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
                Some(json!({"blockIO": {"weight": 10}})),
                "linux.resources.blockIO",
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
}
