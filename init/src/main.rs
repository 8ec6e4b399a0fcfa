//! `minibox-init PATH ARGV0 [ARGS...]`: the tiny init minibox runs as a container's PID 1 with
//! `--init`, as docker's `--init` (tini). It starts CMD (PATH, with ARGV0 and ARGS as its argv)
//! as its child, passes on every signal it gets, reaps every process left in its care, and
//! exits with CMD's status (128+N if CMD died of signal N).
//!
//! CMD is then not PID 1, so the signals it does not handle act on it: SIGTERM ends it (`stop`
//! takes milliseconds, not 10 s), Ctrl-C interrupts it.
//!
//! A program of its own, std only, linked statically: it runs in any rootfs (none need hold a
//! C library), and holds none of minibox's code. minibox's build script compiles this file
//! alone with `rustc` and embeds the result; minibox hands it to the container as a sealed
//! memfd, so no process of the container ever runs (or can rewrite) a file of the host's.

use std::ffi::OsString;
use std::os::raw::c_int;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// `sigset_t` as glibc lays it out: 1024 bits.
#[repr(C)]
struct SigSet([u64; 16]);

/// `siginfo_t`: 128 bytes, of which nothing is read.
#[repr(C, align(8))]
struct SigInfo([u8; 128]);

type Pid = c_int;

extern "C" {
    fn fork() -> Pid;
    fn getpid() -> Pid;
    fn setpgid(pid: Pid, pgid: Pid) -> c_int;
    fn tcgetpgrp(fd: c_int) -> Pid;
    fn tcsetpgrp(fd: c_int, pgrp: Pid) -> c_int;
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn signal(sig: c_int, handler: usize) -> usize;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwaitinfo(set: *const SigSet, info: *mut SigInfo) -> c_int;
    fn kill(pid: Pid, sig: c_int) -> c_int;
    fn waitpid(pid: Pid, status: *mut c_int, options: c_int) -> Pid;
    fn _exit(code: c_int) -> !;
}

const SIG_SETMASK: c_int = 2;
const SIG_DFL: usize = 0;
/// The highest signal number (SIGRTMAX on Linux).
const SIGMAX: c_int = 64;
const SIGCHLD: c_int = 17;
const WNOHANG: c_int = 1;
const NAME: &str = "minibox-init";

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.len() < 2 {
        eprintln!("{NAME}: usage: {NAME} PATH ARGV0 [ARGS...] (minibox run --init starts it)");
        std::process::exit(125);
    }
    // Every signal is held from now on and taken with sigwaitinfo: none is lost before CMD
    // exists, and none runs a handler.
    let mut all = SigSet([0; 16]);
    // SAFETY: both calls only write the set we own; sigprocmask reads it.
    unsafe {
        sigfillset(&mut all);
        sigprocmask(SIG_SETMASK, &all, std::ptr::null_mut());
    }
    // SAFETY: single-threaded; the child runs only `become_cmd`, which execs or exits.
    let child = match unsafe { fork() } {
        -1 => {
            eprintln!("{NAME}: fork: {}", std::io::Error::last_os_error());
            std::process::exit(125);
        }
        0 => become_cmd(&args[0], &args[1], &args[2..]),
        child => child,
    };
    std::process::exit(serve(child, &all))
}

/// In the child: its own process group, made the terminal's foreground group if there is a
/// terminal (so the keys' signals reach CMD alone, not the init as well); then exec as if
/// started afresh: every signal at its default action (std's runtime ignores SIGPIPE, and an
/// ignored signal stays ignored across exec), none blocked.
fn become_cmd(path: &OsString, argv0: &OsString, args: &[OsString]) -> ! {
    let mut none = SigSet([0; 16]);
    // SAFETY: plain integer calls on our own process, and a set we own; SIGTTOU is still
    // blocked while we take the terminal, so a group outside the foreground may.
    unsafe {
        setpgid(0, 0);
        if tcgetpgrp(0) >= 0 {
            tcsetpgrp(0, getpid());
        }
        for sig in 1..=SIGMAX {
            // Fails harmlessly for KILL, STOP and the C library's own signals.
            signal(sig, SIG_DFL);
        }
        sigemptyset(&mut none);
        sigprocmask(SIG_SETMASK, &none, std::ptr::null_mut());
    }
    let err = Command::new(path).arg0(argv0).args(args).exec();
    eprintln!("{NAME}: cannot run {}: {err}", path.to_string_lossy());
    let code = match err.raw_os_error() {
        // ENOENT, ENOTDIR, ELOOP: not there (docker's 127); anything else: not runnable.
        Some(2 | 20 | 40) => 127,
        _ => 126,
    };
    // SAFETY: ends this forked child at once, without running the parent's atexit work.
    unsafe { _exit(code) }
}

/// Takes signals as they come: SIGCHLD reaps every child that ended (CMD, or an orphan handed
/// to us), any other is passed on to CMD. Returns CMD's status once it has ended.
fn serve(child: Pid, all: &SigSet) -> i32 {
    loop {
        let mut info = SigInfo([0; 128]);
        // SAFETY: both pointers are to live values of glibc's layout.
        let sig = unsafe { sigwaitinfo(all, &mut info) };
        if sig < 0 {
            continue; // EINTR
        }
        if sig != SIGCHLD {
            // SAFETY: plain integers; a CMD already gone gives ESRCH, which is fine.
            unsafe { kill(child, sig) };
            continue;
        }
        if let Some(code) = reap_all(child) {
            return code;
        }
    }
}

/// Reaps every child that has ended; CMD's status if it was among them.
fn reap_all(child: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        let mut status = 0;
        // SAFETY: the pointer is to a live int.
        let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
        if pid <= 0 {
            return code;
        }
        if pid == child {
            code = Some(exit_code(status));
        }
    }
}

/// A wait status as a shell's `$?`: the exit code, or 128+N for death by signal N.
fn exit_code(status: c_int) -> i32 {
    let signal = status & 0x7f;
    if signal == 0 {
        (status >> 8) & 0xff
    } else {
        128 + signal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_a_shell_does() {
        assert_eq!(exit_code(7 << 8), 7);
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(15), 128 + 15);
        assert_eq!(exit_code(9 | 0x80), 128 + 9); // core dumped
    }

    #[test]
    fn sets_are_glibcs_size() {
        assert_eq!(std::mem::size_of::<SigSet>(), 128);
        assert_eq!(std::mem::size_of::<SigInfo>(), 128);
    }
}
