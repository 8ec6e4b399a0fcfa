//! How the container's processes are scheduled and where they run: `process.ioPriority`,
//! `process.scheduler`, `process.execCPUAffinity` (runtime-spec config.md "POSIX process"),
//! `linux.personality` and `linux.memoryPolicy` (config-linux.md). Each value is checked here,
//! by name, and applied by the init (`kernel::sched`); what the kernel cannot do is refused
//! before anything is made.

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{
    ExecCPUAffinity, IOPriorityClass, Linux, LinuxIOPriority, LinuxMemoryPolicy, LinuxPersonality,
    LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType,
    MemoryPolicyModeType, Process, Scheduler as OciScheduler, Spec,
};

use crate::kernel::sched::{self, IoPriority, MemoryPolicy, Scheduler};

/// The checked settings, and config.json's own (written back unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessAttrs {
    pub io_priority: Option<IoPriority>,
    pub scheduler: Option<Scheduler>,
    /// `personality(2)`'s domain.
    pub personality: Option<u64>,
    pub memory_policy: Option<MemoryPolicy>,
    /// execCPUAffinity (for `exec`'d processes; the spec keeps the first one out of it):
    /// before joining the container's cgroup, and after.
    pub affinity_initial: Option<Vec<usize>>,
    pub affinity_final: Option<Vec<usize>>,
    given: Given,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Given {
    io_priority: Option<LinuxIOPriority>,
    scheduler: Option<OciScheduler>,
    exec_cpu_affinity: Option<ExecCPUAffinity>,
    personality: Option<LinuxPersonality>,
    memory_policy: Option<LinuxMemoryPolicy>,
}

const PROCESS: &str = "runtime-spec config.md#linux-process";

/// A process's own fields (the container's first, or one `exec --process` gives).
pub fn checked_process(p: &Process) -> Result<ProcessAttrs> {
    let (affinity_initial, affinity_final) = match p.exec_cpu_affinity() {
        None => (None, None),
        Some(a) => (
            cpus("initial", a.initial().as_deref())?,
            cpus("final", a.cpu_affinity_final().as_deref())?,
        ),
    };
    Ok(ProcessAttrs {
        io_priority: p.io_priority().as_ref().map(io_priority).transpose()?,
        scheduler: p.scheduler().as_ref().map(scheduler).transpose()?,
        affinity_initial,
        affinity_final,
        given: Given {
            io_priority: *p.io_priority(),
            scheduler: p.scheduler().clone(),
            exec_cpu_affinity: p.exec_cpu_affinity().clone(),
            ..Given::default()
        },
        ..ProcessAttrs::default()
    })
}

/// The container's: its process's fields and linux.personality, linux.memoryPolicy.
pub fn checked(p: &Process, linux: &Linux) -> Result<ProcessAttrs> {
    let mut attrs = checked_process(p)?;
    attrs.personality = linux.personality().as_ref().map(personality).transpose()?;
    attrs.memory_policy = linux
        .memory_policy()
        .as_ref()
        .map(memory_policy)
        .transpose()?;
    attrs.given.personality = linux.personality().clone();
    attrs.given.memory_policy = linux.memory_policy().clone();
    Ok(attrs)
}

impl ProcessAttrs {
    /// Writes them into config.json as they were given.
    pub fn write_oci(&self, spec: &mut Spec) {
        if let Some(p) = spec.process_mut() {
            p.set_io_priority(self.given.io_priority);
            p.set_scheduler(self.given.scheduler.clone());
            p.set_exec_cpu_affinity(self.given.exec_cpu_affinity.clone());
        }
        if let Some(l) = spec.linux_mut() {
            l.set_personality(self.given.personality.clone());
            l.set_memory_policy(self.given.memory_policy.clone());
        }
    }

    /// An exec'd process's own fields in place of the container's (which it otherwise keeps).
    pub fn with_process_of(&self, given: &ProcessAttrs) -> ProcessAttrs {
        let g = &given.given;
        let mut out = self.clone();
        if g.io_priority.is_some() {
            out.io_priority = given.io_priority;
            out.given.io_priority = g.io_priority;
        }
        if g.scheduler.is_some() {
            out.scheduler = given.scheduler;
            out.given.scheduler = g.scheduler.clone();
        }
        if g.exec_cpu_affinity.is_some() {
            out.affinity_initial = given.affinity_initial.clone();
            out.affinity_final = given.affinity_final.clone();
            out.given.exec_cpu_affinity = g.exec_cpu_affinity.clone();
        }
        out
    }
}

fn io_priority(p: &LinuxIOPriority) -> Result<IoPriority> {
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => sched::IOPRIO_CLASS_RT,
        IOPriorityClass::IoprioClassBe => sched::IOPRIO_CLASS_BE,
        IOPriorityClass::IoprioClassIdle => sched::IOPRIO_CLASS_IDLE,
    };
    match u32::try_from(p.priority()) {
        Ok(level) if level <= 7 => Ok(IoPriority { class, level }),
        _ => bail!(
            "process.ioPriority.priority {} is out of range: use 0 (highest) to 7 ({PROCESS})",
            p.priority()
        ),
    }
}

fn scheduler(s: &OciScheduler) -> Result<Scheduler> {
    use LinuxSchedulerPolicy as P;
    let policy = match s.policy() {
        P::SchedOther => libc::SCHED_OTHER,
        P::SchedFifo => libc::SCHED_FIFO,
        P::SchedRr => libc::SCHED_RR,
        P::SchedBatch => libc::SCHED_BATCH,
        P::SchedIdle => libc::SCHED_IDLE,
        P::SchedDeadline => 6,
        P::SchedIso => bail!(
            "process.scheduler.policy SCHED_ISO is not supported: Linux has no such policy \
             (reserved, never implemented); use SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, \
             SCHED_FIFO, SCHED_RR or SCHED_DEADLINE ({PROCESS})"
        ),
    } as u32;
    let realtime = matches!(s.policy(), P::SchedFifo | P::SchedRr);
    let deadline = matches!(s.policy(), P::SchedDeadline);
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        bail!("process.scheduler.nice {nice} is out of range: use -20 to 19 ({PROCESS})");
    }
    let priority = s.priority().unwrap_or(0);
    match (realtime, priority) {
        (true, 1..=99) | (false, 0) => {}
        (true, p) => bail!(
            "process.scheduler.priority {p} is out of range for {:?}: use 1 to 99 ({PROCESS})",
            s.policy()
        ),
        (false, p) => bail!(
            "process.scheduler.priority {p} applies only to SCHED_FIFO and SCHED_RR: use 0 \
             ({PROCESS})"
        ),
    }
    let dl = [
        ("runtime", s.runtime()),
        ("deadline", s.deadline()),
        ("period", s.period()),
    ];
    if !deadline {
        if let Some((field, _)) = dl.iter().find(|(_, v)| v.is_some_and(|v| v != 0)) {
            bail!("process.scheduler.{field} applies only to SCHED_DEADLINE ({PROCESS})");
        }
    }
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        use LinuxSchedulerFlag as F;
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin | F::SchedFlagUtilClampMax => bail!(
                "process.scheduler.flags {f:?} is not supported: the spec gives no clamp \
                 value to set ({PROCESS})"
            ),
        };
    }
    Ok(Scheduler {
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
    })
}

fn cpus(field: &str, list: Option<&str>) -> Result<Option<Vec<usize>>> {
    let Some(list) = list.filter(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    let cpus = sched::parse_list(list)
        .map_err(|e| anyhow!("process.execCPUAffinity.{field}: {e} ({PROCESS})"))?;
    Ok(Some(cpus))
}

fn personality(p: &LinuxPersonality) -> Result<u64> {
    const SECTION: &str = "runtime-spec config-linux.md#personality";
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        bail!(
            "linux.personality.flags {:?} is not supported: the spec names no flag minibox \
             could map to personality(2); leave it out ({SECTION})",
            p.flags().clone().unwrap_or_default()
        );
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    })
}

fn memory_policy(m: &LinuxMemoryPolicy) -> Result<MemoryPolicy> {
    const SECTION: &str = "runtime-spec config-linux.md#memory-policy";
    use MemoryPolicyModeType as M;
    let mode = match m.mode() {
        M::MpolDefault => 0,
        M::MpolPreferred => 1,
        M::MpolBind => 2,
        M::MpolInterleave => 3,
        M::MpolLocal => 4,
        M::MpolPreferredMany => 5,
        M::MpolWeightedInterleave => 6,
    };
    let nodes = match m.nodes().as_deref().map(str::trim) {
        None | Some("") => vec![],
        Some(list) => sched::parse_list(list)
            .map_err(|e| anyhow!("linux.memoryPolicy.nodes: {e} ({SECTION})"))?,
    };
    match (m.mode(), nodes.is_empty()) {
        (M::MpolDefault | M::MpolLocal, false) => bail!(
            "linux.memoryPolicy.nodes must be empty for {:?} ({SECTION})",
            m.mode()
        ),
        (
            M::MpolBind | M::MpolInterleave | M::MpolPreferredMany | M::MpolWeightedInterleave,
            true,
        ) => {
            bail!(
                "linux.memoryPolicy.nodes is empty: {:?} needs the NUMA nodes to use, such as \
                 \"0\" ({SECTION})",
                m.mode()
            )
        }
        _ => {}
    }
    let mut flags = 0;
    for f in m.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
        };
    }
    Ok(MemoryPolicy { mode, flags, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn process(v: serde_json::Value) -> Result<ProcessAttrs> {
        let mut p = json!({"cwd": "/", "args": ["x"], "user": {"uid": 0, "gid": 0}});
        p.as_object_mut()
            .unwrap()
            .extend(v.as_object().unwrap().clone());
        checked_process(&serde_json::from_value(p).unwrap())
    }

    fn linux(v: serde_json::Value) -> Result<ProcessAttrs> {
        let p = serde_json::from_value(json!({"cwd": "/", "user": {"uid": 0, "gid": 0}})).unwrap();
        checked(&p, &serde_json::from_value(v).unwrap())
    }

    #[test]
    fn fields_become_the_kernels_values() {
        let a = process(json!({
            "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 7},
            "scheduler": {"policy": "SCHED_BATCH", "nice": 5},
            "execCPUAffinity": {"initial": "0", "final": "0-1"}
        }))
        .unwrap();
        assert_eq!(a.io_priority, Some(IoPriority { class: 3, level: 7 }));
        assert_eq!(a.scheduler.unwrap().policy, libc::SCHED_BATCH as u32);
        assert_eq!(a.affinity_final, Some(vec![0, 1]));
        let l = linux(json!({
            "personality": {"domain": "LINUX32"},
            "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}
        }))
        .unwrap();
        assert_eq!(l.personality, Some(8));
        assert_eq!(
            l.memory_policy,
            Some(MemoryPolicy {
                mode: 2,
                flags: 1 << 15,
                nodes: vec![0]
            })
        );
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (v, needle) in [
            (
                json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}),
                "ioPriority.priority 8",
            ),
            (
                json!({"scheduler": {"policy": "SCHED_FIFO"}}),
                "scheduler.priority 0",
            ),
            (
                json!({"scheduler": {"policy": "SCHED_OTHER", "nice": 30}}),
                "scheduler.nice 30",
            ),
            (json!({"scheduler": {"policy": "SCHED_ISO"}}), "SCHED_ISO"),
        ] {
            let err = process(v).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
        let err = linux(json!({"memoryPolicy": {"mode": "MPOL_BIND"}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("memoryPolicy.nodes is empty"), "{err}");
        let err = linux(json!({"personality": {"domain": "LINUX", "flags": ["X"]}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("personality.flags"), "{err}");
    }
}
