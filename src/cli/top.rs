//! `minibox top CONTAINER`: the container's processes, as docker top shows them, with both of
//! their pids: the host's and the container's own (`NSpid`).
//!
//! A process belongs to the container when it lives in the container's PID namespace (no
//! process can leave one), read from the host's `/proc`.

use std::fs;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::store::state::Store;
use crate::text::printable_cell;

/// One process, as read from `/proc/PID/status` and `cmdline`.
pub(crate) struct Row {
    pub uid: String,
    pub pid: i32,
    pub ppid: String,
    pub container_pid: String,
    pub state: String,
    /// Escaped for a table cell (`printable_cell`).
    pub cmd: String,
}

/// `minibox top CONTAINER`
pub fn top(store: &Store, key: &str) -> Result<i32> {
    let c = store.resolve(key)?.observed();
    let Some(first) = c.pid.filter(|p| c.is_running() && p.is_alive()) else {
        bail!("container {} is not running", c.name);
    };
    let rows = processes(first.pid)
        .with_context(|| format!("reading the PID namespace of container {}", c.name))?;
    out!(
        "{:<8} {:>8} {:>8} {:>8} {:<4} CMD",
        "UID",
        "PID",
        "PPID",
        "CPID",
        "STAT"
    );
    for r in rows {
        out!(
            "{:<8} {:>8} {:>8} {:>8} {:<4} {}",
            r.uid,
            r.pid,
            r.ppid,
            r.container_pid,
            r.state,
            r.cmd
        );
    }
    Ok(0)
}

/// Every process in the PID namespace of `first` (the container's first process), by host pid.
pub(crate) fn processes(first: i32) -> Result<Vec<Row>> {
    let ns = pid_namespace(first)?;
    let mut rows: Vec<Row> = fs::read_dir("/proc")
        .context("reading /proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        // A process that ended meanwhile is simply not shown.
        .filter(|pid| pid_namespace(*pid).is_ok_and(|n| n == ns))
        .filter_map(read_row)
        .collect();
    rows.sort_by_key(|r| r.pid);
    Ok(rows)
}

fn pid_namespace(pid: i32) -> std::io::Result<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/pid"))
}

fn read_row(pid: i32) -> Option<Row> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Vec<String> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    };
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    // A zombie or a kernel-made process has no command line: its name, bracketed, as ps shows.
    let cmd = if cmdline.is_empty() {
        format!("[{}]", field("Name:").join(" ")).into_bytes()
    } else {
        let words: Vec<&[u8]> = cmdline
            .strip_suffix(b"\0")
            .unwrap_or(&cmdline)
            .split(|b| *b == 0)
            .collect();
        words.join(&b' ')
    };
    Some(Row {
        // The effective uid, as the kernel holds it (the container's names are its own).
        uid: field("Uid:").get(1).cloned().unwrap_or_default(),
        pid,
        ppid: field("PPid:").first().cloned().unwrap_or_default(),
        // The last NSpid is the pid in the innermost namespace: the container's.
        container_pid: field("NSpid:").last().cloned().unwrap_or_default(),
        state: field("State:").first().cloned().unwrap_or_default(),
        cmd: printable_cell(&cmd),
    })
}
