//! The parent side of a container: its cgroup, its first process, its signals, its end.

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cgroup::{self, human_bytes, ContainerCgroup, Placement};
use crate::channel::{self, ParentEnd};
use crate::init;
use crate::namespaces;
use crate::signals::{self, Forwarder};
use crate::spec::ContainerSpec;
use crate::status;

/// Runs the container in the foreground; returns the status minibox should exit with.
pub fn run(spec: &ContainerSpec) -> Result<i32> {
    // The limits exist before any code of the container runs.
    let place = Placement {
        parent: spec.cgroup_parent.clone(),
        id: spec.id.clone(),
    };
    let cgroup = cgroup::create(&place, &spec.limits)?;
    let ended = start_and_wait(spec, cgroup.as_deref());
    // Whatever happened, the group goes; what it measured is read first.
    let usage = cgroup.as_ref().map(|cg| cg.usage());
    if let Some(cg) = &cgroup {
        cg.destroy()?;
    }
    let code = ended?;
    if let Some(usage) = usage.filter(|u| u.oom_kills > 0) {
        let limit = spec.limits.memory.map_or("none".into(), human_bytes);
        let peak = usage.memory_peak.map_or("unknown".into(), human_bytes);
        let what = if code == 128 + Signal::SIGKILL as i32 {
            "was killed: out of memory".to_string()
        } else {
            format!(
                "ran out of memory: the kernel killed {} of its processes",
                usage.oom_kills
            )
        };
        eprintln!(
            "minibox: container {} {what} (limit {limit}, peak {peak})",
            spec.display_name()
        );
    }
    Ok(code)
}

/// Clones the container's first process into its namespaces and cgroup, lets it set itself up,
/// then passes signals on until it ends.
fn start_and_wait(spec: &ContainerSpec, cgroup: Option<&dyn ContainerCgroup>) -> Result<i32> {
    // Held from now on, so that no signal meant for the container is lost before it exists.
    let forwarder = Forwarder::block()?;
    let (parent, child) = channel::pair()?;
    let pid = namespaces::clone_into_new_namespaces(namespaces::container_namespaces(), || {
        parent.close_in_child();
        init::container_main(spec, &child)
    })?;
    drop(child);
    if let Err(e) = admit(pid, cgroup, &parent) {
        let _ = kill(pid, Signal::SIGKILL);
        signals::reap(pid);
        return Err(e);
    }
    let ended = forwarder.forward_until_exit(pid)?;
    Ok(status::from_wait(ended).unwrap_or(status::RUNTIME_FAILED))
}

/// Puts the waiting child in its cgroup, lets it go, and waits until it has exec'd CMD.
fn admit(pid: Pid, cgroup: Option<&dyn ContainerCgroup>, parent: &ParentEnd) -> Result<()> {
    if let Some(cg) = cgroup {
        cg.add(pid)
            .with_context(|| format!("moving the container into {}", cg.path().display()))?;
    }
    parent.send_go()?;
    parent.wait_for_exec()
}
