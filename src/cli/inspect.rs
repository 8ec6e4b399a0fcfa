//! `minibox inspect`: what a container is made of, read from the kernel now — its namespaces,
//! cgroup, mounts, identity, capabilities and ports — as JSON, or as a table for people.

use std::collections::BTreeMap;
use std::fs;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::kernel::cgroup;
use crate::kernel::namespaces::CONTAINER_KINDS;
use crate::runtime::explain::namespace_link;
use crate::store::state::{ContainerState, Store};
use crate::text::printable_bytes;

/// `minibox inspect [--format json|table] CONTAINER`
pub fn inspect(store: &Store, key: &str, table: bool) -> Result<i32> {
    let c = store.settled(store.resolve(key)?);
    let facts = facts(&c)?;
    if table {
        print_table(&facts, "");
    } else {
        out!(
            "{}",
            serde_json::to_string_pretty(&facts).context("encoding")?
        );
    }
    Ok(0)
}

fn facts(c: &ContainerState) -> Result<Value> {
    let mut v = json!({
        "Id": c.id,
        "Name": c.name,
        "State": c.status,
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
        "StopSignal": c.image.as_ref().and_then(|i| i.stop_signal.clone()).unwrap_or_else(|| "SIGTERM".into()),
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
fn namespaces(pid: &str) -> Value {
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
        .map(|k| k.proc_name())
        .map(|ns| (ns.to_string(), json!(inode(ns))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

fn identity(status: &str) -> Value {
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

/// Each capability set as names, decoded from /proc/PID/status.
fn capabilities(status: &str) -> Value {
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

/// The container's mount table as it sees it (paths relative to its own root).
fn mounts(pid: i32) -> Result<Value> {
    // The container chose its mount sources and targets: bytes, maybe not UTF-8.
    let text = fs::read(format!("/proc/{pid}/mountinfo"))
        .map(|b| printable_bytes(&b))
        .context("reading the container's mounts")?;
    let list: Vec<Value> = text
        .lines()
        .filter_map(|line| {
            let (fields, after) = line.split_once(" - ")?;
            let f: Vec<&str> = fields.split(' ').collect();
            let a: Vec<&str> = after.split(' ').collect();
            Some(json!({ "Target": f.get(4)?, "Type": a.first()?, "Source": a.get(1)?, "Options": f.get(5)? }))
        })
        .collect();
    Ok(json!(list))
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
