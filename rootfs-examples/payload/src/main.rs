//! `payload`: a static test program that integration tests run *inside* a
//! container to inspect it from the inside, in the spirit of crun's
//! `tests/init.c`.
//!
//! Usage: `payload SUBCOMMAND [ARGS]`. Every subcommand prints stable,
//! machine-parseable lines on stdout. Exit status:
//! - 0: success (or what the subcommand documents, e.g. `exit N`);
//! - 1: runtime error, reported as one line `error: ...` on stderr;
//! - 2: unknown subcommand or bad arguments, with usage on stderr.
//!
//! The program deliberately bypasses the Rust runtime's start-up code (see
//! [`main`]) so that what it reports is what the container runtime set up,
//! not what `std` changed before `main`.

// Outside of unit tests we provide the C `main` symbol ourselves.
#![cfg_attr(not(test), no_main)]

mod files;
mod info;
mod names;
mod net;
mod nodes;
mod process;
mod syscalls;
mod tty;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Write};
use std::os::raw::{c_char, c_int};
use std::str::FromStr;

/// A failed subcommand.
#[derive(Debug)]
pub enum Error {
    /// Bad argument, e.g. `invalid PORT "x"`. Exit 2, with usage.
    Usage(String),
    /// Runtime failure, printed as `error: MESSAGE`. Exit 1.
    Failed(String),
}

impl Error {
    /// A runtime failure of `context` (e.g. `cat /etc/x`) caused by `err`.
    pub fn io(context: impl fmt::Display, err: &io::Error) -> Self {
        Error::Failed(format!("{context}: {}", names::describe(err)))
    }

    /// A runtime failure of `context` described by the current `errno`.
    pub fn last_os(context: impl fmt::Display) -> Self {
        Error::io(context, &io::Error::last_os_error())
    }
}

/// Result of a subcommand.
pub type Result<T = ()> = std::result::Result<T, Error>;

/// Formats a line and writes it to stdout, as `Result<(), Error>`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        ::std::io::Write::write_fmt(
            &mut ::std::io::stdout().lock(),
            format_args!("{}\n", format_args!($($arg)*)),
        )
        .map_err(|err| $crate::Error::io("stdout", &err))
    };
}

/// Writes raw `bytes` (e.g. a file name) and a newline to stdout.
pub fn out_bytes_line(bytes: &[u8]) -> Result {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|err| Error::io("stdout", &err))
}

/// Flushes stdout and exits with `code`.
pub fn exit(code: i32) -> ! {
    // Nothing sensible is left to do if stdout cannot be flushed any more.
    let _ = io::stdout().flush();
    std::process::exit(code)
}

/// Parses argument `what` (e.g. `PORT`); failure is a usage error.
pub fn parse_arg<T: FromStr>(what: &str, arg: &OsStr) -> Result<T> {
    arg.to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Usage(format!("invalid {what} {arg:?}")))
}

/// One subcommand: its name, argument names, help text and implementation.
struct Command {
    name: &'static str,
    args: &'static [&'static str],
    help: &'static str,
    /// Called with exactly `args.len()` arguments.
    run: fn(&[&OsStr]) -> Result,
}

impl Command {
    /// `payload NAME ARG...`
    fn synopsis(&self) -> String {
        let mut line = format!("payload {}", self.name);
        for arg in self.args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }
}

/// Every subcommand, in the order shown by the usage text.
#[rustfmt::skip]
const COMMANDS: &[Command] = &[
    Command { name: "id", args: &[], help: "uids, gids and supplementary groups", run: info::id },
    Command { name: "status", args: &[], help: "Cap*, NoNewPrivs, Seccomp* lines of /proc/self/status", run: info::status },
    Command { name: "env", args: &[], help: "environment, one KEY=VALUE per line", run: info::env },
    Command { name: "cwd", args: &[], help: "current working directory", run: info::cwd },
    Command { name: "hostname", args: &[], help: "uname nodename", run: info::hostname },
    Command { name: "pid", args: &[], help: "pid=P ppid=Q", run: info::pid },
    Command { name: "pids", args: &[], help: "numeric entries of /proc, sorted", run: info::pids },
    Command { name: "fds", args: &[], help: "open file descriptors: fds=0,1,2", run: info::fds },
    Command { name: "ifaces", args: &[], help: "network interfaces: NAME up|down", run: info::ifaces },
    Command { name: "cat", args: &["PATH"], help: "copy a file to stdout", run: files::cat },
    Command { name: "ls", args: &["PATH"], help: "directory entries, sorted", run: files::ls },
    Command { name: "readlink", args: &["PATH"], help: "symbolic link target", run: files::readlink },
    Command { name: "write", args: &["PATH", "TEXT"], help: "create/truncate PATH and write TEXT", run: files::write },
    Command { name: "stat", args: &["PATH..."], help: "per PATH: type=T mode=M uid=U gid=G dev=D ino=I rdev=MAJ:MIN", run: nodes::stat },
    Command { name: "chmod", args: &["PATH", "MODE"], help: "chmod PATH to octal MODE", run: nodes::chmod },
    Command { name: "chown", args: &["PATH", "UID", "GID"], help: "chown PATH", run: nodes::chown },
    Command { name: "mknod", args: &["PATH", "MAJOR", "MINOR"], help: "make a char device (0666), print made PATH, open it", run: nodes::mknod },
    Command { name: "mkblk", args: &["PATH", "MAJOR", "MINOR"], help: "make a block device (0600), print made PATH, open it, read 512 bytes: read N bytes", run: nodes::mkblk },
    Command { name: "open", args: &["PATH", "r|w|rw"], help: "open an existing PATH (no create, no truncate): opened PATH", run: nodes::open },
    Command { name: "stdio", args: &[], help: "file types behind fds 0 1 2: 0=fifo 1=chr 2=reg", run: nodes::stdio },
    Command { name: "fchmod", args: &["FD", "MODE"], help: "fchmod FD to octal MODE", run: nodes::fchmod },
    Command { name: "fchown", args: &["FD", "UID", "GID"], help: "fchown FD", run: nodes::fchown },
    Command { name: "spew", args: &["OUT_LINES", "ERR_LINES"], help: "numbered lines on stdout and stderr, then done on stderr", run: nodes::spew },
    Command { name: "count-stdin", args: &[], help: "read stdin to its end: bytes=N lines=L first=LINE", run: nodes::count_stdin },
    Command { name: "copy-mode", args: &["SRC", "DST", "MODE"], help: "copy SRC to DST, then chmod DST to octal MODE (e.g. 4755)", run: files::copy_mode },
    Command { name: "mknod-mode", args: &["PATH", "MODE", "MAJOR", "MINOR"], help: "make a character device node, chmod to octal MODE", run: files::mknod },
    Command { name: "exit", args: &["N"], help: "exit with status N", run: process::exit_with },
    Command { name: "kill-self", args: &["SIG"], help: "raise SIG with its default action; exit 99 if alive", run: process::kill_self },
    Command { name: "sleep", args: &["SECS"], help: "sleep (fractional) seconds", run: process::sleep },
    Command { name: "mount-tmpfs", args: &["SOURCE", "TARGET", "SECS"], help: "mount a tmpfs named SOURCE on TARGET, print mounted, sleep SECS", run: process::mount_tmpfs },
    Command { name: "setfsuid", args: &["UID", "SECS"], help: "set the fsuid (clears the parent-death signal), print fsuid=UID, sleep SECS", run: process::setfsuid_sleep },
    Command { name: "trap", args: &["N"], help: "print ready, then got NAME per signal; exit after N", run: process::trap },
    Command { name: "memhog", args: &["MB"], help: "allocate and touch MB MiB", run: process::memhog },
    Command { name: "memhold", args: &["MB", "SECS"], help: "allocate and touch MB MiB, keep it SECS", run: process::memhold },
    Command { name: "cpuhog", args: &["SECS"], help: "spin for SECS, print cpu_usec=U wall_usec=W", run: process::cpuhog },
    Command { name: "forkbomb", args: &["N"], help: "fork N children, print forked=S failed=F", run: process::forkbomb },
    Command { name: "http", args: &["PORT"], help: "HTTP server answering \"payload PORT\"", run: net::http },
    Command { name: "echo", args: &["PORT"], help: "TCP echo server", run: net::echo },
    Command { name: "udp-echo", args: &["PORT"], help: "UDP server answering each datagram \"udp PORT: \" and it", run: net::udp_echo },
    Command { name: "connect", args: &["HOST:PORT"], help: "TCP connect, 2 s timeout (HOST: an IP or a name in /etc/hosts)", run: net::connect },
    Command { name: "resolve", args: &["NAME"], help: "addresses /etc/hosts gives NAME (libc's files backend), or unresolved", run: net::resolve },
    Command { name: "ask", args: &["HOST:PORT"], help: "connect, send ask, half-close, print the answer", run: net::ask },
    Command { name: "duo", args: &["PORT", "SECS", "HOST:PORT"], help: "echo server on PORT; after SECS, ask HOST:PORT once: asked ANSWER", run: net::duo },
    Command { name: "peer", args: &["PORT"], help: "TCP server answering each client \"peer IP:PORT\" (its address as seen)", run: net::peer },
    Command { name: "arp-claim", args: &["IFACE", "IP"], help: "broadcast ARP replies claiming IP for IFACE's MAC (a raw packet socket): sent MAC, or failed: ERRNO", run: net::arp_claim },
    Command { name: "udp-forge", args: &["SRC", "DST:PORT", "TEXT"], help: "five UDP datagrams to DST:PORT from the forged IPv4 source SRC (a raw socket): sent, or failed: ERRNO", run: net::udp_forge },
    Command { name: "udp-recv", args: &["PORT", "SECS"], help: "listening, then from IP TEXT per datagram for SECS, then done", run: net::udp_recv },
    Command { name: "sniff", args: &["IP", "SECS"], help: "count IPv4 packets to IP arriving for SECS (a packet socket): seen N, or failed: ERRNO", run: net::sniff },
    Command { name: "tty-info", args: &[], help: "isatty, tty, session, foreground group, /dev/tty, size, TERM", run: tty::info },
    Command { name: "tty-trap", args: &["N"], help: "as trap, for INT QUIT TSTP WINCH(+size) HUP TERM", run: tty::trap },
    Command { name: "echo-lines", args: &[], help: "got: LINE for each stdin line; `size`: size: ROWSxCOLS; `exit N` exits N", run: tty::echo_lines },
    Command { name: "tiocsti", args: &["TEXT"], help: "TIOCSTI TEXT into fds 0-2 and /dev/tty: fdN=ok|ERR", run: tty::tiocsti },
    Command { name: "orphans", args: &["N", "SECS"], help: "leave N orphans that exit, then sleep SECS", run: tty::orphans },
    Command { name: "exe-attack", args: &[], help: "open every /proc/PID/exe for writing (CVE-2019-5736)", run: tty::exe_attack },
    Command { name: "exec", args: &["PROGRAM", "ARGS..."], help: "become PROGRAM (execv)", run: process::exec },
    Command { name: "exe-watch", args: &["SECS"], help: "for SECS, try to open every other /proc/PID/exe for writing (exec's CVE-2019-5736 race)", run: tty::exe_watch },
    Command { name: "later", args: &["SECS", "SUBCOMMAND", "ARGS..."], help: "sleep SECS, then run SUBCOMMAND", run: later },
    Command { name: "syscalls", args: &["PROBE..."], help: "try each PROBE syscall (in a child), print PROBE=OK|ERRNO|SIGNAL", run: syscalls::syscalls },
    Command { name: "getppid-loop", args: &["N"], help: "N raw getppid calls, print ns_per_call", run: syscalls::getppid_loop },
    Command { name: "bench", args: &["N", "PROGRAM", "ARGS..."], help: "run PROGRAM N times, print the median wall time", run: process::bench },
];

/// `later SECS SUBCOMMAND ARGS...`: sleeps, then becomes SUBCOMMAND (e.g. a server that starts
/// listening late).
fn later(args: &[&OsStr]) -> Result {
    let secs: f64 = parse_arg("SECS", args[0])?;
    std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    let mut argv: Vec<OsString> = vec![OsString::from("payload")];
    argv.extend(args[1..].iter().map(|a| a.to_os_string()));
    match run(&argv) {
        0 => Ok(()),
        code => {
            let _ = io::stdout().flush();
            std::process::exit(code)
        }
    }
}

/// Prints the full usage text on stderr.
fn print_usage() {
    let mut text = String::from("usage: payload SUBCOMMAND [ARGS]\n\nsubcommands:\n");
    for command in COMMANDS {
        text.push_str(&format!("  {:<30} {}\n", command.synopsis(), command.help));
    }
    eprint!("{text}");
}

/// Runs the subcommand named in `args[1]` and returns the exit status.
fn run(args: &[OsString]) -> i32 {
    let Some(name) = args.get(1) else {
        print_usage();
        return 2;
    };
    let Some(command) = COMMANDS.iter().find(|c| OsStr::new(c.name) == name) else {
        eprintln!("error: unknown subcommand {:?}", name);
        print_usage();
        return 2;
    };
    let rest: Vec<&OsStr> = args[2..].iter().map(OsString::as_os_str).collect();
    // A last argument named `X...` takes any number of words, none included.
    let variadic = command.args.last().is_some_and(|a| a.ends_with("..."));
    let fixed = command.args.len() - usize::from(variadic);
    let result = if rest.len() == fixed || (variadic && rest.len() > fixed) {
        (command.run)(&rest)
    } else {
        Err(Error::Usage(format!(
            "{} expects {} argument(s)",
            command.name,
            command.args.len()
        )))
    };
    let code = match result {
        Ok(()) => 0,
        Err(Error::Failed(message)) => {
            eprintln!("error: {message}");
            1
        }
        Err(Error::Usage(message)) => {
            eprintln!("error: {message}\nusage: {}", command.synopsis());
            2
        }
    };
    if let Err(err) = io::stdout().flush() {
        eprintln!("error: stdout: {}", names::describe(&err));
        return 1;
    }
    code
}

/// The C entry point, called by the C library instead of Rust's usual one.
///
/// Rust's start-up code (which runs before a normal `fn main`) reopens file
/// descriptors 0-2 on `/dev/null` if they are closed (aborting if that fails)
/// and sets SIGPIPE to "ignore". A test payload must report the process as
/// the runtime created it, so we skip all of that. The standard library still
/// works: on glibc, `std::env::args_os` gets argv from an `.init_array` hook.
/// Because no Rust clean-up runs after this returns, stdout is flushed in
/// [`run`] and [`exit`].
#[cfg_attr(not(test), no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    let args: Vec<OsString> = std::env::args_os().collect();
    run(&args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_name_is_unique() {
        for (i, a) in COMMANDS.iter().enumerate() {
            assert!(
                COMMANDS[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
        }
    }

    #[test]
    fn parse_arg_rejects_garbage() {
        assert!(matches!(
            parse_arg::<u16>("PORT", OsStr::new("8080")),
            Ok(8080)
        ));
        assert!(matches!(
            parse_arg::<u16>("PORT", OsStr::new("80x")),
            Err(Error::Usage(_))
        ));
    }
}
