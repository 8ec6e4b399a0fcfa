//! The OCI runtime lifecycle, runc's way: `create` makes the container's process, set up up to
//! the exec of `process.args`, and returns; `start` lets it exec. Between the two no minibox
//! process exists: the caller (conmon, a containerd shim) has made itself a child subreaper, so
//! the container's process, orphaned when `create` exits, becomes its child.
//!
//! The process waits for `start` by opening the FIFO `exec.fifo` in its state directory for
//! writing, which blocks until `start` opens it for reading (runc's mechanism). It reaches the
//! FIFO through an `O_PATH` descriptor opened on the host before the root switch
//! (`/proc/self/fd/N`), so the state directory is never visible inside the container.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;

use crate::kernel::cgroup::{self, ContainerCgroup};
use crate::kernel::shared_root;
use crate::model::spec::ContainerSpec;
use crate::runtime::hooks;
use crate::runtime::init::{CallerHandoff, InitNet, Supervisor};
use crate::runtime::spawn::{self, Spawn};
use crate::store::state::{
    now_ms, save_config, state_json, ContainerState, OciRecord, ProcessRef, Status, Store,
};

const EXEC_FIFO: &str = "exec.fifo";

/// `create`'s flags.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// The bundle, absolute.
    pub bundle: PathBuf,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// `minibox create`: returns once the container's process waits for `start`. Whatever fails
/// leaves nothing behind: no process, cgroup or record.
pub fn create(spec: &ContainerSpec, store: &Store, opts: &CreateOptions) -> Result<()> {
    check_attachment(spec, opts)?;
    // Connected before anything is made: a wrong socket costs nothing.
    let console = opts
        .console_socket
        .as_ref()
        .map(|path| {
            UnixStream::connect(path)
                .with_context(|| format!("connecting to --console-socket {}", path.display()))
        })
        .transpose()?;
    let record = OciRecord {
        bundle: opts.bundle.clone(),
        annotations: opts.annotations.clone(),
        hooks: spec.hooks.clone(),
        caller_supervised: true,
        root_mounts_before: shared_root::mounts_before(&spec.rootfs, spec.shares_callers_mounts()),
    };
    let state = store.create_with(spec, true, Some(record))?;
    let mut made = Made::default();
    let result = create_recorded(spec, store, opts, &state, console, &mut made);
    if result.is_err() {
        made.undo(store, &state.id);
        shared_root::detach_since(&spec.rootfs, record_of(&state));
    }
    result
}

fn record_of(state: &ContainerState) -> Option<usize> {
    state.oci.as_ref().and_then(|o| o.root_mounts_before)
}

/// What `create` has made so far, to be undone if it fails.
#[derive(Default)]
struct Made {
    pid: Option<nix::unistd::Pid>,
    cgroup: Option<Box<dyn ContainerCgroup>>,
}

impl Made {
    fn undo(&self, store: &Store, id: &str) {
        if let Some(pid) = self.pid {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.destroy();
        }
        if let Ok(c) = store.load(id) {
            if let Some(cg) = c.cgroup.as_ref().and_then(cgroup::reopen) {
                let _ = cg.destroy();
            }
        }
        let _ = store.remove(id);
    }
}

/// A terminal needs a socket to send it through, and a socket is only for a terminal (runc's
/// rules); published ports need a minibox supervisor, which `create` does not leave.
fn check_attachment(spec: &ContainerSpec, opts: &CreateOptions) -> Result<()> {
    match (spec.tty, &opts.console_socket) {
        (true, None) => bail!(
            "process.terminal is true: give --console-socket SOCKET to receive the pty's master"
        ),
        (false, Some(_)) => bail!(
            "--console-socket was given but process.terminal is false: set process.terminal \
             to true, or drop --console-socket"
        ),
        _ => {}
    }
    if !spec.ports.is_empty() {
        bail!(
            "published ports (annotation org.minibox.ports) need a minibox supervisor: use \
             minibox run --bundle without -d, or let the engine publish them"
        );
    }
    Ok(())
}

fn create_recorded(
    spec: &ContainerSpec,
    store: &Store,
    opts: &CreateOptions,
    state: &ContainerState,
    console: Option<UnixStream>,
    made: &mut Made,
) -> Result<()> {
    let dir = store.dir(&state.id);
    // What `minibox exec` rebuilds the container's process from.
    save_config(spec, store, state)?;
    let fifo_path = dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o600))
        .with_context(|| format!("mkfifo {}", fifo_path.display()))?;
    // Writable by the container's user, whoever that is: the FIFO is reached only through our
    // descriptor, in a directory only root can enter.
    std::fs::set_permissions(&fifo_path, std::fs::Permissions::from_mode(0o622))
        .with_context(|| format!("chmod {}", fifo_path.display()))?;
    let exec_fifo: OwnedFd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(&fifo_path)
        .with_context(|| format!("opening {}", fifo_path.display()))?
        .into();
    let handoff = CallerHandoff {
        exec_fifo,
        console,
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
    };
    // A bundle's network is its maker's (a namespace given by path is joined by init).
    let net = InitNet { join: None };
    // The state the hooks read: the container as it is being made.
    let hooks_state = |pid: nix::unistd::Pid| {
        let mut seen = state.clone();
        seen.pid = ProcessRef::of(pid.as_raw()).ok();
        state_json(&seen, "creating").to_string()
    };
    let spawned = spawn::spawn(
        spec,
        store,
        state,
        Spawn {
            layer: None,
            net: &net,
            supervisor: Supervisor::Caller(&handoff),
            hooks_state: &hooks_state,
            while_it_waits: &mut |_| Ok(()),
        },
        &mut made.cgroup,
    )?;
    let pid = spawned.pid;
    made.pid = Some(pid);
    let process = ProcessRef::of(pid.as_raw())?;
    store.update(&state.id, |s| {
        s.pid = Some(process);
        s.status = Status::Created;
        // From now on its caller answers for it.
        s.supervisor = None;
    })?;
    if let Some(path) = &opts.pid_file {
        spawn::write_pid_file(path, pid.as_raw())?;
    }
    Ok(())
}

/// `minibox start ID`: the waiting process execs `process.args`.
pub fn start(store: &Store, id: &str) -> Result<()> {
    let lock = store.lock(id).map_err(|_| does_not_exist(id))?;
    let c = store.load(id).map_err(|_| does_not_exist(id))?.observed();
    match c.status {
        Status::Created if c.caller_supervised() => {}
        Status::Created => bail!("container {id} is being created by minibox run: it starts itself"),
        Status::Running => bail!("cannot start container {id}: it is already running (start runs a created container once)"),
        Status::Exited => bail!("cannot start container {id}: it is stopped; delete it and create it again"),
    }
    let Some(pid) = c.pid else {
        bail!("cannot start container {id}: it has no process");
    };
    let fifo_path = store.dir(id).join(EXEC_FIFO);
    let fifo = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&fifo_path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("cannot start container {id}: it was started already")
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", fifo_path.display())),
    };
    await_exec(&fifo, pid, id)?;
    let _ = std::fs::remove_file(&fifo_path);
    // Under the lock taken above (`update` would take it again).
    let mut now = store.load(id)?;
    now.status = Status::Running;
    now.started_ms = Some(now_ms());
    store.write(&now)?;
    drop(lock);
    if let Some(oci) = &now.oci {
        hooks::run_warning_only(
            &oci.hooks,
            "poststart",
            &state_json(&now, "running").to_string(),
        );
    }
    Ok(())
}

/// Waits for the container's byte on the FIFO, then for its end of file (the exec closed the
/// container's end), checking that its process still lives.
fn await_exec(fifo: &File, pid: ProcessRef, id: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = false;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(50u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("polling the exec FIFO"),
        }
        let mut byte = [0u8; 1];
        match (&*fifo).read(&mut byte) {
            Ok(1) => answered = true,
            Ok(_) if answered => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e).context("reading the exec FIFO"),
        }
        if !pid.is_alive() {
            // A program that ran and ended already is started: it may have answered, exec'd
            // and exited between the read above and this check (`exit 0` takes microseconds),
            // and its byte is still in the FIFO, whose read end we hold.
            if answered || matches!((&*fifo).read(&mut byte), Ok(1)) {
                return Ok(());
            }
            bail!("cannot start container {id}: its process has exited (killed while created?)");
        }
        if Instant::now() >= deadline {
            bail!("cannot start container {id}: its process did not answer within 60 s");
        }
    }
}

/// The one-line error engines match for an unknown id.
pub fn does_not_exist(id: &str) -> anyhow::Error {
    anyhow::anyhow!("container {id} does not exist (no such container)")
}
