//! `minibox stats`: each container's CPU, memory, network and block I/O and task count, read
//! from its cgroup (v1 or v2) and its network namespace, docker's columns and units. On a
//! terminal the table is redrawn in place every second (with the memory as a bar) until
//! Ctrl-C; `--no-stream` prints one reading; `--format json` one object per container a line.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};

use crate::cli::template::{self, Template};
use crate::kernel::cgroup::{self, stats::Stats};
use crate::store::state::{ContainerState, Status, Store};
use crate::text::printable_cell;

/// How often the numbers are read; CPU % is the use between two readings (docker's second).
const INTERVAL: Duration = Duration::from_secs(1);

/// `minibox stats`'s flags.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Show every container (default: the running ones).
    #[arg(short, long)]
    pub all: bool,
    /// Print one reading and exit, instead of refreshing.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Show full container ids.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// `table` (default), `json` (one object per container a line), a Go template
    /// (`{{.Name}} {{.MemUsage}}`), or `table TEMPLATE` (with a header).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// One reading of one container.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    cgroup: Option<Stats>,
    net: Option<(u64, u64)>,
}

enum Output {
    Table,
    Json,
    Template { header: Option<String>, t: Template },
}

/// `minibox stats [-a] [--no-stream] [--format F] [CONTAINER...]`
pub fn stats(store: &Store, args: &StatsArgs) -> Result<i32> {
    let output = match args.format.as_deref() {
        None | Some("table") => Output::Table,
        Some("json") | Some("{{json .}}") => Output::Json,
        Some(f) => {
            let f = template::unescape(f);
            match f.strip_prefix("table") {
                Some(rest) => Output::Template {
                    header: Some(rest.trim_start().to_string()),
                    t: Template::parse(rest.trim_start())?,
                },
                None => Output::Template {
                    header: None,
                    t: Template::parse(&f)?,
                },
            }
        }
    };
    // Named containers must exist (docker's error); the list is then fixed.
    let named: Vec<String> = args
        .containers
        .iter()
        .map(|k| store.resolve(k).map(|c| c.id))
        .collect::<Result<_>>()?;
    let host_memory = host_memory();
    let tty = nix::unistd::isatty(std::io::stdout()).unwrap_or(false);
    let live = !args.no_stream;
    let mut previous: HashMap<String, Reading> = HashMap::new();
    let mut first = true;
    let mut cleared = false;
    loop {
        let containers = chosen(store, &named, args.all)?;
        // A first reading to measure CPU use against, then one interval.
        let fresh: Vec<&ContainerState> = containers
            .iter()
            .filter(|c| !previous.contains_key(&c.id))
            .collect();
        if !fresh.is_empty() {
            for c in fresh {
                previous.insert(c.id.clone(), read(c));
            }
            std::thread::sleep(INTERVAL);
        } else if !first {
            std::thread::sleep(INTERVAL);
        }
        first = false;
        let rows: Vec<Value> = containers
            .iter()
            .map(|c| {
                let now = read(c);
                let row = row(c, previous.get(&c.id), &now, host_memory, args.no_trunc);
                previous.insert(c.id.clone(), now);
                row
            })
            .collect();
        previous.retain(|id, _| containers.iter().any(|c| &c.id == id));
        let text = render(&rows, &output, live && tty)?;
        let mut out = std::io::stdout().lock();
        if live && tty {
            // Home, each line cleared to its end, the rest of the screen cleared: redrawn in
            // place without flicker.
            // The screen is cleared once, before the first frame (docker clears it each time).
            let mut frame = String::from(if cleared { "\x1b[H" } else { "\x1b[2J\x1b[H" });
            cleared = true;
            for line in text.lines() {
                frame.push_str(line);
                frame.push_str("\x1b[K\n");
            }
            frame.push_str("\x1b[J");
            out.write_all(frame.as_bytes())?;
        } else {
            out.write_all(text.as_bytes())?;
        }
        if out.flush().is_err() || !live {
            return Ok(0);
        }
    }
}

/// The containers to show now: the named ones (while they exist), else the running ones (all
/// with `-a`).
fn chosen(store: &Store, named: &[String], all: bool) -> Result<Vec<ContainerState>> {
    let list = store.list()?;
    Ok(if named.is_empty() {
        list.into_iter()
            .map(ContainerState::observed)
            .filter(|c| all || c.is_running())
            .collect()
    } else {
        named
            .iter()
            .filter_map(|id| list.iter().find(|c| &c.id == id).cloned())
            .map(ContainerState::observed)
            .collect()
    })
}

fn read(c: &ContainerState) -> Reading {
    let running = c.status == Status::Running;
    let cgroup = c
        .cgroup
        .as_ref()
        .filter(|_| running)
        .and_then(cgroup::reopen)
        .map(|g| g.stats());
    let net = c
        .pid
        .filter(|p| running && p.is_alive())
        .and_then(|p| match c.network.as_deref() {
            // The host's own interfaces are not the container's traffic (docker shows 0B).
            Some("host") => Some((0, 0)),
            _ => net_io(p.pid),
        });
    Reading {
        at: Instant::now(),
        cgroup,
        net,
    }
}

/// Bytes received and sent on every interface but `lo` of the process's network namespace.
fn net_io(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    Some(parse_net_dev(&text))
}

fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut rx = 0u64;
    let mut tx = 0u64;
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = counters
            .split_whitespace()
            .map(|n| n.parse().unwrap_or(0))
            .collect();
        rx += f.first().copied().unwrap_or(0);
        tx += f.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

/// The host's memory (docker's limit for a container without one).
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                let kb = l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
                kb.trim().parse::<u64>().ok()
            })
        })
        .map_or(0, |kb| kb * 1024)
}

/// One container's figures, with docker's strings and the raw numbers (for scripts).
fn row(
    c: &ContainerState,
    before: Option<&Reading>,
    now: &Reading,
    host_memory: u64,
    no_trunc: bool,
) -> Value {
    let s = now.cgroup.unwrap_or_default();
    let cpu = match (before.and_then(|b| b.cgroup?.cpu_usec), s.cpu_usec, before) {
        (Some(a), Some(b), Some(prev)) => {
            let wall = now.at.duration_since(prev.at).as_micros().max(1) as f64;
            b.saturating_sub(a) as f64 * 100.0 / wall
        }
        _ => 0.0,
    };
    let memory = s.memory.unwrap_or(0);
    let limit = match s.memory_limit {
        Some(l) if l < host_memory || host_memory == 0 => l,
        _ if now.cgroup.is_some() => host_memory,
        _ => 0,
    };
    let mem_percent = if limit > 0 {
        memory as f64 * 100.0 / limit as f64
    } else {
        0.0
    };
    let (rx, tx) = now.net.unwrap_or((0, 0));
    let (read, write) = (s.block_read.unwrap_or(0), s.block_write.unwrap_or(0));
    let id = if no_trunc {
        c.id.as_str()
    } else {
        c.short_id()
    };
    json!({
        "BlockIO": format!("{} / {}", decimal_size(read), decimal_size(write)),
        "CPUPerc": format!("{cpu:.2}%"),
        "Container": id,
        "ID": id,
        "MemPerc": format!("{mem_percent:.2}%"),
        "MemUsage": format!("{} / {}", binary_size(memory), binary_size(limit)),
        "Name": c.name,
        "NetIO": format!("{} / {}", decimal_size(rx), decimal_size(tx)),
        "PIDs": s.pids.unwrap_or(0).to_string(),
        "CPUPercent": (cpu * 100.0).round() / 100.0,
        "MemUsageBytes": memory,
        "MemLimitBytes": limit,
        "MemPercent": (mem_percent * 100.0).round() / 100.0,
        "NetInputBytes": rx,
        "NetOutputBytes": tx,
        "BlockReadBytes": read,
        "BlockWriteBytes": write,
        "PidsCurrent": s.pids.unwrap_or(0),
        "CpuUsec": s.cpu_usec,
        "Cgroup": c.cgroup.as_ref().map(|g| g.driver.clone()),
    })
}

const COLUMNS: [(&str, &str); 8] = [
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

fn render(rows: &[Value], output: &Output, bars: bool) -> Result<String> {
    let cell = |v: &Value| printable_cell(v.as_str().unwrap_or_default().as_bytes());
    Ok(match output {
        Output::Json => rows.iter().map(|r| format!("{r}\n")).collect(),
        Output::Template { header, t } => {
            let mut lines = vec![];
            if let Some(h) = header {
                let names: serde_json::Map<String, Value> = COLUMNS
                    .iter()
                    .map(|(k, h)| (k.to_string(), json!(h)))
                    .chain([("Container".to_string(), json!("CONTAINER"))])
                    .collect();
                lines.push(Template::parse(h)?.render(&Value::Object(names))?);
            }
            for r in rows {
                lines.push(printable_cell_keep_tabs(&t.render(r)?));
            }
            let text = lines.join("\n");
            let mut table = if header.is_some() {
                tabulate(&text)
            } else {
                text
            };
            if !table.is_empty() {
                table.push('\n');
            }
            table
        }
        Output::Table => {
            let mut lines: Vec<Vec<String>> = vec![];
            let mut head: Vec<String> = COLUMNS.iter().map(|(_, h)| h.to_string()).collect();
            if bars {
                head.insert(5, "MEMORY".into());
            }
            lines.push(head);
            for r in rows {
                let mut cells: Vec<String> = COLUMNS.iter().map(|(k, _)| cell(&r[*k])).collect();
                if bars {
                    cells.insert(5, bar(r["MemPercent"].as_f64().unwrap_or(0.0)));
                }
                lines.push(cells);
            }
            align(&lines)
        }
    })
}

/// `[#####.....]`: a tenth of the limit a mark.
fn bar(percent: f64) -> String {
    let marks = ((percent / 10.0).round() as usize).min(10);
    format!("[{}{}]", "#".repeat(marks), ".".repeat(10 - marks))
}

/// A template's output, control characters escaped but its tabs and newlines kept.
fn printable_cell_keep_tabs(text: &str) -> String {
    text.split('\t')
        .map(|cell| {
            cell.split('\n')
                .map(|l| printable_cell(l.as_bytes()))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect::<Vec<_>>()
        .join("\t")
}

/// Rows of cells, each column as wide as its widest cell, three spaces apart (docker's).
pub fn align(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// Tab-separated lines as aligned columns (Go's tabwriter, as docker's `table` formats use).
pub fn tabulate(text: &str) -> String {
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect();
    align(&rows).trim_end_matches('\n').to_string()
}

/// Go's `%.Ng`: `digits` significant digits, no trailing zeros.
fn significant(value: f64, digits: usize) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn scaled(bytes: u64, base: f64, units: &[&str], digits: usize) -> String {
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= base && unit < units.len() - 1 {
        value /= base;
        unit += 1;
    }
    format!("{}{}", significant(value, digits), units[unit])
}

/// docker's `units.BytesSize`: `1.504MiB`.
pub fn binary_size(bytes: u64) -> String {
    scaled(bytes, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 4)
}

/// docker's `units.HumanSizeWithPrecision(n, 3)`: `1.23kB`, `648B`.
pub fn decimal_size(bytes: u64) -> String {
    scaled(bytes, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"], 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1536), "1.5KiB");
        assert_eq!(binary_size(1_577_058), "1.504MiB");
        assert_eq!(binary_size(64 << 20), "64MiB");
        assert_eq!(decimal_size(648), "648B");
        assert_eq!(decimal_size(1_234), "1.23kB");
        assert_eq!(decimal_size(12_000_000), "12MB");
    }

    #[test]
    fn net_dev_sums_all_but_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:  100 1 0 0 0 0 0 0  100 1 0 0 0 0 0 0\n  \
eth0: 2000 10 0 0 0 0 0 0 3000 12 0 0 0 0 0 0\n  \
eth1: 5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(text), (2005, 3007));
    }

    #[test]
    fn table_formats_align_their_tabs() {
        assert_eq!(
            tabulate("NAME\tMEM\nlong-name\t1B"),
            "NAME        MEM\nlong-name   1B"
        );
        assert_eq!(bar(0.0), "[..........]");
        assert_eq!(bar(55.0), "[######....]");
        assert_eq!(bar(250.0), "[##########]");
    }
}
