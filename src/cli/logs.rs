//! `minibox logs`: what a detached container wrote, docker's flags: `--tail N|all`,
//! `-t/--timestamps`, `--since`/`--until` (RFC 3339, Unix seconds, or a duration back from now
//! such as `10m`), `-f` to follow. Each line's time is when its first byte was written, from
//! the log's `.times` records (`runtime::log`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::runtime::log::{log_paths, read_times};
use crate::store::state::Store;
use crate::text::{parse_rfc3339, rfc3339_nanos};

/// `minibox logs`'s flags.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Keep following the output until the container exits.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (`all`: every line).
    #[arg(short = 'n', long, value_name = "N|all", default_value = "all")]
    pub tail: String,
    /// Start each line with the time it was written (RFC 3339, nanoseconds).
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines written since TIME: RFC 3339 (2024-05-01T12:00:00Z), Unix seconds, or a
    /// duration back from now (10m, 1h30m, 45s).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only lines written before TIME (same forms as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// One line of a log, with when it was written (`None`: a log from before times were kept).
struct Line {
    time: Option<u64>,
    bytes: Vec<u8>,
}

/// `minibox logs [-f] [--tail N] [-t] [--since T] [--until T] CONTAINER`
pub fn logs(store: &Store, args: &LogsArgs) -> Result<i32> {
    let now = crate::store::state::now_ms() as u128 * 1_000_000;
    let tail = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse::<usize>().map_err(|_| {
            anyhow::anyhow!("invalid --tail {n:?}: give a number of lines, or all")
        })?),
    };
    let since = args
        .since
        .as_deref()
        .map(|t| parse_time(t, now, "--since"))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|t| parse_time(t, now, "--until"))
        .transpose()?;
    let c = store.resolve(&args.container)?;
    let dir = store.dir(&c.id);
    let (current, previous) = log_paths(&dir);
    let mut file = match File::open(&current) {
        Ok(f) => f,
        Err(_) if !c.detached => bail!(
            "container {} ran in the foreground: its output went to the terminal, not to a log",
            c.name
        ),
        Err(_) => return Ok(0),
    };
    let mut lines = vec![];
    if let Ok(mut old) = File::open(&previous) {
        let mut bytes = vec![];
        old.read_to_end(&mut bytes).context("reading the log")?;
        lines.extend(split_lines(&bytes, 0, &read_times(&previous)));
    }
    let mut bytes = vec![];
    file.read_to_end(&mut bytes).context("reading the log")?;
    lines.extend(split_lines(&bytes, 0, &read_times(&current)));
    let in_window = |l: &Line| match (l.time, since, until) {
        (None, None, None) => true,
        (None, _, _) => false,
        (Some(t), s, u) => s.is_none_or(|s| t >= s) && u.is_none_or(|u| t < u),
    };
    lines.retain(in_window);
    if let Some(n) = tail {
        lines.drain(..lines.len().saturating_sub(n));
    }
    let mut out = std::io::stdout().lock();
    for l in &lines {
        print_line(&mut out, l, args.timestamps)?;
    }
    out.flush()?;
    if !args.follow || until.is_some_and(|u| u <= now as u64) {
        return Ok(0);
    }
    follow(
        store,
        &c.id,
        &current,
        file,
        bytes.len() as u64,
        args,
        until,
    )
}

fn print_line(out: &mut impl Write, l: &Line, timestamps: bool) -> Result<()> {
    if timestamps {
        let stamp = l.time.map_or("-".into(), rfc3339_nanos);
        write!(out, "{stamp} ")?;
    }
    out.write_all(&l.bytes)?;
    Ok(())
}

/// The lines of `bytes` (which start at `base` in their log), each dated by the last times
/// record at or before its first byte. The last line may lack its newline.
fn split_lines(bytes: &[u8], base: u64, times: &[(u64, u64)]) -> Vec<Line> {
    let mut lines = vec![];
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| start + i + 1);
        let offset = base + start as u64;
        let at = times.partition_point(|(o, _)| *o <= offset);
        lines.push(Line {
            time: at.checked_sub(1).map(|i| times[i].1),
            bytes: bytes[start..end].to_vec(),
        });
        start = end;
    }
    lines
}

/// Prints what the container writes from `pos` in `current` on, line by line, until it exits
/// (or `until` passes).
fn follow(
    store: &Store,
    id: &str,
    current: &Path,
    mut file: File,
    mut pos: u64,
    args: &LogsArgs,
    until: Option<u64>,
) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    // A line not finished yet waits for its end, to be dated by its first byte.
    let mut pending: Vec<u8> = vec![];
    let mut pending_at = pos;
    loop {
        let running = store
            .load(id)
            .map(|s| s.observed().is_running())
            .unwrap_or(false);
        std::thread::sleep(Duration::from_millis(50));
        let mut buf = Vec::new();
        file.seek(SeekFrom::Start(pos))?;
        file.read_to_end(&mut buf)?;
        pos += buf.len() as u64;
        // Rotated: the old file is finished above; go on with the new one.
        let rotated = std::fs::metadata(current)
            .is_ok_and(|m| m.ino() != file.metadata().map_or(0, |f| f.ino()));
        let times = if args.timestamps || until.is_some() {
            let log = if rotated {
                current.with_file_name("log.1")
            } else {
                current.to_path_buf()
            };
            read_times(&log)
        } else {
            vec![]
        };
        pending.extend_from_slice(&buf);
        let complete = pending
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let finish = rotated || (!running && buf.is_empty());
        let take = if finish { pending.len() } else { complete };
        let lines = split_lines(&pending[..take], pending_at, &times);
        for l in &lines {
            if until.is_some_and(|u| l.time.is_some_and(|t| t >= u)) {
                return Ok(0);
            }
            print_line(&mut out, l, args.timestamps)?;
        }
        out.flush()?;
        pending.drain(..take);
        pending_at += take as u64;
        if rotated {
            file = File::open(current).context("reopening the log")?;
            pos = 0;
            pending_at = 0;
        } else if finish {
            break;
        }
        let now = crate::store::state::now_ms() * 1_000_000;
        if until.is_some_and(|u| u <= now) {
            break;
        }
    }
    Ok(0)
}

/// docker's `--since`/`--until`: RFC 3339, Unix seconds (with a fraction), or a Go duration
/// back from `now` (`10m`, `1h30m`, `1.5h`, `300ms`). Nanoseconds since the epoch.
fn parse_time(text: &str, now: u128, flag: &str) -> Result<u64> {
    if let Some(ns) = parse_rfc3339(text) {
        return Ok(ns);
    }
    if let Ok(secs) = text.parse::<f64>() {
        if secs >= 0.0 {
            return Ok((secs * 1e9) as u64);
        }
    }
    if let Some(d) = parse_duration(text) {
        return Ok(now.saturating_sub(d) as u64);
    }
    bail!(
        "invalid {flag} {text:?}: give an RFC 3339 time (2024-05-01T12:00:00Z), Unix seconds, \
         or a duration back from now (10m, 1h30m, 45s)"
    )
}

/// A Go duration (`1h30m`, `10m`, `2.5s`, `300ms`) in nanoseconds.
fn parse_duration(text: &str) -> Option<u128> {
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total as u128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_dated_by_their_first_byte() {
        let bytes = b"one\ntwo\nthr";
        // Written as "one\ntw" at 10 and "o\nthr" at 20.
        let times = [(0, 10), (6, 20)];
        let lines = split_lines(bytes, 0, &times);
        let got: Vec<(Option<u64>, &[u8])> =
            lines.iter().map(|l| (l.time, l.bytes.as_slice())).collect();
        assert_eq!(
            got,
            [
                (Some(10), &b"one\n"[..]),
                (Some(10), &b"two\n"[..]),
                (Some(20), &b"thr"[..])
            ]
        );
        assert_eq!(split_lines(b"x\n", 0, &[])[0].time, None);
        assert_eq!(split_lines(b"x\n", 8, &[(0, 1), (8, 2)])[0].time, Some(2));
    }

    #[test]
    fn since_takes_dockers_forms() {
        let now: u128 = 1_700_000_000_000_000_000;
        assert_eq!(
            parse_time("10m", now, "--since").unwrap(),
            1_700_000_000_000_000_000 - 600_000_000_000
        );
        assert_eq!(
            parse_time("1h30m", now, "--since").unwrap(),
            1_700_000_000_000_000_000 - 5_400_000_000_000
        );
        assert_eq!(
            parse_time("1700000000", now, "--since").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", now, "--since").unwrap(),
            1_700_000_000_000_000_000
        );
        let e = parse_time("yesterday", now, "--since").unwrap_err();
        assert!(e.to_string().contains("invalid --since"), "{e}");
    }
}
