//! A detached container's log: what it writes (and what its supervisor says) lands in `log` in
//! its state directory, bounded in size and rotated once into `log.1`.

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

/// A size-bounded, rotating log.
pub struct LogFile {
    dir: PathBuf,
    file: File,
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
        self.file
            .write_all(bytes)
            .context("writing the container's log")?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let (current, previous) = log_paths(&self.dir);
        fs::rename(&current, &previous).context("rotating the container's log")?;
        self.file = open_log(&current)?;
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
            2,
            "only log and log.1"
        );
    }
}
