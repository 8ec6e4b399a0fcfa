//! The new mount API: mounts made from descriptors, never from paths (Linux ≥ 5.2;
//! `mount_setattr` ≥ 5.12).
//!
//! `open_tree(OPEN_TREE_CLONE)` copies the mount tree at an opened — and checked — descriptor
//! into a *detached* tree that only its own descriptor reaches; `mount_setattr` sets flags on
//! that tree, every submount included (`AT_RECURSIVE`), before anyone can see it; `move_mount`
//! attaches it on a target that is itself an opened descriptor. No path is looked up between
//! the check and the mount, so none can be swapped.
//!
//! nix 0.32 has none of these calls: they are made with `libc::syscall`, here and only here.
//! An id-mapped mount is one more attribute: `MOUNT_ATTR_IDMAP` with a user namespace's
//! descriptor in `mount_attr.userns_fd` (`set_idmap`), set on a detached tree before it is
//! attached. A whole filesystem can be made detached too (`fsopen`/`fsconfig`/`fsmount`,
//! `Fs`): an overlay over id-mapped layers, made by the host's root, attached by the container.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::mount::MsFlags;

// <linux/mount.h>
const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// `MOUNT_ATTR_*`: a mount's flags as the new API names them.
pub mod attr {
    pub const RDONLY: u64 = 0x0000_0001;
    pub const NOSUID: u64 = 0x0000_0002;
    pub const NODEV: u64 = 0x0000_0004;
    pub const NOEXEC: u64 = 0x0000_0008;
    /// The atime mode is one value in these bits (relatime is 0).
    pub const ATIME: u64 = 0x0000_0070;
    pub const RELATIME: u64 = 0x0000_0000;
    pub const NOATIME: u64 = 0x0000_0010;
    pub const STRICTATIME: u64 = 0x0000_0020;
    pub const NODIRATIME: u64 = 0x0000_0080;
    /// The mount shows files through a user namespace's id maps (`userns_fd`).
    pub const IDMAP: u64 = 0x0010_0000;
}

/// What `mount_setattr` changes on a tree: flags set, flags cleared, and the propagation
/// (`MS_PRIVATE`, `MS_SLAVE`, `MS_SHARED`, `MS_UNBINDABLE`; empty: unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    pub set: u64,
    pub clear: u64,
    pub propagation: MsFlags,
}

impl Default for Attrs {
    fn default() -> Attrs {
        Attrs {
            set: 0,
            clear: 0,
            propagation: MsFlags::empty(),
        }
    }
}

impl Attrs {
    /// mount(2)'s flags as attributes: `set` turned on, `clear` turned off. Of the atime
    /// modes, strictatime wins over noatime, noatime over relatime (as mount(2) decides).
    pub fn from_flags(set: MsFlags, clear: MsFlags) -> Attrs {
        let mut a = Attrs::default();
        for (ms, bit) in [
            (MsFlags::MS_RDONLY, attr::RDONLY),
            (MsFlags::MS_NOSUID, attr::NOSUID),
            (MsFlags::MS_NODEV, attr::NODEV),
            (MsFlags::MS_NOEXEC, attr::NOEXEC),
            (MsFlags::MS_NODIRATIME, attr::NODIRATIME),
        ] {
            if set.contains(ms) {
                a.set |= bit;
            } else if clear.contains(ms) {
                a.clear |= bit;
            }
        }
        let atime = if set.contains(MsFlags::MS_STRICTATIME) {
            Some(attr::STRICTATIME)
        } else if set.contains(MsFlags::MS_NOATIME) {
            Some(attr::NOATIME)
        } else if set.contains(MsFlags::MS_RELATIME)
            || clear.intersects(MsFlags::MS_NOATIME | MsFlags::MS_STRICTATIME)
        {
            // `atime`/`nostrictatime` go back to the kernel's default, relatime.
            Some(attr::RELATIME)
        } else {
            None
        };
        if let Some(mode) = atime {
            a.clear |= attr::ATIME;
            a.set |= mode;
        }
        a
    }

    pub fn with(mut self, set: u64) -> Attrs {
        self.set |= set;
        self.clear &= !set;
        self
    }
}

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn path_arg(path: &str) -> nix::Result<CString> {
    CString::new(path).map_err(|_| Errno::EINVAL)
}

/// A descriptor a syscall just returned, owned.
fn owned(rc: libc::c_long) -> nix::Result<OwnedFd> {
    let fd = Errno::result(rc)? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `open_tree(from, "", OPEN_TREE_CLONE)`: a detached copy of the mount at `from` (with its
/// submounts when `recursive`), reachable only through the returned descriptor until attached.
pub fn clone_tree(from: &impl AsFd, recursive: bool) -> nix::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let empty = path_arg("")?;
    // SAFETY: open_tree reads the NUL-terminated empty path, which outlives the call, and
    // returns a new descriptor or an error; it writes no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            from.as_fd().as_raw_fd(),
            empty.as_ptr(),
            flags,
        )
    };
    owned(rc)
}

/// `mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE)`: `attrs` on the mount at `tree` and
/// on every mount below it.
pub fn set_attrs(tree: &impl AsFd, attrs: &Attrs) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: attrs.set,
        attr_clr: attrs.clear,
        propagation: attrs.propagation.bits(),
        userns_fd: 0,
    };
    let empty = path_arg("")?;
    let flags = (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint;
    // SAFETY: mount_setattr reads `attr` (its size given) and the empty path, both alive for
    // the call; it writes no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_fd().as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

/// `mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, {MOUNT_ATTR_IDMAP, userns})`: the
/// detached tree (never attached yet) shows every file through `userns`'s id maps: an owner `N`
/// on disk is the host's id that `N` maps to (and a write as that host id stores `N`).
pub fn set_idmap(tree: &impl AsFd, userns: &impl AsFd) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: attr::IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_fd().as_raw_fd() as u64,
    };
    let empty = path_arg("")?;
    let flags = (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint;
    // SAFETY: as in `set_attrs`: the kernel reads `attr` and the empty path, alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_fd().as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

// <linux/mount.h>: the filesystem context calls.
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;

/// A filesystem being configured (`fsopen`), to become a detached mount (`mount`).
pub struct Fs(OwnedFd);

impl Fs {
    /// `fsopen(fstype)`.
    pub fn open(fstype: &str) -> nix::Result<Fs> {
        let name = path_arg(fstype)?;
        // SAFETY: fsopen reads the NUL-terminated name, alive for the call, and returns a new
        // descriptor or an error.
        owned(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) }).map(Fs)
    }

    /// `fsconfig(FSCONFIG_SET_STRING, key, value)`: one option (`lowerdir+`, `upperdir`...).
    pub fn set(&self, key: &str, value: &str) -> nix::Result<()> {
        let (k, v) = (path_arg(key)?, path_arg(value)?);
        // SAFETY: fsconfig reads the two NUL-terminated strings, alive for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                FSCONFIG_SET_STRING,
                k.as_ptr(),
                v.as_ptr(),
                0,
            )
        };
        Errno::result(rc).map(drop)
    }

    /// `fsconfig(FSCONFIG_CMD_CREATE)` then `fsmount`: the filesystem, as a detached mount
    /// carrying `attrs` (`MOUNT_ATTR_*`). On failure, the kernel's own words (its log on the
    /// context) come with the error.
    pub fn mount(self, attrs: u64) -> Result<OwnedFd, (Errno, String)> {
        // SAFETY: CMD_CREATE takes no pointer.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                self.0.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                std::ptr::null::<libc::c_char>(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        };
        if let Err(e) = Errno::result(rc) {
            return Err((e, self.log()));
        }
        // SAFETY: fsmount takes the context's descriptor and flags, and returns a descriptor.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                self.0.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                attrs,
            )
        };
        owned(rc).map_err(|e| (e, self.log()))
    }

    /// What the kernel logged on the context ("e overlayfs: ..."), one message per line.
    fn log(&self) -> String {
        let mut lines = vec![];
        let mut buf = [0u8; 1024];
        while let Ok(n) = nix::unistd::read(&self.0, &mut buf) {
            if n == 0 {
                break;
            }
            lines.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
        }
        lines.join("; ")
    }
}

/// `move_mount(tree, "", target, "")`: attaches the (detached) tree at `tree` on the file
/// `target` holds, or moves an attached one there.
pub fn attach(tree: &impl AsFd, target: &impl AsFd) -> nix::Result<()> {
    let empty = path_arg("")?;
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: move_mount reads the two empty paths, alive for the call, and writes nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_fd().as_raw_fd(),
            empty.as_ptr(),
            target.as_fd().as_raw_fd(),
            empty.as_ptr(),
            flags,
        )
    };
    Errno::result(rc).map(drop)
}

/// `move_mount(tree, "", AT_FDCWD, "")`: attaches the tree on our working directory itself,
/// looking no name up (so needing no right to search it: a user namespace's root may have
/// none on a host directory).
pub fn attach_to_cwd(tree: &impl AsFd) -> nix::Result<()> {
    let empty = path_arg("")?;
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: move_mount reads the two empty paths, alive for the call, and writes nothing.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_fd().as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            empty.as_ptr(),
            flags,
        )
    };
    Errno::result(rc).map(drop)
}

/// `fsopen(fstype)` + one `fsconfig` per `(key, value)` option + `fsmount`: a new, *detached*
/// mount of a new superblock, reachable only through the returned descriptor (its root),
/// carrying `attrs` (`MOUNT_ATTR_*`).
pub fn new_detached(fstype: &str, options: &[(&str, &str)], attrs: u64) -> nix::Result<OwnedFd> {
    let fs = Fs::open(fstype)?;
    for (key, value) in options {
        fs.set(key, value)?;
    }
    fs.mount(attrs).map_err(|(e, _)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_attributes() {
        let a = Attrs::from_flags(
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            MsFlags::empty(),
        );
        assert_eq!(
            a.set,
            attr::RDONLY | attr::NOSUID | attr::NODEV | attr::NOEXEC
        );
        assert_eq!(a.clear, 0);
        let a = Attrs::from_flags(MsFlags::MS_NODEV, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!((a.set, a.clear), (attr::NODEV, attr::RDONLY | attr::NOSUID));
    }

    #[test]
    fn one_atime_mode_is_chosen() {
        let a = Attrs::from_flags(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME, MsFlags::empty());
        assert_eq!((a.set, a.clear), (attr::NOATIME, attr::ATIME));
        let a = Attrs::from_flags(
            MsFlags::MS_STRICTATIME | MsFlags::MS_NOATIME,
            MsFlags::empty(),
        );
        assert_eq!(a.set, attr::STRICTATIME);
        let a = Attrs::from_flags(MsFlags::empty(), MsFlags::MS_NOATIME);
        assert_eq!((a.set, a.clear), (attr::RELATIME, attr::ATIME));
        let a = Attrs::from_flags(MsFlags::MS_NODIRATIME, MsFlags::empty());
        assert_eq!((a.set, a.clear), (attr::NODIRATIME, 0));
        assert_eq!(
            Attrs::from_flags(MsFlags::empty(), MsFlags::empty()),
            Attrs::default()
        );
    }

    #[test]
    fn with_adjusts_the_set() {
        let a = Attrs::from_flags(MsFlags::empty(), MsFlags::MS_NODEV).with(attr::NODEV);
        assert_eq!((a.set, a.clear), (attr::NODEV, 0));
    }

    #[test]
    fn a_detached_tree_takes_flags_recursively() {
        if !nix::unistd::geteuid().is_root() {
            return; // the integration tests (root, in CI) cover it
        }
        let dir = tempfile::tempdir().unwrap();
        let fd = nix::fcntl::open(
            dir.path(),
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        let tree = clone_tree(&fd, true).unwrap();
        set_attrs(&tree, &Attrs::default().with(attr::RDONLY)).unwrap();
        let made =
            nix::sys::stat::mkdirat(&tree, "x", nix::sys::stat::Mode::from_bits_truncate(0o755));
        assert_eq!(made, Err(Errno::EROFS));
        assert!(!dir.path().join("x").exists());
    }
}
