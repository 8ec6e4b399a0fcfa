//! `minibox exec` (and `create`) runs from a sealed clone of itself (runc CVE-2019-5736).
//!
//! The process that joins a container's namespaces is minibox until it execs CMD: while it
//! is, `/proc/PID/exe` of it names minibox's own executable, and a container process that
//! reaches that link (or has the joining process exec it, through a `#!/proc/self/exe` script
//! planted as CMD) could open the host's binary and rewrite it. So, before it joins anything,
//! minibox re-executes itself from a file nobody can write, and from then on its `exe` is that
//! file: the host's binary is out of every container process's reach. The re-exec happens while
//! minibox is still wholly on the host, where its dynamic loader and libraries are.
//!
//! That file is, as runc ≥ 1.2 does it, minibox's own binary seen through a private, detached,
//! read-only overlayfs (its directory over an empty tmpfs, no upper layer: the superblock is
//! read-only and cannot be remounted writable): no copy, a few syscalls, the page cache shared
//! with every other minibox. Where overlayfs or the mount API is missing (Linux < 5.2, no
//! overlay module, the binary on a filesystem overlayfs refuses), a copy of the binary in a
//! memfd sealed against any write, growth or shrink, as before.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;

use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::fcntl::{AtFlags, FcntlArg, OFlag, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::stat::{fstat, Mode};
use nix::sys::statfs::{fstatfs, OVERLAYFS_SUPER_MAGIC};
use nix::sys::statvfs::FsFlags;

use crate::kernel::mount_api::{self, attr};

/// Set in the environment of the sealed copy, so that it does not copy itself again.
const MARKER: &str = "_MINIBOX_SEALED_EXEC";

/// Returns in the sealed copy (having wiped the marker); in the original, becomes the copy
/// and never returns, unless making it failed.
pub fn become_sealed_copy() -> Result<()> {
    if std::env::var_os(MARKER).is_some() && running_sealed() {
        // Nothing of the marker reaches CMD or a child of ours.
        std::env::remove_var(MARKER);
        return Ok(());
    }
    // The clone, or the copy where no clone can be made (the reason matters to no one: the
    // copy protects as well, only slower).
    let copy = match read_only_clone_of_self() {
        Ok(clone) => clone,
        Err(_) => sealed_copy_of_self()?,
    };
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).context("an argument holds a NUL byte"))
        .collect::<Result<_>>()?;
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != MARKER)
        .filter_map(|(k, v)| {
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            CString::new(entry).ok()
        })
        .collect();
    envp.push(CString::new(format!("{MARKER}=1")).expect("no NUL"));
    let Err(errno) = nix::unistd::execveat(&copy, c"", &argv, &envp, AtFlags::AT_EMPTY_PATH);
    Err(errno).context("re-executing minibox from its sealed copy (execveat of the memfd)")
}

/// Whether this process runs from a sealed memfd or a read-only overlayfs (the marker alone
/// could come from the caller).
fn running_sealed() -> bool {
    if std::fs::read_link("/proc/self/exe")
        .is_ok_and(|p| p.as_os_str().as_bytes().starts_with(b"/memfd:"))
    {
        return true;
    }
    File::open("/proc/self/exe")
        .ok()
        .and_then(|exe| fstatfs(&exe).ok())
        .is_some_and(|fs| {
            fs.filesystem_type() == OVERLAYFS_SUPER_MAGIC && fs.flags().contains(FsFlags::ST_RDONLY)
        })
}

/// minibox's binary opened through a detached read-only overlayfs of its directory: the same
/// inode's pages, but no path through it can write them (EROFS). Checked to be the very file
/// this process runs (inode, size, mtime), or refused.
fn read_only_clone_of_self() -> Result<File> {
    let exe = File::open("/proc/self/exe").context("opening /proc/self/exe")?;
    let host = fstat(&exe).context("fstat of /proc/self/exe")?;
    let path = std::fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("minibox's path {} has no directory", path.display());
    };
    // The directory, opened once; overlayfs takes it by its descriptor (no name to escape).
    let dir = nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", dir.display()))?;
    // overlayfs wants two lower layers without an upper one: the second, an empty tmpfs that
    // only this descriptor reaches, so that it can hide nothing of the first.
    let sealed = attr::RDONLY | attr::NOSUID | attr::NODEV | attr::NOEXEC;
    let empty = mount_api::new_detached("tmpfs", &[], sealed).context("an empty tmpfs")?;
    let lower = format!(
        "/proc/self/fd/{}:/proc/self/fd/{}",
        dir.as_raw_fd(),
        empty.as_raw_fd()
    );
    // xino=off: a file of the lower layer keeps its own inode number, which the check below
    // compares.
    let overlay = mount_api::new_detached(
        "overlay",
        &[("lowerdir", &lower), ("xino", "off")],
        attr::NOSUID | attr::NODEV,
    )
    .context("a read-only overlayfs of minibox's directory")?;
    let fd = nix::fcntl::openat(
        &overlay,
        Path::new(name),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .context("opening minibox in its read-only overlayfs")?;
    let clone = File::from(fd);
    let seen = fstat(&clone).context("fstat of minibox's clone")?;
    let same = |s: &nix::sys::stat::FileStat| (s.st_ino, s.st_size, s.st_mtime, s.st_mtime_nsec);
    if same(&seen) != same(&host) {
        bail!("{} is no longer the binary minibox runs", path.display());
    }
    Ok(clone)
}

/// A close-on-exec memfd holding minibox's binary, sealed: no write, no resize, no new seal.
fn sealed_copy_of_self() -> Result<File> {
    let fd = memfd_create(
        // What /proc/PID/exe then shows: `/memfd:minibox-exec (deleted)`.
        c"minibox-sealed",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .context("memfd_create for minibox's sealed copy")?;
    let mut copy = File::from(fd);
    let mut me = File::open("/proc/self/exe").context("opening /proc/self/exe")?;
    // std's copy uses copy_file_range/sendfile: the bytes never pass through our memory.
    std::io::copy(&mut me, &mut copy).context("copying minibox into its memfd")?;
    let seals = SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_SEAL;
    nix::fcntl::fcntl(&copy, FcntlArg::F_ADD_SEALS(seals)).context("sealing minibox's copy")?;
    Ok(copy)
}
