//! Host paths others can change, opened once.
//!
//! A path that a host user can rename (its parent is theirs) may be swapped for a symlink to
//! `/` between a check by name and a use by name. So each such path is opened once, the
//! *opened object* is checked (its type, that it is not the host's `/`, where it sits), and
//! from then on only the descriptor is used. The path was resolved when the user's words were
//! read (`canonicalize`); it is opened with no symlink followed anywhere on its way
//! (`RESOLVE_NO_SYMLINKS`), so a link that appears there meanwhile is refused, not followed.

use std::collections::HashSet;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat};

/// A file's identity on this host: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
}

impl Identity {
    pub fn of(fd: &impl AsFd) -> nix::Result<Identity> {
        fstat(fd.as_fd()).map(|st| Identity::from_stat(&st))
    }

    pub fn from_stat(st: &FileStat) -> Identity {
        Identity {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// A host path, opened: the object itself (`O_PATH`, a symlink never followed), and what it
/// was when opened.
pub struct Opened {
    pub fd: OwnedFd,
    pub stat: FileStat,
}

impl Opened {
    pub fn identity(&self) -> Identity {
        Identity::from_stat(&self.stat)
    }

    pub fn is_dir(&self) -> bool {
        self.stat.st_mode & libc::S_IFMT == libc::S_IFDIR
    }
}

fn no_symlinks(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Opens the absolute, already resolved `path` without following a symlink anywhere on its
/// way: its parent directory, then the entry itself from that directory. `ELOOP` means a
/// symlink is there now (the path changed since it was resolved).
pub fn open_resolved(path: &Path) -> nix::Result<Opened> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        // `/` itself: its own parent.
        _ => (Path::new("/"), std::ffi::OsStr::new(".")),
    };
    let dir = openat2(
        nix::fcntl::AT_FDCWD,
        parent,
        no_symlinks(OFlag::O_PATH | OFlag::O_DIRECTORY),
    )?;
    let how = no_symlinks(OFlag::O_PATH | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = openat2(dir.as_fd(), name, how)?;
    let stat = fstat(&fd)?;
    if stat.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(Errno::ELOOP);
    }
    Ok(Opened { fd, stat })
}

/// Opens `rel` below the directory `dir` (no `..` out of it, no symlink followed).
pub fn open_beneath(dir: &impl AsFd, rel: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    openat2(dir.as_fd(), rel, how)
}

/// The identities of the directory `dir` and of every directory above it, up to this
/// process's root (`..` from a descriptor: the names on the way are never looked at).
pub fn ancestors(dir: &impl AsFd) -> nix::Result<HashSet<Identity>> {
    let mut seen = HashSet::new();
    let mut here = Identity::of(dir)?;
    let mut cur: Option<OwnedFd> = None;
    // A path deeper than this is a loop of bind mounts, not a directory tree.
    for _ in 0..4096 {
        seen.insert(here);
        let up = match &cur {
            Some(fd) => open_up(fd)?,
            None => open_up(dir)?,
        };
        let above = Identity::of(&up)?;
        if above == here {
            return Ok(seen);
        }
        here = above;
        cur = Some(up);
    }
    Err(Errno::ELOOP)
}

fn open_up(dir: &impl AsFd) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        dir.as_fd(),
        "..",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
}

/// The identity of this process's `/`.
pub fn host_root() -> nix::Result<Identity> {
    let fd = openat2(
        nix::fcntl::AT_FDCWD,
        "/",
        no_symlinks(OFlag::O_PATH | OFlag::O_DIRECTORY),
    )?;
    Identity::of(&fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_on_the_way_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("f"), "x").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("root")).unwrap();
        assert!(open_resolved(&real).unwrap().is_dir());
        assert!(!open_resolved(&real.join("f")).unwrap().is_dir());
        assert_eq!(
            open_resolved(&dir.path().join("link")).err(),
            Some(Errno::ELOOP)
        );
        assert_eq!(
            open_resolved(&dir.path().join("link/f")).err(),
            Some(Errno::ELOOP)
        );
        assert_eq!(
            open_resolved(&dir.path().join("root")).err(),
            Some(Errno::ELOOP)
        );
        assert_eq!(
            open_resolved(&dir.path().join("none")).err(),
            Some(Errno::ENOENT)
        );
    }

    #[test]
    fn ancestors_reach_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let opened = open_resolved(&deep).unwrap();
        let up = ancestors(&opened.fd).unwrap();
        let base = open_resolved(dir.path()).unwrap().identity();
        assert!(up.contains(&base));
        assert!(up.contains(&host_root().unwrap()));
        assert!(up.contains(&opened.identity()));
        let other = tempfile::tempdir().unwrap();
        let elsewhere = open_resolved(other.path()).unwrap();
        assert!(!ancestors(&elsewhere.fd).unwrap().contains(&base));
        assert_eq!(
            open_beneath(&opened.fd, "../b", OFlag::O_PATH).err(),
            Some(Errno::EXDEV)
        );
    }
}
