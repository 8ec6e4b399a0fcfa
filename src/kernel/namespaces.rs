//! Namespaces: what the container sees of the machine.
//!
//! The container's first process is born in its new namespaces (config.json's
//! `linux.namespaces`; docker's set for `minibox run`: mount, PID, UTS, IPC, network) by one
//! `clone(2)`. `clone` rather than `unshare`: a new PID namespace applies only to children, and
//! this way the container's first process is its PID 1. The cgroup and time namespaces come
//! later, from the child itself, once it is in its own cgroup. A namespace given by `path` is
//! joined (`setns`) instead: a PID one by the parent before the clone (it applies to children
//! only), the others by the child. A type not listed is the host's.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// A kind of namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Mount,
    Pid,
    Uts,
    Ipc,
    Net,
    Cgroup,
    User,
    Time,
}

impl Kind {
    pub fn flag(self) -> CloneFlags {
        match self {
            Kind::Mount => CloneFlags::CLONE_NEWNS,
            Kind::Pid => CloneFlags::CLONE_NEWPID,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Net => CloneFlags::CLONE_NEWNET,
            Kind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            Kind::User => CloneFlags::CLONE_NEWUSER,
            // CLONE_NEWTIME (0x80) is not in nix's CloneFlags.
            Kind::Time => CloneFlags::from_bits_retain(0x80),
        }
    }

    /// Its name under `/proc/PID/ns`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::Mount => "mnt",
            Kind::Pid => "pid",
            Kind::Uts => "uts",
            Kind::Ipc => "ipc",
            Kind::Net => "net",
            Kind::Cgroup => "cgroup",
            Kind::User => "user",
            Kind::Time => "time",
        }
    }

    /// Its name in config.json.
    pub fn oci_name(self) -> &'static str {
        match self {
            Kind::Mount => "mount",
            Kind::Pid => "pid",
            Kind::Uts => "uts",
            Kind::Ipc => "ipc",
            Kind::Net => "network",
            Kind::Cgroup => "cgroup",
            Kind::User => "user",
            Kind::Time => "time",
        }
    }
}

/// The kinds of namespace a container has of its own (docker's, and minibox's default), in the
/// order `inspect` and `--explain` show them.
pub const CONTAINER_KINDS: [Kind; 6] = [
    Kind::Mount,
    Kind::Pid,
    Kind::Uts,
    Kind::Ipc,
    Kind::Net,
    Kind::Cgroup,
];

/// The container's namespaces: the ones made for it, and the ones it joins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub new: Vec<Kind>,
    pub join: Vec<(Kind, PathBuf)>,
}

impl Namespaces {
    /// docker's: mount, PID, UTS, IPC, (network), cgroup.
    pub fn docker(network: bool) -> Namespaces {
        let new = CONTAINER_KINDS
            .into_iter()
            .filter(|k| network || *k != Kind::Net)
            .collect();
        Namespaces { new, join: vec![] }
    }

    pub fn creates(&self, kind: Kind) -> bool {
        self.new.contains(&kind)
    }

    /// Made or joined: not the host's.
    pub fn has(&self, kind: Kind) -> bool {
        self.creates(kind) || self.join.iter().any(|(k, _)| *k == kind)
    }

    /// What `clone` makes: all new ones but cgroup and time, which the child makes itself.
    pub fn clone_flags(&self) -> CloneFlags {
        self.new
            .iter()
            .filter(|k| !matches!(k, Kind::Cgroup | Kind::Time))
            .fold(CloneFlags::empty(), |f, k| f | k.flag())
    }
}

/// Whether the namespace file at `path` is the very namespace of that kind minibox runs in
/// (the host's, for whoever called minibox): the container would share it, not own it.
pub fn is_callers_own(kind: Kind, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let name = kind.proc_name();
    let id = |p: &Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
    matches!((id(path), id(Path::new(&format!("/proc/self/ns/{name}")))), (Ok(a), Ok(b)) if a == b)
}

/// What kind of namespace the file at `path` is (NS_GET_NSTYPE), or why it is none.
pub fn kind_of_file(path: &Path) -> Result<CloneFlags, String> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let file = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    // SAFETY: NS_GET_NSTYPE takes no argument and writes no memory of ours; the fd is open.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if rc < 0 {
        return Err("it is not a namespace file".into());
    }
    Ok(CloneFlags::from_bits_retain(rc))
}

/// The parent's part of joining: a PID namespace given by path applies to our next child.
pub fn join_pid_for_children(ns: &Namespaces) -> Result<()> {
    for (kind, path) in ns.join.iter().filter(|(k, _)| *k == Kind::Pid) {
        setns_path(*kind, path)?;
    }
    Ok(())
}

/// The child's part of joining: every namespace given by path but PID, the user one first
/// (it gives us the rights over the others).
pub fn join_given(ns: &Namespaces) -> Result<()> {
    let files: Vec<(Kind, &PathBuf, File)> = ns
        .join
        .iter()
        .filter(|(k, _)| *k != Kind::Pid)
        .map(|(k, p)| {
            let f = File::open(p).with_context(|| format!("opening the namespace {}", p.display()));
            f.map(|f| (*k, p, f))
        })
        .collect::<Result<_>>()?;
    let order = |k: &Kind| match k {
        Kind::User => 0,
        Kind::Mount => 2,
        _ => 1,
    };
    let mut files = files;
    files.sort_by_key(|(k, _, _)| order(k));
    for (kind, path, file) in files {
        nix::sched::setns(&file, kind.flag()).with_context(|| {
            format!(
                "joining the {} namespace {} (setns)",
                kind.oci_name(),
                path.display()
            )
        })?;
    }
    Ok(())
}

fn setns_path(kind: Kind, path: &Path) -> Result<()> {
    let file =
        File::open(path).with_context(|| format!("opening the namespace {}", path.display()))?;
    nix::sched::setns(&file, kind.flag()).with_context(|| {
        format!(
            "joining the {} namespace {} (setns)",
            kind.oci_name(),
            path.display()
        )
    })
}

/// A new cgroup namespace makes the group we are in now the root of what we see of cgroups:
/// the container cannot see or name the host's groups. A new time namespace gives the
/// container clocks of its own (it applies from our exec on).
pub fn enter_late_namespaces(ns: &Namespaces) -> Result<()> {
    for kind in [Kind::Cgroup, Kind::Time] {
        if ns.creates(kind) {
            nix::sched::unshare(kind.flag())
                .with_context(|| format!("unshare of a new {} namespace", kind.oci_name()))?;
        }
    }
    Ok(())
}

/// One line of a user namespace's id map: `count` ids from `inside` are `outside` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// The parent writes the child's id maps while it waits (only a process outside the new user
/// namespace can, and only once). As root, so `setgroups` stays allowed inside.
pub fn write_id_maps(pid: Pid, uids: &[IdMap], gids: &[IdMap]) -> Result<()> {
    for (file, maps) in [("uid_map", uids), ("gid_map", gids)] {
        if maps.is_empty() {
            continue;
        }
        let text: String = maps
            .iter()
            .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
            .collect();
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text).with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

/// A user namespace with these maps, held only by the returned descriptor: what an id-mapped
/// mount needs (its maps, not a process in it). A short-lived child is born in it, its maps
/// are written, the namespace is opened, and the child is killed and reaped.
pub fn user_namespace_with_maps(uids: &[IdMap], gids: &[IdMap]) -> Result<File> {
    // The child does nothing but wait to be killed (by us, or by the kernel should minibox
    // die first): it runs no code of ours beyond that.
    let pid = clone_into_new_namespaces(CloneFlags::CLONE_NEWUSER, || {
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        loop {
            nix::unistd::pause();
        }
    })
    .context("clone() of a holder for the id-mapped mounts' user namespace")?;
    let opened = write_id_maps(pid, uids, gids).and_then(|()| {
        let path = format!("/proc/{pid}/ns/user");
        File::open(&path).with_context(|| format!("opening {path}"))
    });
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
    opened
}

/// In a new user namespace we are its nobody (the host's root is not mapped) until we become its
/// root: only then can files we make (mount points, device nodes) have a mapped owner. Being
/// root of the namespace keeps the capabilities it gave us.
pub fn become_root_of_new_user_namespace(ns: &Namespaces) -> Result<()> {
    if !ns.creates(Kind::User) {
        return Ok(());
    }
    let (uid, gid) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
    nix::unistd::setresgid(gid, gid, gid).context("setresgid(0) in the user namespace")?;
    nix::unistd::setresuid(uid, uid, uid).context("setresuid(0) in the user namespace")
}

/// A process's id maps, as the kernel holds them (`/proc/PID/uid_map`, `gid_map`): seen from
/// our own user namespace, the host's.
pub fn read_id_maps(pid: i32) -> Result<(Vec<IdMap>, Vec<IdMap>)> {
    let read = |file: &str| -> Result<Vec<IdMap>> {
        let path = format!("/proc/{pid}/{file}");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        Ok(parse_id_map(&text))
    };
    Ok((read("uid_map")?, read("gid_map")?))
}

/// The lines of a `uid_map`/`gid_map` file.
pub fn parse_id_map(text: &str) -> Vec<IdMap> {
    text.lines()
        .filter_map(|l| {
            let mut n = l.split_whitespace().map(|w| w.parse::<u32>().ok());
            Some(IdMap {
                inside: n.next()??,
                outside: n.next()??,
                count: n.next()??,
            })
        })
        .collect()
}

/// After joining a user namespace (exec): become its root, keeping the capabilities joining
/// gave us (uid 0 there is its root).
pub fn become_root_of_joined_user_namespace() -> Result<()> {
    let (uid, gid) = (nix::unistd::Uid::from_raw(0), nix::unistd::Gid::from_raw(0));
    nix::unistd::setresgid(gid, gid, gid)
        .context("setresgid(0) in the container's user namespace")?;
    nix::unistd::setresuid(uid, uid, uid).context("setresuid(0) in the container's user namespace")
}

/// The host's id for `id` inside, by the maps.
pub fn host_id(maps: &[IdMap], id: u32) -> Option<u32> {
    maps.iter()
        .find(|m| id >= m.inside && (id - m.inside) < m.count)
        .map(|m| m.outside + (id - m.inside))
}

/// The id inside for the host's `id`, by the maps (the inverse of `host_id`).
pub fn inside_id(maps: &[IdMap], id: u32) -> Option<u32> {
    maps.iter()
        .find(|m| id >= m.outside && (id - m.outside) < m.count)
        .map(|m| m.inside + (id - m.outside))
}

/// Whether `id` is inside one of the maps.
pub fn is_mapped(maps: &[IdMap], id: u32) -> bool {
    maps.iter()
        .any(|m| id >= m.inside && (id - m.inside) < m.count)
}

/// Fails naming the namespace when `hostname`/`domainname` would change the host's.
pub fn check_uts(ns: &Namespaces, field: &str) -> Result<()> {
    if !ns.has(Kind::Uts) {
        bail!("{field} needs a uts namespace: add {{\"type\": \"uts\"}} to linux.namespaces");
    }
    if let Some((_, path)) = ns
        .join
        .iter()
        .find(|(k, p)| *k == Kind::Uts && is_callers_own(Kind::Uts, p))
    {
        bail!(
            "{field} would rename the host: linux.namespaces joins the uts namespace {} that \
             minibox itself runs in",
            path.display()
        );
    }
    Ok(())
}

/// Size of the stack the child starts on; it only needs to run init's setup before `execve`.
const CHILD_STACK: usize = 1 << 20;

/// Starts `child` as a new process in fresh namespaces and returns its pid (on the host).
/// The child gets a copy of our memory, as with fork; it must end in `execve` or `_exit`.
pub fn clone_into_new_namespaces(flags: CloneFlags, child: impl FnMut() -> isize) -> Result<Pid> {
    // The stack is only touched by the child, in its own copy of our address space.
    let mut stack = vec![0u8; CHILD_STACK];
    // SAFETY: this process is single-threaded here (no lock can be held by another thread in
    // the child's copy), the stack is large enough for init's setup, and the child never
    // returns into our frames: it runs `child` on its own stack and exits or execs.
    let pid = unsafe { nix::sched::clone(Box::new(child), &mut stack, flags, Some(libc::SIGCHLD)) };
    pid.context("clone() of the container's first process with new namespaces")
}

/// The container's hostname lives in its own UTS namespace; the host's is untouched. Without
/// one (the host's UTS namespace) nothing is set: the spec check refused a name then.
pub fn set_hostname(ns: &Namespaces, name: &str) -> Result<()> {
    // No name (a joined UTS namespace keeps its owner's: a pod's, the host's).
    if !ns.has(Kind::Uts) || name.is_empty() {
        return Ok(());
    }
    nix::unistd::sethostname(name).with_context(|| format!("sethostname({name:?})"))
}

/// `domainname`: the NIS domain name of the container's UTS namespace.
pub fn set_domainname(name: Option<&str>) -> Result<()> {
    let Some(name) = name else { return Ok(()) };
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    nix::errno::Errno::result(rc).with_context(|| format!("setdomainname({name:?})"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_read_and_walked_both_ways() {
        let maps = parse_id_map("         0    1000000      65536\n 65536 5 1\nbad line\n");
        assert_eq!(maps.len(), 2);
        assert_eq!(host_id(&maps, 0), Some(1_000_000));
        assert_eq!(host_id(&maps, 65535), Some(1_065_535));
        assert_eq!(host_id(&maps, 65536), Some(5));
        assert_eq!(host_id(&maps, 65537), None);
        assert_eq!(inside_id(&maps, 1_000_007), Some(7));
        assert_eq!(inside_id(&maps, 5), Some(65536));
        assert_eq!(inside_id(&maps, 0), None);
        let host = parse_id_map("0 0 4294967295\n");
        assert_eq!(inside_id(&host, 1234), Some(1234));
    }
}
