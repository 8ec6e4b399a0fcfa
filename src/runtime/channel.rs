//! The sync channel between minibox (the parent) and the container's init (the child).
//!
//! Two pipes. "go" (parent → child): the child waits on it until the parent has placed it in
//! its cgroup; the parent then keeps it open for as long as it lives, so the child can tell
//! whether minibox is still there. "report" (child → parent, close-on-exec): one line per
//! message, closed by the kernel when `execve` succeeds:
//! - `S NAME TEXT`: a setup step done, with what the kernel says of it (`--explain` only);
//! - `STATUS MESSAGE`: setup or exec failed, and minibox should exit with STATUS.

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
        (&self.go)
            .write_all(b"g")
            .context("signalling the container to start")
            .map_err(|e| self.child_failure_or(e))
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
}

impl ChildEnd {
    /// Blocks until the parent says go; fails if the parent died first.
    pub fn wait_for_go(&self) -> Result<()> {
        let mut byte = [0u8; 1];
        match (&self.go).read(&mut byte) {
            Ok(1) => Ok(()),
            Ok(_) => bail!("minibox exited before the container started"),
            Err(e) => Err(e).context("waiting for minibox to start the container"),
        }
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
        report_failure(&self.report, code, message);
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
pub fn read_report(from: &File, mut on_step: impl FnMut(&str, &str)) -> Result<()> {
    let mut started = false;
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
        parent.send_go().unwrap();
        child.wait_for_go().unwrap();
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
