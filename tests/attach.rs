//! `run -d -it` then `minibox attach`, driven from real pseudo-terminals as a person would:
//! what is typed reaches the container and its answer comes back, Ctrl-P Ctrl-Q leaves it
//! running, a second attach works, the container's end ends the attach with its status.
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

/// The test's terminal: `minibox attach` runs on its slave; the test types into its master.
struct Terminal {
    master: File,
    slave: OwnedFd,
    seen: Vec<u8>,
}

impl Terminal {
    fn new(rows: u16, cols: u16) -> Terminal {
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).expect("openpty");
        Terminal {
            master: File::from(pty.master),
            slave: pty.slave,
            seen: Vec::new(),
        }
    }

    /// `minibox ARGS` on this terminal, in a session of its own with it as controlling terminal.
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

    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Reads what the terminal shows until `needle` appears (20 s at most).
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.shown().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared; the terminal shows {:?}",
                self.shown()
            );
            self.read_some(100);
        }
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

    /// Waits for `child` (20 s at most), reading the terminal meanwhile.
    fn wait(&mut self, child: &mut Child) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.read_some(50);
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("minibox attach did not end; it shows {:?}", self.shown());
            }
            self.read_some(20);
        }
    }

    /// Waits until `attach` has made the terminal raw: only then do typed keys go past it.
    fn wait_raw(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.is_canonical() {
            assert!(Instant::now() < deadline, "the terminal never went raw");
            self.read_some(10);
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the live pointer.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ");
    }

    fn is_canonical(&self) -> bool {
        tcgetattr(&self.slave)
            .unwrap()
            .local_flags
            .contains(LocalFlags::ICANON)
    }
}

/// `minibox run -d FLAGS ROOTFS /payload ARGS`: the container's id.
fn run_detached(rootfs: &Rootfs, flags: &[&str], payload: &[&str]) -> String {
    let root = rootfs.arg();
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(flags);
    args.extend([root.as_str(), "/payload"]);
    args.extend_from_slice(payload);
    let out = run_minibox(&args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn status_of(id: &str) -> String {
    let out = run_minibox(&["ps", "-a"]);
    stdout(&out)
        .lines()
        .find(|l| l.starts_with(&id[..12]))
        .unwrap_or_else(|| panic!("{id} not in ps -a: {}", stdout(&out)))
        .to_string()
}

#[test]
fn attach_types_into_the_container_detaches_and_attaches_again() {
    if !need_root() {
        return;
    }
    let rootfs = Rootfs::new();
    let id = run_detached(&rootfs, &["-i", "-t"], &["echo-lines"]);

    let mut term = Terminal::new(30, 100);
    let mut attach = term.spawn(&["attach", &id]);
    term.wait_raw();
    // The container's terminal takes the attached one's size.
    term.type_bytes(b"size\r");
    term.wait_for("size: 30x100");
    term.type_bytes(b"hello\r");
    term.wait_for("got: hello");
    assert!(
        !term.is_canonical(),
        "attached: the caller's terminal is raw"
    );

    // Only one attach at a time: a second one is refused in one line.
    let busy = run_minibox(&["attach", &id]);
    assert_eq!(busy.status.code(), Some(1), "{}", stderr(&busy));
    assert_eq!(stderr(&busy).lines().count(), 1, "{}", stderr(&busy));
    assert!(stderr(&busy).contains("already has"), "{}", stderr(&busy));

    // A lone Ctrl-P goes to the container (with what follows); Ctrl-P Ctrl-Q detaches.
    term.type_bytes(b"\x10x\r");
    term.wait_for("got: \x10x");
    term.type_bytes(b"\x10\x11");
    assert_eq!(term.wait(&mut attach), Some(0), "{}", term.shown());
    assert!(
        term.is_canonical(),
        "detached: the caller's terminal is back"
    );
    assert!(status_of(&id).contains("Up"), "{}", status_of(&id));

    // Again, from another terminal; the container's end ends the attach, with its status.
    let mut term = Terminal::new(24, 80);
    let mut attach = term.spawn(&["attach", &id]);
    term.wait_raw();
    term.type_bytes(b"again\r");
    term.wait_for("got: again");
    term.type_bytes(b"exit 7\r");
    assert_eq!(term.wait(&mut attach), Some(7), "{}", term.shown());
    assert!(term.is_canonical(), "the caller's terminal is back");

    // The log holds what the terminal printed, attached or not.
    let logs = run_minibox(&["logs", &id]);
    for line in ["got: hello", "got: again"] {
        assert!(stdout(&logs).contains(line), "{line}: {}", stdout(&logs));
    }
    let exited = run_minibox(&["attach", &id]);
    assert_eq!(exited.status.code(), Some(1));
    assert!(
        stderr(&exited).contains("not running"),
        "{}",
        stderr(&exited)
    );
    run_minibox(&["rm", "-f", &id]);
}

#[test]
fn without_interactive_attach_shows_output_and_follows_the_window() {
    if !need_root() {
        return;
    }
    let rootfs = Rootfs::new();
    let id = run_detached(&rootfs, &["-t"], &["tty-trap", "9"]);
    // Its handlers are in place once it says so (in the log): a SIGWINCH is not lost.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stdout(&run_minibox(&["logs", &id])).contains("ready") {
        assert!(Instant::now() < deadline, "tty-trap never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut term = Terminal::new(24, 80);
    let mut attach = term.spawn(&["attach", &id]);
    // Attaching gives the container's terminal our size (its program hears SIGWINCH), and so
    // does each later change of it.
    term.wait_for("got WINCH 24x80");
    term.wait_raw();
    term.resize(30, 100);
    term.wait_for("got WINCH 30x100");
    // Typed keys never reach the container's terminal: neither echoed nor answered.
    term.type_bytes(b"hello\r");
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        term.read_some(50);
    }
    assert!(!term.shown().contains("hello"), "{:?}", term.shown());
    term.type_bytes(b"\x10\x11");
    assert_eq!(term.wait(&mut attach), Some(0), "{}", term.shown());
    assert!(status_of(&id).contains("Up"), "{}", status_of(&id));
    let logs = run_minibox(&["logs", &id]);
    assert!(!stdout(&logs).contains("hello"), "{}", stdout(&logs));
    run_minibox(&["rm", "-f", &id]);
}

#[test]
fn attach_needs_a_running_container_with_a_terminal() {
    if !need_root() {
        return;
    }
    let rootfs = Rootfs::new();
    // (A running one without a terminal is followed: tests/week_lifecycle.rs.) An exited one
    // is refused in one line.
    let id = run_detached(&rootfs, &[], &["exit", "0"]);
    let start = std::time::Instant::now();
    while !status_of(&id).contains("Exited") {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{}",
            status_of(&id)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = run_minibox(&["attach", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
    run_minibox(&["rm", "-f", &id]);

    let out = run_minibox(&["attach", "no-such-container"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));

    let out = run_minibox(&["attach", "--detach-keys", "ctrl-1", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--detach-keys"), "{}", stderr(&out));
}
