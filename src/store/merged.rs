//! The merged view of a stack of layers, as overlayfs shows it, written as a tar stream:
//! `minibox export` (an image's layers and a container's own upper layer) and the seeding of
//! a named volume from an image.
//!
//! Layers are read on the host, and a container's upper layer is the container's to shape
//! (even while it runs), so every file is reached from its layer's root one component at a
//! time with `O_NOFOLLOW`: a symlink is written as a symlink, never followed. Each entry is
//! then opened once, `O_PATH` (a device node is never opened), typed and sized on that
//! descriptor, and a file's data read from it again: exactly the size its header says, so a
//! file swapped or grown meanwhile can neither make export read a device nor inject entries.
//! Whiteouts are overlayfs's (a character device 0:0 hides a name below; the
//! `trusted.overlay.opaque=y` attribute hides a directory's contents below).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode};

use crate::kernel::namespaces::{inside_id, IdMap};
use crate::kernel::overlay::{get_xattr, is_whiteout, open_dir, OPAQUE_XATTR};

/// Every path of the merged view (relative, `/`-separated) → the layer (index into the list,
/// top first) whose entry shows.
/// With `along`, only that path (its components, each decided as `walk_layer` decides an
/// entry: a whiteout or a file hides what is below, an opaque directory the lower contents)
/// and what is below it are walked: `COPY /etc/passwd` of a stage never reads its whole tree.
fn merge(lowers_top_first: &[PathBuf], along: &[&[u8]]) -> Result<BTreeMap<Vec<u8>, usize>> {
    let mut merged: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (idx, layer) in lowers_top_first.iter().enumerate().rev() {
        let root = open_dir(None, layer.as_os_str())
            .with_context(|| format!("opening the layer {}", layer.display()))?;
        let mut dir = root;
        let mut path: Vec<u8> = vec![];
        let mut reached = true;
        for part in along {
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(part);
            let os = OsStr::from_bytes(part);
            let st = match fstatat(&dir, os, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::ENOENT) => {
                    reached = false;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            if is_whiteout(&st) {
                merged.remove(&path);
                remove_below(&mut merged, &path);
                reached = false;
                break;
            }
            if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                remove_below(&mut merged, &path);
                merged.insert(path.clone(), idx);
                reached = false;
                break;
            }
            let sub = match open_dir(Some(&dir), os) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) | Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                    reached = false;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            if merged.contains_key(&path)
                && get_xattr(sub.as_raw_fd(), OPAQUE_XATTR).as_deref() == Some(b"y")
            {
                remove_below(&mut merged, &path);
            }
            merged.insert(path.clone(), idx);
            dir = sub;
        }
        if reached {
            walk_layer(&dir, &path, idx, &mut merged)
                .with_context(|| format!("reading the layer {}", layer.display()))?;
        }
    }
    Ok(merged)
}

fn remove_below(merged: &mut BTreeMap<Vec<u8>, usize>, path: &[u8]) {
    let mut prefix = path.to_vec();
    prefix.push(b'/');
    let doomed: Vec<Vec<u8>> = merged
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        merged.remove(&k);
    }
}

fn walk_layer(
    dir: &OwnedFd,
    path: &[u8],
    idx: usize,
    merged: &mut BTreeMap<Vec<u8>, usize>,
) -> Result<()> {
    let listing = nix::dir::Dir::from_fd(nix::unistd::dup(dir)?)?;
    let mut names: Vec<Vec<u8>> = vec![];
    let mut listing = listing;
    for e in listing.iter() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    for name in names {
        let os = OsStr::from_bytes(&name);
        let st = match fstatat(dir, os, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut child = path.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(&name);
        if is_whiteout(&st) {
            merged.remove(&child);
            remove_below(merged, &child);
            continue;
        }
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let lower_is_dir = merged.contains_key(&child);
        if !is_dir {
            remove_below(merged, &child);
            merged.insert(child, idx);
            continue;
        }
        let sub = match open_dir(Some(dir), os) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) | Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => continue,
            Err(e) => return Err(e.into()),
        };
        if lower_is_dir && get_xattr(sub.as_raw_fd(), OPAQUE_XATTR).as_deref() == Some(b"y") {
            remove_below(merged, &child);
        }
        merged.insert(child.clone(), idx);
        walk_layer(&sub, &child, idx, merged)?;
    }
    Ok(())
}

/// Opens the parent directory of `rel` inside `root`, each component with `O_NOFOLLOW`.
fn parent_of(root: &OwnedFd, rel: &[u8]) -> Result<(OwnedFd, Vec<u8>)> {
    let mut parts: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    let name = parts.pop().unwrap_or_default().to_vec();
    let mut cur = root.try_clone()?;
    for p in parts {
        cur = open_dir(Some(&cur), OsStr::from_bytes(p))?;
    }
    Ok((cur, name))
}

/// One entry of a layer, reached through one descriptor: `O_PATH|O_NOFOLLOW` (which opens
/// nothing, not even a device node), the type and header read from that descriptor, a link's
/// target read from it, and a regular file's data opened from it again (`/proc/self/fd/N`
/// reopens the same inode, never a name that may have been swapped). `None`: gone.
type Entry = (FileStat, Option<PathBuf>, Option<File>);

fn open_entry(parent: &OwnedFd, name: &OsStr) -> Result<Option<Entry>> {
    let handle = match openat(
        parent,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let st = nix::sys::stat::fstat(&handle)?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFLNK => {
            let target = readlinkat(&handle, "")?;
            Ok(Some((st, Some(PathBuf::from(target)), None)))
        }
        libc::S_IFREG => {
            let fd = nix::fcntl::open(
                format!("/proc/self/fd/{}", handle.as_raw_fd()).as_str(),
                OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            let file = File::from(fd);
            let again = nix::sys::stat::fstat(&file)?;
            if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino)
                || again.st_mode & libc::S_IFMT != libc::S_IFREG
            {
                anyhow::bail!("{name:?} changed while it was opened: export it again");
            }
            Ok(Some((st, None, Some(file))))
        }
        _ => Ok(Some((st, None, None))),
    }
}

/// Exactly `size` bytes of a file, whatever it does meanwhile: what it grew by is left out
/// (it would land in the archive as entries of its own), what it shrank by is zeros.
struct Exactly {
    file: std::io::Take<File>,
    left: u64,
}

impl Exactly {
    fn new(file: File, size: u64) -> Exactly {
        Exactly {
            file: std::io::Read::take(file, size),
            left: size,
        }
    }
}

impl std::io::Read for Exactly {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = match self.file.read(buf)? {
            0 => {
                let n = buf.len().min(self.left.min(usize::MAX as u64) as usize);
                buf[..n].fill(0);
                n
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Writes the merged view of `lowers` (top first) as a tar stream. With `sub`, only what is
/// below that directory, re-rooted there (its own entry becomes `./`). Returns whether `sub`
/// exists as a directory in the view (always true without `sub`).
pub fn write_tar(lowers_top_first: &[PathBuf], sub: Option<&str>, out: impl Write) -> Result<bool> {
    write_tar_with(lowers_top_first, sub, None, out, None)
}

/// `write_tar`, the top layer's owners written as a user namespace sees them (`top_owners`:
/// its uid and gid maps): a container's own layer holds its range's host ids, and its files
/// are exported with the ids the container gave them.
pub fn write_tar_mapped(
    lowers_top_first: &[PathBuf],
    sub: Option<&str>,
    out: impl Write,
    top_owners: Option<&(Vec<IdMap>, Vec<IdMap>)>,
) -> Result<bool> {
    write_tar_with(lowers_top_first, sub, None, out, top_owners)
}

/// `write_tar`, and with `only`, only the entry of that name right below the (sub) root and
/// what is below it (`COPY`'s sources: never more of the tree than asked for).
pub fn write_tar_of(
    lowers_top_first: &[PathBuf],
    sub: Option<&str>,
    only: Option<&[u8]>,
    out: impl Write,
) -> Result<bool> {
    write_tar_with(lowers_top_first, sub, only, out, None)
}

fn write_tar_with(
    lowers_top_first: &[PathBuf],
    sub: Option<&str>,
    only: Option<&[u8]>,
    out: impl Write,
    top_owners: Option<&(Vec<IdMap>, Vec<IdMap>)>,
) -> Result<bool> {
    // Only the part of the tree asked for is walked.
    let sub_parts: Vec<&[u8]> = sub
        .map(|s| s.trim_matches('/').as_bytes())
        .filter(|s| !s.is_empty())
        .map(|s| s.split(|&b| b == b'/').collect())
        .unwrap_or_default();
    let mut along = sub_parts.clone();
    if let Some(o) = only {
        along.push(o);
    }
    let merged = merge(lowers_top_first, &along)?;
    let roots: Vec<OwnedFd> = lowers_top_first
        .iter()
        .map(|l| open_dir(None, l.as_os_str()).with_context(|| format!("opening {}", l.display())))
        .collect::<Result<_>>()?;
    let sub: Option<Vec<u8>> = sub
        .map(|s| s.trim_matches('/').as_bytes().to_vec())
        .filter(|s| !s.is_empty());
    let mut builder = tar::Builder::new(out);
    let mut seen: HashMap<(u64, u64), PathBuf> = HashMap::new();
    // The root directory itself, from the top layer.
    let mut entries: Vec<(Vec<u8>, Option<usize>)> = vec![];
    match &sub {
        None => entries.push((vec![], None)),
        Some(s) => match merged.get(s) {
            Some(&idx) => entries.push((s.clone(), Some(idx))),
            None => return Ok(false),
        },
    }
    let prefix = sub.as_ref().map(|s| {
        let mut p = s.clone();
        p.push(b'/');
        p
    });
    for (path, &idx) in &merged {
        if let Some(p) = &prefix {
            if !path.starts_with(p) {
                continue;
            }
        }
        entries.push((path.clone(), Some(idx)));
    }
    for (path, idx) in entries {
        if let (Some(only), Some(_)) = (only, idx) {
            // Only the entry named `only` below the (sub) root, and what is below it.
            let rel = match &prefix {
                Some(p) => path.strip_prefix(p.as_slice()),
                None => Some(&path[..]),
            };
            if let Some(rel) = rel {
                if rel.split(|&b| b == b'/').next() != Some(only) {
                    continue;
                }
            }
        }
        let name_in_tar: Vec<u8> = match (&sub, idx) {
            (None, None) => b"./".to_vec(),
            (None, Some(_)) => path.clone(),
            (Some(s), _) if &path == s => b"./".to_vec(),
            (Some(s), _) => path[s.len() + 1..].to_vec(),
        };
        let (st, link, file) = match idx {
            None => {
                let st = nix::sys::stat::fstat(&roots[0])?;
                (st, None, None)
            }
            Some(idx) => {
                let (parent, name) = parent_of(&roots[idx], &path)?;
                match open_entry(&parent, OsStr::from_bytes(&name))? {
                    Some(entry) => entry,
                    // Gone since the walk: nothing to write.
                    None => continue,
                }
            }
        };
        if sub.is_some()
            && idx.is_some()
            && name_in_tar == b"./"
            && st.st_mode & libc::S_IFMT != libc::S_IFDIR
        {
            return Ok(false);
        }
        let mut st = st;
        // The top layer's files as its container's user namespace sees them.
        if let (Some((uids, gids)), None | Some(0)) = (top_owners, idx) {
            st.st_uid = inside_id(uids, st.st_uid).unwrap_or(st.st_uid);
            st.st_gid = inside_id(gids, st.st_gid).unwrap_or(st.st_gid);
        }
        append(&mut builder, &name_in_tar, (st, link, file), &mut seen)?;
    }
    builder.finish()?;
    Ok(true)
}

/// Appends one entry, read from its descriptors, as `name_in_tar`; a regular file met before
/// under another name (same inode) becomes a hard link to that name.
fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    name_in_tar: &[u8],
    (st, link, file): Entry,
    seen: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(st.st_mode & 0o7777);
    header.set_uid(st.st_uid as u64);
    header.set_gid(st.st_gid as u64);
    header.set_mtime(st.st_mtime.max(0) as u64);
    header.set_size(0);
    let tar_path = Path::new(OsStr::from_bytes(name_in_tar)).to_path_buf();
    let kind = st.st_mode & libc::S_IFMT;
    // A file seen before under another name is a hard link to it.
    if kind == libc::S_IFREG && st.st_nlink > 1 {
        let key = (st.st_dev, st.st_ino);
        if let Some(first) = seen.get(&key) {
            header.set_entry_type(tar::EntryType::Link);
            builder.append_link(&mut header, &tar_path, first)?;
            return Ok(());
        }
        seen.insert(key, tar_path.clone());
    }
    match kind {
        libc::S_IFDIR => {
            header.set_entry_type(tar::EntryType::Directory);
            builder.append_data(&mut header, &tar_path, std::io::empty())?;
        }
        libc::S_IFREG => {
            header.set_entry_type(tar::EntryType::Regular);
            let size = st.st_size.max(0) as u64;
            header.set_size(size);
            let file = file.context("a regular file without a handle")?;
            builder.append_data(&mut header, &tar_path, Exactly::new(file, size))?;
        }
        libc::S_IFLNK => {
            header.set_entry_type(tar::EntryType::Symlink);
            builder.append_link(&mut header, &tar_path, link.unwrap_or_default())?;
        }
        libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
            header.set_entry_type(match kind {
                libc::S_IFCHR => tar::EntryType::Char,
                libc::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            header.set_device_major(nix::sys::stat::major(st.st_rdev) as u32)?;
            header.set_device_minor(nix::sys::stat::minor(st.st_rdev) as u32)?;
            builder.append_data(&mut header, &tar_path, std::io::empty())?;
        }
        // Sockets are not files an archive can hold.
        _ => {}
    }
    Ok(())
}

/// What one entry of a layer is, as a layer's tar stream says it.
enum LayerEntry {
    /// A file, directory, link or node: written as it is.
    Plain,
    /// overlayfs's whiteout (a character device 0:0): OCI's empty `.wh.NAME`.
    Whiteout,
    /// An opaque directory: the directory, then OCI's `.wh..wh..opq` in it.
    Opaque,
}

fn walk_diff(
    dir: &OwnedFd,
    path: &[u8],
    skip: &dyn Fn(&[u8], &FileStat) -> bool,
    out: &mut Vec<(Vec<u8>, LayerEntry)>,
) -> Result<()> {
    let mut listing = nix::dir::Dir::from_fd(nix::unistd::dup(dir)?)?;
    let mut names: Vec<Vec<u8>> = vec![];
    for e in listing.iter() {
        let name = e?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    // Sorted: the same files make the same stream, so the same diff id (the build cache).
    names.sort();
    for name in names {
        let os = OsStr::from_bytes(&name);
        let st = match fstatat(dir, os, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut child = path.to_vec();
        if !child.is_empty() {
            child.push(b'/');
        }
        child.extend_from_slice(&name);
        if skip(&child, &st) {
            continue;
        }
        if is_whiteout(&st) {
            out.push((child, LayerEntry::Whiteout));
            continue;
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            out.push((child, LayerEntry::Plain));
            continue;
        }
        let sub = match open_dir(Some(dir), os) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) | Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => continue,
            Err(e) => return Err(e.into()),
        };
        let opaque = get_xattr(sub.as_raw_fd(), OPAQUE_XATTR).as_deref() == Some(b"y");
        out.push((
            child.clone(),
            if opaque {
                LayerEntry::Opaque
            } else {
                LayerEntry::Plain
            },
        ));
        walk_diff(&sub, &child, skip, out)?;
    }
    Ok(())
}

/// Writes ONE layer directory (a stored layer, or a container's upper directory) as an image
/// layer's tar stream: its own entries only, overlayfs's whiteouts turned back into OCI's
/// (`.wh.NAME`, `.wh..wh..opq`); `skip` leaves out entries (and what is below them). Entries
/// are reached as `write_tar` reaches them (from the layer's root, never through a link).
pub fn write_layer(
    layer: &Path,
    skip: &dyn Fn(&[u8], &FileStat) -> bool,
    owners: Option<&(Vec<IdMap>, Vec<IdMap>)>,
    out: impl Write,
) -> Result<()> {
    let root = open_dir(None, layer.as_os_str())
        .with_context(|| format!("opening the layer {}", layer.display()))?;
    let mut entries = vec![];
    walk_diff(&root, &[], skip, &mut entries)
        .with_context(|| format!("reading the layer {}", layer.display()))?;
    let mut builder = tar::Builder::new(out);
    let mut seen: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let marker = |path: &[u8], name: &[u8]| {
        let mut p = path.to_vec();
        if let Some(cut) = p.iter().rposition(|&b| b == b'/') {
            p.truncate(cut + 1);
        } else {
            p.clear();
        }
        p.extend_from_slice(name);
        p
    };
    let empty_file = |builder: &mut tar::Builder<_>, name: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(0);
        header.set_mtime(0);
        builder.append_data(
            &mut header,
            Path::new(OsStr::from_bytes(name)),
            std::io::empty(),
        )?;
        Ok(())
    };
    for (path, kind) in entries {
        match kind {
            LayerEntry::Whiteout => {
                let base = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
                let mut name = b".wh.".to_vec();
                name.extend_from_slice(base);
                empty_file(&mut builder, &marker(&path, &name))?;
            }
            LayerEntry::Plain | LayerEntry::Opaque => {
                let (parent, name) = parent_of(&root, &path)?;
                let Some((mut st, link, file)) = open_entry(&parent, OsStr::from_bytes(&name))?
                else {
                    continue;
                };
                // A user-namespaced container's files, with the ids it gave them.
                if let Some((uids, gids)) = owners {
                    st.st_uid = inside_id(uids, st.st_uid).unwrap_or(st.st_uid);
                    st.st_gid = inside_id(gids, st.st_gid).unwrap_or(st.st_gid);
                }
                append(&mut builder, &path, (st, link, file), &mut seen)?;
                if let LayerEntry::Opaque = kind {
                    let mut opq = path.clone();
                    opq.extend_from_slice(b"/.wh..wh..opq");
                    empty_file(&mut builder, &opq)?;
                }
            }
        }
    }
    builder.finish()?;
    Ok(())
}
