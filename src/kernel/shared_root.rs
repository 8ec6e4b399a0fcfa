//! A container without a mount namespace of its own (config.json lists no `mount`, so it
//! shares the caller's, as the runtime spec says a missing type must) has its root and the
//! mounts under it made in the caller's namespace: the host's. They must not outlive it. The
//! caller counts the mounts at `root.path` before the container exists, and detaches every
//! mount stacked there since (each with all below it) once it is gone: only what minibox added,
//! never a mount that was already there.

use std::path::Path;

use nix::mount::{umount2, MntFlags};

/// For a container that `shares` the caller's mount namespace: how many mounts its root
/// `path` holds before it (to be given to `detach_since` when it goes).
pub fn mounts_before(path: &Path, shares: bool) -> Option<usize> {
    shares.then(|| mounts_at(path))
}

/// Its root and the mounts under it, made in the caller's namespace, go with it (nothing when
/// it had a mount namespace of its own: `before` is `None`).
pub fn detach_since(path: &Path, before: Option<usize>) {
    if let Some(before) = before {
        detach_added(path, before);
    }
}

/// How many mounts are stacked at `path` in our mount namespace now.
fn mounts_at(path: &Path) -> usize {
    let Ok(path) = path.canonicalize() else {
        return 0;
    };
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return 0;
    };
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| Path::new(&unescape(point)) == path)
        .count()
}

/// Detaches the mounts stacked at `path` beyond the `before` that were there (lazily: one still
/// in use goes when its last user does). Best effort, said on failure.
fn detach_added(path: &Path, before: usize) {
    let mut left = mounts_at(path);
    while left > before {
        if let Err(e) = umount2(path, MntFlags::MNT_DETACH) {
            say!(
                "minibox: warning: detaching the container's root {}: {e}",
                path.display()
            );
            return;
        }
        let now = mounts_at(path);
        if now >= left {
            return;
        }
        left = now;
    }
}

/// mountinfo writes a space as `\040` (and tab, newline, backslash likewise).
fn unescape(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], code) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_escapes_are_read() {
        assert_eq!(super::unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(super::unescape("/plain"), "/plain");
    }
}
