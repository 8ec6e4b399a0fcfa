//! The process's own descriptors, as it hands itself over to the container's program: every one
//! from a given number up is marked close-on-exec, so nothing of minibox's reaches CMD.
//!
//! `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)` does it in one call (Linux ≥ 5.11). A seccomp
//! profile written before that call existed turns it away (EPERM, or ENOSYS), and without
//! `noNewPrivileges` such a profile is already installed when this runs (runc's order: the
//! filter goes in while we still hold CAP_SYS_ADMIN). Then, as runc does, the descriptors are
//! found in `/proc/self/fd` and marked one by one with `fcntl`, calls every profile allows;
//! without a /proc, each number up to the open-files limit is tried.

use std::os::fd::RawFd;

use anyhow::{Context, Result};
use nix::errno::Errno;

/// Marks every descriptor from `first` up close-on-exec.
pub fn mark_cloexec_from(first: u32) -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing now; it only marks fds
    // close-on-exec, so no Rust object is left holding a closed descriptor.
    let rc =
        unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) };
    if Errno::result(rc).is_ok() {
        return Ok(());
    }
    mark_listed_from(first).or_else(|_| mark_each_up_to_limit(first))
}

/// The fallback: the descriptors `/proc/self/fd` lists (but the one reading it).
fn mark_listed_from(first: u32) -> Result<()> {
    let dir = std::fs::read_dir("/proc/self/fd").context("opening /proc/self/fd")?;
    // Collected first, so that marking does not change what is being listed.
    let listed: Vec<RawFd> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in listed {
        if fd >= first as RawFd {
            set_cloexec(fd)?;
        }
    }
    Ok(())
}

/// Without a /proc: every number below the open-files limit (EBADF for most of them).
fn mark_each_up_to_limit(first: u32) -> Result<()> {
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .context("getrlimit(RLIMIT_NOFILE)")?;
    let last = soft.min(1 << 20) as RawFd;
    for fd in first as RawFd..last {
        set_cloexec(fd)?;
    }
    Ok(())
}

/// FD_CLOEXEC on one descriptor; one that is not open (any more: the directory stream's) is
/// skipped.
fn set_cloexec(fd: RawFd) -> Result<()> {
    // SAFETY: F_GETFD/F_SETFD only read and change the descriptor's flags; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    match Errno::result(flags) {
        Err(Errno::EBADF) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("fcntl({fd}, F_GETFD)")),
        Ok(_) => {}
    }
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    Errno::result(rc).with_context(|| format!("fcntl({fd}, F_SETFD, FD_CLOEXEC)"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    fn is_cloexec(fd: &impl AsRawFd) -> bool {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        flags >= 0 && flags & libc::FD_CLOEXEC != 0
    }

    /// A descriptor without FD_CLOEXEC, at a number above `min`.
    fn inheritable_fd(min: RawFd) -> OwnedFd {
        // SAFETY: F_DUPFD (not F_DUPFD_CLOEXEC) of stdin returns a new descriptor we own.
        let fd = unsafe { libc::fcntl(0, libc::F_DUPFD, min) };
        assert!(fd >= min, "F_DUPFD: {}", Errno::last());
        // SAFETY: `fd` was just returned by F_DUPFD and nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    #[test]
    fn the_fallbacks_mark_what_close_range_would() {
        let below = inheritable_fd(500);
        let listed = inheritable_fd(600);
        let tried = inheritable_fd(700);
        assert!(!is_cloexec(&listed) && !is_cloexec(&tried));
        mark_listed_from(600).unwrap();
        assert!(is_cloexec(&listed) && is_cloexec(&tried));
        assert!(!is_cloexec(&below), "a descriptor below `first` was marked");
        let more = inheritable_fd(650);
        mark_each_up_to_limit(640).unwrap();
        assert!(is_cloexec(&more));
        assert!(!is_cloexec(&below));
    }
}
