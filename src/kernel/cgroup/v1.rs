//! The cgroup v1 driver: on legacy and hybrid hosts, where the memory, cpu, cpuacct and pids
//! controllers are mounted as v1 hierarchies, one group per container in each of them.
//!
//! On such a host the v1 trees belong to whoever made them (systemd, a CI agent, a container
//! engine), so minibox keeps to its own corner: a container's groups go below the group minibox
//! itself runs in, in each hierarchy (`<own group>/<parent>/<id>`), and minibox removes only what
//! it made there. Nothing is assumed about paths: the hierarchies come from
//! `/proc/self/mountinfo`, minibox's own groups from `/proc/self/cgroup`.

use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, SIGKILL};
use nix::unistd::Pid;

use super::devices::Filter;
use super::{blkio, ContainerCgroup, Limits, Placement, Tuning, Usage, CPU_PERIOD_US};

/// The controllers a container's groups use: cpuacct only measures, freezer pauses, devices
/// holds the device rules, the others also limit.
pub const CONTROLLERS: [&str; 6] = ["memory", "cpu", "cpuacct", "pids", "freezer", "devices"];

/// How long `destroy` keeps killing and retrying before it gives up on a group.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often making a group is retried when a concurrent minibox removed an empty parent
/// group between our `mkdir`s.
const CREATE_ATTEMPTS: usize = 5;

/// One mounted v1 hierarchy that carries some of our controllers, and minibox's own group in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Which of `CONTROLLERS` it carries: two when co-mounted, as `cpu,cpuacct` usually is.
    controllers: Vec<&'static str>,
    /// minibox's own group, as a host path: nothing above it is ever touched.
    own: PathBuf,
}

/// What `/proc/self/mountinfo` and `/proc/self/cgroup` say about v1 on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchies {
    found: Vec<Hierarchy>,
    /// The cpuset hierarchy, used only by a container that asks for CPUs or memory nodes.
    cpuset: Option<Hierarchy>,
    /// The blkio hierarchy, used only by a container that asks for `blockIO` settings.
    blkio: Option<Hierarchy>,
    /// Each of `CONTROLLERS` that cannot be used, with why (for the error of its flag).
    missing: Vec<(&'static str, String)>,
}

impl Hierarchies {
    /// Finds the v1 hierarchies of our controllers and minibox's own group in each.
    pub fn find() -> Result<Hierarchies> {
        let mountinfo =
            fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
        let own = fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
        Ok(Hierarchies::from_tables(&mountinfo, &own))
    }

    /// The same from the two files' text, so that layouts can be tested without a host.
    ///
    /// A hierarchy may be mounted more than once (same device, mountinfo field 3): it is one
    /// tree, used through the first mount that shows minibox's own group, since making a group
    /// through two mounts of it would make it twice.
    pub fn from_tables(mountinfo: &str, proc_cgroup: &str) -> Hierarchies {
        let mut found: Vec<(Hierarchy, String)> = Vec::new();
        let mut missing: Vec<(&'static str, String)> = Vec::new();
        let optional = |controller: &'static str| {
            v1_mounts(mountinfo, &[controller])
                .into_iter()
                .find_map(|m| {
                    let own = own_group_in(&m, proc_cgroup).ok()?;
                    Some(Hierarchy {
                        controllers: m.controllers,
                        own,
                    })
                })
        };
        let cpuset = optional("cpuset");
        let blkio = optional("blkio");
        for mount in v1_mounts(mountinfo, &CONTROLLERS) {
            if found.iter().any(|(_, device)| *device == mount.device) {
                continue;
            }
            match own_group_in(&mount, proc_cgroup) {
                Ok(own) => found.push((
                    Hierarchy {
                        controllers: mount.controllers,
                        own,
                    },
                    mount.device,
                )),
                Err(why) => missing.extend(mount.controllers.into_iter().map(|c| (c, why.clone()))),
            }
        }
        let found: Vec<Hierarchy> = found.into_iter().map(|(h, _)| h).collect();
        let usable = |c: &str| found.iter().any(|h| h.controllers.contains(&c));
        missing.retain(|(c, _)| !usable(c));
        for c in CONTROLLERS {
            if !usable(c) && !missing.iter().any(|(m, _)| *m == c) {
                missing.push((c, "no cgroup v1 mount of it in /proc/self/mountinfo".into()));
            }
        }
        Hierarchies {
            found,
            cpuset,
            blkio,
            missing,
        }
    }

    /// True when none of our controllers is usable through v1.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Why `controller` cannot be used through v1, or `None` when it can.
    pub fn why_missing(&self, controller: &str) -> Option<&str> {
        self.missing
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, why)| why.as_str())
    }

    /// Whether a cpuset hierarchy is there for `linux.resources.cpu.cpus/mems`.
    pub fn has_cpuset(&self) -> bool {
        self.cpuset.is_some()
    }

    /// Whether a blkio hierarchy is there for `linux.resources.blockIO`.
    pub fn has_blkio(&self) -> bool {
        self.blkio.is_some()
    }

    /// The hierarchies a container's groups go in: ours, and cpuset and blkio when it asks for
    /// them.
    fn used(&self, tuning: &Tuning) -> impl Iterator<Item = &Hierarchy> {
        let (cpuset, blkio) = (tuning.wants_cpuset(), tuning.wants_blkio());
        self.found
            .iter()
            .chain(self.cpuset.iter().filter(move |_| cpuset))
            .chain(self.blkio.iter().filter(move |_| blkio))
    }

    /// Where `create` puts the container's groups: `<own>/<parent>/<id>` in every hierarchy.
    pub fn group_paths(&self, place: &Placement, tuning: &Tuning) -> Result<Vec<PathBuf>> {
        let parents = parent_components(&place.parent)?;
        Ok(self
            .used(tuning)
            .map(|h| {
                let mut path = h.own.clone();
                path.extend(&parents);
                path.join(&place.id)
            })
            .collect())
    }

    /// Makes `<own>/<parent>/<id>` in every hierarchy and writes the limits. If any step fails,
    /// every group made so far is removed again, in reverse, so nothing is left behind.
    pub fn create(&self, place: &Placement, limits: &Limits, tuning: &Tuning) -> Result<Group> {
        let parents = parent_components(&place.parent)?;
        let mut group = Group {
            members: Vec::new(),
        };
        for h in self.used(tuning) {
            let made = make_member(h, &parents, &place.id).and_then(|member| {
                if h.controllers.contains(&"cpuset") {
                    init_cpuset(&member.own, &member.path)?;
                }
                Ok(member)
            });
            match made {
                Ok(member) => group.members.push(member),
                Err(e) => {
                    let _ = group.destroy();
                    return Err(e);
                }
            }
        }
        if let Err(e) = group.write_limits(limits, tuning) {
            let _ = group.destroy();
            return Err(e);
        }
        Ok(group)
    }
}

/// One line of `/proc/self/mountinfo` of type `cgroup` that carries some of our controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    controllers: Vec<&'static str>,
    /// `major:minor`: the same for every mount of one hierarchy.
    device: String,
    /// Which group of the hierarchy is mounted (field 4): `/` unless it is a bind mount of a
    /// subtree, as inside some containers.
    root: PathBuf,
    point: PathBuf,
}

/// A new v1 cpuset group starts with no CPUs and no memory nodes, and no process can join it:
/// each group below `own` down to `group` gets its parent's, top down, where it has none.
fn init_cpuset(own: &Path, group: &Path) -> Result<()> {
    let Ok(below) = group.strip_prefix(own) else {
        return Ok(());
    };
    let mut dir = own.to_path_buf();
    for part in below.components() {
        let parent = dir.clone();
        dir.push(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = fs::read_to_string(dir.join(file)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = fs::read_to_string(parent.join(file))
                    .with_context(|| format!("reading {}", parent.join(file).display()))?;
                fs::write(dir.join(file), theirs.trim()).with_context(|| {
                    format!("writing {} from its parent", dir.join(file).display())
                })?;
            }
        }
    }
    Ok(())
}

/// The v1 mounts of `wanted` controllers, in mountinfo's order.
fn v1_mounts(mountinfo: &str, wanted: &[&'static str]) -> Vec<Mount> {
    let mut mounts = Vec::new();
    for line in mountinfo.lines() {
        let Some((fields, after)) = line.split_once(" - ") else {
            continue;
        };
        let mut after = after.split(' ');
        if after.next() != Some("cgroup") {
            continue;
        }
        let options: Vec<&str> = after.nth(1).unwrap_or_default().split(',').collect();
        let controllers: Vec<&'static str> = wanted
            .iter()
            .copied()
            .filter(|c| options.contains(c))
            .collect();
        let fields: Vec<&str> = fields.split(' ').collect();
        let (Some(device), Some(root), Some(point)) = (fields.get(2), fields.get(3), fields.get(4))
        else {
            continue;
        };
        if controllers.is_empty() {
            continue;
        }
        mounts.push(Mount {
            controllers,
            device: device.to_string(),
            root: PathBuf::from(unescape_octal(root)),
            point: PathBuf::from(unescape_octal(point)),
        });
    }
    mounts
}

/// mountinfo writes a space as `\040` (and tab, newline, backslash likewise) in paths.
fn unescape_octal(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], code) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// minibox's own group in `mount`'s hierarchy, as a host path: the `/proc/self/cgroup` line
/// whose controller list has the mount's controllers (`4:memory:/user.slice`, or
/// `3:cpu,cpuacct:/`), made relative to the mounted root. Err says why there is none.
fn own_group_in(mount: &Mount, proc_cgroup: &str) -> Result<PathBuf, String> {
    let own = proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        list.split(',')
            .any(|c| mount.controllers.contains(&c))
            .then_some(path)
    });
    let Some(own) = own else {
        return Err(format!(
            "mounted at {}, but /proc/self/cgroup has no line for it",
            mount.point.display()
        ));
    };
    match Path::new(own).strip_prefix(&mount.root) {
        Ok(below) => Ok(mount.point.join(below)),
        Err(_) => Err(format!(
            "mounted at {}, but that mount shows only {} of the hierarchy and minibox's own \
             group ({own}, per /proc/self/cgroup) lies outside it",
            mount.point.display(),
            mount.root.display()
        )),
    }
}

/// The parent groups of `--cgroup-parent`, relative to minibox's own group: a leading `/` is
/// ignored (as with v2, where it is relative to the root), `..` is refused, so that nothing
/// lands outside minibox's own group.
fn parent_components(parent: &Path) -> Result<Vec<PathBuf>> {
    let mut parts = Vec::new();
    for part in parent.components() {
        match part {
            Component::Normal(name) => parts.push(PathBuf::from(name)),
            Component::RootDir | Component::CurDir => continue,
            _ => bail!(
                "invalid --cgroup-parent {}: use a path below minibox's own cgroup, without '..'",
                parent.display()
            ),
        }
    }
    Ok(parts)
}

/// Makes the container's group in one hierarchy, with the parent groups it needs.
fn make_member(h: &Hierarchy, parents: &[PathBuf], id: &str) -> Result<Member> {
    if !h.own.is_dir() {
        bail!(
            "minibox's own {} cgroup {} is not there (per /proc/self/cgroup and \
             /proc/self/mountinfo)",
            h.controllers.join(","),
            h.own.display()
        );
    }
    let mut attempt = 1;
    loop {
        match make_group(&h.own, parents, id) {
            Ok(path) => {
                return Ok(Member {
                    controllers: h.controllers.clone(),
                    own: h.own.clone(),
                    path,
                })
            }
            // Another container's end removed a parent, empty then, between our mkdirs: again.
            Err(e) if attempt < CREATE_ATTEMPTS && is_not_found(&e) => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.root_cause()
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == ErrorKind::NotFound)
}

/// Makes `<own>/<parents>/<id>`; on failure removes the parents it left empty.
fn make_group(own: &Path, parents: &[PathBuf], id: &str) -> Result<PathBuf> {
    let parent = make_parents(own, parents)?;
    let path = parent.join(id);
    if let Err(e) = fs::create_dir(&path) {
        remove_empty_parents(own, &parent);
        return Err(e).with_context(|| format!("creating cgroup {}", path.display()));
    }
    Ok(path)
}

/// Makes the missing parent groups below `own`, top down; returns the innermost.
fn make_parents(own: &Path, parents: &[PathBuf]) -> Result<PathBuf> {
    let mut dir = own.to_path_buf();
    for part in parents {
        dir.push(part);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                if let Some(made) = dir.parent() {
                    remove_empty_parents(own, made);
                }
                return Err(e).with_context(|| format!("creating cgroup {}", dir.display()));
            }
        }
    }
    Ok(dir)
}

/// Removes `dir` and the groups above it up to (not including) `own`, while they are empty.
///
/// Unlike v2, where the parent sits at the root and is the administrator's, these parents sit
/// inside minibox's own group, which belongs to whoever started minibox (a login session, a CI
/// job): a child group left there would make their `rmdir` of it fail. So the last container
/// out removes them. A parent another container still uses is busy (the kernel refuses to remove
/// a group with children or tasks), and is left to that container. Best effort: a parent that
/// cannot go is no failure of this container. (Below its own group minibox takes the parent
/// path as its own: a `--cgroup-parent` group made there by hand goes too, once empty.)
fn remove_empty_parents(own: &Path, dir: &Path) {
    let mut dir = dir.to_path_buf();
    while dir != own && dir.starts_with(own) {
        match fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(_) => return,
        }
        if !dir.pop() {
            return;
        }
    }
}

/// The container's group in one hierarchy.
#[derive(Debug)]
struct Member {
    controllers: Vec<&'static str>,
    own: PathBuf,
    path: PathBuf,
}

/// One container's groups, one per hierarchy.
#[derive(Debug)]
pub struct Group {
    members: Vec<Member>,
}

impl Group {
    /// A container's groups made by an earlier minibox, from their recorded directories (for
    /// `ps`, `rm`). Each group's files say which controllers its hierarchy carries. `None` when
    /// none of them is a group any more.
    ///
    /// Which parent groups that minibox made is not recorded, so `destroy` removes only the
    /// groups themselves here: an empty parent goes when the next container in it ends.
    pub fn reopen(paths: &[PathBuf]) -> Option<Group> {
        let members: Vec<Member> = paths
            .iter()
            .filter_map(|path| {
                let controllers = controllers_by_files(path);
                (!controllers.is_empty()).then(|| Member {
                    controllers,
                    own: path.parent().unwrap_or(path).to_path_buf(),
                    path: path.clone(),
                })
            })
            .collect();
        (!members.is_empty()).then_some(Group { members })
    }

    /// The group that carries `controller`.
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.members
            .iter()
            .find(|m| m.controllers.contains(&controller))
            .map(|m| m.path.as_path())
    }

    fn write(&self, controller: &str, file: &str, value: &str) -> Result<()> {
        let Some(dir) = self.dir(controller) else {
            bail!("no cgroup v1 hierarchy carries the '{controller}' controller, for {file}");
        };
        let path = dir.join(file);
        fs::write(&path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
    }

    fn read(&self, controller: &str, file: &str) -> Option<String> {
        fs::read_to_string(self.dir(controller)?.join(file)).ok()
    }

    fn read_u64(&self, controller: &str, file: &str) -> Option<u64> {
        self.read(controller, file)?.trim().parse().ok()
    }

    /// A `key value` line of a flat-keyed file such as memory.oom_control.
    fn read_key(&self, controller: &str, file: &str, key: &str) -> Option<u64> {
        super::flat_key(&self.read(controller, file)?, key)
    }

    fn write_limits(&self, limits: &Limits, tuning: &Tuning) -> Result<()> {
        if let Some(bytes) = limits.memory {
            self.write("memory", "memory.limit_in_bytes", &bytes.to_string())?;
            // No swap unless asked: memory+swap gets the same limit (after the memory one: the
            // kernel wants memsw ≥ memory). The file is absent without swap accounting.
            let memsw = tuning.memory_swap.unwrap_or(bytes as i64);
            if self
                .dir("memory")
                .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists())
            {
                self.write("memory", "memory.memsw.limit_in_bytes", &memsw.to_string())?;
            }
        }
        if let Some(soft) = tuning.memory_reservation {
            self.write("memory", "memory.soft_limit_in_bytes", &soft.to_string())?;
        }
        if let Some(swappiness) = tuning.memory_swappiness {
            self.write("memory", "memory.swappiness", &swappiness.to_string())?;
        }
        if let Some(tcp) = tuning.kernel_tcp {
            self.write("memory", "memory.kmem.tcp.limit_in_bytes", &tcp.to_string())?;
        }
        if tuning.oom_kill_disable {
            self.write("memory", "memory.oom_control", "1")?;
        }
        let period = tuning.cpu_period.unwrap_or(CPU_PERIOD_US);
        if limits.cpu_quota.is_some() || tuning.cpu_period.is_some() {
            self.write("cpu", "cpu.cfs_period_us", &period.to_string())?;
        }
        if let Some(quota) = limits.cpu_quota {
            self.write("cpu", "cpu.cfs_quota_us", &quota.to_string())?;
        }
        if let Some(shares) = tuning.cpu_shares {
            self.write("cpu", "cpu.shares", &shares.to_string())?;
        }
        if let Some(cpus) = &tuning.cpus {
            self.write("cpuset", "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = &tuning.mems {
            self.write("cpuset", "cpuset.mems", mems)?;
        }
        if let Some(pids) = limits.pids {
            self.write("pids", "pids.max", &pids.to_string())?;
        }
        if let Some(dir) = self.dir("blkio").filter(|_| tuning.wants_blkio()) {
            for (file, line) in blkio::v1_writes(&tuning.block_io, |f| dir.join(f).exists())? {
                self.write("blkio", &file, &line)?;
            }
        }
        Ok(())
    }

    /// The processes in any of our groups.
    fn processes(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .members
            .iter()
            .filter_map(|m| fs::read_to_string(m.path.join("cgroup.procs")).ok())
            .flat_map(|text| {
                text.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// v1 has no `cgroup.kill`: SIGKILL what `cgroup.procs` lists, again until it lists
    /// nothing (a process may fork while we read), or until `deadline`.
    fn kill_all(&self, deadline: Instant) {
        loop {
            let pids = self.processes();
            if pids.is_empty() || Instant::now() >= deadline {
                return;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// What a group's `devices.list` says: all allowed (`a *:* rwm`; the kernel lists no denials
/// then), or how many allow rules, all else denied.
fn devices_list_summary(list: &str) -> String {
    let lines: Vec<&str> = list.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines[..] {
        ["a *:* rwm"] => "a *:* rwm (all devices allowed, but denials it does not list)".into(),
        _ => super::devices::Filter::summary_of(false, lines.len()),
    }
}

/// Which of `CONTROLLERS` a group's hierarchy carries, from the control files the kernel gives
/// each of its groups.
fn controllers_by_files(group: &Path) -> Vec<&'static str> {
    [
        ("memory", "memory.limit_in_bytes"),
        ("cpu", "cpu.cfs_quota_us"),
        ("cpuacct", "cpuacct.usage"),
        ("pids", "pids.max"),
        ("cpuset", "cpuset.cpus"),
        ("blkio", "blkio.throttle.read_bps_device"),
        ("freezer", "freezer.state"),
        ("devices", "devices.list"),
    ]
    .into_iter()
    .filter(|(_, file)| group.join(file).exists())
    .map(|(controller, _)| controller)
    .collect()
}

impl ContainerCgroup for Group {
    /// The memory group (the one OOM messages are about), else the first.
    fn path(&self) -> &Path {
        self.dir("memory")
            .or_else(|| self.members.first().map(|m| m.path.as_path()))
            .unwrap_or(Path::new(""))
    }

    fn driver(&self) -> &'static str {
        "cgroup v1"
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.path.clone()).collect()
    }

    fn add(&self, pid: Pid) -> Result<()> {
        for m in &self.members {
            let file = m.path.join("cgroup.procs");
            fs::write(&file, pid.to_string())
                .with_context(|| format!("writing {pid} to {}", file.display()))?;
        }
        Ok(())
    }

    fn settings(&self) -> Vec<(String, String)> {
        [
            ("memory", "memory.limit_in_bytes"),
            ("memory", "memory.memsw.limit_in_bytes"),
            ("cpu", "cpu.cfs_period_us"),
            ("cpu", "cpu.cfs_quota_us"),
            ("pids", "pids.max"),
        ]
        .into_iter()
        .filter_map(|(c, f)| Some((f.to_string(), self.read(c, f)?.trim().to_string())))
        .chain(
            self.read("devices", "devices.list")
                .map(|list| ("devices.list".to_string(), devices_list_summary(&list))),
        )
        .collect()
    }

    fn usage(&self) -> Usage {
        Usage {
            memory_current: self.read_u64("memory", "memory.usage_in_bytes"),
            memory_peak: self.read_u64("memory", "memory.max_usage_in_bytes"),
            cpu_usec: self
                .read_u64("cpuacct", "cpuacct.usage")
                .map(|ns| ns / 1000),
            // `oom_kill` is there from Linux 4.13; before, OOM kills go uncounted.
            oom_kills: self
                .read_key("memory", "memory.oom_control", "oom_kill")
                .unwrap_or(0),
            pids_current: self.read_u64("pids", "pids.current"),
        }
    }

    fn stats(&self) -> super::stats::Stats {
        use super::stats;
        let memory_stat = self.read("memory", "memory.stat");
        // The container has a blkio group only when it asked for blockIO settings.
        let (read, write) = match self.read("blkio", "blkio.throttle.io_service_bytes_recursive") {
            Some(text) => stats::v1_io(&text),
            None => stats::processes_io(&self.processes()),
        };
        stats::Stats {
            memory: stats::working_set(
                self.read_u64("memory", "memory.usage_in_bytes"),
                memory_stat.as_deref(),
                "total_inactive_file",
            ),
            memory_limit: stats::v1_limit(self.read("memory", "memory.limit_in_bytes").as_deref()),
            cpu_usec: self
                .read_u64("cpuacct", "cpuacct.usage")
                .map(|ns| ns / 1000),
            pids: self.read_u64("pids", "pids.current"),
            block_read: Some(read),
            block_write: Some(write),
        }
    }

    fn has_processes(&self) -> bool {
        !self.processes().is_empty()
    }

    fn processes(&self) -> Vec<i32> {
        Group::processes(self)
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let want = if frozen { "FROZEN" } else { "THAWED" };
        self.write("freezer", "freezer.state", want)?;
        // FREEZING until every task is stopped: `pause` returns with the freeze done.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self
            .read("freezer", "freezer.state")
            .as_deref()
            .map(str::trim)
            != Some(want)
        {
            if Instant::now() >= deadline {
                bail!("the freezer group did not become {want} within 5 s");
            }
            std::thread::sleep(Duration::from_millis(1));
            // The kernel wants the write repeated to go on from FREEZING.
            self.write("freezer", "freezer.state", want)?;
        }
        Ok(())
    }

    fn is_frozen(&self) -> bool {
        self.read("freezer", "freezer.state")
            .is_some_and(|s| s.trim() != "THAWED")
    }

    fn update(&self, change: &super::LimitsUpdate) -> Result<()> {
        let text = |v: i64| super::limit_text(v, "-1");
        if change.memory.is_some() || change.memory_swap.is_some() {
            let memory = change.memory.map(text);
            let swap = change
                .memory_swap
                .filter(|_| {
                    self.dir("memory")
                        .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists())
                })
                .map(text);
            // The kernel wants memsw ≥ memory at every moment: one order raises, the other
            // lowers; the second is tried when the first is refused.
            let write_memory = || match &memory {
                Some(m) => self.write("memory", "memory.limit_in_bytes", m),
                None => Ok(()),
            };
            let write_swap = || match &swap {
                Some(s) => self.write("memory", "memory.memsw.limit_in_bytes", s),
                None => Ok(()),
            };
            if write_memory().and_then(|()| write_swap()).is_err() {
                write_swap()?;
                write_memory()?;
            }
        }
        if let Some(period) = change.cpu_period {
            self.write("cpu", "cpu.cfs_period_us", &period.to_string())?;
        }
        if let Some(quota) = change.cpu_quota {
            self.write("cpu", "cpu.cfs_quota_us", &text(quota))?;
        }
        if let Some(shares) = change.cpu_shares {
            self.write("cpu", "cpu.shares", &shares.to_string())?;
        }
        if let Some(pids) = change.pids {
            let value = if pids <= 0 {
                "max".to_string()
            } else {
                pids.to_string()
            };
            self.write("pids", "pids.max", &value)?;
        }
        Ok(())
    }

    /// The reset, then one exception per write, into the devices group (the kernel checks each
    /// against the parent group's list).
    fn restrict_devices(&self, filter: &Filter) -> Result<()> {
        if filter.allows_all() {
            return Ok(());
        }
        for (file, rule) in filter.v1_writes() {
            self.write("devices", file, &rule)?;
        }
        Ok(())
    }

    /// Kills what is left, removes every group (last made, first removed), then the parents
    /// that are left empty. Every group is tried even if one fails; the first failure is
    /// returned.
    fn destroy(&self) -> Result<()> {
        let deadline = Instant::now() + DESTROY_TIMEOUT;
        // A paused container's processes die only once thawed.
        if self.is_frozen() {
            let _ = self.write("freezer", "freezer.state", "THAWED");
        }
        self.kill_all(deadline);
        let mut first_error = None;
        for m in self.members.iter().rev() {
            let removed = super::remove_group(&m.path, deadline, || {}).or_else(|_| {
                // Something survived the first round (or was forked meanwhile): once more.
                self.kill_all(deadline);
                super::remove_group(&m.path, deadline, || {})
            });
            match removed {
                Ok(()) => {
                    if let Some(parent) = m.path.parent() {
                        remove_empty_parents(&m.own, parent);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This CI machine: cpu and cpuacct in separate hierarchies, cgroup2 without controllers,
    /// minibox's memory group a few levels down.
    const SEPARATE_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const SEPARATE_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
5:devices:/
4:memory:/process_api/1821744e
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    /// Ubuntu 20.04 / Debian 10 style: `cpu,cpuacct` co-mounted, a systemd session.
    const COMOUNTED_MOUNTINFO: &str = "\
25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory
33 25 0:31 / /sys/fs/cgroup/pids rw,nosuid shared:17 - cgroup cgroup rw,pids
34 25 0:32 / /sys/fs/cgroup/freezer rw,nosuid shared:18 - cgroup cgroup rw,freezer
35 25 0:33 / /sys/fs/cgroup/devices rw,nosuid shared:19 - cgroup cgroup rw,devices
";
    const COMOUNTED_CGROUP: &str = "\
12:pids:/user.slice/user-1000.slice/session-2.scope
10:freezer:/
9:memory:/user.slice/user-1000.slice/session-2.scope
6:devices:/user.slice
4:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/user-1000.slice/session-2.scope
0::/user.slice/user-1000.slice/session-2.scope
";

    fn hierarchy(controllers: &[&'static str], own: &str) -> Hierarchy {
        Hierarchy {
            controllers: controllers.to_vec(),
            own: own.into(),
        }
    }

    #[test]
    fn finds_separate_cpu_and_cpuacct_hierarchies_and_our_groups_in_them() {
        let h = Hierarchies::from_tables(SEPARATE_MOUNTINFO, SEPARATE_CGROUP);
        assert_eq!(
            h.found,
            [
                hierarchy(&["cpu"], "/sys/fs/cgroup/cpu"),
                hierarchy(&["cpuacct"], "/sys/fs/cgroup/cpuacct"),
                hierarchy(&["memory"], "/sys/fs/cgroup/memory/process_api/1821744e"),
                hierarchy(&["devices"], "/sys/fs/cgroup/devices"),
                hierarchy(&["freezer"], "/sys/fs/cgroup/freezer"),
                hierarchy(&["pids"], "/sys/fs/cgroup/pids"),
            ]
        );
        assert!(h.missing.is_empty(), "{:?}", h.missing);
    }

    #[test]
    fn finds_co_mounted_cpu_cpuacct_as_one_hierarchy() {
        let h = Hierarchies::from_tables(COMOUNTED_MOUNTINFO, COMOUNTED_CGROUP);
        assert_eq!(
            h.found,
            [
                hierarchy(&["cpu", "cpuacct"], "/sys/fs/cgroup/cpu,cpuacct/user.slice"),
                hierarchy(
                    &["memory"],
                    "/sys/fs/cgroup/memory/user.slice/user-1000.slice/session-2.scope"
                ),
                hierarchy(
                    &["pids"],
                    "/sys/fs/cgroup/pids/user.slice/user-1000.slice/session-2.scope"
                ),
                hierarchy(&["freezer"], "/sys/fs/cgroup/freezer/"),
                hierarchy(&["devices"], "/sys/fs/cgroup/devices/user.slice"),
            ]
        );
        assert!(h.missing.is_empty(), "{:?}", h.missing);
    }

    #[test]
    fn a_pure_cgroup2_host_has_no_legacy_hierarchies() {
        let pure = "30 23 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = Hierarchies::from_tables(pure, "0::/user.slice\n");
        assert!(h.is_empty());
        let why = h.why_missing("pids").unwrap();
        assert!(
            why.contains("no cgroup v1 mount") && why.contains("mountinfo"),
            "{why}"
        );
    }

    #[test]
    fn an_unmounted_controller_is_missing_and_says_where_minibox_looked() {
        let no_pids: String = SEPARATE_MOUNTINFO
            .lines()
            .filter(|l| !l.ends_with("rw,pids"))
            .map(|l| format!("{l}\n"))
            .collect();
        let h = Hierarchies::from_tables(&no_pids, SEPARATE_CGROUP);
        assert_eq!(h.found.len(), 5);
        assert_eq!(h.why_missing("memory"), None);
        let why = h.why_missing("pids").unwrap();
        assert!(why.contains("/proc/self/mountinfo"), "{why}");
    }

    #[test]
    fn a_mount_of_a_subtree_maps_our_group_below_its_root_and_refuses_one_outside() {
        // Inside a container: each hierarchy shows only the container's subtree.
        let mountinfo = "\
50 40 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory
51 40 0:36 /docker/abc /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids
";
        let cgroup = "8:pids:/somewhere/else\n4:memory:/docker/abc/job\n";
        let h = Hierarchies::from_tables(mountinfo, cgroup);
        assert_eq!(
            h.found,
            [hierarchy(&["memory"], "/sys/fs/cgroup/memory/job")]
        );
        let why = h.why_missing("pids").unwrap();
        assert!(
            why.contains("/somewhere/else") && why.contains("outside"),
            "{why}"
        );
    }

    #[test]
    fn a_hierarchy_mounted_twice_is_used_once_and_escaped_paths_are_read() {
        let mountinfo = "\
34 31 0:32 /other /mnt/a-subtree rw - cgroup cgroup rw,memory
35 31 0:32 / /sys/fs/cgroup/my\\040memory rw - cgroup cgroup rw,memory
36 31 0:32 / /mnt/memory-again rw - cgroup cgroup rw,memory
";
        let h = Hierarchies::from_tables(mountinfo, "4:memory:/\n");
        assert_eq!(
            h.found,
            [hierarchy(&["memory"], "/sys/fs/cgroup/my memory/")],
            "the first mount that shows our group, once"
        );
        assert!(
            h.missing.iter().all(|(c, _)| *c != "memory"),
            "{:?}",
            h.missing
        );
        assert_eq!(unescape_octal("a\\011b\\134c\\"), "a\tb\\c\\");
    }

    /// Fake hierarchies in a tempdir: `memory`, `cpu,cpuacct` (co-mounted) and `pids`, with
    /// minibox's own group `own` in each.
    fn fake_hierarchies(dir: &Path) -> Hierarchies {
        let mut found = Vec::new();
        for (name, controllers) in [
            ("memory", vec!["memory"]),
            ("cpu,cpuacct", vec!["cpu", "cpuacct"]),
            ("pids", vec!["pids"]),
        ] {
            let own = dir.join(name).join("own");
            fs::create_dir_all(&own).unwrap();
            found.push(Hierarchy { controllers, own });
        }
        let own = dir.join("cpuset").join("own");
        fs::create_dir_all(&own).unwrap();
        fs::write(own.join("cpuset.cpus"), "0-1\n").unwrap();
        fs::write(own.join("cpuset.mems"), "0\n").unwrap();
        let blkio = dir.join("blkio").join("own");
        fs::create_dir_all(&blkio).unwrap();
        Hierarchies {
            found,
            cpuset: Some(Hierarchy {
                controllers: vec!["cpuset"],
                own,
            }),
            blkio: Some(Hierarchy {
                controllers: vec!["blkio"],
                own: blkio,
            }),
            missing: vec![],
        }
    }

    #[test]
    fn block_io_gets_a_blkio_group_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let h = fake_hierarchies(dir.path());
        let plain = h
            .create(&place("minibox"), &Limits::default(), &Tuning::default())
            .unwrap();
        assert!(!dir.path().join("blkio/own/minibox").exists());
        plain.destroy().unwrap();
        let tuning = Tuning {
            block_io: blkio::BlockIo {
                throttle: vec![blkio::Throttle {
                    rate: blkio::Rate::WriteBps,
                    major: 254,
                    minor: 0,
                    value: 1 << 20,
                }],
                ..blkio::BlockIo::default()
            },
            ..Tuning::default()
        };
        let g = h
            .create(&place("minibox"), &Limits::default(), &tuning)
            .unwrap();
        let file = dir
            .path()
            .join("blkio/own/minibox/abc/blkio.throttle.write_bps_device");
        assert_eq!(fs::read_to_string(file).unwrap(), "254:0 1048576");
        // A weight on a host without CFQ or BFQ is refused by name, and nothing stays.
        let weighted = Tuning {
            block_io: blkio::BlockIo {
                weight: Some(500),
                ..blkio::BlockIo::default()
            },
            ..Tuning::default()
        };
        let err = h
            .create(&place("other"), &Limits::default(), &weighted)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("blockIO.weight"), "{err:#}");
        assert!(!dir.path().join("blkio/own/other").exists());
        drop(g);
    }

    #[test]
    fn tuning_reaches_its_files_and_a_cpuset_group_starts_with_its_parents_cpus() {
        let dir = tempfile::tempdir().unwrap();
        let h = fake_hierarchies(dir.path());
        // Without cpus/mems asked for, no cpuset group at all.
        let plain = h
            .create(&place("minibox"), &Limits::default(), &Tuning::default())
            .unwrap();
        assert!(!dir.path().join("cpuset/own/minibox").exists());
        plain.destroy().unwrap();
        let limits = Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        };
        let tuning = Tuning {
            memory_reservation: Some(32 << 20),
            cpu_shares: Some(512),
            cpu_period: Some(50_000),
            mems: Some("0".into()),
            ..Tuning::default()
        };
        let g = h.create(&place("a/b"), &limits, &tuning).unwrap();
        let read = |p: &str| fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("cpuset/own/a/cpuset.cpus"), "0-1");
        assert_eq!(read("cpuset/own/a/b/abc/cpuset.cpus"), "0-1");
        assert_eq!(read("cpuset/own/a/b/abc/cpuset.mems"), "0");
        assert_eq!(read("cpu,cpuacct/own/a/b/abc/cpu.shares"), "512");
        assert_eq!(read("cpu,cpuacct/own/a/b/abc/cpu.cfs_period_us"), "50000");
        assert_eq!(
            read("memory/own/a/b/abc/memory.soft_limit_in_bytes"),
            (32u64 << 20).to_string()
        );
        assert_eq!(g.paths().len(), 4);
    }

    fn place(parent: &str) -> Placement {
        Placement {
            parent: parent.into(),
            id: "abc".into(),
        }
    }

    #[test]
    fn writes_each_limit_into_its_hierarchys_group() {
        let dir = tempfile::tempdir().unwrap();
        let h = fake_hierarchies(dir.path());
        let limits = Limits {
            memory: Some(48 << 20),
            cpu_quota: Some(25_000),
            pids: Some(30),
            ..Limits::default()
        };
        let g = h
            .create(&place("minibox"), &limits, &Tuning::default())
            .unwrap();
        let read = |p: &str| fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(
            read("memory/own/minibox/abc/memory.limit_in_bytes"),
            "50331648"
        );
        let memsw = dir
            .path()
            .join("memory/own/minibox/abc/memory.memsw.limit_in_bytes");
        assert!(
            !memsw.exists(),
            "no swap accounting here, so no memsw file is made"
        );
        assert_eq!(
            read("cpu,cpuacct/own/minibox/abc/cpu.cfs_period_us"),
            "100000"
        );
        assert_eq!(
            read("cpu,cpuacct/own/minibox/abc/cpu.cfs_quota_us"),
            "25000"
        );
        assert_eq!(read("pids/own/minibox/abc/pids.max"), "30");
        let settings: Vec<String> = g
            .settings()
            .iter()
            .map(|(f, v)| format!("{f}={v}"))
            .collect();
        assert_eq!(
            settings,
            [
                "memory.limit_in_bytes=50331648",
                "cpu.cfs_period_us=100000",
                "cpu.cfs_quota_us=25000",
                "pids.max=30"
            ]
        );
        assert_eq!(g.path(), dir.path().join("memory/own/minibox/abc"));
        assert_eq!(g.driver(), "cgroup v1");
    }

    #[test]
    fn memsw_gets_the_same_limit_when_swap_is_accounted() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = fake_hierarchies(dir.path());
        h.found.truncate(1);
        // A fake mkdir makes no control files: give the group the file the kernel would make.
        let group = Group {
            members: vec![Member {
                controllers: vec!["memory"],
                own: h.found[0].own.clone(),
                path: h.found[0].own.join("abc"),
            }],
        };
        fs::create_dir(group.path()).unwrap();
        fs::write(group.path().join("memory.memsw.limit_in_bytes"), "max").unwrap();
        let limits = Limits {
            memory: Some(32 << 20),
            ..Limits::default()
        };
        group.write_limits(&limits, &Tuning::default()).unwrap();
        let read = |f: &str| fs::read_to_string(group.path().join(f)).unwrap();
        assert_eq!(read("memory.limit_in_bytes"), "33554432");
        assert_eq!(read("memory.memsw.limit_in_bytes"), "33554432");
    }

    #[test]
    fn no_limits_still_makes_groups_and_destroy_removes_them_and_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        let h = fake_hierarchies(dir.path());
        let g = h
            .create(&place("/mbx/sub"), &Limits::default(), &Tuning::default())
            .unwrap();
        for name in ["memory", "cpu,cpuacct", "pids"] {
            let path = dir.path().join(name).join("own/mbx/sub/abc");
            assert!(path.is_dir(), "{}", path.display());
            assert_eq!(fs::read_dir(&path).unwrap().count(), 0, "no limit files");
        }
        g.destroy().unwrap();
        for name in ["memory", "cpu,cpuacct", "pids"] {
            let own = dir.path().join(name).join("own");
            assert!(own.is_dir(), "our own group stays");
            assert_eq!(fs::read_dir(&own).unwrap().count(), 0, "{}", own.display());
        }
    }

    #[test]
    fn a_parent_another_container_uses_is_left_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let h = fake_hierarchies(dir.path());
        let first = h
            .create(&place("minibox"), &Limits::default(), &Tuning::default())
            .unwrap();
        let second = h
            .create(
                &Placement {
                    parent: "minibox".into(),
                    id: "def".into(),
                },
                &Limits::default(),
                &Tuning::default(),
            )
            .unwrap();
        first.destroy().unwrap();
        assert!(dir.path().join("pids/own/minibox/def").is_dir());
        assert!(!dir.path().join("pids/own/minibox/abc").exists());
        second.destroy().unwrap();
        assert!(!dir.path().join("pids/own/minibox").exists());
    }

    #[test]
    fn a_failure_in_a_later_hierarchy_removes_what_was_made() {
        let dir = tempfile::tempdir().unwrap();
        let h = fake_hierarchies(dir.path());
        // The pids hierarchy's own group vanished (or was never there).
        fs::remove_dir(dir.path().join("pids/own")).unwrap();
        let e = h
            .create(&place("minibox"), &Limits::default(), &Tuning::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("pids/own") && e.contains("not there"), "{e}");
        for name in ["memory", "cpu,cpuacct"] {
            let own = dir.path().join(name).join("own");
            assert_eq!(fs::read_dir(&own).unwrap().count(), 0, "{}", own.display());
        }
    }

    #[test]
    fn a_parent_outside_our_own_group_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let h = fake_hierarchies(dir.path());
        let e = h
            .create(
                &place("minibox/../../escape"),
                &Limits::default(),
                &Tuning::default(),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid --cgroup-parent"), "{e}");
        assert!(!dir.path().join("memory/escape").exists());
        assert_eq!(
            parent_components(Path::new("/a/./b")).unwrap(),
            [PathBuf::from("a"), PathBuf::from("b")]
        );
    }

    #[test]
    fn reopens_recorded_groups_by_their_files_and_removes_only_them() {
        let dir = tempfile::tempdir().unwrap();
        let h = fake_hierarchies(dir.path());
        let made = h
            .create(&place("minibox"), &Limits::default(), &Tuning::default())
            .unwrap();
        let paths = made.paths();
        assert_eq!(paths.len(), 3);
        assert!(
            Group::reopen(&paths).is_none(),
            "fake groups have no control files yet"
        );
        let write = |p: &str| fs::write(dir.path().join(p), "1").unwrap();
        write("memory/own/minibox/abc/memory.limit_in_bytes");
        write("cpu,cpuacct/own/minibox/abc/cpu.cfs_quota_us");
        write("cpu,cpuacct/own/minibox/abc/cpuacct.usage");
        write("pids/own/minibox/abc/pids.max");
        let g = Group::reopen(&paths).unwrap();
        assert_eq!(g.paths(), paths);
        assert_eq!(g.dir("cpuacct"), g.dir("cpu"));
        assert_eq!(g.path(), dir.path().join("memory/own/minibox/abc"));
        assert_eq!(g.usage().cpu_usec, Some(0), "1 ns");
    }

    #[test]
    fn reads_usage_from_the_legacy_files() {
        let dir = tempfile::tempdir().unwrap();
        let h = fake_hierarchies(dir.path());
        let g = h
            .create(&place(""), &Limits::default(), &Tuning::default())
            .unwrap();
        let write = |p: &str, text: &str| fs::write(dir.path().join(p), text).unwrap();
        write("memory/own/abc/memory.usage_in_bytes", "4096\n");
        write("memory/own/abc/memory.max_usage_in_bytes", "8192\n");
        write(
            "memory/own/abc/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        write("cpu,cpuacct/own/abc/cpuacct.usage", "1500000\n");
        let u = g.usage();
        assert_eq!(u.memory_current, Some(4096));
        assert_eq!(u.memory_peak, Some(8192));
        assert_eq!(u.cpu_usec, Some(1500), "ns become µs");
        assert_eq!(u.oom_kills, 2);
    }

    #[test]
    fn stats_read_the_legacy_files() {
        let dir = tempfile::tempdir().unwrap();
        let h = fake_hierarchies(dir.path());
        let g = h
            .create(&place(""), &Limits::default(), &Tuning::default())
            .unwrap();
        let write = |p: &str, text: &str| fs::write(dir.path().join(p), text).unwrap();
        write("memory/own/abc/memory.usage_in_bytes", "10000\n");
        write(
            "memory/own/abc/memory.stat",
            "cache 100\ninactive_file 7\ntotal_inactive_file 2000\n",
        );
        write(
            "memory/own/abc/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write("cpu,cpuacct/own/abc/cpuacct.usage", "3000000\n");
        write("pids/own/abc/pids.current", "2\n");
        let s = g.stats();
        assert_eq!(s.memory, Some(8000), "total_inactive_file left out");
        assert_eq!(s.memory_limit, None, "the huge number is no limit");
        assert_eq!((s.pids, s.cpu_usec), (Some(2), Some(3000)));
        // No blkio group (none asked for): the processes' own counts, none here.
        assert_eq!((s.block_read, s.block_write), (Some(0), Some(0)));
    }
}
