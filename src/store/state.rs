//! What minibox remembers about containers: one directory per container under the state root
//! (`/run/minibox/<id>/`, root-only), holding `state.json`, the logs of a detached container and
//! a lock file.
//!
//! Every write is atomic (a temp file renamed over `state.json`), so a reader never sees half a
//! file. Changes that must not race (a name's uniqueness, an exit being recorded while `rm`
//! runs) hold a lock: the root's `lock` for names and creation, the container's own for its
//! state. A pid is trusted only together with its start time, so a recycled pid is never
//! mistaken for the container.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::kernel::cgroup::Limits;
use crate::model::restart::RestartPolicy;
use crate::model::spec::{ContainerSpec, SHORT_ID_LEN};

/// Where state lives unless `--root` says otherwise.
pub const DEFAULT_ROOT: &str = "/run/minibox";

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
/// The prefix of a container directory being removed.
const REMOVING: &str = ".removing-";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Recorded, not started yet.
    Created,
    Running,
    Exited,
}

/// Everything `ps`, `stop`, `rm` and `logs` need to know about one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub rootfs: PathBuf,
    pub command: Vec<String>,
    #[serde(default)]
    pub hostname: String,
    pub detached: bool,
    /// Milliseconds since the epoch.
    pub created_ms: u64,
    pub limits: Limits,
    pub status: Status,
    /// The supervisor: the minibox process that waits for the container.
    pub supervisor: Option<ProcessRef>,
    /// The container's first process, on the host.
    pub pid: Option<ProcessRef>,
    /// The container's cgroup(s), if it has any.
    pub cgroup: Option<crate::kernel::cgroup::CgroupRecord>,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// `None` once exited means nobody saw how it ended (its supervisor was killed).
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    /// Published ports, as bound (kernel-chosen host ports filled in).
    #[serde(default)]
    pub ports: Vec<crate::model::network::PortMapping>,
    /// The container's own writable layer (`<data-root>/containers/<id>`), recorded before it
    /// is made so that `rm` always finds it.
    #[serde(default)]
    pub layer: Option<PathBuf>,
    /// The seccomp profile it runs under (`docker default`, `unconfined`, a file's path);
    /// `None` in records older than seccomp.
    #[serde(default)]
    pub seccomp: Option<String>,
    /// Its device rules, in a line (`docker default: 12 device rules, all others denied`);
    /// `None` in records older than the device cgroup.
    #[serde(default)]
    pub devices: Option<String>,
    /// The image it was made from (its layers, stop signal, exposed ports).
    #[serde(default)]
    pub image: Option<crate::model::volume::ImageUse>,
    /// Its `-v`, `--mount` and `--tmpfs` mounts, as `SOURCE:TARGET[:ro]`.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// `--stop-signal`: what `stop` sends (before the image's StopSignal).
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `--stop-timeout`: `stop`'s grace period when `-t` does not say (-1: no end).
    #[serde(default)]
    pub stop_timeout: Option<i64>,
    /// What an OCI container (a bundle's) adds: `state` reports it, `delete` runs its hooks.
    #[serde(default)]
    pub oci: Option<OciRecord>,
    /// `--restart`: kept by its supervisor, which starts it again when it ends.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How many times its supervisor has started it again (since the last `start`).
    #[serde(default)]
    pub restart_count: u32,
    /// Ended, and its supervisor waits to start it again (status `Exited` meanwhile).
    #[serde(default)]
    pub restarting: bool,
    /// Stopped on purpose (`stop`, `kill` with KILL or its stop signal, `rm -f`): its restart
    /// policy no longer applies, until `start` or `restart`.
    #[serde(default)]
    pub stopped_on_purpose: bool,
    /// `--label KEY=VALUE`: shown by `inspect`, selected by `ps --filter label=`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--network` as given (`private`, `host`, `bridge`, a network's name); `None` in older
    /// records.
    #[serde(default)]
    pub network: Option<String>,
}

/// An OCI container's own facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OciRecord {
    /// The bundle directory, absolute.
    pub bundle: PathBuf,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// The hooks still to come (`poststart`, `poststop`), as config.json gave them.
    #[serde(default)]
    pub hooks: oci_spec::runtime::Hooks,
    /// Made by `create` (or `run -d` of a bundle): the caller (conmon, a containerd shim) is
    /// the container's supervisor, not a minibox process; it lives as long as its process.
    #[serde(default)]
    pub caller_supervised: bool,
    /// Set when it has no mount namespace of its own: how many mounts were stacked at its
    /// root.path in the caller's namespace before it, so that `delete` detaches only its own.
    #[serde(default)]
    pub root_mounts_before: Option<usize>,
}

/// A process as the kernel names it for good: its pid and its start time (`/proc/PID/stat`
/// field 22, in clock ticks after boot). A pid alone may be reused by another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessRef {
    /// The running process with this pid, as it is now.
    pub fn of(pid: i32) -> Result<ProcessRef> {
        let (start_time, _) = stat(pid).with_context(|| format!("reading /proc/{pid}/stat"))?;
        Ok(ProcessRef { pid, start_time })
    }

    /// True while this very process lives (not another one that got its pid). A zombie has
    /// ended: it only waits for its parent to read its status.
    pub fn is_alive(&self) -> bool {
        stat(self.pid).is_some_and(|(t, state)| t == self.start_time && !matches!(state, 'Z' | 'X'))
    }

    /// Sends `sig` to this very process, if it still lives: through a pidfd, checked after it
    /// is opened, so a recycled pid is never signalled. `Ok(false)` when it is gone.
    pub fn signal(&self, sig: nix::sys::signal::Signal) -> Result<bool> {
        // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) };
        let fd = match nix::errno::Errno::result(fd) {
            Ok(fd) => {
                // SAFETY: the kernel just gave us this descriptor; nothing else owns it.
                unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) }
            }
            Err(nix::errno::Errno::ESRCH) => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("pidfd_open({})", self.pid)),
        };
        // The descriptor names whatever process had the pid when it was opened: that it is
        // ours is checked now, when it can no longer change.
        if !self.is_alive() {
            return Ok(false);
        }
        use std::os::fd::AsRawFd;
        // SAFETY: a valid pidfd, a signal number, no siginfo (NULL), no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                sig as i32,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        match nix::errno::Errno::result(rc) {
            Ok(_) => Ok(true),
            Err(nix::errno::Errno::ESRCH) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("sending {sig} to pid {}", self.pid)),
        }
    }
}

/// Fields 22 (start time) and 3 (state: `Z` for a zombie) of /proc/PID/stat; the command
/// name (field 2) may hold spaces and parentheses.
fn stat(pid: i32) -> Option<(u64, char)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4.. follow; field 22 is the 19th of them.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((start_time, state))
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ContainerState {
    pub fn new(spec: &ContainerSpec, name: String, detached: bool) -> ContainerState {
        ContainerState {
            id: spec.id.clone(),
            name,
            rootfs: spec.rootfs.clone(),
            command: spec.args.clone(),
            hostname: spec.hostname.clone(),
            detached,
            created_ms: now_ms(),
            limits: spec.limits,
            status: Status::Created,
            supervisor: None,
            pid: None,
            cgroup: None,
            started_ms: None,
            finished_ms: None,
            exit_code: None,
            oom_killed: false,
            ports: vec![],
            layer: None,
            seccomp: Some(
                spec.seccomp
                    .as_ref()
                    .map_or(crate::kernel::seccomp::UNCONFINED.to_string(), |p| {
                        p.name.clone()
                    }),
            ),
            devices: Some(spec.setup.resources.devices.summary()),
            image: spec.image.clone(),
            volumes: spec.volumes.iter().map(|v| v.display()).collect(),
            stop_signal: spec.stop.signal.clone(),
            stop_timeout: spec.stop.timeout,
            oci: None,
            restart: RestartPolicy::default(),
            restart_count: 0,
            restarting: false,
            stopped_on_purpose: false,
            labels: spec.labels.clone(),
            network: Some(spec.network.name()),
        }
    }

    /// How long `stop` waits for it after the stop signal: `-t` if given, else its
    /// `--stop-timeout`, else docker's 10 s; -1 is as long as it takes.
    pub fn stop_grace(&self, asked: Option<i64>) -> std::time::Duration {
        match asked.or(self.stop_timeout).unwrap_or(10) {
            // A century: the wait ends with the container.
            n if n < 0 => std::time::Duration::from_secs(100 * 365 * 86_400),
            n => std::time::Duration::from_secs(n as u64),
        }
    }

    /// True for a container whose supervisor is its caller (OCI `create`), not minibox.
    pub fn caller_supervised(&self) -> bool {
        self.oci.as_ref().is_some_and(|o| o.caller_supervised)
    }

    pub fn short_id(&self) -> &str {
        &self.id[..SHORT_ID_LEN.min(self.id.len())]
    }

    /// The status as it really is. A container runs only while both its supervisor and its
    /// first process live: one whose process has ended (a zombie its supervisor has not read
    /// yet) or whose supervisor is gone (killed before it could write the exit; what is left
    /// of the container is the sweep's to kill) has exited, how is unknown.
    pub fn observed(mut self) -> ContainerState {
        if self.status != Status::Exited {
            let supervisor_alive = self.supervisor_alive();
            let live = match self.status {
                Status::Created => supervisor_alive,
                _ => supervisor_alive && self.pid.is_some_and(|p| p.is_alive()),
            };
            if !live {
                self.status = Status::Exited;
                self.exit_code = None;
            }
        }
        // Only a live supervisor starts it again.
        if self.restarting && !self.supervisor.is_some_and(|s| s.is_alive()) {
            self.restarting = false;
        }
        self
    }

    /// True while the minibox process that answers for the container lives.
    /// A caller-supervised container answers for itself: it lives while its process does.
    pub fn supervisor_alive(&self) -> bool {
        self.supervisor.is_some_and(|s| s.is_alive())
            || (self.caller_supervised() && self.pid.is_some_and(|p| p.is_alive()))
    }

    pub fn is_running(&self) -> bool {
        self.status != Status::Exited
    }
}

/// The state root and what is in it.
pub struct Store {
    root: PathBuf,
    /// The state root, opened once and checked (root's, writable by it alone).
    fd: std::os::fd::OwnedFd,
}

/// An exclusive `flock`, released when dropped.
pub struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

pub(crate) fn lock_file(path: &Path) -> Result<Lock> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening lock {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(Lock(file))
}

/// The same lock, if no one holds it now.
fn try_lock_file(path: &Path) -> Result<Option<Lock>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(Lock(file))),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// "no such container" when `err` is a directory that vanished (removed meanwhile).
fn gone_or(err: anyhow::Error, id: &str) -> anyhow::Error {
    let gone = err
        .root_cause()
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == ErrorKind::NotFound);
    if gone {
        anyhow::anyhow!("no such container: {id}")
    } else {
        err
    }
}

/// Where `path` is or would be once created: its nearest existing ancestor, resolved (symlinks
/// and `..` followed by the kernel), with the missing components after it.
pub fn resolve_future(path: &Path) -> Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut missing = vec![];
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                missing.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
        if existing.as_os_str().is_empty() {
            existing = PathBuf::from(".");
        }
    }
    let mut resolved = existing
        .canonicalize()
        .with_context(|| format!("resolving {}", existing.display()))?;
    resolved.extend(missing.iter().rev());
    Ok(resolved)
}

/// `--root` must be a plain directory: in a kernel filesystem (cgroup, proc, sys...) a `mkdir`
/// is no directory but a kernel object (a new cgroup), and the files there are the kernel's.
/// Returns where the root is, resolved.
pub fn check_root(root: &Path) -> Result<PathBuf> {
    use nix::sys::statfs::{statfs, FsType};
    let resolved = resolve_future(root)?;
    let mut existing = resolved.as_path();
    while !existing.exists() {
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    let kind = statfs(existing)
        .with_context(|| format!("statfs {}", existing.display()))?
        .filesystem_type();
    // (linux/magic.h; nix lacks some of them)
    let kernel_filesystems: [(i64, &str); 9] = [
        (0x0027_e0eb, "a cgroup filesystem"),
        (0x6367_7270, "a cgroup2 filesystem"),
        (0x9fa0, "/proc"),
        (0x6265_6572, "sysfs"),
        (0x6462_6720, "debugfs"),
        (0x7472_6163, "tracefs"),
        (0x7363_6673, "securityfs"),
        (0xcafe_4a11, "the bpf filesystem"),
        (0x6265_6570, "configfs"),
    ];
    if let Some((_, what)) = kernel_filesystems
        .iter()
        .find(|(magic, _)| FsType(*magic as _) == kind)
    {
        bail!(
            "--root {} is inside {what}, where directories are kernel objects: give --root a \
             directory on an ordinary filesystem (default {DEFAULT_ROOT})",
            root.display()
        );
    }
    Ok(resolved)
}

impl Store {
    /// The id maps of a container's user namespace, from the config.json it was made with
    /// (none when it has none): what its own layer's host ids stand for inside.
    pub fn id_maps(
        &self,
        id: &str,
    ) -> Option<(
        Vec<crate::kernel::namespaces::IdMap>,
        Vec<crate::kernel::namespaces::IdMap>,
    )> {
        let path = self.dir(id).join(crate::store::state::CONFIG_FILE);
        let config: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        let maps = |field: &str| -> Vec<crate::kernel::namespaces::IdMap> {
            config["linux"][field]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|m| {
                            Some(crate::kernel::namespaces::IdMap {
                                inside: m["containerID"].as_u64()? as u32,
                                outside: m["hostID"].as_u64()? as u32,
                                count: m["size"].as_u64()? as u32,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (uids, gids) = (maps("uidMappings"), maps("gidMappings"));
        (!uids.is_empty() || !gids.is_empty()).then_some((uids, gids))
    }

    /// Opens the state root, creating it (mode 0700: state is root's business) if needed.
    pub fn open(root: &Path) -> Result<Store> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .with_context(|| format!("creating the state directory {}", root.display()))?;
        let how = "give --root (or MINIBOX_ROOT) a directory only root can write to";
        let fd = root
            .canonicalize()
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
            .and_then(|r| crate::kernel::host_path::open_resolved(&r))
            .map(|o| o.fd)
            .with_context(|| {
                format!(
                    "opening the state directory {} (it changed while minibox opened it?): {how}",
                    root.display()
                )
            })?;
        let md = nix::sys::stat::fstat(&fd)?;
        let me = nix::unistd::geteuid().as_raw();
        if md.st_uid != me || md.st_mode & 0o022 != 0 {
            bail!(
                "the state directory {} belongs to uid {} with mode {:o}: others could rewrite \
                 minibox's records; {how}",
                root.display(),
                md.st_uid,
                md.st_mode & 0o7777
            );
        }
        Ok(Store {
            // Absolute: what records name by it (an id range's owner) must mean the same from
            // any working directory.
            root: std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf()),
            fd,
        })
    }

    /// The state root, as opened (and checked).
    pub fn root_fd(&self) -> &std::os::fd::OwnedFd {
        &self.fd
    }

    /// The state root: besides one directory per container, minibox keeps the networks' records
    /// here and dot files (the compiled seccomp programs).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Records a new container, making sure its name is unique (a generated one when none is
    /// given). Fails, changing nothing, when the name is taken.
    pub fn create(&self, spec: &ContainerSpec, detached: bool) -> Result<ContainerState> {
        self.create_with(spec, detached, None)
    }

    /// `create`, for an OCI container: its id is the one its caller chose, so it may be taken.
    pub fn create_with(
        &self,
        spec: &ContainerSpec,
        detached: bool,
        oci: Option<OciRecord>,
    ) -> Result<ContainerState> {
        let _lock = lock_file(&self.root.join(LOCK_FILE))?;
        if self.dir(&spec.id).exists() {
            bail!(
                "container {} already exists: delete it first (minibox delete {}) or choose \
                 another ID",
                spec.id,
                spec.id
            );
        }
        let existing = self.list()?;
        let taken = |n: &str| existing.iter().any(|c| c.name == n);
        let name = match &spec.name {
            Some(n) if taken(n) => bail!(
                "the container name {n:?} is already in use by container {}: remove it \
                 (minibox rm) or choose another name",
                existing
                    .iter()
                    .find(|c| &c.name == n)
                    .map_or("?", |c| c.short_id())
            ),
            Some(n) => n.clone(),
            None => crate::model::names::generate(&spec.id, taken),
        };
        let mut state = ContainerState::new(spec, name, detached);
        state.oci = oci;
        // Until a supervisor takes over, the creating process answers for the container.
        state.supervisor = Some(ProcessRef::of(std::process::id() as i32)?);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(self.dir(&state.id))
            .with_context(|| format!("creating {}", self.dir(&state.id).display()))?;
        self.write(&state)?;
        Ok(state)
    }

    /// Gives container `id` the name `new`, unique as `create` keeps names: under the root's
    /// lock, which `create` holds while it checks and records a name.
    pub fn rename(&self, id: &str, new: &str) -> Result<ContainerState> {
        crate::model::names::check_name(new)?;
        let _lock = lock_file(&self.root.join(LOCK_FILE))?;
        if let Some(other) = self.list()?.iter().find(|c| c.name == new) {
            if other.id == id {
                return self.load(id);
            }
            bail!(
                "the container name {new:?} is already in use by container {}: remove it \
                 (minibox rm) or choose another name",
                other.short_id()
            );
        }
        self.update(id, |s| s.name = new.to_string())
    }

    /// Writes the state atomically: a reader sees the old file or the new one, never a mix.
    /// No fsync: the state lives in /run, a tmpfs, and means nothing after a reboot anyway
    /// (where /run is ext4, see `swap_in`).
    pub fn write(&self, state: &ContainerState) -> Result<()> {
        let dir = self.dir(&state.id);
        let tmp = dir.join(format!(".{STATE_FILE}.{}", std::process::id()));
        let json = serde_json::to_vec_pretty(state).context("encoding the state")?;
        let mut file = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        file.write_all(&json)
            .with_context(|| format!("writing {}", tmp.display()))?;
        swap_in(&tmp, &dir.join(STATE_FILE))
            .with_context(|| format!("renaming {} to {STATE_FILE}", tmp.display()))
    }

    /// Reads, changes and writes a container's state under its lock. Fails if it is gone.
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerState),
    ) -> Result<ContainerState> {
        let _lock = self.lock(id)?;
        let mut state = self.load(id)?;
        change(&mut state);
        self.write(&state)?;
        Ok(state)
    }

    /// The container's own lock.
    pub fn lock(&self, id: &str) -> Result<Lock> {
        let dir = self.dir(id);
        if !dir.is_dir() {
            bail!("no such container: {id}");
        }
        lock_file(&dir.join(LOCK_FILE)).map_err(|e| gone_or(e, id))
    }

    /// The container's lock, unless someone holds it (`None`), or the container is gone.
    pub fn try_lock(&self, id: &str) -> Result<Option<Lock>> {
        let dir = self.dir(id);
        if !dir.is_dir() {
            bail!("no such container: {id}");
        }
        try_lock_file(&dir.join(LOCK_FILE)).map_err(|e| gone_or(e, id))
    }

    /// Removes the directories a minibox killed in the middle of `create` left without a
    /// state file. Under the root's lock, which `create` holds from its `mkdir` to its write,
    /// so a container being created is never taken for one; skipped when the lock is busy.
    pub fn remove_incomplete(&self) -> Result<()> {
        let Some(_lock) = try_lock_file(&self.root.join(LOCK_FILE))? else {
            return Ok(());
        };
        let entries =
            fs::read_dir(&self.root).with_context(|| format!("listing {}", self.root.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // A generated id, or an OCI one (the caller's).
            let is_record = crate::model::spec::check_oci_id(&name).is_ok();
            if is_record && entry.path().is_dir() && !entry.path().join(STATE_FILE).exists() {
                self.remove(&name)?;
            }
            // What a killed `remove` left; an `rm` still at it may be quicker (NotFound).
            if name.starts_with(REMOVING) && entry.path().is_dir() {
                let pid = name.rsplit('.').next().and_then(|p| p.parse::<i32>().ok());
                if !pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()) {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(())
    }

    pub fn load(&self, id: &str) -> Result<ContainerState> {
        let path = self.dir(id).join(STATE_FILE);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => bail!("no such container: {id}"),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a minibox state file", path.display()))
    }

    /// Every container with a readable state, oldest first.
    pub fn list(&self) -> Result<Vec<ContainerState>> {
        let mut all = vec![];
        let entries =
            fs::read_dir(&self.root).with_context(|| format!("listing {}", self.root.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.path().is_dir() || name.starts_with('.') {
                continue;
            }
            // A directory without a state file is a container being created or removed.
            if let Ok(state) = self.load(&name) {
                all.push(state);
            }
        }
        all.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Finds a container by full id, name, or unique id prefix (docker's rules).
    pub fn resolve(&self, key: &str) -> Result<ContainerState> {
        if key.is_empty() {
            bail!("no container given: name one by its name or id");
        }
        let all = self.list()?;
        if let Some(c) = all.iter().find(|c| c.id == key || c.name == key) {
            return Ok(c.clone());
        }
        let matches: Vec<&ContainerState> = all.iter().filter(|c| c.id.starts_with(key)).collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => bail!("no such container: {key}"),
            many => bail!(
                "{key:?} matches {} containers ({}): give more of the id",
                many.len(),
                many.iter()
                    .map(|c| c.short_id())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The container as it really is (see `ContainerState::observed`), after giving a live
    /// supervisor a moment to record the end of a first process that has just ended (a
    /// zombie it has not read yet), so that the exit code is shown rather than "unknown".
    pub fn settled(&self, c: ContainerState) -> ContainerState {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(250);
        let mut c = c;
        while c.status == Status::Running
            && c.supervisor_alive()
            && !c.pid.is_some_and(|p| p.is_alive())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
            match self.load(&c.id) {
                Ok(now) => c = now,
                Err(_) => break,
            }
        }
        c.observed()
    }

    /// Deletes a container's directory (state, logs, lock). It is first renamed out of the
    /// way (atomically): no other minibox can find it, lock it, or create its lock file anew
    /// while its files go.
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id);
        let doomed = self
            .root
            .join(format!("{REMOVING}{id}.{}", std::process::id()));
        match fs::rename(&dir, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
        }
        match fs::remove_dir_all(&doomed) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", doomed.display())),
        }
    }
}

// What the runtime spec says a container's state is, and the config.json a container's state
// directory keeps (`exec` rebuilds the container's processes from it).

/// The runtime-spec version minibox reports in `state` and `features`.
pub const OCI_VERSION: &str = "1.1.0";

/// The file in a container's state directory that describes it (written when it is made).
pub const CONFIG_FILE: &str = "config.json";

/// The runtime-spec state of a container (runtime.md "State"), with runc's extra fields.
pub fn state_json(c: &ContainerState, status: &str) -> Value {
    let pid = match status {
        "stopped" => 0,
        _ => c.pid.map_or(0, |p| p.pid),
    };
    let (bundle, annotations) = match &c.oci {
        Some(o) => (o.bundle.clone(), json!(o.annotations)),
        None => (PathBuf::new(), json!({})),
    };
    json!({
        "ociVersion": OCI_VERSION,
        "id": c.id,
        "status": status,
        "pid": pid,
        "bundle": bundle,
        "rootfs": c.rootfs,
        "created": crate::text::rfc3339(c.created_ms),
        "owner": "",
        "annotations": annotations,
    })
}

/// The container's config.json in its state directory, for `minibox exec`.
pub fn save_config(spec: &ContainerSpec, store: &Store, state: &ContainerState) -> Result<()> {
    let path = store.dir(&state.id).join(CONFIG_FILE);
    let json =
        crate::model::oci::write::to_json(&crate::model::oci::write::spec_from_container(spec))?;
    std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
}

/// Puts `new` at `target` atomically. Once `target` exists, by exchanging the two
/// (`renameat2(RENAME_EXCHANGE)`) and removing the old file then at `new`, not by renaming over
/// it: ext4 (auto_da_alloc) allocates and flushes the blocks of a file renamed over another at
/// once, which measured 2-5 ms per state write on an ext4 /run against 0.1-0.3 ms for the
/// exchange, and a container's start writes its state five times. A reader sees the old file
/// or the new one either way.
fn swap_in(new: &Path, target: &Path) -> std::io::Result<()> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(
        AT_FDCWD,
        new,
        AT_FDCWD,
        target,
        RenameFlags::RENAME_EXCHANGE,
    ) {
        Ok(()) => {
            // The old state, under the temp name now (a leftover of a kill here is as harmless
            // as one of a kill before the rename).
            let _ = fs::remove_file(new);
            Ok(())
        }
        // No state yet, or a filesystem that cannot exchange: a plain rename.
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EINVAL) => fs::rename(new, target),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_swapped_in_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, target) = (dir.path().join(".t"), dir.path().join("state.json"));
        for content in ["first", "second, longer", "third"] {
            fs::write(&tmp, content).unwrap();
            swap_in(&tmp, &target).unwrap();
            assert_eq!(fs::read_to_string(&target).unwrap(), content);
            assert!(!tmp.exists(), "the old state stayed under the temp name");
        }
    }

    fn spec(id_byte: char, name: Option<&str>) -> ContainerSpec {
        let dir = std::env::temp_dir();
        ContainerSpec {
            id: id_byte.to_string().repeat(64),
            name: name.map(String::from),
            rootfs: dir,
            args: vec!["/main".into()],
            env: vec![],
            hostname: "h".into(),
            workdir: "/".into(),
            identity: crate::model::user::resolve(None, None, None).unwrap(),
            capabilities: Default::default(),
            seccomp: None,
            read_only: false,
            limits: Limits::default(),
            cgroup_path: "minibox/x".into(),
            network: Default::default(),
            ports: vec![],
            net: Default::default(),
            explain: false,
            private_layer: true,
            tty: false,
            pid1: false,
            setup: crate::model::setup::Setup::docker(true),
            image: None,
            volumes: vec![],
            hooks: Default::default(),
            console_size: None,
            stop: Default::default(),
            auto_ids: None,
            labels: Default::default(),
        }
    }

    #[test]
    fn create_write_load_list_remove() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("minibox");
        let store = Store::open(&root).unwrap();
        let a = store.create(&spec('a', Some("web")), true).unwrap();
        assert_eq!(a.name, "web");
        assert_eq!(a.status, Status::Created);
        let b = store.create(&spec('b', None), false).unwrap();
        assert!(!b.name.is_empty() && b.name != "web");
        let updated = store.update(&a.id, |s| s.status = Status::Running).unwrap();
        assert_eq!(store.load(&a.id).unwrap(), updated);
        assert_eq!(store.list().unwrap().len(), 2);
        store.remove(&a.id).unwrap();
        assert!(store.load(&a.id).is_err());
        assert_eq!(store.list().unwrap().len(), 1);
        let mode = fs::metadata(&root).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn names_are_unique() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        store.create(&spec('a', Some("web")), true).unwrap();
        let e = store
            .create(&spec('b', Some("web")), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already in use"), "{e}");
        assert!(
            !store.dir(&"b".repeat(64)).exists(),
            "a refused create left a directory"
        );
    }

    #[test]
    fn rename_keeps_names_unique_and_checked() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let a = store.create(&spec('a', Some("web")), true).unwrap();
        store.create(&spec('b', Some("db")), true).unwrap();
        let e = store.rename(&a.id, "db").unwrap_err().to_string();
        assert!(e.contains("already in use"), "{e}");
        assert!(store.rename(&a.id, "-x").is_err());
        assert_eq!(store.rename(&a.id, "web").unwrap().name, "web");
        assert_eq!(store.rename(&a.id, "front").unwrap().name, "front");
        assert_eq!(store.resolve("front").unwrap().id, a.id);
        assert!(store.resolve("web").is_err());
    }

    #[test]
    fn the_longest_id_leaves_room_for_every_name_made_from_it() {
        let id = "a".repeat(crate::model::spec::MAX_ID_LEN);
        let pid_max = 4_194_304;
        assert!(format!("{REMOVING}{id}.{pid_max}").len() <= 255);
    }

    #[test]
    fn resolve_by_id_name_or_unique_prefix() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let mut s1 = spec('a', Some("one"));
        s1.id = format!("ab{}", "0".repeat(62));
        let mut s2 = spec('a', Some("two"));
        s2.id = format!("ac{}", "0".repeat(62));
        store.create(&s1, true).unwrap();
        store.create(&s2, true).unwrap();
        assert_eq!(store.resolve("one").unwrap().id, s1.id);
        assert_eq!(store.resolve(&s2.id).unwrap().name, "two");
        assert_eq!(store.resolve("ab").unwrap().name, "one");
        let e = store.resolve("a").unwrap_err().to_string();
        assert!(e.contains("matches 2 containers"), "{e}");
        assert!(store
            .resolve("zz")
            .unwrap_err()
            .to_string()
            .contains("no such container"));
        assert!(store.resolve("").is_err());
    }

    #[test]
    fn a_pid_is_trusted_only_with_its_start_time() {
        let me = ProcessRef::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let recycled = ProcessRef {
            pid: me.pid,
            start_time: me.start_time + 1,
        };
        assert!(!recycled.is_alive());
    }

    #[test]
    fn a_running_record_with_dead_processes_is_exited_unknown() {
        let mut s = ContainerState::new(&spec('a', None), "x".into(), true);
        s.status = Status::Running;
        s.exit_code = Some(0);
        s.supervisor = Some(ProcessRef {
            pid: i32::MAX,
            start_time: 1,
        });
        s.pid = Some(ProcessRef {
            pid: i32::MAX,
            start_time: 1,
        });
        let seen = s.observed();
        assert_eq!(seen.status, Status::Exited);
        assert_eq!(seen.exit_code, None);
    }

    #[test]
    fn a_container_whose_supervisor_is_gone_is_never_running() {
        let mut s = ContainerState::new(&spec('a', None), "x".into(), true);
        s.status = Status::Running;
        // The container lives (this test process stands for it); its supervisor does not.
        s.pid = Some(ProcessRef::of(std::process::id() as i32).unwrap());
        s.supervisor = Some(ProcessRef {
            pid: i32::MAX,
            start_time: 1,
        });
        assert_eq!(s.clone().observed().status, Status::Exited);
        s.supervisor = s.pid;
        assert_eq!(s.observed().status, Status::Running);
    }
}
