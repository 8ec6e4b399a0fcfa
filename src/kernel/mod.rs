//! Kernel objects, one module each: namespaces, the root filesystem and its mounts,
//! capabilities, cgroups, the loopback of a new network namespace and netlink, seccomp, the
//! container's pty.

pub mod caps;
pub mod cgroup;
pub mod console;
pub mod copy;
pub mod loopback;
pub mod mounts;
pub mod namespaces;
pub mod netlink;
pub mod overlay;
pub mod process;
pub mod pty;
pub mod rootfs;
pub mod seccomp;
