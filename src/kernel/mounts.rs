//! The container's mount list (config.json `mounts`), made in the order given, and the device
//! nodes of its `/dev` (`linux.devices`).
//!
//! Every destination is resolved inside the new root with `openat2(RESOLVE_IN_ROOT)` and the
//! mount reaches it through `/proc/self/fd/N` (runc CVE-2021-30465): a symlink planted in the
//! rootfs resolves inside it, never onto the host, and a destination that is itself a symlink is
//! refused. Missing destinations are made in the rootfs (a directory, or a file for a bind of a
//! file).
//!
//! Which device nodes open at all is the device cgroup's to decide (`cgroup::devices`); the
//! mounts add a second wall where nothing asks otherwise. A `tmpfs` or a bound directory is
//! mounted `nodev` unless its options say `dev`; `/dev` holds only the six default nodes and the
//! `linux.devices` ones, each on a mount of its own, and is `nodev` itself (again, unless `dev`).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag};
use nix::sys::statvfs::{fstatvfs, FsFlags};

use crate::kernel::rootfs::{ensure_dir, fd_path, file_kind, open_in, DEVICES};

const NONE: Option<&str> = None;

/// The filesystem types a mount list may name (a bind has none, or `bind`/`none`).
pub const TYPES: [&str; 7] = [
    "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2",
];

/// One entry of the mount list, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    /// config.json's `type` (`None` for a bind without one).
    pub typ: Option<String>,
    /// config.json's `source`: for a bind, the host path (made absolute against the bundle).
    pub source: Option<PathBuf>,
    /// config.json's `options`, as given (so the entry prints back unchanged).
    pub options: Vec<String>,
    /// What the options mean to mount(2).
    pub parsed: MountOptions,
}

impl MountSpec {
    pub fn is_bind(&self) -> bool {
        self.parsed.bind
    }

    fn fstype(&self) -> &str {
        match self.typ.as_deref() {
            // cgroup v1 hierarchies inside a container are not made; the cgroup2 view of the
            // container's own cgroup namespace stands for them (as runc does on v2 hosts).
            Some("cgroup") => "cgroup2",
            Some(t) => t,
            None => "",
        }
    }
}

/// mount(2)'s reading of an option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// `bind` or `rbind` (or type `bind`).
    pub bind: bool,
    /// `rbind`: the submounts of the source come along.
    pub recursive: bool,
    /// Flags to set (`ro`, `nosuid`, `nodev`, `noexec`, atime flags...).
    pub flags: MsFlags,
    /// Flags asked off (`rw`, `suid`, `dev`, `exec`...), to tell "not given" from "off".
    pub cleared: MsFlags,
    /// Propagation changes, in order (`rprivate`, `shared`...).
    pub propagation: Vec<MsFlags>,
    /// The filesystem's own options (`size=`, `mode=`, `newinstance`...), comma-joined.
    pub data: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            bind: false,
            recursive: false,
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: vec![],
            data: String::new(),
        }
    }
}

/// Reads an option list as mount(8) does. Unknown words are the filesystem's own (`data`),
/// except for binds, which have none: there an unknown word is an error, as is an id-mapped
/// mount (`idmap`), which minibox does not make.
pub fn parse_options(options: &[String], bind_type: bool) -> Result<MountOptions, String> {
    use MsFlags as F;
    let mut o = MountOptions {
        bind: bind_type,
        ..MountOptions::default()
    };
    let mut data = vec![];
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "defaults" => (F::empty(), F::empty()),
            "ro" => (F::MS_RDONLY, F::empty()),
            "rw" => (F::empty(), F::MS_RDONLY),
            "nosuid" => (F::MS_NOSUID, F::empty()),
            "suid" => (F::empty(), F::MS_NOSUID),
            "nodev" => (F::MS_NODEV, F::empty()),
            "dev" => (F::empty(), F::MS_NODEV),
            "noexec" => (F::MS_NOEXEC, F::empty()),
            "exec" => (F::empty(), F::MS_NOEXEC),
            "sync" => (F::MS_SYNCHRONOUS, F::empty()),
            "async" => (F::empty(), F::MS_SYNCHRONOUS),
            "dirsync" => (F::MS_DIRSYNC, F::empty()),
            "mand" => (F::MS_MANDLOCK, F::empty()),
            "nomand" => (F::empty(), F::MS_MANDLOCK),
            "noatime" => (F::MS_NOATIME, F::empty()),
            "atime" => (F::empty(), F::MS_NOATIME),
            "nodiratime" => (F::MS_NODIRATIME, F::empty()),
            "diratime" => (F::empty(), F::MS_NODIRATIME),
            "relatime" => (F::MS_RELATIME, F::empty()),
            "norelatime" => (F::empty(), F::MS_RELATIME),
            "strictatime" => (F::MS_STRICTATIME, F::empty()),
            "nostrictatime" => (F::empty(), F::MS_STRICTATIME),
            "bind" => {
                o.bind = true;
                continue;
            }
            "rbind" => {
                o.bind = true;
                o.recursive = true;
                continue;
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation
                    .push(propagation(opt).unwrap_or(F::MS_PRIVATE));
                continue;
            }
            "remount" => return Err("option remount is not supported in a mount list".into()),
            "idmap" | "ridmap" => {
                return Err(format!(
                    "option {opt} (id-mapped mounts) is not supported yet"
                ))
            }
            other => {
                if other.is_empty() || other.contains(',') || other.contains('\0') {
                    return Err(format!("option {other:?} is malformed"));
                }
                data.push(other.to_string());
                continue;
            }
        };
        o.flags = (o.flags | set) - clear;
        o.cleared = (o.cleared | clear) - set;
    }
    if o.bind && !data.is_empty() {
        return Err(format!(
            "option {} is not known for a bind mount",
            data.join(",")
        ));
    }
    o.data = data.join(",");
    Ok(o)
}

/// The mount(2) flag of a propagation name (`rslave`, `shared`...).
pub fn propagation(name: &str) -> Option<MsFlags> {
    use MsFlags as F;
    Some(match name {
        "private" => F::MS_PRIVATE,
        "rprivate" => F::MS_PRIVATE | F::MS_REC,
        "shared" => F::MS_SHARED,
        "rshared" => F::MS_SHARED | F::MS_REC,
        "slave" => F::MS_SLAVE,
        "rslave" => F::MS_SLAVE | F::MS_REC,
        "unbindable" => F::MS_UNBINDABLE,
        "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
        _ => return None,
    })
}

/// A node of `linux.devices`, made in the container's `/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Below `/dev`, relative (`fuse`, `net/tun`).
    pub path: String,
    /// `c`, `b` or `p`.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Makes every mount of the list, in order, under `root` (the new root, not yet pivoted into).
/// Returns how many were made.
pub fn mount_all(root: &OwnedFd, list: &[MountSpec], devices: &[DeviceNode]) -> Result<usize> {
    for m in list {
        mount_one(root, m, devices).with_context(|| {
            format!(
                "mounts: {} on {}",
                m.typ.as_deref().unwrap_or("bind"),
                m.destination.display()
            )
        })?;
    }
    Ok(list.len())
}

fn rel_of(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}

fn mount_one(root: &OwnedFd, m: &MountSpec, devices: &[DeviceNode]) -> Result<()> {
    let rel = rel_of(&m.destination);
    let o = &m.parsed;
    if m.is_bind() {
        let source = m.source.as_deref().context("a bind mount needs a source")?;
        let src = nix::fcntl::open(source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .with_context(|| format!("opening the bind source {}", source.display()))?;
        let st = nix::sys::stat::fstat(&src)?;
        let kind = st.st_mode & libc::S_IFMT;
        let is_dir = kind == libc::S_IFDIR;
        let is_device = kind == libc::S_IFCHR || kind == libc::S_IFBLK;
        let target = destination(root, &rel, is_dir)?;
        let mut flags = MsFlags::MS_BIND;
        if o.recursive {
            flags |= MsFlags::MS_REC;
        }
        mount(
            Some(fd_path(&src).as_str()),
            fd_path(&target).as_str(),
            NONE,
            flags,
            NONE,
        )
        .with_context(|| format!("bind-mounting {}", source.display()))?;
        // A bound device node is the one node the bundle asked to reach; anything else bound
        // is nodev unless `dev` was asked for, like every other place a container may write.
        let mut wanted = o.flags;
        if !is_device && !o.cleared.contains(MsFlags::MS_NODEV) {
            wanted |= MsFlags::MS_NODEV;
        }
        // A bind takes the source mount's flags: ro, nosuid... need a remount of the new one.
        remount_top(root, &rel, wanted, o.cleared)?;
    } else {
        let target = destination(root, &rel, true)?;
        let fstype = m.fstype();
        let is_dev = rel == "dev" && fstype == "tmpfs";
        let mut flags = o.flags;
        match fstype {
            // /dev is made nodev once its own nodes sit on mounts of their own.
            "tmpfs" if is_dev => flags -= MsFlags::MS_NODEV,
            "tmpfs" if !o.cleared.contains(MsFlags::MS_NODEV) => flags |= MsFlags::MS_NODEV,
            _ => {}
        }
        let source = m
            .source
            .as_ref()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| fstype.to_string());
        let data = (!o.data.is_empty()).then_some(o.data.as_str());
        mount(
            Some(source.as_str()),
            fd_path(&target).as_str(),
            Some(fstype),
            flags,
            data,
        )
        .with_context(|| format!("mounting {fstype}"))?;
        if is_dev {
            populate_dev(root, o, devices)?;
        }
    }
    for p in &o.propagation {
        let top = open_in(root, &rel, OFlag::O_PATH).context("reopening the mount")?;
        mount(NONE, fd_path(&top).as_str(), NONE, *p, NONE)
            .context("changing the mount's propagation")?;
    }
    Ok(())
}

/// The destination inside the root, made if missing (a directory, or an empty file when a file
/// is bound there). Its parents may be symlinks, resolved inside the root; the destination itself
/// must not be one.
fn destination(root: &OwnedFd, rel: &str, dir: bool) -> Result<OwnedFd> {
    if rel.is_empty() {
        bail!("the destination / is the container's root: mount below it");
    }
    let fd = match open_in(root, rel, OFlag::O_PATH | OFlag::O_NOFOLLOW) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) if dir => ensure_dir(root, rel)?,
        Err(Errno::ENOENT) => {
            let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
            let parent = if parent.is_empty() {
                open_in(root, ".", OFlag::O_PATH | OFlag::O_DIRECTORY)?
            } else {
                ensure_dir(root, parent)?
            };
            let how = OpenHow::new()
                .flags(OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
                .mode(Mode::from_bits_truncate(0o644))
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            nix::fcntl::openat2(parent.as_fd(), name, how)
                .with_context(|| format!("creating the mount point /{rel}"))?;
            open_in(root, rel, OFlag::O_PATH | OFlag::O_NOFOLLOW)?
        }
        Err(e) => return Err(e).with_context(|| format!("opening /{rel} in the rootfs")),
    };
    let st = nix::sys::stat::fstat(&fd)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        bail!(
            "/{rel} in the rootfs is a symbolic link: minibox mounts /{rel} only on a real \
             directory; replace the link with an empty directory (mkdir ROOTFS/{rel})"
        );
    }
    if dir && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        bail!(
            "/{rel} in the rootfs is {}, not a directory: a directory is mounted there",
            file_kind(st.st_mode)
        );
    }
    Ok(fd)
}

/// Remounts the mount on top of `/rel` with `set` added and `clear` removed, keeping the other
/// flags it has (the kernel refuses to drop locked ones in a user namespace).
fn remount_top(root: &OwnedFd, rel: &str, set: MsFlags, clear: MsFlags) -> Result<()> {
    let top = open_in(root, rel, OFlag::O_PATH).context("reopening the bind mount")?;
    let have = fstatvfs(&top).context("statvfs of the bind mount")?.flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | set;
    let atime_asked = (set | clear).intersects(
        MsFlags::MS_NOATIME
            | MsFlags::MS_RELATIME
            | MsFlags::MS_STRICTATIME
            | MsFlags::MS_NODIRATIME,
    );
    for (st, ms, atime) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY, false),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID, false),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV, false),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC, false),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME, true),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME, true),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME, true),
    ] {
        if have.contains(st) && !clear.contains(ms) && !(atime && atime_asked) {
            flags |= ms;
        }
    }
    mount(NONE, fd_path(&top).as_str(), NONE, flags, NONE)
        .with_context(|| format!("remounting /{rel} with its options"))
}

/// A fresh `/dev` tmpfs gets the default nodes and the `linux.devices` ones, each bound onto
/// itself so that it keeps opening once `/dev` is remounted nodev (unless its options say
/// `dev`); then the usual symlinks.
fn populate_dev(root: &OwnedFd, o: &MountOptions, devices: &[DeviceNode]) -> Result<()> {
    let dev =
        open_in(root, "dev", OFlag::O_PATH | OFlag::O_DIRECTORY).context("opening the new /dev")?;
    let defaults = DEVICES.iter().map(|(name, major, minor)| DeviceNode {
        path: name.to_string(),
        kind: 'c',
        major: *major,
        minor: *minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    });
    for node in defaults.chain(devices.iter().cloned()) {
        make_node(&dev, &node)?;
    }
    // From now on a node made in /dev opens nothing; ours keep their own mounts' flags.
    if !o.cleared.contains(MsFlags::MS_NODEV) {
        let nodev = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV | o.flags;
        mount(NONE, fd_path(&dev).as_str(), NONE, nodev, NONE).context("remounting /dev nodev")?;
    }
    crate::kernel::rootfs::dev_symlinks(&dev)
}

/// Makes `/dev/PATH` as asked, or, where mknod is not ours to call (a user namespace), binds the
/// host's node of that path onto an empty file; either way on a mount of its own.
fn make_node(dev: &OwnedFd, node: &DeviceNode) -> Result<()> {
    let name = node.path.as_str();
    let parent = match name.rsplit_once('/') {
        Some((dir, _)) => ensure_dir(dev, dir)?,
        None => open_in(dev, ".", OFlag::O_PATH | OFlag::O_DIRECTORY)?,
    };
    let leaf = name.rsplit('/').next().unwrap_or(name);
    let kind = match node.kind {
        'b' => SFlag::S_IFBLK,
        'p' => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let mode = Mode::from_bits_truncate(node.mode & 0o7777);
    let rdev = nix::sys::stat::makedev(node.major, node.minor);
    match nix::sys::stat::mknodat(&parent, leaf, kind, mode, rdev) {
        Ok(()) => {}
        Err(Errno::EPERM) if node.kind != 'p' => {
            // In a user namespace: the host's own node, on an empty file.
            let host = Path::new("/dev").join(name);
            let how = OpenHow::new()
                .flags(OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC)
                .mode(Mode::from_bits_truncate(0o600))
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
            let file = nix::fcntl::openat2(parent.as_fd(), leaf, how)
                .with_context(|| format!("creating /dev/{name}"))?;
            mount(
                Some(&host),
                fd_path(&file).as_str(),
                NONE,
                MsFlags::MS_BIND,
                NONE,
            )
            .with_context(|| format!("bind-mounting the host's {}", host.display()))?;
            return Ok(());
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "creating the device node /dev/{name} ({}:{})",
                    node.major, node.minor
                )
            })
        }
    }
    // The tmpfs is ours and fresh: the name is the node just made, not a link.
    nix::sys::stat::fchmodat(&parent, leaf, mode, FchmodatFlags::FollowSymlink)
        .with_context(|| format!("chmod {:o} /dev/{name}", node.mode))?;
    nix::unistd::fchownat(
        &parent,
        leaf,
        Some(nix::unistd::Uid::from_raw(node.uid)),
        Some(nix::unistd::Gid::from_raw(node.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("chown /dev/{name}"))?;
    let fd = nix::fcntl::openat(
        &parent,
        leaf,
        OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening the new /dev/{name}"))?;
    let path = fd_path(&fd);
    mount(
        Some(path.as_str()),
        path.as_str(),
        NONE,
        MsFlags::MS_BIND,
        NONE,
    )
    .with_context(|| format!("bind-mounting /dev/{name} onto itself"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Result<MountOptions, String> {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        parse_options(&list, false)
    }

    #[test]
    fn flags_data_and_propagation_are_told_apart() {
        let o = opts(&[
            "nosuid",
            "noexec",
            "nodev",
            "mode=1777",
            "size=65536k",
            "rprivate",
        ])
        .unwrap();
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
        );
        assert_eq!(o.data, "mode=1777,size=65536k");
        assert_eq!(o.propagation, [MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(!o.bind);
    }

    #[test]
    fn a_later_option_wins() {
        let o = opts(&["ro", "rw", "suid", "nosuid"]).unwrap();
        assert_eq!(o.flags, MsFlags::MS_NOSUID);
        assert_eq!(o.cleared, MsFlags::MS_RDONLY);
        let o = opts(&["rw", "ro"]).unwrap();
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert!(o.cleared.is_empty());
    }

    #[test]
    fn binds_know_every_flag_and_no_data() {
        let o = opts(&[
            "rbind",
            "ro",
            "nosuid",
            "nodev",
            "noexec",
            "relatime",
            "rslave",
            "shared",
            "runbindable",
        ])
        .unwrap();
        assert!(o.bind && o.recursive);
        assert!(o.flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_RELATIME));
        assert_eq!(o.propagation.len(), 3);
        assert!(opts(&["bind", "size=1m"]).unwrap_err().contains("size=1m"));
        let o = parse_options(&["ro".into()], true).unwrap();
        assert!(o.bind && !o.recursive);
    }

    #[test]
    fn malformed_and_unsupported_options_are_named() {
        assert!(opts(&["idmap"]).unwrap_err().contains("idmap"));
        assert!(opts(&["remount"]).unwrap_err().contains("remount"));
        assert!(opts(&[""]).unwrap_err().contains("malformed"));
        assert!(opts(&["a,b"]).unwrap_err().contains("malformed"));
    }

    #[test]
    fn propagation_names() {
        assert_eq!(propagation("slave"), Some(MsFlags::MS_SLAVE));
        assert_eq!(
            propagation("runbindable"),
            Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC)
        );
        assert_eq!(propagation("rsharedx"), None);
    }
}
