//! cgroups: the kernel's accounting and limits for the container's processes.
//!
//! Every container gets a group of its own; the limits asked for are written into it before the
//! container's first process joins, so they hold from CMD's first instruction. The group is
//! removed when the container ends. `Limits` is plain data; a driver (`v2` for the unified
//! hierarchy, a v1 driver can sit beside it) makes it real.

mod v2;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::unistd::Pid;

/// The CFS period minibox uses, in microseconds (docker's).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Below this a container cannot even start: the runtime's own setup and `execve` need it.
pub const MIN_MEMORY: u64 = 4 << 20;

/// What the user asked the kernel to enforce; `None` is "no limit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of memory (swap not included: swap is forbidden).
    pub memory: Option<u64>,
    /// CPU time per `CPU_PERIOD_US`, in microseconds.
    pub cpu_quota: Option<u64>,
    /// Number of processes and threads.
    pub pids: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// What the kernel measured for the group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory_current: Option<u64>,
    pub memory_peak: Option<u64>,
    pub cpu_usec: Option<u64>,
    /// Processes the kernel's OOM killer killed in the group.
    pub oom_kills: u64,
}

/// One container's group, whatever the driver.
pub trait ContainerCgroup {
    /// Where it lives, for messages and `ps`.
    fn path(&self) -> &Path;
    /// Moves a process in; its future children are counted too.
    fn add(&self, pid: Pid) -> Result<()>;
    /// Current accounting.
    fn usage(&self) -> Usage;
    /// Kills whatever still runs in the group, then removes it.
    fn destroy(&self) -> Result<()>;
}

/// Where to make the container's group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `--cgroup-parent`, relative to the cgroup2 root; default `minibox`.
    pub parent: PathBuf,
    pub id: String,
}

/// Creates the container's group with its limits. `Ok(None)` when this host has no usable
/// cgroup hierarchy and no limit was asked for: the container then runs without accounting.
pub fn create(place: &Placement, limits: &Limits) -> Result<Option<Box<dyn ContainerCgroup>>> {
    match v2::Hierarchy::find()? {
        v2::Found::Usable(h) => Ok(Some(Box::new(h.create(place, limits)?))),
        v2::Found::Missing { looked_at, missing } if !limits.is_empty() => bail!(
            "cannot limit the container: cgroup v2 lacks the controller(s) {} (looked at {}); \
             this host keeps them in cgroup v1. Run without --memory/--cpus/--pids-limit, or \
             boot with systemd.unified_cgroup_hierarchy=1",
            missing.join(", "),
            looked_at
        ),
        v2::Found::Missing { .. } => Ok(None),
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

/// `--pids-limit N`, N ≥ 1.
pub fn parse_pids(text: &str) -> Result<u64> {
    match text.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => bail!("invalid --pids-limit {text:?}: use a whole number of processes, at least 1"),
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
    fn pids_are_at_least_one() {
        assert_eq!(parse_pids("20").unwrap(), 20);
        for bad in ["0", "-3", "x", ""] {
            assert!(parse_pids(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3_300_000), "3.1 MiB");
    }
}
