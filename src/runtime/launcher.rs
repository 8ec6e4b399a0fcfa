//! What a docker-style run adds to the container's first process (`spawn`): its record, its
//! published ports and network, its own writable layer, and the watch to its end (signals,
//! output, how it ended). The process doing this is the container's *supervisor*: minibox
//! itself for a foreground run, a detached copy of it (its own session, output to the log) for
//! `run -d`.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{pipe2, ForkResult, Pid};

use crate::kernel::cgroup::{human_bytes, ContainerCgroup};
use crate::kernel::{namespaces, shared_root};
use crate::model::network::Network;
use crate::model::restart::{self, RestartPolicy};
use crate::model::spec::ContainerSpec;
use crate::runtime::attach::AttachPoint;
use crate::runtime::channel;
use crate::runtime::explain;
use crate::runtime::hooks;
use crate::runtime::init::{InitNet, Supervisor};
use crate::runtime::log::LogFile;
use crate::runtime::network::{self, Connection};
use crate::runtime::ports::{PublishedPorts, Upstream};
use crate::runtime::signals::{self, Forwarder};
use crate::runtime::spawn::{self, Spawn};
use crate::runtime::status;
use crate::runtime::stdio::{self, Input, Output, Stdio};
use crate::runtime::supervisor;
use crate::runtime::userns;
use crate::store::layers::{self, Layer, Layers};
use crate::store::state::{
    now_ms, save_config, state_json, ContainerState, ProcessRef, Status, Store, OCI_VERSION,
};

/// The kernel's id for an owner a user namespace does not map (nobody's).
const OVERFLOW_ID: u32 = 65534;

/// How `minibox run` was asked to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// `-d`: in the background; print the id and return once CMD runs.
    pub detach: bool,
    /// `--rm`: forget the container once it has exited.
    pub remove: bool,
    /// `-i`: the container reads minibox's stdin (without it, its stdin is empty).
    pub interactive: bool,
    /// `--restart`: the supervisor starts it again when it ends (kept in its record).
    pub restart: RestartPolicy,
}

/// `minibox run`; returns the status minibox exits with.
pub fn run(spec: &ContainerSpec, store: &Store, layers: &Layers, opts: RunOptions) -> Result<i32> {
    let mut state = store.create(spec, opts.detach)?;
    if !opts.restart.is_none() {
        match store.update(&state.id, |s| s.restart = opts.restart) {
            Ok(now) => state = now,
            Err(e) => {
                forget_if(store, &state, true);
                return Err(e);
            }
        }
    }
    // Messages name the container as `ps` does, generated name included.
    let spec = &ContainerSpec {
        name: Some(state.name.clone()),
        ..spec.clone()
    };
    // --userns auto: host ids of its own, taken now that its record holds them.
    let spec = &match userns::give_ids(spec, store) {
        Ok(spec) => spec,
        Err(e) => {
            forget_if(store, &state, true);
            return Err(e);
        }
    };
    if opts.detach {
        return run_detached(spec, store, layers, &state, opts, Again::No);
    }
    let shared_root = shared_root::mounts_before(&spec.rootfs, spec.shares_callers_mounts());
    let result = supervise(
        spec,
        store,
        layers,
        &state,
        &mut || Ok(caller_stdio(spec, opts.interactive)),
        &mut StartReport(None),
        Again::No,
    );
    // A container without a mount namespace of its own made its mounts in ours: they go.
    shared_root::detach_since(&spec.rootfs, shared_root);
    forget_if(store, &state, result.is_err() || opts.remove);
    result
}

/// The container's stdio from and to minibox's own (a foreground run, `start -a`).
fn caller_stdio(spec: &ContainerSpec, interactive: bool) -> Stdio {
    Stdio {
        input: if interactive {
            Input::Caller
        } else {
            Input::Empty
        },
        output: Output::Caller,
        terminal: spec.tty,
    }
}

/// Whether a run makes the container (its layer among the rest) or starts an exited one again
/// (`start`, `restart`): its layer, record and name are kept, and a failed start leaves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    No,
    Yes,
}

/// `minibox start` of an exited docker-style container: its record made ready to run, then
/// the same supervisor as `run`'s, in the background (`detach`), or in this process with its
/// stdio (`start -a`, `-i`: the status returned is the container's). `spec` is the container
/// as its state directory describes it.
pub fn start_again(
    spec: &ContainerSpec,
    store: &Store,
    layers: &Layers,
    detach: bool,
    interactive: bool,
) -> Result<i32> {
    let me = ProcessRef::of(std::process::id() as i32)?;
    // --userns auto: the host ids it was given are its own still (taken again if their entry
    // was lost), or it does not start.
    userns::keep_ids(spec, store)
        .with_context(|| format!("container {}: its user namespace's host ids", spec.id))?;
    // The supervisor of its last run, having recorded the exit, may still be giving back what
    // that run held (its network address, by the container's id): it finishes first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.load(&spec.id).is_ok_and(|c| {
        c.status == Status::Exited
            && !c.restarting
            && c.supervisor.is_some_and(|s| s.is_alive())
            && std::time::Instant::now() < deadline
    }) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let state = {
        let _lock = store.lock(&spec.id)?;
        let mut c = store.load(&spec.id)?.observed();
        if c.is_running() || c.restarting {
            anyhow::bail!("container {} is running already", c.name);
        }
        // This process answers for it until its supervisor does (the sweep leaves it be).
        c.status = Status::Created;
        c.supervisor = Some(me);
        c.pid = None;
        c.exit_code = None;
        c.finished_ms = None;
        c.oom_killed = false;
        c.restarting = false;
        c.restart_count = 0;
        c.stopped_on_purpose = false;
        // In the background, its output goes to its log (`logs` reads it).
        c.detached |= detach;
        store.write(&c)?;
        c
    };
    let spec = &ContainerSpec {
        name: Some(state.name.clone()),
        ..spec.clone()
    };
    let opts = RunOptions {
        detach,
        remove: false,
        interactive,
        restart: state.restart,
    };
    if detach {
        return run_detached(spec, store, layers, &state, opts, Again::Yes);
    }
    let result = supervise(
        spec,
        store,
        layers,
        &state,
        &mut || Ok(caller_stdio(spec, interactive)),
        &mut StartReport(None),
        Again::Yes,
    );
    if let Err(e) = &result {
        failed_again(store, &state, e);
    }
    result
}

/// An exited container that could not start again is exited still, with the status of the
/// failure (`ps -a` shows it; `rm` removes it).
fn failed_again(store: &Store, state: &ContainerState, err: &anyhow::Error) {
    let _ = store.update(&state.id, |s| {
        s.status = Status::Exited;
        s.exit_code = Some(status::code_of(err));
        s.finished_ms = Some(now_ms());
    });
}

/// A container that never started leaves nothing behind; one that ran keeps its record (for
/// `ps -a`, `logs`, its files) unless `--rm` asked otherwise. The layer goes first: should it
/// not go, the record stays, so that `minibox rm` can try again.
fn forget_if(store: &Store, state: &ContainerState, forget: bool) {
    if forget {
        // Only a layer the record names (recorded before it was made): a bundle has none.
        let layer = store.load(&state.id).ok().and_then(|s| s.layer);
        let removed = layer.map_or(Ok(()), |dir| layers::remove(&dir));
        match removed.and_then(|()| store.remove(&state.id)) {
            Ok(()) => userns::free_ids(store, &state.id),
            Err(e) => say!("minibox: {e:#}"),
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
    again: Again,
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
            // `run -d` prints the id; `start` prints what it was given, itself.
            if again == Again::No {
                out!("{}", state.id);
            }
            Ok(0)
        }
        ForkResult::Child => {
            drop(ready_r);
            // The state and data roots stay open: they were opened (and checked) once.
            let [data_root, containers] = layers.held_fds();
            close_inherited_fds(&[
                ready_w.as_raw_fd(),
                store.root_fd().as_raw_fd(),
                data_root,
                containers,
            ]);
            let mut start = StartReport(Some(File::from(ready_w)));
            let code = match become_supervisor(
                spec,
                store,
                layers,
                state,
                opts.interactive,
                &mut start,
                again,
            ) {
                Ok(_) => {
                    forget_if(store, state, remove);
                    0
                }
                Err(e) => {
                    say!("minibox: {e:#}");
                    start.failed(&e);
                    match again {
                        Again::No => forget_if(store, state, true),
                        Again::Yes => failed_again(store, state, &e),
                    }
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
    start: &mut StartReport,
    again: Again,
) -> Result<i32> {
    nix::unistd::setsid().context("setsid")?;
    let null = File::open("/dev/null").context("opening /dev/null")?;
    nix::unistd::dup2_stdin(&null).context("stdin from /dev/null")?;
    drop(null);
    let dir = store.dir(&state.id);
    let mut log = LogFile::open(&dir)?;
    log.become_stdio()?;
    let me = ProcessRef::of(std::process::id() as i32)?;
    store.update(&state.id, |s| s.supervisor = Some(me))?;
    // Nobody is there to type: the container's stdin is empty. With a terminal, whoever
    // `minibox attach`es later sees it (and types into it, with -i). Made anew for each
    // start (a restart policy's too).
    let mut log = Some(log);
    let mut stdio = || -> Result<Stdio> {
        let log = match log.take() {
            Some(l) => l,
            None => LogFile::open(&dir)?,
        };
        let output = match spec.tty {
            true => Output::LogAndAttach(log, AttachPoint::listen(&dir, interactive)?),
            false => Output::Log(log),
        };
        Ok(Stdio {
            input: Input::Empty,
            output,
            terminal: spec.tty,
        })
    };
    supervise(spec, store, layers, state, &mut stdio, start, again)
}

/// Tells whoever waits for the start (`run -d`) how it went: closing the pipe says CMD runs,
/// a report line says why it could not start.
struct StartReport(Option<File>);

impl StartReport {
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

/// Makes the cgroup, runs the container to its end, records how it ended, removes the cgroup;
/// then, while its restart policy says so, waits (the backoff) and does it again. `Err` means
/// the container never started.
fn supervise(
    spec: &ContainerSpec,
    store: &Store,
    layers: &Layers,
    state: &ContainerState,
    stdio: &mut dyn FnMut() -> Result<Stdio>,
    start: &mut StartReport,
    again: Again,
) -> Result<i32> {
    // What `exec` needs to make another process of this container: its description.
    save_config(spec, store, state)?;
    // Host ports first: one already taken stops us before anything else is made.
    let ports = PublishedPorts::bind(&spec.ports)?;
    let mappings = ports.mappings();
    if !mappings.is_empty() {
        store.update(&state.id, |s| s.ports = mappings.clone())?;
    }
    // Its address, its names in every neighbour's /etc/hosts, its ports in minibox's table;
    // all returned when this function ends, however it ends.
    let connection = network::connect(store, spec, &state.name, &mappings)?;
    let _lease = LeaseGuard {
        store,
        container: &spec.id,
        held: connection.is_some(),
    };
    // The container's own writable layer (a bundle's root is used as given): recorded first,
    // so `rm` finds it whatever happens. A container started again keeps its own.
    let layer = match (spec.private_layer, again) {
        (true, Again::No) => {
            let planned = layers.layer(&spec.id);
            store.update(&state.id, |s| s.layer = Some(planned.dir.clone()))?;
            let mut top = nix::sys::stat::stat(&spec.rootfs)
                .with_context(|| format!("reading ROOTFS {}", spec.rootfs.display()))?;
            // In a user namespace, the root's owner as the container sees it: its host id.
            if spec.setup.new_user_namespace() {
                let host = |maps, id| namespaces::host_id(maps, id).unwrap_or(OVERFLOW_ID);
                top.st_uid = host(&spec.setup.uid_mappings, top.st_uid);
                top.st_gid = host(&spec.setup.gid_mappings, top.st_gid);
            }
            Some(layers.create(&spec.id, &top)?)
        }
        (true, Again::Yes) => Some(layers.existing(&spec.id)?),
        (false, _) => None,
    };
    let mut ports = Some(ports);
    let mut backoff = None;
    let mut first = true;
    loop {
        let began = std::time::Instant::now();
        let ran = run_once(
            spec,
            store,
            state,
            layer.as_ref().map(|l| (l, layers.root())),
            &mappings,
            ports.take(),
            connection.as_ref(),
            stdio,
            start,
        );
        let code = match ran {
            Ok(code) => code,
            Err(e) if first => return Err(e),
            // Started once already: a later start that fails is an end like any other.
            Err(e) => {
                say!("minibox: container {}: {e:#}", spec.display_name());
                let code = status::code_of(&e);
                let _ = store.update(&state.id, |s| {
                    s.status = Status::Exited;
                    s.exit_code = Some(code);
                    s.finished_ms = Some(now_ms());
                });
                code
            }
        };
        first = false;
        let delay = restart::next_backoff(backoff, began.elapsed());
        if !restart_after(store, &state.id, code, delay) {
            return Ok(code);
        }
        backoff = Some(delay);
    }
}

/// After the container's end: whether its restart policy starts it again. If so, the record
/// says `restarting` (with one more restart) while this waits `delay`, watching for a `stop`
/// (or `rm -f`) meanwhile.
fn restart_after(store: &Store, id: &str, code: i32, delay: std::time::Duration) -> bool {
    let stopped = supervisor::asked_to_end();
    let decided = store.update(id, |s| {
        s.stopped_on_purpose |= stopped;
        if s.restart
            .restarts(code, s.restart_count, s.stopped_on_purpose)
        {
            s.restarting = true;
            s.restart_count += 1;
        }
    });
    if !decided.is_ok_and(|s| s.restarting) {
        return false;
    }
    let deadline = std::time::Instant::now() + delay;
    loop {
        match store.load(id) {
            Ok(s) if s.stopped_on_purpose => {
                let _ = store.update(id, |s| s.restarting = false);
                return false;
            }
            Ok(_) => {}
            // Removed meanwhile: nothing left to start.
            Err(_) => return false,
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(20)));
    }
}

/// One run of the container, from its cgroup to its end (recorded): its ports served (bound
/// again, on the host ports of the first run, after a restart), its stdio made.
#[allow(clippy::too_many_arguments)]
fn run_once(
    spec: &ContainerSpec,
    store: &Store,
    state: &ContainerState,
    layer: Option<(&Layer, &std::os::fd::OwnedFd)>,
    mappings: &[crate::model::network::PortMapping],
    ports: Option<PublishedPorts>,
    connection: Option<&Connection>,
    stdio: &mut dyn FnMut() -> Result<Stdio>,
    start: &mut StartReport,
) -> Result<i32> {
    let ports = match ports {
        Some(p) => p,
        None => PublishedPorts::bind(mappings)?,
    };
    // The network namespace of another container, taken now: it must be running.
    let join = netns_to_join(store, &spec.network)?;
    let stdio = stdio()?;
    let began = std::time::Instant::now();
    // Made by `spawn`; this function removes it however the container ends.
    let mut cgroup = None;
    let ended = start_and_watch(
        spec,
        store,
        state,
        layer,
        &mut cgroup,
        Networking {
            ports,
            connection,
            init: InitNet { join },
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
struct LeaseGuard<'a> {
    store: &'a Store,
    container: &'a str,
    /// Whether the container holds a lease (it is on a bridge network).
    held: bool,
}

impl Drop for LeaseGuard<'_> {
    fn drop(&mut self) {
        if self.held {
            if let Err(e) = network::release_at_exit(self.store.root(), self.container) {
                say!(
                    "minibox: container {}: returning its network address: {e:#}",
                    self.container
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
    connection: Option<&'a Connection>,
    init: InitNet,
}

/// Spawns the container's first process into its namespaces and cgroup, records it as
/// running, then passes signals on (and relays output) until it ends.
#[allow(clippy::too_many_arguments)]
fn start_and_watch(
    spec: &ContainerSpec,
    store: &Store,
    state: &ContainerState,
    layer: Option<(&Layer, &std::os::fd::OwnedFd)>,
    cgroup: &mut Option<Box<dyn ContainerCgroup>>,
    net: Networking,
    stdio: Stdio,
    start: &mut StartReport,
) -> Result<i32> {
    // Held from now on, so that no signal meant for the container is lost before it exists.
    let forwarder = Forwarder::block()?;
    let (mut relay, container_stdio) = stdio::pipes(stdio)?;
    if spec.setup.new_user_namespace() {
        let host = |maps, id| namespaces::host_id(maps, id).unwrap_or(id);
        container_stdio.give_to(
            host(&spec.setup.uid_mappings, spec.identity.uid),
            host(&spec.setup.gid_mappings, spec.identity.gid),
        )?;
    }
    // Its network namespace, taken while the child waits: a short-lived CMD could be gone by
    // the time the relay serves it.
    let mut netns = None;
    let mut plug_network = |pid: Pid| -> Result<()> {
        if !spec.ports.is_empty() && net.connection.is_none() {
            let ns = File::open(format!("/proc/{pid}/ns/net"))
                .context("opening the container's network namespace")?;
            netns = Some(ns);
        }
        // Its eth0, on the bridge, while it waits: CMD starts with its network in place.
        if let Some(conn) = net.connection {
            network::plug(conn, pid.as_raw())?;
        }
        Ok(())
    };
    // The state a bundle's hooks read while minibox makes it (none to read: nothing sent).
    let hooks_state = |pid: Pid| match spec.hooks == Default::default() {
        true => String::new(),
        false => hook_state(spec, pid),
    };
    let spawned = spawn::spawn(
        spec,
        store,
        state,
        Spawn {
            layer,
            net: &net.init,
            supervisor: Supervisor::Minibox(&container_stdio),
            hooks_state: &hooks_state,
            while_it_waits: &mut plug_network,
        },
        cgroup,
    )?;
    let pid = spawned.pid;
    // Only the container may hold the write ends, so the relay sees EOF when it is gone.
    drop(container_stdio);
    // CMD's exec, then (-t) the container's terminal, sent before it, is ours to relay.
    let started = spawned
        .wait_for_exec(spec)
        .and_then(|()| relay.connect_terminal());
    if let Err(e) = started {
        let _ = kill(pid, Signal::SIGKILL);
        signals::reap(pid);
        return Err(e);
    }
    // CMD runs now: from here on nothing may fail the start. What goes wrong is said, and the
    // container still gets watched to its end.
    let upstream = match (netns, net.connection) {
        (_, Some(conn)) => Some(Upstream::Addr(conn.lease.ip)),
        (Some(netns), None) => Some(Upstream::Netns(netns)),
        (None, None) => None,
    };
    // Served while it runs: the relay stops (and lets the host ports go) when it ends.
    let _serving = match upstream.map(|u| net.ports.serve(u)) {
        Some(Ok(serving)) => Some(serving),
        Some(Err(e)) => {
            say!("minibox: container {}: {e:#}", spec.display_name());
            None
        }
        None => None,
    };
    let process = ProcessRef::of(pid.as_raw()).ok();
    let recorded = store.update(&spec.id, |s| {
        s.status = Status::Running;
        s.pid = process;
        s.started_ms = Some(now_ms());
        // What the run before this one left (a restart's).
        s.restarting = false;
        s.exit_code = None;
        s.finished_ms = None;
        s.oom_killed = false;
    });
    match &recorded {
        Err(e) => say!("minibox: container {}: {e:#}", spec.display_name()),
        Ok(now) => hooks::run_warning_only(
            &spec.hooks,
            "poststart",
            &state_json(now, "running").to_string(),
        ),
    }
    // `--explain=FILE`: the container, drawn as its program starts.
    crate::runtime::explain_page::started(pid.as_raw());
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
