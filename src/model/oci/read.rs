//! config.json → model: a bundle's `config.json`, read (`load`) and checked field by field into
//! the one `ContainerSpec` the runtime takes (`container_from_spec`).

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{
    Capabilities, Hook, Hooks, Linux, LinuxCpu, LinuxMemory, LinuxResources, Process, Spec, User,
};

use crate::kernel::caps::{CapSets, Capability, CapsHashSet};
use crate::kernel::cgroup::{Limits, Tuning, CPU_PERIOD_US, MIN_MEMORY};
use crate::kernel::console::ConsoleSize;
use crate::kernel::namespaces::{self, Kind};
use crate::kernel::process::Rlimit;
use crate::kernel::seccomp::SeccompProfile;
use crate::model::block_io;
use crate::model::names::check_hostname;
use crate::model::network::{NetOptions, Network, PortMapping};
use crate::model::oci::annotations::*;
use crate::model::oci::refuse::{
    check_version, refuse_linux_extras, refuse_outside_linux, refuse_process_extras, unsupported,
};
use crate::model::process_attrs::{self, ProcessAttrs};
use crate::model::setup::{self, Setup};
use crate::model::spec::{read_in_root, ContainerSpec, SHORT_ID_LEN};
use crate::model::user::{self, Identity};
use crate::model::volume::ImageUse;

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
        pid1: checked_pid1(oci.annotations().as_ref())?,
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
        stop: Default::default(),
        auto_ids: None,
        labels: Default::default(),
    })
}

/// `org.minibox.init`: `true` or `false` (absent: false).
fn checked_pid1(annotations: Option<&HashMap<String, String>>) -> Result<bool> {
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
    Ok(console_size_of(p)?.filter(|_| p.terminal() == Some(true)))
}

/// `process.consoleSize`, each side checked to fit a terminal's.
fn console_size_of(p: &Process) -> Result<Option<ConsoleSize>> {
    let Some(b) = p.console_size() else {
        return Ok(None);
    };
    let fit = |n: u64, what: &str| {
        u16::try_from(n)
            .map_err(|_| anyhow!("process.consoleSize.{what} {n} is too large (at most 65535)"))
    };
    Ok(Some(ConsoleSize {
        rows: fit(b.height(), "height")?,
        cols: fit(b.width(), "width")?,
    }))
}

/// A runtime-spec `process` for a process that joins a running container (`exec --process`).
pub struct JoiningProcess {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub capabilities: CapSets,
    pub rlimits: Vec<Rlimit>,
    pub umask: Option<u32>,
    pub console_size: Option<ConsoleSize>,
    pub terminal: bool,
    /// ioPriority, scheduler, execCPUAffinity given for this process (the container's apply
    /// where it gives none).
    pub attrs: ProcessAttrs,
    /// `oomScoreAdj`: Docker's exec gives the container's.
    pub oom_score_adj: Option<i32>,
}

/// A process that joins a running container, read with config.json's rules, and those of a
/// joining process: no inheritable or ambient capabilities, effective the same as permitted
/// and within bounding (a user that is not root keeps them through setuid, as with runc).
pub fn joining_process(p: &Process) -> Result<JoiningProcess> {
    refuse_process_extras(p)?;
    let (uid, gid, groups) = checked_user(p.user())?;
    let caps = checked_capabilities(p)?;
    for (name, set) in [
        ("inheritable", &caps.inheritable),
        ("ambient", &caps.ambient),
    ] {
        if !set.is_empty() {
            bail!("process.capabilities.{name} is not supported yet: minibox keeps it empty");
        }
    }
    if caps.effective != caps.permitted {
        bail!("process.capabilities: effective and permitted must be the same set");
    }
    if let Some(cap) = caps.permitted.difference(&caps.bounding).next() {
        bail!("process.capabilities.permitted holds {cap}, which bounding does not");
    }
    // A non-root user keeps them through the uid change (PR_SET_KEEPCAPS), as runc does for
    // `docker exec -u USER`, which passes the container's sets.
    Ok(JoiningProcess {
        args: checked_args(p)?,
        env: checked_env(p)?,
        cwd: checked_cwd(p)?,
        uid,
        gid,
        groups,
        capabilities: caps,
        rlimits: setup::checked_rlimits(p.rlimits().as_deref().unwrap_or_default())?,
        umask: p.user().umask(),
        console_size: console_size_of(p)?,
        terminal: p.terminal() == Some(true),
        attrs: process_attrs::checked_process(p)?,
        oom_score_adj: setup::checked_oom_score_adj(p)?,
    })
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
    let mut sets = CapSets {
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
    // An ambient capability the kernel cannot raise is a warning, as with runc and crun
    // (`crun spec` writes ambient ones with an empty inheritable set): it is left out.
    let mut unraisable: Vec<String> = sets
        .ambient
        .difference(&both)
        .map(|c| c.to_string())
        .collect();
    if !unraisable.is_empty() {
        unraisable.sort();
        say!(
            "minibox: warning: process.capabilities.ambient: {} not in both permitted and \
             inheritable, so the kernel cannot raise it; left out (runtime-spec \
             config.md#linux-process)",
            unraisable.join(", ")
        );
        sets.ambient.retain(|c| both.contains(c));
    }
    for (name, cap, within) in [
        (
            "effective",
            outside(&sets.effective, &sets.permitted),
            "permitted",
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

fn checked_limits(r: Option<&LinuxResources>) -> Result<(Limits, Tuning)> {
    let Some(r) = r else {
        return Ok((Limits::default(), Tuning::default()));
    };
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        return unsupported(
            "linux.resources.hugepageLimits",
            "minibox makes no hugetlb cgroup; leave it out",
            "config-linux.md#huge-page-limits",
        );
    }
    if r.network().is_some() {
        return unsupported(
            "linux.resources.network",
            "minibox makes no net_cls or net_prio cgroup (cgroup v1 only); leave it out",
            "config-linux.md#network",
        );
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        return unsupported(
            "linux.resources.rdma",
            "minibox makes no rdma cgroup; leave it out",
            "config-linux.md#rdma",
        );
    }
    let mut tuning = Tuning {
        block_io: r
            .block_io()
            .as_ref()
            .map(block_io::checked)
            .transpose()?
            .unwrap_or_default(),
        ..Tuning::default()
    };
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
    tuning.devices = setup::checked_device_rules(r.devices().as_deref().unwrap_or_default())?;
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
        // config.json's limit is asked for, whatever made it.
        pids_default: false,
    };
    Ok((limits, tuning))
}

fn checked_memory(m: &LinuxMemory, tuning: &mut Tuning) -> Result<Option<u64>> {
    let not_yet = |field: &str| {
        unsupported(
            &format!("linux.resources.memory.{field}"),
            "minibox does not write it; leave it out",
            "config-linux.md#memory",
        )
    };
    // Kernel memory limits are gone from Linux (5.16 stopped enforcing them): ignored, as
    // runc and crun do, with a word.
    if m.kernel().is_some_and(|k| k != 0) {
        say!(
            "minibox: warning: linux.resources.memory.kernel is ignored: Linux no longer \
             limits kernel memory on its own (runtime-spec config-linux.md#memory)"
        );
    }
    // (0: Docker's "not set", as runc reads it.)
    tuning.kernel_tcp = match m.kernel_tcp() {
        None | Some(0) => None,
        Some(n) if n >= -1 => Some(n),
        Some(n) => bail!("linux.resources.memory.kernelTCP {n} is invalid: give bytes, or -1"),
    };
    tuning.memory_swappiness = match m.swappiness() {
        None => None,
        Some(n) if n <= 100 => Some(n),
        Some(n) => bail!("linux.resources.memory.swappiness {n} is invalid: give 0 to 100"),
    };
    tuning.oom_kill_disable = m.disable_oom_killer() == Some(true);
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
    let not_yet = |field: &str| {
        unsupported(
            &format!("linux.resources.cpu.{field}"),
            "minibox does not write it; leave it out",
            "config-linux.md#cpu",
        )
    };
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

/// Where a container's group goes when nothing says otherwise (`--cgroup-parent`'s default).
const DEFAULT_CGROUP_PARENT: &str = "minibox";

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
