//! The sync channel between minibox (the parent) and the container's init (the child).
//!
//! Two pipes. "go" (parent → child): the child waits on it until the parent has placed it in
//! its cgroup; the parent then keeps it open for as long as it lives, so the child can tell
//! whether minibox is still there. "report" (child → parent, close-on-exec): one line per
//! message, closed by the kernel when `execve` succeeds:
//! - `S NAME TEXT`: a setup step done, with what the kernel says of it (`--explain` only);
//! - `STATUS MESSAGE`: setup or exec failed, and minibox should exit with STATUS;
//! - `H`: the child waits for minibox to run the runtime's hooks (`createRuntime`, `prestart`)
//!   and send "go" again;
//! - `X`: setup done. A supervised child execs next; an OCI `create`'s child waits for `start`
//!   and, its creator gone, tells nobody anything more.
//!
//! The first "go" carries the container's state JSON (for the hooks run inside it).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::pipe2;

use crate::runtime::status::{StatusError, RUNTIME_FAILED};

/// The parent's ends.
pub struct ParentEnd {
    go: File,
    report: File,
}

/// The child's ends.
pub struct ChildEnd {
    go: File,
    report: File,
    /// Set once the child told an OCI `create` it is ready: its creator is gone after that,
    /// so failures go to the container's own stderr.
    creator_gone: std::cell::Cell<bool>,
}

/// Where the parent's reading of the report stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The child waits for the runtime's hooks.
    Hooks,
    /// The setup is done.
    Ready,
}

/// Both pipes, close-on-exec: neither end may leak into CMD.
pub fn pair() -> Result<(ParentEnd, ChildEnd)> {
    let (go_r, go_w) = pipe2(OFlag::O_CLOEXEC).context("creating the sync pipe")?;
    let (rep_r, rep_w) = pipe2(OFlag::O_CLOEXEC).context("creating the report pipe")?;
    Ok((
        ParentEnd {
            go: go_w.into(),
            report: rep_r.into(),
        },
        ChildEnd {
            go: go_r.into(),
            report: rep_w.into(),
            creator_gone: std::cell::Cell::new(false),
        },
    ))
}

impl ParentEnd {
    /// In the child, right after clone: close its copies of the parent's ends, or the child
    /// would never see the parent's end of "go" close.
    pub fn close_in_child(&self) {
        // The child ends in execve or _exit and never drops these Files a second time.
        let _ = nix::unistd::close(self.go.as_raw_fd());
        let _ = nix::unistd::close(self.report.as_raw_fd());
    }

    /// Lets the child start its setup. A child that failed before it could read "go" (its
    /// keyring could not be made, say) has closed its end: the write then fails with EPIPE,
    /// and what counts is the child's own report of why, which is returned instead.
    pub fn send_go(&self) -> Result<()> {
        self.send_go_with("")
    }

    /// The first "go", with the container's state JSON (its hooks read it on stdin).
    pub fn send_go_with(&self, state: &str) -> Result<()> {
        let mut message = vec![b'g'];
        message.extend_from_slice(&(state.len() as u32).to_le_bytes());
        message.extend_from_slice(state.as_bytes());
        (&self.go)
            .write_all(&message)
            .context("signalling the container to start")
            .map_err(|e| self.child_failure_or(e))
    }

    /// Lets a child waiting for the runtime's hooks go on.
    pub fn send_continue(&self) -> Result<()> {
        (&self.go)
            .write_all(b"g")
            .context("signalling the container to go on")
            .map_err(|e| self.child_failure_or(e))
    }

    /// Reads the report (one byte at a time: the child's later lines stay in the pipe for the
    /// next call) up to the child's next stop: the runtime's hooks, or its setup done.
    pub fn next_stop(&self, mut on_step: impl FnMut(&str, &str)) -> Result<Stop> {
        loop {
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            loop {
                match (&self.report).read(&mut byte) {
                    Ok(0) => bail!(
                        "the container's first process died during its setup (killed, or out \
                         of memory?)"
                    ),
                    Ok(_) if byte[0] == b'\n' => break,
                    Ok(_) => line.push(byte[0]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e).context("reading the container's start report"),
                }
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            match line.as_str() {
                "X" => return Ok(Stop::Ready),
                "H" => return Ok(Stop::Hooks),
                _ => {}
            }
            if let Some(step) = line.strip_prefix("S ") {
                let (name, text) = step.split_once(' ').unwrap_or((step, ""));
                on_step(name, &text.replace('\u{1f}', "\n"));
                continue;
            }
            let (code, message) = line.split_once(' ').unwrap_or(("", &line));
            bail!(StatusError {
                code: code.parse().unwrap_or(RUNTIME_FAILED),
                message: message.to_string()
            })
        }
    }

    /// The failure the child reported, if it reported one, else `ours`. Reads the report to
    /// its end: only for a child that is gone or going (exited, or killed by the caller).
    pub fn child_failure_or(&self, ours: anyhow::Error) -> anyhow::Error {
        match read_report(&self.report, |_, _| {}) {
            Err(theirs) if theirs.is::<StatusError>() => theirs,
            _ => ours,
        }
    }

    /// Waits until the child has exec'd CMD (`Ok`) or failed (`Err` carrying its status),
    /// handing each step it reports to `on_step(name, text)` as it arrives.
    pub fn wait_for_exec(&self, on_step: impl FnMut(&str, &str)) -> Result<()> {
        read_report(&self.report, on_step)
    }

    /// `wait_for_exec`, once `next_stop` has read the started line.
    pub fn wait_for_exec_after_ready(&self, on_step: impl FnMut(&str, &str)) -> Result<()> {
        read_report_from(&self.report, on_step, true)
    }
}

impl ChildEnd {
    /// Blocks until the parent says go; fails if the parent died first.
    pub fn wait_for_go(&self) -> Result<String> {
        let mut header = [0u8; 5];
        (&self.go)
            .read_exact(&mut header)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    anyhow::anyhow!("minibox exited before the container started")
                }
                _ => anyhow::Error::new(e).context("waiting for minibox to start the container"),
            })?;
        let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut state = vec![0u8; len];
        (&self.go)
            .read_exact(&mut state)
            .context("reading the container's state from minibox")?;
        Ok(String::from_utf8_lossy(&state).into_owned())
    }

    /// Asks minibox to run the runtime's hooks now, and waits until it has.
    pub fn wait_for_runtime_hooks(&self) -> Result<()> {
        (&self.report)
            .write_all(b"H\n")
            .context("asking minibox for the runtime's hooks")?;
        let mut byte = [0u8; 1];
        match (&self.go).read(&mut byte) {
            Ok(1) => Ok(()),
            Ok(_) => bail!("minibox exited while running the createRuntime hooks"),
            Err(e) => Err(e).context("waiting for the createRuntime hooks"),
        }
    }

    /// Tells an OCI `create` the container is set up and waits for `start`; from now on nobody
    /// reads the report.
    pub fn report_ready(&self) {
        report_started(&self.report);
        self.creator_gone.set(true);
    }

    /// Fails if the parent has exited (its end of "go" is closed).
    pub fn check_parent_alive(&self) -> Result<()> {
        let mut fds = [PollFd::new(self.go.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).context("polling the sync pipe")?;
        if fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLHUP))
        {
            bail!("minibox exited during the container's setup");
        }
        Ok(())
    }

    /// Tells the parent the setup is done and `execve` comes next. If the pipe then closes with
    /// no failure line, CMD runs; if it closes without this, the child died during setup.
    pub fn report_exec(&self) {
        report_started(&self.report);
    }

    /// Tells the parent a step is done and what the kernel says of it (`--explain`).
    pub fn report_step(&self, name: &str, text: &str) {
        let line = format!("S {name} {}\n", text.replace('\n', "\u{1f}"));
        let _ = (&self.report).write_all(line.as_bytes());
    }

    /// Tells the parent why the container could not start, and the status minibox should exit
    /// with. Best effort: if the parent is gone there is no one left to tell.
    pub fn report_failure(&self, code: i32, message: &str) {
        if self.creator_gone.get() {
            say!("minibox: {message}");
        } else {
            report_failure(&self.report, code, message);
        }
    }
}

/// Sends `STATUS MESSAGE` down a report pipe (best effort: the reader may be gone).
pub fn report_failure(to: &File, code: i32, message: &str) {
    let line = format!("{code} {}\n", message.replace('\n', " "));
    let _ = (&*to).write_all(line.as_bytes());
}

/// Sends the line that says the start went through (the failure line may still follow).
pub fn report_started(to: &File) {
    let _ = (&*to).write_all(b"X\n");
}

/// Reads a report pipe to its end: steps go to `on_step`; success is the started line (`X`)
/// with no failure line after it.
pub fn read_report(from: &File, on_step: impl FnMut(&str, &str)) -> Result<()> {
    read_report_from(from, on_step, false)
}

fn read_report_from(
    from: &File,
    mut on_step: impl FnMut(&str, &str),
    mut started: bool,
) -> Result<()> {
    for line in BufReader::new(from).lines() {
        let line = line.context("reading the container's start report")?;
        if line == "X" {
            started = true;
            continue;
        }
        if let Some(step) = line.strip_prefix("S ") {
            let (name, text) = step.split_once(' ').unwrap_or((step, ""));
            on_step(name, &text.replace('\u{1f}', "\n"));
            continue;
        }
        let (code, message) = line.split_once(' ').unwrap_or(("", &line));
        let code = code.parse().unwrap_or(RUNTIME_FAILED);
        bail!(StatusError {
            code,
            message: message.to_string()
        })
    }
    if !started {
        bail!("the container's first process died during its setup (killed, or out of memory?)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_fails_before_go_is_heard_not_the_broken_pipe() {
        let (parent, child) = pair().unwrap();
        // The child's setup fails before it waits for "go": it reports and is gone.
        child.report_failure(125, "keyctl(JOIN_SESSION_KEYRING): quota full");
        drop(child);
        let err = parent.send_go().unwrap_err();
        let text = format!("{err:#}");
        assert_eq!(text, "keyctl(JOIN_SESSION_KEYRING): quota full");
        assert!(!text.contains("Broken pipe"), "{text}");
        assert_eq!(crate::runtime::status::code_of(&err), 125);
    }

    #[test]
    fn a_child_that_dies_silently_leaves_the_parents_own_error() {
        let (parent, child) = pair().unwrap();
        drop(child);
        let text = format!("{:#}", parent.send_go().unwrap_err());
        assert!(text.contains("signalling the container to start"), "{text}");
    }

    #[test]
    fn steps_and_the_started_line_make_a_start() {
        let (parent, child) = pair().unwrap();
        parent.send_go_with("{}").unwrap();
        assert_eq!(child.wait_for_go().unwrap(), "{}");
        child.report_step("mounts", "a\nb");
        child.report_exec();
        drop(child);
        let mut seen = vec![];
        parent
            .wait_for_exec(|n, t| seen.push(format!("{n}={t}")))
            .unwrap();
        assert_eq!(seen, ["mounts=a\nb"]);
    }
}
