//! cgroups: the kernel's accounting and limits for the container's processes.
//!
//! Every container gets a group of its own; the limits asked for are written into it before the
//! container's first process joins, so they hold from CMD's first instruction. The group is
//! removed when the container ends. `Limits` is plain data; a driver makes it real: `v2` for
//! the unified hierarchy, `v1` for legacy and hybrid hosts, whose controllers are mounted as
//! v1 hierarchies. `create` picks the driver. The device cgroup's rules (`devices`) are
//! loaded into the group by either driver: v1 writes them, v2 attaches a program (`bpf`).

pub mod blkio;
mod bpf;
pub mod devices;
pub mod stats;
mod v1;
mod v2;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::unistd::Pid;

/// The CFS period minibox uses, in microseconds (docker's).
pub const CPU_PERIOD_US: u64 = 100_000;

/// The process limit docker-style runs get unless `--pids-limit` says otherwise (podman's
/// default: a fork bomb in one container stops there instead of taking the host's pid space).
pub const DEFAULT_PIDS_LIMIT: u64 = 2048;

/// Below this a container cannot even start: the runtime's own setup and `execve` need it.
pub const MIN_MEMORY: u64 = 4 << 20;

/// Where a container's cgroup is, to read its usage or clean it up later.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CgroupRecord {
    /// "cgroup v2" or "cgroup v1".
    pub driver: String,
    /// Its directory (v2), or one per hierarchy (v1).
    pub paths: Vec<PathBuf>,
}

/// What the user asked the kernel to enforce; `None` is "no limit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Bytes of memory (swap not included: swap is forbidden).
    pub memory: Option<u64>,
    /// CPU time per `CPU_PERIOD_US`, in microseconds.
    pub cpu_quota: Option<u64>,
    /// Number of processes and threads.
    pub pids: Option<u64>,
    /// `pids` is minibox's default (`DEFAULT_PIDS_LIMIT`), not asked for: on a host without a
    /// pids controller the container runs without it (as podman's default), where a limit
    /// asked for is an error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pids_default: bool,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// What was asked for: without the default pids limit.
    fn asked(&self) -> Limits {
        match self.pids_default {
            true => Limits {
                pids: None,
                pids_default: false,
                ..*self
            },
            false => *self,
        }
    }
}

/// The finer settings of config.json's `linux.resources` beyond `Limits`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tuning {
    /// A soft floor (v2 `memory.low`) or soft limit (v1 `memory.soft_limit_in_bytes`).
    pub memory_reservation: Option<u64>,
    /// Memory plus swap, bytes (OCI's `swap`); -1 for no limit. `None`: no swap at all on top
    /// of a memory limit (docker's `--memory` alone).
    pub memory_swap: Option<i64>,
    /// How readily the group's memory goes to swap, 0 to 100 (v1 `memory.swappiness`; v2 has
    /// no such file: refused there).
    pub memory_swappiness: Option<u64>,
    /// OCI's `disableOOMKiller`: at its limit the group waits for memory instead of losing a
    /// process (v1 `memory.oom_control`; v2 has none: refused there).
    pub oom_kill_disable: bool,
    /// OCI's `kernelTCP`: the group's TCP buffer memory, bytes, -1 for no limit (v1
    /// `memory.kmem.tcp.limit_in_bytes`; v2 counts it in `memory.max`: refused there).
    pub kernel_tcp: Option<i64>,
    /// CPU shares (v1 `cpu.shares`; v2 `cpu.weight`, converted as runc does).
    pub cpu_shares: Option<u64>,
    /// The CFS period in µs (default `CPU_PERIOD_US`).
    pub cpu_period: Option<u64>,
    /// cpuset: which CPUs and memory nodes.
    pub cpus: Option<String>,
    pub mems: Option<String>,
    /// v2 only: files of the group and their values, written as given.
    pub unified: Vec<(String, String)>,
    /// `linux.resources.blockIO` (v1 blkio, v2 io).
    pub block_io: blkio::BlockIo,
    /// `linux.resources.devices`: which device nodes may be opened or made (the runtime's
    /// defaults come on top, see `devices`). Empty: no device cgroup.
    pub devices: devices::DeviceRules,
}

impl Tuning {
    pub fn wants_cpuset(&self) -> bool {
        self.cpus.is_some() || self.mems.is_some()
    }

    pub fn wants_blkio(&self) -> bool {
        !self.block_io.is_empty()
    }

    /// OCI's shares (2..262144) as a cgroup v2 weight (1..10000), runc's formula.
    pub fn cpu_weight(&self) -> Option<u64> {
        self.cpu_shares.map(shares_to_weight)
    }

    /// What v2's `memory.swap.max` gets for a memory limit of `memory` bytes.
    fn swap_max(&self, memory: Option<u64>) -> Option<String> {
        match (self.memory_swap, memory) {
            (Some(-1), _) => Some("max".into()),
            (Some(total), Some(mem)) => Some((total.max(mem as i64) - mem as i64).to_string()),
            (None, Some(_)) => Some("0".into()),
            _ => None,
        }
    }

    /// True when nothing but device rules is asked for.
    fn is_empty(&self) -> bool {
        Tuning {
            devices: devices::DeviceRules::default(),
            ..self.clone()
        } == Tuning::default()
    }
}

/// New limits for a live group, in the OCI runtime spec's terms (`LinuxResources`): `None`
/// leaves a value as it is; `-1` means unlimited where the spec says so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitsUpdate {
    /// Bytes, or -1.
    pub memory: Option<i64>,
    /// Memory plus swap, in bytes, or -1.
    pub memory_swap: Option<i64>,
    /// Microseconds per period, or -1.
    pub cpu_quota: Option<i64>,
    /// Microseconds.
    pub cpu_period: Option<u64>,
    /// cgroup v1 shares (2..262144); v2 gets the equivalent weight.
    pub cpu_shares: Option<u64>,
    /// Processes, or -1 (0 too, as runc).
    pub pids: Option<i64>,
}

/// A limit as cgroup files write it: a number, or `max` (v2) / `-1` (v1) for none.
fn limit_text(value: i64, unlimited: &str) -> String {
    if value < 0 {
        unlimited.to_string()
    } else {
        value.to_string()
    }
}

/// cgroup v1 `cpu.shares` as cgroup v2 `cpu.weight` (the conversion runc and crun use).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// What the kernel measured for the group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub cpu_usec: Option<u64>,
    /// Processes the kernel's OOM killer killed in the group.
    pub oom_kills: u64,
    /// Processes and threads in the group now (`pids.current`).
    pub pids_current: Option<u64>,
}

/// One container's group, whatever the driver.
pub trait ContainerCgroup {
    /// Where it lives, for messages and `ps` (for v1, the memory hierarchy's group).
    fn path(&self) -> &Path;
    /// Which driver made it, `"cgroup v2"` or `"cgroup v1"`: `ps` and explanations say so.
    fn driver(&self) -> &'static str;
    /// Every directory of it: one for v2, one per hierarchy for v1 (for the state record, from
    /// which `reopen` finds the group again).
    fn paths(&self) -> Vec<PathBuf> {
        vec![self.path().to_path_buf()]
    }
    /// Moves a process in; its future children are counted too.
    fn add(&self, pid: Pid) -> Result<()>;
    /// Current accounting.
    fn usage(&self) -> Usage;
    /// What `minibox stats` shows: memory as docker counts it, the limit, tasks, block I/O.
    fn stats(&self) -> stats::Stats;
    /// The limit files and what the kernel holds in them now (`--explain`, `inspect`).
    fn settings(&self) -> Vec<(String, String)> {
        vec![]
    }
    /// True while a process is in the group.
    fn has_processes(&self) -> bool;
    /// The host pids of every process in the group (`minibox ps ID`, `kill --all`).
    fn processes(&self) -> Vec<i32>;
    /// Freezes (`pause`) or thaws (`resume`) every process in the group.
    fn set_frozen(&self, frozen: bool) -> Result<()>;
    /// True while the group is frozen.
    fn is_frozen(&self) -> bool;
    /// Changes limits of a running container (`minibox update`).
    fn update(&self, change: &LimitsUpdate) -> Result<()>;
    /// Loads the device rules, before any process joins (nothing to do when they allow all).
    fn restrict_devices(&self, filter: &devices::Filter) -> Result<()>;
    /// Kills whatever still runs in the group, then removes it.
    fn destroy(&self) -> Result<()>;
}

/// Where to make the container's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `--cgroup-parent`, default `minibox`: relative to the cgroup2 root for v2, and to the
    /// group minibox itself runs in, in each hierarchy, for v1. Never with `..`.
    pub parent: PathBuf,
    pub id: String,
}

/// The groups a container is to get, decided (driver and paths) before any is made.
pub struct Plan {
    driver: Driver,
    place: Placement,
    limits: Limits,
    tuning: Tuning,
    devices: devices::Filter,
}

/// Decides where the container's group(s) go, through the driver `choose` picks, and checks
/// the placement; makes nothing. A bad `--cgroup-parent` or a limit the host cannot enforce
/// fails here.
pub fn plan(place: &Placement, limits: &Limits, tuning: &Tuning) -> Result<Plan> {
    let v2 = v2::Hierarchy::find()?;
    // Only read when v2 will not do: a pure v2 host behaves exactly as before v1 existed.
    let v1 = match v2 {
        v2::Found::Usable(_) => None,
        v2::Found::Missing { .. } => Some(v1::Hierarchies::find()?),
    };
    // The default pids limit is never a reason to refuse: the driver is chosen for what was
    // asked, and the default goes only where that driver has a pids controller.
    let driver = choose(v2, v1, &limits.asked())?;
    let limits = enforceable(&driver, limits);
    let devices = tuning.devices.filter()?;
    check_devices(&driver, &devices)?;
    check_tuning(&driver, tuning)?;
    let plan = Plan {
        driver,
        place: place.clone(),
        limits,
        tuning: tuning.clone(),
        devices,
    };
    plan.paths()?;
    Ok(plan)
}

impl Plan {
    /// The limits the group gets (the default pids limit only where it can hold).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn paths(&self) -> Result<Vec<PathBuf>> {
        match &self.driver {
            Driver::V2(h) => Ok(vec![h.group_path(&self.place)?]),
            Driver::V1(h) => h.group_paths(&self.place, &self.tuning),
            Driver::None => Ok(vec![]),
        }
    }

    /// Where the groups will be, to be recorded *before* they are made: a minibox killed right
    /// after its `mkdir` then leaves a group that `rm` and the sweep find. `None` when the
    /// container gets no group.
    pub fn record(&self) -> Option<CgroupRecord> {
        let driver = match self.driver {
            Driver::V2(_) => "cgroup v2",
            Driver::V1(_) => "cgroup v1",
            Driver::None => return None,
        };
        Some(CgroupRecord {
            driver: driver.into(),
            paths: self.paths().ok()?,
        })
    }

    /// Makes the group(s) with the limits written and the device rules loaded. `Ok(None)` when
    /// this host has no usable cgroup hierarchy and nothing was asked for: the container then
    /// runs without accounting.
    pub fn create(self) -> Result<Option<Box<dyn ContainerCgroup>>> {
        let group: Box<dyn ContainerCgroup> = match self.driver {
            Driver::V2(h) => Box::new(h.create(&self.place, &self.limits, &self.tuning)?),
            Driver::V1(h) => Box::new(h.create(&self.place, &self.limits, &self.tuning)?),
            Driver::None => return Ok(None),
        };
        if let Err(e) = group.restrict_devices(&self.devices) {
            let _ = group.destroy();
            return Err(e);
        }
        Ok(Some(group))
    }
}

/// The driver a container gets.
enum Driver {
    V2(v2::Hierarchy),
    V1(v1::Hierarchies),
    /// No accounting at all (and no limit asked for).
    None,
}

/// Picks the driver, the same for all of a container's controllers:
///
/// - cgroup v2 when the unified hierarchy offers memory, cpu and pids (a pure v2 host);
/// - else cgroup v1 when any of memory, cpu, cpuacct, pids is mounted as a v1 hierarchy (legacy
///   and hybrid hosts), even with no limit asked for, so that `ps` has usage to show. Mixed
///   hosts, where the unified hierarchy offers a controller the v1 mounts lack, still get v1
///   only: one container's groups are never split between v1 and v2, which place groups by
///   different rules (v2 from the root, enabling controllers down the tree; v1 inside
///   minibox's own group), and on a hybrid host the unified tree is systemd's to manage. A flag
///   whose controller v1 lacks is then an error naming it and where minibox looked;
/// - else (v1 has none of them either) the v2 verdict: an error naming what cgroup v2 lacks if
///   a limit was asked for, else no groups.
fn choose(v2: v2::Found, v1: Option<v1::Hierarchies>, limits: &Limits) -> Result<Driver> {
    let (looked_at, v2_missing) = match v2 {
        v2::Found::Usable(h) => return Ok(Driver::V2(h)),
        v2::Found::Missing { looked_at, missing } => (looked_at, missing),
    };
    match v1 {
        Some(v1) if !v1.is_empty() => {
            check_v1_offers_what_is_asked(&v1, limits, &looked_at, &v2_missing)?;
            Ok(Driver::V1(v1))
        }
        _ if !limits.is_empty() => bail!(
            "cannot limit the container: cgroup v2 lacks the controller(s) {} (looked at {}), \
             and cgroup v1 offers none of them here (looked in /proc/self/mountinfo and \
             /proc/self/cgroup). Run without --memory/--cpus/--pids-limit, or mount the \
             controllers",
            v2_missing.join(", "),
            looked_at
        ),
        _ => Ok(Driver::None),
    }
}

/// The limits the driver will write: all that were asked (`choose` checked them), and the
/// default pids limit only where the driver has a pids controller.
fn enforceable(driver: &Driver, limits: &Limits) -> Limits {
    match driver {
        Driver::V2(_) => *limits,
        Driver::V1(h) if h.why_missing("pids").is_none() => *limits,
        _ => limits.asked(),
    }
}

/// Device rules that restrict anything need a device controller: v2 always has one (a BPF
/// program), v1 a `devices` hierarchy. Without one the rules are refused, never ignored (runc
/// too fails without the devices controller).
fn check_devices(driver: &Driver, filter: &devices::Filter) -> Result<()> {
    if filter.allows_all() {
        return Ok(());
    }
    let why = match driver {
        Driver::V2(_) => return Ok(()),
        Driver::V1(h) => match h.why_missing("devices") {
            None => return Ok(()),
            Some(why) => format!("cgroup v1 has no 'devices' controller here ({why})"),
        },
        Driver::None => "this host offers no cgroup controllers to minibox".to_string(),
    };
    bail!(
        "cannot load the device rules ({}): {why}. Mount the devices controller (cgroup v1), \
         or run on a cgroup v2 host",
        filter.summary()
    )
}

/// The settings of `linux.resources` a driver cannot apply, refused by name before anything is
/// made.
fn check_tuning(driver: &Driver, tuning: &Tuning) -> Result<()> {
    match driver {
        Driver::V1(h) => {
            if !tuning.unified.is_empty() {
                bail!(
                    "linux.resources.unified needs cgroup v2, and this host keeps its \
                     controllers on cgroup v1: give the settings as memory/cpu/pids fields"
                );
            }
            if tuning.wants_blkio() && !h.has_blkio() {
                bail!(
                    "linux.resources.blockIO needs the blkio controller, which this host does \
                     not mount as a cgroup v1 hierarchy (looked in /proc/self/mountinfo)"
                );
            }
            if tuning.wants_cpuset() && !h.has_cpuset() {
                bail!(
                    "linux.resources.cpu.cpus/mems need the cpuset controller, which this host \
                     does not mount as a cgroup v1 hierarchy (looked in /proc/self/mountinfo)"
                );
            }
            Ok(())
        }
        Driver::V2(_) => refuse_v1_only_memory(tuning),
        Driver::None if tuning.is_empty() => Ok(()),
        Driver::None => {
            bail!("cannot apply linux.resources: this host offers no cgroup controllers to minibox")
        }
    }
}

/// The memory settings cgroup v2 has no file for: refused by name rather than dropped.
fn refuse_v1_only_memory(tuning: &Tuning) -> Result<()> {
    let v1_only = [
        ("swappiness", tuning.memory_swappiness.is_some()),
        ("disableOOMKiller", tuning.oom_kill_disable),
        ("kernelTCP", tuning.kernel_tcp.is_some()),
    ];
    if let Some((field, _)) = v1_only.iter().find(|(_, asked)| *asked) {
        bail!(
            "linux.resources.memory.{field} is not supported on this host's cgroup v2 (only v1 \
             has it); leave it out (runtime-spec config-linux.md#memory)"
        );
    }
    Ok(())
}

/// The controller each limit needs, with its flag.
fn asked_controllers(limits: &Limits) -> Vec<(&'static str, &'static str)> {
    [
        (limits.memory.is_some(), "memory", "--memory"),
        (limits.cpu_quota.is_some(), "cpu", "--cpus"),
        (limits.pids.is_some(), "pids", "--pids-limit"),
    ]
    .into_iter()
    .filter(|(asked, _, _)| *asked)
    .map(|(_, controller, flag)| (controller, flag))
    .collect()
}

/// Fails, naming the controller, its flag and where minibox looked, when a limit is asked for
/// whose controller the v1 driver cannot use.
fn check_v1_offers_what_is_asked(
    v1: &v1::Hierarchies,
    limits: &Limits,
    v2_looked_at: &str,
    v2_missing: &[&str],
) -> Result<()> {
    for (controller, flag) in asked_controllers(limits) {
        let Some(why) = v1.why_missing(controller) else {
            continue;
        };
        let in_v2 = if v2_missing.contains(&controller) {
            format!("not offered either ({v2_looked_at})")
        } else {
            format!(
                "offered ({v2_looked_at}), but this host keeps minibox's other controllers in \
                 v1, and minibox does not split a container between v1 and v2"
            )
        };
        bail!(
            "cannot apply {flag}: this host has no usable '{controller}' cgroup controller \
             (cgroup v1: {why}; cgroup v2: {in_v2}). Run without {flag}, or mount the \
             '{controller}' controller as a cgroup v1 hierarchy"
        );
    }
    Ok(())
}

/// The number on a `key value` line of a flat-keyed control file (memory.events, cpu.stat,
/// memory.oom_control): both drivers read them.
fn flat_key(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Removes a group directory. Dying processes still count for a moment (EBUSY): `on_busy`
/// runs (to kill stragglers) and the removal is tried again, until `deadline`.
fn remove_group(
    path: &Path,
    deadline: std::time::Instant,
    mut on_busy: impl FnMut(),
) -> Result<()> {
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && std::time::Instant::now() < deadline =>
            {
                on_busy();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(e) => return Err(e).with_context(|| format!("removing cgroup {}", path.display())),
        }
    }
}

/// A container's group again, from what its state recorded (for `ps`, `stop`, `rm`).
pub fn reopen(record: &CgroupRecord) -> Option<Box<dyn ContainerCgroup>> {
    match record.driver.as_str() {
        "cgroup v2" => {
            let path = record.paths.first()?;
            Some(Box::new(v2::Group::at(path)))
        }
        "cgroup v1" => Some(Box::new(v1::Group::reopen(&record.paths)?)),
        _ => None,
    }
}

/// Docker's memory syntax: `64m`, `1.5g`, `512k`, `1048576` (bytes), `64mb`, `64MiB`.
pub fn parse_memory(text: &str) -> Result<u64> {
    let bad = || {
        anyhow::anyhow!(
            "invalid --memory {text:?}: use a positive size such as 64m, 512k, 1g or a number of bytes"
        )
    };
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    let bytes = bytes as u64;
    if bytes < MIN_MEMORY {
        bail!(
            "--memory {text} is too small: a container needs at least {} MiB to start",
            MIN_MEMORY >> 20
        );
    }
    Ok(bytes)
}

/// `--cpus 0.5` → 50000 µs of CPU per 100000 µs period; from 0.01 up to the host's CPUs.
pub fn parse_cpus(text: &str, host_cpus: usize) -> Result<u64> {
    let cpus: f64 = text
        .trim()
        .parse()
        .ok()
        .filter(|c: &f64| c.is_finite())
        .with_context(|| {
            format!("invalid --cpus {text:?}: use a number of CPUs such as 0.5 or 2")
        })?;
    if cpus < 0.01 {
        bail!("invalid --cpus {text}: the range is 0.01 to {host_cpus} (this host's CPUs)");
    }
    if cpus > host_cpus as f64 {
        bail!("--cpus {text} is more than this host's {host_cpus} CPU(s): the range is 0.01 to {host_cpus}");
    }
    Ok((cpus * CPU_PERIOD_US as f64).round() as u64)
}

/// `--pids-limit N`, N ≥ 1; `-1` or `0` for no limit (`None`), as docker and podman spell it.
pub fn parse_pids(text: &str) -> Result<Option<u64>> {
    match text.trim().parse::<i64>() {
        Ok(-1 | 0) => Ok(None),
        Ok(n) if n >= 1 => Ok(Some(n as u64)),
        _ => bail!(
            "invalid --pids-limit {text:?}: use a whole number of processes (at least 1), or -1 \
             (or 0) for no limit"
        ),
    }
}

/// Sizes for people: `64 MiB`, `1.5 GiB`, `300 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() < 0.05 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_refuses_the_v1_only_memory_settings_by_name() {
        assert!(refuse_v1_only_memory(&Tuning::default()).is_ok());
        for (tuning, field) in [
            (
                Tuning {
                    memory_swappiness: Some(10),
                    ..Tuning::default()
                },
                "swappiness",
            ),
            (
                Tuning {
                    oom_kill_disable: true,
                    ..Tuning::default()
                },
                "disableOOMKiller",
            ),
            (
                Tuning {
                    kernel_tcp: Some(1 << 20),
                    ..Tuning::default()
                },
                "kernelTCP",
            ),
        ] {
            let e = refuse_v1_only_memory(&tuning).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "memory.{field} is not supported on this host's cgroup v2"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn memory_follows_docker_syntax() {
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64M").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64mb").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_memory("8192k").unwrap(), 8 << 20);
        assert_eq!(parse_memory("16777216").unwrap(), 16 << 20);
        assert_eq!(parse_memory("16777216b").unwrap(), 16 << 20);
    }

    #[test]
    fn memory_rejects_nonsense_and_too_little() {
        for bad in [
            "0",
            "-1",
            "12x",
            "",
            "m",
            "abc",
            "1.2.3m",
            "nan",
            "inf",
            "99999999999t",
        ] {
            let e = parse_memory(bad).unwrap_err().to_string();
            assert!(e.contains("invalid --memory"), "{bad:?}: {e}");
        }
        let e = parse_memory("1k").unwrap_err().to_string();
        assert!(
            e.contains("too small") && e.contains("at least 4 MiB"),
            "{e}"
        );
    }

    #[test]
    fn cpus_become_a_quota_per_100ms() {
        assert_eq!(parse_cpus("0.5", 2).unwrap(), 50_000);
        assert_eq!(parse_cpus("0.25", 2).unwrap(), 25_000);
        assert_eq!(parse_cpus("2", 2).unwrap(), 200_000);
        assert_eq!(parse_cpus("1.5", 4).unwrap(), 150_000);
        assert_eq!(parse_cpus("0.01", 1).unwrap(), 1_000);
        for bad in ["0", "abc", "-1", "", "NaN", "0.001"] {
            assert!(parse_cpus(bad, 2).is_err(), "{bad:?} accepted");
        }
        let e = parse_cpus("3", 2).unwrap_err().to_string();
        assert!(e.contains("more than this host's 2 CPU"), "{e}");
    }

    #[test]
    fn pids_are_at_least_one_or_none() {
        assert_eq!(parse_pids("20").unwrap(), Some(20));
        assert_eq!(parse_pids("-1").unwrap(), None);
        assert_eq!(parse_pids("0").unwrap(), None);
        for bad in ["-3", "x", "", "1.5"] {
            assert!(parse_pids(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// A hybrid host's mount table (as this CI machine's, cpu and cpuacct apart), without the
    /// mounts of `drop`.
    fn hybrid_v1(drop: &[&str]) -> v1::Hierarchies {
        let mountinfo: String = [
            "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu",
            "33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct",
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
            "36 31 0:33 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices",
            "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids",
            "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
        ]
        .iter()
        .filter(|l| !drop.iter().any(|d| l.ends_with(&format!(",{d}"))))
        .map(|l| format!("{l}\n"))
        .collect();
        v1::Hierarchies::from_tables(
            &mountinfo,
            "8:pids:/\n5:devices:/\n4:memory:/a\n2:cpuacct:/\n1:cpu:/\n",
        )
    }

    fn unified_lacking(missing: &[&'static str]) -> v2::Found {
        v2::Found::Missing {
            looked_at: "/sys/fs/cgroup/unified/cgroup.controllers".into(),
            missing: missing.to_vec(),
        }
    }

    const ALL: Limits = Limits {
        memory: Some(64 << 20),
        cpu_quota: Some(50_000),
        pids: Some(20),
        pids_default: false,
    };

    #[test]
    fn the_default_pids_limit_goes_where_a_pids_controller_is_and_never_fails_a_run() {
        let all = ["memory", "cpu", "pids"];
        let default = Limits {
            pids: Some(DEFAULT_PIDS_LIMIT),
            pids_default: true,
            ..Limits::default()
        };
        let v1 = choose(
            unified_lacking(&all),
            Some(hybrid_v1(&[])),
            &default.asked(),
        )
        .unwrap();
        assert_eq!(enforceable(&v1, &default), default);
        // No pids hierarchy: the default is dropped, where --pids-limit is refused.
        let no_pids = choose(
            unified_lacking(&all),
            Some(hybrid_v1(&["pids"])),
            &default.asked(),
        )
        .unwrap();
        assert_eq!(enforceable(&no_pids, &default), Limits::default());
        let asked = Limits {
            pids_default: false,
            ..default
        };
        assert!(choose(unified_lacking(&all), Some(hybrid_v1(&["pids"])), &asked).is_err());
        let none = choose(unified_lacking(&all), None, &default.asked()).unwrap();
        assert!(matches!(none, Driver::None));
        assert_eq!(enforceable(&none, &default), Limits::default());
        let v2 = v2::Found::Usable(v2::Hierarchy::at("/sys/fs/cgroup"));
        let v2 = choose(v2, None, &default.asked()).unwrap();
        assert_eq!(enforceable(&v2, &default), default);
    }

    #[test]
    fn a_usable_unified_hierarchy_wins() {
        let v2 = v2::Found::Usable(v2::Hierarchy::at("/sys/fs/cgroup"));
        assert!(matches!(choose(v2, None, &ALL), Ok(Driver::V2(_))));
    }

    #[test]
    fn a_hybrid_host_gets_the_legacy_driver_with_or_without_limits() {
        let all = ["memory", "cpu", "pids"];
        let chosen = choose(unified_lacking(&all), Some(hybrid_v1(&[])), &ALL);
        assert!(matches!(chosen, Ok(Driver::V1(_))));
        let chosen = choose(
            unified_lacking(&all),
            Some(hybrid_v1(&[])),
            &Limits::default(),
        );
        assert!(matches!(chosen, Ok(Driver::V1(_))), "groups for accounting");
    }

    #[test]
    fn a_flag_whose_controller_is_nowhere_is_an_error_naming_it_and_where_we_looked() {
        let all = ["memory", "cpu", "pids"];
        let Err(e) = choose(unified_lacking(&all), Some(hybrid_v1(&["pids"])), &ALL) else {
            panic!("--pids-limit accepted without a pids controller");
        };
        let e = e.to_string();
        for needle in [
            "cannot apply --pids-limit",
            "'pids'",
            "/proc/self/mountinfo",
            "/sys/fs/cgroup/unified/cgroup.controllers",
        ] {
            assert!(e.contains(needle), "{needle:?} missing: {e}");
        }
        let no_pids_flag = Limits { pids: None, ..ALL };
        let chosen = choose(
            unified_lacking(&all),
            Some(hybrid_v1(&["pids"])),
            &no_pids_flag,
        );
        assert!(
            matches!(chosen, Ok(Driver::V1(_))),
            "pids unused, others limited"
        );
    }

    #[test]
    fn a_controller_only_the_unified_hierarchy_has_is_not_mixed_in() {
        let chosen = choose(
            unified_lacking(&["memory", "cpu"]),
            Some(hybrid_v1(&["pids"])),
            &ALL,
        );
        let e = chosen.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.contains("--pids-limit") && e.contains("does not split"),
            "{e}"
        );
    }

    #[test]
    fn no_hierarchy_at_all_refuses_limits_and_runs_without_groups_otherwise() {
        let nothing =
            || v1::Hierarchies::from_tables("27 1 254:0 / / rw - ext4 /dev/vda rw\n", "0::/\n");
        let e = choose(unified_lacking(&["cpu"]), Some(nothing()), &ALL)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("cgroup v2 lacks the controller(s) cpu"), "{e}");
        let chosen = choose(
            unified_lacking(&["cpu"]),
            Some(nothing()),
            &Limits::default(),
        );
        assert!(matches!(chosen, Ok(Driver::None)));
    }

    #[test]
    fn device_rules_need_a_device_controller_unless_they_allow_all() {
        let docker = devices::DeviceRules::docker().filter().unwrap();
        let allow_all = devices::DeviceRules::default().filter().unwrap();
        assert!(check_devices(&Driver::V1(hybrid_v1(&[])), &docker).is_ok());
        let v2 = Driver::V2(v2::Hierarchy::at("/sys/fs/cgroup"));
        assert!(check_devices(&v2, &docker).is_ok(), "a BPF program");
        let e = check_devices(&Driver::V1(hybrid_v1(&["devices"])), &docker)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot load the device rules (12 device rules, all others denied)")
                && e.contains("'devices'")
                && e.contains("/proc/self/mountinfo"),
            "{e}"
        );
        let e = check_devices(&Driver::None, &docker)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no cgroup controllers"), "{e}");
        assert!(check_devices(&Driver::None, &allow_all).is_ok());
        assert!(check_devices(&Driver::V1(hybrid_v1(&["devices"])), &allow_all).is_ok());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3_300_000), "3.1 MiB");
    }
}
