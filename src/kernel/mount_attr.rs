//! Recursive mount attributes (`rro`, `rnosuid`, `rnodev`, `rnoexec`, the `r…atime` family,
//! `rnosymfollow`; runtime-spec config.md "Mounts"): set on a mount and every mount below it
//! in one `mount_setattr(AT_RECURSIVE)` (Linux ≥ 5.12). A plain `ro` on an `rbind` leaves the
//! submounts writable; `rro` does not.

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;

/// What to set and clear, as MOUNT_ATTR_* bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecursiveAttrs {
    pub set: u64,
    pub clear: u64,
}

impl RecursiveAttrs {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }

    /// Takes `word` if it is one of the recursive options; false if it is none.
    pub fn take(&mut self, word: &str) -> bool {
        use libc::{
            MOUNT_ATTR_NOATIME as NOATIME, MOUNT_ATTR_NODEV as NODEV,
            MOUNT_ATTR_NODIRATIME as NODIRATIME, MOUNT_ATTR_NOEXEC as NOEXEC,
            MOUNT_ATTR_NOSUID as NOSUID, MOUNT_ATTR_NOSYMFOLLOW as NOSYMFOLLOW,
            MOUNT_ATTR_RDONLY as RDONLY, MOUNT_ATTR_RELATIME as RELATIME,
            MOUNT_ATTR_STRICTATIME as STRICTATIME, MOUNT_ATTR__ATIME as ATIME,
        };
        let (on, flag) = match word {
            "rro" => (true, RDONLY),
            "rrw" => (false, RDONLY),
            "rnosuid" => (true, NOSUID),
            "rsuid" => (false, NOSUID),
            "rnodev" => (true, NODEV),
            "rdev" => (false, NODEV),
            "rnoexec" => (true, NOEXEC),
            "rexec" => (false, NOEXEC),
            "rnodiratime" => (true, NODIRATIME),
            "rdiratime" => (false, NODIRATIME),
            "rnosymfollow" => (true, NOSYMFOLLOW),
            "rsymfollow" => (false, NOSYMFOLLOW),
            // The atime mode is one field: it is cleared whole and set to the one asked.
            "rnoatime" | "rstrictatime" | "rrelatime" | "ratime" | "rnorelatime"
            | "rnostrictatime" => {
                let mode = match word {
                    "rnoatime" => NOATIME,
                    "rstrictatime" | "rnorelatime" => STRICTATIME,
                    _ => RELATIME,
                };
                self.set = (self.set & !ATIME) | mode;
                self.clear |= ATIME;
                return true;
            }
            _ => return false,
        };
        if on {
            self.set |= flag;
            self.clear &= !flag;
        } else {
            self.clear |= flag;
            self.set &= !flag;
        }
        true
    }

    /// Applies them to the mount `top` is the root of, and to every mount below it.
    pub fn apply(&self, top: &OwnedFd) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let attr = libc::mount_attr {
            attr_set: self.set,
            attr_clr: self.clear,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: mount_setattr reads `attr` (alive across the call, its size passed) and the
        // empty path; the descriptor is open.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                top.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
                &attr as *const libc::mount_attr,
                std::mem::size_of::<libc::mount_attr>(),
            )
        };
        Errno::result(rc).context(
            "mount_setattr(AT_RECURSIVE) for the recursive options (rro, rnosuid...; Linux \
             5.12 or later)",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_word_wins_and_atime_is_one_field() {
        let mut a = RecursiveAttrs::default();
        for w in ["rro", "rnosuid", "rrw", "rnoatime", "rstrictatime"] {
            assert!(a.take(w), "{w}");
        }
        assert!(!a.take("ro"));
        assert_eq!(
            a.set,
            libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_STRICTATIME
        );
        assert_eq!(a.clear, libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR__ATIME);
    }
}
