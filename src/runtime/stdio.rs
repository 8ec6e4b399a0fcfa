//! The container's stdin, stdout and stderr: three pipes minibox makes, never the caller's own
//! files. A container handed the caller's descriptors could reopen a read-only file given as
//! its stdin through `/proc/self/fd/0` and rewrite it, or chmod the file behind its stdout (as
//! root inside it may). With pipes, all it holds is a pipe; the supervisor copies the bytes
//! (`Relay`, driven by `supervisor::watch`), as docker does. With `-t` all three are instead
//! one terminal of the container's own (`kernel::pty`), whose master the supervisor relays.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::PollFlags;
use nix::unistd::{pipe2, Gid, Uid};

use crate::kernel::pty;
use crate::runtime::attach::{self, AttachPoint};
use crate::runtime::log::LogFile;
use crate::runtime::terminal::{self, RawMode};

/// What the container reads on its stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// minibox's own stdin, copied into the pipe until it ends.
    Caller,
    /// Nothing: end of file at the first read.
    Empty,
}

/// Where the container's stdout and stderr go.
pub enum Output {
    /// minibox's own stdout and stderr, each to each.
    Caller,
    /// One pipe for both, into the container's log (a detached container).
    Log(LogFile),
    /// `run -d -t`: the terminal's output into the log, and to whoever `minibox attach`es.
    LogAndAttach(LogFile, AttachPoint),
}

/// The container's side of its stdio, for init to make its 0, 1 and 2.
pub enum ContainerStdio {
    /// The container's ends of its pipes. Close-on-exec: init's `dup2` makes the copies CMD
    /// keeps.
    Pipes {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// `-t`: the socket over which init sends the master of the terminal it makes (from the
    /// container's own devpts, so only once its `/dev` is mounted).
    Terminal {
        socket: OwnedFd,
        /// The caller's window size, given to the terminal before CMD runs.
        size: Option<libc::winsize>,
    },
}

impl ContainerStdio {
    /// For a container in a user namespace of its own: the parent hands the pipes to the host
    /// ids the container's user maps to (the container's root holds no right over an inode of
    /// the host's root), so `install` finds them its own.
    pub fn give_to(&self, uid: u32, gid: u32) -> Result<()> {
        let ContainerStdio::Pipes {
            stdin,
            stdout,
            stderr,
        } = self
        else {
            // A terminal is made inside, from the container's own devpts.
            return Ok(());
        };
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        for pipe in [stdin, stdout, stderr] {
            nix::unistd::fchown(pipe, uid, gid).context("chown of a stdio pipe")?;
        }
        Ok(())
    }

    /// In the container, before anything of it runs: its 0, 1 and 2 become the pipes, owned by
    /// the container's user (as runc does), so that a program reopening `/dev/stdout` (a web
    /// server's log, say) may. A terminal comes later (`install_terminal`).
    pub fn install(&self, uid: u32, gid: u32) -> Result<()> {
        let ContainerStdio::Pipes {
            stdin,
            stdout,
            stderr,
        } = self
        else {
            return Ok(());
        };
        self.give_to(uid, gid)?;
        nix::unistd::dup2_stdin(stdin).context("dup2 of the stdin pipe onto 0")?;
        nix::unistd::dup2_stdout(stdout).context("dup2 of the stdout pipe onto 1")?;
        nix::unistd::dup2_stderr(stderr).context("dup2 of the stderr pipe onto 2")?;
        Ok(())
    }

    /// `-t`, in the container once its `/dev/pts` is its own: a new pty's slave becomes our 0,
    /// 1, 2 and controlling terminal; its master goes to minibox. Without `-t`, nothing.
    pub fn install_terminal(&self, uid: u32) -> Result<()> {
        let ContainerStdio::Terminal { socket, size } = self else {
            return Ok(());
        };
        let (master, slave) = pty::open_pty()?;
        if let Some(size) = size {
            pty::set_window_size(&master, size)?;
        }
        pty::become_terminal_of_this_session(&slave, uid)?;
        pty::send_fd(socket, &master)
    }
}

/// Where a container's stdio comes from and goes to: `-i` is the `input` switch, `-t` the
/// `terminal` one (one terminal for all three streams instead of three pipes).
pub struct Stdio {
    pub input: Input,
    pub output: Output,
    pub terminal: bool,
}

/// Makes the pipes: the container's ends, and the relay that serves the other ends. The caller
/// must drop `ContainerStdio` once the container holds its copies (after `clone`), so that only
/// the container holds the write ends and the relay sees end of file when it is gone.
pub fn pipes(stdio: Stdio) -> Result<(Relay, ContainerStdio)> {
    if stdio.terminal {
        let (ours, theirs) = pty::fd_channel()?;
        let relay = Relay {
            streams: Vec::new(),
            terminal: Some(PendingTerminal {
                socket: ours,
                input: stdio.input,
                output: stdio.output,
            }),
            master: None,
            attach: None,
            _raw: None,
        };
        let size = terminal::caller_window_size();
        return Ok((
            relay,
            ContainerStdio::Terminal {
                socket: theirs,
                size,
            },
        ));
    }
    let Stdio { input, output, .. } = stdio;
    let mut streams = Vec::new();
    // The supervisor's ends never block it (one poll loop serves signals and every stream);
    // the container's are blocking, as a program expects of its stdio.
    let (stdin_r, stdin_w) = pipe("stdin")?;
    set_nonblocking(&stdin_w)?;
    // Without input the write end closes now: the container reads end of file at once.
    let from = match input {
        Input::Caller => caller(std::io::stdin().as_fd()),
        Input::Empty => None,
    };
    if let Some(from) = from {
        streams.push(Stream::new(Role::Input, from, Sink::Fd(stdin_w)));
    }
    let (out_r, out_w) = pipe("stdout")?;
    set_nonblocking(&out_r)?;
    let err_w = match output {
        Output::Caller => {
            let (err_r, err_w) = pipe("stderr")?;
            set_nonblocking(&err_r)?;
            let (out, err) = (std::io::stdout(), std::io::stderr());
            let to = |fd| caller(fd).map_or(Sink::Gone, Sink::Caller);
            streams.push(Stream::new(Role::Output, out_r, to(out.as_fd())));
            streams.push(Stream::new(Role::Output, err_r, to(err.as_fd())));
            err_w
        }
        // Without a terminal there is nothing to attach to.
        Output::Log(log) | Output::LogAndAttach(log, _) => {
            streams.push(Stream::new(Role::Output, out_r, Sink::Log(log)));
            out_w.try_clone().context("duplicating the output pipe")?
        }
    };
    let stdio = ContainerStdio::Pipes {
        stdin: stdin_r,
        stdout: out_w,
        stderr: err_w,
    };
    let relay = Relay {
        streams,
        terminal: None,
        master: None,
        attach: None,
        _raw: None,
    };
    Ok((relay, stdio))
}

fn pipe(what: &str) -> Result<(OwnedFd, OwnedFd)> {
    pipe2(OFlag::O_CLOEXEC).with_context(|| format!("creating the container's {what} pipe"))
}

fn set_nonblocking(fd: &OwnedFd) -> Result<()> {
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .context("making a stdio pipe non-blocking")?;
    Ok(())
}

/// A close-on-exec copy of one of minibox's own descriptors; `None` when it is closed.
fn caller(fd: BorrowedFd<'_>) -> Option<OwnedFd> {
    fd.try_clone_to_owned().ok()
}

/// How much a stream holds between a read and its write.
const BUFFER: usize = 64 * 1024;
/// What a pipe takes whole once poll says it is writable (POSIX PIPE_BUF): the caller's
/// descriptors are written this much at a time, so a write never blocks the supervisor. They
/// are never made non-blocking: that flag would be shared with the caller's shell.
const CALLER_CHUNK: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// minibox's stdin → the container's.
    Input,
    /// The container's stdout or stderr → minibox's, or the log.
    Output,
}

enum Sink {
    /// One of minibox's own descriptors (shared with the caller, blocking).
    Caller(OwnedFd),
    /// The container's stdin pipe (ours, non-blocking).
    Fd(OwnedFd),
    /// The container's log: a file, written at once.
    Log(LogFile),
    /// Closed (`minibox run ... | head -1`): what comes is read and dropped, so the container
    /// neither blocks nor dies of SIGPIPE.
    Gone,
}

/// Bytes flowing one way, from `from` to `to`, through `pending`.
struct Stream {
    role: Role,
    /// `None` once it reached end of file (or we stopped reading it).
    from: Option<OwnedFd>,
    to: Sink,
    pending: Vec<u8>,
    /// `run -d -t` (the terminal's output): what was read, for an attached client too.
    copy: Option<Vec<u8>>,
}

impl Stream {
    fn new(role: Role, from: OwnedFd, to: Sink) -> Stream {
        Stream {
            role,
            from: Some(from),
            to,
            pending: Vec::new(),
            copy: None,
        }
    }

    /// Nothing more will flow.
    fn is_done(&self) -> bool {
        self.from.is_none() && self.pending.is_empty()
    }

    /// The descriptor this stream waits on, and for what: reading when nothing is pending,
    /// else writing to a descriptor that may be full.
    fn interest(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        if self.pending.is_empty() {
            return self.from.as_ref().map(|f| (f.as_fd(), PollFlags::POLLIN));
        }
        match &self.to {
            Sink::Caller(fd) | Sink::Fd(fd) => Some((fd.as_fd(), PollFlags::POLLOUT)),
            Sink::Log(_) | Sink::Gone => None,
        }
    }

    /// Moves what it can now that its descriptor is ready (or in error: the read or write then
    /// says which).
    fn step(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            self.read()?;
        } else {
            self.write();
        }
        self.finish_if_done();
        Ok(())
    }

    fn read(&mut self) -> Result<()> {
        let Some(from) = &self.from else {
            return Ok(());
        };
        let mut buf = vec![0u8; BUFFER];
        match nix::unistd::read(from, &mut buf) {
            Ok(0) => self.from = None,
            // A pty master reads EIO once every slave is closed: the container's end of output.
            Err(Errno::EIO) if self.role == Role::Output => self.from = None,
            Ok(n) => {
                buf.truncate(n);
                if let Some(copy) = &mut self.copy {
                    copy.extend_from_slice(&buf);
                }
                self.pending = buf;
                // A log or a closed sink takes the bytes at once.
                if matches!(self.to, Sink::Log(_) | Sink::Gone) {
                    self.write();
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            // minibox's stdin failing (EIO: minibox runs in the background of a shell and
            // may not read the terminal) ends the container's input, as end of file would.
            Err(_) if self.role == Role::Input => self.from = None,
            Err(e) => return Err(e).context("reading the container's output"),
        }
        Ok(())
    }

    fn write(&mut self) {
        let written = match &mut self.to {
            Sink::Gone => Ok(self.pending.len()),
            Sink::Log(log) => {
                // A full disk loses output, not the container: the pipe is still drained.
                if log.write(&self.pending).is_err() {
                    log.lost += self.pending.len() as u64;
                }
                Ok(self.pending.len())
            }
            Sink::Caller(fd) => {
                let n = self.pending.len().min(CALLER_CHUNK);
                nix::unistd::write(fd, &self.pending[..n])
            }
            Sink::Fd(fd) => nix::unistd::write(fd, &self.pending),
        };
        match written {
            Ok(n) => {
                self.pending.drain(..n);
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            // The reader is gone (EPIPE) or the descriptor failed.
            Err(_) => {
                self.to = Sink::Gone;
                self.pending.clear();
                // The container closed its stdin: minibox's stdin is not read for nothing.
                if self.role == Role::Input {
                    self.from = None;
                }
            }
        }
    }

    /// The container's stdin ends when minibox's has, and all of it was passed on.
    fn finish_if_done(&mut self) {
        if self.role == Role::Input && self.is_done() {
            self.to = Sink::Gone;
        }
    }
}

/// The supervisor's side of the container's stdio.
pub struct Relay {
    streams: Vec<Stream>,
    /// `-t`, until the container has sent its terminal's master.
    terminal: Option<PendingTerminal>,
    /// `-t`: the container's terminal, to give it the caller's window size.
    master: Option<OwnedFd>,
    /// `run -d -t`: where `minibox attach` connects.
    attach: Option<AttachPoint>,
    /// `-it` on a terminal: the caller's terminal stays raw while the relay lives.
    _raw: Option<RawMode>,
}

/// The attach point's descriptors in `Relay::interests`, after every stream's.
const ATTACH_FIRST: usize = usize::MAX - 8;
const ATTACH_READY: [attach::Ready; 3] = [
    attach::Ready::Listener,
    attach::Ready::Client,
    attach::Ready::Master,
];

/// What a `-t` relay serves once the master has come.
struct PendingTerminal {
    socket: OwnedFd,
    input: Input,
    output: Output,
}

impl Relay {
    /// Nothing to relay: the process holds its own stdio (OCI `exec`, `exec -d`).
    pub fn none() -> Relay {
        Relay {
            streams: Vec::new(),
            terminal: None,
            master: None,
            attach: None,
            _raw: None,
        }
    }

    /// `-t`: takes the master the container sent while setting itself up (it is there once the
    /// container has exec'd CMD, already of the caller's window size), and relays the caller's
    /// stdin into it (`-i`) and all it prints out. The caller's terminal goes raw (`-i` on a
    /// terminal), so that its keys act in the container's terminal, not on minibox. Without
    /// `-t`: nothing to do.
    pub fn connect_terminal(&mut self) -> Result<()> {
        let Some(PendingTerminal {
            socket,
            input,
            output,
        }) = self.terminal.take()
        else {
            return Ok(());
        };
        let master = pty::recv_fd(&socket, false)?;
        set_nonblocking(&master)?;
        let dup = |fd: &OwnedFd| fd.try_clone().context("duplicating the pty master");
        let to = match output {
            Output::Caller => caller(std::io::stdout().as_fd()).map_or(Sink::Gone, Sink::Caller),
            Output::Log(log) => Sink::Log(log),
            Output::LogAndAttach(log, mut point) => {
                point.set_master(dup(&master)?);
                self.attach = Some(point);
                Sink::Log(log)
            }
        };
        let mut output = Stream::new(Role::Output, dup(&master)?, to);
        if self.attach.is_some() {
            output.copy = Some(Vec::new());
        }
        self.streams.push(output);
        let stdin = std::io::stdin();
        if input == Input::Caller {
            if let Some(from) = caller(stdin.as_fd()) {
                self.streams
                    .push(Stream::new(Role::Input, from, Sink::Fd(dup(&master)?)));
            }
            if terminal::is_terminal(stdin.as_fd()) {
                self._raw = Some(RawMode::enter(stdin.as_fd())?);
            }
        }
        self.master = Some(master);
        Ok(())
    }

    /// The caller's window changed (SIGWINCH): the container's terminal follows.
    pub fn resize(&self) -> Result<()> {
        match &self.master {
            Some(master) => terminal::copy_window_size(master.as_fd()),
            None => Ok(()),
        }
    }

    /// What to poll: (stream index, descriptor, events); the attach point's descriptors
    /// come last, numbered from `ATTACH_FIRST`.
    pub fn interests(&self) -> Vec<(usize, BorrowedFd<'_>, PollFlags)> {
        let streams = self
            .streams
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.interest().map(|(fd, ev)| (i, fd, ev)));
        let attach = self.attach.iter().flat_map(|a| {
            a.interests()
                .into_iter()
                .map(|(ready, fd, ev)| (ATTACH_FIRST + ready as usize, fd, ev))
        });
        streams.chain(attach).collect()
    }

    /// Serves stream `i` (or the attach point), whose descriptor poll found ready.
    pub fn step(&mut self, i: usize) -> Result<()> {
        if i >= ATTACH_FIRST {
            if let Some(point) = &mut self.attach {
                point.step(ATTACH_READY[i - ATTACH_FIRST]);
            }
            return Ok(());
        }
        let stream = &mut self.streams[i];
        let stepped = stream.step();
        if let (Some(copy), Some(point)) = (&mut stream.copy, &mut self.attach) {
            if !copy.is_empty() {
                point.output(copy);
                copy.clear();
            }
        }
        stepped
    }

    /// The container has ended with `code`: an attached client hears it.
    pub fn ended(&mut self, code: i32) {
        if let Some(point) = &mut self.attach {
            point.ended(code);
        }
    }

    /// The container is gone: its stdin goes (nobody reads it), and from now on only the
    /// output already written is waited for.
    pub fn stop_input(&mut self) {
        self.streams.retain(|s| s.role == Role::Output);
    }

    /// Stops reading the output pipes (a process outside the container kept a write end):
    /// only what is pending is still written.
    pub fn stop_reading(&mut self) {
        for stream in &mut self.streams {
            stream.from = None;
        }
    }

    pub fn is_done(&self) -> bool {
        self.streams.iter().all(Stream::is_done)
    }

    /// Bytes of output the log could not take (a full disk).
    pub fn lost(&self) -> u64 {
        self.streams
            .iter()
            .map(|s| match &s.to {
                Sink::Log(log) => log.lost,
                _ => 0,
            })
            .sum()
    }
}
