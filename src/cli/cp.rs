//! `minibox cp`: files between a container and the host, docker's way.
//!
//! `cp CONTAINER:SRC DEST` and `cp SRC CONTAINER:DEST`. A container's path is resolved inside
//! its root (`RESOLVE_IN_ROOT`: `..` and symlinks, absolute ones too, stay in the container),
//! and from the directory it names on, every entry is reached by descriptor one name at a time
//! without following symlinks (`kernel::copy`). What lands in the container belongs to its
//! root user, what lands on the host to the caller (`-a` keeps the owners).
//!
//! docker's rules: a file onto a directory goes inside it, onto anything else replaces it; a
//! directory onto an existing directory goes inside it (`SRC/.`: its contents do), else it
//! becomes DEST; a DEST ending in `/` must be a directory that exists.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::kernel::copy::{self, Copied, CopyOptions, IdShift};
use crate::kernel::rootfs;
use crate::runtime::cp::open_root;
use crate::store::state::Store;

/// One side of a copy: a directory held open, a name in it, and how it was written.
struct Place {
    dir: OwnedFd,
    name: OsString,
    shown: String,
}

/// Where one argument points: the host, or inside a container's root.
enum Side<'a> {
    Host(&'a str),
    Container { root: &'a OwnedFd, path: &'a str },
}

/// docker's reading of an argument: a path starting with `/` or `.` is the host's; otherwise
/// `NAME:PATH` is a container's.
fn split(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((name, path)) if !name.is_empty() => (Some(name), path),
        _ => (None, arg),
    }
}

/// `minibox cp [-a] SRC DEST`.
pub fn cp(store: &Store, archive: bool, src: &str, dst: &str) -> Result<i32> {
    let (from, src_path) = split(src);
    let (to, dst_path) = split(dst);
    let name = match (from, to) {
        (Some(_), Some(_)) => bail!(
            "copying between containers is not supported: copy to the host, then into the other"
        ),
        (None, None) => {
            bail!("must specify at least one container source: give CONTAINER:PATH as SRC or DEST")
        }
        (Some(n), None) | (None, Some(n)) => n,
    };
    if src_path == "-" || dst_path == "-" {
        bail!("cp with - (a tar stream) is not supported: give a path on the host");
    }
    if src_path.is_empty() || dst_path.is_empty() {
        bail!("cp: a path is empty: give {name}:/PATH");
    }
    let c = store.resolve(name)?;
    let (root, _lock) = open_root(store, &c)?;
    let side = |container: bool, path| match container {
        true => Side::Container { root: &root, path },
        false => Side::Host(path),
    };
    // Into a container with a user namespace, copies belong to its ids, not the host's root.
    let into_range =
        match to.is_some() {
            true => store.id_maps(&c.id).and_then(|(uids, gids)| {
                match (uids.as_slice(), gids.as_slice()) {
                    ([u], [g]) if u.inside == 0 && g.inside == 0 => Some(IdShift {
                        uid: u.outside,
                        gid: g.outside,
                        size: u.count.min(g.count),
                    }),
                    _ => None,
                }
            }),
            false => None,
        };
    let opts = CopyOptions {
        archive,
        into_range,
    };
    let mut copied = Copied::default();
    copy_between(
        side(from.is_some(), src_path),
        side(to.is_some(), dst_path),
        opts,
        &mut copied,
    )
    .map_err(|e| {
        let shown = |n: Option<&str>, p: &str| n.map_or(p.to_string(), |n| format!("{n}:{p}"));
        e.context(format!(
            "cannot copy {} to {}",
            shown(from, src_path),
            shown(to, dst_path)
        ))
    })?;
    for skipped in &copied.skipped {
        say!("minibox cp: {skipped}: not a file, directory or symlink (a device, FIFO or socket): left out");
    }
    Ok(0)
}

fn copy_between(src: Side, dst: Side, opts: CopyOptions, copied: &mut Copied) -> Result<()> {
    let (src_path, contents_only) = match &src {
        Side::Host(p) | Side::Container { path: p, .. } => (*p, p.ends_with("/.") || *p == "."),
    };
    let from = place(&src, src_path)?;
    let st = copy::stat_at(&from.dir, &from.name).map_err(|e| missing(e, &from.shown))?;
    let src_is_dir = copy::is_dir(&st);
    if src_path.ends_with('/') && !src_is_dir {
        bail!("{} is not a directory", from.shown);
    }
    let dst_path = match &dst {
        Side::Host(p) | Side::Container { path: p, .. } => *p,
    };
    // DEST an existing directory (symlinks followed: inside the root for a container's)?
    if let Some(dir) = open_dir(&dst, dst_path)? {
        if src_is_dir && (contents_only || from.name == ".") {
            let src_dir = copy::open_dir_at(&from.dir, &from.name)?;
            return copy::copy_contents(&src_dir, &dir, opts, copied, &from.shown);
        }
        let shown = format!(
            "{}/{}",
            dst_path.trim_end_matches('/'),
            from.name.to_string_lossy()
        );
        return copy::copy_entry(
            &from.dir, &from.name, &dir, &from.name, opts, copied, &shown,
        );
    }
    if dst_path.ends_with('/') {
        bail!("the destination directory {dst_path} does not exist");
    }
    let to = place(&dst, dst_path)?;
    match copy::stat_at(&to.dir, &to.name) {
        Ok(there) if src_is_dir && !copy::is_dir(&there) => {
            bail!(
                "cannot copy a directory to a file: {} is not a directory",
                to.shown
            )
        }
        _ => {}
    }
    // DEST is made: a copy of the file, or of the directory (its contents, with or without /.).
    copy::copy_entry(
        &from.dir, &from.name, &to.dir, &to.name, opts, copied, &to.shown,
    )
}

fn missing(e: Errno, shown: &str) -> anyhow::Error {
    match e {
        Errno::ENOENT => anyhow::anyhow!("{shown}: no such file or directory"),
        e => anyhow::Error::new(e).context(format!("{shown}: cannot read it")),
    }
}

/// `path`'s parent directory, opened (following symlinks: the host's own; inside the root: a
/// container's), and its last name (`.` for the directory itself).
fn place(side: &Side, path: &str) -> Result<Place> {
    let trimmed = path.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/.").unwrap_or(trimmed);
    let (parent, name) = match trimmed.rsplit_once('/') {
        _ if trimmed.is_empty() || trimmed == "." => (trimmed, "."),
        Some((_, "..")) => bail!("{path}: name a file or directory, not a parent (..)"),
        Some(("", name)) => ("/", name),
        Some((parent, name)) => (parent, name),
        None => (".", trimmed),
    };
    let shown = match side {
        Side::Host(_) => path.to_string(),
        Side::Container { .. } => format!("/{}", path.trim_start_matches('/')),
    };
    let dir = match open_dir(side, if parent.is_empty() { "/" } else { parent })? {
        Some(dir) => dir,
        None => bail!("{shown}: its directory {parent} does not exist"),
    };
    Ok(Place {
        dir,
        name: OsStr::from_bytes(name.as_bytes()).to_os_string(),
        shown,
    })
}

/// `path` as a directory, if it is one.
fn open_dir(side: &Side, path: &str) -> Result<Option<OwnedFd>> {
    let opened = match side {
        Side::Host(_) => nix::fcntl::open(
            Path::new(path),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ),
        Side::Container { root, .. } => {
            let rel = path.trim_start_matches('/');
            let rel = if rel.is_empty() { "." } else { rel };
            rootfs::open_in(*root, rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
        }
    };
    match opened {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{path}: cannot open it")),
    }
}
