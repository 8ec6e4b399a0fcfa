//! Copying a tree of files between two directories held by descriptor (`minibox cp`): every
//! entry is reached from its parent's descriptor one name at a time with `O_NOFOLLOW`, so a
//! symlink is copied as a symlink and never followed, and nothing a container does to its paths
//! meanwhile can send a read or a write anywhere but below the directories given.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, FileStat, Mode};
use nix::unistd::{fchown, fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

/// How `cp` copies.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// `-a`: keep each file's owner (otherwise the copier's).
    pub archive: bool,
    /// Into a container with a user namespace: its ids start at these host ids (`size` of
    /// them). A copy belongs to its root (`uid`, `gid`), or with `-a` keeps its owner as
    /// the container sees it (shifted into the range).
    pub into_range: Option<IdShift>,
}

/// A user namespace's one map line: container ids `0..size` are host ids `uid..`, `gid..`.
#[derive(Debug, Clone, Copy)]
pub struct IdShift {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

impl IdShift {
    /// The host ids of the container's `uid`, `gid` (unmapped ones: its nobody's).
    fn host(&self, uid: u32, gid: u32) -> (u32, u32) {
        let shift = |base: u32, id: u32| match id < self.size {
            true => base + id,
            false => base + 65534.min(self.size - 1),
        };
        (shift(self.uid, uid), shift(self.gid, gid))
    }
}

impl CopyOptions {
    /// The owner a copy of a file owned by `uid`/`gid` gets (`None`: the copier's).
    fn owner(&self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        match (self.archive, self.into_range) {
            (true, None) => Some((uid, gid)),
            (true, Some(r)) => Some(r.host(uid, gid)),
            (false, Some(r)) => Some(r.host(0, 0)),
            (false, None) => None,
        }
    }
}

/// What one copy did: files, directories and links made, and the special files left out.
#[derive(Debug, Default)]
pub struct Copied {
    pub bytes: u64,
    pub skipped: Vec<String>,
}

const READ: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_NONBLOCK);

/// The kind of `name` in `dir`, not following a symlink (`.` is `dir` itself).
pub fn stat_at(dir: &impl AsFd, name: &OsStr) -> nix::Result<FileStat> {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

pub fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Opens directory `name` of `dir` for listing, never through a symlink.
pub fn open_dir_at(dir: &impl AsFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Copies `src_name` of `src_dir` to `dst_name` of `dst_dir`: a file's bytes, a directory with
/// everything below it, a symlink as a symlink. An existing file or link at the destination is
/// replaced; an existing directory receives the source directory's entries.
pub fn copy_entry(
    src_dir: &impl AsFd,
    src_name: &OsStr,
    dst_dir: &impl AsFd,
    dst_name: &OsStr,
    opts: CopyOptions,
    copied: &mut Copied,
    shown: &str,
) -> Result<()> {
    let st = stat_at(src_dir, src_name).with_context(|| format!("{shown}: cannot read it"))?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => copy_file(
            src_dir, src_name, dst_dir, dst_name, &st, opts, copied, shown,
        ),
        libc::S_IFDIR => {
            make_dir(dst_dir, dst_name, &st, shown)?;
            let src = open_dir_at(src_dir, src_name)
                .with_context(|| format!("{shown}: cannot open the directory"))?;
            let dst = open_dir_at(dst_dir, dst_name).with_context(|| {
                format!("{shown}: the destination is not a directory (a symlink is never followed)")
            })?;
            copy_contents(&src, &dst, opts, copied, shown)?;
            finish(&dst, &st, opts, shown)
        }
        libc::S_IFLNK => {
            let target = readlinkat(src_dir, src_name)
                .with_context(|| format!("{shown}: cannot read the symlink"))?;
            replace_non_dir(dst_dir, dst_name, shown)?;
            symlinkat(target.as_os_str(), dst_dir, dst_name)
                .with_context(|| format!("{shown}: cannot make the symlink"))?;
            if let Some((uid, gid)) = opts.owner(st.st_uid, st.st_gid) {
                fchownat(
                    dst_dir,
                    dst_name,
                    Some(Uid::from_raw(uid)),
                    Some(Gid::from_raw(gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .with_context(|| format!("{shown}: cannot set the symlink's owner"))?;
            }
            Ok(())
        }
        // Devices, FIFOs and sockets are not files to copy: said, and left out.
        _ => {
            copied.skipped.push(shown.to_string());
            Ok(())
        }
    }
}

/// Copies every entry of directory `src` into directory `dst`.
pub fn copy_contents(
    src: &OwnedFd,
    dst: &OwnedFd,
    opts: CopyOptions,
    copied: &mut Copied,
    shown: &str,
) -> Result<()> {
    let mut names: Vec<OsString> = vec![];
    let listing = nix::dir::Dir::from_fd(nix::unistd::dup(src)?)
        .with_context(|| format!("{shown}: cannot list it"))?;
    let mut listing = listing;
    for entry in listing.iter() {
        let entry = entry.with_context(|| format!("{shown}: cannot list it"))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_os_string());
        }
    }
    names.sort();
    for name in names {
        let below = format!("{}/{}", shown.trim_end_matches('/'), name.to_string_lossy());
        copy_entry(src, &name, dst, &name, opts, copied, &below)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn copy_file(
    src_dir: &impl AsFd,
    src_name: &OsStr,
    dst_dir: &impl AsFd,
    dst_name: &OsStr,
    st: &FileStat,
    opts: CopyOptions,
    copied: &mut Copied,
    shown: &str,
) -> Result<()> {
    let mut src = File::from(
        openat(src_dir, src_name, READ, Mode::empty())
            .with_context(|| format!("{shown}: cannot open it"))?,
    );
    // The very file that was looked at (a swap in between is refused, not followed).
    let opened = fstat(&src)?;
    if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino) {
        bail!("{shown} changed while it was copied: copy it again");
    }
    let flags = OFlag::O_WRONLY
        | OFlag::O_CREAT
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        | OFlag::O_NOCTTY
        | OFlag::O_NONBLOCK;
    let create = || openat(dst_dir, dst_name, flags, Mode::from_bits_truncate(0o600));
    let dst = match create() {
        // A symlink (or a special file) where the file goes: it is replaced, never followed.
        Err(Errno::ELOOP) | Err(Errno::ENXIO) | Err(Errno::EISDIR) => {
            replace_non_dir(dst_dir, dst_name, shown)?;
            create()
        }
        other => other,
    }
    .with_context(|| format!("{shown}: cannot write the copy"))?;
    let mut dst = File::from(dst);
    if fstat(&dst)?.st_mode & libc::S_IFMT != libc::S_IFREG {
        bail!("{shown}: the destination is not a regular file; remove it first");
    }
    dst.set_len(0)?;
    copied.bytes +=
        std::io::copy(&mut src, &mut dst).with_context(|| format!("{shown}: copying its bytes"))?;
    finish(&dst, st, opts, shown)
}

/// A directory at the destination: made (its mode set at the end), or one already there.
fn make_dir(dst_dir: &impl AsFd, dst_name: &OsStr, st: &FileStat, shown: &str) -> Result<()> {
    let mode = Mode::from_bits_truncate(0o700 | (st.st_mode & 0o777));
    match mkdirat(dst_dir, dst_name, mode) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("{shown}: cannot make the directory")),
    }
}

/// Removes a file or symlink where a copy goes (a directory stays: it is an error to put a
/// file there).
fn replace_non_dir(dst_dir: &impl AsFd, dst_name: &OsStr, shown: &str) -> Result<()> {
    match stat_at(dst_dir, dst_name) {
        Err(Errno::ENOENT) => Ok(()),
        Ok(st) if is_dir(&st) => {
            bail!("{shown}: cannot overwrite a directory with a non-directory")
        }
        Ok(_) => unlinkat(dst_dir, dst_name, UnlinkatFlags::NoRemoveDir)
            .with_context(|| format!("{shown}: cannot replace what is there")),
        Err(e) => Err(e).with_context(|| format!("{shown}: cannot read the destination")),
    }
}

/// The copy's mode (setuid and setgid bits only with `-a`) and, with `-a`, its owner.
fn finish(dst: &impl AsFd, st: &FileStat, opts: CopyOptions, shown: &str) -> Result<()> {
    if let Some((uid, gid)) = opts.owner(st.st_uid, st.st_gid) {
        fchown(
            dst.as_fd(),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
        )
        .with_context(|| format!("{shown}: cannot set the owner"))?;
    }
    let keep = if opts.archive { 0o7777 } else { 0o1777 };
    fchmod(dst.as_fd(), Mode::from_bits_truncate(st.st_mode & keep))
        .with_context(|| format!("{shown}: cannot set the mode"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_into_a_range_belong_to_its_ids() {
        let range = Some(IdShift {
            uid: 100000,
            gid: 200000,
            size: 65536,
        });
        let plain = CopyOptions::default();
        assert_eq!(plain.owner(5, 6), None);
        let archive = CopyOptions {
            archive: true,
            into_range: None,
        };
        assert_eq!(archive.owner(5, 6), Some((5, 6)));
        let into = CopyOptions {
            archive: false,
            into_range: range,
        };
        assert_eq!(into.owner(5, 6), Some((100000, 200000)));
        let both = CopyOptions {
            archive: true,
            into_range: range,
        };
        assert_eq!(both.owner(1000, 29), Some((101000, 200029)));
        // An owner the range does not hold is its nobody.
        assert_eq!(both.owner(70000, 0), Some((165534, 200000)));
    }
}
