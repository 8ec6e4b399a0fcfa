//! What `minibox stats` reads of a group, beyond `Usage`: memory as docker counts it (the page
//! cache the kernel can drop at once, inactive files, left out), the limit the kernel holds,
//! the number of tasks, and bytes read and written on block devices. Both drivers fill it from
//! their own files; the parsing of those files is here.

use std::path::Path;

/// One reading of a group's counters; `None` where the host has no such file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes in use, less inactive file pages (docker's "MEM USAGE").
    pub memory: Option<u64>,
    /// The memory limit the kernel holds, `None` for none.
    pub memory_limit: Option<u64>,
    /// CPU time used, microseconds.
    pub cpu_usec: Option<u64>,
    /// Processes and threads in the group.
    pub pids: Option<u64>,
    /// Bytes read from and written to block devices.
    pub block_read: Option<u64>,
    pub block_write: Option<u64>,
}

/// Usage less the `inactive` file pages `memory.stat` reports (v1: `total_inactive_file`,
/// v2: `inactive_file`), as docker's stats shows it.
pub fn working_set(usage: Option<u64>, memory_stat: Option<&str>, key: &str) -> Option<u64> {
    let usage = usage?;
    let inactive = memory_stat
        .and_then(|s| super::flat_key(s, key))
        .unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

/// A v1 limit: `memory.limit_in_bytes` holds a huge page-rounded number for none.
pub fn v1_limit(text: Option<&str>) -> Option<u64> {
    let n: u64 = text?.trim().parse().ok()?;
    (n < i64::MAX as u64 / 2).then_some(n)
}

/// A v2 limit: a number, or `max` for none.
pub fn v2_limit(text: Option<&str>) -> Option<u64> {
    text?.trim().parse().ok()
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N ...` per device, summed.
pub fn v2_io(text: &str) -> (u64, u64) {
    let mut read = 0u64;
    let mut write = 0u64;
    for field in text.split_whitespace() {
        if let Some(n) = field
            .strip_prefix("rbytes=")
            .and_then(|n| n.parse::<u64>().ok())
        {
            read += n;
        }
        if let Some(n) = field
            .strip_prefix("wbytes=")
            .and_then(|n| n.parse::<u64>().ok())
        {
            write += n;
        }
    }
    (read, write)
}

/// v1 `blkio.throttle.io_service_bytes_recursive`: `MAJ:MIN Read N`, `MAJ:MIN Write N` per
/// device (and a `Total` line), summed.
pub fn v1_io(text: &str) -> (u64, u64) {
    let mut read = 0u64;
    let mut write = 0u64;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [_, op, n] = f.as_slice() {
            let n: u64 = n.parse().unwrap_or(0);
            match *op {
                "Read" => read += n,
                "Write" => write += n,
                _ => {}
            }
        }
    }
    (read, write)
}

/// Bytes the given processes made the block layer read and write (`/proc/PID/io`): where a
/// container has no blkio group of its own (v1 without `blockIO` settings), the sum over its
/// processes now (what ended processes did is not counted).
pub fn processes_io(pids: &[i32]) -> (u64, u64) {
    let mut read = 0u64;
    let mut write = 0u64;
    for pid in pids {
        let Ok(text) = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("io"))
        else {
            continue;
        };
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("read_bytes:") {
                read += n.trim().parse::<u64>().unwrap_or(0);
            }
            if let Some(n) = line.strip_prefix("write_bytes:") {
                write += n.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    (read, write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_leaves_out_inactive_files() {
        let stat = "cache 100\ntotal_inactive_file 4096\ninactive_file 1024\n";
        assert_eq!(
            working_set(Some(10_000), Some(stat), "total_inactive_file"),
            Some(5_904)
        );
        assert_eq!(
            working_set(Some(10_000), Some(stat), "inactive_file"),
            Some(8_976)
        );
        assert_eq!(
            working_set(Some(100), Some(stat), "total_inactive_file"),
            Some(0)
        );
        assert_eq!(working_set(None, Some(stat), "inactive_file"), None);
    }

    #[test]
    fn limits_of_none_are_none() {
        assert_eq!(v1_limit(Some("9223372036854771712\n")), None);
        assert_eq!(v1_limit(Some("67108864\n")), Some(64 << 20));
        assert_eq!(v2_limit(Some("max\n")), None);
        assert_eq!(v2_limit(Some("67108864\n")), Some(64 << 20));
    }

    #[test]
    fn block_io_sums_every_device() {
        let v2 = "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n\
                  253:1 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n";
        assert_eq!(v2_io(v2), (4097, 8194));
        let v1 = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 1\n8:0 Total 4608\n\
                  8:16 Read 1\n8:16 Write 2\nTotal 4611\n";
        assert_eq!(v1_io(v1), (4097, 514));
    }
}
