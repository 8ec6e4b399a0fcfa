//! Kernel objects, one module each: namespaces, the root filesystem and its mounts,
//! capabilities, cgroups, the network namespace and its published ports, seccomp, the
//! container's pty.

pub mod caps;
pub mod cgroup;
pub mod console;
pub mod mounts;
pub mod namespaces;
pub mod net;
pub mod netlink;
pub mod nft;
pub mod process;
pub mod pty;
pub mod relay;
pub mod rootfs;
pub mod seccomp;
