//! `minibox exec`: a new process in a running container — in all of its namespaces, in its
//! cgroup, with its user (or another of its rootfs's), capabilities, no_new_privs, seccomp
//! filter, environment and working directory.
//!
//! Three processes take part. minibox (this process, already running from its sealed copy:
//! see `sealed_self`) opens a pidfd of the container's first process, joins the container's
//! PID namespace *for its children* (setns of a PID namespace moves only the children one
//! makes afterwards), and forks the exec'd process. That child waits until minibox has put it
//! in the container's cgroup, joins the other namespaces in one `setns` on the pidfd, makes
//! itself the container's kind of process (`join_and_exec`: one step per line, in init's
//! order) and execs CMD. minibox then relays its stdio and signals until it ends (or, with
//! `-d`, returns at once and leaves it to the caller's reaper).

use std::convert::Infallible;
use std::fs::File;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{ForkResult, Pid};

use crate::kernel::caps::{self, CapsHashSet};
use crate::kernel::cgroup::{self, CgroupRecord};
use crate::kernel::namespaces::{Kind, CONTAINER_KINDS};
use crate::kernel::process::{self, Rlimit};
use crate::kernel::{sched, seccomp};
use crate::model::spec::ContainerSpec;
use crate::model::user;
use crate::runtime::channel::{self, ChildEnd, ParentEnd};
use crate::runtime::init;
use crate::runtime::signals::{self, Forwarder};
use crate::runtime::spawn;
use crate::runtime::status;
use crate::runtime::stdio::{self, ContainerStdio, Input, Output, Relay, Stdio};
use crate::runtime::supervisor;
use crate::store::state::ProcessRef;

/// The process to start, as the front end decided it: the container's own description with
/// this process's args, env, cwd, identity and capabilities in place of its first one's.
pub struct ExecProcess {
    pub spec: ContainerSpec,
    /// The container's bounding set (its first process's ceiling, and this one's).
    pub bounding: CapsHashSet,
    /// OCI `process.rlimits`.
    pub rlimits: Vec<Rlimit>,
    /// `--preserve-fds N`: descriptors 3 .. 3+N stay open into CMD.
    pub preserve_fds: u32,
    /// OCI `process.user.umask` (else docker's 022).
    pub umask: u32,
    /// OCI `process.consoleSize`, for the terminal (else the caller's size).
    pub console_size: Option<libc::winsize>,
}

/// The running container to enter.
pub struct Target {
    pub name: String,
    pub pid: ProcessRef,
    pub cgroup: Option<CgroupRecord>,
}

/// Where the exec'd process's stdin, stdout and stderr come from.
pub enum ExecStdio {
    /// docker's form: pipes (or, `tty`, a terminal of the container's) relayed by minibox.
    Relay { interactive: bool, tty: bool },
    /// OCI form: the caller's own 0, 1, 2 as they are (the runtime spec's contract); with a
    /// console socket, a terminal of the container's whose master goes there.
    Inherit { console_socket: Option<PathBuf> },
    /// docker's `-d`: nothing in, output dropped (the container's /dev/null).
    Null,
}

pub struct ExecOptions {
    /// Return once CMD runs; no minibox process stays behind.
    pub detach: bool,
    /// Where to write the exec'd process's host pid (OCI `--pid-file`).
    pub pid_file: Option<PathBuf>,
    pub stdio: ExecStdio,
}

/// `minibox exec`; returns the status minibox exits with (CMD's, or 0 with `detach`).
pub fn run(
    store: &crate::store::state::Store,
    target: &Target,
    process: &ExecProcess,
    opts: &ExecOptions,
) -> Result<i32> {
    // Held from now on, so that no signal meant for the process is lost before it exists.
    let forwarder = Forwarder::block()?;
    // The profile is compiled here, on the host side: the joining child only loads it.
    let filter = seccomp::compile_for(process.spec.seccomp.as_ref(), store.root())?;
    let pidfd = open_container(target)?;
    let namespaces = namespaces_to_join(target)?;
    // No process of the container may open our memory or our exe through /proc (they are not
    // dumpable): the child inherits this until it execs CMD.
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
    if namespaces.contains(CloneFlags::CLONE_NEWPID) {
        // Our next child is born in the container's PID namespace (we stay where we are).
        nix::sched::setns(&pidfd, CloneFlags::CLONE_NEWPID)
            .map_err(|e| not_running_or(e, target, "setns(CLONE_NEWPID)"))?;
    }
    let others = namespaces - CloneFlags::CLONE_NEWPID;
    // The container's root as its process sees it, opened from here before we join anything.
    let root = open_root(target)?;
    let (parent, child) = channel::pair()?;
    let (mut relay, child_stdio) = make_stdio(&opts.stdio, process.console_size)?;
    // In the container's user namespace, the pipes belong to the host ids its user is.
    if others.contains(CloneFlags::CLONE_NEWUSER) {
        give_stdio_to_mapped_user(&child_stdio, process, target)?;
    }
    // SAFETY: minibox is single-threaded here, so the child's copy of memory holds no lock
    // another thread held; the child runs `join_and_exec` and execs or exits.
    let pid = match unsafe { nix::unistd::fork() }.context("fork() of the exec'd process")? {
        ForkResult::Child => {
            parent.close_in_child();
            let Err(err) = join_and_exec(
                process,
                filter.as_ref(),
                &child,
                &child_stdio,
                &pidfd,
                others,
                &root,
            );
            child.report_failure(status::code_of(&err), &format!("{err:#}"));
            // SAFETY: _exit ends this forked copy without running the parent's destructors.
            unsafe { libc::_exit(1) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(child);
    // Only the process may hold its ends of the pipes: the relay sees EOF when it is gone.
    drop(child_stdio);
    let started = admit(pid, target, &parent).and_then(|()| relay.connect_terminal());
    if let Err(e) = started {
        let _ = kill(pid, Signal::SIGKILL);
        signals::reap(pid);
        return Err(e);
    }
    if let Some(path) = &opts.pid_file {
        spawn::write_pid_file(path, pid.as_raw())?;
    }
    if opts.detach {
        return Ok(0);
    }
    let ended = supervisor::watch(pid, &forwarder, relay)?;
    Ok(status::from_wait(ended).unwrap_or(status::RUNTIME_FAILED))
}

/// A pidfd of the container's first process, checked to be that very process (not another
/// that got its pid since).
fn open_container(target: &Target) -> Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, target.pid.pid, 0) };
    let fd = Errno::result(fd).map_err(|e| not_running_or(e, target, "pidfd_open"))?;
    // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !target.pid.is_alive() {
        bail!(not_running(target));
    }
    Ok(fd)
}

fn not_running(target: &Target) -> String {
    format!("container {} is not running", target.name)
}

/// ESRCH means the container ended meanwhile: said as such.
fn not_running_or(e: Errno, target: &Target, what: &str) -> anyhow::Error {
    match e {
        Errno::ESRCH => anyhow::anyhow!(not_running(target)),
        e => anyhow::Error::new(e).context(format!("{what} of container {}", target.name)),
    }
}

/// The namespaces the container has of its own: those whose `/proc/PID/ns` link differs from
/// ours (`--network host` shares the host's network namespace, for one).
fn namespaces_to_join(target: &Target) -> Result<CloneFlags> {
    let mut flags = CloneFlags::empty();
    // Its user namespace too (it maps the ids the process becomes, and is what its root's
    // privileges are worth): without it an exec'd process would be the host's root.
    for kind in CONTAINER_KINDS.into_iter().chain([Kind::Time, Kind::User]) {
        let (name, flag) = (kind.proc_name(), kind.flag());
        let ours = std::fs::read_link(format!("/proc/self/ns/{name}"));
        let theirs = std::fs::read_link(format!("/proc/{}/ns/{name}", target.pid.pid));
        match (ours, theirs) {
            (Ok(a), Ok(b)) if a != b => flags |= flag,
            (Ok(_), Ok(_)) => {}
            // A kernel without time namespaces has no link for it, here or there.
            (Err(_), Err(_)) if name == "time" => {}
            (_, Err(e)) => {
                if !target.pid.is_alive() {
                    bail!(not_running(target));
                }
                return Err(e).with_context(|| {
                    format!(
                        "reading /proc/{}/ns/{name} of container {}",
                        target.pid.pid, target.name
                    )
                });
            }
            (Err(e), _) => return Err(e).context(format!("reading /proc/self/ns/{name}")),
        }
    }
    // Still the container's process: the links we read were its own.
    if !target.pid.is_alive() {
        bail!(not_running(target));
    }
    Ok(flags)
}

/// The process's pipes, given to the host ids its user maps to (read from the container's
/// own maps): it fchowns them to itself inside, which only an owner it maps may.
fn give_stdio_to_mapped_user(stdio: &ChildStdio, p: &ExecProcess, target: &Target) -> Result<()> {
    let ChildStdio::Container(pipes) = stdio else {
        return Ok(());
    };
    let (uids, gids) = crate::kernel::namespaces::read_id_maps(target.pid.pid)
        .map_err(|e| not_running_or_err(e, target))?;
    let host = |maps: &[crate::kernel::namespaces::IdMap], id| {
        crate::kernel::namespaces::host_id(maps, id).with_context(|| {
            format!(
                "id {id} is not mapped in the user namespace of container {}: run as one it maps",
                target.name
            )
        })
    };
    pipes.give_to(
        host(&uids, p.spec.identity.uid)?,
        host(&gids, p.spec.identity.gid)?,
    )
}

fn not_running_or_err(e: anyhow::Error, target: &Target) -> anyhow::Error {
    match target.pid.is_alive() {
        true => e,
        false => anyhow::anyhow!(not_running(target)),
    }
}

/// The relay minibox serves and what the child makes its 0, 1, 2 from.
fn make_stdio(how: &ExecStdio, console_size: Option<libc::winsize>) -> Result<(Relay, ChildStdio)> {
    match how {
        ExecStdio::Relay { interactive, tty } => {
            let (relay, theirs) = stdio::pipes(Stdio {
                input: if *interactive {
                    Input::Caller
                } else {
                    Input::Empty
                },
                output: Output::Caller,
                terminal: *tty,
            })?;
            Ok((relay, ChildStdio::Container(theirs)))
        }
        ExecStdio::Inherit {
            console_socket: None,
        } => Ok((Relay::none(), ChildStdio::Inherit)),
        ExecStdio::Inherit {
            console_socket: Some(path),
        } => {
            let socket = std::os::unix::net::UnixStream::connect(path)
                .with_context(|| format!("connecting to the console socket {}", path.display()))?;
            let size = console_size.or_else(crate::runtime::terminal::caller_window_size);
            Ok((
                Relay::none(),
                ChildStdio::Container(ContainerStdio::Terminal {
                    socket: socket.into(),
                    size,
                }),
            ))
        }
        ExecStdio::Null => Ok((Relay::none(), ChildStdio::Null)),
    }
}

/// What the child makes its stdio from.
enum ChildStdio {
    /// Pipes minibox relays, or a terminal whose master goes over a socket.
    Container(ContainerStdio),
    /// The descriptors it was born with.
    Inherit,
    /// The container's /dev/null.
    Null,
}

/// Puts the waiting child in the container's cgroup, lets it go, waits until it has exec'd.
fn admit(pid: Pid, target: &Target, parent: &ParentEnd) -> Result<()> {
    let group = target.cgroup.as_ref().and_then(cgroup::reopen);
    spawn::place_in_cgroup(pid, group.as_deref(), parent, |path| {
        format!(
            "moving the exec'd process into the cgroup of container {} ({})",
            target.name,
            path.display()
        )
    })?;
    parent.send_go()?;
    parent.wait_for_exec(|_, _| {})
}

/// In the child, from fork to `execve`: the container's process, step by step.
fn join_and_exec(
    p: &ExecProcess,
    filter: Option<&seccomp::Program>,
    chan: &ChildEnd,
    stdio: &ChildStdio,
    pidfd: &OwnedFd,
    namespaces: CloneFlags,
    root: &OwnedFd,
) -> Result<Infallible> {
    // A session of our own: the caller's terminal is not ours to type into (TIOCSTI), and a
    // terminal of the container's (-t) can become our controlling one.
    nix::unistd::setsid().context("setsid")?;
    // A session keyring of our own: the caller's keys are out of reach.
    init::join_new_session_keyring()?;
    // execCPUAffinity.initial: the CPUs we run on until we are in the container's cgroup.
    sched::set_affinity(p.spec.setup.attrs.affinity_initial.as_deref())?;
    // Wait until minibox has put us in the container's cgroup: all we start is counted there.
    chan.wait_for_go()?;
    // execCPUAffinity.final: the CPUs CMD runs on.
    sched::set_affinity(p.spec.setup.attrs.affinity_final.as_deref())?;
    // Into the container's other namespaces at once; joining its mount namespace also makes
    // its root our root and our cwd (we were born in its PID namespace).
    if !namespaces.is_empty() {
        nix::sched::setns(pidfd, namespaces)
            .context("setns into the container's namespaces (it may have just stopped)")?;
    }
    // In its user namespace we are nobody (the host's root is not mapped there) until we
    // become its root: only then does what we make (a pty) have an owner we may change.
    if namespaces.contains(CloneFlags::CLONE_NEWUSER) {
        crate::kernel::namespaces::become_root_of_joined_user_namespace()?;
    }
    // Its root exactly: one chroot'ed in a mount namespace not its own (joined by path) lies
    // below that namespace's root, which setns gave us.
    enter_root(root)?;
    // Our 0, 1, 2: pipes minibox relays, the caller's, the container's /dev/null, or a
    // terminal of the container's own devpts (opened only now that its /dev/pts is ours).
    install_stdio(stdio, p.spec.identity.uid, p.spec.identity.gid)?;
    // The container's ceiling on capabilities; needs CAP_SETPCAP, so before setuid.
    caps::limit_bounding_set(&p.bounding)?;
    // The process's resource limits (OCI process.rlimits), while we may still raise them.
    process::set_rlimits(&p.rlimits)?;
    // ioPriority and scheduler (real-time ones need privileges), personality, memoryPolicy:
    // the container's, or this process's own.
    sched::set_io_priority(p.spec.setup.attrs.io_priority)?;
    sched::set_scheduler(p.spec.setup.attrs.scheduler.as_ref())?;
    sched::set_personality(p.spec.setup.attrs.personality)?;
    sched::set_memory_policy(p.spec.setup.attrs.memory_policy.as_ref())?;
    // process.oomScoreAdj (lowering it needs CAP_SYS_RESOURCE: before the identity change).
    crate::kernel::process::set_oom_score_adj(p.spec.setup.oom_score_adj)?;
    // A non-root user asked to keep capabilities keeps its permitted set through setuid.
    caps::keep_through_setuid(&p.spec.capabilities)?;
    // Become the user: groups, gid, then uid — the point of no return.
    user::switch_to(&p.spec.identity)?;
    // Keep exactly the allowed capabilities; nothing inheritable, nothing ambient.
    caps::set_process_caps(&p.spec.capabilities)?;
    // setuid binaries in the container can never raise privileges again.
    init::set_no_new_privs()?;
    // Changing uid made us dumpable again: not until CMD runs.
    nix::sys::prctl::set_dumpable(false).context("prctl(PR_SET_DUMPABLE, 0)")?;
    // Files CMD creates get the container's mode.
    umask(Mode::from_bits_truncate(p.umask as libc::mode_t));
    // Start where asked, and prove the cwd is inside the container (runc CVE-2024-21626).
    init::enter_workdir(&p.spec.workdir)?;
    // Default signal dispositions, none blocked: as if CMD had been started afresh.
    signals::reset_for_exec()?;
    // No descriptor of ours reaches CMD but 0, 1, 2 and those the caller asked to keep.
    process::close_fds_on_exec(p.preserve_fds)?;
    // Last, the container's syscall filter (it needs no_new_privs).
    init::install_seccomp_filter(filter, true)?;
    // Become CMD; the exec closes the report pipe right after this last word.
    chan.report_exec();
    init::exec_command(&p.spec, None)
}

/// `/proc/PID/root` of the container's first process, as a handle.
fn open_root(target: &Target) -> Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = format!("/proc/{}/root", target.pid.pid);
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| {
            if target.pid.is_alive() {
                anyhow::Error::new(e).context(format!("opening {path}"))
            } else {
                anyhow::anyhow!(not_running(target))
            }
        })?;
    Ok(file.into())
}

fn enter_root(root: &OwnedFd) -> Result<()> {
    nix::unistd::fchdir(root).context("entering the container's root")?;
    nix::unistd::chroot(".").context("chroot into the container's root")
}

fn install_stdio(stdio: &ChildStdio, uid: u32, gid: u32) -> Result<()> {
    match stdio {
        ChildStdio::Container(theirs) => {
            theirs.install(uid, gid)?;
            theirs.install_terminal(uid)
        }
        ChildStdio::Inherit => Ok(()),
        ChildStdio::Null => {
            let null = File::options()
                .read(true)
                .write(true)
                .open("/dev/null")
                .context("opening the container's /dev/null")?;
            nix::unistd::dup2_stdin(&null).context("dup2 of /dev/null onto 0")?;
            nix::unistd::dup2_stdout(&null).context("dup2 of /dev/null onto 1")?;
            nix::unistd::dup2_stderr(&null).context("dup2 of /dev/null onto 2")?;
            Ok(())
        }
    }
}
