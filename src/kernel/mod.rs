//! Kernel objects, one module each: namespaces, the root filesystem and its mounts,
//! capabilities, cgroups, the network namespace and its published ports.

pub mod caps;
pub mod cgroup;
pub mod console;
pub mod namespaces;
pub mod net;
pub mod rootfs;
