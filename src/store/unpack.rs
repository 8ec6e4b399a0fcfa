//! Unpacking one image layer (a tar stream) into its own directory: hostile-input code.
//!
//! A layer comes from whoever made the image, and minibox unpacks it as root on the host, so
//! every entry is checked before anything is written:
//! - a path with `..` or starting with `/` is refused;
//! - every directory on the way is opened by this code, component by component, with
//!   `O_NOFOLLOW | O_DIRECTORY` (missing ones are made 0755): a symlink placed by an earlier
//!   entry is never followed, so nothing lands outside the layer's directory;
//! - a hard link must name a file already unpacked in this layer, reached the same way;
//! - device nodes and FIFOs are made as the image says (the layer lives in the root-only data
//!   root, and the container's root is mounted `nodev`); setuid/setgid bits and owners are
//!   applied exactly as the image says, never more;
//! - OCI whiteouts become overlayfs's: `.wh.NAME` a character device 0:0 named NAME, and
//!   `.wh..wh..opq` the `trusted.overlay.opaque=y` attribute of its directory. An image cannot
//!   set `trusted.*` attributes itself (they would be overlayfs's own), nor other extended
//!   attributes than `user.*` and `security.capability`.
//!
//! What the tar stream hashes to (its diff id) is computed on the way.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fchmodat, fstatat, mkdirat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use sha2::{Digest, Sha256};

use crate::kernel::overlay::{open_dir, OPAQUE_XATTR};

/// The OCI whiteout prefix, and the opaque-directory marker.
pub const WHITEOUT: &str = ".wh.";
pub const OPAQUE: &str = ".wh..wh..opq";

/// A reader that hashes what passes through it (sha256), for digests and diff ids.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    pub count: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads what is left (a tar's padding), then gives `sha256:<hex>`.
    pub fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(format!("sha256:{}", hex(&self.hasher.finalize())))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// A layer stream as stored: gzip, zstd or plain tar, told apart by their magic bytes.
pub fn decompress<'a>(raw: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let head = buffered.fill_buf().context("reading the layer")?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered).context("starting zstd")?)
    } else {
        Box::new(buffered)
    })
}

/// What unpacking a layer gave.
#[derive(Debug)]
pub struct Unpacked {
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub diff_id: String,
    /// The bytes of the regular files in it.
    pub size: u64,
}

/// Unpacks the uncompressed tar stream `tar` into the existing, empty directory `dest`.
pub fn unpack(tar: impl Read, dest: &Path) -> Result<Unpacked> {
    let root =
        open_dir(None, dest.as_os_str()).with_context(|| format!("opening {}", dest.display()))?;
    let mut hashing = Hashing::new(tar);
    let mut size = 0;
    let mut dir_times: Vec<(Vec<Vec<u8>>, i64)> = vec![];
    {
        let mut archive = tar::Archive::new(&mut hashing);
        for entry in archive
            .entries()
            .context("reading the layer's tar stream")?
        {
            let mut entry = entry.context("reading the layer's tar stream")?;
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            size += apply(&root, &mut entry, &raw, &mut dir_times)
                .with_context(|| format!("layer entry {shown:?}"))?;
        }
    }
    // Directory times last (and deepest first): unpacking into them changed them.
    for (parts, mtime) in dir_times.iter().rev() {
        let dir = if parts.is_empty() {
            root.try_clone()?
        } else {
            walk(&root, parts, false)?
        };
        let t = TimeSpec::new(*mtime, 0);
        let _ = nix::sys::stat::futimens(&dir, &t, &t);
    }
    let diff_id = hashing.finish().context("reading the layer's tar stream")?;
    Ok(Unpacked { diff_id, size })
}

/// An entry's path as components: no `..`, not absolute; `.` and empty parts dropped.
pub fn clean(raw: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
    if raw.starts_with(b"/") {
        bail!("{what} is an absolute path: refused (a layer's paths are relative to its root)");
    }
    let mut parts = vec![];
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => bail!("{what} contains '..': refused (it could point outside the layer)"),
            p => parts.push(p.to_vec()),
        }
    }
    Ok(parts)
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// The directory `parts` below `root`, each component opened by us with `O_NOFOLLOW`; with
/// `create`, missing ones are made (0755, root's).
fn walk(root: &OwnedFd, parts: &[Vec<u8>], create: bool) -> Result<OwnedFd> {
    let mut cur = root.try_clone()?;
    for (i, part) in parts.iter().enumerate() {
        let name = os(part);
        let next = match open_dir(Some(&cur), name) {
            Err(Errno::ENOENT) if create => {
                mkdirat(&cur, name, Mode::from_bits_truncate(0o755))?;
                let fd = open_dir(Some(&cur), name)?;
                fchmod(&fd, Mode::from_bits_truncate(0o755))?;
                Ok(fd)
            }
            other => other,
        };
        cur = match next {
            Ok(fd) => fd,
            Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                let prefix = parts[..=i]
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                bail!("{prefix:?} is a symbolic link or not a directory: refusing to go through it")
            }
            Err(Errno::ENOENT) => {
                let prefix = String::from_utf8_lossy(&parts[..=i].join(&b'/')).into_owned();
                bail!("{prefix:?} does not exist in this layer")
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(cur)
}

/// Removes what an earlier entry left at `name` (a later entry wins, as tar does), unless both
/// are directories. Returns whether a directory is already there.
fn make_room(parent: &OwnedFd, name: &OsStr, new_is_dir: bool) -> Result<bool> {
    let st = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if is_dir && new_is_dir {
        return Ok(true);
    }
    let how = if is_dir {
        UnlinkatFlags::RemoveDir
    } else {
        UnlinkatFlags::NoRemoveDir
    };
    unlinkat(parent, name, how).map_err(|e| {
        anyhow!("it replaces an earlier entry that cannot be removed ({e}): refused")
    })?;
    Ok(false)
}

/// Applies one entry; returns the bytes it added.
fn apply<R: Read>(
    root: &OwnedFd,
    entry: &mut tar::Entry<R>,
    raw: &[u8],
    dir_times: &mut Vec<(Vec<Vec<u8>>, i64)>,
) -> Result<u64> {
    use tar::EntryType as T;
    let parts = clean(raw, "the path")?;
    let header = entry.header().clone();
    let kind = header.entry_type();
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    let uid = header.uid().unwrap_or(0) as u32;
    let gid = header.gid().unwrap_or(0) as u32;
    let mtime = header.mtime().unwrap_or(0) as i64;
    let owner = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let perms = Mode::from_bits_truncate(mode);
    let Some((name, dirs)) = parts.split_last() else {
        // The layer's root itself ("./"): only a directory may describe it.
        if kind != T::Directory {
            bail!("the layer's root must be a directory");
        }
        fchown(root, owner.0, owner.1)?;
        fchmod(root, perms)?;
        dir_times.push((vec![], mtime));
        return Ok(0);
    };
    let parent = walk(root, dirs, true)?;
    let base = os(name);
    // OCI whiteouts, in overlayfs's own form.
    if name.as_slice() == OPAQUE.as_bytes() {
        set_xattr(&parent, OPAQUE_XATTR, b"y")?;
        return Ok(0);
    }
    if let Some(hidden) = name.strip_prefix(WHITEOUT.as_bytes()) {
        if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.starts_with(b".wh.") {
            bail!("a whiteout names no file: refused");
        }
        let hidden = os(hidden);
        make_room(&parent, hidden, false)?;
        mknodat(&parent, hidden, SFlag::S_IFCHR, Mode::empty(), 0)?;
        return Ok(0);
    }
    let chown_nofollow = || -> Result<()> {
        fchownat(
            &parent,
            base,
            owner.0,
            owner.1,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    };
    let times = |follow: bool| {
        let t = TimeSpec::new(mtime, 0);
        let flag = if follow {
            nix::sys::stat::UtimensatFlags::FollowSymlink
        } else {
            nix::sys::stat::UtimensatFlags::NoFollowSymlink
        };
        let _ = nix::sys::stat::utimensat(&parent, base, &t, &t, flag);
    };
    match kind {
        T::Regular | T::Continuous => {
            make_room(&parent, base, false)?;
            let fd = openat(
                &parent,
                base,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )?;
            let mut file = File::from(fd);
            let written = io::copy(entry, &mut file).context("writing the file")?;
            // chown first: it clears setuid/setgid, which the chmod then sets as the image says.
            fchown(&file, owner.0, owner.1)?;
            fchmod(&file, perms)?;
            apply_xattrs(entry, file.as_fd())?;
            let t = TimeSpec::new(mtime, 0);
            let _ = nix::sys::stat::futimens(&file, &t, &t);
            Ok(written)
        }
        T::Directory => {
            if !make_room(&parent, base, true)? {
                mkdirat(&parent, base, Mode::from_bits_truncate(0o700))?;
            }
            let dir = open_dir(Some(&parent), base)?;
            fchown(&dir, owner.0, owner.1)?;
            fchmod(&dir, perms)?;
            apply_xattrs(entry, dir.as_fd())?;
            dir_times.push((parts.clone(), mtime));
            Ok(0)
        }
        T::Symlink => {
            let target = entry
                .link_name_bytes()
                .context("a symbolic link without a target")?
                .into_owned();
            make_room(&parent, base, false)?;
            // The target is only data: nothing here ever follows it.
            symlinkat(os(&target), &parent, base)?;
            chown_nofollow()?;
            times(false);
            Ok(0)
        }
        T::Link => {
            let target = entry
                .link_name_bytes()
                .context("a hard link without a target")?
                .into_owned();
            let tparts = clean(&target, "the hard link's target")?;
            let Some((tname, tdirs)) = tparts.split_last() else {
                bail!("a hard link to the layer's root: refused");
            };
            let tparent = walk(root, tdirs, false)
                .context("the hard link's target must be a file of this layer")?;
            match fstatat(&tparent, os(tname), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                    bail!("a hard link to a directory: refused")
                }
                Ok(_) => {}
                Err(_) => bail!(
                    "the hard link's target {:?} is not a file of this layer: refused",
                    String::from_utf8_lossy(&target)
                ),
            }
            make_room(&parent, base, false)?;
            // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
            linkat(&tparent, os(tname), &parent, base, AtFlags::empty())?;
            Ok(0)
        }
        T::Char | T::Block | T::Fifo => {
            let major = header.device_major().ok().flatten().unwrap_or(0) as u64;
            let minor = header.device_minor().ok().flatten().unwrap_or(0) as u64;
            let sflag = match kind {
                T::Char => SFlag::S_IFCHR,
                T::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            make_room(&parent, base, false)?;
            mknodat(
                &parent,
                base,
                sflag,
                perms,
                nix::sys::stat::makedev(major, minor),
            )?;
            chown_nofollow()?;
            // After the chown, and whatever our umask did to mknod's mode.
            fchmodat(&parent, base, perms, FchmodatFlags::FollowSymlink)?;
            times(false);
            Ok(0)
        }
        T::GNUSparse => bail!("sparse files are not supported: refused"),
        other => bail!("entry type {other:?} is not supported: refused"),
    }
}

/// The PAX `SCHILY.xattr.*` records an image may set: `user.*` and `security.capability`.
fn apply_xattrs<R: Read>(entry: &mut tar::Entry<R>, fd: std::os::fd::BorrowedFd) -> Result<()> {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Ok(());
    };
    let mut wanted = vec![];
    for ext in exts.flatten() {
        let Ok(key) = ext.key() else { continue };
        let Some(name) = key.strip_prefix("SCHILY.xattr.") else {
            continue;
        };
        if name.starts_with("user.") || name == "security.capability" {
            wanted.push((name.to_string(), ext.value_bytes().to_vec()));
        }
    }
    for (name, value) in wanted {
        set_xattr_fd(fd.as_raw_fd(), &name, &value)?;
    }
    Ok(())
}

fn set_xattr(fd: &impl AsRawFd, name: &str, value: &[u8]) -> Result<()> {
    set_xattr_fd(fd.as_raw_fd(), name, value)
}

fn set_xattr_fd(fd: i32, name: &str, value: &[u8]) -> Result<()> {
    let cname = CString::new(name)?;
    // SAFETY: fd is an open descriptor we own; name is a NUL-terminated string and value a
    // valid buffer of value.len() bytes, both alive for the call.
    let rc = unsafe { libc::fsetxattr(fd, cname.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    Errno::result(rc).with_context(|| format!("setting the attribute {name}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(
            clean(b"./a//b/./c", "p").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert!(clean(b"./", "p").unwrap().is_empty());
        assert!(clean(b"/etc/passwd", "p").is_err());
        assert!(clean(b"a/../../x", "p").is_err());
    }

    #[test]
    fn compression_is_sniffed() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
        gz.write_all(b"hello").unwrap();
        let gz = gz.finish().unwrap();
        let zs = zstd::encode_all(&b"hello"[..], 1).unwrap();
        for data in [gz, zs, b"hello".to_vec()] {
            let mut out = String::new();
            decompress(&data[..])
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(out, "hello");
        }
    }
}
