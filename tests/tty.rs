//! `run -t` and `-i` driven from a real pseudo-terminal, as a person at a terminal would: the
//! container's terminal is its own, keys act inside it, the caller's terminal is put back.
//! Root only.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{openpty, Winsize};
use nix::sys::termios::{tcgetattr, LocalFlags};

use common::*;

/// The test's own terminal: minibox runs on its slave, the test types into and reads from its
/// master.
struct Terminal {
    master: File,
    slave: OwnedFd,
    seen: Vec<u8>,
}

fn size(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Terminal {
    fn new(rows: u16, cols: u16) -> Terminal {
        let pty = openpty(Some(&size(rows, cols)), None).expect("openpty");
        Terminal {
            master: File::from(pty.master),
            slave: pty.slave,
            seen: Vec::new(),
        }
    }

    /// `minibox ARGS` with this terminal as its stdin, stdout, stderr and controlling terminal
    /// (its own session, as a shell's job would be in the foreground).
    fn spawn(&self, args: &[&str]) -> Child {
        let io = || Stdio::from(self.slave.try_clone().unwrap());
        let mut cmd = minibox();
        cmd.args(args).stdin(io()).stdout(io()).stderr(io());
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn().expect("spawn minibox on a pty")
    }

    /// Reads what the terminal shows until `needle` appears (20 s at most); returns it all.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared; the terminal shows {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            self.read_some(100);
        }
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    fn read_some(&mut self, ms: u16) {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.master.read(&mut buf) {
                self.seen.extend_from_slice(&buf[..n]);
            }
        }
    }

    fn type_bytes(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    fn mode(&self) -> nix::sys::termios::Termios {
        tcgetattr(&self.slave).unwrap()
    }

    /// Whether input is waiting on the caller's side (something typed into the caller's
    /// terminal), within `ms`.
    fn has_pending_input(&self, ms: u16) -> bool {
        let mut fds = [PollFd::new(self.slave.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) > 0
    }

    /// Runs `minibox ARGS` to its end; returns its status and all it showed.
    fn run(&mut self, args: &[&str]) -> (Option<i32>, String) {
        let mut child = self.spawn(args);
        let status = wait_reading(self, &mut child);
        (status, String::from_utf8_lossy(&self.seen).into_owned())
    }
}

/// Waits for `child` (30 s at most), reading the terminal meanwhile so that it never blocks.
fn wait_reading(term: &mut Terminal, child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            term.read_some(50);
            return status.code();
        }
        assert!(Instant::now() < deadline, "minibox did not finish");
        term.read_some(20);
    }
}

fn run_args<'a>(r: &'a Rootfs, flags: &[&'a str], payload: &[&'a str]) -> Vec<&'a str> {
    let root: &'a str = Box::leak(r.arg().into_boxed_str());
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend([root, "/payload"]);
    args.extend_from_slice(payload);
    args
}

fn state_of(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')')
        .next()
        .and_then(|s| s.trim().chars().next())
        .unwrap_or('?')
}

#[test]
fn with_t_the_container_has_a_terminal_of_its_own_of_the_callers_size() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut term = Terminal::new(33, 101);
    let before = term.mode();
    let (code, shown) = term.run(&run_args(&r, &["-it"], &["tty-info"]));
    assert_eq!(code, Some(0), "{shown}");
    for want in [
        "isatty=1,1,1",
        "tty=/dev/pts/0",
        "session_leader=1",
        "foreground=own",
        "ctty=ok",
        "size=33x101",
        "term=xterm",
    ] {
        assert!(shown.contains(want), "{want} missing in {shown:?}");
    }
    // Its terminal is of its own devpts, not the caller's.
    let ours = nix::sys::stat::fstat(&term.slave).unwrap();
    assert!(
        !shown.contains(&format!("stdin={}:{}", ours.st_dev, ours.st_rdev)),
        "{shown}"
    );
    assert_eq!(
        term.mode(),
        before,
        "the caller's terminal mode was not restored"
    );
    // -e TERM wins over docker's default.
    let mut term = Terminal::new(10, 20);
    let (_, shown) = term.run(&run_args(&r, &["-t", "-e", "TERM=vt100"], &["tty-info"]));
    assert!(
        shown.contains("term=vt100") && shown.contains("size=10x20"),
        "{shown}"
    );
}

#[test]
fn keys_and_window_changes_act_inside_the_container_not_on_minibox() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let mut term = Terminal::new(24, 80);
    let before = term.mode();
    let mut child = term.spawn(&run_args(&r, &["-it"], &["tty-trap", "4"]));
    term.wait_for("ready");
    // The caller's terminal is raw while the container runs: keys are bytes for it.
    let raw = term.mode();
    assert!(
        !raw.local_flags.contains(LocalFlags::ICANON)
            && !raw.local_flags.contains(LocalFlags::ISIG),
        "the caller's terminal is not raw during the run"
    );
    // The kernel signals minibox (the foreground) with SIGWINCH; the container's terminal
    // follows, and its process gets its own SIGWINCH.
    // SAFETY: TIOCSWINSZ reads the live winsize.
    let ws = size(50, 150);
    assert_eq!(
        unsafe { libc::ioctl(term.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
        0
    );
    term.wait_for("got WINCH 50x150");
    // Ctrl-C, Ctrl-Z, Ctrl-\: the container's terminal turns them into its signals.
    term.type_bytes(b"\x03");
    term.wait_for("got INT");
    term.type_bytes(b"\x1a");
    term.wait_for("got TSTP");
    assert_ne!(state_of(child.id()), 'T', "Ctrl-Z stopped minibox");
    term.type_bytes(b"\x1c");
    term.wait_for("got QUIT");
    assert_eq!(wait_reading(&mut term, &mut child), Some(0));
    assert_eq!(
        term.mode(),
        before,
        "the caller's terminal mode was not restored"
    );
}

#[test]
fn ctrl_c_interrupts_a_program_under_init_and_the_mode_comes_back_on_every_path() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // Under --init, CMD is not PID 1: Ctrl-C ends a program that does not handle it.
    let mut term = Terminal::new(24, 80);
    let before = term.mode();
    let mut child = term.spawn(&run_args(&r, &["-it", "--init"], &["sleep", "30"]));
    let pid = container_pid(child.id());
    // The init's child runs once the init does.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .is_ok_and(|c| !c.trim().is_empty())
    {
        assert!(Instant::now() < deadline, "the init started no CMD");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    term.type_bytes(b"\x03");
    assert_eq!(wait_reading(&mut term, &mut child), Some(130));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(term.mode(), before);
    // An error: CMD not found, with and without the init.
    let (code, shown) = term.run(&["run", "-it", "--init", &r.arg(), "/nope"]);
    assert_eq!(code, Some(127), "{shown}");
    let (code, shown) = term.run(&["run", "-it", &r.arg(), "/nope"]);
    assert_eq!(code, Some(127), "{shown}");
    assert_eq!(term.mode(), before, "not restored after an error");
    // A signal to minibox: passed on, the container ends, the mode comes back.
    let mut child = term.spawn(&run_args(&r, &["-it", "--init"], &["sleep", "30"]));
    let _ = container_pid(child.id());
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(wait_reading(&mut term, &mut child), Some(143));
    assert_eq!(term.mode(), before, "not restored after a signal");
}

#[test]
fn it_without_a_terminal_is_refused_as_docker_does() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let name = format!("no-tty-{}", std::process::id());
    let out = run_payload(&r, &["-it", "--name", &name], &["tty-info"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "minibox: the input device is not a TTY\n");
    // Nothing was made.
    let ps = run_minibox(&["ps", "-a"]);
    assert!(!stdout(&ps).contains(&name), "{}", stdout(&ps));
    // -t alone needs no terminal on stdin: the output still goes through the container's pty.
    let out = run_payload(&r, &["-t"], &["tty-info"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("isatty=1,1,1\r\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_callers_terminal_is_never_within_the_containers_reach() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    // Root with CAP_SYS_ADMIN inside: TIOCSTI works on any terminal it holds.
    let attack = ["-u", "0", "--cap-add", "SYS_ADMIN"];
    // Without -t: no terminal at all (pipes; no controlling terminal).
    let mut term = Terminal::new(24, 80);
    let (code, shown) = term.run(&run_args(&r, &attack, &["tiocsti", "echo pwned\n"]));
    assert_eq!(code, Some(0), "{shown}");
    for want in ["fd0=ENOTTY", "fd1=ENOTTY", "fd2=ENOTTY", "devtty=ENXIO"] {
        assert!(shown.contains(want), "{want} missing in {shown:?}");
    }
    assert!(
        !term.has_pending_input(300),
        "text was typed into the caller's terminal"
    );
    // With -t: only the container's own terminal, whatever it types there.
    let flags = [&attack[..], &["-t"]].concat();
    let mut term = Terminal::new(24, 80);
    let (code, shown) = term.run(&run_args(&r, &flags, &["tiocsti", "echo pwned\n"]));
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("devtty="), "{shown}");
    assert!(
        !term.has_pending_input(300),
        "text was typed into the caller's terminal"
    );
}

#[test]
fn a_detached_terminal_writes_to_the_log() {
    if !need_root() {
        return;
    }
    let r = Rootfs::new();
    let out = run_payload(&r, &["-d", "-t"], &["tty-info"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = loop {
        let logs = stdout(&run_minibox(&["logs", &id]));
        if logs.contains("stdin=") || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    run_minibox(&["rm", "-f", &id]);
    assert!(logs.contains("isatty=1,1,1\r\n"), "{logs:?}");
    assert!(logs.contains("session_leader=1"), "{logs:?}");
}
