//! How many bytes the files under a directory hold (`system df`, `system prune`), walked by
//! descriptor: each directory is opened from its parent's descriptor with `O_NOFOLLOW`, so a
//! container that swaps one of its directories for a symlink while it is walked leads the walk
//! nowhere outside; every entry is read with `fstatat(AT_SYMLINK_NOFOLLOW)`.

use std::collections::HashSet;
use std::path::Path;

use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// The bytes of the files under `dir`, as docker counts them: regular files and symlinks, each
/// inode once (hard links), other filesystems not entered. 0 when `dir` is not a directory.
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(top) = Dir::open(dir, DIR_FLAGS, Mode::empty()) else {
        return 0;
    };
    let Ok(top_stat) = nix::sys::stat::fstat(&top) else {
        return 0;
    };
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![top];
    while let Some(mut d) = stack.pop() {
        let mut subdirs = vec![];
        let names: Vec<std::ffi::CString> = d
            .iter()
            .flatten()
            .map(|e| e.file_name().to_owned())
            .filter(|n| n.to_bytes() != b"." && n.to_bytes() != b"..")
            .collect();
        for name in names {
            let Ok(st) = fstatat(&d, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            if st.st_dev != top_stat.st_dev {
                continue;
            }
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            if kind == SFlag::S_IFDIR {
                subdirs.push(name);
            } else if seen.insert(st.st_ino) {
                total += st.st_size as u64;
            }
        }
        for name in subdirs {
            // A directory swapped for a symlink meanwhile is not opened (O_NOFOLLOW).
            if let Ok(sub) = Dir::openat(&d, name.as_c_str(), DIR_FLAGS, Mode::empty()) {
                stack.push(sub);
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_links_count_once_and_symlinks_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("a"), vec![0u8; 1000]).unwrap();
        std::fs::write(d.join("sub/b"), vec![0u8; 500]).unwrap();
        std::fs::hard_link(d.join("a"), d.join("sub/a2")).unwrap();
        std::os::unix::fs::symlink("/usr", d.join("usr")).unwrap();
        let link = std::fs::symlink_metadata(d.join("usr")).unwrap().len();
        assert_eq!(disk_usage(d), 1500 + link);
        assert_eq!(disk_usage(&d.join("missing")), 0);
        // A symlink given as the top is no directory of ours either.
        assert_eq!(disk_usage(&d.join("usr")), 0);
    }
}
