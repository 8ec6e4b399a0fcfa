//! overlayfs's rules, for the code that reads and writes layers by hand: a character device
//! 0:0 hides a name below (a whiteout), the attribute `trusted.overlay.opaque=y` hides a
//! directory's contents below; and what one layer says of a path, each component opened with
//! `O_NOFOLLOW` (layers are shaped by images and containers, never trusted).

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode};

/// overlayfs's opaque-directory attribute.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Opens directory `name` under `at` (or the path `name` when `at` is None), never through a
/// symlink.
pub fn open_dir(at: Option<&OwnedFd>, name: &OsStr) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match at {
        Some(at) => openat(at, name, flags, Mode::empty()),
        None => nix::fcntl::open(name, flags, Mode::empty()),
    }
}

/// overlayfs's whiteout: a character device 0:0.
pub fn is_whiteout(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

/// Reads an extended attribute of an open file; `None` when it has none.
pub fn get_xattr(fd: i32, name: &str) -> Option<Vec<u8>> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: fd is open; cname is NUL-terminated; buf is a writable buffer of buf.len() bytes.
    let rc = unsafe { libc::fgetxattr(fd, cname.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        return None;
    }
    buf.truncate(rc as usize);
    Some(buf)
}

/// Whether one layer decides what a path is in the merged view.
#[derive(Debug, PartialEq, Eq)]
pub enum Presence {
    /// The layer has the path: read it there.
    Here,
    /// A whiteout in the layer hides it.
    Hidden,
    /// The layer says nothing: look below.
    Absent,
    /// Not here, and an opaque directory on its way hides the layers below.
    AbsentOpaque,
}

/// What `layer` says of `rel` (components walked with `O_NOFOLLOW`; a symlink on the way
/// counts as the layer's answer).
pub fn presence(layer: &Path, rel: &str) -> Presence {
    let Ok(mut cur) = open_dir(None, layer.as_os_str()) else {
        return Presence::Absent;
    };
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let mut opaque = false;
    for (i, part) in parts.iter().enumerate() {
        let os = OsStr::new(part);
        let st = match fstatat(&cur, os, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(_) if opaque => return Presence::AbsentOpaque,
            Err(_) => return Presence::Absent,
        };
        if is_whiteout(&st) {
            return Presence::Hidden;
        }
        if i + 1 == parts.len() || st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Presence::Here;
        }
        cur = match open_dir(Some(&cur), os) {
            Ok(fd) => fd,
            Err(_) => return Presence::Here,
        };
        opaque = get_xattr(cur.as_raw_fd(), OPAQUE_XATTR).as_deref() == Some(b"y");
    }
    Presence::Here
}
