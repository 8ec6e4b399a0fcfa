//! Namespaces: what the container sees of the machine.
//!
//! The container's first process is born in new mount, PID, UTS, IPC and network namespaces by
//! one `clone(2)`. `clone` rather than `unshare`: a new PID namespace applies only to children,
//! and this way the container's first process is its PID 1. The cgroup namespace comes later,
//! from the child itself, once it is in its own cgroup.

use anyhow::{Context, Result};
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use crate::kernel::net::Network;

/// The namespaces a container gets: all of them, but a new network one when it uses the
/// host's or another container's.
pub fn container_namespaces(network: &Network) -> CloneFlags {
    let all = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET;
    // container:NAME and a bundle's namespace path: init joins an existing one instead.
    if network.has_own_namespace() {
        all
    } else {
        all - CloneFlags::CLONE_NEWNET
    }
}

/// A new cgroup namespace makes the group we are in now the root of what we see of cgroups:
/// the container cannot see or name the host's groups.
pub fn enter_cgroup_namespace() -> Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).context("unshare(CLONE_NEWCGROUP)")
}

/// Size of the stack the child starts on; it only needs to run init's setup before `execve`.
const CHILD_STACK: usize = 1 << 20;

/// Starts `child` as a new process in fresh namespaces and returns its pid (on the host).
/// The child gets a copy of our memory, as with fork; it must end in `execve` or `_exit`.
pub fn clone_into_new_namespaces(flags: CloneFlags, child: impl FnMut() -> isize) -> Result<Pid> {
    // The stack is only touched by the child, in its own copy of our address space.
    let mut stack = vec![0u8; CHILD_STACK];
    // SAFETY: this process is single-threaded here (no lock can be held by another thread in
    // the child's copy), the stack is large enough for init's setup, and the child never
    // returns into our frames: it runs `child` on its own stack and exits or execs.
    let pid = unsafe { nix::sched::clone(Box::new(child), &mut stack, flags, Some(libc::SIGCHLD)) };
    pid.context("clone() of the container's first process with new namespaces")
}

/// The container's hostname lives in its own UTS namespace; the host's is untouched.
pub fn set_hostname(name: &str) -> Result<()> {
    nix::unistd::sethostname(name).with_context(|| format!("sethostname({name:?})"))
}
