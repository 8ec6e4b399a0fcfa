//! `hello`: the program inside the example "hello" root filesystem.
//!
//! It is the Rust version of the Go "Hello World" HTTP server from the Docker
//! tutorial that builds a `FROM scratch` image: a single static binary that
//! prints `Start listening...` and answers `GET /` on port 8080 with
//! `Hello World`. Only the standard library is used, so the example stays
//! small and easy to read.
//!
//! Environment:
//! - `PORT`: the TCP port to listen on (default 8080).
//! - `GREETING`: the response body (default `Hello World`).
//!
//! Inside a container it usually runs as PID 1 of a PID namespace, where the
//! kernel ignores every signal that has no handler. We therefore install
//! handlers for SIGINT and SIGTERM that exit, so that Ctrl-C and `stop` work
//! just like they do for the Go server.

use std::env;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Port used when `PORT` is not set.
const DEFAULT_PORT: u16 = 8080;
/// Body used when `GREETING` is not set.
const DEFAULT_GREETING: &str = "Hello World";
/// Largest request head (request line + headers) we accept.
const MAX_HEAD: usize = 8 * 1024;
/// How long a single read or write may stall before we give up on a client.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

// The C library is always linked into a Rust program, so we can declare the
// two functions we need ourselves instead of depending on the `libc` crate.
extern "C" {
    /// `sighandler_t signal(int signum, sighandler_t handler)`.
    fn signal(signum: i32, handler: usize) -> usize;
    /// Terminates the process immediately; async-signal-safe.
    fn _exit(code: i32) -> !;
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;
/// `SIG_ERR`, i.e. `(sighandler_t) -1`.
const SIG_ERR: usize = usize::MAX;

/// Signal handler: leave at once with status 0, like a Go server does.
extern "C" fn exit_on_signal(_signum: i32) {
    // SAFETY: `_exit` is async-signal-safe and touches no Rust state.
    unsafe { _exit(0) }
}

/// Makes SIGINT and SIGTERM terminate the process (needed when we are PID 1).
fn install_signal_handlers() -> io::Result<()> {
    let handler = exit_on_signal as extern "C" fn(i32) as usize;
    for signum in [SIGINT, SIGTERM] {
        // SAFETY: `handler` is a valid `extern "C" fn(i32)` that only calls
        // the async-signal-safe `_exit`, which is what `signal` requires.
        if unsafe { signal(signum, handler) } == SIG_ERR {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn main() {
    if let Err(err) = install_signal_handlers() {
        fail(&format!("cannot install signal handlers: {err}"));
    }

    let port = match env::var("PORT") {
        Ok(value) => value
            .parse::<u16>()
            .unwrap_or_else(|_| fail(&format!("invalid PORT {value:?}"))),
        Err(_) => DEFAULT_PORT,
    };
    let greeting: Arc<str> = env::var("GREETING")
        .unwrap_or_else(|_| DEFAULT_GREETING.to_string())
        .into();

    // A numeric address: no name lookup, which static glibc handles poorly.
    let address = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = TcpListener::bind(address)
        .unwrap_or_else(|err| fail(&format!("cannot listen on port {port}: {err}")));

    // Printed once the socket is bound, so whoever waits for this line can
    // connect right away.
    println!("Start listening...");
    // A failed flush (e.g. stdout closed) must not stop the server.
    let _ = io::stdout().flush();

    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let greeting = Arc::clone(&greeting);
                // `Builder::spawn` reports failure instead of panicking.
                let spawned = thread::Builder::new().spawn(move || serve(stream, &greeting));
                if let Err(err) = spawned {
                    eprintln!("hello: cannot start thread: {err}");
                }
            }
            // E.g. too many open files: report it and keep serving.
            Err(err) => eprintln!("hello: accept: {err}"),
        }
    }
}

/// Answers one request on `stream`, then closes the connection.
fn serve(mut stream: TcpStream, greeting: &str) {
    // Bound how long a slow or vanished client can keep this thread busy.
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));

    let Some(head) = read_head(&mut stream) else {
        // Client disconnected, timed out or sent garbage: just hang up.
        return;
    };
    let head = String::from_utf8_lossy(&head);
    // Request line: "GET /path?query HTTP/1.1".
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");

    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/") => ("200 OK", greeting),
        _ => ("404 Not Found", "Not Found"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         \r\n",
        body.len()
    );
    // Write errors only mean the client went away; nothing left to do then.
    let _ = stream.write_all(response.as_bytes());
    if method != "HEAD" {
        let _ = stream.write_all(body.as_bytes());
    }
    let _ = stream.flush();
}

/// Reads the request head up to and including the blank line `\r\n\r\n`.
///
/// Returns `None` if the client closes the connection, stalls for longer than
/// the read timeout, or sends more than `MAX_HEAD` bytes without ending it.
fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        // Only the new bytes (plus 3 before them) can complete the terminator.
        let search_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(pos) = find(&head[search_from..], b"\r\n\r\n") {
            head.truncate(search_from + pos + 4);
            return Some(head);
        }
        if head.len() > MAX_HEAD {
            return None;
        }
    }
}

/// Position of the first occurrence of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Prints `hello: MESSAGE` on stderr and exits with status 1.
fn fail(message: &str) -> ! {
    eprintln!("hello: {message}");
    process::exit(1)
}
