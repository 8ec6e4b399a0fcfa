//! The container's first process, from `clone` to `execve`.
//!
//! `set_up_and_exec` is the whole story of a container, one step per line, in the order the
//! kernel requires: mounts while we are still root and can see the host, then the root switch,
//! then everything that needs privileges, then the identity change that gives them up, then
//! the exec. Each step is a named function with the reason it stands where it does.

use std::convert::Infallible;
use std::ffi::{CStr, CString};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::{umask, Mode};
use nix::unistd::{access, execve, execveat, AccessFlags};

use crate::kernel::namespaces::Kind;
use crate::kernel::rootfs::OverlayDirs;
use crate::kernel::{caps, console, loopback, mounts, namespaces, process, rootfs, sched, seccomp};
use crate::model::network::Network;
use crate::model::spec::ContainerSpec;
use crate::model::user;
use crate::runtime::channel::ChildEnd;
use crate::runtime::hooks;
use crate::runtime::host_objects::HostObjects;
use crate::runtime::status::{self, StatusError};
use crate::runtime::stdio::ContainerStdio;
use crate::runtime::{explain, pid1, signals};
use crate::store::layers::Layer;

/// What the supervisor prepared for the container's network, beyond the spec.
pub struct InitNet {
    /// The network namespace to join (`container:NAME`, a bundle's namespace path).
    pub join: Option<File>,
}

/// What the parent made ready for the container's first process before the clone.
pub struct Prepared<'a> {
    /// The container's own writable layer (`None`: a bundle's root, used as given).
    pub layer: Option<&'a Layer>,
    /// The seccomp program, compiled in the parent (`None`: unconfined).
    pub filter: Option<&'a seccomp::Program>,
    /// `--init`: the sealed copy of the init that runs CMD as its child.
    pub pid1: Option<&'a OwnedFd>,
    /// The network namespace to join, and where its /etc files are.
    pub net: &'a InitNet,
    /// What it takes from the host (ROOTFS, bind sources, /etc files), opened and checked.
    pub host: &'a HostObjects,
}

/// Who supervises the container's first process.
#[derive(Clone, Copy)]
pub enum Supervisor<'a> {
    /// minibox: stdio through its pipes, and the container dies with it.
    Minibox(&'a ContainerStdio),
    /// OCI `create`'s caller (conmon, a containerd shim): the process keeps create's stdio (or
    /// gets a pty), outlives create, and waits for `start`.
    Caller(&'a CallerHandoff),
}

/// What `create` hands the container's first process, whose caller then supervises it.
pub struct CallerHandoff {
    /// `exec.fifo`, as an `O_PATH` handle.
    pub exec_fifo: OwnedFd,
    /// `--console-socket`, connected.
    pub console: Option<UnixStream>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// The signals a waiting container's process dies of. As PID 1 of its namespace it would
/// ignore them with the default disposition; runc's waiting init (a Go program) dies of them.
const DEADLY_WHILE_WAITING: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

extern "C" fn die_of_signal(sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe and touches no memory of ours.
    unsafe { libc::_exit(128 + sig) }
}

impl CallerHandoff {
    /// Blocks until `start` opens the FIFO, then tells it we go. A signal meant for the
    /// container ends the wait (and the process), as it would end the program.
    pub fn wait_for_start(&self) -> Result<()> {
        let die = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(die_of_signal),
            nix::sys::signal::SaFlags::empty(),
            nix::sys::signal::SigSet::empty(),
        );
        for sig in DEADLY_WHILE_WAITING {
            // SAFETY: the handler only calls _exit.
            unsafe { nix::sys::signal::sigaction(sig, &die) }.context("sigaction")?;
        }
        let path = format!("/proc/self/fd/{}", self.exec_fifo.as_raw_fd());
        let mut fifo = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .context("waiting for start on the exec FIFO")?;
        fifo.write_all(b"0")
            .context("answering start on the exec FIFO")?;
        // Kept open, close-on-exec: `start` sees its end of file only once the exec has
        // happened (or this process is gone), so it returns when the program runs (runc's way).
        let _ = std::os::fd::IntoRawFd::into_raw_fd(fifo);
        let default = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::SigDfl,
            nix::sys::signal::SaFlags::empty(),
            nix::sys::signal::SigSet::empty(),
        );
        for sig in DEADLY_WHILE_WAITING {
            // SAFETY: restoring the default disposition installs no code of ours.
            unsafe { nix::sys::signal::sigaction(sig, &default) }.context("sigaction")?;
        }
        Ok(())
    }
}

/// Runs in the child after `clone`: becomes CMD (or, with `--init`, the init that starts it),
/// or reports why not and exits.
pub fn container_main(
    spec: &ContainerSpec,
    prepared: &Prepared,
    chan: &ChildEnd,
    supervisor: Supervisor,
) -> isize {
    let Err(err) = set_up_and_exec(spec, prepared, chan, &supervisor);
    chan.report_failure(status::code_of(&err), &format!("{err:#}"));
    status::code_of(&err) as isize
}

fn set_up_and_exec(
    spec: &ContainerSpec,
    prepared: &Prepared,
    chan: &ChildEnd,
    supervisor: &Supervisor,
) -> Result<Infallible> {
    // If a minibox supervisor dies, even by SIGKILL, the kernel kills the container with it
    // (not under `create`: its caller supervises, and create's own exit must not end it).
    die_with_parent_if_supervised(supervisor)?;
    // A session of our own: the caller's terminal is no longer our controlling terminal, so no
    // TIOCSTI can type into the host's shell, and Ctrl-C reaches us only through minibox.
    nix::unistd::setsid().context("setsid")?;
    // A session keyring of our own: the caller's keys (ssh, kerberos...) are out of reach
    // (unless `create --no-new-keyring` asked to keep the caller's).
    join_new_session_keyring_unless_asked(supervisor)?;
    // Wait until minibox has put us in our cgroup: from then on every page and cycle counts.
    let state = chan.wait_for_go()?;
    // With the ids mapped, we become root of a new user namespace: what we make has an owner.
    namespaces::become_root_of_new_user_namespace(&spec.setup.namespaces)?;
    // Decided while we still stand in the caller's mount namespace: is one joined below another's?
    let joins_another_mount_ns = joins_another_mount_namespace(spec);
    // Namespaces config.json names by path are joined (the user one first: it grants the rest).
    namespaces::join_given(&spec.setup.namespaces)?;
    // setns left us at the joined mount namespace's root: back to the rootfs (in another's
    // namespace by name, as runc; in the caller's own through the descriptor opened before).
    enter_rootfs_if_mount_namespace_joined(spec, prepared, joins_another_mount_ns)?;
    // container:NAME: that container's network namespace becomes ours (clone made none).
    join_network_namespace(prepared.net.join.as_ref())?;
    // Our cgroup becomes the root of our cgroup view (the host's groups are out of sight); a
    // time namespace gives us clocks of our own. Both only now that we are in our cgroup.
    namespaces::enter_late_namespaces(&spec.setup.namespaces)?;
    // (--explain: each `say` tells minibox what the kernel now holds; off, it does nothing.)
    let say = |step: &str, text: &dyn Fn() -> String| {
        if spec.explain {
            chan.report_step(step, &text())
        }
    };
    say("clone", &|| explain::namespaces_of("self"));
    // Our 0, 1, 2 become pipes minibox relays: no file of the caller's is ours to reopen or
    // chmod (under `create`, the OCI contract: create's own stdio stays ours).
    install_stdio_if_supervised(supervisor, spec)?;
    // Nothing we mount from here on propagates back to the host (a mount namespace joined by
    // path is left as its owner made it: our mounts under the rootfs are shared with it).
    make_mounts_private_if_own(spec)?;
    // ROOTFS below, the container's own layer above, so every write (the mount points and the
    // workdir made below included) lands in the layer; or a bundle's root, as its maker gave it.
    // The host's objects were opened before the clone; our starting directory is the data root
    // (or the bundle's root), carried into our mount namespace: no host path is looked up.
    let root = mount_root(spec, prepared)?;
    // Back in the caller's working directory: the hooks below run where they always did.
    return_to_callers_dir(spec, prepared, &root)?;
    // The mount list in its order (docker's: our own /proc, /sys ro, a /dev of fresh nodes with
    // devpts and /dev/shm), each resolved inside the root; a /dev tmpfs gets the device nodes;
    // binds attach the trees opened (and flagged throughout) before the clone.
    let mounted = mounts::mount_all(
        &root,
        &spec.setup.mounts,
        &prepared.host.binds,
        &spec.setup.devices,
    )?;
    // Namespaced kernel knobs, through a /proc/sys that speaks for our namespaces and is not
    // yet read-only.
    process::write_sysctls(&spec.setup.sysctl)?;
    // Hide what leaks the host's secrets or power (docker's masked paths by default).
    let masked = rootfs::mask_paths(&root, &spec.setup.masked_paths)?;
    // Freeze the kernel knobs the container must not turn (docker's read-only paths by default).
    let frozen = rootfs::make_paths_readonly(&root, &spec.setup.readonly_paths)?;
    // minibox's /etc/hosts, /etc/hostname, /etc/resolv.conf over the rootfs's (never edited);
    // a bundle's are its maker's (engines bind their own in config.json's mounts).
    mount_etc_files_unless_bundle(&root, spec, prepared)?;
    say("mounts", &|| explain::mounts(mounted, masked, frozen));
    // hooks.createRuntime and hooks.prestart run now, in the runtime's namespaces: minibox
    // runs them while we wait (only when there are some: a round trip less otherwise).
    wait_for_runtime_hooks_if_any(chan, spec)?;
    // hooks.createContainer run in our namespaces, before the root switch (their path is the
    // host's).
    hooks::run(&spec.hooks, "createContainer", &state)?;
    // The rootfs becomes /, and the host's root is detached: no path leads back out (`create
    // --no-pivot`, for a root on an initramfs: moved over / and chroot'ed into instead).
    enter_root(&root, supervisor, spec)?;
    // The new root shares mounts with its peers only as asked (linux.rootfsPropagation).
    rootfs::set_root_propagation(root_propagation(spec))?;
    say("pivot_root", &|| explain::pivoted(&spec.rootfs));
    // -t: a terminal from our own devpts becomes our 0, 1, 2 and controlling terminal.
    install_terminal_if_supervised(supervisor, spec)?;
    // The working directory must exist before we lose the right to create it.
    rootfs::ensure_workdir(&spec.workdir)?;
    // --read-only: every mount point exists now, so / can be frozen.
    make_root_readonly_if_asked(spec.read_only)?;
    // process.terminal: a pty from our own devpts, its master sent to the caller, the slave our
    // stdio and controlling terminal; made as root, before the identity change.
    install_console_if_asked(supervisor, spec)?;
    // Our own hostname, in our own UTS namespace (needs CAP_SYS_ADMIN: before the drop).
    namespaces::set_hostname(&spec.setup.namespaces, &spec.hostname)?;
    // Its NIS domain name too (domainname), same namespace, same right.
    namespaces::set_domainname(spec.setup.domainname.as_deref())?;
    say("hostname", &explain::hostname);
    // The new network namespace has only lo, and it starts down (--network none keeps it so).
    bring_up_loopback_if_private(&spec.network)?;
    // process.rlimits: raising a hard limit needs CAP_SYS_RESOURCE, so before the identity change.
    process::set_rlimits(&spec.setup.rlimits)?;
    // process.oomScoreAdj: lowering it needs CAP_SYS_RESOURCE too.
    process::set_oom_score_adj(spec.setup.oom_score_adj)?;
    // process.ioPriority: the real-time class needs CAP_SYS_ADMIN, so before the drop.
    sched::set_io_priority(spec.setup.attrs.io_priority)?;
    // process.scheduler: real-time policies and a negative nice need CAP_SYS_NICE.
    sched::set_scheduler(spec.setup.attrs.scheduler.as_ref())?;
    // linux.personality: the execution domain CMD runs in (LINUX32: a 32-bit uname).
    sched::set_personality(spec.setup.attrs.personality)?;
    // linux.memoryPolicy: the NUMA nodes CMD's memory comes from.
    sched::set_memory_policy(spec.setup.attrs.memory_policy.as_ref())?;
    // Start where asked, and prove the cwd is inside the container (runc CVE-2024-21626): as
    // root, before an early syscall filter may refuse getcwd (a directory only the user may
    // enter waits for the identity change, as with runc).
    let in_workdir = enter_workdir_as_root(&spec.workdir)?;
    // Without no_new_privs only a privileged process may install a syscall filter: then it goes
    // in now, while we still hold CAP_SYS_ADMIN (runc's order), and allows the steps below.
    install_seccomp_filter(prepared.filter, !spec.setup.no_new_privs)?;
    // The ceiling for this process and all it execs; needs CAP_SETPCAP, so before setuid.
    caps::limit_bounding_set(&spec.capabilities.bounding)?;
    // A non-root user asked to keep capabilities keeps its permitted set through setuid.
    caps::keep_through_setuid(&spec.capabilities)?;
    // Become the container's user: groups, gid, then uid — the point of no return.
    user::switch_to(&spec.identity)?;
    say("identity", &|| {
        explain::identity(spec.identity.name.as_deref())
    });
    // Keep exactly the asked capabilities in each set (docker's: nothing inheritable or ambient).
    caps::set_process_caps(&spec.capabilities)?;
    // setuid binaries and file capabilities can never raise privileges again (noNewPrivileges;
    // always for minibox run).
    set_no_new_privs_if_asked(spec.setup.no_new_privs)?;
    say("privileges", &explain::privileges);
    // Changing uid cleared the parent-death signal: set it again, then check minibox is alive.
    die_with_parent_if_supervised(supervisor)?;
    check_parent_alive_if_supervised(supervisor, chan)?;
    // Files CMD creates get the asked mode (process.user.umask; docker's 022 by default).
    umask(Mode::from_bits_truncate(spec.setup.umask));
    // A working directory root could not enter is entered as the user (and proved inside).
    enter_workdir_unless_entered(in_workdir, &spec.workdir)?;
    // Default signal dispositions, none blocked: as if CMD had been started afresh.
    signals::reset_for_exec()?;
    // No descriptor of ours reaches CMD: all but 0, 1, 2 close on exec (and, under `create
    // --preserve-fds N`, the caller's 3 .. 3+N).
    process::close_fds_on_exec(preserved_fds(supervisor))?;
    // Last, the syscall filter (with no_new_privs): it only has to allow what CMD does.
    install_seccomp_filter(prepared.filter, spec.setup.no_new_privs)?;
    say("seccomp", &|| explain::seccomp(prepared.filter));
    // Become CMD; the exec closes the report pipe right after this last word.
    say("exec", &|| explain::exec(&spec.args, &spec.env));
    // Under `create`, CMD must be there to run before `create` says the container is made.
    check_program_if_created(supervisor, spec)?;
    report_exec_or_ready(supervisor, chan);
    // Under `create`: wait here, set up, until `start` opens the exec FIFO.
    wait_for_start_if_created(supervisor)?;
    // hooks.startContainer run inside the container, as it is now, just before the exec.
    hooks::run(&spec.hooks, "startContainer", &started_state(&state))?;
    exec_command(spec, prepared.pid1)
}

/// The caller's directory may be closed to the container's root when it is a host-unprivileged
/// id (a user namespace): then the root stands in for it (only a bundle's hooks would use it).
fn return_to_callers_dir(spec: &ContainerSpec, prepared: &Prepared, root: &OwnedFd) -> Result<()> {
    match nix::unistd::fchdir(&prepared.host.caller_dir) {
        Err(Errno::EACCES) if spec.setup.new_user_namespace() => nix::unistd::fchdir(root)
            .context("entering the container's root (the caller's directory is closed to it)"),
        done => done.context("returning to the caller's directory"),
    }
}

fn joins_another_mount_namespace(spec: &ContainerSpec) -> bool {
    let ns = &spec.setup.namespaces;
    ns.join
        .iter()
        .any(|(k, p)| *k == Kind::Mount && !namespaces::is_callers_own(Kind::Mount, p))
}

fn enter_rootfs_if_mount_namespace_joined(
    spec: &ContainerSpec,
    prepared: &Prepared,
    another: bool,
) -> Result<()> {
    let ns = &spec.setup.namespaces;
    if !ns.has(Kind::Mount) || ns.creates(Kind::Mount) {
        return Ok(());
    }
    if !another {
        // Our own namespace: the checked descriptor, never the name a host user may swap.
        return nix::unistd::fchdir(&prepared.host.start_dir)
            .context("returning to the rootfs opened before the clone");
    }
    nix::unistd::chdir(&spec.rootfs).with_context(|| {
        format!(
            "root.path {} in the joined mount namespace: cannot enter it",
            spec.rootfs.display()
        )
    })
}

fn mount_root(spec: &ContainerSpec, prepared: &Prepared) -> Result<OwnedFd> {
    // In a user namespace of our own, the root was made by the host side (over id-mapped
    // layers): it is only attached, here in our starting directory.
    if let Some(tree) = &prepared.host.root {
        return rootfs::attach_root_to_cwd(tree);
    }
    match (prepared.layer, &prepared.host.lower) {
        (Some(layer), Some(lower)) => {
            let data_root = rootfs::open_dir(Path::new("."))?;
            rootfs::mount_overlay(&OverlayDirs {
                data_root: &data_root,
                layer: &layer.rel,
                lower,
                data_root_path: &layer.data_root,
                rootfs_path: &spec.rootfs,
            })
        }
        _ => rootfs::bind_root_from_cwd(),
    }
}

pub fn join_new_session_keyring() -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl(JOIN_SESSION_KEYRING, NULL) reads no memory of ours (a NULL name asks for
    // a new anonymous keyring) and only changes this process's keyring.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    match Errno::result(rc) {
        // A kernel without keys has nothing to leak.
        Ok(_) | Err(Errno::ENOSYS) => Ok(()),
        // Keyrings count against a quota per uid, shared with every session of that uid.
        Err(Errno::EDQUOT) => bail!(
            "keyctl(JOIN_SESSION_KEYRING): the session keyring quota of uid {} is full (see \
             /proc/key-users): a container needs one keyring; remove unused keys (keyctl \
             purge, or end the sessions holding them) or raise kernel.keys.root_maxkeys / \
             maxkeys",
            nix::unistd::getuid()
        ),
        Err(e) => Err(e).context("keyctl(JOIN_SESSION_KEYRING)"),
    }
}

fn die_with_parent_if_supervised(supervisor: &Supervisor) -> Result<()> {
    match supervisor {
        Supervisor::Minibox(_) => {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).context("prctl(PR_SET_PDEATHSIG)")
        }
        Supervisor::Caller(_) => Ok(()),
    }
}

fn check_parent_alive_if_supervised(supervisor: &Supervisor, chan: &ChildEnd) -> Result<()> {
    match supervisor {
        Supervisor::Minibox(_) => chan.check_parent_alive(),
        Supervisor::Caller(_) => Ok(()),
    }
}

fn join_new_session_keyring_unless_asked(supervisor: &Supervisor) -> Result<()> {
    match supervisor {
        Supervisor::Caller(c) if c.no_new_keyring => Ok(()),
        _ => join_new_session_keyring(),
    }
}

fn install_stdio_if_supervised(supervisor: &Supervisor, spec: &ContainerSpec) -> Result<()> {
    match supervisor {
        Supervisor::Minibox(stdio) => stdio.install(spec.identity.uid, spec.identity.gid),
        Supervisor::Caller(_) => Ok(()),
    }
}

fn mount_etc_files_unless_bundle(
    root: &OwnedFd,
    spec: &ContainerSpec,
    prepared: &Prepared,
) -> Result<()> {
    if spec.private_layer {
        rootfs::mount_etc_files(root, &prepared.host.etc, true)?;
    }
    Ok(())
}

fn install_terminal_if_supervised(supervisor: &Supervisor, spec: &ContainerSpec) -> Result<()> {
    match supervisor {
        Supervisor::Minibox(stdio) => stdio.install_terminal(spec.identity.uid),
        Supervisor::Caller(_) => Ok(()),
    }
}

fn wait_for_runtime_hooks_if_any(chan: &ChildEnd, spec: &ContainerSpec) -> Result<()> {
    if hooks::has_runtime_hooks(&spec.hooks) {
        chan.wait_for_runtime_hooks()?;
    }
    Ok(())
}

fn enter_root(root: &OwnedFd, supervisor: &Supervisor, spec: &ContainerSpec) -> Result<()> {
    match supervisor {
        _ if !spec.setup.namespaces.creates(Kind::Mount) => rootfs::chroot_into(root),
        Supervisor::Caller(c) if c.no_pivot => rootfs::move_into(root),
        _ => rootfs::pivot_into(root),
    }
}

fn make_mounts_private_if_own(spec: &ContainerSpec) -> Result<()> {
    match spec.setup.namespaces.creates(Kind::Mount) {
        true => rootfs::make_mounts_private(),
        false => Ok(()),
    }
}

fn install_console_if_asked(supervisor: &Supervisor, spec: &ContainerSpec) -> Result<()> {
    match (supervisor, spec.tty) {
        (Supervisor::Caller(c), true) => match &c.console {
            Some(socket) => console::install(socket, spec.console_size, spec.identity.uid),
            None => bail!("process.terminal is true but no --console-socket was given"),
        },
        _ => Ok(()),
    }
}

fn preserved_fds(supervisor: &Supervisor) -> u32 {
    match supervisor {
        Supervisor::Caller(c) => c.preserve_fds,
        Supervisor::Minibox(_) => 0,
    }
}

fn report_exec_or_ready(supervisor: &Supervisor, chan: &ChildEnd) {
    match supervisor {
        Supervisor::Minibox(_) => chan.report_exec(),
        Supervisor::Caller(_) => chan.report_ready(),
    }
}

fn wait_for_start_if_created(supervisor: &Supervisor) -> Result<()> {
    match supervisor {
        Supervisor::Caller(c) => c.wait_for_start(),
        Supervisor::Minibox(_) => Ok(()),
    }
}

/// The state the startContainer hooks read: the container as `start` sees it.
fn started_state(created: &str) -> String {
    created.replacen("\"status\":\"creating\"", "\"status\":\"created\"", 1)
}

fn make_root_readonly_if_asked(read_only: bool) -> Result<()> {
    if read_only {
        rootfs::make_root_readonly()?;
    }
    Ok(())
}

fn bring_up_loopback_if_private(network: &Network) -> Result<()> {
    match network {
        // (a bridge network's lo was brought up by the supervisor, with eth0)
        Network::Private => loopback::bring_up_loopback(),
        _ => Ok(()),
    }
}

fn join_network_namespace(netns: Option<&File>) -> Result<()> {
    match netns {
        Some(ns) => nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .context("setns into the network namespace to share"),
        None => Ok(()),
    }
}

pub fn install_seccomp_filter(filter: Option<&seccomp::Program>, now: bool) -> Result<()> {
    match filter {
        Some(program) if now => seccomp::install(program),
        _ => Ok(()),
    }
}

fn set_no_new_privs_if_asked(asked: bool) -> Result<()> {
    if !asked {
        return Ok(());
    }
    set_no_new_privs()
}

pub fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().context("prctl(PR_SET_NO_NEW_PRIVS)")
}

fn root_propagation(spec: &ContainerSpec) -> Option<nix::mount::MsFlags> {
    spec.setup
        .rootfs_propagation
        .as_deref()
        .and_then(crate::kernel::mounts::propagation)
}

/// True once entered; false when root may not enter it (a directory only the user may: NFS
/// root squash, a mode of 0700 for the user with no CAP_DAC_OVERRIDE).
fn enter_workdir_as_root(workdir: &Path) -> Result<bool> {
    match std::env::set_current_dir(workdir) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Ok(false),
        _ => enter_workdir(workdir).map(|()| true),
    }
}

fn enter_workdir_unless_entered(entered: bool, workdir: &Path) -> Result<()> {
    match entered {
        true => Ok(()),
        false => enter_workdir(workdir),
    }
}

pub fn enter_workdir(workdir: &Path) -> Result<()> {
    std::env::set_current_dir(workdir)
        .with_context(|| format!("cannot enter the working directory {}", workdir.display()))?;
    // getcwd fails (ENOENT, "(unreachable)") when the cwd is not under our root.
    match std::env::current_dir() {
        Ok(cwd) if cwd.is_absolute() => Ok(()),
        _ => bail!(
            "the working directory {} is outside the container",
            workdir.display()
        ),
    }
}

/// `--init`: the sealed init (`pid1`) becomes PID 1, told to run CMD at `path`.
fn exec_pid1(
    pid1: &OwnedFd,
    path: &CStr,
    argv: &[CString],
    envp: &[CString],
) -> Result<Infallible> {
    let argv = pid1::argv(path, argv);
    let Err(errno) = execveat(pid1, c"", &argv, envp, AtFlags::AT_EMPTY_PATH);
    Err(errno).context("cannot start the container's init (--init): execveat of its memfd")
}

fn cstrings(items: &[String], what: &str) -> Result<Vec<CString>> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_str()).with_context(|| format!("{what} {s:?} contains a NUL byte"))
        })
        .collect()
}

/// `execve` CMD. A CMD without `/` is looked up in the container's `PATH`, as a shell would.
/// With `--init`, the init is exec'd instead, with CMD's resolved path. Only returns on
/// failure, with docker's status: 127 not found, 126 not executable.
pub fn exec_command(spec: &ContainerSpec, pid1: Option<&OwnedFd>) -> Result<Infallible> {
    let argv = cstrings(&spec.args, "argument")?;
    let envp = cstrings(&spec.env, "environment entry")?;
    let candidates = program_candidates(spec);
    let mut first_error = Errno::ENOENT;
    for candidate in &candidates {
        let path = CString::new(candidate.as_str()).context("CMD contains a NUL byte")?;
        let errno = match pid1 {
            None => {
                let Err(errno) = execve(&path, &argv, &envp);
                errno
            }
            // The init execs CMD; here CMD need only be there and executable, so that a
            // missing one still fails the start with its own status.
            Some(pid1) => match access(path.as_c_str(), AccessFlags::X_OK) {
                Ok(()) => return exec_pid1(pid1, &path, &argv, &envp),
                Err(errno) => errno,
            },
        };
        if first_error == Errno::ENOENT {
            first_error = errno;
        }
    }
    Err(cannot_run(spec, &candidates, first_error))
}

/// Where CMD may be: itself when it holds a `/`, else each directory of the container's PATH.
fn program_candidates(spec: &ContainerSpec) -> Vec<String> {
    let cmd = &spec.args[0];
    if cmd.contains('/') {
        return vec![cmd.clone()];
    }
    let path = spec
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| format!("{d}/{cmd}"))
        .collect()
}

/// Under `create`: a CMD that cannot run is said now, by `create` (runc's order), not by a
/// `start` that would then report success.
fn check_program_if_created(supervisor: &Supervisor, spec: &ContainerSpec) -> Result<()> {
    if let Supervisor::Minibox(_) = supervisor {
        return Ok(());
    }
    let candidates = program_candidates(spec);
    let mut first_error = Errno::ENOENT;
    for candidate in &candidates {
        match access(Path::new(candidate), AccessFlags::X_OK) {
            Ok(()) => return Ok(()),
            Err(errno) if first_error == Errno::ENOENT => first_error = errno,
            Err(_) => {}
        }
    }
    Err(cannot_run(spec, &candidates, first_error))
}

/// docker's statuses for a CMD that does not run: 127 not found, 126 not executable.
fn cannot_run(spec: &ContainerSpec, candidates: &[String], first_error: Errno) -> anyhow::Error {
    let cmd = &spec.args[0];
    let (code, why) = match first_error {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP => {
            let exists = candidates.iter().any(|c| Path::new(c).exists());
            // (runc's words, "no such file or directory" and "executable file not found",
            // are what engines read to answer 127: Docker's `docker run` does.)
            let why = if exists {
                "no such file or directory: it exists, but the program loader it names is \
                 missing in the rootfs (link it statically, or add its libraries)"
            } else if cmd.contains('/') {
                "no such file or directory in the container's rootfs; give CMD as a path \
                 inside ROOTFS"
            } else {
                "executable file not found in the container's PATH; give CMD as a path inside \
                 ROOTFS"
            };
            (status::NOT_FOUND, why.to_string())
        }
        errno => (
            status::CANNOT_EXECUTE,
            // (lower case, as Go's errors read: the docker CLI matches "permission denied")
            format!("it cannot be executed: {}", errno.desc().to_lowercase()),
        ),
    };
    let message = format!(
        "cannot run {cmd:?} in container {}: {why}",
        spec.display_name()
    );
    anyhow::Error::new(StatusError { code, message })
}
