//! Subcommands about the process itself: exit status, signals, and using up
//! resources (memory, CPU, pids) to exercise cgroup limits.

use std::ffi::OsStr;
use std::fs::File;
use std::hint::black_box;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::names::{parse_signal, signal_name};
use crate::{exit, outln, parse_arg, Error, Result};

/// Exit status of `kill-self` when the signal did not terminate us.
const STILL_ALIVE: i32 = 99;
/// Signals handled by `trap`.
const TRAPPED: [c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];
const MIB: usize = 1024 * 1024;
const PAGE: usize = 4096;

/// `exit N`: exits with status N.
pub fn exit_with(args: &[&OsStr]) -> Result {
    let code: i32 = parse_arg("N", args[0])?;
    exit(code)
}

/// Builds a signal set holding `signals`.
fn sigset(signals: &[c_int]) -> libc::sigset_t {
    // SAFETY: `sigset_t` is plain data; sigemptyset initializes it fully and
    // sigaddset only fails for invalid numbers, which callers never pass.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}

/// Removes `signals` from the blocked signal mask.
fn unblock(signals: &[c_int]) -> Result {
    let set = sigset(signals);
    // SAFETY: `set` is an initialized signal set; the old mask is not wanted.
    if unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(Error::last_os("sigprocmask"));
    }
    Ok(())
}

/// `kill-self SIG`: restores SIG's default action, unblocks it and raises
/// it. Exits 99 if we survive (e.g. PID 1 of a PID namespace ignores
/// signals it has no handler for).
pub fn kill_self(args: &[&OsStr]) -> Result {
    let signal = args[0]
        .to_str()
        .and_then(parse_signal)
        .ok_or_else(|| Error::Usage(format!("invalid SIG {:?}", args[0])))?;
    io::stdout()
        .flush()
        .map_err(|err| Error::io("stdout", &err))?;
    // SAFETY: SIG_DFL is always a valid disposition. This fails for KILL and
    // STOP, whose action cannot be changed (and is the default anyway).
    unsafe { libc::signal(signal, libc::SIG_DFL) };
    unblock(&[signal])?;
    // SAFETY: raise has no memory-safety preconditions.
    if unsafe { libc::raise(signal) } != 0 {
        return Err(Error::last_os(format!("raise {signal}")));
    }
    exit(STILL_ALIVE)
}

/// `sleep SECS`: sleeps for SECS seconds (may be fractional).
pub fn sleep(args: &[&OsStr]) -> Result {
    let secs: f64 = parse_arg("SECS", args[0])?;
    let duration = Duration::try_from_secs_f64(secs)
        .map_err(|_| Error::Usage(format!("invalid SECS {:?}", args[0])))?;
    io::stdout()
        .flush()
        .map_err(|err| Error::io("stdout", &err))?;
    // std::thread::sleep resumes after interruptions by signals.
    std::thread::sleep(duration);
    Ok(())
}

/// `setfsuid UID SECS`: changes the filesystem uid (which, as any credential change, clears
/// the parent-death signal), prints `fsuid=UID`, then sleeps SECS.
pub fn setfsuid_sleep(args: &[&OsStr]) -> Result {
    let uid: u32 = parse_arg("UID", args[0])?;
    // SAFETY: setfsuid takes a plain integer and touches no memory of ours.
    unsafe { libc::setfsuid(uid) };
    // setfsuid reports nothing: read back what the kernel holds now.
    // SAFETY: as above; -1 is never a valid fsuid, so this only queries.
    let now = unsafe { libc::setfsuid(u32::MAX) };
    if now as u32 != uid {
        return Err(Error::Failed(format!("setfsuid({uid}) left fsuid {now}")));
    }
    outln!("fsuid={uid}")?;
    sleep(&args[1..])
}

/// `mount-tmpfs SOURCE TARGET SECS`: mounts a tmpfs named SOURCE (any bytes: what a hostile
/// container would show its runtime) on TARGET, prints `mounted`, then sleeps SECS.
pub fn mount_tmpfs(args: &[&OsStr]) -> Result {
    use std::os::unix::ffi::OsStrExt;
    let cstr = |what: &str, a: &OsStr| {
        std::ffi::CString::new(a.as_bytes())
            .map_err(|_| Error::Usage(format!("{what} holds a NUL byte")))
    };
    let source = cstr("SOURCE", args[0])?;
    let target = cstr("TARGET", args[1])?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; data is NULL.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(Error::last_os("mount tmpfs"));
    }
    outln!("mounted")?;
    sleep(&args[2..])
}

/// Write end of the self-pipe used by `trap`'s signal handler.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

/// Signal handler for `trap`: writes the signal number as one byte into the
/// self-pipe. Only async-signal-safe operations are used.
extern "C" fn on_signal(signal: c_int) {
    let byte = signal as u8; // Standard signal numbers fit in a byte.
                             // SAFETY: errno is thread-local; `write` is async-signal-safe and the
                             // pointer is to a live local byte. errno is restored so the interrupted
                             // code does not see our write's errno. The pipe is non-blocking, so a
                             // full pipe drops the byte rather than deadlocking.
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        libc::write(
            SIGNAL_PIPE.load(Ordering::Relaxed),
            (&byte as *const u8).cast(),
            1,
        );
        *errno = saved;
    }
}

/// Creates the self-pipe and returns its read end; the write end goes to
/// `SIGNAL_PIPE` (and stays open until exit).
fn signal_pipe() -> Result<File> {
    let mut fds = [-1 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::last_os("pipe2"));
    }
    let [read_fd, write_fd] = fds;
    // SAFETY: `read_fd` is a fresh descriptor that nothing else owns.
    let reader = File::from(unsafe { OwnedFd::from_raw_fd(read_fd) });
    // SAFETY: `write_fd` is a descriptor we own; F_SETFL only changes flags.
    if unsafe { libc::fcntl(write_fd, libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(Error::last_os("fcntl"));
    }
    SIGNAL_PIPE.store(write_fd, Ordering::Relaxed);
    Ok(reader)
}

/// `trap N`: handles INT, TERM, HUP, QUIT, USR1 and USR2, prints `ready`,
/// then prints `got NAME` for each signal received and exits 0 after N.
pub fn trap(args: &[&OsStr]) -> Result {
    let wanted: u64 = parse_arg("N", args[0])?;
    trap_signals(&TRAPPED, wanted, |_| Ok(String::new()))
}

/// Handles `signals`, prints `ready`, then `got NAME` for each signal received (and what
/// `after` adds on the same line); returns after `wanted` signals.
pub fn trap_signals(
    signals: &[c_int],
    wanted: u64,
    after: impl Fn(c_int) -> Result<String>,
) -> Result {
    let mut pipe = signal_pipe()?;

    // SAFETY: `sigaction` is plain data; all-zero is a valid starting point.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
    action.sa_mask = sigset(&[]);
    // Restart interrupted system calls such as our blocking pipe read.
    action.sa_flags = libc::SA_RESTART;
    for &signal in signals {
        // SAFETY: `action` is initialized and its handler is async-signal-safe.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            return Err(Error::last_os(format!("sigaction {signal}")));
        }
    }
    unblock(signals)?;

    outln!("ready")?;
    io::stdout()
        .flush()
        .map_err(|err| Error::io("stdout", &err))?;

    let mut received = 0;
    let mut buf = [0u8; 64];
    while received < wanted {
        let n = match pipe.read(&mut buf) {
            Ok(0) => return Err(Error::Failed("signal pipe closed".into())),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Error::io("read signal pipe", &err)),
        };
        for &signal in &buf[..n] {
            let signal = c_int::from(signal);
            let extra = after(signal)?;
            match signal_name(signal) {
                Some(name) => outln!("got {name}{extra}")?,
                None => outln!("got {signal}{extra}")?,
            }
            io::stdout()
                .flush()
                .map_err(|err| Error::io("stdout", &err))?;
            received += 1;
            if received == wanted {
                break;
            }
        }
    }
    Ok(())
}

/// `memhog MB`: allocates MB MiB in 1 MiB chunks and writes one byte per
/// 4 KiB page so that the memory is really used, printing `touched K MiB`
/// every 8 MiB and finally `allocated MB MiB`.
pub fn memhog(args: &[&OsStr]) -> Result {
    let mib: usize = parse_arg("MB", args[0])?;
    black_box(allocate(mib)?);
    Ok(())
}

/// `memhold MB SECS`: as `memhog`, then keeps the memory for SECS seconds (for `ps`).
pub fn memhold(args: &[&OsStr]) -> Result {
    let mib: usize = parse_arg("MB", args[0])?;
    let secs: f64 = parse_arg("SECS", args[1])?;
    let chunks = allocate(mib)?;
    std::thread::sleep(Duration::from_secs_f64(secs.max(0.0)));
    black_box(&chunks);
    Ok(())
}

fn allocate(mib: usize) -> std::result::Result<Vec<Vec<u8>>, Error> {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for done in 1..=mib {
        let mut chunk: Vec<u8> = Vec::new();
        chunk.try_reserve_exact(MIB).map_err(|_| {
            Error::Failed(format!("memhog: allocation failed after {} MiB", done - 1))
        })?;
        for byte in chunk.spare_capacity_mut().iter_mut().step_by(PAGE) {
            // SAFETY: the pointer comes from a live `&mut MaybeUninit<u8>`
            // inside the allocation. A volatile write cannot be optimized
            // away, so each page is really faulted in.
            unsafe { std::ptr::write_volatile(byte.as_mut_ptr(), 1) };
        }
        chunks.push(chunk);
        if done % 8 == 0 {
            outln!("touched {done} MiB")?;
        }
    }
    outln!("allocated {mib} MiB")?;
    Ok(chunks)
}

/// `cpuhog SECS`: spins for SECS seconds of wall-clock time, then prints
/// `cpu_usec=U wall_usec=W` with U the user+system CPU time used. Under a
/// CPU quota U stays well below W.
pub fn cpuhog(args: &[&OsStr]) -> Result {
    let secs: f64 = parse_arg("SECS", args[0])?;
    let limit = Duration::try_from_secs_f64(secs)
        .map_err(|_| Error::Usage(format!("invalid SECS {:?}", args[0])))?;
    let start = Instant::now();
    let mut state: u64 = 1;
    while start.elapsed() < limit {
        // A short burst of arithmetic (well under a millisecond) between
        // clock checks.
        for i in 0..10_000u64 {
            state = black_box(
                state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(i),
            );
        }
    }
    let wall = start.elapsed();

    // SAFETY: `rusage` is plain data; all-zero is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live, writable `rusage`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(Error::last_os("getrusage"));
    }
    let usec = |t: libc::timeval| t.tv_sec * 1_000_000 + t.tv_usec;
    let cpu = usec(usage.ru_utime) + usec(usage.ru_stime);
    outln!("cpu_usec={cpu} wall_usec={}", wall.as_micros())
}

/// `forkbomb N`: forks N children that just wait, prints
/// `forked=S failed=F` (failures are typically EAGAIN from a pids limit),
/// then SIGKILLs and reaps every child.
pub fn forkbomb(args: &[&OsStr]) -> Result {
    let wanted: u64 = parse_arg("N", args[0])?;
    // Children must not inherit (and later lose) buffered output.
    io::stdout()
        .flush()
        .map_err(|err| Error::io("stdout", &err))?;

    let mut children = Vec::new();
    let mut failed: u64 = 0;
    for _ in 0..wanted {
        // SAFETY: the process is single-threaded here, and the child only
        // calls the async-signal-safe `pause` until it is killed.
        match unsafe { libc::fork() } {
            -1 => failed += 1,
            0 => loop {
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            },
            child => children.push(child),
        }
    }
    outln!("forked={} failed={failed}", children.len())?;
    io::stdout()
        .flush()
        .map_err(|err| Error::io("stdout", &err))?;

    for &child in &children {
        // SAFETY: `child` is one of our own, not yet reaped, children.
        unsafe { libc::kill(child, libc::SIGKILL) };
    }
    for &child in &children {
        // SAFETY: a null status pointer is allowed; `child` is our child.
        while unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) } == -1 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(Error::io(format!("waitpid {child}"), &err));
            }
        }
    }
    Ok(())
}

/// `bench N PROGRAM ARGS...`: runs PROGRAM (stdio inherited) N times after 3 warm-up runs and
/// prints `runs=N median_us=M min_us=A max_us=B`. Fails if any run fails. It exists so that
/// start-up can be measured where no benchmark tool is installed (the test VM).
pub fn bench(args: &[&OsStr]) -> Result {
    let runs: usize = parse_arg("N", args[0])?;
    if runs == 0 {
        return Err(Error::Usage("N must be at least 1".into()));
    }
    let once = || -> std::result::Result<Duration, Error> {
        let start = Instant::now();
        let status = std::process::Command::new(args[1])
            .args(&args[2..])
            .status()
            .map_err(|e| Error::Failed(format!("bench: cannot run {:?}: {e}", args[1])))?;
        let took = start.elapsed();
        if !status.success() {
            return Err(Error::Failed(format!(
                "bench: {:?} failed: {status}",
                args[1]
            )));
        }
        Ok(took)
    };
    for _ in 0..3 {
        once()?;
    }
    let mut times: Vec<u128> = (0..runs)
        .map(|_| once().map(|d| d.as_micros()))
        .collect::<std::result::Result<_, _>>()?;
    times.sort_unstable();
    outln!(
        "runs={runs} median_us={} min_us={} max_us={}",
        times[runs / 2],
        times[0],
        times[runs - 1]
    )
}

/// `exec PROGRAM ARGS...`: becomes PROGRAM (execv), as a shell would; for setuid programs and
/// capabilities that only an exec shows.
pub fn exec(args: &[&OsStr]) -> Result {
    use std::os::unix::ffi::OsStrExt;
    let cstrings: Vec<std::ffi::CString> = args
        .iter()
        .map(|a| std::ffi::CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Usage("an argument holds a NUL byte".into()))?;
    let mut argv: Vec<*const libc::c_char> = cstrings.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let _ = io::stdout().flush();
    // SAFETY: argv is a NULL-terminated array of pointers into `cstrings`, alive across the call.
    unsafe { libc::execv(argv[0], argv.as_ptr()) };
    Err(Error::last_os(format!("exec {:?}", args[0])))
}
