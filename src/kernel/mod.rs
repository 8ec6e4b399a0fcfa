//! Kernel objects, one module each: namespaces, the root filesystem and its mounts,
//! capabilities, cgroups, the loopback of a new network namespace and netlink, seccomp, the
//! container's pty; and the files minibox writes for a user (`outfile`).

pub mod caps;
pub mod cgroup;
pub mod console;
pub mod copy;
pub mod du;
pub mod fds;
pub mod host_path;
pub mod loopback;
pub mod mount_api;
pub mod mount_attr;
pub mod mounts;
pub mod namespaces;
pub mod net_devices;
pub mod netlink;
pub mod nftables;
pub mod outfile;
pub mod overlay;
pub mod process;
pub mod pty;
pub mod rootfs;
pub mod sched;
pub mod seccomp;
pub mod shared_root;
