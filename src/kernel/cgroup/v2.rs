//! The cgroup v2 driver: one directory per container in the unified hierarchy.

use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::unistd::Pid;

use super::{blkio, ContainerCgroup, Limits, Placement, Tuning, Usage, CPU_PERIOD_US};

/// The controllers a container's group needs.
const NEEDED: [&str; 3] = ["memory", "cpu", "pids"];

/// The unified hierarchy, at its mount point.
pub struct Hierarchy {
    root: PathBuf,
}

pub enum Found {
    Usable(Hierarchy),
    /// No cgroup2 mount, or one without the controllers we need (a v1/v2 hybrid host).
    Missing {
        looked_at: String,
        missing: Vec<&'static str>,
    },
}

impl Hierarchy {
    /// Finds the cgroup2 mount in our mount table and checks it offers our controllers.
    pub fn find() -> Result<Found> {
        let mountinfo =
            fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
        let Some(root) = cgroup2_mount_point(&mountinfo) else {
            return Ok(Found::Missing {
                looked_at: "/proc/self/mountinfo, which has no cgroup2 mount".into(),
                missing: NEEDED.to_vec(),
            });
        };
        let hierarchy = Hierarchy::at(root);
        let missing = hierarchy.missing_controllers()?;
        if missing.is_empty() {
            Ok(Found::Usable(hierarchy))
        } else {
            let looked_at = hierarchy
                .root
                .join("cgroup.controllers")
                .display()
                .to_string();
            Ok(Found::Missing { looked_at, missing })
        }
    }

    pub fn at(root: impl Into<PathBuf>) -> Hierarchy {
        Hierarchy { root: root.into() }
    }

    fn missing_controllers(&self) -> Result<Vec<&'static str>> {
        let path = self.root.join("cgroup.controllers");
        let have =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let have: Vec<&str> = have.split_whitespace().collect();
        Ok(NEEDED.into_iter().filter(|c| !have.contains(c)).collect())
    }

    /// Makes `<root>/<parent>/<id>` with the controllers enabled down to it and the limits
    /// written. Nothing is left behind if any step fails (beyond parent groups, which are shared).
    pub fn create(&self, place: &Placement, limits: &Limits, tuning: &Tuning) -> Result<Group> {
        // io only for a container that asks for blockIO settings (as cpuset: the others' groups
        // stay as they were).
        let extra: &[&str] = match tuning.wants_blkio() {
            true => &["io"],
            false => &[],
        };
        let parent = self.prepare_parent(&place.parent, extra)?;
        let path = parent.join(&place.id);
        fs::create_dir(&path).with_context(|| format!("creating cgroup {}", path.display()))?;
        let group = Group { path };
        if let Err(e) = group
            .write_limits(limits, tuning)
            .and_then(|()| group.write_unified(&tuning.unified))
        {
            let _ = fs::remove_dir(&group.path);
            return Err(e);
        }
        Ok(group)
    }

    /// Where `create` puts the container's group (`<root>/<parent>/<id>`), checking the parent.
    pub fn group_path(&self, place: &Placement) -> Result<PathBuf> {
        let mut dir = self.root.clone();
        for part in place.parent.components() {
            match part {
                Component::Normal(name) => dir.push(name),
                Component::RootDir | Component::CurDir => continue,
                _ => bail!(
                    "invalid --cgroup-parent {}: use a path below the cgroup root, without '..'",
                    place.parent.display()
                ),
            }
        }
        Ok(dir.join(&place.id))
    }

    /// Creates the parent groups that are missing and enables our controllers for the children
    /// of each, from the root down.
    fn prepare_parent(&self, parent: &Path, extra: &[&str]) -> Result<PathBuf> {
        let mut dir = self.root.clone();
        enable_controllers(&dir, extra)?;
        for part in parent.components() {
            match part {
                Component::Normal(name) => dir.push(name),
                Component::RootDir | Component::CurDir => continue,
                _ => bail!(
                    "invalid --cgroup-parent {}: use a path below the cgroup root, without '..'",
                    parent.display()
                ),
            }
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("creating cgroup {}", dir.display()))
                }
            }
            enable_controllers(&dir, extra)?;
        }
        Ok(dir)
    }
}

/// Field 5 (mount point) of the first mountinfo line whose type is cgroup2.
fn cgroup2_mount_point(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (fields, after) = line.split_once(" - ")?;
        (after.split(' ').next() == Some("cgroup2"))
            .then(|| fields.split(' ').nth(4).map(PathBuf::from))?
    })
}

/// Lets the children of `dir` use our controllers (`+memory +cpu +pids` and `extra` in its
/// cgroup.subtree_control), unless they already can.
fn enable_controllers(dir: &Path, extra: &[&str]) -> Result<()> {
    let file = dir.join("cgroup.subtree_control");
    let enabled =
        fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let enabled: Vec<&str> = enabled.split_whitespace().collect();
    if let Some(absent) = extra.iter().find(|c| {
        !fs::read_to_string(dir.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .any(|have| have == **c)
    }) {
        bail!(
            "linux.resources.blockIO needs the {absent} controller, which {} does not offer \
             (see its cgroup.controllers)",
            dir.display()
        );
    }
    let wanted: Vec<String> = NEEDED
        .iter()
        .chain(extra)
        .filter(|c| !enabled.contains(c))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    match fs::write(&file, wanted.join(" ")) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => bail!(
            "cannot enable {} in {}: that group has processes of its own, and cgroup v2 lets a \
             group with processes hand no controllers to its children (the 'no internal \
             processes' rule). Choose a --cgroup-parent whose group has no processes",
            wanted.join(" "),
            file.display()
        ),
        Err(e) => {
            Err(e).with_context(|| format!("writing {:?} to {}", wanted.join(" "), file.display()))
        }
    }
}

/// One container's group.
pub struct Group {
    path: PathBuf,
}

impl Group {
    /// A group that already exists (made by an earlier minibox).
    pub fn at(path: &Path) -> Group {
        Group {
            path: path.to_path_buf(),
        }
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.path.join(file);
        fs::write(&path, value).with_context(|| format!("writing {value:?} to {}", path.display()))
    }

    fn read(&self, file: &str) -> Option<String> {
        fs::read_to_string(self.path.join(file)).ok()
    }

    fn read_u64(&self, file: &str) -> Option<u64> {
        self.read(file)?.trim().parse().ok()
    }

    /// A number, or -1 for `max`.
    fn read_i64(&self, file: &str) -> Option<i64> {
        match self.read(file)?.trim() {
            "max" => Some(-1),
            n => n.parse().ok(),
        }
    }

    /// A `key value` line of a flat-keyed file such as memory.events or cpu.stat.
    fn read_key(&self, file: &str, key: &str) -> Option<u64> {
        super::flat_key(&self.read(file)?, key)
    }

    fn write_limits(&self, limits: &Limits, tuning: &Tuning) -> Result<()> {
        if let Some(bytes) = limits.memory {
            self.write("memory.max", &bytes.to_string())?;
        }
        // No swap on top of a memory limit unless asked (the file is absent without swap
        // accounting).
        if let Some(swap) = tuning.swap_max(limits.memory) {
            if self.path.join("memory.swap.max").exists() {
                self.write("memory.swap.max", &swap)?;
            }
        }
        if let Some(low) = tuning.memory_reservation {
            self.write("memory.low", &low.to_string())?;
        }
        let period = tuning.cpu_period.unwrap_or(CPU_PERIOD_US);
        match limits.cpu_quota {
            Some(quota) => self.write("cpu.max", &format!("{quota} {period}"))?,
            None if tuning.cpu_period.is_some() => {
                self.write("cpu.max", &format!("max {period}"))?
            }
            None => {}
        }
        if let Some(weight) = tuning.cpu_weight() {
            self.write("cpu.weight", &weight.to_string())?;
        }
        if let Some(cpus) = &tuning.cpus {
            self.write("cpuset.cpus", cpus)?;
        }
        if let Some(mems) = &tuning.mems {
            self.write("cpuset.mems", mems)?;
        }
        if let Some(pids) = limits.pids {
            self.write("pids.max", &pids.to_string())?;
        }
        if tuning.wants_blkio() {
            let has = |f: &str| self.path.join(f).exists();
            let bfq = self.read("io.bfq.weight");
            for (file, line) in blkio::v2_writes(&tuning.block_io, has, bfq.as_deref())? {
                self.write(&file, &line)?;
            }
        }
        Ok(())
    }

    /// `linux.resources.unified`: each key a file of the group (never a path out of it).
    fn write_unified(&self, unified: &[(String, String)]) -> Result<()> {
        for (key, value) in unified {
            if key.is_empty() || key.contains('/') || key.contains("..") {
                bail!("linux.resources.unified key {key:?} is not a file of the group");
            }
            if !self.path.join(key).exists() {
                bail!(
                    "linux.resources.unified {key}: the group has no such file (is its \
                     controller enabled?)"
                );
            }
            self.write(key, value)?;
        }
        Ok(())
    }

    fn is_populated(&self) -> bool {
        self.read_key("cgroup.events", "populated")
            .is_some_and(|n| n != 0)
    }

    fn kill_all(&self) -> Result<()> {
        if self.path.join("cgroup.kill").exists() {
            return self.write("cgroup.kill", "1");
        }
        // Before Linux 5.14: kill each process we can see.
        for pid in self
            .read("cgroup.procs")
            .unwrap_or_default()
            .split_whitespace()
        {
            if let Ok(pid) = pid.parse() {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            }
        }
        Ok(())
    }
}

impl ContainerCgroup for Group {
    fn path(&self) -> &Path {
        &self.path
    }

    fn driver(&self) -> &'static str {
        "cgroup v2"
    }

    fn add(&self, pid: Pid) -> Result<()> {
        self.write("cgroup.procs", &pid.to_string())
    }

    fn settings(&self) -> Vec<(String, String)> {
        // The device filter, read back from the kernel: which program, and what it holds.
        let devices = super::bpf::attached(&self.path)
            .unwrap_or_default()
            .into_iter()
            .map(|id| {
                let holds = match super::bpf::describe(id) {
                    Ok((allow, rules)) => super::devices::Filter::summary_of(allow, rules),
                    Err(e) => format!("{e:#}"),
                };
                ("devices".to_string(), format!("BPF program {id}: {holds}"))
            });
        ["memory.max", "memory.swap.max", "cpu.max", "pids.max"]
            .iter()
            .filter_map(|f| Some((f.to_string(), self.read(f)?.trim().to_string())))
            .chain(devices)
            .collect()
    }

    fn usage(&self) -> Usage {
        Usage {
            memory_current: self.read_u64("memory.current"),
            memory_peak: self.read_u64("memory.peak"),
            cpu_usec: self.read_key("cpu.stat", "usage_usec"),
            oom_kills: self.read_key("memory.events", "oom_kill").unwrap_or(0),
        }
    }

    fn has_processes(&self) -> bool {
        self.is_populated()
    }

    fn processes(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self
            .read("cgroup.procs")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        pids.sort_unstable();
        pids
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        self.write("cgroup.freeze", if frozen { "1" } else { "0" })?;
        // The freeze is done when cgroup.events says so: `pause` returns with it done.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.read_key("cgroup.events", "frozen") != Some(u64::from(frozen)) {
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{} did not become {} within 5 s",
                    self.path.display(),
                    if frozen { "frozen" } else { "thawed" }
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn is_frozen(&self) -> bool {
        self.read_key("cgroup.events", "frozen") == Some(1)
    }

    /// cgroup v2 has no device files: a program, attached before any process joins.
    fn restrict_devices(&self, filter: &super::devices::Filter) -> Result<()> {
        if filter.allows_all() {
            return Ok(());
        }
        super::bpf::load_and_attach(&self.path, filter)
    }

    fn update(&self, change: &super::LimitsUpdate) -> Result<()> {
        if let Some(bytes) = change.memory {
            self.write("memory.max", &super::limit_text(bytes, "max"))?;
        }
        // OCI's swap is memory+swap; v2 counts swap alone.
        if let Some(total) = change.memory_swap {
            let swap = match (total, change.memory.or_else(|| self.read_i64("memory.max"))) {
                (t, _) if t < 0 => -1,
                (t, Some(m)) if m >= 0 => (t - m).max(0),
                (t, _) => t,
            };
            self.write("memory.swap.max", &super::limit_text(swap, "max"))?;
        }
        if change.cpu_quota.is_some() || change.cpu_period.is_some() {
            let now = self.read("cpu.max").unwrap_or_default();
            let mut parts = now.split_whitespace();
            let (old_quota, old_period) = (parts.next().unwrap_or("max"), parts.next());
            let quota = change
                .cpu_quota
                .map_or(old_quota.to_string(), |q| super::limit_text(q, "max"));
            let period = change
                .cpu_period
                .map_or(old_period.unwrap_or("100000").to_string(), |p| {
                    p.to_string()
                });
            self.write("cpu.max", &format!("{quota} {period}"))?;
        }
        if let Some(shares) = change.cpu_shares {
            self.write("cpu.weight", &super::shares_to_weight(shares).to_string())?;
        }
        if let Some(pids) = change.pids {
            self.write(
                "pids.max",
                &super::limit_text(if pids == 0 { -1 } else { pids }, "max"),
            )?;
        }
        Ok(())
    }

    fn destroy(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        // A paused container's processes die only once thawed.
        if self.is_frozen() {
            let _ = self.write("cgroup.freeze", "0");
        }
        if self.is_populated() {
            self.kill_all()?;
        }
        super::remove_group(&self.path, deadline, || {
            let _ = self.kill_all();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake hierarchy in a tempdir, shaped like cgroupfs's files.
    fn fake_root(controllers: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cgroup.controllers"), controllers).unwrap();
        fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        dir
    }

    fn place(parent: &str) -> Placement {
        Placement {
            parent: parent.into(),
            id: "abc".into(),
        }
    }

    #[test]
    fn finds_the_cgroup2_mount() {
        let hybrid = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount_point(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pure =
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_mount_point(pure),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            cgroup2_mount_point("27 1 254:0 / / rw - ext4 /dev/vda rw\n"),
            None
        );
    }

    #[test]
    fn writes_limits_and_enables_controllers_down_the_parents() {
        let root = fake_root("cpuset cpu io memory pids");
        let h = Hierarchy::at(root.path());
        assert!(h.missing_controllers().unwrap().is_empty());
        // Pretend the kernel made the parent's control file (cgroupfs makes it on mkdir).
        fs::create_dir(root.path().join("minibox")).unwrap();
        fs::write(root.path().join("minibox/cgroup.subtree_control"), "memory").unwrap();
        let limits = Limits {
            memory: Some(64 << 20),
            cpu_quota: Some(50_000),
            pids: Some(20),
        };
        let g = h
            .create(&place("/minibox"), &limits, &Tuning::default())
            .unwrap();
        let read = |f: &str| fs::read_to_string(g.path().join(f)).unwrap();
        assert_eq!(read("memory.max"), "67108864");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("pids.max"), "20");
        let root_ctl = fs::read_to_string(root.path().join("cgroup.subtree_control")).unwrap();
        assert_eq!(root_ctl, "+memory +cpu +pids");
        let parent_ctl =
            fs::read_to_string(root.path().join("minibox/cgroup.subtree_control")).unwrap();
        assert_eq!(parent_ctl, "+cpu +pids", "memory was already enabled there");
    }

    #[test]
    fn no_limits_writes_no_limit_files() {
        let root = fake_root("cpu memory pids");
        fs::create_dir(root.path().join("p")).unwrap();
        fs::write(
            root.path().join("p/cgroup.subtree_control"),
            "cpu memory pids",
        )
        .unwrap();
        let g = Hierarchy::at(root.path())
            .create(&place("p"), &Limits::default(), &Tuning::default())
            .unwrap();
        assert_eq!(fs::read_dir(g.path()).unwrap().count(), 0);
        g.destroy().unwrap();
        assert!(!g.path().exists());
    }

    #[test]
    fn reports_missing_controllers_and_bad_parents() {
        let root = fake_root("cpuset io");
        let h = Hierarchy::at(root.path());
        assert_eq!(h.missing_controllers().unwrap(), ["memory", "cpu", "pids"]);
        let e = h
            .create(&place("../escape"), &Limits::default(), &Tuning::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("invalid --cgroup-parent"), "{e}");
    }

    #[test]
    fn reads_usage_from_the_kernels_files() {
        let dir = tempfile::tempdir().unwrap();
        let g = Group {
            path: dir.path().to_path_buf(),
        };
        fs::write(dir.path().join("memory.current"), "4096\n").unwrap();
        fs::write(dir.path().join("memory.peak"), "8192\n").unwrap();
        fs::write(
            dir.path().join("cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n",
        )
        .unwrap();
        let u = g.usage();
        assert_eq!(u.memory_current, Some(4096));
        assert_eq!(u.memory_peak, Some(8192));
        assert_eq!(u.cpu_usec, Some(1500));
        assert_eq!(u.oom_kills, 1, "oom_kill counts, not oom");
    }
}
