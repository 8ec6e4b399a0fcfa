//! Subcommands about terminals and the container's first process: what `-t` gives, whether
//! the caller's terminal is within reach, whether `--init` reaps orphans, and whether any
//! process's executable can be opened for writing (runc CVE-2019-5736).

use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{self, Write};
use std::os::raw::c_int;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::names::describe;
use crate::process::trap_signals;
use crate::{outln, parse_arg, Error, Result};

/// `ok`, or the errno's name, of the last call.
fn outcome(rc: c_int) -> String {
    if rc >= 0 {
        "ok".into()
    } else {
        describe(&io::Error::last_os_error())
            .split(' ')
            .next()
            .unwrap_or("?")
            .to_string()
    }
}

/// The terminal's size as `ROWSxCOLS`, or the error.
fn window_size(fd: c_int) -> String {
    // SAFETY: `winsize` is plain data; TIOCGWINSZ fills it or fails.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live, writable winsize.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 {
        format!("{}x{}", ws.ws_row, ws.ws_col)
    } else {
        outcome(rc)
    }
}

/// `tty-info`: what fds 0-2 are and whose terminal it is:
/// `isatty=1,1,1`, `tty=/dev/pts/0`, `session_leader=1`, `foreground=own|other|ERR`,
/// `ctty=ok|ERR` (opening /dev/tty), `size=ROWSxCOLS`, `term=TERM`, `stdin=DEV:RDEV`.
pub fn info(_: &[&OsStr]) -> Result {
    // SAFETY: isatty only inspects the descriptors.
    let ttys: Vec<String> = (0..3)
        .map(|fd| unsafe { libc::isatty(fd) }.to_string())
        .collect();
    outln!("isatty={}", ttys.join(","))?;
    let name = fs::read_link("/proc/self/fd/0").map_or("?".into(), |p| p.display().to_string());
    outln!("tty={name}")?;
    // SAFETY: getsid, getpid, getpgrp and tcgetpgrp take no pointers.
    let (sid, pid, pgrp, fg) = unsafe {
        (
            libc::getsid(0),
            libc::getpid(),
            libc::getpgrp(),
            libc::tcgetpgrp(0),
        )
    };
    outln!("session_leader={}", u8::from(sid == pid))?;
    let foreground = if fg < 0 {
        outcome(fg)
    } else if fg == pgrp {
        "own".into()
    } else {
        "other".into()
    };
    outln!("foreground={foreground}")?;
    let ctty = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_or_else(
            |e| describe(&e).split(' ').next().unwrap_or("?").to_string(),
            |_| "ok".into(),
        );
    outln!("ctty={ctty}")?;
    outln!("size={}", window_size(0))?;
    outln!("term={}", std::env::var("TERM").unwrap_or_default())?;
    let stdin =
        fs::metadata("/proc/self/fd/0").map_or("?".into(), |m| format!("{}:{}", m.dev(), m.rdev()));
    outln!("stdin={stdin}")
}

/// `tty-trap N`: as `trap`, for what a terminal sends: INT, QUIT, TSTP, WINCH (with the new
/// size), HUP and TERM.
pub fn trap(args: &[&OsStr]) -> Result {
    let wanted: u64 = parse_arg("N", args[0])?;
    let signals = [
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTSTP,
        libc::SIGWINCH,
        libc::SIGHUP,
        libc::SIGTERM,
    ];
    trap_signals(&signals, wanted, |sig| {
        Ok(if sig == libc::SIGWINCH {
            format!(" {}", window_size(0))
        } else {
            String::new()
        })
    })
}

/// `tiocsti TEXT`: tries to type TEXT (TIOCSTI) into every terminal within reach — fds 0, 1, 2
/// and /dev/tty — and prints `fdN=ok|ERR` and `devtty=ok|ERR`.
pub fn tiocsti(args: &[&OsStr]) -> Result {
    let text = args[0].as_encoded_bytes().to_vec();
    let push = |fd: c_int| -> String {
        for byte in &text {
            // SAFETY: TIOCSTI reads one byte from the live pointer.
            let rc = unsafe { libc::ioctl(fd, libc::TIOCSTI, byte as *const u8) };
            if rc != 0 {
                return outcome(rc);
            }
        }
        "ok".into()
    };
    for fd in 0..3 {
        outln!("fd{fd}={}", push(fd))?;
    }
    let path = CString::new("/dev/tty").expect("no NUL");
    // SAFETY: a valid C string; the descriptor is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        outln!("devtty={}", outcome(fd))
    } else {
        let result = push(fd);
        // SAFETY: `fd` is ours.
        unsafe { libc::close(fd) };
        outln!("devtty={result}")
    }
}

/// `orphans N SECS`: makes N orphans that exit (each a grandchild whose parent is gone, so it
/// becomes PID 1's to reap), prints `orphans N`, then sleeps SECS.
pub fn orphans(args: &[&OsStr]) -> Result {
    let n: u32 = parse_arg("N", args[0])?;
    let secs: f64 = parse_arg("SECS", args[1])?;
    for _ in 0..n {
        // SAFETY: single-threaded; the child only forks, sleeps and _exits.
        match unsafe { libc::fork() } {
            -1 => return Err(Error::last_os("fork")),
            0 => {
                // SAFETY: as above; the grandchild outlives its parent, then exits.
                unsafe {
                    if libc::fork() == 0 {
                        libc::usleep(100_000);
                    }
                    libc::_exit(0)
                }
            }
            child => {
                // SAFETY: waits for our own child, which exits at once.
                unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
            }
        }
    }
    outln!("orphans {n}")?;
    io::stdout()
        .flush()
        .map_err(|err| Error::io("stdout", &err))?;
    std::thread::sleep(Duration::from_secs_f64(secs.max(0.0)));
    Ok(())
}

/// `exe-attack`: runc CVE-2019-5736 from inside. For each process in /proc: `exe PID
/// target=T dev=D ino=I open=ok|ERR reopen=ok|ERR` — its executable's link, its inode, an
/// O_WRONLY open through the magic link, and the exploit's route (an O_PATH handle reopened
/// for writing through /proc/self/fd). Nothing is ever written.
pub fn exe_attack(_: &[&OsStr]) -> Result {
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .map_err(|e| Error::io("/proc", &e))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let link = format!("/proc/{pid}/exe");
        let target = fs::read_link(&link).map_or_else(
            |e| describe(&e).split(' ').next().unwrap_or("?").to_string(),
            |p| p.display().to_string(),
        );
        let (dev, ino) = fs::metadata(&link).map_or((0, 0), |m| (m.dev(), m.ino()));
        let c_link = CString::new(link.as_str()).expect("no NUL");
        // SAFETY: a valid C string; any descriptor is closed at once.
        let fd = unsafe { libc::open(c_link.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        let open = outcome(fd);
        if fd >= 0 {
            // SAFETY: ours.
            unsafe { libc::close(fd) };
        }
        // SAFETY: as above.
        let path_fd = unsafe { libc::open(c_link.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        let reopen = if path_fd < 0 {
            outcome(path_fd)
        } else {
            let via = CString::new(format!("/proc/self/fd/{path_fd}")).expect("no NUL");
            // SAFETY: as above.
            let fd = unsafe { libc::open(via.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            let result = outcome(fd);
            // SAFETY: ours.
            unsafe {
                if fd >= 0 {
                    libc::close(fd);
                }
                libc::close(path_fd);
            }
            result
        };
        outln!("exe {pid} target={target} dev={dev} ino={ino} open={open} reopen={reopen}")?;
    }
    Ok(())
}

/// `exe-watch SECS`: CVE-2019-5736 raced, for `exec`. For SECS seconds, scans /proc over and
/// over; for every other process whose executable is not the container's `/payload`, it tries
/// an O_WRONLY open of `/proc/PID/exe` and keeps an O_PATH handle (up to 256), which it
/// reopens for writing at the end, once those processes are gone (the exploit's route). Prints
/// `scans N`, `seen target=T dev=D ino=I count=C` per distinct executable (T is the errno
/// name when the link itself was refused), and `open-ok PID T` / `reopen-ok T` for any
/// open for writing that succeeded. Nothing is ever written.
pub fn exe_watch(args: &[&OsStr]) -> Result {
    let secs: f64 = parse_arg("SECS", args[0])?;
    let me = std::process::id();
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(secs.max(0.0));
    let mut seen: std::collections::BTreeMap<String, u64> = Default::default();
    let mut held: Vec<(c_int, String)> = Vec::new();
    let mut wins: Vec<String> = Vec::new();
    let mut scans = 0u64;
    outln!("watching")?;
    io::stdout()
        .flush()
        .map_err(|err| Error::io("stdout", &err))?;
    while std::time::Instant::now() < deadline {
        scans += 1;
        let Ok(dir) = fs::read_dir("/proc") else {
            continue;
        };
        for pid in dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        {
            if pid == me {
                continue;
            }
            let link = format!("/proc/{pid}/exe");
            let target = match fs::read_link(&link) {
                Ok(p) if p.as_os_str() == "/payload" => continue,
                Ok(p) => p.display().to_string(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => describe(&e).split(' ').next().unwrap_or("?").to_string(),
            };
            let (dev, ino) = fs::metadata(&link).map_or((0, 0), |m| (m.dev(), m.ino()));
            *seen
                .entry(format!("target={target} dev={dev} ino={ino}"))
                .or_default() += 1;
            let c_link = CString::new(link.as_str()).expect("no NUL");
            // SAFETY: a valid C string; a descriptor opened is closed at once.
            let fd = unsafe { libc::open(c_link.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            if fd >= 0 {
                wins.push(format!("open-ok {pid} {target}"));
                // SAFETY: ours.
                unsafe { libc::close(fd) };
            }
            if held.len() < 256 {
                // SAFETY: as above; the handle is kept for the end.
                let path_fd =
                    unsafe { libc::open(c_link.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
                if path_fd >= 0 {
                    held.push((path_fd, target));
                }
            }
        }
    }
    for (path_fd, target) in held {
        let via = CString::new(format!("/proc/self/fd/{path_fd}")).expect("no NUL");
        // SAFETY: a valid C string; descriptors are ours and closed here.
        unsafe {
            let fd = libc::open(via.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                wins.push(format!("reopen-ok {target}"));
                libc::close(fd);
            }
            libc::close(path_fd);
        }
    }
    outln!("scans {scans}")?;
    for (what, count) in seen {
        outln!("seen {what} count={count}")?;
    }
    for win in wins {
        outln!("{win}")?;
    }
    outln!("done")
}

/// `echo-lines`: `got: LINE` for each line read on stdin, until its end; the line `size`
/// answers `size: ROWSxCOLS` (of stdin's terminal), `exit N` ends the program with status N.
pub fn echo_lines(_: &[&OsStr]) -> Result {
    let mut line = String::new();
    loop {
        line.clear();
        let n = io::stdin()
            .read_line(&mut line)
            .map_err(|err| Error::io("stdin", &err))?;
        if n == 0 {
            return Ok(());
        }
        let text = line.trim_end();
        if let Some(code) = text.strip_prefix("exit ") {
            std::process::exit(code.parse().unwrap_or(1));
        }
        if text == "size" {
            outln!("size: {}", window_size(0))?;
            continue;
        }
        outln!("got: {text}")?;
    }
}
