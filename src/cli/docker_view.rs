//! The fields docker's own `inspect` has, in its shape, that `minibox inspect` adds to its
//! kernel facts: `.State` as an object, `.Created`, `.Config.Labels`, `.NetworkSettings`
//! (addresses, networks, ports) and `.RestartCount`, so that scripts written for docker
//! (`inspect -f '{{.State.Pid}}'`, `'{{.NetworkSettings.IPAddress}}'`) run unchanged.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::kernel::cgroup;
use crate::store::state::{ContainerState, Status};
use crate::text::rfc3339;

/// Go's zero time, as docker shows a time that never was.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// docker's status word: created, running, paused or exited.
pub fn status_word(c: &ContainerState) -> &'static str {
    match c.status {
        _ if c.restarting => "restarting",
        Status::Created => "created",
        Status::Running if is_paused(c) => "paused",
        Status::Running => "running",
        Status::Exited => "exited",
    }
}

/// True while the container's group is frozen (`pause`).
pub fn is_paused(c: &ContainerState) -> bool {
    c.status == Status::Running
        && c.cgroup
            .as_ref()
            .and_then(cgroup::reopen)
            .is_some_and(|g| g.is_frozen())
}

/// `.State`, docker's object.
pub fn state(c: &ContainerState) -> Value {
    let running = c.status == Status::Running && c.pid.is_some_and(|p| p.is_alive());
    let time = |ms: Option<u64>| ms.map_or(ZERO_TIME.to_string(), rfc3339);
    json!({
        "Status": status_word(c),
        "Running": running,
        "Paused": running && is_paused(c),
        "Restarting": c.restarting,
        "OOMKilled": c.oom_killed,
        "Dead": false,
        "Pid": if running { c.pid.map_or(0, |p| p.pid) } else { 0 },
        "ExitCode": c.exit_code.unwrap_or(0),
        "Error": "",
        "StartedAt": time(c.started_ms),
        "FinishedAt": time(c.finished_ms),
    })
}

/// `.NetworkSettings`: the container's network by name, with its address while it has one.
pub fn network_settings(c: &ContainerState, state_root: &Path) -> Value {
    let name = c.network.clone().unwrap_or_else(|| "private".into());
    let lease = crate::runtime::network::list(state_root)
        .unwrap_or_default()
        .into_iter()
        .find_map(|(net, leases)| {
            let l = leases.into_iter().find(|l| l.container == c.id)?;
            Some((net, l))
        })
        .filter(|_| c.is_running());
    let (ip, prefix, gateway, network_id, aliases) = match &lease {
        Some((net, l)) => (
            l.ip.to_string(),
            net.subnet.prefix,
            net.gateway.to_string(),
            net.id.clone(),
            json!(l.aliases),
        ),
        None => (String::new(), 0, String::new(), String::new(), json!(null)),
    };
    let mut ports = Map::new();
    if c.is_running() {
        for p in &c.ports {
            let key = format!("{}/{}", p.container_port, p.proto.name());
            let entry = ports.entry(key).or_insert_with(|| json!([]));
            if let Value::Array(list) = entry {
                list.push(
                    json!({"HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string()}),
                );
            }
        }
    }
    let mut networks = Map::new();
    networks.insert(
        name,
        json!({
            "NetworkID": network_id,
            "IPAddress": ip,
            "IPPrefixLen": prefix,
            "Gateway": gateway,
            "Aliases": aliases,
        }),
    );
    json!({
        "IPAddress": ip,
        "IPPrefixLen": prefix,
        "Gateway": gateway,
        "Ports": ports,
        "Networks": networks,
    })
}

/// Adds docker's fields to `inspect`'s facts (a `.State` object or a `.RestartCount` the
/// facts have already are theirs: the lifecycle's own, restarts included).
pub fn add_to(v: &mut Value, c: &ContainerState, state_root: &Path) {
    if !v["State"].is_object() {
        v["State"] = state(c);
    }
    if v["RestartCount"].is_null() {
        v["RestartCount"] = json!(0);
    }
    v["Created"] = json!(rfc3339(c.created_ms));
    v["Path"] = json!(c.command.first());
    v["Args"] = json!(c.command.iter().skip(1).collect::<Vec<_>>());
    v["Config"] = json!({
        "Hostname": c.hostname,
        "Image": c.image.as_ref().map_or_else(|| c.rootfs.display().to_string(), |i| i.reference.clone()),
        "Cmd": c.command,
        "Labels": c.labels,
        "StopSignal": v["StopSignal"].clone(),
    });
    v["NetworkSettings"] = network_settings(c, state_root);
    let mut bindings = Map::new();
    for p in &c.ports {
        let key = format!("{}/{}", p.container_port, p.proto.name());
        let entry = bindings.entry(key).or_insert_with(|| json!([]));
        if let Value::Array(list) = entry {
            list.push(
                json!({"HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string()}),
            );
        }
    }
    v["HostConfig"] = json!({
        "Memory": c.limits.memory.unwrap_or(0),
        // A quota of µs per 100 ms as docker's billionths of a CPU.
        "NanoCpus": c.limits.cpu_quota.map_or(0, |q| q * 10_000),
        "PidsLimit": c.limits.pids,
        "NetworkMode": c.network.clone().unwrap_or_else(|| "private".into()),
        "Binds": c.volumes,
        "PortBindings": bindings,
    });
}
