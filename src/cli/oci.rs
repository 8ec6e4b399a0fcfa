//! The OCI runtime command line, runc's conventions (what containerd's runc shim and podman's
//! conmon call): `create`, `start`, `state`, `kill`, `delete`, `pause`, `resume`, `update`,
//! `features`, `ps ID`; `run --bundle` lives with `run`.
//!
//! An OCI container's id is the caller's (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, engines use 64 hex
//! digits) and is also its name, so the docker-style commands (`ps`, `stop`, `logs`, `rm`)
//! find it too. These commands take the exact id, as runc does.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxResources, Spec};
use serde_json::json;

use crate::cli::{lifecycle, CreateArgs, OciRunFlags, RunArgs};
use crate::kernel::cgroup::{self, LimitsUpdate, CPU_PERIOD_US};
use crate::kernel::namespaces::CONTAINER_KINDS;
use crate::kernel::shared_root;
use crate::model::spec::{check_oci_id, ContainerSpec};
use crate::model::{oci, spec::check_rootfs_apart_from_state};
use crate::runtime::create::{self, does_not_exist, CreateOptions};
use crate::runtime::hooks;
use crate::store::state::{state_json, ContainerState, Status, Store, OCI_VERSION};

/// A bundle's container, checked: `config.json` read, `--systemd-cgroup` applied.
pub fn load_bundle(
    dir: &Path,
    id: &str,
    systemd_cgroup: bool,
) -> Result<(ContainerSpec, BTreeMap<String, String>)> {
    check_oci_id(id)?;
    let mut spec = oci::read::load(dir)?;
    if systemd_cgroup {
        systemd_to_cgroupfs(&mut spec)?;
    }
    let container = oci::read::container_from_spec(&spec, dir, id)?;
    let annotations = spec
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok((
        ContainerSpec {
            name: Some(id.to_string()),
            ..container
        },
        annotations,
    ))
}

/// `--systemd-cgroup`: minibox does not ask systemd for a scope; it makes the group where
/// systemd would put it, `slice:prefix:name` → `<expanded slice>/<prefix>-<name>.scope`.
fn systemd_to_cgroupfs(spec: &mut Spec) -> Result<()> {
    let Some(linux) = spec.linux_mut() else {
        return Ok(());
    };
    let Some(given) = linux.cgroups_path().clone() else {
        return Ok(());
    };
    let text = given.to_string_lossy().into_owned();
    let mapped = systemd_path(&text)?;
    linux.set_cgroups_path(Some(PathBuf::from(mapped)));
    Ok(())
}

/// `system.slice:libpod:abc` → `/system.slice/libpod-abc.scope`; a slice `a-b.slice` is
/// `a.slice/a-b.slice`, as systemd nests it.
pub fn systemd_path(text: &str) -> Result<String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [slice, prefix, name] = parts.as_slice() else {
        bail!(
            "linux.cgroupsPath {text:?} is not systemd's slice:prefix:name (as --systemd-cgroup \
             expects)"
        );
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let Some(stem) = slice.strip_suffix(".slice") else {
        bail!("linux.cgroupsPath {text:?}: the slice {slice:?} must end in .slice");
    };
    let mut path = String::new();
    if stem != "-" {
        let words: Vec<&str> = stem.split('-').collect();
        if words.iter().any(|w| w.is_empty() || w.contains('/')) {
            bail!("linux.cgroupsPath {text:?}: the slice {slice:?} is malformed");
        }
        for i in 1..=words.len() {
            path.push('/');
            path.push_str(&words[..i].join("-"));
            path.push_str(".slice");
        }
    }
    if name.is_empty() || name.contains('/') || prefix.contains('/') {
        bail!("linux.cgroupsPath {text:?}: name the unit as slice:prefix:name");
    }
    if name.ends_with(".slice") {
        path.push('/');
        path.push_str(name);
    } else if prefix.is_empty() {
        path.push_str(&format!("/{name}.scope"));
    } else {
        path.push_str(&format!("/{prefix}-{name}.scope"));
    }
    Ok(path)
}

/// `minibox create [--bundle DIR] ... ID`
pub fn create(
    args: &CreateArgs,
    systemd_cgroup: bool,
    store_root: &Path,
    state_root: &Path,
) -> Result<i32> {
    let dir = match &args.bundle {
        Some(d) => d.clone(),
        None => PathBuf::from("."),
    };
    create_from(
        &dir,
        &args.id,
        &args.oci,
        systemd_cgroup,
        store_root,
        state_root,
    )
}

fn create_from(
    dir: &Path,
    id: &str,
    flags: &OciRunFlags,
    systemd_cgroup: bool,
    store_root: &Path,
    state_root: &Path,
) -> Result<i32> {
    let bundle = dir
        .canonicalize()
        .with_context(|| format!("--bundle {}: cannot open it", dir.display()))?;
    let (spec, annotations) = load_bundle(&bundle, id, systemd_cgroup)?;
    check_rootfs_apart_from_state(&spec.rootfs, state_root)?;
    let store = lifecycle::open_store(store_root)?;
    let opts = CreateOptions {
        bundle,
        annotations,
        pid_file: flags.pid_file.as_ref().map(absolute).transpose()?,
        console_socket: flags.console_socket.clone(),
        no_pivot: flags.no_pivot,
        no_new_keyring: flags.no_new_keyring,
        preserve_fds: flags.preserve_fds,
    };
    create::create(&spec, &store, &opts)?;
    Ok(0)
}

fn absolute(path: &PathBuf) -> Result<PathBuf> {
    Ok(std::env::current_dir()
        .context("reading the current directory")?
        .join(path))
}

/// `minibox run -d` of a bundle: create and start, and leave it to the caller (runc run -d).
pub fn run_detached(
    args: &RunArgs,
    bundle: &Path,
    systemd_cgroup: bool,
    store_root: &Path,
    state_root: &Path,
) -> Result<i32> {
    if args.rm {
        bail!(
            "--rm cannot be used with -d for a bundle: no minibox process stays to remove it; \
             use minibox delete ID once it has stopped"
        );
    }
    let id = args.rootfs.to_string_lossy().into_owned();
    create_from(
        bundle,
        &id,
        &args.oci,
        systemd_cgroup,
        store_root,
        state_root,
    )?;
    let store = Store::open(store_root)?;
    if let Err(e) = create::start(&store, &id) {
        let _ = delete(&store, &id, true);
        return Err(e);
    }
    Ok(0)
}

/// The container under its exact id (an OCI command's argument), as it is now.
fn load(store: &Store, id: &str) -> Result<ContainerState> {
    check_oci_id(id)?;
    Ok(store.load(id).map_err(|_| does_not_exist(id))?.observed())
}

/// The runtime-spec status of a container now.
fn status_of(c: &ContainerState) -> &'static str {
    match c.status {
        Status::Created => "created",
        Status::Exited => "stopped",
        Status::Running => {
            let paused = c
                .cgroup
                .as_ref()
                .and_then(cgroup::reopen)
                .is_some_and(|cg| cg.is_frozen());
            if paused {
                "paused"
            } else {
                "running"
            }
        }
    }
}

/// `minibox state ID`
pub fn state(store: &Store, id: &str) -> Result<i32> {
    let c = load(store, id)?;
    let json = serde_json::to_string_pretty(&state_json(&c, status_of(&c)))?;
    out!("{json}");
    Ok(0)
}

/// `minibox start ID`
pub fn start(store: &Store, id: &str) -> Result<i32> {
    check_oci_id(id)?;
    create::start(store, id)?;
    Ok(0)
}

/// `minibox kill`: docker's `kill [-s SIGNAL] CONTAINER...` or runc's `kill [--all] ID
/// [SIGNAL]`. runc's form is told by the arguments' shape alone, never by looking names up
/// (a container named "15" must not turn `kill ID 15` into two SIGKILLs): two words whose
/// second is written as a signal. A single container made by `create` gets runc's default,
/// TERM; docker's default is KILL.
pub fn kill(store: &Store, signal: Option<&str>, all: bool, keys: &[String]) -> Result<i32> {
    let oci_made = |key: &str| store.load(key).is_ok_and(|c| c.caller_supervised());
    let runc_form = match (signal, keys) {
        (None, [_, second]) => signal_shaped(second),
        (_, [one]) => all || oci_made(one),
        _ => false,
    };
    if !runc_form {
        if all {
            bail!("kill --all takes one container: kill --all ID [SIGNAL]");
        }
        let sig = lifecycle::parse_signal(signal.unwrap_or("KILL"))?;
        return lifecycle::kill(store, sig, keys);
    }
    let text = signal.or(keys.get(1).map(String::as_str)).unwrap_or("TERM");
    let sig = lifecycle::parse_signal(text)?;
    kill_one(store, &keys[0], sig, all)?;
    Ok(0)
}

/// Written as a signal: a number, a signal's name in any case (`15`, `TERM`, `sigusr1`), or
/// an upper-case word (`NOPE`: runc's form, refused as no signal rather than read as a name).
fn signal_shaped(word: &str) -> bool {
    let upper_word = word.starts_with(|c: char| c.is_ascii_uppercase())
        && word
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"+-".contains(&b));
    let number = !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit());
    number || upper_word || lifecycle::parse_signal(word).is_ok()
}

fn kill_one(store: &Store, id: &str, sig: Signal, all: bool) -> Result<()> {
    let c = load(store, id)?;
    let not_running = || anyhow::anyhow!("cannot kill container {id}: container not running");
    if c.status == Status::Exited {
        return Err(not_running());
    }
    if all {
        let group = c.cgroup.as_ref().and_then(cgroup::reopen);
        let pids = group.as_ref().map(|g| g.processes()).unwrap_or_default();
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
        // A frozen process acts on KILL only once thawed.
        if sig == Signal::SIGKILL {
            if let Some(g) = &group {
                if g.is_frozen() {
                    let _ = g.set_frozen(false);
                }
            }
        }
        return Ok(());
    }
    let Some(pid) = c.pid else {
        return Err(not_running());
    };
    if !pid.signal(sig)? {
        return Err(not_running());
    }
    if sig == Signal::SIGKILL {
        lifecycle::thaw(&c);
    }
    Ok(())
}

/// `minibox delete [--force] ID`: a stopped or created container goes (a created one is
/// killed, as runc does); a running one only with --force. Its poststop hooks run last.
pub fn delete(store: &Store, id: &str, force: bool) -> Result<i32> {
    let c = load(store, id)?;
    if !c.caller_supervised() {
        // A foreground `run --bundle`: minibox supervises it; rm's rules apply.
        return lifecycle::rm(store, force, &[id.to_string()]);
    }
    let status = status_of(&c);
    if matches!(status, "running" | "paused") && !force {
        bail!(
            "cannot delete container {id}: it is {status}; kill it first (minibox kill {id} \
             KILL) or use delete --force"
        );
    }
    let group = c.cgroup.as_ref().and_then(cgroup::reopen);
    if let Some(pid) = c.pid.filter(|p| p.is_alive()) {
        if let Some(g) = &group {
            if g.is_frozen() {
                let _ = g.set_frozen(false);
            }
        }
        pid.signal(Signal::SIGKILL)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid.is_alive() {
            if Instant::now() >= deadline {
                bail!("container {id} did not die of SIGKILL within 10 s");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    if let Some(g) = &group {
        if g.path().exists() {
            g.destroy()?;
        }
    }
    if let Some(oci) = &c.oci {
        shared_root::detach_since(&c.rootfs, oci.root_mounts_before);
    }
    store.remove(id)?;
    if let Some(oci) = &c.oci {
        hooks::run_warning_only(
            &oci.hooks,
            "poststop",
            &state_json(&c, "stopped").to_string(),
        );
    }
    Ok(0)
}

/// `minibox pause ID` / `resume ID`: the cgroup freezer.
pub fn freeze(store: &Store, id: &str, frozen: bool) -> Result<i32> {
    let c = load(store, id)?;
    let verb = if frozen { "pause" } else { "resume" };
    match (status_of(&c), frozen) {
        ("running", true) | ("paused", false) => {}
        (status, _) => bail!("cannot {verb} container {id}: it is {status}"),
    }
    let Some(group) = c.cgroup.as_ref().and_then(cgroup::reopen) else {
        bail!("cannot {verb} container {id}: it has no cgroup (this host gave minibox none)");
    };
    group
        .set_frozen(frozen)
        .with_context(|| format!("cannot {verb} container {id}"))?;
    Ok(0)
}

/// `minibox update --resources FILE|- ID`: new limits, written into the live cgroup.
pub fn update(store: &Store, id: &str, resources: &Path) -> Result<i32> {
    let c = load(store, id)?;
    if c.status == Status::Exited {
        bail!("cannot update container {id}: it is stopped");
    }
    let mut text = String::new();
    if resources == Path::new("-") {
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut text)
            .context("reading --resources from stdin")?;
    } else {
        std::fs::File::open(resources)
            .and_then(|f| f.take(1 << 20).read_to_string(&mut text))
            .with_context(|| format!("reading --resources {}", resources.display()))?;
    }
    let r: LinuxResources = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("--resources: {e}: give LinuxResources JSON"))?;
    let change = limits_update(&r)?;
    let Some(group) = c.cgroup.as_ref().and_then(cgroup::reopen) else {
        bail!("cannot update container {id}: it has no cgroup (this host gave minibox none)");
    };
    group
        .update(&change)
        .with_context(|| format!("cannot update container {id}"))?;
    // What ps shows follows.
    let period = change.cpu_period.unwrap_or(CPU_PERIOD_US).max(1);
    store.update(id, |s| {
        if let Some(m) = change.memory {
            s.limits.memory = u64::try_from(m).ok();
        }
        if let Some(q) = change.cpu_quota {
            s.limits.cpu_quota = u64::try_from(q).ok().map(|q| q * CPU_PERIOD_US / period);
        }
        if let Some(p) = change.pids {
            s.limits.pids = u64::try_from(p).ok().filter(|p| *p > 0);
        }
    })?;
    Ok(0)
}

/// The parts of LinuxResources minibox changes live; the others are refused by name.
fn limits_update(r: &LinuxResources) -> Result<LimitsUpdate> {
    let refuse = |field: &str| bail!("--resources: {field} cannot be updated by minibox");
    if r.block_io().is_some() {
        return refuse("blockIO");
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        return refuse("hugepageLimits");
    }
    if r.network().is_some() {
        return refuse("network");
    }
    if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) {
        return refuse("rdma");
    }
    if r.unified().as_ref().is_some_and(|h| !h.is_empty()) {
        return refuse("unified");
    }
    let mut change = LimitsUpdate::default();
    if let Some(m) = r.memory() {
        if m.reservation().is_some() || m.kernel().is_some() || m.swappiness().is_some() {
            return refuse("memory.reservation, memory.kernel and memory.swappiness");
        }
        change.memory = m.limit();
        change.memory_swap = m.swap();
    }
    if let Some(cpu) = r.cpu() {
        if cpu.cpus().is_some() || cpu.mems().is_some() || cpu.realtime_runtime().is_some() {
            return refuse("cpu.cpus, cpu.mems and cpu.realtime*");
        }
        change.cpu_quota = cpu.quota();
        change.cpu_period = cpu.period();
        change.cpu_shares = cpu.shares();
    }
    if let Some(p) = r.pids() {
        change.pids = Some(p.limit());
    }
    Ok(change)
}

/// `minibox ps ID`: the host pids of the container's processes.
pub fn pids(store: &Store, key: &str, json_format: bool) -> Result<i32> {
    let c = store.resolve(key)?.observed();
    let pids = c
        .cgroup
        .as_ref()
        .and_then(cgroup::reopen)
        .map(|g| g.processes())
        .unwrap_or_default();
    if json_format {
        out!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    out!("PID\tCMD");
    for pid in pids {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        out!("{pid}\t{}", cmd.trim_end());
    }
    Ok(0)
}

/// `minibox features`: what this runtime supports (runtime-spec features.md).
pub fn features() -> Result<i32> {
    let mut namespaces: Vec<&str> = CONTAINER_KINDS.iter().map(|k| k.oci_name()).collect();
    namespaces.sort_unstable();
    let caps: Vec<String> = caps::all::<Vec<String>>();
    let f = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "nosuid", "nodev", "dev", "noexec", "strictatime", "bind", "rbind"],
        "linux": {
            "namespaces": namespaces,
            "capabilities": caps,
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false },
            "seccomp": { "enabled": false },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
            "intelRdt": { "enabled": false },
        },
        "annotations": {
            "org.minibox.network": "private | none | host",
            "org.minibox.ports": "published ports, -p syntax, comma-separated",
        },
    });
    out!("{}", serde_json::to_string_pretty(&f)?);
    Ok(0)
}

mod caps {
    /// Every capability this kernel library knows, as OCI names (`CAP_...`).
    pub fn all<T: FromIterator<String>>() -> T {
        let mut names: Vec<String> = ::caps::all().iter().map(|c| c.to_string()).collect();
        names.sort();
        names.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_kill_is_told_by_the_second_words_shape() {
        for signal in ["15", "9", "TERM", "SIGKILL", "usr1", "NOPE", "RTMIN+3"] {
            assert!(signal_shaped(signal), "{signal}");
        }
        for name in ["web", "db-1", "my_app", "", "Web"] {
            assert!(!signal_shaped(name), "{name}");
        }
    }

    #[test]
    fn systemd_paths_are_where_systemd_would_put_them() {
        assert_eq!(
            systemd_path("system.slice:libpod:abc").unwrap(),
            "/system.slice/libpod-abc.scope"
        );
        assert_eq!(
            systemd_path("machine-a.slice:cri:x").unwrap(),
            "/machine.slice/machine-a.slice/cri-x.scope"
        );
        assert_eq!(systemd_path("-.slice::x").unwrap(), "/x.scope");
        for bad in [
            "abc",
            "a:b",
            "nosuffix:p:n",
            "system.slice:p:",
            "x.slice:p:../n",
        ] {
            assert!(systemd_path(bad).is_err(), "{bad}");
        }
    }
}
