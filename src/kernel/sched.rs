//! What the kernel keeps per process about how it is scheduled and where it runs: its I/O
//! priority (`process.ioPriority`), CPU scheduling policy (`process.scheduler`), CPU affinity
//! (`process.execCPUAffinity`), execution domain (`linux.personality`) and NUMA memory policy
//! (`linux.memoryPolicy`). Each survives `execve`, so the init sets it and CMD inherits it.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sched::CpuSet;
use nix::unistd::Pid;

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, class << 13 | level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoPriority {
    /// 1 real-time, 2 best-effort, 3 idle.
    pub class: u32,
    /// 0 (highest) to 7.
    pub level: u32,
}

/// `sched_setattr`'s fields (struct sched_attr, its first version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scheduler {
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// `set_mempolicy(mode | flags, nodes)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPolicy {
    pub mode: i32,
    pub flags: i32,
    pub nodes: Vec<usize>,
}

pub const IOPRIO_CLASS_RT: u32 = 1;
pub const IOPRIO_CLASS_BE: u32 = 2;
pub const IOPRIO_CLASS_IDLE: u32 = 3;

pub fn set_io_priority(p: Option<IoPriority>) -> Result<()> {
    let Some(p) = p else { return Ok(()) };
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let value = libc::c_long::from((p.class << 13) | p.level);
    // SAFETY: ioprio_set takes three integers and touches no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    Errno::result(rc).with_context(|| {
        format!(
            "ioprio_set(class {}, level {}) for process.ioPriority (the real-time class needs \
             CAP_SYS_ADMIN)",
            p.class, p.level
        )
    })?;
    Ok(())
}

/// struct sched_attr as the kernel reads it (SCHED_ATTR_SIZE_VER0: 48 bytes).
#[repr(C)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

pub fn set_scheduler(s: Option<&Scheduler>) -> Result<()> {
    let Some(s) = s else { return Ok(()) };
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: s.policy,
        sched_flags: s.flags,
        sched_nice: s.nice,
        sched_priority: s.priority,
        sched_runtime: s.runtime,
        sched_deadline: s.deadline,
        sched_period: s.period,
    };
    // SAFETY: sched_setattr reads `attr` (alive across the call, its size in its first field)
    // for this thread (pid 0); flags 0.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    Errno::result(rc).with_context(|| {
        format!(
            "sched_setattr(policy {}, priority {}, nice {}) for process.scheduler (real-time \
             and deadline policies, and a negative nice, need CAP_SYS_NICE)",
            s.policy, s.priority, s.nice
        )
    })?;
    Ok(())
}

/// `sched_setaffinity` of this process to `cpus`.
pub fn set_affinity(cpus: Option<&[usize]>) -> Result<()> {
    let Some(cpus) = cpus else { return Ok(()) };
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)
            .with_context(|| format!("CPU {cpu} is beyond what the kernel's CPU set holds"))?;
    }
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
        .with_context(|| format!("sched_setaffinity to CPUs {cpus:?} (are they online?)"))
}

/// `personality(domain)`: LINUX (0) or LINUX32 (PER_LINUX32, 8).
pub fn set_personality(domain: Option<u64>) -> Result<()> {
    let Some(domain) = domain else { return Ok(()) };
    // SAFETY: personality takes one integer.
    let rc = unsafe { libc::personality(domain as libc::c_ulong) };
    Errno::result(rc).with_context(|| format!("personality({domain:#x}) for linux.personality"))?;
    Ok(())
}

pub fn set_memory_policy(p: Option<&MemoryPolicy>) -> Result<()> {
    let Some(p) = p else { return Ok(()) };
    let bits = 8 * std::mem::size_of::<libc::c_ulong>();
    let highest = p.nodes.iter().copied().max().unwrap_or(0);
    let mut mask = vec![0 as libc::c_ulong; highest / bits + 1];
    for &n in &p.nodes {
        mask[n / bits] |= 1 << (n % bits);
    }
    let (ptr, maxnode) = match p.nodes.is_empty() {
        true => (std::ptr::null(), 0),
        false => (mask.as_ptr(), (mask.len() * bits) as libc::c_ulong),
    };
    // SAFETY: set_mempolicy reads `maxnode` bits from `mask` (alive across the call, that
    // long), or nothing for a null mask.
    let rc = unsafe { libc::syscall(libc::SYS_set_mempolicy, p.mode | p.flags, ptr, maxnode) };
    Errno::result(rc).with_context(|| {
        format!(
            "set_mempolicy(mode {}, nodes {:?}) for linux.memoryPolicy (do those NUMA nodes \
             exist? see /sys/devices/system/node)",
            p.mode, p.nodes
        )
    })?;
    Ok(())
}

/// A list such as `0-3,7` (CPUs, NUMA nodes).
pub fn parse_list(text: &str) -> Result<Vec<usize>> {
    let mut out = vec![];
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (Ok(lo), Ok(hi)) = (lo.trim().parse::<usize>(), hi.trim().parse::<usize>()) else {
            bail!("{text:?} is not a list such as 0-3,7");
        };
        if lo > hi || hi >= 1 << 16 {
            bail!("{text:?} is not a list such as 0-3,7");
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_read_as_cpusets_write_them() {
        assert_eq!(parse_list("0-2,5, 7").unwrap(), [0, 1, 2, 5, 7]);
        assert_eq!(parse_list("").unwrap(), Vec::<usize>::new());
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("a").is_err());
    }

    #[test]
    fn sched_attr_is_the_kernels_first_version() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 48);
    }
}
