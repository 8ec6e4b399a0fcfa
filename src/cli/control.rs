//! Taking a container through its states, docker's way: `start` (an exited container again,
//! or runc's `start ID`), `restart`, `--restart` policies, `wait`, `rename`, `pause` and
//! `unpause`.
//!
//! A container started again is the one its state directory describes: the config.json its
//! first run saved (the OCI form every docker-style run goes through) and its record, read back
//! into the same model a run makes; its own layer keeps what it wrote.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::{lifecycle, oci, RunArgs};
use crate::model::restart::RestartPolicy;
use crate::model::spec::{ContainerSpec, StopPolicy};
use crate::model::volume::{self, VolumeMount, VolumeSource};
use crate::runtime::launcher;
use crate::runtime::status::StatusError;
use crate::store::layers::Layers;
use crate::store::state::{ContainerState, Store, CONFIG_FILE};

/// `--restart`, checked before anything is made.
pub fn restart_policy(args: &RunArgs, bundle: bool) -> Result<RestartPolicy> {
    let policy = RestartPolicy::parse(&args.restart)?;
    if policy.is_none() {
        return Ok(policy);
    }
    if args.rm {
        bail!("conflicting options: --restart and --rm (a container removed when it exits cannot be started again)");
    }
    if bundle {
        bail!("--restart is for docker-style runs: an OCI bundle's engine restarts its containers");
    }
    Ok(policy)
}

/// Runs `act` on each container named, docker's way: the name given is printed for each done,
/// errors one per line, and the command fails (status 1) if any did.
fn each(keys: &[String], act: impl Fn(&str) -> Result<()>) -> Result<i32> {
    let mut failed = false;
    for key in keys {
        match act(key) {
            Ok(()) => out!("{key}"),
            Err(e) => {
                say!("minibox: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// True for a key runc's commands own: the exact id of a container its caller supervises
/// (made by `create`), or a key naming no container at all (runc's error says so).
fn runc_owned(store: &Store, key: &str) -> bool {
    match store.load(key) {
        Ok(c) => c.caller_supervised(),
        Err(_) => store.resolve(key).is_err(),
    }
}

/// `minibox start [-a] [-i] CONTAINER...`; runc's `start ID` for a created container, exactly
/// as before (engines call it).
pub fn start(
    store: &Store,
    data_root: &Path,
    attach: bool,
    interactive: bool,
    keys: &[String],
) -> Result<i32> {
    let attach = attach || interactive;
    if let [key] = keys {
        if !attach && runc_owned(store, key) {
            return oci::start(store, key);
        }
    }
    if attach {
        let [key] = keys else {
            bail!("you cannot start and attach multiple containers at once");
        };
        let c = store.settled(store.resolve(key)?);
        if c.is_running() {
            bail!(
                "container {} is running already: minibox attach {} (a terminal's) or minibox \
                 logs -f {} follows it",
                c.name,
                c.name,
                c.name
            );
        }
        return start_exited(store, data_root, &c, false, interactive);
    }
    each(keys, |key| {
        let c = store.settled(store.resolve(key)?);
        if c.is_running() || c.restarting {
            return Ok(()); // as docker: starting a running container is fine
        }
        start_exited(store, data_root, &c, true, false).map(|_| ())
    })
}

/// An exited docker-style container, started again by a supervisor of its own (`detach`), or by
/// this process, whose status is then the container's.
fn start_exited(
    store: &Store,
    data_root: &Path,
    c: &ContainerState,
    detach: bool,
    interactive: bool,
) -> Result<i32> {
    if c.oci.is_some() {
        bail!(
            "container {} is an OCI bundle's: its engine makes it again (minibox create, start)",
            c.name
        );
    }
    let spec = spec_of(store, data_root, c)?;
    let layers = Layers::open(data_root)?;
    launcher::start_again(&spec, store, &layers, detach, interactive)
}

/// The container as its state directory describes it: the config.json its first run saved,
/// read as a run reads it, and what only its record keeps (name, `-v` mounts, stop policy).
fn spec_of(store: &Store, data_root: &Path, c: &ContainerState) -> Result<ContainerSpec> {
    let path = store.dir(&c.id).join(CONFIG_FILE);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "reading {}: the container cannot start again; remove it (minibox rm) and run a new \
             one",
            path.display()
        )
    })?;
    let oci: oci_spec::runtime::Spec = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a config.json", path.display()))?;
    let checked = crate::model::oci::read::container_from_spec(&oci, Path::new("/"), &c.id)?;
    // Their mounts are config.json's already; what they were asked as makes binds strict (a
    // link on a source is refused), as in the first run.
    let volumes = c
        .volumes
        .iter()
        .map(|v| match v.strip_prefix("tmpfs:") {
            Some(target) => Ok(VolumeMount {
                source: VolumeSource::Tmpfs {
                    size: None,
                    mode: None,
                },
                target: target.trim_end_matches(":ro").into(),
                read_only: target.ends_with(":ro"),
                idmap: false,
            }),
            None => volume::parse_volume(v, data_root),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ContainerSpec {
        name: Some(c.name.clone()),
        explain: false,
        volumes,
        stop: StopPolicy {
            signal: c.stop_signal.clone(),
            timeout: c.stop_timeout,
        },
        private_layer: true,
        ..checked
    })
}

/// `minibox restart [-t SECONDS] CONTAINER...`: `stop`, then `start`.
pub fn restart(store: &Store, data_root: &Path, time: Option<i64>, keys: &[String]) -> Result<i32> {
    each(keys, |key| {
        let c = store.settled(store.resolve(key)?);
        if c.oci.is_some() {
            bail!(
                "container {} is an OCI bundle's: its engine makes it again (minibox create, start)",
                c.name
            );
        }
        lifecycle::end(store, &c, Some(time))?;
        let c = store.settled(store.load(&c.id)?);
        start_exited(store, data_root, &c, true, false).map(|_| ())
    })
}

/// `minibox wait CONTAINER...`: blocks until each has stopped (a restart policy's restarts
/// do not count), then prints its exit code (-1 when nobody saw how it ended).
pub fn wait(store: &Store, keys: &[String]) -> Result<i32> {
    let mut failed = false;
    for key in keys {
        match wait_one(store, key) {
            Ok(code) => out!("{}", code.unwrap_or(-1)),
            Err(e) => {
                say!("minibox: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn wait_one(store: &Store, key: &str) -> Result<Option<i32>> {
    let id = store.resolve(key)?.id;
    loop {
        let Ok(c) = store.load(&id) else {
            bail!("container {key} was removed (run --rm, or rm) before its end was seen");
        };
        let c = store.settled(c);
        if !c.is_running() && !c.restarting {
            return Ok(c.exit_code);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `minibox rename CONTAINER NEW_NAME`
pub fn rename(store: &Store, key: &str, new: &str) -> Result<i32> {
    let c = store.resolve(key)?;
    store.rename(&c.id, new)?;
    // Its neighbours on a bridge network find it by the new name (the old one goes).
    crate::runtime::network::rename(store.root(), &c.id, new)?;
    Ok(0)
}

/// `minibox pause|unpause CONTAINER...` by name or id; runc's `pause ID`/`resume ID` for a
/// container its caller supervises (as before: nothing printed).
pub fn pause(store: &Store, keys: &[String], frozen: bool) -> Result<i32> {
    if let [key] = keys {
        if runc_owned(store, key) {
            return oci::freeze(store, key, frozen);
        }
    }
    each(keys, |key| {
        let c = store.settled(store.resolve(key)?);
        let paused = lifecycle::is_paused(&c);
        match (
            c.status == crate::store::state::Status::Running,
            paused,
            frozen,
        ) {
            (false, _, _) => bail!(StatusError {
                code: 1,
                message: format!("container {} is not running", c.name)
            }),
            (true, true, true) => bail!("container {} is already paused", c.name),
            (true, false, false) => bail!("container {} is not paused", c.name),
            _ => {}
        }
        let Some(group) = c.cgroup.as_ref().and_then(crate::kernel::cgroup::reopen) else {
            bail!(
                "cannot {} container {}: it has no cgroup (this host gave minibox none)",
                if frozen { "pause" } else { "unpause" },
                c.name
            );
        };
        group.set_frozen(frozen).with_context(|| {
            format!(
                "cannot {} container {}",
                if frozen { "pause" } else { "unpause" },
                c.name
            )
        })
    })
}
