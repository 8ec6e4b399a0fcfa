//! A container's `-v`, `--mount` and `--tmpfs` mounts, made by its init after the fixed
//! mounts and before `pivot_root`.
//!
//! The container path is resolved inside the root (`openat2(RESOLVE_IN_ROOT)`: a symlink the
//! image placed there resolves inside the container, never onto the host) and made if missing;
//! the mount then targets the opened directory through `/proc/self/fd/N`. Every such mount is
//! `nosuid,nodev`, and `ro` is a read-only remount of the new mount itself.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use crate::kernel::rootfs::{ensure_dir, fd_path, open_in};
use crate::model::volume::{VolumeMount, VolumeSource};

const NONE: Option<&str> = None;

/// Mounts each of `volumes` in the root `root`, in order.
pub fn mount_volumes(root: &OwnedFd, volumes: &[VolumeMount]) -> Result<()> {
    for v in volumes {
        mount_one(root, v).with_context(|| format!("mounting {}", v.display()))?;
    }
    Ok(())
}

fn mount_one(root: &OwnedFd, v: &VolumeMount) -> Result<()> {
    let rel = v.target.to_string_lossy();
    let rel = rel.trim_start_matches('/');
    match &v.source {
        VolumeSource::Bind(path) | VolumeSource::Named { path, .. } => {
            let source = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                .with_context(|| format!("opening {}", path.display()))?;
            let is_dir = nix::sys::stat::fstat(&source)?.st_mode & libc::S_IFMT == libc::S_IFDIR;
            let target = if is_dir {
                ensure_dir(root, rel)?
            } else {
                ensure_file(root, rel)?
            };
            mount(
                Some(fd_path(&source).as_str()),
                fd_path(&target).as_str(),
                NONE,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                NONE,
            )
            .context("bind mount")?;
        }
        VolumeSource::Tmpfs { size, mode } => {
            let target = ensure_dir(root, rel)?;
            let mut data = format!("mode={:o}", mode.unwrap_or(0o1777));
            if let Some(size) = size {
                data.push_str(&format!(",size={size}"));
            }
            mount(
                Some("tmpfs"),
                fd_path(&target).as_str(),
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(data.as_str()),
            )
            .context("tmpfs mount")?;
        }
    }
    // The handle we had is the directory beneath the new mount: reach the mount itself.
    let top = open_in(root, rel, OFlag::O_PATH).context("reopening the new mount")?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if v.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(NONE, fd_path(&top).as_str(), NONE, flags, NONE).context("remounting nosuid,nodev")?;
    Ok(())
}

/// The file `rel` in the root (made empty, 0644, if missing; its directory too), for a bind of
/// a file.
fn ensure_file(root: &OwnedFd, rel: &str) -> Result<OwnedFd> {
    if let Some((dir, _)) = rel.rsplit_once('/') {
        ensure_dir(root, dir)?;
    }
    match open_in(root, rel, OFlag::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).with_context(|| format!("opening /{rel} in the rootfs")),
    }
    let how = OpenHow::new()
        .flags(OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .mode(Mode::from_bits_truncate(0o644))
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    drop(
        openat2(root.as_fd(), rel, how)
            .with_context(|| format!("creating /{rel} in the rootfs"))?,
    );
    open_in(root, rel, OFlag::O_PATH).with_context(|| format!("opening /{rel} in the rootfs"))
}
