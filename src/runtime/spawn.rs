//! The container's first process, from the parent's side: from its cgroup to a child set up
//! and about to exec (or, under `create`, waiting for `start`).
//!
//! `spawn` is the parent's half of the story, the twin of `init::set_up_and_exec`: one step per
//! line, each with the reason it stands where it does. `run` (the launcher) and `create` make a
//! container's first process with it; `exec`, whose process joins a running container, shares
//! the steps that fit it (`place_in_cgroup`, `write_pid_file`).

use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::kernel::cgroup::{self, ContainerCgroup, Placement};
use crate::kernel::{namespaces, net_devices, seccomp};
use crate::model::spec::ContainerSpec;
use crate::runtime::channel::{self, ChildEnd, ParentEnd, Stop};
use crate::runtime::init::{self, InitNet, Prepared, Supervisor};
use crate::runtime::{explain, hooks, host_objects, pid1, signals};
use crate::store::layers::Layer;
use crate::store::state::{ContainerState, Store};

/// What the caller brings to the first process beyond the spec.
pub struct Spawn<'a> {
    /// The container's own writable layer (`None`: a bundle's root, used as given), and the
    /// data root it lives in, as opened.
    pub layer: Option<(&'a Layer, &'a OwnedFd)>,
    /// The network namespace to join, and where its /etc files are.
    pub net: &'a InitNet,
    /// Who supervises it: minibox (with the stdio it relays) or `create`'s caller.
    pub supervisor: Supervisor<'a>,
    /// The state JSON the runtime's hooks read while the container is made, given its pid.
    pub hooks_state: &'a dyn Fn(Pid) -> String,
    /// What the caller adds while the child waits in its cgroup, before "go" (run: its
    /// network).
    pub while_it_waits: &'a mut dyn FnMut(Pid) -> Result<()>,
}

/// The container's first process, set up.
pub struct Spawned {
    pub pid: Pid,
    /// minibox's ends of the sync channel: the report still says whether the exec went through.
    pub parent: ParentEnd,
}

/// Makes the container's cgroup (into `cgroup`, which the caller removes when the container is
/// gone or never started) and its first process, and returns once that process is set up.
/// A failure after the clone kills the child: nothing half-made runs on.
pub fn spawn(
    spec: &ContainerSpec,
    store: &Store,
    state: &ContainerState,
    how: Spawn,
    cgroup: &mut Option<Box<dyn ContainerCgroup>>,
) -> Result<Spawned> {
    // The limits exist before any code of the container runs.
    *cgroup = make_cgroup(spec, store, state)?;
    explain_cgroup_if_asked(spec, cgroup.as_deref());
    // The seccomp profile is compiled here, never in the container: the child only loads it.
    let filter = seccomp::compile_for(spec.seccomp.as_ref(), store.root())?;
    // --init: the init is made (sealed, in memory) now; the container never opens a host file.
    let pid1 = spec.pid1.then(pid1::sealed).transpose()?;
    // "go" for the child to wait on, "report" for what it tells us back.
    let (parent, child) = channel::pair()?;
    // ROOTFS, the bind sources and the /etc files are opened once, checked, and copied as
    // detached mounts with their flags set: from here on no host path is looked up.
    let host = host_objects::open(
        spec,
        store,
        how.layer.map(|(_, root)| root),
        how.layer.map(|(layer, _)| layer),
    )?;
    // A PID namespace given by path is the one our next child is born in.
    namespaces::join_pid_for_children(&spec.setup.namespaces)?;
    let prepared = Prepared {
        layer: how.layer.map(|(layer, _)| layer),
        filter: filter.as_ref(),
        pid1: pid1.as_ref(),
        net: how.net,
        host: &host,
    };
    // New namespaces by clone, so that the child is PID 1 of its own; it waits for "go". It
    // starts in the data root (or the bundle's root), which the kernel carries into its mount
    // namespace.
    let pid = clone_first_process(spec, &prepared, &parent, child, how.supervisor)?;
    // From here on a failure kills it.
    let admitted = admit(spec, pid, cgroup.as_deref(), &parent, how);
    if let Err(e) = admitted {
        let _ = kill(pid, Signal::SIGKILL);
        signals::reap(pid);
        return Err(e);
    }
    Ok(Spawned { pid, parent })
}

/// The child, while it waits: into its cgroup, its ids mapped, what the caller adds, then go;
/// the runtime's hooks run when it stops for them.
fn admit(
    spec: &ContainerSpec,
    pid: Pid,
    cgroup: Option<&dyn ContainerCgroup>,
    parent: &ParentEnd,
    how: Spawn,
) -> Result<()> {
    // Into its cgroup while it waits, so that all it starts is counted there.
    place_in_cgroup(pid, cgroup, parent, |group| {
        format!("moving the container into {}", group.display())
    })?;
    // Only a process outside its new user namespace can write its maps, once; it needs them
    // before it goes on (its root is an unprivileged uid of the host).
    map_ids_if_new_user_namespace(spec, pid, parent)?;
    // linux.netDevices move in from here, the host's side, before the child configures them.
    move_net_devices_if_any(spec, pid, parent)?;
    // What the caller adds while the child waits (run: its eth0, on its bridge).
    (how.while_it_waits)(pid)?;
    // Go, with the state the hooks inside the container read.
    let state = (how.hooks_state)(pid);
    parent.send_go_with(&state)?;
    // hooks.prestart and hooks.createRuntime run here, in the runtime's namespaces, while the
    // child waits for them before its root switch.
    run_runtime_hooks_until_set_up(spec, pid, parent, &state)
}

/// The container's cgroup, with its limits written. Recorded before it is made: a minibox
/// killed right after the mkdir leaves a group that `rm` and the sweep of the next minibox
/// command find.
fn make_cgroup(
    spec: &ContainerSpec,
    store: &Store,
    state: &ContainerState,
) -> Result<Option<Box<dyn ContainerCgroup>>> {
    let place = Placement {
        parent: spec.cgroup_path.parent().unwrap_or(Path::new("")).into(),
        id: spec.cgroup_path.file_name().map_or_else(
            || spec.id.clone(),
            |leaf| leaf.to_string_lossy().into_owned(),
        ),
    };
    let plan = cgroup::plan(&place, &spec.limits, &spec.setup.resources)?;
    let record = plan.record();
    // What the group will hold: the default pids limit is dropped where there is no pids
    // controller, and `inspect` must not claim it.
    let limits = plan.limits();
    if record.is_some() || limits != spec.limits {
        store.update(&state.id, |s| {
            s.cgroup = record;
            s.limits = limits;
        })?;
    }
    plan.create()
}

fn clone_first_process(
    spec: &ContainerSpec,
    prepared: &Prepared,
    parent: &ParentEnd,
    child: ChildEnd,
    supervisor: Supervisor,
) -> Result<Pid> {
    let flags = spec.setup.namespaces.clone_flags();
    nix::unistd::fchdir(&prepared.host.start_dir)
        .context("entering the container's starting directory")?;
    let cloned = namespaces::clone_into_new_namespaces(flags, || {
        parent.close_in_child();
        init::container_main(spec, prepared, &child, supervisor)
    });
    // Back where we were: the caller's relative paths (--pid-file) mean what they meant.
    nix::unistd::fchdir(&prepared.host.caller_dir).context("returning to the working directory")?;
    cloned
}

/// Puts a waiting child in `cgroup`; if it cannot go there, kills it and says why (its own
/// report first: it may have failed before, and its death is then what made this fail).
pub fn place_in_cgroup(
    pid: Pid,
    cgroup: Option<&dyn ContainerCgroup>,
    parent: &ParentEnd,
    what: impl Fn(&Path) -> String,
) -> Result<()> {
    let Some(cg) = cgroup else {
        return Ok(());
    };
    let placed = cg.add(pid).with_context(|| what(cg.path()));
    if let Err(e) = placed {
        let _ = kill(pid, Signal::SIGKILL);
        return Err(parent.child_failure_or(e));
    }
    Ok(())
}

fn map_ids_if_new_user_namespace(spec: &ContainerSpec, pid: Pid, parent: &ParentEnd) -> Result<()> {
    if !spec.setup.new_user_namespace() {
        return Ok(());
    }
    let mapped = namespaces::write_id_maps(pid, &spec.setup.uid_mappings, &spec.setup.gid_mappings);
    if let Err(e) = mapped {
        let _ = kill(pid, Signal::SIGKILL);
        return Err(parent.child_failure_or(e));
    }
    Ok(())
}

/// linux.netDevices into the container's network namespace: its own (the child's), or the one
/// it joins by path.
fn move_net_devices_if_any(spec: &ContainerSpec, pid: Pid, parent: &ParentEnd) -> Result<()> {
    let devices = &spec.setup.net_devices;
    if devices.is_empty() {
        return Ok(());
    }
    let ns = &spec.setup.namespaces;
    let path = match ns.join.iter().find(|(k, _)| *k == namespaces::Kind::Net) {
        Some((_, path)) => path.clone(),
        None => std::path::PathBuf::from(format!("/proc/{pid}/ns/net")),
    };
    let moved = std::fs::File::open(&path)
        .with_context(|| format!("linux.netDevices: opening {}", path.display()))
        .and_then(|netns| net_devices::move_into(devices, &netns));
    if let Err(e) = moved {
        let _ = kill(pid, Signal::SIGKILL);
        return Err(parent.child_failure_or(e));
    }
    Ok(())
}

fn run_runtime_hooks_until_set_up(
    spec: &ContainerSpec,
    pid: Pid,
    parent: &ParentEnd,
    state: &str,
) -> Result<()> {
    while parent.next_stop(|step, text| explain_child_step_if_asked(spec, pid, step, text))?
        == Stop::Hooks
    {
        hooks::run(&spec.hooks, "prestart", &hooks::prestart_state(state))?;
        hooks::run(&spec.hooks, "createRuntime", state)?;
        parent.send_continue()?;
    }
    Ok(())
}

impl Spawned {
    /// Waits until the child has exec'd its program (`Ok`) or failed to (`Err`, with its
    /// status).
    pub fn wait_for_exec(&self, spec: &ContainerSpec) -> Result<()> {
        let pid = self.pid;
        self.parent.wait_for_exec_after_ready(|step, text| {
            explain_child_step_if_asked(spec, pid, step, text)
        })
    }
}

/// `--pid-file`: a host pid, written whole or not at all, never through a planted link (a
/// temp file made `O_EXCL|O_NOFOLLOW` in the directory, renamed).
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let mut out = crate::kernel::outfile::OutFile::create(path, "tmp", 0o644)
        .with_context(|| format!("writing --pid-file {}", path.display()))?;
    std::io::Write::write_all(out.file(), pid.to_string().as_bytes())
        .with_context(|| format!("writing --pid-file {}", path.display()))?;
    out.commit()
}

/// `--explain`: the group as the kernel holds it now.
fn explain_cgroup_if_asked(spec: &ContainerSpec, cgroup: Option<&dyn ContainerCgroup>) {
    if !spec.explain {
        return;
    }
    let Some(cg) = cgroup else {
        explain::print(
            "cgroup",
            "none: this host offers no cgroup controllers to minibox (no limits, no accounting)",
        );
        return;
    };
    let settings = cg.settings();
    let values: Vec<String> = settings
        .iter()
        .map(|(file, value)| {
            if value.contains(' ') {
                format!("{file}=\"{value}\"")
            } else {
                format!("{file}={value}")
            }
        })
        .collect();
    let default_pids = if spec.limits.pids_default && settings.iter().any(|(f, _)| f == "pids.max")
    {
        format!(
            "\npids.max {} is the default process limit (podman's): --pids-limit N changes \
             it, --pids-limit -1 lifts it",
            cgroup::DEFAULT_PIDS_LIMIT
        )
    } else {
        String::new()
    };
    let text = format!(
        "created {} ({})\n{}{default_pids}",
        cg.paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        cg.driver(),
        values.join("  ")
    );
    explain::print("cgroup", &text);
}

/// `--explain`: the container's own steps, with what only the host side can add to them.
fn explain_child_step_if_asked(spec: &ContainerSpec, pid: Pid, step: &str, text: &str) {
    if !spec.explain {
        return;
    }
    if step == "clone" {
        let host = explain::namespaces_of("self");
        let text = format!(
            "pid {pid} on the host is pid 1 inside; new namespaces:\n{text}\n(host: {host})"
        );
        explain::print(step, &text);
    } else {
        explain::print(step, text);
    }
}
