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
//!   `lo` down) or `host` (no network namespace). Without it: `private` when
//!   `linux.namespaces` has `network`, else `host`.
//! - `org.minibox.ports`: published ports, comma-separated, each in `-p`'s syntax
//!   `HOST_IP:HOST_PORT:CONTAINER_PORT/tcp`.
//!
//! How a run is called and told about (its name, `--explain`, `-d`, `--rm`) is not part of the
//! container: the caller sets those. A bundle without `hostname` gets the short id (docker's
//! default); without `linux.cgroupsPath`, the group `minibox/<id>`. A cgroupsPath is placed as
//! `--cgroup-parent` is: below the cgroup2 root, or below minibox's own group on cgroup v1,
//! whether it starts with `/` or not.
//!
//! A field minibox cannot honour yet is refused by name, never ignored: above all one whose
//! absence would weaken isolation (seccomp, AppArmor, SELinux). For now the mounts, masked and
//! read-only paths and namespaces must be exactly minibox's own (as `minibox spec` prints them).
//! Properties the runtime spec does not define are ignored, as it requires.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{
    Capabilities, Capability as OciCap, Hook, Hooks, Linux, LinuxCapabilities, LinuxCpu,
    LinuxMemory, LinuxNamespace, LinuxNamespaceType, LinuxPids, LinuxResources, Mount, Process,
    Root, Spec, User,
};

use crate::kernel::caps::{Capability, CapsHashSet};
use crate::kernel::cgroup::{Limits, CPU_PERIOD_US, MIN_MEMORY};
use crate::kernel::net::{Network, PortMapping};
use crate::kernel::rootfs::{MASKED_PATHS, READONLY_PATHS};
use crate::model::spec::{
    build_env, check_hostname, read_in_rootfs, ConsoleSize, ContainerSpec, SHORT_ID_LEN,
};
use crate::model::user::{self, Identity, NOBODY};

/// `--network`, for a config.json.
pub const ANNOTATION_NETWORK: &str = "org.minibox.network";
/// `-p`, for a config.json.
pub const ANNOTATION_PORTS: &str = "org.minibox.ports";

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

/// Mount types the runtime spec's users ask for and minibox means to support (others, such
/// as nfs or overlay, are refused as unsupported rather than "not yet").
const KNOWN_MOUNT_TYPES: [&str; 8] = [
    "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "bind",
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
    spec.set_hostname(Some(c.hostname.clone()));
    spec.set_mounts(Some(MOUNTS.iter().map(mount_of).collect()));
    spec.set_linux(Some(linux_of(c)));
    let mut annotations = HashMap::new();
    annotations.insert(
        ANNOTATION_NETWORK.to_string(),
        network_name(c.network).into(),
    );
    if !c.ports.is_empty() {
        let ports: Vec<String> = c.ports.iter().map(port_text).collect();
        annotations.insert(ANNOTATION_PORTS.to_string(), ports.join(","));
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
    // Docker's shape: one set for bounding, effective and permitted; nothing to pass on.
    let kept: Capabilities = c
        .capabilities
        .iter()
        .filter_map(|&cap| oci_cap(cap))
        .collect();
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(kept.clone()));
    caps.set_effective(Some(kept.clone()));
    caps.set_permitted(Some(kept));
    caps.set_inheritable(Some(Capabilities::new()));
    caps.set_ambient(Some(Capabilities::new()));
    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_user(user);
    process.set_args(Some(c.args.clone()));
    process.set_env(Some(c.env.clone()));
    process.set_cwd(c.workdir.clone());
    process.set_capabilities(Some(caps));
    process.set_rlimits(None);
    process.set_no_new_privileges(Some(true));
    process
}

fn mount_of(m: &FixedMount) -> Mount {
    let mut mount = Mount::default();
    mount.set_destination(m.destination.into());
    mount.set_typ(Some(m.typ.into()));
    mount.set_source(Some(m.source.into()));
    mount.set_options(Some(m.options.iter().map(|o| o.to_string()).collect()));
    mount
}

fn linux_of(c: &ContainerSpec) -> Linux {
    use LinuxNamespaceType as T;
    let mut types = vec![T::Mount, T::Pid, T::Uts, T::Ipc];
    if c.network != Network::Host {
        types.push(T::Network);
    }
    types.push(T::Cgroup);
    let namespaces = types
        .into_iter()
        .map(|t| {
            let mut ns = LinuxNamespace::default();
            ns.set_typ(t);
            ns
        })
        .collect();
    let mut linux = Linux::default();
    linux.set_namespaces(Some(namespaces));
    linux.set_resources(resources_of(&c.limits));
    let cgroup = !c.cgroup_path.as_os_str().is_empty();
    linux.set_cgroups_path(cgroup.then(|| c.cgroup_path.clone()));
    linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|p| format!("/{p}")).collect()));
    linux.set_readonly_paths(Some(
        READONLY_PATHS.iter().map(|p| format!("/{p}")).collect(),
    ));
    linux
}

fn resources_of(limits: &Limits) -> Option<LinuxResources> {
    if limits.is_empty() {
        return None;
    }
    let mut r = LinuxResources::default();
    if let Some(bytes) = limits.memory {
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(bytes as i64));
        // memory+swap = memory: no swap on top (docker's --memory-swap equal to --memory).
        memory.set_swap(Some(bytes as i64));
        r.set_memory(Some(memory));
    }
    if let Some(quota) = limits.cpu_quota {
        let mut cpu = LinuxCpu::default();
        cpu.set_quota(Some(quota as i64));
        cpu.set_period(Some(CPU_PERIOD_US));
        r.set_cpu(Some(cpu));
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
        capabilities: CapsHashSet::new(),
        read_only: false,
        limits: Limits::default(),
        cgroup_path: PathBuf::new(),
        network: Network::Private,
        ports: vec![],
        explain: false,
        private_layer: false,
        hooks: Hooks::default(),
        terminal: None,
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
    let terminal = checked_terminal(process)?;
    let args = checked_args(process)?;
    let env = checked_env(process)?;
    let workdir = checked_cwd(process)?;
    let (uid, gid, groups) = checked_user(process.user())?;
    let passwd = read_in_rootfs(&rootfs, "etc/passwd")?;
    let (name, home) = user::describe(uid, passwd.as_deref());
    let capabilities = checked_capabilities(process, uid)?;
    check_mounts(oci.mounts().as_deref().unwrap_or_default())?;
    let linux = oci.linux().as_ref().context(
        "linux is missing: minibox needs linux.namespaces (mount, pid, uts, ipc, cgroup)",
    )?;
    refuse_linux_extras(linux)?;
    let netns = checked_namespaces(linux.namespaces().as_deref().unwrap_or_default())?;
    check_path_list("linux.maskedPaths", linux.masked_paths(), &MASKED_PATHS)?;
    check_path_list(
        "linux.readonlyPaths",
        linux.readonly_paths(),
        &READONLY_PATHS,
    )?;
    let limits = checked_limits(linux.resources().as_ref())?;
    let cgroup_path = checked_cgroup_path(linux.cgroups_path().as_deref(), id)?;
    let (network, ports) = checked_extras(oci.annotations().as_ref(), netns)?;
    let hostname = match oci.hostname() {
        Some(h) => check_hostname(h).map_err(|_| {
            anyhow!("hostname {h:?} is invalid: use 1 to 64 letters, digits, '-' or '.'")
        })?,
        None => id.get(..SHORT_ID_LEN).unwrap_or(id).to_string(),
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
        read_only: root.readonly().unwrap_or(false),
        limits,
        cgroup_path,
        network,
        ports,
        explain: false,
        private_layer: false,
        hooks,
        terminal,
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

/// `process.terminal`: `Some(size)` when the container gets a pty of its own.
fn checked_terminal(p: &Process) -> Result<Option<Option<ConsoleSize>>> {
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
    Ok((p.terminal() == Some(true)).then_some(size))
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
    if oci.domainname().as_ref().is_some_and(|d| !d.is_empty()) {
        bail!("domainname is not supported yet");
    }
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

fn refuse_process_extras(p: &Process) -> Result<()> {
    let not_yet = |field: &str| Err(anyhow!("process.{field} is not supported yet"));
    if p.command_line().is_some() {
        bail!("process.commandLine is not supported (Windows only): give process.args");
    }
    if p.rlimits().as_ref().is_some_and(|r| !r.is_empty()) {
        return not_yet("rlimits");
    }
    if p.no_new_privileges() != Some(true) {
        bail!(
            "process.noNewPrivileges must be true: minibox always sets no_new_privs \
             (setuid programs gaining privileges is not supported)"
        );
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
    if p.oom_score_adj().is_some() {
        return not_yet("oomScoreAdj");
    }
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

fn checked_args(p: &Process) -> Result<Vec<String>> {
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

fn checked_env(p: &Process) -> Result<Vec<String>> {
    let env = p.env().clone().unwrap_or_default();
    for (i, entry) in env.iter().enumerate() {
        let ok = entry.split_once('=').is_some_and(|(k, _)| !k.is_empty()) && !entry.contains('\0');
        if !ok {
            bail!("process.env[{i}] {entry:?} is not KEY=VALUE");
        }
    }
    Ok(env)
}

fn checked_cwd(p: &Process) -> Result<PathBuf> {
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
    if u.umask().is_some_and(|m| m != UMASK) {
        bail!(
            "process.user.umask {:o} is not supported yet: minibox starts every container \
             with umask {UMASK:04o}",
            u.umask().unwrap_or_default()
        );
    }
    if u.username().is_some() {
        bail!("process.user.username is not supported (Windows only): give process.user.uid");
    }
    Ok((uid, gid, groups))
}

/// minibox keeps one set in bounding, effective and permitted, and nothing in inheritable or
/// ambient; a non-root process keeps none at all.
fn checked_capabilities(p: &Process, uid: u32) -> Result<CapsHashSet> {
    let Some(sets) = p.capabilities() else {
        return Ok(CapsHashSet::new());
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
    for (name, set) in [
        ("inheritable", sets.inheritable()),
        ("ambient", sets.ambient()),
    ] {
        if !convert(name, set)?.is_empty() {
            bail!("process.capabilities.{name} is not supported yet: minibox keeps it empty");
        }
    }
    let bounding = convert("bounding", sets.bounding())?;
    for (name, set) in [
        ("effective", sets.effective()),
        ("permitted", sets.permitted()),
    ] {
        let set = convert(name, set)?;
        if let Some(cap) = set.symmetric_difference(&bounding).next() {
            bail!(
                "process.capabilities.{name} differs from bounding (in {cap}): minibox keeps the \
                 same set in bounding, effective and permitted; different sets are not \
                 supported yet"
            );
        }
    }
    if uid != 0 && !bounding.is_empty() {
        bail!(
            "process.capabilities for uid {uid} are not supported yet: minibox gives a non-root \
             process no capabilities (leave the sets empty, or run as uid 0)"
        );
    }
    Ok(bounding)
}

fn check_mounts(given: &[Mount]) -> Result<()> {
    let ours = || {
        MOUNTS
            .iter()
            .map(|m| m.destination)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, m) in given.iter().enumerate() {
        let options = m.options().as_deref().unwrap_or_default();
        let bind = options.iter().any(|o| o == "bind" || o == "rbind");
        let typ = match m.typ().as_deref() {
            _ if bind => "bind",
            Some(t) => t,
            None => "",
        };
        if !KNOWN_MOUNT_TYPES.contains(&typ) {
            bail!("mounts[{i}] type {typ:?} is not supported");
        }
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            bail!("mounts[{i}] uidMappings/gidMappings (id-mapped mounts) are not supported yet");
        }
        if !MOUNTS.get(i).is_some_and(|f| f.is(m)) {
            bail!(
                "mounts[{i}] ({typ} on {}) is not supported yet: minibox makes exactly its own \
                 mounts for now ({}, as `minibox spec` prints them)",
                m.destination().display(),
                ours()
            );
        }
    }
    if let Some(missing) = MOUNTS.get(given.len()) {
        bail!(
            "mounts lacks {} ({}): minibox always mounts {}, as `minibox spec` prints them; \
             other mount lists are not supported yet",
            missing.destination,
            missing.typ,
            ours()
        );
    }
    Ok(())
}

impl FixedMount {
    fn is(&self, m: &Mount) -> bool {
        let options: BTreeSet<&str> = m.options().iter().flatten().map(String::as_str).collect();
        m.destination() == Path::new(self.destination)
            && m.typ().as_deref() == Some(self.typ)
            && m.source()
                .as_ref()
                .is_none_or(|s| s == Path::new(self.source))
            && options == self.options.iter().copied().collect()
    }
}

fn refuse_linux_extras(l: &Linux) -> Result<()> {
    let not_yet = |field: &str| Err(anyhow!("linux.{field} is not supported yet"));
    if l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
        return not_yet("uidMappings (user namespaces)");
    }
    if l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty()) {
        return not_yet("gidMappings (user namespaces)");
    }
    if l.sysctl().as_ref().is_some_and(|m| !m.is_empty()) {
        return not_yet("sysctl");
    }
    if l.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        bail!(
            "linux.devices is not supported yet: every minibox container gets the same /dev \
             (null, zero, full, random, urandom, tty)"
        );
    }
    if l.seccomp().is_some() {
        bail!(
            "linux.seccomp is not supported yet: minibox cannot install the filter, and running \
             without it would weaken the container's isolation"
        );
    }
    if let Some(p) = l.rootfs_propagation() {
        if p != "rslave" {
            bail!(
                "linux.rootfsPropagation {p:?} is not supported yet: minibox makes the \
                 container's mounts rslave"
            );
        }
    }
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

fn namespace_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

/// minibox gives every container new mount, pid, uts, ipc and cgroup namespaces, and a network
/// one unless it shares the host's. Returns whether it has a network namespace.
fn checked_namespaces(list: &[LinuxNamespace]) -> Result<bool> {
    use LinuxNamespaceType as T;
    let mut seen = HashSet::new();
    for (i, ns) in list.iter().enumerate() {
        let name = namespace_name(ns.typ());
        match ns.typ() {
            T::User => bail!("linux.namespaces[{i}] user (user namespaces) is not supported yet"),
            T::Time => bail!("linux.namespaces[{i}] time is not supported yet"),
            _ => {}
        }
        if let Some(path) = ns.path() {
            bail!(
                "linux.namespaces[{i}] {name} with path {}: joining an existing namespace is \
                 not supported yet",
                path.display()
            );
        }
        if !seen.insert(ns.typ()) {
            bail!("linux.namespaces[{i}]: {name} is listed twice");
        }
    }
    for needed in [T::Mount, T::Pid, T::Uts, T::Ipc, T::Cgroup] {
        if !seen.contains(&needed) {
            let name = namespace_name(needed);
            bail!(
                "linux.namespaces lacks {name}: minibox always gives a container its own {name} \
                 namespace; sharing the host's is not supported yet"
            );
        }
    }
    Ok(seen.contains(&T::Network))
}

fn check_path_list(field: &str, given: &Option<Vec<String>>, ours: &[&str]) -> Result<()> {
    let given: BTreeSet<&str> = given.iter().flatten().map(String::as_str).collect();
    let ours: Vec<String> = ours.iter().map(|p| format!("/{p}")).collect();
    let ours: BTreeSet<&str> = ours.iter().map(String::as_str).collect();
    let missing: Vec<&str> = ours.difference(&given).copied().collect();
    let extra: Vec<&str> = given.difference(&ours).copied().collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let mut what = vec![];
    if !missing.is_empty() {
        what.push(format!("lacks {}", missing.join(" ")));
    }
    if !extra.is_empty() {
        what.push(format!("adds {}", extra.join(" ")));
    }
    bail!(
        "{field} differs from minibox's ({}): other lists are not supported yet (`minibox spec` \
         prints minibox's)",
        what.join("; ")
    )
}

fn checked_limits(r: Option<&LinuxResources>) -> Result<Limits> {
    let Some(r) = r else {
        return Ok(Limits::default());
    };
    let not_yet = |field: &str| Err(anyhow!("linux.resources.{field} is not supported yet"));
    if r.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return not_yet("devices (the device cgroup)");
    }
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
    if r.unified().as_ref().is_some_and(|m| !m.is_empty()) {
        return not_yet("unified");
    }
    Ok(Limits {
        memory: r
            .memory()
            .as_ref()
            .map(checked_memory)
            .transpose()?
            .flatten(),
        cpu_quota: r.cpu().as_ref().map(checked_cpu).transpose()?.flatten(),
        pids: match r.pids().map(|p| p.limit()) {
            None | Some(-1) => None,
            Some(n) if n >= 1 => Some(n as u64),
            Some(n) => bail!(
                "linux.resources.pids.limit {n} is not supported: use a number of at least 1, \
                 or -1 for no limit"
            ),
        },
    })
}

fn checked_memory(m: &LinuxMemory) -> Result<Option<u64>> {
    let not_yet = |field: &str| {
        Err(anyhow!(
            "linux.resources.memory.{field} is not supported yet"
        ))
    };
    if m.reservation().is_some() {
        return not_yet("reservation");
    }
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
    if let Some(swap) = m.swap() {
        if limit.map(|l| l as i64) != Some(swap) {
            bail!(
                "linux.resources.memory.swap {swap} is not supported yet: minibox allows no swap \
                 on top of memory, so swap must equal memory.limit"
            );
        }
    }
    Ok(limit)
}

fn checked_cpu(c: &LinuxCpu) -> Result<Option<u64>> {
    let not_yet = |field: &str| Err(anyhow!("linux.resources.cpu.{field} is not supported yet"));
    if c.shares().is_some() {
        return not_yet("shares");
    }
    if c.idle().is_some() {
        return not_yet("idle");
    }
    if c.burst().is_some() {
        return not_yet("burst");
    }
    if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
        return not_yet("realtimeRuntime/realtimePeriod");
    }
    if c.cpus().as_ref().is_some_and(|s| !s.is_empty()) {
        return not_yet("cpus");
    }
    if c.mems().as_ref().is_some_and(|s| !s.is_empty()) {
        return not_yet("mems");
    }
    if let Some(period) = c.period().filter(|&p| p != CPU_PERIOD_US) {
        bail!(
            "linux.resources.cpu.period {period} is not supported yet: minibox uses a period of \
             {CPU_PERIOD_US} µs"
        );
    }
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

fn network_name(n: Network) -> &'static str {
    match n {
        Network::Private => "private",
        Network::None => "none",
        Network::Host => "host",
    }
}

/// `-p`'s own syntax, so that `PortMapping::parse` reads it back.
fn port_text(p: &PortMapping) -> String {
    let ip = match p.host_ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    format!("{ip}:{}:{}/tcp", p.host_port, p.container_port)
}

fn checked_extras(
    annotations: Option<&HashMap<String, String>>,
    netns: bool,
) -> Result<(Network, Vec<PortMapping>)> {
    let empty = HashMap::new();
    let annotations = annotations.unwrap_or(&empty);
    let mut keys: Vec<&String> = annotations.keys().collect();
    keys.sort();
    for key in keys {
        if key.starts_with("org.minibox.") && key != ANNOTATION_NETWORK && key != ANNOTATION_PORTS {
            bail!(
                "annotation {key:?} is not known to this minibox (it knows \
                 {ANNOTATION_NETWORK} and {ANNOTATION_PORTS})"
            );
        }
    }
    let network = match annotations.get(ANNOTATION_NETWORK).map(String::as_str) {
        None if netns => Network::Private,
        None => Network::Host,
        Some("private") => Network::Private,
        Some("none") => Network::None,
        Some("host") => Network::Host,
        Some(other) => {
            bail!("annotation {ANNOTATION_NETWORK} {other:?} is invalid: use private, none or host")
        }
    };
    if (network == Network::Host) == netns {
        bail!(
            "annotation {ANNOTATION_NETWORK} {:?} contradicts linux.namespaces, which {} a \
             network namespace",
            network_name(network),
            if netns { "has" } else { "lacks" }
        );
    }
    let ports = annotations
        .get(ANNOTATION_PORTS)
        .map(String::as_str)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| PortMapping::parse(p).with_context(|| format!("annotation {ANNOTATION_PORTS}")))
        .collect::<Result<Vec<_>>>()?;
    if network == Network::Host && !ports.is_empty() {
        bail!(
            "annotation {ANNOTATION_PORTS} cannot be used with the host's network: the \
             container already uses the host's ports"
        );
    }
    Ok((network, ports))
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
        crate::cli::run::spec_from_run_args(&args).unwrap()
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
        ];
        for flags in cases {
            // A bundle's root is used as given: the private layer is the front end's to add.
            let c = ContainerSpec {
                private_layer: false,
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
        assert_eq!(caps["effective"], caps["bounding"]);
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
        assert!(c.capabilities.is_empty());
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
                "linux.uidMappings (user namespaces) is not supported yet",
            ),
            (
                "/linux/gidMappings",
                Some(json!([{"containerID": 0, "hostID": 1000, "size": 1}])),
                "linux.gidMappings",
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
                    json!({"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"]}),
                )),
                "mounts[5] (bind on /data) is not supported yet",
            ),
            (
                "/mounts",
                Some(json!(ours[..4].to_vec())),
                "mounts lacks /dev/shm",
            ),
            (
                "/mounts",
                Some(json!([ours[1], ours[0], ours[2], ours[3], ours[4]])),
                "mounts[0] (sysfs on /sys)",
            ),
            ("/mounts", None, "mounts lacks /proc"),
            (
                "/process/rlimits",
                Some(json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}])),
                "process.rlimits is not supported yet",
            ),
            (
                "/process/consoleSize",
                Some(json!({"height": 70000, "width": 80})),
                "process.consoleSize.height 70000",
            ),
            (
                "/process/noNewPrivileges",
                Some(json!(false)),
                "process.noNewPrivileges",
            ),
            ("/process/noNewPrivileges", None, "process.noNewPrivileges"),
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
                Some(json!(100)),
                "process.oomScoreAdj",
            ),
            (
                "/process/scheduler",
                Some(json!({"policy": "SCHED_OTHER"})),
                "process.scheduler",
            ),
            (
                "/process/capabilities/ambient",
                Some(json!(["CAP_KILL"])),
                "process.capabilities.ambient",
            ),
            (
                "/process/capabilities/inheritable",
                Some(json!(["CAP_KILL"])),
                "process.capabilities.inheritable",
            ),
            (
                "/process/capabilities/effective",
                Some(json!(["CAP_KILL"])),
                "process.capabilities.effective differs",
            ),
            (
                "/process/capabilities",
                Some(
                    json!({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}),
                ),
                "process.capabilities for uid 65534",
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
                Some(json!(0o077)),
                "process.user.umask 77",
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
            ("/domainname", Some(json!("example.org")), "domainname"),
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
                "/linux/seccomp",
                Some(json!({"defaultAction": "SCMP_ACT_ALLOW"})),
                "linux.seccomp",
            ),
            (
                "/linux/sysctl",
                Some(json!({"net.ipv4.ip_forward": "1"})),
                "linux.sysctl",
            ),
            (
                "/linux/devices",
                Some(json!([{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}])),
                "linux.devices",
            ),
            (
                "/linux/rootfsPropagation",
                Some(json!("shared")),
                "linux.rootfsPropagation",
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
                Some(json!([])),
                "linux.maskedPaths differs from minibox's (lacks /proc/acpi",
            ),
            ("/linux/maskedPaths", None, "linux.maskedPaths"),
            (
                "/linux/readonlyPaths",
                Some(json!([
                    "/proc/bus",
                    "/proc/fs",
                    "/proc/irq",
                    "/proc/sys",
                    "/proc/sysrq-trigger",
                    "/etc"
                ])),
                "linux.readonlyPaths differs from minibox's (adds /etc)",
            ),
            (
                "/linux/namespaces",
                Some(namespaces(&["mount", "uts", "ipc", "network", "cgroup"])),
                "linux.namespaces lacks pid",
            ),
            ("/linux/namespaces", None, "linux.namespaces lacks mount"),
            (
                "/linux/namespaces",
                Some(namespaces(&[&all_ns[..], &["user"]].concat())),
                "linux.namespaces[6] user (user namespaces) is not supported yet",
            ),
            (
                "/linux/namespaces",
                Some(namespaces(&[&all_ns[..], &["time"]].concat())),
                "linux.namespaces[6] time",
            ),
            (
                "/linux/namespaces",
                Some(namespaces(&[&all_ns[..], &["pid"]].concat())),
                "linux.namespaces[6]: pid is listed twice",
            ),
            (
                "/linux/namespaces",
                Some(
                    json!([{"type": "mount"}, {"type": "pid"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network", "path": "/proc/1/ns/net"}, {"type": "cgroup"}]),
                ),
                "linux.namespaces[4] network with path /proc/1/ns/net: joining",
            ),
            (
                "/linux/resources",
                Some(json!({"memory": {"limit": 67108864, "swap": -1}})),
                "linux.resources.memory.swap -1",
            ),
            (
                "/linux/resources",
                Some(json!({"memory": {"swap": 67108864}})),
                "linux.resources.memory.swap",
            ),
            (
                "/linux/resources",
                Some(json!({"memory": {"limit": 1000}})),
                "linux.resources.memory.limit 1000 is too small",
            ),
            (
                "/linux/resources",
                Some(json!({"memory": {"limit": 67108864, "reservation": 1000}})),
                "linux.resources.memory.reservation",
            ),
            (
                "/linux/resources",
                Some(json!({"cpu": {"shares": 512}})),
                "linux.resources.cpu.shares",
            ),
            (
                "/linux/resources",
                Some(json!({"cpu": {"quota": 50000, "period": 50000}})),
                "linux.resources.cpu.period 50000",
            ),
            (
                "/linux/resources",
                Some(json!({"cpu": {"quota": 10}})),
                "linux.resources.cpu.quota 10",
            ),
            (
                "/linux/resources",
                Some(json!({"cpu": {"cpus": "0-1"}})),
                "linux.resources.cpu.cpus",
            ),
            (
                "/linux/resources",
                Some(json!({"pids": {"limit": 0}})),
                "linux.resources.pids.limit 0",
            ),
            (
                "/linux/resources",
                Some(json!({"devices": [{"allow": false, "access": "rwm"}]})),
                "linux.resources.devices",
            ),
            (
                "/linux/resources",
                Some(json!({"unified": {"memory.high": "1"}})),
                "linux.resources.unified",
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
                Some(json!("bridge")),
                "annotation org.minibox.network \"bridge\" is invalid",
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
        ok("/process/user/umask", None);
        ok("/process/capabilities", None);
        ok("/hooks", Some(json!({})));
        let c = ok(
            "/hooks",
            Some(json!({"createRuntime": [{"path": "/bin/true", "timeout": 5}]})),
        );
        assert_eq!(c.hooks.create_runtime().as_ref().map(Vec::len), Some(1));
        let c = ok("/process/terminal", Some(json!(true)));
        assert_eq!(c.terminal, Some(None));
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
