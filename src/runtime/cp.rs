//! A container's files as the container sees them, for `minibox cp`: a handle on its root.
//!
//! A running container's root is its first process's (`/proc/PID/root`, with the container's
//! own mounts below it), taken only while that very process lives. A stopped one's is its own
//! layer over its image or ROOTFS, mounted in a mount namespace of this process alone (gone
//! when it exits, never seen by the host), while the container's lock keeps it from starting.
//! Every path inside is then resolved from this handle with `RESOLVE_IN_ROOT`.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;

use crate::kernel::rootfs::{self, OverlayDirs};
use crate::store::state::{ContainerState, Lock, Store};

/// The root of container `c`, and (stopped) the lock that keeps it stopped meanwhile.
pub fn open_root(store: &Store, c: &ContainerState) -> Result<(OwnedFd, Option<Lock>)> {
    if c.is_running() {
        let Some(pid) = c.pid else {
            bail!("container {} is starting: try again in a moment", c.name);
        };
        let root = rootfs::open_dir(Path::new(&format!("/proc/{}/root", pid.pid)))?;
        // Opened from a pid: it must still be the container's process now that we hold it.
        if !pid.is_alive() {
            bail!(
                "container {} stopped while cp opened it: copy again",
                c.name
            );
        }
        return Ok((root, None));
    }
    let lock = store.lock(&c.id)?;
    let Some(layer) = &c.layer else {
        // A bundle's root is used as given: it is the container's root.
        return Ok((rootfs::open_dir(&c.rootfs)?, Some(lock)));
    };
    let lower: Vec<PathBuf> = match &c.image {
        Some(image) => image.lower.clone(),
        None => vec![c.rootfs.clone()],
    };
    let lower: Vec<&Path> = lower.iter().map(PathBuf::as_path).collect();
    // This process's own mount namespace, whose mounts never reach the host's.
    nix::sched::unshare(CloneFlags::CLONE_NEWNS)
        .context("unshare(CLONE_NEWNS) for the stopped container's root")?;
    rootfs::make_mounts_private()?;
    let data_root = layer.parent().and_then(Path::parent).unwrap_or(layer);
    let root = rootfs::mount_overlay(&OverlayDirs {
        lower: &lower,
        upper: &layer.join("upper"),
        work: &layer.join("work"),
        merged: &layer.join("merged"),
        data_root,
    })
    .with_context(|| format!("mounting the stopped container {}'s files", c.name))?;
    Ok((root, Some(lock)))
}
