//! A detached container's log: what it writes (and what its supervisor says) lands in `log` in
//! its state directory, bounded in size and rotated once into `log.1`. Beside each, `.times`
//! says when each piece was written (`logs -t`, `--since`): a 16-byte record per write, the
//! piece's offset in the log and the time in nanoseconds since the epoch, both little-endian.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A log file stops growing past this; it then becomes `log.1` (replacing the previous one) and
/// a new `log` starts: at most twice this on disk per container.
pub const LOG_MAX_BYTES: u64 = 8 << 20;

/// The current log of the container whose state directory is `dir`, and the previous one.
pub fn log_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("log"), dir.join("log.1"))
}

/// The times file of a log.
pub fn times_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".times");
    PathBuf::from(name)
}

/// A times file's records: (offset in the log, nanoseconds since the epoch), in write order.
pub fn read_times(log: &Path) -> Vec<(u64, u64)> {
    let bytes = fs::read(times_path(log)).unwrap_or_default();
    bytes
        .chunks_exact(16)
        .map(|r| {
            let (offset, time) = r.split_at(8);
            (
                u64::from_le_bytes(offset.try_into().unwrap_or_default()),
                u64::from_le_bytes(time.try_into().unwrap_or_default()),
            )
        })
        .collect()
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A size-bounded, rotating log.
pub struct LogFile {
    dir: PathBuf,
    file: File,
    /// When each write was made (`log.times`); `None` if it could not be opened.
    times: Option<File>,
    /// Its size, and the time of its last record.
    times_size: u64,
    last_time: u64,
    size: u64,
    is_our_stdio: bool,
    /// Bytes of output that could not be written (a full disk).
    pub lost: u64,
}

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log {}", path.display()))
}

impl LogFile {
    pub fn open(dir: &Path) -> Result<LogFile> {
        let (current, _) = log_paths(dir);
        let file = open_log(&current)?;
        let size = file.metadata().map_or(0, |m| m.len());
        Ok(LogFile {
            dir: dir.to_path_buf(),
            file,
            times: open_log(&times_path(&current)).ok(),
            times_size: fs::metadata(times_path(&current)).map_or(0, |m| m.len()),
            last_time: 0,
            size,
            is_our_stdio: false,
            lost: 0,
        })
    }

    /// Makes this log our own stdout and stderr too (the detached supervisor's messages, an
    /// OOM kill say, belong with the container's output), now and after each rotation.
    pub fn become_stdio(&mut self) -> Result<()> {
        nix::unistd::dup2_stdout(&self.file).context("pointing stdout at the log")?;
        nix::unistd::dup2_stderr(&self.file).context("pointing stderr at the log")?;
        self.is_our_stdio = true;
        Ok(())
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.size + bytes.len() as u64 > LOG_MAX_BYTES && self.size > 0 {
            self.rotate()?;
        }
        let now = now_ns();
        // Past the log's own bound (tiny writes), a record a second at most: bounded, to 1 s.
        let due = self.times_size < LOG_MAX_BYTES || now >= self.last_time + 1_000_000_000;
        if let (Some(times), true) = (&mut self.times, due) {
            let mut record = [0u8; 16];
            record[..8].copy_from_slice(&self.size.to_le_bytes());
            record[8..].copy_from_slice(&now.to_le_bytes());
            // The times only date the lines: a full disk loses them, never the output.
            if times.write_all(&record).is_ok() {
                self.times_size += 16;
                self.last_time = now;
            }
        }
        self.file
            .write_all(bytes)
            .context("writing the container's log")?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let (current, previous) = log_paths(&self.dir);
        fs::rename(&current, &previous).context("rotating the container's log")?;
        let _ = fs::rename(times_path(&current), times_path(&previous));
        self.file = open_log(&current)?;
        self.times = open_log(&times_path(&current)).ok();
        self.times_size = 0;
        self.size = 0;
        if self.is_our_stdio {
            self.become_stdio()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_bounded_and_rotates_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::open(dir.path()).unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..(3 * LOG_MAX_BYTES / chunk.len() as u64) {
            log.write(&chunk).unwrap();
        }
        log.write(b"last words\n").unwrap();
        let (current, previous) = log_paths(dir.path());
        let (now, before) = (
            fs::metadata(&current).unwrap().len(),
            fs::metadata(&previous).unwrap().len(),
        );
        assert!(
            now <= LOG_MAX_BYTES && before <= LOG_MAX_BYTES,
            "{now} {before}"
        );
        assert!(fs::read_to_string(&current)
            .unwrap()
            .ends_with("last words\n"));
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            4,
            "only log and log.1, and their times"
        );
        let times = read_times(&current);
        assert_eq!(
            times.last().map(|t| t.0),
            Some(now - b"last words\n".len() as u64)
        );
        assert!(times
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }
}
