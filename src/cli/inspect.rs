//! `minibox inspect`: what a container is made of, read from the kernel now — its namespaces,
//! cgroup, mounts, identity, capabilities and ports — as JSON, or as a table for people.

use std::collections::BTreeMap;
use std::fs;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::kernel::cgroup;
use crate::kernel::namespaces::{IdMap, CONTAINER_KINDS};
use crate::runtime::explain::namespace_link;
use crate::store::state::{ContainerState, Store};
use crate::text::printable_bytes;

/// `minibox inspect [-f json|table|TEMPLATE] CONTAINER...`: one container's JSON is an object,
/// several an array; a template (`{{.State.Pid}}`) prints a line per container.
pub fn inspect(store: &Store, keys: &[String], format: &str) -> Result<i32> {
    let template = match format {
        "json" | "table" => None,
        f => Some(crate::cli::template::Template::parse(f)?),
    };
    let mut all = vec![];
    for key in keys {
        let mut c = store.settled(store.resolve(key)?);
        let mut facts = match facts(&c) {
            Ok(f) => f,
            // Its process is ending while it is read (the kernel drops its mount namespace,
            // so /proc/PID/mountinfo fails, a moment before the process is a zombie): once it
            // has ended, it is an exited container, read as one.
            Err(e) => {
                let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
                loop {
                    c = store.settled(store.load(&c.id)?);
                    let alive = c.is_running() && c.pid.is_some_and(|p| p.is_alive());
                    if !alive {
                        break facts(&c)?;
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        };
        crate::cli::docker_view::add_to(&mut facts, &c, store.root());
        all.push(facts);
    }
    match (&template, format) {
        (Some(t), _) => {
            for facts in &all {
                out!("{}", t.render(facts)?);
            }
        }
        (None, "table") => {
            for facts in &all {
                print_table(facts, "");
            }
        }
        _ => {
            let v = match all.len() {
                1 => all.remove(0),
                _ => Value::Array(all),
            };
            out!("{}", serde_json::to_string_pretty(&v).context("encoding")?);
        }
    }
    Ok(0)
}

pub(crate) fn facts(c: &ContainerState) -> Result<Value> {
    let mut v = json!({
        "Id": c.id,
        "Name": c.name,
        "State": crate::cli::docker_view::state(c),
        "RestartCount": c.restart_count,
        "RestartPolicy": { "Name": c.restart.word(), "MaximumRetryCount": c.restart.max_retries.unwrap_or(0) },
        "ExitCode": c.exit_code,
        "OOMKilled": c.oom_killed,
        "Rootfs": c.rootfs,
        "Command": c.command,
        "Hostname": c.hostname,
        "Limits": {
            "MemoryBytes": c.limits.memory,
            "CpuQuotaUsecPer100ms": c.limits.cpu_quota,
            "Pids": c.limits.pids,
        },
        "Ports": c.ports.iter().map(|p| p.display()).collect::<Vec<_>>(),
        "Seccomp": { "Profile": c.seccomp },
        "Devices": c.devices,
        "Image": c.image.as_ref().map(|i| &i.reference),
        "ImageId": c.image.as_ref().map(|i| &i.id),
        "ExposedPorts": c.image.as_ref().map(|i| &i.exposed_ports),
        "StopSignal": c.stop_signal.clone().or_else(|| c.image.as_ref().and_then(|i| i.stop_signal.clone())).unwrap_or_else(|| "SIGTERM".into()),
        "StopTimeout": c.stop_timeout,
        "Volumes": c.volumes,
    });
    let Some(pid) = c
        .pid
        .filter(|p| c.is_running() && p.is_alive())
        .map(|p| p.pid)
    else {
        return Ok(v);
    };
    v["Pid"] = json!(pid);
    v["Namespaces"] = namespaces(&pid.to_string());
    v["HostNamespaces"] = namespaces("self");
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading the container's status")?;
    v["Identity"] = identity(&status);
    // Beside the host's ids: the container's, and the maps between them.
    if let Ok((uids, gids)) = crate::kernel::namespaces::read_id_maps(pid) {
        add_id_maps(&mut v["Identity"], &uids, &gids);
    }
    v["Capabilities"] = capabilities(&status);
    v["Seccomp"] = seccomp(c, &status);
    v["Mounts"] = mounts(pid)?;
    if let Some(cg) = c.cgroup.as_ref().and_then(cgroup::reopen) {
        let usage = cg.usage();
        let settings: BTreeMap<String, String> = cg.settings().into_iter().collect();
        v["Cgroup"] = json!({
            "Driver": cg.driver(),
            "Path": cg.path(),
            "Settings": settings,
            "MemoryCurrent": usage.memory_current,
            "MemoryPeak": usage.memory_peak,
            "CpuUsec": usage.cpu_usec,
            "OomKills": usage.oom_kills,
        });
    }
    Ok(v)
}

/// `{"mnt": 4026532281, ...}`: the inode numbers that name a process's namespaces.
pub(crate) fn namespaces(pid: &str) -> Value {
    let inode = |ns: &str| {
        let link = namespace_link(pid, ns)?;
        link.split_once('[')?
            .1
            .trim_end_matches(']')
            .parse::<u64>()
            .ok()
    };
    CONTAINER_KINDS
        .iter()
        .chain([crate::kernel::namespaces::Kind::User].iter())
        .map(|k| k.proc_name())
        .map(|ns| (ns.to_string(), json!(inode(ns))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

pub(crate) fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

pub(crate) fn identity(status: &str) -> Value {
    let ids = |key: &str| -> Vec<u64> {
        status_field(status, key)
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect()
    };
    json!({
        "Uid": ids("Uid").first(),
        "Gid": ids("Gid").first(),
        "Groups": ids("Groups"),
    })
}

/// `UserNamespace` (own or host), the container's own uid and gid, and `UidMap`/`GidMap`
/// (container id → host id, as podman's inspect names them).
fn add_id_maps(identity: &mut Value, uids: &[IdMap], gids: &[IdMap]) {
    let whole = |m: &[IdMap]| {
        m.len() == 1 && m[0].inside == 0 && m[0].outside == 0 && m[0].count == u32::MAX
    };
    let inside = |maps: &[IdMap], host: Option<u64>| {
        let host = host? as u32;
        maps.iter()
            .find(|m| host >= m.outside && host - m.outside < m.count)
            .map(|m| m.inside + (host - m.outside))
    };
    let lines = |maps: &[IdMap]| -> Vec<Value> {
        maps.iter()
            .map(|m| json!({"ContainerID": m.inside, "HostID": m.outside, "Size": m.count}))
            .collect()
    };
    let own = !(whole(uids) && whole(gids));
    let (uid, gid) = (identity["Uid"].as_u64(), identity["Gid"].as_u64());
    identity["UserNamespace"] = json!(if own { "own" } else { "host" });
    identity["ContainerUid"] = json!(inside(uids, uid));
    identity["ContainerGid"] = json!(inside(gids, gid));
    identity["UidMap"] = json!(lines(uids));
    identity["GidMap"] = json!(lines(gids));
}

/// Each capability set as names, decoded from /proc/PID/status.
pub(crate) fn capabilities(status: &str) -> Value {
    let names = |key: &str| -> Vec<String> {
        let mask = status_field(status, key)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        let mut set: Vec<_> = caps::all()
            .into_iter()
            .filter(|c| mask & (1u64 << c.index()) != 0)
            .collect();
        set.sort_by_key(|c| c.index());
        set.iter().map(|c| c.to_string()).collect()
    };
    json!({
        "Effective": names("CapEff"),
        "Permitted": names("CapPrm"),
        "Bounding": names("CapBnd"),
        "Inheritable": names("CapInh"),
        "Ambient": names("CapAmb"),
        "NoNewPrivs": status_field(status, "NoNewPrivs") == Some("1"),
    })
}

/// The filter in force: the profile it was started with, and what the kernel holds now
/// (`Mode` 2 is a filter, 0 none; `Filters`: how many are stacked on the process).
fn seccomp(c: &ContainerState, status: &str) -> Value {
    let number = |key: &str| status_field(status, key).and_then(|v| v.parse::<u64>().ok());
    json!({
        "Profile": c.seccomp,
        "Mode": number("Seccomp"),
        "Filters": number("Seccomp_filters"),
    })
}

/// The container's mount table as it sees it (paths relative to its own root), in tree order:
/// each mount after the one it sits on (the kernel lists them by mount id, and the mounts
/// minibox made from the host's objects before the clone have the older ids).
fn mounts(pid: i32) -> Result<Value> {
    // The container chose its mount sources and targets: bytes, maybe not UTF-8.
    let text = fs::read(format!("/proc/{pid}/mountinfo"))
        .map(|b| printable_bytes(&b))
        .context("reading the container's mounts")?;
    let list: Vec<(&str, &str, Value)> = text
        .lines()
        .filter_map(|line| {
            let (fields, after) = line.split_once(" - ")?;
            let f: Vec<&str> = fields.split(' ').collect();
            let a: Vec<&str> = after.split(' ').collect();
            let entry = json!({ "Target": f.get(4)?, "Type": a.first()?, "Source": a.get(1)?, "Options": f.get(5)? });
            Some((*f.first()?, *f.get(1)?, entry))
        })
        .collect();
    Ok(json!(in_tree_order(list)))
}

/// `(id, parent id, entry)` rows, each parent first, then its children in the given order.
fn in_tree_order(rows: Vec<(&str, &str, Value)>) -> Vec<Value> {
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.0).collect();
    let mut stack: Vec<&str> = rows
        .iter()
        .rev()
        .filter(|r| !ids.contains(r.1) || r.0 == r.1)
        .map(|r| r.0)
        .collect();
    let mut done = std::collections::HashSet::new();
    let mut order = vec![];
    while let Some(id) = stack.pop() {
        if !done.insert(id) {
            continue;
        }
        order.push(id);
        stack.extend(
            rows.iter()
                .rev()
                .filter(|r| r.1 == id && r.0 != id)
                .map(|r| r.0),
        );
    }
    let mut by_id: std::collections::HashMap<&str, Value> =
        rows.into_iter().map(|(id, _, v)| (id, v)).collect();
    order
        .into_iter()
        .filter_map(|id| by_id.remove(id))
        .collect()
}

/// A nested JSON value as indented `Key  value` lines.
fn print_table(v: &Value, indent: &str) {
    let Value::Object(map) = v else { return };
    for (key, value) in map {
        match value {
            Value::Object(_) => {
                out!("{indent}{key}:");
                print_table(value, &format!("{indent}  "));
            }
            Value::Array(items) if items.iter().any(Value::is_object) => {
                out!("{indent}{key}:");
                for item in items {
                    let Value::Object(m) = item else { continue };
                    let cells: Vec<String> = m.values().map(plain).collect();
                    out!("{indent}  {}", cells.join("  "));
                }
            }
            _ => out!("{indent}{key:<16} {}", plain(value)),
        }
    }
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tree_order_tests {
    use super::*;

    #[test]
    fn parents_come_before_their_mounts() {
        let rows = vec![
            ("30", "40", json!("/etc/hosts")),
            ("31", "40", json!("/v")),
            ("40", "1", json!("/")),
            ("41", "40", json!("/proc")),
            ("42", "41", json!("/proc/sys")),
            ("43", "40", json!("/dev")),
        ];
        let order: Vec<Value> = in_tree_order(rows);
        assert_eq!(
            order,
            ["/", "/etc/hosts", "/v", "/proc", "/proc/sys", "/dev"].map(|s| json!(s))
        );
    }
}
