//! A container's files as the container sees them, for `minibox cp`: a handle on its root.
//!
//! A running container's root is its first process's (`/proc/PID/root`, with the container's
//! own mounts below it), taken only while that very process lives. A stopped one's is its own
//! layer over its image or ROOTFS, mounted in a mount namespace of this process alone (gone
//! when it exits, never seen by the host), while the container's lock keeps it from starting.
//! Every path inside is then resolved from this handle with `RESOLVE_IN_ROOT`.

use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;

use crate::kernel::mount_api;
use crate::kernel::rootfs::{self, Lower, OverlayDirs};
use crate::runtime::host_objects;
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
    // This process's own mount namespace, whose mounts never reach the host's.
    nix::sched::unshare(CloneFlags::CLONE_NEWNS)
        .context("unshare(CLONE_NEWNS) for the stopped container's root")?;
    rootfs::make_mounts_private()?;
    // The data root holds the layer (`<data-root>/containers/<id>`) and the image's layers.
    let data_root_path = layer.parent().and_then(Path::parent).unwrap_or(layer);
    let data_root = rootfs::open_dir(data_root_path)?;
    let layer_rel = host_objects::layer_rel(layer, data_root_path)?;
    let lower = match &c.image {
        Some(image) => Lower::Layers(
            image
                .lower
                .iter()
                .map(|l| host_objects::layer_rel(l, data_root_path))
                .collect::<Result<_>>()?,
        ),
        // Copied in this namespace: a detached tree is attached only in the one it came from.
        None => {
            let rootfs = rootfs::open_dir(&c.rootfs)?;
            Lower::Rootfs(
                mount_api::clone_tree(&rootfs, false)
                    .with_context(|| format!("copying ROOTFS {}", c.rootfs.display()))?,
            )
        }
    };
    let root = rootfs::mount_overlay(&OverlayDirs {
        data_root: &data_root,
        layer: &layer_rel,
        lower: &lower,
        data_root_path,
        rootfs_path: &c.rootfs,
    })
    .with_context(|| format!("mounting the stopped container {}'s files", c.name))?;
    Ok((root, Some(lock)))
}
