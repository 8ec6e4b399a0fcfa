//! Containers that live on: `ps`, `stop`, `kill`, `rm` (`logs` has a module of its own).
//!
//! Each reads the state the supervisors wrote, checks it against the kernel (a pid counts only
//! with its start time), and acts on the container's own processes and cgroup.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill as send, Signal};
use nix::unistd::Pid;
use serde_json::json;

use crate::kernel::cgroup::{self, Usage};
pub use crate::kernel::process::parse_signal;
use crate::store::layers;
use crate::store::state::{now_ms, ContainerState, Status, Store};
use crate::text::printable_cell;

/// Runs `act` on each container named, docker's way: errors are printed one per line and the
/// command fails (status 1) if any did.
fn for_each(
    store: &Store,
    keys: &[String],
    act: impl Fn(&ContainerState) -> Result<()>,
) -> Result<i32> {
    let mut failed = false;
    for key in keys {
        match store.resolve(key).and_then(|c| act(&store.settled(c))) {
            Ok(()) => out!("{key}"),
            Err(e) => {
                say!("minibox: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// Sends `sig` to the container's first process, if it is still that process.
fn signal(c: &ContainerState, sig: Signal) -> Result<()> {
    let Some(pid) = c.pid.filter(|p| p.is_alive() && c.is_running()) else {
        bail!("container {} is not running", c.name);
    };
    send(Pid::from_raw(pid.pid), sig)
        .with_context(|| format!("sending {sig} to container {}", c.name))
}

/// Waits until the container has ended: its supervisor recorded how, or the supervisor is
/// gone too (or so is the record).
fn wait_exited(store: &Store, id: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let ended = store.load(id).map_or(true, |c| {
            c.status == Status::Exited || !(c.supervisor_alive() || c.observed().is_running())
        });
        if ended {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `minibox kill [-s SIGNAL] ID...`. KILL, or the container's stop signal, also ends its
/// restart policy (as docker's) and thaws a paused container, so that it acts on it.
pub fn kill(store: &Store, sig: Signal, keys: &[String]) -> Result<i32> {
    for_each(store, keys, |c| {
        let ends = sig == Signal::SIGKILL || sig == stop_signal_of(c);
        if ends {
            stopped_on_purpose(store, c)?;
            if c.restarting && !c.is_running() {
                return Ok(()); // what it waits for will not come
            }
        }
        signal(c, sig)?;
        if ends {
            thaw(c);
        }
        Ok(())
    })
}

/// `minibox stop [-t SECONDS] ID...`: its stop signal, then SIGKILL after the grace period.
pub fn stop(store: &Store, time: Option<i64>, keys: &[String]) -> Result<i32> {
    for_each(store, keys, |c| end(store, c, Some(time)))
}

/// Ends a container for good: its restart policy first (no restart after what follows), then
/// its processes — `grace` given: its stop signal, and SIGKILL once the grace period is over;
/// `None`: SIGKILL at once. A paused container is thawed to act on them. A container waiting
/// to restart is only told not to; one whose restart raced the first step is ended too.
pub fn end(store: &Store, c: &ContainerState, grace: Option<Option<i64>>) -> Result<()> {
    stopped_on_purpose(store, c)?;
    for _ in 0..3 {
        let Ok(c) = store.load(&c.id).map(|c| store.settled(c)) else {
            return Ok(()); // removed meanwhile
        };
        if c.restarting {
            // Its supervisor looks at the record every 20 ms while it waits.
            let deadline = Instant::now() + Duration::from_secs(5);
            while store
                .load(&c.id)
                .is_ok_and(|c| c.observed().restarting && Instant::now() < deadline)
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        if !c.is_running() {
            return Ok(()); // as docker: stopping a stopped container is fine
        }
        if let Some(time) = grace {
            // The image's StopSignal, as docker's stop sends it; SIGTERM otherwise.
            signal(&c, stop_signal_of(&c))?;
            thaw(&c);
            if wait_exited(store, &c.id, c.stop_grace(time)) {
                continue;
            }
        }
        let _ = signal(&c, Signal::SIGKILL);
        thaw(&c);
        if !wait_exited(store, &c.id, Duration::from_secs(10)) {
            bail!("container {} did not stop, even after SIGKILL", c.name);
        }
    }
    Ok(())
}

/// Marks the container stopped on purpose: its supervisor will not start it again.
fn stopped_on_purpose(store: &Store, c: &ContainerState) -> Result<()> {
    if c.restart.is_none() || c.stopped_on_purpose {
        return Ok(());
    }
    store.update(&c.id, |s| s.stopped_on_purpose = true)?;
    Ok(())
}

/// True while the container's processes are frozen (`pause`).
pub use crate::cli::docker_view::is_paused;

/// Thaws a paused container: a frozen process acts on no signal (a v1 freezer holds even
/// SIGKILL back), so whatever is sent to end it must find it thawed.
pub fn thaw(c: &ContainerState) {
    if let Some(g) = c.cgroup.as_ref().and_then(cgroup::reopen) {
        if g.is_frozen() {
            let _ = g.set_frozen(false);
        }
    }
}

/// docker's word for the container's state: `created`, `running`, `paused`, `restarting`,
/// `exited`.
pub use crate::cli::docker_view::status_word as docker_state;

fn stop_signal_of(c: &ContainerState) -> Signal {
    c.stop_signal
        .as_deref()
        .or_else(|| c.image.as_ref().and_then(|i| i.stop_signal.as_deref()))
        .and_then(|s| parse_signal(s).ok())
        .unwrap_or(Signal::SIGTERM)
}

/// `minibox rm [-f] ID...`: forgets exited containers and removes all they left.
pub fn rm(store: &Store, force: bool, keys: &[String]) -> Result<i32> {
    for_each(store, keys, |c| {
        if c.is_running() || c.restarting {
            let what = if c.restarting {
                "restarting"
            } else {
                "running"
            };
            if !force {
                bail!(
                    "cannot remove container {}: it is {what}; stop it first (minibox stop) or \
                     use rm -f",
                    c.name
                );
            }
            end(store, c, None)?;
        }
        // Gone meanwhile (a `--rm` container's supervisor, or another rm, was quicker): what
        // was asked for is done.
        let Ok(_lock) = store.lock(&c.id) else {
            return Ok(());
        };
        let Ok(c) = store.load(&c.id).map(ContainerState::observed) else {
            return Ok(());
        };
        if c.is_running() {
            bail!("container {} is still running", c.name);
        }
        // A supervisor killed before its cleanup leaves the group behind: it goes now.
        if let Some(cg) = c.cgroup.as_ref().and_then(cgroup::reopen) {
            if cg.path().exists() {
                cg.destroy()?;
            }
        }
        // Its network address, veth and rules, if a killed supervisor left them.
        crate::runtime::network::release(store.root(), &c.id)?;
        // Its writable layer: all the container wrote (a container of an older minibox has none).
        if let Some(dir) = &c.layer {
            layers::remove(dir)?;
        }
        store.remove(&c.id)?;
        // Its host ids (--userns auto), free for the next container.
        crate::runtime::userns::free_ids(store, &c.id);
        Ok(())
    })
}

/// Run at the start of every minibox command: finds containers whose supervisor is gone
/// (killed, even by SIGKILL) while something of them may live on — a first process that
/// changed its credentials loses its parent-death signal and outlives minibox — and ends them:
/// their processes are killed, their cgroup removed, and they are recorded as exited (137
/// when a process of theirs was killed now, else unknown). Also removes the directories of
/// records a killed `create` never finished. Cheap: it reads the state directory and
/// /proc/PID/stat; a record whose lock someone holds is left to them.
pub fn sweep(store: &Store) {
    if let Err(e) = store.remove_incomplete() {
        say!("minibox: warning: cleaning the state directory: {e:#}");
    }
    let Ok(all) = store.list() else { return };
    for c in all {
        if c.status == Status::Exited || c.supervisor_alive() {
            continue;
        }
        // Its caller supervises it: a stopped one keeps its group until `delete`, as runc's.
        if c.caller_supervised() && c.pid.is_some() {
            continue;
        }
        if let Err(e) = end_orphan(store, &c.id) {
            say!("minibox: warning: container {}: {e:#}", c.name);
        }
    }
    // What ended containers still hold of their networks: addresses, veths, DNAT rules.
    if let Err(e) = crate::runtime::network::sweep(store) {
        say!("minibox: warning: cleaning up networks: {e:#}");
    }
}

fn end_orphan(store: &Store, id: &str) -> Result<()> {
    let Some(_lock) = store.try_lock(id)? else {
        return Ok(());
    };
    // Read again under the lock: the supervisor may have recorded the exit meanwhile.
    let c = store.load(id)?;
    if c.status == Status::Exited || c.supervisor_alive() {
        return Ok(());
    }
    // PID 1 of the container's PID namespace: its death takes every process in it.
    let mut killed = match c.pid {
        Some(pid) => pid.signal(Signal::SIGKILL)?,
        None => false,
    };
    // Whatever else joined the group (or a first process not recorded yet) goes with it.
    if let Some(cg) = c.cgroup.as_ref().and_then(cgroup::reopen) {
        if cg.path().exists() {
            killed |= cg.has_processes();
            cg.destroy()?;
        }
    }
    let mut ended = c;
    ended.status = Status::Exited;
    ended.exit_code = killed.then_some(128 + Signal::SIGKILL as i32);
    ended.finished_ms = Some(now_ms());
    store.write(&ended)
}

/// `minibox port ID`: the published ports, docker's way (`8080/tcp -> 0.0.0.0:8080`, `53/udp`).
pub fn port(store: &Store, key: &str) -> Result<i32> {
    let c = store.resolve(key)?;
    for p in &c.ports {
        out!(
            "{}/{} -> {}",
            p.container_port,
            p.proto.name(),
            std::net::SocketAddr::new(p.host_ip, p.host_port)
        );
    }
    Ok(0)
}

/// One `ps` row's facts.
struct Row {
    state: ContainerState,
    usage: Option<Usage>,
    cpu_percent: Option<f64>,
}

/// `minibox ps`: what runs (with `-a`, what ran), with limits and usage from the cgroup now;
/// `--filter`ed and `--format`ted as `select` says (`ps_select`).
pub fn ps(
    store: &Store,
    all: bool,
    quiet: bool,
    json: bool,
    select: &crate::cli::ps_select::Selection,
) -> Result<i32> {
    let containers: Vec<ContainerState> = store
        .list()?
        .into_iter()
        .map(|c| store.settled(c))
        .filter(|c| all || select.all() || c.is_running() || c.restarting)
        .filter(|c| select.matches(c))
        .collect();
    if quiet {
        for c in &containers {
            out!("{}", c.short_id());
        }
        return Ok(0);
    }
    if let Some(text) =
        select.render(&containers, &|c| status_text(c, now_ms()), &human_duration)?
    {
        if !text.is_empty() {
            out!("{text}");
        }
        return Ok(0);
    }
    let rows = sample(containers);
    let now = now_ms();
    if json {
        for r in &rows {
            out!("{}", row_json(r, now));
        }
        return Ok(0);
    }
    let header = [
        "CONTAINER ID",
        "NAME",
        "IMAGE",
        "STATUS",
        "PID",
        "CREATED",
        "COMMAND",
        "MEM USAGE / LIMIT",
        "CPU %",
        "PIDS / LIMIT",
        "CGROUP",
        "PORTS",
    ];
    // Escaped before measuring: what a cell shows is what takes room.
    let table: Vec<[String; 12]> = rows
        .iter()
        .map(|r| row_cells(r, now).map(|c| printable_cell(c.as_bytes())))
        .collect();
    let widths: Vec<usize> = (0..12)
        .map(|i| {
            table
                .iter()
                .map(|row| row[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("   ").trim_end().to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in &table {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(0)
}

/// Reads each running container's usage, and its CPU use over a short sample.
fn sample(containers: Vec<ContainerState>) -> Vec<Row> {
    const SAMPLE: Duration = Duration::from_millis(200);
    let groups: Vec<_> = containers
        .iter()
        .map(|c| {
            c.cgroup
                .as_ref()
                .filter(|_| c.status == Status::Running)
                .and_then(cgroup::reopen)
        })
        .collect();
    let first: Vec<Option<Usage>> = groups
        .iter()
        .map(|g| g.as_ref().map(|g| g.usage()))
        .collect();
    let started = Instant::now();
    if first
        .iter()
        .any(|u| u.is_some_and(|u| u.cpu_usec.is_some()))
    {
        std::thread::sleep(SAMPLE);
    }
    let wall_usec = started.elapsed().as_micros() as f64;
    containers
        .into_iter()
        .zip(groups.iter().zip(first))
        .map(|(state, (group, before))| {
            let after = group.as_ref().map(|g| g.usage());
            let cpu_percent = match (
                before.and_then(|u| u.cpu_usec),
                after.and_then(|u| u.cpu_usec),
            ) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 * 100.0 / wall_usec),
                _ => None,
            };
            Row {
                state,
                usage: after,
                cpu_percent,
            }
        })
        .collect()
}

/// Docker's "human" durations: `Less than a second`, `3 minutes`, `About an hour`, `2 days`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    let (m, h) = (s / 60, s / 3600);
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    }
}

pub(crate) fn status_text(c: &ContainerState, now: u64) -> String {
    let ago = |ms: Option<u64>| human_duration(now.saturating_sub(ms.unwrap_or(now)));
    match c.status {
        // docker's words: `Restarting (1) 2 seconds ago`.
        _ if c.restarting => format!(
            "Restarting ({}) {} ago",
            c.exit_code.map_or("unknown".to_string(), |c| c.to_string()),
            ago(c.finished_ms)
        ),
        Status::Created => "Created".into(),
        Status::Running if is_paused(c) => format!("Up {} (Paused)", ago(c.started_ms)),
        Status::Running => format!("Up {}", ago(c.started_ms)),
        Status::Exited => {
            let code = c.exit_code.map_or("unknown".to_string(), |c| c.to_string());
            let ago = c
                .finished_ms
                .map(|f| format!(" {} ago", human_duration(now.saturating_sub(f))));
            let oom = if c.oom_killed { " (OOM killed)" } else { "" };
            format!("Exited ({code}){}{oom}", ago.unwrap_or_default())
        }
    }
}

fn short_bytes(bytes: u64) -> String {
    cgroup::human_bytes(bytes).replace(' ', "")
}

/// The published ports, while they are: an exited container holds none.
fn ports_text(c: &ContainerState) -> String {
    if !c.is_running() {
        return String::new();
    }
    c.ports
        .iter()
        .map(|p| p.display())
        .collect::<Vec<_>>()
        .join(", ")
}

fn row_cells(r: &Row, now: u64) -> [String; 12] {
    let c = &r.state;
    let mut command = format!("\"{}\"", c.command.join(" "));
    if command.chars().count() > 22 {
        command = format!("{}…\"", command.chars().take(20).collect::<String>());
    }
    let mem = match r.usage.and_then(|u| u.memory_current) {
        Some(used) => format!(
            "{} / {}",
            short_bytes(used),
            c.limits.memory.map_or("-".into(), short_bytes)
        ),
        None => "-".into(),
    };
    [
        c.short_id().to_string(),
        c.name.clone(),
        c.image.as_ref().map_or("-".into(), |i| i.reference.clone()),
        status_text(c, now),
        c.pid
            .filter(|_| c.status == Status::Running)
            .map_or("-".into(), |p| p.pid.to_string()),
        format!("{} ago", human_duration(now.saturating_sub(c.created_ms))),
        command,
        mem,
        r.cpu_percent.map_or("-".into(), |p| format!("{p:.2}%")),
        match r.usage.and_then(|u| u.pids_current) {
            Some(n) => format!(
                "{n} / {}",
                c.limits.pids.map_or("-".into(), |l| l.to_string())
            ),
            None => "-".into(),
        },
        // Which driver accounts for it: "v2", "v1", or "-" for none.
        c.cgroup.as_ref().map_or("-".into(), |g| {
            g.driver.trim_start_matches("cgroup ").to_string()
        }),
        ports_text(c),
    ]
}

fn row_json(r: &Row, now: u64) -> serde_json::Value {
    let c = &r.state;
    json!({
        "ID": c.id,
        "Name": c.name,
        "Image": c.image.as_ref().map(|i| &i.reference),
        "State": docker_state(c),
        "RestartCount": c.restart_count,
        "Status": status_text(c, now),
        "Pid": c.pid.filter(|_| c.status == Status::Running).map(|p| p.pid),
        "CreatedMs": c.created_ms,
        "Command": c.command,
        "MemUsage": r.usage.and_then(|u| u.memory_current),
        "MemLimit": c.limits.memory,
        "CpuQuotaUsec": c.limits.cpu_quota,
        "PidsLimit": c.limits.pids,
        "Pids": r.usage.and_then(|u| u.pids_current),
        "CPUPerc": r.cpu_percent,
        "ExitCode": c.exit_code,
        "OOMKilled": c.oom_killed,
        "Cgroup": c.cgroup,
        "Ports": ports_text(c),
    })
}

/// The state store, once what a killed minibox left running or half-made is ended.
pub fn open_store(root: &std::path::Path) -> Result<Store> {
    let store = Store::open(root)?;
    sweep(&store);
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human_duration(300), "Less than a second");
        assert_eq!(human_duration(1_000), "1 second");
        assert_eq!(human_duration(45_000), "45 seconds");
        assert_eq!(human_duration(61_000), "About a minute");
        assert_eq!(human_duration(180_000), "3 minutes");
        assert_eq!(human_duration(3_700_000), "About an hour");
        assert_eq!(human_duration(5 * 3_600_000), "5 hours");
        assert_eq!(human_duration(3 * 86_400_000), "3 days");
    }
}
