//! Files minibox writes for a user (`export -o`, `--pid-file`): whole or not at all, and never
//! through a link someone else planted. The directory is opened once; the temporary file is
//! made in it by descriptor with `O_CREAT|O_EXCL|O_NOFOLLOW` under a random name (a symlink
//! or file waiting there is never followed nor truncated), filled, then renamed over the
//! final name in that same directory (a symlink there is replaced, not followed).

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{unlinkat, UnlinkatFlags};

/// A file being written beside its final name; removed unless `commit`ted.
pub struct OutFile {
    dir: OwnedFd,
    tmp: OsString,
    name: OsString,
    path: PathBuf,
    file: File,
    committed: bool,
}

impl OutFile {
    /// Makes `.NAME.RANDOM.SUFFIX` in `path`'s directory, mode `mode` (before the umask).
    pub fn create(path: &Path, suffix: &str, mode: u32) -> Result<OutFile> {
        let name = path
            .file_name()
            .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
            .with_context(|| format!("{} names no file: give a file's path", path.display()))?;
        let dir_path = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = nix::fcntl::open(
            dir_path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening directory {}", dir_path.display()))?;
        for _ in 0..16 {
            let mut tmp = OsString::from(".");
            tmp.push(name);
            tmp.push(format!(".{}.{suffix}", random_hex()?));
            match openat(
                &dir,
                tmp.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(mode),
            ) {
                Ok(fd) => {
                    return Ok(OutFile {
                        dir,
                        tmp,
                        name: name.to_os_string(),
                        path: path.to_path_buf(),
                        file: File::from(fd),
                        committed: false,
                    })
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => {
                    bail!(
                        "creating a file in {}: {e}: is the directory writable?",
                        dir_path.display()
                    )
                }
            }
        }
        bail!(
            "creating a file in {}: every name tried was taken",
            dir_path.display()
        )
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Flushes the file and puts it in place under its final name.
    pub fn commit(mut self) -> Result<()> {
        self.file
            .sync_all()
            .with_context(|| format!("writing {}", self.path.display()))?;
        renameat(
            &self.dir,
            self.tmp.as_os_str(),
            &self.dir,
            self.name.as_os_str(),
        )
        .with_context(|| format!("writing {}", self.path.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = unlinkat(&self.dir, self.tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 8];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_planted_link_is_replaced_never_followed_and_nothing_is_left_on_failure() {
        let dir = std::env::temp_dir().join(format!("minibox-outfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("out")).unwrap();
        let mut f = OutFile::create(&dir.join("out"), "tmp", 0o644).unwrap();
        f.file().write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(dir.join("out")).unwrap(), "new");
        assert!(!std::fs::symlink_metadata(dir.join("out"))
            .unwrap()
            .file_type()
            .is_symlink());
        drop(OutFile::create(&dir.join("gone"), "tmp", 0o644).unwrap());
        let mut left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["out", "victim"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
