//! What a container takes from the host, opened once, before the clone.
//!
//! ROOTFS, every bind source and the container's /etc files sit in directories other users
//! may be able to change: a path checked by name and mounted by name later can be swapped for
//! a symlink to `/` in between. So each is opened here, once, without following a symlink
//! (`host_path::open_resolved`), the *opened* object is checked (its type, that it is not the
//! host's `/`, that it does not lie inside minibox's own state or data), and what the child
//! mounts is a detached copy of its tree (`open_tree`), with its flags already set on every
//! submount (`mount_setattr(AT_RECURSIVE)`). The child only attaches those trees
//! (`move_mount`): it looks no host path up.
//!
//! The one directory the child must reach in its own mount namespace (to mount an overlay,
//! whose layers must be mounts of that namespace) is its starting directory: the data root for
//! a container with a layer of its own, the bundle's root for a bundle. The kernel carries a
//! process's working directory over into the new mount namespace at the clone.

use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::kernel::host_path::{self, Identity, Opened};
use crate::kernel::mount_api::{self, attr, Attrs};
use crate::kernel::mounts::{self, MountSpec};
use crate::kernel::namespaces;
use crate::kernel::rootfs::{self, Lower, OverlayDirs, ETC_FILES};
use crate::model::spec::ContainerSpec;
use crate::store::layers::Layer;
use crate::store::state::Store;

/// The host's objects a container's first process mounts, opened and checked.
pub struct HostObjects {
    /// Where the first process starts (the data root, or a bundle's root).
    pub start_dir: OwnedFd,
    /// The caller's working directory, where the child returns once its root is mounted
    /// (hooks run there, as they would have).
    pub caller_dir: OwnedFd,
    /// What goes below the container's own layer (`None`: a bundle's root, used as given).
    pub lower: Option<Lower>,
    /// In a user namespace of its own: the container's root, an overlay over id-mapped lower
    /// layers made here (detached), which the child attaches in its starting directory.
    pub root: Option<OwnedFd>,
    /// One entry per entry of the mount list: a bind's source as a detached tree, flags set.
    pub binds: Vec<Option<OwnedFd>>,
    /// The container's /etc files (hosts, hostname, resolv.conf), detached and read-only.
    pub etc: Vec<(&'static str, OwnedFd)>,
}

/// The directories minibox keeps to itself: a container never gets one of them, nor anything
/// inside, as its root or a volume (named volumes, under `<data-root>/volumes`, excepted).
struct Guarded {
    host_root: Identity,
    state_root: Identity,
    data_root: Option<Identity>,
    named_volumes: Option<Identity>,
}

impl Guarded {
    /// Refuses `opened` when it is the host's `/` or lies inside minibox's own directories.
    fn check(&self, opened: &Opened, what: &str, path: &Path) -> Result<()> {
        if opened.identity() == self.host_root {
            bail!(
                "{what} {} is the host's / (it changed while minibox opened it?): give a \
                 directory of its own",
                path.display()
            );
        }
        if !opened.is_dir() {
            return Ok(());
        }
        let above = host_path::ancestors(&opened.fd)
            .with_context(|| format!("walking up from {what} {}", path.display()))?;
        let named_volume = self.named_volumes.is_some_and(|v| above.contains(&v));
        let inside = |id: Option<Identity>| id.is_some_and(|id| above.contains(&id));
        if inside(Some(self.state_root)) || (inside(self.data_root) && !named_volume) {
            bail!(
                "{what} {} is (or lies inside) minibox's own state or data directory: a container \
                 would reach other containers' files; give a directory outside them",
                path.display()
            );
        }
        Ok(())
    }
}

/// Opens and checks everything the container takes from the host. `data_root` is the data
/// root as `Layers` opened it, given when the container has a `layer` of its own.
pub fn open(
    spec: &ContainerSpec,
    store: &Store,
    data_root: Option<&OwnedFd>,
    layer: Option<&Layer>,
) -> Result<HostObjects> {
    let named_volumes = match data_root {
        Some(root) => match host_path::open_beneath(root, "volumes", OFlag::O_PATH) {
            Ok(fd) => Some(Identity::of(&fd)?),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e).context("opening the data root's volumes"),
        },
        None => None,
    };
    let guarded = Guarded {
        host_root: host_path::host_root().context("opening /")?,
        state_root: Identity::of(store.root_fd()).context("fstat of the state root")?,
        data_root: data_root.map(Identity::of).transpose()?,
        named_volumes,
    };
    let (start_dir, lower) = match (layer, data_root, &spec.image) {
        // The image's layers are the data root's own: reached from it by the child.
        (Some(layer), Some(data_root), Some(image)) => (
            data_root
                .try_clone()
                .context("duplicating the data root's descriptor")?,
            Some(Lower::Layers(
                image
                    .lower
                    .iter()
                    .map(|l| layer_rel(l, &layer.data_root))
                    .collect::<Result<_>>()?,
            )),
        ),
        // ROOTFS, copied as it is now: only its own mount (overlayfs reads one).
        (Some(_), Some(data_root), None) => {
            let rootfs = open_rootfs(spec, &guarded)?;
            let tree = mount_api::clone_tree(&rootfs.fd, false)
                .with_context(|| format!("copying ROOTFS {}", spec.rootfs.display()))?;
            (
                data_root
                    .try_clone()
                    .context("duplicating the data root's descriptor")?,
                Some(Lower::Rootfs(tree)),
            )
        }
        // A bundle's root: the child starts in it and mounts it onto itself.
        _ => (open_rootfs(spec, &guarded)?.fd, None),
    };
    // Id-mapped mounts (the root's layers, `idmap` binds) show files through a user namespace
    // with the container's maps, made once.
    let idmapped_binds = spec.setup.mounts.iter().any(|m| m.parsed.idmap);
    if idmapped_binds && !spec.setup.new_user_namespace() {
        bail!(
            "a volume asks for idmap, which maps its files through the container's user \
             namespace: give the container one (--userns auto, --uidmap), or drop idmap"
        );
    }
    let userns = match spec.setup.new_user_namespace() && (layer.is_some() || idmapped_binds) {
        true => Some(namespaces::user_namespace_with_maps(
            &spec.setup.uid_mappings,
            &spec.setup.gid_mappings,
        )?),
        false => None,
    };
    // A user namespace of its own: the root is made now, over id-mapped layers (the child,
    // root of its namespace only, could not read the host's root-owned layer directories).
    let (start_dir, lower, root) = match (layer, data_root, lower, &userns) {
        (Some(layer), Some(data_root), Some(lower), Some(userns)) => {
            let root = rootfs::idmapped_overlay(
                &OverlayDirs {
                    data_root,
                    layer: &layer.rel,
                    lower: &lower,
                    data_root_path: &layer.data_root,
                    rootfs_path: &spec.rootfs,
                },
                userns,
            )?;
            let merged = host_path::open_beneath(
                data_root,
                &format!("{}/merged", layer.rel),
                OFlag::O_PATH | OFlag::O_DIRECTORY,
            )
            .with_context(|| format!("opening {}", layer.merged.display()))?;
            (merged, None, Some(root))
        }
        (_, _, lower, _) => (start_dir, lower, None),
    };
    let strict = !spec.volumes.is_empty();
    let binds = spec
        .setup
        .mounts
        .iter()
        .map(|m| match m.is_bind() {
            true => bind_tree(m, strict, &guarded, userns.as_ref())
                .map(Some)
                .with_context(|| format!("mounts: bind on {}", m.destination.display())),
            false => Ok(None),
        })
        .collect::<Result<_>>()?;
    let etc = match spec.private_layer {
        true => etc_files(store, &spec.id)?,
        false => vec![],
    };
    let caller_dir = nix::fcntl::open(
        ".",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("opening the working directory")?;
    Ok(HostObjects {
        start_dir,
        caller_dir,
        lower,
        root,
        binds,
        etc,
    })
}

/// ROOTFS (or a bundle's root), opened and checked.
fn open_rootfs(spec: &ContainerSpec, guarded: &Guarded) -> Result<Opened> {
    let rootfs = open_host_dir(&spec.rootfs, "ROOTFS")?;
    guarded.check(&rootfs, "ROOTFS", &spec.rootfs)?;
    Ok(rootfs)
}

/// A directory the user named (already resolved when the words were read), opened with no
/// symlink followed on its way.
fn open_host_dir(path: &Path, what: &str) -> Result<Opened> {
    let opened = host_path::open_resolved(path).map_err(|e| match e {
        Errno::ELOOP => anyhow::anyhow!(
            "{what} {}: a symbolic link is on its way now (it changed since minibox resolved \
             it); give a path without links that only you can change",
            path.display()
        ),
        e => anyhow::anyhow!("{what} {}: cannot open it: {e}", path.display()),
    })?;
    if !opened.is_dir() {
        bail!("{what} {} is not a directory (any more)", path.display());
    }
    Ok(opened)
}

/// An image layer's directory relative to the data root.
pub fn layer_rel(layer: &Path, data_root: &Path) -> Result<String> {
    layer
        .strip_prefix(data_root)
        .ok()
        .and_then(|r| r.to_str())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "the image layer {} is not in the data root {}",
                layer.display(),
                data_root.display()
            )
        })
}

/// A bind's source as a detached tree (its submounts with it for `rbind`) whose every mount
/// carries the entry's flags: `ro`, `nosuid`, `nodev`, `noexec` hold below the source's top
/// too. `nodev` always, but on a bound device node. It is a slave of the host's tree (docker's
/// default): mounts made in it never reach the host.
/// `strict` (minibox's own `-v`, resolved when read): the path is opened as it is, a link on
/// it refused. Otherwise (a bundle's config.json, whose paths may hold links such as
/// `/var/run`) it is resolved first; the opened object is checked either way.
fn bind_tree(
    m: &MountSpec,
    strict: bool,
    guarded: &Guarded,
    userns: Option<&std::fs::File>,
) -> Result<OwnedFd> {
    let source = m.source.as_deref().context("a bind mount needs a source")?;
    let what = "the bind source";
    let resolved;
    let path = match strict {
        true => source,
        false => {
            resolved = source
                .canonicalize()
                .with_context(|| format!("{what} {}: cannot open it", source.display()))?;
            resolved.as_path()
        }
    };
    let opened = host_path::open_resolved(path).map_err(|e| match e {
        Errno::ELOOP => anyhow::anyhow!(
            "{what} {}: a symbolic link is on its way now (it changed since minibox resolved \
             it); give a path without links that only you can change",
            source.display()
        ),
        e => anyhow::anyhow!("{what} {}: cannot open it: {e}", source.display()),
    })?;
    guarded.check(&opened, what, source)?;
    let kind = opened.stat.st_mode & libc::S_IFMT;
    let is_device = kind == libc::S_IFCHR || kind == libc::S_IFBLK;
    let tree = mount_api::clone_tree(&opened.fd, m.parsed.recursive)
        .with_context(|| format!("copying {what} {} (open_tree)", source.display()))?;
    let mut attrs = mounts::bind_attrs(&m.parsed);
    // The device cgroup decides which nodes open; nodev is a second wall unless `dev` is asked.
    if !is_device && !m.parsed.cleared.contains(nix::mount::MsFlags::MS_NODEV) {
        attrs = attrs.with(attr::NODEV);
    }
    attrs.propagation = nix::mount::MsFlags::MS_SLAVE;
    // `idmap`: the tree's owners are seen through the container's maps (host uid 0's files are
    // its root's, and what its root writes is stored as host uid 0's).
    if let (true, Some(userns)) = (m.parsed.idmap, userns) {
        mount_api::set_idmap(&tree, userns).with_context(|| {
            format!(
                "id-mapping {what} {} (idmap): its filesystem must support id-mapped mounts \
                 (ext4, xfs, btrfs; tmpfs from Linux 6.3)",
                source.display()
            )
        })?;
    }
    mount_api::set_attrs(&tree, &attrs)
        .with_context(|| format!("setting the flags of {what} {}", source.display()))?;
    Ok(tree)
}

/// The container's /etc files in its state directory, each a detached read-only mount: the
/// container reads them (and sees a network's later names), but never writes into minibox's
/// state directory (a tmpfs shared by every container).
fn etc_files(store: &Store, id: &str) -> Result<Vec<(&'static str, OwnedFd)>> {
    let dir = host_path::open_beneath(store.root_fd(), id, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .with_context(|| format!("opening {}", store.dir(id).display()))?;
    let mut files = vec![];
    for name in ETC_FILES {
        let file = match host_path::open_beneath(&dir, name, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("opening {}", store.dir(id).join(name).display()))
            }
        };
        let tree = mount_api::clone_tree(&file, false).with_context(|| {
            format!(
                "copying the mount of {}",
                store.dir(id).join(name).display()
            )
        })?;
        let ro = Attrs::default().with(attr::RDONLY | attr::NOSUID | attr::NODEV | attr::NOEXEC);
        mount_api::set_attrs(&tree, &ro)
            .with_context(|| format!("making /etc/{name} read-only"))?;
        files.push((name, tree));
    }
    Ok(files)
}
