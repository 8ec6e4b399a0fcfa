//! The container's filesystem: its own mount table, built from ROOTFS, then `pivot_root`ed into.
//!
//! Every path inside ROOTFS is resolved with `openat2(RESOLVE_IN_ROOT)`, so a symlink planted in
//! the rootfs (say `proc -> /`) resolves inside ROOTFS, never out onto the host (the runc
//! CVE-2021-30465 class). Mounts then target the opened file through `/proc/self/fd/N`.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{mkdirat, Mode};
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::{chdir, fchdir, pivot_root, symlinkat};

use crate::kernel::{host_path, mount_api};

/// Paths docker hides from the container (moby `oci/defaults.go`).
pub const MASKED_PATHS: [&str; 11] = [
    "proc/asound",
    "proc/acpi",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Paths docker makes read-only (moby `oci/defaults.go`).
pub const READONLY_PATHS: [&str; 5] = [
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

/// The device nodes a container gets, made afresh in its own `/dev` (docker's and runc's set,
/// with their numbers): (name, major, minor).
pub const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The usual `/dev` symlinks: (name, target).
const DEV_SYMLINKS: [(&str, &str); 6] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
    ("core", "/proc/kcore"),
];

const NONE: Option<&str> = None;

/// Opens a host directory as an `O_PATH` handle.
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening directory {}", path.display()))
}

/// Resolves `rel` inside `root` as if `root` were `/`, following no magic links.
///
/// The kernel answers EAGAIN when a rename or mount anywhere on the host raced a `..` of the
/// walk (it cannot then prove the walk stayed inside): openat2(2) says to try again, and a busy
/// host (other containers starting) makes that common, so a few tries are made.
pub(crate) fn open_in(root: &impl AsFd, rel: &str, flags: OFlag) -> nix::Result<OwnedFd> {
    const TRIES: usize = 64;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut tries = 1;
    loop {
        match openat2(root.as_fd(), rel, how) {
            Err(Errno::EAGAIN) if tries < TRIES => tries += 1,
            done => return done,
        }
    }
}

/// Reads a whole file of the rootfs, as bytes (an image's text need not be UTF-8).
///
/// The rootfs is the image's to shape, and minibox reads it as root on the host: the file is
/// first reached with `O_PATH`, which opens nothing (no FIFO blocks, no device driver runs),
/// and only a regular file is then opened for reading — through the `O_PATH` handle's own
/// `/proc/self/fd` link, so it is the very inode that was checked, whatever the rootfs's paths
/// turn into meanwhile. A huge file is not slurped (1 MiB at most).
pub fn read_file_in(root: &impl AsFd, rel: &str) -> std::io::Result<Vec<u8>> {
    const MAX: u64 = 1 << 20;
    let handle = open_in(root, rel, OFlag::O_PATH)?;
    let checked = nix::sys::stat::fstat(&handle)?;
    if checked.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(std::io::Error::other(format!(
            "/{rel} in the rootfs is not a regular file ({}): minibox reads only regular files \
             there; replace it with one",
            file_kind(checked.st_mode)
        )));
    }
    let file = std::fs::File::from(nix::fcntl::open(
        fd_path(&handle).as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
        Mode::empty(),
    )?);
    let opened = nix::sys::stat::fstat(&file)?;
    if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino) {
        return Err(std::io::Error::other(format!(
            "/{rel} in the rootfs changed while minibox opened it"
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// What kind of file a mode is, for messages.
pub(crate) fn file_kind(mode: libc::mode_t) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "a directory",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFLNK => "a symbolic link",
        _ => "not a regular file",
    }
}

/// The path through which mount(2) reaches exactly the file `fd` holds.
pub(crate) fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Opens directory `rel` inside `root`, creating it and any missing parent (mode 0755).
pub(crate) fn ensure_dir(root: &impl AsFd, rel: &str) -> Result<OwnedFd> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    match open_in(root, rel, dir_flags) {
        Err(Errno::ENOENT) => {}
        other => return other.with_context(|| format!("opening /{rel} in the rootfs")),
    }
    let mut done = String::new();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        let parent = open_in(root, if done.is_empty() { "." } else { &done }, dir_flags)
            .with_context(|| format!("opening /{done} in the rootfs"))?;
        match mkdirat(&parent, part, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(Errno::EROFS) => bail!(
                "the rootfs is read-only and lacks the mount point /{rel}: create it in ROOTFS \
                 (mkdir ROOTFS/{rel}) or make ROOTFS writable"
            ),
            Err(e) => {
                let path = if done.is_empty() {
                    part.to_string()
                } else {
                    format!("{done}/{part}")
                };
                return Err(e).with_context(|| format!("creating /{path} in the rootfs"));
            }
        }
        done = if done.is_empty() {
            part.to_string()
        } else {
            format!("{done}/{part}")
        };
    }
    open_in(root, rel, dir_flags).with_context(|| format!("opening /{rel} in the rootfs"))
}

fn mount_at(
    src: Option<&str>,
    target: &impl AsRawFd,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
    what: &str,
) -> Result<()> {
    mount(src, fd_path(target).as_str(), fstype, flags, data)
        .with_context(|| format!("mounting {what}"))
}

/// Turns every mount we inherited into a slave: what we mount from now on never propagates back
/// to the host, and `pivot_root` accepts our root (it refuses shared parents).
pub fn make_mounts_private() -> Result<()> {
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_SLAVE, NONE)
        .context("making / a recursive slave mount")
}

/// What lies below a container's own layer.
pub enum Lower {
    /// ROOTFS, as a detached copy of its mount made (from the checked descriptor) before the
    /// clone; attached in the layer's staging directory, in our own mount namespace.
    Rootfs(OwnedFd),
    /// An image's layers, top first, relative to the data root (`layers/<hex>`).
    Layers(Vec<String>),
}

/// The directories of a container's root: its lower layers below, its own layer above, all
/// reached from the data root's descriptor (this process's working directory at the clone,
/// which the kernel moved into our own mount namespace).
pub struct OverlayDirs<'a> {
    /// The data root, in our own mount namespace.
    pub data_root: &'a OwnedFd,
    /// The container's layer directory below it (`containers/<id>`), holding `upper` (where
    /// the container's writes land), `work` (overlayfs's scratch space), `merged` (where the
    /// overlay goes) and `mnt` (staging).
    pub layer: &'a str,
    pub lower: &'a Lower,
    /// For messages: the data root and ROOTFS (or the image's top layer) as the user named them.
    pub data_root_path: &'a Path,
    pub rootfs_path: &'a Path,
}

/// A bundle's root: the OCI contract is that `root.path` *is* the container's root, prepared by
/// whoever made the bundle (podman and containerd mount their own overlay there), so writes
/// land in it. It was opened and checked before the clone and made our working directory,
/// which the kernel moved into our own mount namespace: its tree is copied from there
/// (`open_tree`, submounts included), made `nodev` throughout (a device node in it opens
/// nothing), and attached over it — a mount point, as `pivot_root` needs.
pub fn bind_root_from_cwd() -> Result<OwnedFd> {
    let cwd = open_dir(Path::new("."))?;
    let tree =
        mount_api::clone_tree(&cwd, true).context("copying the bundle's root (open_tree)")?;
    mount_api::set_attrs(
        &tree,
        &mount_api::Attrs::default().with(mount_api::attr::NODEV),
    )
    .context("making the bundle's root nodev")?;
    mount_api::attach(&tree, &cwd).context("mounting the bundle's root onto itself")?;
    Ok(tree)
}

/// The container's root when it has a user namespace of its own: the same overlay as
/// `mount_overlay`'s, but made here, by the host's root, before the clone, as a *detached*
/// mount (`fsopen`/`fsmount`) that only its descriptor reaches until the container attaches
/// it (`attach_root_to_cwd`). Its lower layers (ROOTFS's tree, or the image's layers) are
/// id-mapped mounts through `userns` (the container's maps): a file the image gives to uid 0 is
/// its root's, seen from the host as the first id of its range, and no layer is copied or
/// chowned (the layers stay shared, read-only, by every container). Its own layer (`upper`)
/// is owned by its range; what it writes there is owned by the ids it writes as.
pub fn idmapped_overlay(dirs: &OverlayDirs, userns: &impl AsFd) -> Result<OwnedFd> {
    let layer = open_below(dirs.data_root, dirs.layer)?;
    let upper = open_below(&layer, "upper")?;
    let work = open_below(&layer, "work")?;
    let cannot_map = |e: Errno, what: &str| {
        anyhow::anyhow!(
            "cannot id-map {what} for the container's user namespace ({e}): id-mapped mounts \
             need Linux 5.12 or later and a filesystem that supports them (ext4, xfs, btrfs; \
             tmpfs from 6.3); move the data root (--data-root) or ROOTFS to one, or run with \
             --userns host"
        )
    };
    let lowers: Vec<OwnedFd> = match dirs.lower {
        Lower::Rootfs(tree) => {
            let what = format!("ROOTFS {}", dirs.rootfs_path.display());
            mount_api::set_idmap(tree, userns).map_err(|e| cannot_map(e, &what))?;
            vec![tree.try_clone().context("duplicating ROOTFS's tree")?]
        }
        Lower::Layers(rels) => rels
            .iter()
            .map(|rel| {
                let what = format!("the image layer {rel}");
                let dir = open_below(dirs.data_root, rel)?;
                let tree = mount_api::clone_tree(&dir, false)
                    .with_context(|| format!("copying the mount of {what} (open_tree)"))?;
                mount_api::set_idmap(&tree, userns).map_err(|e| cannot_map(e, &what))?;
                Ok(tree)
            })
            .collect::<Result<_>>()?,
    };
    let fs = mount_api::Fs::open("overlay").map_err(|e| match e {
        Errno::ENODEV => anyhow::anyhow!(
            "this kernel has no overlay filesystem, which holds each container's writable \
             layer: load it (modprobe overlay)"
        ),
        e => anyhow::anyhow!("fsopen(overlay): {e}"),
    })?;
    let configured = lowers
        .iter()
        .map(|l| ("lowerdir+", fd_path(l)))
        .chain([("upperdir", fd_path(&upper)), ("workdir", fd_path(&work))])
        .try_for_each(|(key, value)| fs.set(key, &value).map_err(|e| (key, e)));
    let data_root_unfit = |e: String| {
        anyhow::anyhow!(
            "cannot mount the container's writable layer over ROOTFS {} ({e}): the data root {} \
             is likely on a filesystem that cannot hold an overlay's upper layer (overlayfs, \
             some FUSE or network filesystems); give --data-root (or MINIBOX_DATA_ROOT) a \
             directory on ext4, xfs, btrfs or tmpfs",
            dirs.rootfs_path.display(),
            dirs.data_root_path.display()
        )
    };
    match configured {
        Err(("lowerdir+", e)) => bail!(
            "cannot give the container's overlay its id-mapped lower layers ({e}): `lowerdir+` \
             needs Linux 6.8 or later; run with --userns host"
        ),
        Err((_, e)) => return Err(data_root_unfit(e.to_string())),
        Ok(()) => {}
    }
    fs.mount(mount_api::attr::NODEV).map_err(|(e, log)| {
        data_root_unfit(match log.is_empty() {
            true => e.to_string(),
            false => format!("{e}: {log}"),
        })
    })
}

/// Attaches the container's root (`idmapped_overlay`'s detached mount) onto our working
/// directory (its layer's `merged`, carried into our mount namespace at the clone), and
/// returns a handle on it: a mount point, as `pivot_root` needs.
pub fn attach_root_to_cwd(tree: &OwnedFd) -> Result<OwnedFd> {
    mount_api::attach_to_cwd(tree).context("attaching the container's root (move_mount)")?;
    tree.try_clone()
        .context("duplicating the root's descriptor")
}

/// Mounts the container's root, an overlay of its lower layers and its own layer, and returns
/// a handle on it. It is a mount point (`pivot_root` needs one), and `nodev`: a device node
/// shipped in (or later made in) the rootfs opens nothing.
/// The directories reach overlayfs as `/proc/self/fd/N` of descriptors in our own mount
/// namespace: no host path is looked up, a `,`, `:` or `\` in one cannot break the option
/// string, and the string stays far below its one-page limit.
pub fn mount_overlay(dirs: &OverlayDirs) -> Result<OwnedFd> {
    let layer = open_below(dirs.data_root, dirs.layer)?;
    let upper = open_below(&layer, "upper")?;
    let work = open_below(&layer, "work")?;
    let merged = open_below(&layer, "merged")?;
    let staging = open_below(&layer, "mnt")?;
    let lower: Vec<OwnedFd> = match dirs.lower {
        Lower::Rootfs(tree) => {
            mount_api::attach(tree, &staging).with_context(|| {
                format!(
                    "attaching ROOTFS {} below the container's layer",
                    dirs.rootfs_path.display()
                )
            })?;
            vec![open_dir_of(tree)?]
        }
        Lower::Layers(rels) => rels
            .iter()
            .map(|rel| open_below(dirs.data_root, rel))
            .collect::<Result<_>>()?,
    };
    let lowerdir: Vec<String> = lower.iter().map(fd_path).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        fd_path(&upper),
        fd_path(&work)
    );
    // The kernel takes one page of options: ~18 bytes a layer leaves room for some 200.
    // Beyond, docker overlay2's way: short links to the layers in the container's own
    // (root-only) layer directory, named relative to it.
    let options = match (options.len() < 4096, dirs.lower) {
        (true, _) | (false, Lower::Rootfs(_)) => options,
        (false, Lower::Layers(rels)) => short_lower_options(&layer, rels)?,
    };
    let target = fd_path(&merged);
    let ovl = Some("overlay");
    match mount(
        ovl,
        target.as_str(),
        ovl,
        MsFlags::MS_NODEV,
        Some(options.as_str()),
    ) {
        Ok(()) => {}
        Err(Errno::ENODEV) => bail!(
            "this kernel has no overlay filesystem, which holds each container's writable \
             layer: load it (modprobe overlay)"
        ),
        Err(e) => bail!(
            "cannot mount the container's writable layer over ROOTFS {} ({e}): the data root \
             {} is likely on a filesystem that cannot hold an overlay's upper layer \
             (overlayfs, some FUSE or network filesystems); give --data-root (or \
             MINIBOX_DATA_ROOT) a directory on ext4, xfs, btrfs or tmpfs",
            dirs.rootfs_path.display(),
            dirs.data_root_path.display()
        ),
    }
    // The handle we had is the directory under the new mount: reach the overlay's root.
    open_below(&layer, "merged")
}

/// A directory below `dir` (`..`, symlinks and magic links refused), as an `O_PATH` handle.
fn open_below(dir: &impl AsFd, rel: &str) -> Result<OwnedFd> {
    host_path::open_beneath(dir, rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .with_context(|| format!("opening {rel} in the data root"))
}

/// The root directory of the mount `tree` holds, as a directory handle of its own.
fn open_dir_of(tree: &OwnedFd) -> Result<OwnedFd> {
    host_path::open_beneath(tree, ".", OFlag::O_PATH | OFlag::O_DIRECTORY)
        .context("opening ROOTFS's attached copy")
}

/// `lowerdir=l/0:l/1:…,upperdir=upper,workdir=work`, relative to the container's layer
/// directory, which becomes our working directory; `l/N` is a relative link to the N-th lower
/// layer (`../../../layers/<hex>`), so it never leaves the data root.
fn short_lower_options(layer: &OwnedFd, rels: &[String]) -> Result<String> {
    match mkdirat(layer, "l", Mode::from_bits_truncate(0o700)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e).context("creating l/ in the container's layer"),
    }
    let links = open_below(layer, "l")?;
    let mut names = vec![];
    for (i, rel) in rels.iter().enumerate() {
        let name = i.to_string();
        let _ = nix::unistd::unlinkat(
            &links,
            name.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
        symlinkat(format!("../../../{rel}").as_str(), &links, name.as_str())
            .with_context(|| format!("creating l/{name} in the container's layer"))?;
        names.push(format!("l/{i}"));
    }
    fchdir(layer).context("entering the container's layer")?;
    let options = format!("lowerdir={},upperdir=upper,workdir=work", names.join(":"));
    if options.len() >= 4096 {
        bail!(
            "the image has {} layers, more than one overlay mount can name (its options must \
             fit in 4096 bytes): flatten the image (docker export | minibox import)",
            rels.len()
        );
    }
    Ok(options)
}

/// Remounts the bind mount at `path` with `extra` flags, keeping the ones it has (a remount
/// would otherwise clear nosuid, noexec...).
fn remount_bind(path: &Path, extra: MsFlags) -> Result<()> {
    let have = statvfs(path)
        .with_context(|| format!("statvfs {}", path.display()))?
        .flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra;
    for (st, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if have.contains(st) {
            flags |= ms;
        }
    }
    mount(NONE, path, NONE, flags, NONE).with_context(|| format!("remounting {}", path.display()))
}

/// The usual `/dev` symlinks, in a fresh `/dev`.
pub(crate) fn dev_symlinks(dev: &OwnedFd) -> Result<()> {
    for (name, target) in DEV_SYMLINKS {
        symlinkat(target, dev, name).with_context(|| format!("creating /dev/{name}"))?;
    }
    Ok(())
}

/// Hides what would leak host information or power (`linux.maskedPaths`; docker's by default):
/// directories get an empty read-only tmpfs, files get the container's `/dev/null` (so the
/// mounts come first). Paths are relative to the root. Returns how many paths were masked.
pub fn mask_paths(root: &OwnedFd, paths: &[String]) -> Result<usize> {
    let mut masked = 0;
    for rel in paths.iter().map(String::as_str) {
        let Some(fd) = open_existing(root, rel)? else {
            continue;
        };
        let is_dir =
            nix::sys::stat::fstat(&fd).map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)?;
        if is_dir {
            mount_at(
                Some("tmpfs"),
                &fd,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
                rel,
            )?;
        } else {
            // The container's own /dev/null (mount_dev made it), not the host's inode.
            let null = open_in(root, "dev/null", OFlag::O_PATH).context("opening /dev/null")?;
            let null = fd_path(&null);
            mount_at(Some(null.as_str()), &fd, NONE, MsFlags::MS_BIND, NONE, rel)?;
        }
        masked += 1;
    }
    Ok(masked)
}

/// Makes `linux.readonlyPaths` (docker's by default) read-only: bind each onto itself, then
/// remount it ro. Paths are relative to the root. Returns how many there were.
pub fn make_paths_readonly(root: &OwnedFd, paths: &[String]) -> Result<usize> {
    let mut frozen = 0;
    for rel in paths.iter().map(String::as_str) {
        let Some(fd) = open_existing(root, rel)? else {
            continue;
        };
        let path = fd_path(&fd);
        mount(
            Some(path.as_str()),
            path.as_str(),
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        )
        .with_context(|| format!("bind-mounting /{rel}"))?;
        // The remount acts on the mount now on top of the path; reach it afresh.
        let top = open_in(root, rel, OFlag::O_PATH).with_context(|| format!("reopening /{rel}"))?;
        let ro = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        mount_at(NONE, &top, NONE, ro, NONE, &format!("/{rel} read-only"))?;
        frozen += 1;
    }
    Ok(frozen)
}

fn open_existing(root: &OwnedFd, rel: &str) -> Result<Option<OwnedFd>> {
    match open_in(root, rel, OFlag::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("opening /{rel}")),
    }
}

/// Makes the rootfs `/` and puts the host's root out of reach: `pivot_root(".", ".")` stacks
/// the old root over the new one, and a lazy unmount of it then drops it (runc's idiom; it
/// needs no `put_old` directory, so nothing is left behind in ROOTFS).
pub fn pivot_into(root: &OwnedFd) -> Result<()> {
    let old_root = open_dir(Path::new("/"))?;
    fchdir(root).context("entering the rootfs")?;
    pivot_root(".", ".").context("pivot_root into the rootfs")?;
    // Into the old root, now stacked on the new one: "." names it, not the new root (whose
    // mounts keep the propagation config.json gave them: a `shared` mount stays shared).
    fchdir(&old_root).context("entering the old root")?;
    // Slave first, so the unmount below cannot propagate to the host's mounts.
    mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
        .context("making the old root a slave")?;
    umount2(".", MntFlags::MNT_DETACH).context("detaching the old root")?;
    chdir("/").context("chdir /")
}

/// `linux.rootfsPropagation`: how the new root shares mounts with its peers (its old peers
/// are the host's, made slaves of it first, so nothing flows back to the host unasked).
pub fn set_root_propagation(propagation: Option<MsFlags>) -> Result<()> {
    match propagation {
        Some(flags) => mount(NONE, "/", NONE, flags, NONE).context("setting the propagation of /"),
        None => Ok(()),
    }
}

/// `create --no-pivot` (a root on an initramfs, where `pivot_root` is refused): the rootfs is
/// moved over `/` and chroot'ed into. Weaker than `pivot_root`: the host's root stays
/// mounted underneath, reachable by a process that can escape a chroot (CAP_SYS_CHROOT).
pub fn move_into(root: &OwnedFd) -> Result<()> {
    fchdir(root).context("entering the rootfs")?;
    mount(Some("."), "/", NONE, MsFlags::MS_MOVE, NONE).context("moving the rootfs over /")?;
    nix::unistd::chroot(".").context("chroot into the rootfs")?;
    chdir("/").context("chdir /")
}

/// A mount namespace that is not the container's own (config.json joins one by path, or lists
/// none and shares the caller's): its root is its owner's, and `pivot_root` would move the root
/// of every process in it. The container is chroot'ed into its rootfs instead (as crun and
/// runc do without a mount namespace), weaker in the same way as `--no-pivot`.
pub fn chroot_into(root: &OwnedFd) -> Result<()> {
    fchdir(root).context("entering the rootfs")?;
    nix::unistd::chroot(".").context("chroot into the rootfs")?;
    chdir("/").context("chdir /")
}

/// `--read-only`: remounts `/` read-only, keeping the flags it already had (nosuid, nodev...).
pub fn make_root_readonly() -> Result<()> {
    remount_bind(Path::new("/"), MsFlags::MS_RDONLY).context("remounting / read-only")
}

/// Creates the working directory if the image lacks it (as docker does).
pub fn ensure_workdir(workdir: &Path) -> Result<()> {
    let root = open_dir(Path::new("/"))?;
    let rel = workdir.to_string_lossy();
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(());
    }
    ensure_dir(&root, rel).map(drop)
}

/// The files minibox writes for every container (in its state directory) and bind-mounts over
/// the rootfs's own, as docker does: the rootfs is never edited.
pub const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// Attaches minibox's `hosts`, `hostname` and `resolv.conf` (`files`: detached read-only
/// mounts of the files in the state directory, made before the clone) onto `/etc/...` of the
/// rootfs. A missing target is created empty first (in the container's own layer, when it has
/// one); a symbolic link there (debootstrap's resolv.conf) is replaced by a file only in the
/// container's own layer (`replace_links`), else that file is left as the rootfs has it. A
/// read-only rootfs without the file keeps its own. Returns how many were mounted.
pub fn mount_etc_files(
    root: &OwnedFd,
    files: &[(&str, OwnedFd)],
    replace_links: bool,
) -> Result<usize> {
    let mut mounted = 0;
    if files.is_empty() {
        return Ok(0);
    }
    let etc = match ensure_dir(root, "etc") {
        Ok(fd) => fd,
        // A read-only rootfs without /etc: nothing to put the files on.
        Err(_) => return Ok(0),
    };
    for (name, tree) in files {
        let Some(target) = file_target(&etc, name, replace_links)? else {
            continue;
        };
        mount_api::attach(tree, &target).with_context(|| format!("mounting /etc/{name}"))?;
        mounted += 1;
    }
    Ok(mounted)
}

/// `/etc/NAME` as a regular file to mount on, made if need be; `None` when it cannot be.
fn file_target(etc: &OwnedFd, name: &str, replace_links: bool) -> Result<Option<OwnedFd>> {
    let no_follow = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    match openat2(etc.as_fd(), name, no_follow) {
        Ok(fd) => {
            let kind = nix::sys::stat::fstat(&fd)?.st_mode & libc::S_IFMT;
            match kind {
                libc::S_IFREG => return Ok(Some(fd)),
                libc::S_IFLNK if replace_links => {
                    nix::unistd::unlinkat(etc, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                        .with_context(|| format!("replacing the link /etc/{name}"))?;
                }
                libc::S_IFLNK => return Ok(None),
                other => bail!(
                    "/etc/{name} in the rootfs is {}: minibox mounts its {name} only on a \
                     regular file; remove it from ROOTFS",
                    file_kind(other)
                ),
            }
        }
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e).with_context(|| format!("opening /etc/{name} in the rootfs")),
    }
    let create = OpenHow::new()
        .flags(OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC)
        .mode(Mode::from_bits_truncate(0o644))
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    match openat2(etc.as_fd(), name, create) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(Errno::EROFS) | Err(Errno::EACCES) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("creating /etc/{name} in the rootfs")),
    }
    openat2(etc.as_fd(), name, no_follow)
        .map(Some)
        .with_context(|| format!("opening /etc/{name} in the rootfs"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A walk through `..` while renames happen elsewhere on the host (other containers
    /// starting): the kernel answers EAGAIN now and then, and `open_in` tries again, so it never
    /// fails. Loops long enough that the EAGAIN comes without the retry.
    #[test]
    fn a_dotdot_walk_survives_renames_elsewhere() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("a")).unwrap();
        std::fs::write(root.path().join("b"), "").unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let (x, y) = (elsewhere.path().join("x"), elsewhere.path().join("y"));
        std::fs::write(&x, "").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let renamer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::fs::rename(&x, &y).unwrap();
                    std::fs::rename(&y, &x).unwrap();
                }
            })
        };
        let dir = open_dir(root.path()).unwrap();
        let failed = (0..50_000)
            .map(|_| open_in(&dir, "a/../a/../b", OFlag::O_PATH))
            .find_map(|r| r.err());
        stop.store(true, Ordering::Relaxed);
        renamer.join().unwrap();
        assert_eq!(failed, None);
    }
}
