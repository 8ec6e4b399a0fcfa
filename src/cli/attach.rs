//! `minibox attach [--detach-keys KEYS] CONTAINER`: the caller's terminal becomes the detached
//! container's (`run -d -t`), through the socket its supervisor listens on (see
//! `runtime::attach` for the messages). The terminal is raw while attached, so every key acts
//! in the container; the detach keys (docker's Ctrl-P Ctrl-Q) end the attach and leave the
//! container running; the container's end ends it too, with the container's status.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{self, MsgFlags};

use crate::runtime::attach::{self, BUSY, EXITED, KEYS, MESSAGE_MAX, OUTPUT, SIZE};
use crate::runtime::terminal::{self, RawMode};
use crate::store::state::Store;

/// docker's default.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// A detached container without a terminal (`run -d`), as docker attaches to one: what it
/// writes from now on, until it ends (its status is ours); Ctrl-C, TERM and HUP are passed on
/// to it (docker's `--sig-proxy`), so it decides whether to end.
fn attach_output(store: &Store, c: &crate::store::state::ContainerState) -> Result<i32> {
    let mut mask = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        mask.add(sig);
    }
    // Blocked before the thread is made, so only its sigwait takes them.
    mask.thread_block().context("blocking signals")?;
    if let Some(pid) = c.pid {
        std::thread::spawn(move || {
            while let Ok(sig) = mask.wait() {
                let _ = pid.signal(sig);
            }
        });
    }
    let follow = crate::cli::logs::LogsArgs {
        follow: true,
        tail: "0".into(),
        timestamps: false,
        since: None,
        until: None,
        container: c.id.clone(),
    };
    crate::cli::logs::logs(store, &follow)?;
    let ended = store.settled(store.load(&c.id)?).observed();
    Ok(ended.exit_code.unwrap_or(0))
}

/// `minibox attach`; returns the status minibox exits with: 0 once detached, else the
/// container's own.
pub fn attach(store: &Store, detach_keys: &str, key: &str) -> Result<i32> {
    let mut detach = DetachKeys::parse(detach_keys)?;
    let c = store.settled(store.resolve(key)?);
    if !c.is_running() {
        bail!(
            "container {} is not running (it has exited): attach needs a running container",
            c.name
        );
    }
    let path = store.dir(&c.id).join(attach::SOCKET);
    if !path.exists() {
        if c.detached {
            return attach_output(store, &c);
        }
        bail!(
            "container {} ran in the foreground: its output goes to its own terminal",
            c.name
        );
    }
    let sock = attach::connect(&store.dir(&c.id))
        .with_context(|| format!("container {} (has it just exited?)", c.name))?;
    // Every signal that would end us arrives on the signalfd instead, so the terminal is put
    // back whatever happens.
    let mut mask = SigSet::empty();
    for sig in [
        Signal::SIGWINCH,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
    ] {
        mask.add(sig);
    }
    mask.thread_block().context("blocking signals")?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("signalfd")?;
    send_size(&sock)?;
    let stdin = std::io::stdin();
    let _raw = match terminal::is_terminal(stdin.as_fd()) {
        true => Some(RawMode::enter(stdin.as_fd())?),
        false => None,
    };
    let result = relay(&sock, &signals, &mut detach, &c.name);
    drop(_raw);
    let _ = mask.thread_unblock();
    match result? {
        Ended::Detached => Ok(0),
        Ended::Exited(code) => Ok(code),
        Ended::Signal(sig) => Ok(128 + sig),
        Ended::Busy => bail!(
            "container {} already has a minibox attach on its terminal: detach that one first \
             (its detach keys, Ctrl-P Ctrl-Q by default)",
            c.name
        ),
        // The supervisor went without a word: what the record says now.
        Ended::Lost => match store.load(&c.id).ok().and_then(|s| s.observed().exit_code) {
            Some(code) => Ok(code),
            None => bail!(
                "container {}: its supervisor closed the terminal's connection",
                c.name
            ),
        },
    }
}

enum Ended {
    Detached,
    Exited(i32),
    Signal(i32),
    Busy,
    Lost,
}

/// The caller's window size, for the container's terminal.
fn send_size(sock: &OwnedFd) -> Result<()> {
    let Some(ws) = terminal::caller_window_size() else {
        return Ok(());
    };
    let mut msg = vec![SIZE];
    msg.extend_from_slice(&ws.ws_row.to_le_bytes());
    msg.extend_from_slice(&ws.ws_col.to_le_bytes());
    attach::send(sock.as_fd(), &msg).context("sending the window size")?;
    Ok(())
}

/// Keys in, output out, until detached or the container ends.
fn relay(sock: &OwnedFd, signals: &SignalFd, detach: &mut DetachKeys, name: &str) -> Result<Ended> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut stdin_open = true;
    let mut buf = vec![0u8; MESSAGE_MAX];
    loop {
        let mut fds = vec![
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (sig_ready, sock_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        drop(fds);
        if sig_ready {
            while let Some(info) = signals.read_signal().context("reading signalfd")? {
                if info.ssi_signo as i32 == Signal::SIGWINCH as i32 {
                    send_size(sock)?;
                } else {
                    return Ok(Ended::Signal(info.ssi_signo as i32));
                }
            }
        }
        if sock_ready {
            let n = match socket::recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(_) => 0,
            };
            match (n, buf.first()) {
                (0, _) => return Ok(Ended::Lost),
                (_, Some(&OUTPUT)) => {
                    stdout
                        .write_all(&buf[1..n])
                        .and_then(|()| stdout.flush())
                        .context("writing to stdout")?;
                }
                (5, Some(&EXITED)) => {
                    let code = i32::from_le_bytes(buf[1..5].try_into().unwrap_or_default());
                    return Ok(Ended::Exited(code));
                }
                (_, Some(&BUSY)) => return Ok(Ended::Busy),
                _ => {}
            }
        }
        if stdin_ready {
            let mut keys = vec![0u8; MESSAGE_MAX - 1];
            let n = match nix::unistd::read(&stdin, &mut keys) {
                Ok(n) => n,
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(_) => 0,
            };
            if n == 0 {
                // Nothing more to type; the output still comes.
                stdin_open = false;
                continue;
            }
            let mut msg = vec![KEYS];
            let detached = detach.feed(&keys[..n], &mut msg);
            if msg.len() > 1 {
                attach::send(sock.as_fd(), &msg)
                    .with_context(|| format!("container {name}: sending keys"))?;
            }
            if detached {
                return Ok(Ended::Detached);
            }
        }
    }
}

/// The key sequence that ends an attach, and how much of it was just typed (held back until
/// it is known whether the sequence is complete).
#[derive(Debug)]
struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachKeys {
    /// docker's form: keys separated by commas, each a single character or `ctrl-X` (X a
    /// letter or one of `@ [ \ ] ^ _`).
    fn parse(spec: &str) -> Result<DetachKeys> {
        let mut keys = Vec::new();
        for key in spec.split(',') {
            let lower = key.to_ascii_lowercase();
            let byte = match lower.strip_prefix("ctrl-") {
                Some(x) if x.len() == 1 => match x.as_bytes()[0] {
                    c @ b'a'..=b'z' => c - b'a' + 1,
                    c @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_') => c - b'@',
                    _ => 0xff,
                },
                None if key.len() == 1 => key.as_bytes()[0],
                _ => 0xff,
            };
            if byte == 0xff {
                bail!(
                    "--detach-keys {spec:?}: {key:?} is not a key; give keys separated by \
                     commas, each one character or ctrl-X (X a letter or one of @[\\]^_), e.g. \
                     ctrl-p,ctrl-q"
                );
            }
            keys.push(byte);
        }
        Ok(DetachKeys { keys, matched: 0 })
    }

    /// Appends to `out` what of `input` goes to the container; true once the whole sequence
    /// was typed (what follows it is dropped).
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            loop {
                if b == self.keys[self.matched] {
                    self.matched += 1;
                    if self.matched == self.keys.len() {
                        self.matched = 0;
                        return true;
                    }
                    break;
                }
                if self.matched == 0 {
                    out.push(b);
                    break;
                }
                // Not the sequence after all: what was held back goes, and `b` is looked at
                // anew.
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(keys: &mut DetachKeys, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let detached = keys.feed(input, &mut out);
        (out, detached)
    }

    #[test]
    fn docker_keys_parse() {
        assert_eq!(
            DetachKeys::parse("ctrl-p,ctrl-q").unwrap().keys,
            [0x10, 0x11]
        );
        assert_eq!(
            DetachKeys::parse("ctrl-@,a,ctrl-\\").unwrap().keys,
            [0, b'a', 0x1c]
        );
        for bad in ["", "ctrl-", "ctrl-1", "ab", "ctrl-p,"] {
            assert!(DetachKeys::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_sequence_detaches_and_is_not_forwarded() {
        let mut k = DetachKeys::parse(DEFAULT_DETACH_KEYS).unwrap();
        assert_eq!(feed(&mut k, b"ls\r\x10\x11more"), (b"ls\r".to_vec(), true));
        // Split across reads.
        let mut k = DetachKeys::parse(DEFAULT_DETACH_KEYS).unwrap();
        assert_eq!(feed(&mut k, b"a\x10"), (b"a".to_vec(), false));
        assert_eq!(feed(&mut k, b"\x11"), (Vec::new(), true));
    }

    #[test]
    fn a_lone_ctrl_p_is_forwarded_with_what_follows() {
        let mut k = DetachKeys::parse(DEFAULT_DETACH_KEYS).unwrap();
        assert_eq!(feed(&mut k, b"\x10x"), (b"\x10x".to_vec(), false));
        assert_eq!(feed(&mut k, b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }
}
