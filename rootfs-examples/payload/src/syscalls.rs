//! Subcommands about system calls a seccomp filter decides on: try named ones and say how
//! each went, and time a cheap one in a loop.
//!
//! Each probe is the raw system call (`libc::syscall`), not a C library wrapper, so that no
//! fallback hides what the kernel (or the filter) answered.

use std::ffi::OsStr;
use std::hint::black_box;
use std::io;
use std::time::Instant;

use crate::names::{errno_name, signal_name};
use crate::{outln, parse_arg, Error, Result};

const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
const KEY_SPEC_USER_KEYRING: libc::c_long = -4;
/// `personality(0xffffffff)` only asks for the current persona.
const PERSONALITY_QUERY: libc::c_long = 0xffff_ffff;
const READ_IMPLIES_EXEC: libc::c_long = 0x040_0000;
const MPOL_DEFAULT: libc::c_long = 0;

/// A probe: its name, and the system call it makes (returning the raw result).
type Probe = (&'static str, fn() -> libc::c_long);

/// Every probe `syscalls` knows.
// SAFETY (each closure): the calls pass only constants, null pointers the kernel checks
// (EFAULT), or pointers to static NUL-terminated strings; none writes to our memory.
#[rustfmt::skip]
const PROBES: &[Probe] = &[
    ("unshare-user", || unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) }),
    ("unshare-user-mnt-cgroup", || unsafe {
        libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP)
    }),
    ("keyctl", || unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0) }),
    ("add_key", || unsafe {
        libc::syscall(libc::SYS_add_key, c"user".as_ptr(), c"minibox-probe".as_ptr(), c"x".as_ptr(), 1, KEY_SPEC_SESSION_KEYRING)
    }),
    ("request_key", || unsafe {
        libc::syscall(libc::SYS_request_key, c"user".as_ptr(), c"minibox-probe-absent".as_ptr(), std::ptr::null::<libc::c_char>(), 0)
    }),
    ("perf_event_open", || unsafe {
        libc::syscall(libc::SYS_perf_event_open, std::ptr::null::<libc::c_void>(), 0, -1, -1, 0)
    }),
    ("io_uring_setup", || unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, std::ptr::null::<libc::c_void>()) }),
    ("userfaultfd", || unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) }),
    ("bpf", || unsafe { libc::syscall(libc::SYS_bpf, 0, std::ptr::null::<libc::c_void>(), 0) }),
    ("setns", || unsafe { libc::syscall(libc::SYS_setns, -1, 0) }),
    ("set_mempolicy", || unsafe {
        libc::syscall(libc::SYS_set_mempolicy, MPOL_DEFAULT, std::ptr::null::<libc::c_ulong>(), 0)
    }),
    ("personality-linux", || unsafe { libc::syscall(libc::SYS_personality, 0) }),
    ("personality-query", || unsafe { libc::syscall(libc::SYS_personality, PERSONALITY_QUERY) }),
    ("personality-read-implies-exec", || unsafe { libc::syscall(libc::SYS_personality, READ_IMPLIES_EXEC) }),
    ("clone3", || unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<libc::c_void>(), 0) }),
    ("mkdir", || unsafe {
        let rc = libc::syscall(libc::SYS_mkdir, c"/tmp/.minibox-probe".as_ptr(), 0o755);
        if rc == 0 {
            libc::rmdir(c"/tmp/.minibox-probe".as_ptr());
        }
        rc
    }),
    ("getppid", || unsafe { libc::syscall(libc::SYS_getppid) }),
    // Descriptors 1000..=1000 are not open: marks nothing, answers 0 where allowed.
    ("close_range", || unsafe { libc::syscall(libc::SYS_close_range, 1000, 1000, libc::CLOSE_RANGE_CLOEXEC) }),
];

/// `syscalls NAME...`: makes each named system call in a child of its own (one that works,
/// such as unshare, must not change what the next one sees) and prints `NAME=OK`,
/// `NAME=EPERM` (the errno), or `NAME=SIGSYS` (the signal that ended the child).
pub fn syscalls(args: &[&OsStr]) -> Result {
    let mut probes = Vec::new();
    for arg in args {
        let probe = PROBES
            .iter()
            .find(|(name, _)| OsStr::new(name) == *arg)
            .ok_or_else(|| {
                let known: Vec<&str> = PROBES.iter().map(|(n, _)| *n).collect();
                Error::Usage(format!(
                    "unknown syscall probe {arg:?} (known: {})",
                    known.join(" ")
                ))
            })?;
        probes.push(probe);
    }
    for (name, call) in probes {
        outln!("{name}={}", in_child(*call)?)?;
    }
    Ok(())
}

/// Runs `call` in a forked child; its exit status carries the errno (0: it worked).
fn in_child(call: fn() -> libc::c_long) -> Result<String> {
    // SAFETY: the payload is single-threaded; the child makes one system call and _exits.
    match unsafe { libc::fork() } {
        -1 => Err(Error::last_os("fork")),
        0 => {
            let rc = call();
            let errno = io::Error::last_os_error().raw_os_error().unwrap_or(255);
            // SAFETY: _exit ends the child without running the parent's clean-up.
            unsafe { libc::_exit(if rc < 0 { errno.min(255) } else { 0 }) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: `status` is a valid place for waitpid to write.
            if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
                return Err(Error::last_os("waitpid"));
            }
            Ok(if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                signal_name(sig).map_or(format!("signal{sig}"), |s| format!("SIG{s}"))
            } else {
                match libc::WEXITSTATUS(status) {
                    0 => "OK".to_string(),
                    e => errno_name(e).map_or(format!("errno{e}"), str::to_string),
                }
            })
        }
    }
}

/// `getppid-loop N`: N raw getppid calls, timed: what a filter costs each system call.
pub fn getppid_loop(args: &[&OsStr]) -> Result {
    let n: u64 = parse_arg("N", args[0])?;
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: getppid takes no arguments and cannot fail.
        black_box(unsafe { libc::syscall(libc::SYS_getppid) });
    }
    let took = start.elapsed();
    outln!(
        "calls={n} total_ms={:.1} ns_per_call={:.1}",
        took.as_secs_f64() * 1e3,
        took.as_nanos() as f64 / n.max(1) as f64
    )
}
