//! The container's mount list (config.json `mounts`), made in the order given, and the device
//! nodes of its `/dev` (`linux.devices`).
//!
//! Every destination is resolved inside the new root with `openat2(RESOLVE_IN_ROOT)` and the
//! mount reaches it through `/proc/self/fd/N` (runc CVE-2021-30465): a symlink planted in the
//! rootfs resolves inside it, never onto the host, and a destination that is itself a symlink is
//! refused; a destination named outside `/proc`, `/sys` and `/dev` that a link leads into them
//! is refused too. Missing destinations are made in the rootfs (a directory, or a file for a
//! bind of a file).
//!
//! A bind's source is never looked up here: the parent opened it before the clone and copied
//! its tree, flags set on every submount (`bind_attrs`); the tree is only attached
//! (`move_mount`).
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

use crate::kernel::mount_api::{self, Attrs};
use crate::kernel::mount_attr::RecursiveAttrs;
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
    /// A bind's words that would be a filesystem's options: a bind has no filesystem to take
    /// them.
    pub ignored: Vec<String>,
    /// `rro`, `rnosuid`...: for the mount and every mount below it.
    pub recursive_attrs: RecursiveAttrs,
    /// `idmap`/`ridmap`: a bind seen through the container's user namespace's id maps.
    pub idmap: bool,
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
            ignored: vec![],
            recursive_attrs: RecursiveAttrs::default(),
            idmap: false,
        }
    }
}

/// Reads an option list as mount(8) does. An entry may hold several options joined by commas
/// (`"mode=755,size=1k"`, as some engines write them, and as runc and crun read them). Unknown
/// words are the filesystem's own (`data`); a bind has none, and passes them to no filesystem
/// (the kernel ignores them with MS_BIND, as runc's binds do): they are set aside in `ignored`
/// for the caller to say so. `idmap` asks a bind to be id-mapped (the container's maps).
pub fn parse_options(options: &[String], bind_type: bool) -> Result<MountOptions, String> {
    use MsFlags as F;
    let mut o = MountOptions {
        bind: bind_type,
        ..MountOptions::default()
    };
    let mut data = vec![];
    let words = options.iter().flat_map(|entry| entry.split(','));
    for opt in words {
        if opt.is_empty() || opt.contains('\0') {
            return Err(format!("option {opt:?} is malformed (in {options:?})"));
        }
        let (set, clear) = match opt {
            "defaults" => (F::empty(), F::empty()),
            // runc's recursive spellings (`rro`...): minibox sets a bind's flags on its
            // whole tree anyway.
            "ro" | "rro" => (F::MS_RDONLY, F::empty()),
            "rw" | "rrw" => (F::empty(), F::MS_RDONLY),
            "nosuid" | "rnosuid" => (F::MS_NOSUID, F::empty()),
            "suid" | "rsuid" => (F::empty(), F::MS_NOSUID),
            "nodev" | "rnodev" => (F::MS_NODEV, F::empty()),
            "dev" | "rdev" => (F::empty(), F::MS_NODEV),
            "noexec" | "rnoexec" => (F::MS_NOEXEC, F::empty()),
            "exec" | "rexec" => (F::empty(), F::MS_NOEXEC),
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
                o.idmap = true;
                continue;
            }
            other if o.recursive_attrs.take(other) => continue,
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        o.flags = (o.flags | set) - clear;
        o.cleared = (o.cleared | clear) - set;
    }
    if o.idmap && !o.bind {
        return Err("option idmap is for binds: an id-mapped mount shows a bound tree".into());
    }
    if o.bind {
        o.ignored = data;
    } else {
        o.data = data.join(",");
    }
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
/// `binds` holds, for each bind of the list (at its index), its source as a detached tree
/// opened and flagged before the clone (`bind_attrs`): it is only attached here.
/// Returns how many were made.
pub fn mount_all(
    root: &OwnedFd,
    list: &[MountSpec],
    binds: &[Option<OwnedFd>],
    devices: &[DeviceNode],
) -> Result<usize> {
    for (i, m) in list.iter().enumerate() {
        mount_one(root, m, binds.get(i).and_then(Option::as_ref), devices).with_context(|| {
            format!(
                "mounts: {} on {}",
                m.typ.as_deref().unwrap_or("bind"),
                m.destination.display()
            )
        })?;
    }
    Ok(list.len())
}

/// A bind's flags as `mount_setattr` sets them on every mount of its tree. Only flags are set
/// (`ro`, `nosuid`, `nodev`, `noexec`, an atime mode): `rw`, `suid`, `dev` and `exec` never
/// lift what the host's own mounts below the source impose. `rro`, `rnosuid`... (runc's
/// recursive spellings) mean the same here: every flag holds for the whole tree.
pub fn bind_attrs(o: &MountOptions) -> Attrs {
    let atime = MsFlags::MS_NOATIME
        | MsFlags::MS_RELATIME
        | MsFlags::MS_STRICTATIME
        | MsFlags::MS_NODIRATIME;
    Attrs::from_flags(o.flags, o.cleared & atime)
}

fn rel_of(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}

fn mount_one(
    root: &OwnedFd,
    m: &MountSpec,
    tree: Option<&OwnedFd>,
    devices: &[DeviceNode],
) -> Result<()> {
    let rel = rel_of(&m.destination);
    let o = &m.parsed;
    if m.is_bind() {
        let tree = tree.context("the bind's source was not opened before the clone")?;
        let kind = nix::sys::stat::fstat(tree)?.st_mode & libc::S_IFMT;
        let target = destination(root, &rel, kind == libc::S_IFDIR)?;
        check_not_redirected(root, &rel, &target)?;
        mount_api::attach(tree, &target).context("attaching the bind's source (move_mount)")?;
        renew_in_place(root, &rel, tree, &target, o.recursive)?;
    } else {
        let target = destination(root, &rel, true)?;
        check_not_redirected(root, &rel, &target)?;
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
        match mount(
            Some(source.as_str()),
            fd_path(&target).as_str(),
            Some(fstype),
            flags,
            data,
        ) {
            Ok(()) => {}
            // In a user namespace whose network namespace is not its own (--network host,
            // container:NAME), the kernel refuses a sysfs: the host's is bound, read-only.
            Err(Errno::EPERM) if fstype == "sysfs" => bind_host_sysfs(&target)?,
            Err(e) => return Err(e).with_context(|| format!("mounting {fstype}")),
        }
        if is_dev {
            populate_dev(root, o, devices)?;
        }
    }
    for p in &o.propagation {
        let top = open_in(root, &rel, OFlag::O_PATH).context("reopening the mount")?;
        mount(NONE, fd_path(&top).as_str(), NONE, *p, NONE)
            .context("changing the mount's propagation")?;
    }
    if !o.recursive_attrs.is_empty() {
        let top = open_in(root, &rel, OFlag::O_PATH).context("reopening the mount")?;
        o.recursive_attrs.apply(&top)?;
    }
    Ok(())
}

/// The host's `/sys` with its submounts, read-only, nosuid, nodev, noexec throughout (runc's
/// answer for a rootless container without a network namespace of its own).
fn bind_host_sysfs(target: &OwnedFd) -> Result<()> {
    let host = nix::fcntl::open(
        "/sys",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .context("opening the host's /sys (a sysfs of our own was refused)")?;
    let tree = mount_api::clone_tree(&host, true).context("copying the host's /sys")?;
    use crate::kernel::mount_api::attr;
    let ro = Attrs::default().with(attr::RDONLY | attr::NOSUID | attr::NODEV | attr::NOEXEC);
    mount_api::set_attrs(&tree, &ro).context("making the host's /sys read-only")?;
    mount_api::attach(&tree, target).context("binding the host's /sys")
}

/// The bind just attached at `rel`, replaced by a copy made now: the kernel lists a namespace's
/// mounts (`/proc/self/mountinfo`) by when each mount was made, and a tree opened before the
/// clone is older than every mount the child makes, so every bind would come first there, out
/// of config.json's order (runtime-spec: mounts are made "in the listed order"; the OCI
/// validation suite reads it there, as tools do). The copy keeps every flag and submount. A
/// detached tree from before the clone cannot be copied from the new namespace (EINVAL); an
/// attached one can. Where a step fails (a user namespace's locked mount), the first tree
/// stays: it is the same mount, only listed earlier.
fn renew_in_place(
    root: &OwnedFd,
    rel: &str,
    tree: &OwnedFd,
    target: &OwnedFd,
    recursive: bool,
) -> Result<()> {
    let Ok(top) = open_in(root, rel, OFlag::O_PATH) else {
        return Ok(());
    };
    // Only the tree just attached is renewed, never another mount the name might lead to.
    let (Ok(now), Ok(attached)) = (nix::sys::stat::fstat(&top), nix::sys::stat::fstat(tree)) else {
        return Ok(());
    };
    if (now.st_dev, now.st_ino) != (attached.st_dev, attached.st_ino) {
        return Ok(());
    }
    let Ok(copy) = mount_api::clone_tree(&top, recursive) else {
        return Ok(());
    };
    if nix::mount::umount2(fd_path(&top).as_str(), nix::mount::MntFlags::MNT_DETACH).is_err() {
        return Ok(());
    }
    // The old tree is gone: the copy takes its place, or the container does not start.
    mount_api::attach(&copy, target).context("attaching the bind's renewed copy (move_mount)")
}

/// Filesystems only the kernel's own mounts of `/proc`, `/sys` and `/dev` hold.
const KERNEL_FS: [(libc::__fsword_t, &str); 6] = [
    (libc::PROC_SUPER_MAGIC, "procfs"),
    (libc::SYSFS_MAGIC, "sysfs"),
    (libc::CGROUP2_SUPER_MAGIC, "cgroup2"),
    (libc::CGROUP_SUPER_MAGIC, "cgroup"),
    (libc::DEVPTS_SUPER_MAGIC, "devpts"),
    (0x1980_0202, "mqueue"),
];

/// A destination named outside `/proc`, `/sys` and `/dev` must not *be* inside them: a
/// symlink in the rootfs (`data -> /proc/sys/kernel`) resolves inside the root, but onto the
/// container's own procfs, sysfs or device nodes, which no mount may cover or replace. Checked
/// on the opened target, never on the name.
fn check_not_redirected(root: &OwnedFd, rel: &str, target: &OwnedFd) -> Result<()> {
    let first = rel.split('/').next().unwrap_or("");
    if ["proc", "sys", "dev"].contains(&first) {
        return Ok(());
    }
    let refuse = |what: &str| {
        bail!(
            "/{rel} leads into {what} (a symbolic link in the rootfs points there): /proc, /sys \
             and /dev are the container's own; remove the link or mount elsewhere"
        )
    };
    let fs = nix::sys::statfs::fstatfs(target).context("statfs of the mount point")?;
    let kind = fs.filesystem_type().0;
    if let Some((_, name)) = KERNEL_FS.iter().find(|(magic, _)| *magic == kind) {
        return refuse(name);
    }
    let st = nix::sys::stat::fstat(target)?;
    for dir in ["proc", "sys", "dev"] {
        let Ok(fd) = open_in(root, dir, OFlag::O_PATH | OFlag::O_NOFOLLOW) else {
            continue;
        };
        let own = nix::sys::stat::fstat(&fd)?;
        let same_dir = (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino);
        // Anything on the /dev tmpfs is its device directory (the rootfs is on another device).
        let on_dev = dir == "dev" && own.st_dev == st.st_dev && own.st_dev != root_dev(root)?;
        if same_dir || on_dev {
            return refuse(&format!("/{dir}"));
        }
    }
    Ok(())
}

fn root_dev(root: &OwnedFd) -> Result<u64> {
    Ok(nix::sys::stat::fstat(root)?.st_dev)
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
        // runtime-tools' mounts test gives its binds a tmpfs's options: set aside, as runc.
        assert_eq!(opts(&["bind", "size=1m"]).unwrap().ignored, ["size=1m"]);
        let o = parse_options(&["ro".into()], true).unwrap();
        assert!(o.bind && !o.recursive);
    }

    #[test]
    fn malformed_and_unsupported_options_are_named() {
        assert!(opts(&["idmap"]).unwrap_err().contains("idmap"));
        assert!(opts(&["rbind", "idmap"]).unwrap().idmap);
        assert!(opts(&["remount"]).unwrap_err().contains("remount"));
        assert!(opts(&[""]).unwrap_err().contains("malformed"));
        assert!(opts(&["ro,"]).unwrap_err().contains("malformed"));
        // Comma-joined in one entry, as one list.
        let o = opts(&["nosuid,mode=755,size=1k", "ro"]).unwrap();
        assert_eq!(o.data, "mode=755,size=1k");
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_RDONLY);
    }

    #[test]
    fn a_binds_flags_are_only_ever_set_on_its_tree() {
        let o = opts(&["rbind", "rro", "rnosuid", "rnodev", "rnoexec"]).unwrap();
        let a = bind_attrs(&o);
        use crate::kernel::mount_api::attr;
        assert_eq!(
            a.set,
            attr::RDONLY | attr::NOSUID | attr::NODEV | attr::NOEXEC
        );
        // rw, suid, dev, exec never lift what a host mount below the source imposes.
        let a = bind_attrs(&opts(&["rbind", "rw", "suid", "dev", "exec"]).unwrap());
        assert_eq!((a.set, a.clear), (0, 0));
        // An atime mode replaces the tree's.
        let a = bind_attrs(&opts(&["bind", "noatime"]).unwrap());
        assert_eq!((a.set, a.clear), (attr::NOATIME, attr::ATIME));
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
