//! The parent side of a container: its record, its cgroup, its first process, its signals and
//! output, its end. The process doing this is the container's *supervisor*: minibox itself for
//! a foreground run, a detached copy of it (its own session, output to the log) for `run -d`.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{pipe2, ForkResult, Pid};

use crate::kernel::cgroup::{self, human_bytes, ContainerCgroup, Placement};
use crate::kernel::{namespaces, seccomp};
use crate::model::network::Network;
use crate::model::spec::ContainerSpec;
use crate::runtime::attach::AttachPoint;
use crate::runtime::channel::{self, ParentEnd, Stop};
use crate::runtime::explain;
use crate::runtime::hooks;
use crate::runtime::init::{self, InitNet};
use crate::runtime::log::LogFile;
use crate::runtime::network::{self, Attachment};
use crate::runtime::pid1;
use crate::runtime::ports::{PublishedPorts, Upstream};
use crate::runtime::signals::{self, Forwarder};
use crate::runtime::status;
use crate::runtime::stdio::{self, Input, Output, Stdio};
use crate::runtime::supervisor;
use crate::store::layers::{self, Layer, Layers};
use crate::store::state::{
    now_ms, save_config, state_json, ContainerState, ProcessRef, Status, Store, OCI_VERSION,
};

/// How `minibox run` was asked to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// `-d`: in the background; print the id and return once CMD runs.
    pub detach: bool,
    /// `--rm`: forget the container once it has exited.
    pub remove: bool,
    /// `-i`: the container reads minibox's stdin (without it, its stdin is empty).
    pub interactive: bool,
}

/// `minibox run`; returns the status minibox exits with.
pub fn run(spec: &ContainerSpec, store: &Store, layers: &Layers, opts: RunOptions) -> Result<i32> {
    let state = store.create(spec, opts.detach)?;
    // Messages name the container as `ps` does, generated name included.
    let spec = &ContainerSpec {
        name: Some(state.name.clone()),
        ..spec.clone()
    };
    if opts.detach {
        return run_detached(spec, store, layers, &state, opts);
    }
    let stdio = Stdio {
        input: if opts.interactive {
            Input::Caller
        } else {
            Input::Empty
        },
        output: Output::Caller,
        terminal: spec.tty,
    };
    let result = supervise(spec, store, layers, &state, stdio, &mut StartSignal(None));
    forget_if(store, &state, result.is_err() || opts.remove);
    result
}

/// A container that never started leaves nothing behind; one that ran keeps its record (for
/// `ps -a`, `logs`, its files) unless `--rm` asked otherwise. The layer goes first: should it
/// not go, the record stays, so that `minibox rm` can try again.
fn forget_if(store: &Store, state: &ContainerState, forget: bool) {
    if forget {
        // Only a layer the record names (recorded before it was made): a bundle has none.
        let layer = store.load(&state.id).ok().and_then(|s| s.layer);
        let removed = layer.map_or(Ok(()), |dir| layers::remove(&dir));
        if let Err(e) = removed.and_then(|()| store.remove(&state.id)) {
            say!("minibox: {e:#}");
        }
    }
}

/// Starts a supervisor in its own session, waits until CMD runs (or fails to), prints the id.
fn run_detached(
    spec: &ContainerSpec,
    store: &Store,
    layers: &Layers,
    state: &ContainerState,
    opts: RunOptions,
) -> Result<i32> {
    let remove = opts.remove;
    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC).context("creating the start pipe")?;
    // SAFETY: minibox is single-threaded here, so the child's copy of memory holds no lock
    // that another thread was holding; the child goes on with ordinary code and exits.
    match unsafe { nix::unistd::fork() }.context("fork() of the container's supervisor")? {
        ForkResult::Parent { child } => {
            drop(ready_w);
            // The child answers for the container from now on (it records itself too, but
            // this process may be killed first: the sweep must not take the container for an
            // orphan of ours).
            if let Ok(me) = ProcessRef::of(child.as_raw()) {
                let _ = store.update(&state.id, |s| s.supervisor = Some(me));
            }
            let started = channel::read_report(&File::from(ready_r), |_, _| {});
            if started.is_err() {
                let _ = nix::sys::wait::waitpid(child, None);
            }
            started?;
            out!("{}", state.id);
            Ok(0)
        }
        ForkResult::Child => {
            drop(ready_r);
            close_inherited_fds(&[ready_w.as_raw_fd()]);
            let mut start = StartSignal(Some(File::from(ready_w)));
            let code =
                match become_supervisor(spec, store, layers, state, opts.interactive, &mut start) {
                    Ok(_) => {
                        forget_if(store, state, remove);
                        0
                    }
                    Err(e) => {
                        say!("minibox: {e:#}");
                        start.failed(&e);
                        forget_if(store, state, true);
                        status::RUNTIME_FAILED
                    }
                };
            std::process::exit(code);
        }
    }
}

/// The supervisor outlives whoever started it: it keeps none of the descriptors its caller
/// happened to pass on (beyond 0, 1, 2, which it replaces), so no pipe or socket of theirs
/// stays open for the container's lifetime.
fn close_inherited_fds(keep: &[RawFd]) {
    let open: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return,
    };
    // The listing's own descriptor is among them, already closed: EBADF then, harmlessly.
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        let _ = nix::unistd::close(fd);
    }
}

/// In the detached supervisor: leave the terminal's session, send our output and the
/// container's to the log, then supervise.
fn become_supervisor(
    spec: &ContainerSpec,
    store: &Store,
    layers: &Layers,
    state: &ContainerState,
    interactive: bool,
    start: &mut StartSignal,
) -> Result<i32> {
    nix::unistd::setsid().context("setsid")?;
    let null = File::open("/dev/null").context("opening /dev/null")?;
    nix::unistd::dup2_stdin(&null).context("stdin from /dev/null")?;
    drop(null);
    let mut log = LogFile::open(&store.dir(&state.id))?;
    log.become_stdio()?;
    let me = ProcessRef::of(std::process::id() as i32)?;
    store.update(&state.id, |s| s.supervisor = Some(me))?;
    // Nobody is there to type: the container's stdin is empty. With a terminal, whoever
    // `minibox attach`es later sees it (and types into it, with -i).
    let output = match spec.tty {
        true => Output::LogAndAttach(
            log,
            AttachPoint::listen(&store.dir(&state.id), interactive)?,
        ),
        false => Output::Log(log),
    };
    let stdio = Stdio {
        input: Input::Empty,
        output,
        terminal: spec.tty,
    };
    supervise(spec, store, layers, state, stdio, start)
}

/// Tells whoever waits for the start (`run -d`) how it went: closing the pipe says CMD runs,
/// a report line says why it could not start.
struct StartSignal(Option<File>);

impl StartSignal {
    fn started(&mut self) {
        if let Some(pipe) = self.0.take() {
            channel::report_started(&pipe);
        }
    }

    fn failed(&mut self, err: &anyhow::Error) {
        if let Some(pipe) = self.0.take() {
            channel::report_failure(&pipe, status::code_of(err), &format!("{err:#}"));
        }
    }
}

/// Makes the cgroup, runs the container to its end, records how it ended, removes the cgroup.
/// `Err` means the container never started.
fn supervise(
    spec: &ContainerSpec,
    store: &Store,
    layers: &Layers,
    state: &ContainerState,
    stdio: Stdio,
    start: &mut StartSignal,
) -> Result<i32> {
    // What `exec` needs to make another process of this container: its description.
    save_config(spec, store, state)?;
    // Host ports first: one already taken stops us before anything else is made.
    let ports = PublishedPorts::bind(&spec.ports)?;
    let mappings = ports.mappings();
    if !mappings.is_empty() {
        store.update(&state.id, |s| s.ports = mappings.clone())?;
    }
    // The network namespace of another container, taken now: it must be running.
    let join = netns_to_join(store, &spec.network)?;
    // Its address, its names in every neighbour's /etc/hosts, its ports in minibox's table;
    // all returned when this function ends, however it ends.
    let attachment = network::attach(store, spec, &state.name, &mappings)?;
    let _released = Released(store, &spec.id, attachment.is_some());
    // The container's own writable layer (a bundle's root is used as given): recorded first,
    // so `rm` finds it whatever happens.
    let layer = match spec.private_layer {
        true => {
            let planned = layers.layer(&spec.id);
            store.update(&state.id, |s| s.layer = Some(planned.dir.clone()))?;
            Some(layers.create(&spec.id, &spec.rootfs)?)
        }
        false => None,
    };
    // The limits exist before any code of the container runs.
    let cgroup = make_cgroup(spec, store, state)?;
    if spec.explain {
        explain::print("cgroup", &explain_cgroup(cgroup.as_deref()));
    }
    let began = std::time::Instant::now();
    let ended = start_and_watch(
        spec,
        store,
        layer.as_ref(),
        cgroup.as_deref(),
        Networking {
            ports,
            attachment: attachment.as_ref(),
            init: InitNet {
                join,
                files: store.dir(&spec.id),
            },
        },
        stdio,
        start,
    );
    // Whatever happened, the group goes; what it measured is read first.
    let usage = cgroup.as_ref().map(|cg| cg.usage()).unwrap_or_default();
    let destroyed = cgroup.as_ref().map_or(Ok(()), |cg| cg.destroy());
    let code = ended?;
    // The container's own status stays what minibox reports; a group that would not go (the
    // container made child groups in it, say) is said, with its path.
    if let Err(e) = destroyed {
        say!(
            "minibox: container {}: {e:#}; its cgroup is left behind",
            spec.display_name()
        );
    }
    if spec.explain {
        let removed = cgroup.as_ref().map(|cg| !cg.path().exists());
        explain::print(
            "exit",
            &explain::exit(code, began.elapsed(), &usage, removed),
        );
    }
    let oom_killed = usage.oom_kills > 0;
    if oom_killed {
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
        say!(
            "minibox: container {} {what} (limit {limit}, peak {peak})",
            spec.display_name()
        );
    }
    // `rm -f` may have removed the record already: then there is nothing left to update.
    let _ = store.update(&state.id, |s| {
        s.status = Status::Exited;
        s.exit_code = Some(code);
        s.oom_killed = oom_killed;
        s.finished_ms = Some(now_ms());
    });
    Ok(code)
}

/// Gives a container's lease back when its supervisor is done with it.
struct Released<'a>(&'a Store, &'a str, bool);

impl Drop for Released<'_> {
    fn drop(&mut self) {
        if self.2 {
            if let Err(e) = network::release(self.0.root(), self.1) {
                say!(
                    "minibox: container {}: returning its network address: {e:#}",
                    self.1
                );
            }
        }
    }
}

/// `container:NAME` (a running container's) or a bundle's namespace path, opened.
fn netns_to_join(store: &Store, network: &Network) -> Result<Option<File>> {
    match network {
        Network::Container(key) => {
            let c = store.settled(store.resolve(key)?);
            let pid = c
                .pid
                .filter(|p| c.is_running() && p.is_alive())
                .with_context(|| {
                    format!(
                        "--network container:{key}: container {} is not running",
                        c.name
                    )
                })?;
            let path = format!("/proc/{}/ns/net", pid.pid);
            File::open(&path)
                .with_context(|| format!("--network container:{key}: opening {path}"))
                .map(Some)
        }
        // A namespace given by path is joined by init with the others given so.
        _ => Ok(None),
    }
}

/// What the container's network is made of, on both sides of `clone`.
struct Networking<'a> {
    /// The host ports, bound.
    ports: PublishedPorts,
    attachment: Option<&'a Attachment>,
    init: InitNet,
}

/// The container's cgroup, with its limits written. Recorded before it is made: a minibox
/// killed right after the mkdir leaves a group that `rm` and the sweep of the next minibox
/// command find.
pub(crate) fn make_cgroup(
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
    if let Some(record) = plan.record() {
        store.update(&state.id, |s| s.cgroup = Some(record))?;
    }
    plan.create()
}

/// Clones the container's first process into its namespaces and cgroup, lets it set itself up,
/// records it as running, then passes signals on (and relays output) until it ends.
fn start_and_watch(
    spec: &ContainerSpec,
    store: &Store,
    layer: Option<&Layer>,
    cgroup: Option<&dyn ContainerCgroup>,
    net: Networking,
    stdio: Stdio,
    start: &mut StartSignal,
) -> Result<i32> {
    // Held from now on, so that no signal meant for the container is lost before it exists.
    let forwarder = Forwarder::block()?;
    // The seccomp profile is compiled here, never in the container: the child only loads it.
    let filter = seccomp::compile_for(spec.seccomp.as_ref(), store.root())?;
    let (parent, child) = channel::pair()?;
    let (mut relay, container_stdio) = stdio::pipes(stdio)?;
    if spec.setup.new_user_namespace() {
        let host = |maps, id| namespaces::host_id(maps, id).unwrap_or(id);
        container_stdio.give_to(
            host(&spec.setup.uid_mappings, spec.identity.uid),
            host(&spec.setup.gid_mappings, spec.identity.gid),
        )?;
    }
    // --init: the init is made (sealed, in memory) now; the container never opens a host file.
    let init_binary = spec.init.then(pid1::sealed_init).transpose()?;
    // A PID namespace given by path is the one our next child is born in.
    namespaces::join_pid_for_children(&spec.setup.namespaces)?;
    let flags = spec.setup.namespaces.clone_flags();
    let pid = namespaces::clone_into_new_namespaces(flags, || {
        parent.close_in_child();
        let prepared = init::Prepared {
            layer,
            filter: filter.as_ref(),
            init_binary: init_binary.as_ref(),
            net: &net.init,
        };
        init::container_main(
            spec,
            &prepared,
            &child,
            init::Attach::Supervised(&container_stdio),
        )
    })?;
    drop(child);
    drop(init_binary);
    // Only the container may hold the write ends, so the relay sees EOF when it is gone.
    drop(container_stdio);
    // Taken now, while the child waits: a short-lived CMD could be gone by the time it runs.
    let netns = (!spec.ports.is_empty() && net.attachment.is_none())
        .then(|| File::open(format!("/proc/{pid}/ns/net")));
    let admitted = netns
        .transpose()
        .context("opening the container's network namespace")
        .and_then(|netns| {
            // Its eth0, on the bridge, while it waits: CMD starts with its network in place.
            if let Some(att) = net.attachment {
                network::plug(att, pid.as_raw())?;
            }
            admit(pid, spec, cgroup, &parent).map(|()| netns)
        })
        // -t: the container's terminal, sent before CMD's exec, is ours to relay now.
        .and_then(|netns| relay.connect_terminal().map(|()| netns));
    let netns = match admitted {
        Ok(netns) => netns,
        Err(e) => {
            let _ = kill(pid, Signal::SIGKILL);
            signals::reap(pid);
            return Err(e);
        }
    };
    // CMD runs now: from here on nothing may fail the start. What goes wrong is said, and the
    // container still gets watched to its end.
    let upstream = match (netns, net.attachment) {
        (_, Some(att)) => Some(Upstream::Addr(att.lease.ip)),
        (Some(netns), None) => Some(Upstream::Netns(netns)),
        (None, None) => None,
    };
    if let Some(upstream) = upstream {
        if let Err(e) = net.ports.serve(upstream) {
            say!("minibox: container {}: {e:#}", spec.display_name());
        }
    }
    let process = ProcessRef::of(pid.as_raw()).ok();
    let recorded = store.update(&spec.id, |s| {
        s.status = Status::Running;
        s.pid = process;
        s.started_ms = Some(now_ms());
    });
    match &recorded {
        Err(e) => say!("minibox: container {}: {e:#}", spec.display_name()),
        Ok(now) => hooks::run_warning_only(
            &spec.hooks,
            "poststart",
            &state_json(now, "running").to_string(),
        ),
    }
    // Whoever waits for the start (`run -d`) may go.
    start.started();
    let ended = match supervisor::watch(pid, &forwarder, relay) {
        Ok(ended) => ended,
        Err(e) => {
            say!(
                "minibox: container {}: {e:#}; killing it",
                spec.display_name()
            );
            let _ = kill(pid, Signal::SIGKILL);
            nix::sys::wait::waitpid(pid, None).context("waiting for the container")?
        }
    };
    Ok(status::from_wait(ended).unwrap_or(status::RUNTIME_FAILED))
}

/// Puts the waiting child in its cgroup, maps its user namespace's ids, lets it go (running the
/// runtime's hooks when it stops for them), and waits until it has exec'd CMD.
fn admit(
    pid: Pid,
    spec: &ContainerSpec,
    cgroup: Option<&dyn ContainerCgroup>,
    parent: &ParentEnd,
) -> Result<()> {
    let explain = spec.explain;
    if let Some(cg) = cgroup {
        let placed = cg
            .add(pid)
            .with_context(|| format!("moving the container into {}", cg.path().display()));
        if let Err(e) = placed {
            // The child may have failed first (its report says why; ESRCH here only echoes
            // its death): stop it, then hear it out.
            let _ = kill(pid, Signal::SIGKILL);
            return Err(parent.child_failure_or(e));
        }
    }
    // Only a process outside the new user namespace can write its maps, once, and the child
    // needs them before it goes on (its root is an unprivileged uid of the host).
    if spec.setup.new_user_namespace() {
        let mapped =
            namespaces::write_id_maps(pid, &spec.setup.uid_mappings, &spec.setup.gid_mappings);
        if let Err(e) = mapped {
            let _ = kill(pid, Signal::SIGKILL);
            return Err(parent.child_failure_or(e));
        }
    }
    let on_step = |step: &str, text: &str| {
        if explain {
            explain_child_step(pid, step, text)
        }
    };
    if spec.hooks == Default::default() {
        parent.send_go()?;
        return parent.wait_for_exec(on_step);
    }
    let creating = hook_state(spec, pid);
    parent.send_go_with(&creating)?;
    while parent.next_stop(on_step)? == Stop::Hooks {
        hooks::run(&spec.hooks, "prestart", &creating)?;
        hooks::run(&spec.hooks, "createRuntime", &creating)?;
        parent.send_continue()?;
    }
    parent.wait_for_exec_after_ready(on_step)
}

/// The state a bundle's hooks read while minibox makes it.
fn hook_state(spec: &ContainerSpec, pid: Pid) -> String {
    serde_json::json!({
        "ociVersion": OCI_VERSION,
        "id": spec.id,
        "status": "creating",
        "pid": pid.as_raw(),
        "bundle": spec.rootfs.parent().unwrap_or(&spec.rootfs),
        "annotations": {},
    })
    .to_string()
}

/// The group as the kernel holds it now.
fn explain_cgroup(cgroup: Option<&dyn ContainerCgroup>) -> String {
    let Some(cg) = cgroup else {
        return "none: this host offers no cgroup controllers to minibox (no limits, no accounting)".into();
    };
    let values: Vec<String> = cg
        .settings()
        .iter()
        .map(|(file, value)| {
            if value.contains(' ') {
                format!("{file}=\"{value}\"")
            } else {
                format!("{file}={value}")
            }
        })
        .collect();
    format!(
        "created {} ({})\n{}",
        cg.paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        cg.driver(),
        values.join("  ")
    )
}

/// The container's own steps, with what only the host side can add to them.
fn explain_child_step(pid: Pid, step: &str, text: &str) {
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
