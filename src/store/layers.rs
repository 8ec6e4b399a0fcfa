//! Each container's own writable layer: `<data-root>/containers/<id>/{upper,work,merged}`.
//!
//! The container's root is an overlay of ROOTFS (below, never written) and `upper` (above,
//! where every write lands): ROOTFS stays as it was, containers of one ROOTFS do not see each
//! other's writes, and what a container leaves (a setuid-root binary, a 0666 device node) is in
//! a directory only root can enter. The overlay is mounted by the container's init in its own
//! mount namespace, so on the host these are plain directories with no mount in them, and
//! removing them is `remove_dir_all` (which never follows a symlink out).

use std::fs;
use std::io::ErrorKind;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, mkdirat, FileStat, Mode};

use crate::kernel::host_path;

/// Where container layers live unless `--data-root` says otherwise.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/minibox";

/// The directory under the data root that holds one directory per container.
const CONTAINERS: &str = "containers";

/// In a container's layer directory: where its mount namespace attaches ROOTFS (a copy of its
/// mount, taken before the clone) to lay the overlay over it. On the host it stays an empty
/// directory.
pub const STAGING: &str = "mnt";

/// The data root: minibox's storage on disk, opened once and checked on the opened directory.
/// Containers' layers are made from this descriptor, and a container's first process reaches
/// them (and the image layers) from it, never through the path.
pub struct Layers {
    data_root: PathBuf,
    root: OwnedFd,
    containers: OwnedFd,
}

/// One container's layer directories, as the container's init mounts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The data root it lives in (named in errors: it is what the user can change).
    pub data_root: PathBuf,
    /// `<data-root>/containers/<id>`, mode 0700, root's.
    pub dir: PathBuf,
    /// `dir` relative to the data root (`containers/<id>`).
    pub rel: String,
    /// The container's writes.
    pub upper: PathBuf,
    /// overlayfs's scratch space (same filesystem as `upper`).
    pub work: PathBuf,
    /// Where the overlay is mounted, inside the container's mount namespace only.
    pub merged: PathBuf,
}

impl Layers {
    /// Opens the data root, creating it (mode 0700) if needed. It must be root's and writable
    /// by root alone (checked on the opened directory): whoever else could write there could
    /// swap a container's layer for a symlink between our checks and the mount.
    pub fn open(data_root: &Path) -> Result<Layers> {
        let how = "give --data-root (or MINIBOX_DATA_ROOT) a directory only root can write to";
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_root)
            .with_context(|| format!("creating the data root {}: {how}", data_root.display()))?;
        let canonical = data_root
            .canonicalize()
            .with_context(|| format!("opening the data root {}: {how}", data_root.display()))?;
        let root = host_path::open_resolved(&canonical)
            .map(|o| o.fd)
            .with_context(|| {
                format!(
                    "opening the data root {} (it changed while minibox opened it?): {how}",
                    data_root.display()
                )
            })?;
        check_root_only(&fstat(&root)?, &canonical, how)?;
        match mkdirat(&root, CONTAINERS, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating {}", canonical.join(CONTAINERS).display()))
            }
        }
        let containers_path = canonical.join(CONTAINERS);
        let containers =
            host_path::open_beneath(&root, CONTAINERS, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .with_context(|| {
                    format!(
                        "{} is not a directory of root's: remove it, or {how}",
                        containers_path.display()
                    )
                })?;
        let md = fstat(&containers)?;
        if md.st_uid != 0 {
            bail!(
                "{} is not a directory of root's: remove it, or {how}",
                containers_path.display()
            );
        }
        // Only root may even look into it: the layers hold what containers made as their root.
        if md.st_mode & 0o777 != 0o700 {
            fs::set_permissions(fd_path(&containers), fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making {} root-only", containers_path.display()))?;
        }
        Ok(Layers {
            data_root: canonical,
            root,
            containers,
        })
    }

    /// The data root, canonical.
    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// The data root, as opened (and checked).
    pub fn root(&self) -> &OwnedFd {
        &self.root
    }

    /// The descriptors it holds (a process that closes what it inherited keeps these).
    pub fn held_fds(&self) -> [std::os::fd::RawFd; 2] {
        use std::os::fd::AsRawFd;
        [self.root.as_raw_fd(), self.containers.as_raw_fd()]
    }

    /// The layer of container `id` (nothing is made).
    pub fn layer(&self, id: &str) -> Layer {
        let dir = self.data_root.join(CONTAINERS).join(id);
        Layer {
            data_root: self.data_root.clone(),
            rel: format!("{CONTAINERS}/{id}"),
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            dir,
        }
    }

    /// Container `id`'s layer as an earlier run made it (`start` of an exited container keeps
    /// what it wrote): its directory must be there, root's, beneath the data root.
    pub fn existing(&self, id: &str) -> Result<Layer> {
        let layer = self.layer(id);
        let dir = host_path::open_beneath(&self.containers, id, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .with_context(|| {
                format!(
                    "the container's layer {} is gone: the container cannot start again; \
                     remove it (minibox rm) and run a new one",
                    layer.dir.display()
                )
            })?;
        if fstat(&dir)?.st_uid != 0 {
            bail!(
                "the container's layer {} is not root's: remove the container (minibox rm)",
                layer.dir.display()
            );
        }
        Ok(layer)
    }

    /// Makes container `id`'s layer. `upper` gets the owner and mode of `top`, the root of
    /// ROOTFS as opened (the overlay's `/` takes them from there); the rest stays root's and
    /// 0700.
    pub fn create(&self, id: &str, top: &FileStat) -> Result<Layer> {
        let layer = self.layer(id);
        let how = "give --data-root (or MINIBOX_DATA_ROOT) a writable directory";
        let made_at = |e: Errno| {
            anyhow::Error::new(e).context(format!(
                "creating the container's layer {}: {how}",
                layer.dir.display()
            ))
        };
        // Not EEXIST-tolerant: an existing directory (an id clash) is an error, never reused.
        mkdirat(&self.containers, id, Mode::from_bits_truncate(0o700)).map_err(made_at)?;
        let made = || -> nix::Result<()> {
            let dir =
                host_path::open_beneath(&self.containers, id, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
            for d in ["upper", "work", "merged", STAGING] {
                mkdirat(&dir, d, Mode::from_bits_truncate(0o700))?;
            }
            let upper =
                host_path::open_beneath(&dir, "upper", OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
            nix::unistd::fchown(
                upper.as_fd(),
                Some(nix::unistd::Uid::from_raw(top.st_uid)),
                Some(nix::unistd::Gid::from_raw(top.st_gid)),
            )?;
            nix::sys::stat::fchmod(
                upper.as_fd(),
                Mode::from_bits_truncate(top.st_mode & 0o7777),
            )
        };
        if let Err(e) = made() {
            let _ = remove(&layer.dir);
            return Err(made_at(e));
        }
        Ok(layer)
    }
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd))
}

/// Refuses a data root and a ROOTFS that overlap: layers inside ROOTFS would show a container
/// the writes of every other (and overlayfs refuses such layers anyway). Checked before the
/// data root is made, so that a refused one leaves nothing in ROOTFS.
pub fn check_apart(data_root: &Path, rootfs: &Path) -> Result<()> {
    let containers = resolve(data_root).join(CONTAINERS);
    if containers.starts_with(rootfs) || rootfs.starts_with(&containers) {
        bail!(
            "the data root {} and ROOTFS {} overlap: a container would see the layers of \
             others; give --data-root (or MINIBOX_DATA_ROOT) a directory outside ROOTFS",
            data_root.display(),
            rootfs.display()
        );
    }
    Ok(())
}

/// `path` made absolute, its longest existing part with symlinks resolved (what it will be
/// once made).
fn resolve(path: &Path) -> PathBuf {
    let abs = std::env::current_dir().unwrap_or_default().join(path);
    let mut base = abs.as_path();
    let mut rest = vec![];
    loop {
        if let Ok(real) = base.canonicalize() {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                base = parent;
            }
            _ => return abs,
        }
    }
}

fn check_root_only(md: &FileStat, dir: &Path, how: &str) -> Result<()> {
    if md.st_mode & libc::S_IFMT != libc::S_IFDIR {
        bail!("the data root {} is not a directory: {how}", dir.display());
    }
    if md.st_uid != 0 {
        bail!(
            "the data root {} belongs to uid {}, not root: {how}",
            dir.display(),
            md.st_uid
        );
    }
    if md.st_mode & 0o022 != 0 {
        bail!(
            "the data root {} is writable by others (mode {:o}): {how}",
            dir.display(),
            md.st_mode & 0o7777
        );
    }
    Ok(())
}

/// Removes a container's layer directory and all in it; a missing one is fine.
/// The path comes from the container's record: it must look like one minibox made
/// (`…/containers/<64 hex>`), and nothing may be mounted in it (a mount there would be
/// removed *through*).
pub fn remove(dir: &Path) -> Result<()> {
    let id_like = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
    let in_containers = dir
        .parent()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == CONTAINERS);
    if !(id_like && in_containers) {
        bail!(
            "refusing to remove {}: not a container layer directory minibox made",
            dir.display()
        );
    }
    if let Some(m) = mount_under(dir) {
        bail!(
            "cannot remove the container's layer {}: {} is mounted there; unmount it, then \
             run minibox rm again",
            dir.display(),
            m.display()
        );
    }
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing the layer {}", dir.display())),
    }
}

/// A mount point of ours at or below `dir`, if any.
fn mount_under(dir: &Path) -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mountinfo(m)))
        .find(|m| m.starts_with(dir))
}

/// mountinfo writes space, tab, newline and backslash in a path as `\ooo` octal escapes.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c\011d"), "/a b\\c\td");
        assert_eq!(unescape_mountinfo(r"/plain\x"), r"/plain\x");
    }

    #[test]
    fn remove_refuses_what_is_not_a_layer_dir() {
        let base = tempfile::tempdir().unwrap();
        let e = remove(base.path()).unwrap_err().to_string();
        assert!(e.contains("refusing"), "{e}");
        assert!(base.path().exists());
        let gone = base.path().join(CONTAINERS).join("a".repeat(64));
        remove(&gone).unwrap();
    }

    #[test]
    fn layers_are_root_only_and_removed_whole() {
        if !nix::unistd::geteuid().is_root() {
            return; // chown needs root; the integration tests cover it as root
        }
        let base = tempfile::tempdir().unwrap();
        let rootfs = tempfile::tempdir().unwrap();
        fs::set_permissions(rootfs.path(), fs::Permissions::from_mode(0o751)).unwrap();
        let layers = Layers::open(&base.path().join("data")).unwrap();
        let id = "b".repeat(64);
        let top = nix::sys::stat::stat(rootfs.path()).unwrap();
        let layer = layers.create(&id, &top).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&base.path().join("data")), 0o700);
        assert_eq!(mode(&base.path().join("data/containers")), 0o700);
        assert_eq!(mode(&layer.dir), 0o700);
        assert_eq!(mode(&layer.upper), 0o751);
        assert!(layers.create(&id, &top).is_err(), "a layer reused");
        assert!(layer.dir.join(STAGING).is_dir());
        fs::write(layer.upper.join("f"), "x").unwrap();
        std::os::unix::fs::symlink(rootfs.path(), layer.upper.join("out")).unwrap();
        fs::write(rootfs.path().join("keep"), "x").unwrap();
        remove(&layer.dir).unwrap();
        assert!(!layer.dir.exists());
        assert!(
            rootfs.path().join("keep").exists(),
            "removal followed a link"
        );
        // A data root inside ROOTFS is refused (by name, before anything is made).
        let e = check_apart(&rootfs.path().join("data"), rootfs.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlap"), "{e}");
    }

    #[test]
    fn a_data_root_others_can_write_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("data");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let e = Layers::open(&dir).err().unwrap().to_string();
        assert!(
            e.contains("writable by others") && e.contains("--data-root"),
            "{e}"
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&dir, Some(1000), None).unwrap();
        let e = Layers::open(&dir).err().unwrap().to_string();
        assert!(e.contains("uid 1000"), "{e}");
    }
}
