//! The host ids `--userns auto` hands out: a range per container, never two containers' at
//! once (podman's `--userns=auto`).
//!
//! The ids come from the subordinate ids of a `minibox` user in `/etc/subuid` and
//! `/etc/subgid` (made on first use, with a message: the user, no login, no home, and one
//! entry in each file). Which ranges are taken is recorded in one file for the whole machine,
//! `/run/minibox-ids/ranges.json`, under a lock — host ids are the machine's, whatever state
//! root a container is recorded in — each range beside the state directory of the container
//! holding it. `rm` frees a container's range; a range whose container's directory is gone
//! (removed by hand, a run killed before its cleanup) is free again the next time one is taken.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::store::state::lock_file;

/// The user whose subordinate ids containers get.
pub const USER: &str = "minibox";
/// Where the taken ranges are recorded (a tmpfs: they die with the containers at a reboot).
const DIR: &str = "/run/minibox-ids";
const RANGES: &str = "ranges.json";
const LOCK: &str = "lock";
/// The range handed out last (where the next search starts).
const CURSOR: &str = "last.json";
/// Where minibox's own subordinate ids start when it adds them, and how many (16384 ranges of
/// 65536): far above the ids of the host's users.
const FIRST_ID: u64 = 1_000_000_000;
const COUNT: u64 = 65536 * 16384;

/// One container's ids: `size` uids from `uid`, `size` gids from `gid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Taken {
    /// The state directory of the container holding it.
    owner: PathBuf,
    #[serde(flatten)]
    range: Range,
}

/// The files the ids come from, and where the taken ranges are kept (tests give their own).
pub struct Sources {
    pub subuid: PathBuf,
    pub subgid: PathBuf,
    pub dir: PathBuf,
}

impl Default for Sources {
    fn default() -> Sources {
        Sources {
            subuid: "/etc/subuid".into(),
            subgid: "/etc/subgid".into(),
            dir: DIR.into(),
        }
    }
}

/// Takes a range of `size` ids for the container whose state directory is `owner` (its
/// record must exist already: a range whose owner has no directory is taken for free).
pub fn allocate(owner: &Path, size: u32) -> Result<Range> {
    allocate_in(&Sources::default(), owner, size, ensure_user)
}

/// Frees the range of the container whose state directory is `owner`, if it holds one.
pub fn release(owner: &Path) -> Result<()> {
    release_in(&Sources::default(), owner)
}

fn allocate_in(
    sources: &Sources,
    owner: &Path,
    size: u32,
    ensure: impl Fn(&Sources) -> Result<()>,
) -> Result<Range> {
    fs::create_dir_all(&sources.dir)
        .with_context(|| format!("creating {}", sources.dir.display()))?;
    let _lock = lock_file(&sources.dir.join(LOCK))?;
    ensure(sources)?;
    let path = sources.dir.join(RANGES);
    let mut taken = read_taken(&path)?;
    // Ranges of containers whose record is gone are free again.
    taken.retain(|t| t.owner != owner && t.owner.is_dir());
    let uids = subordinate(&sources.subuid)?;
    let gids = subordinate(&sources.subgid)?;
    let used = |pick: fn(&Range) -> u32| -> Vec<(u64, u64)> {
        taken
            .iter()
            .map(|t| (pick(&t.range) as u64, t.range.size as u64))
            .collect()
    };
    // Next fit: the search starts past the range handed out last, so a range just freed
    // (whose files may linger in a shared volume) goes to another container only once every
    // other one has been used.
    let cursor_path = sources.dir.join(CURSOR);
    let cursor: Option<Range> = fs::read(&cursor_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let after = |pick: fn(&Range) -> u32| {
        cursor
            .as_ref()
            .map_or(0, |c| pick(c) as u64 + c.size as u64)
    };
    let uid = first_free(
        &uids,
        &used(|r| r.uid),
        size as u64,
        after(|r| r.uid),
        &sources.subuid,
    )?;
    let gid = first_free(
        &gids,
        &used(|r| r.gid),
        size as u64,
        after(|r| r.gid),
        &sources.subgid,
    )?;
    let range = Range { uid, gid, size };
    taken.push(Taken {
        owner: owner.to_path_buf(),
        range,
    });
    write_taken(&path, &taken)?;
    fs::write(&cursor_path, serde_json::to_vec(&range)?)
        .with_context(|| format!("writing {}", cursor_path.display()))?;
    Ok(range)
}

/// Takes again the range a container was given when it was made (`start` of an exited one,
/// whose maps its config.json keeps), so that no other container is handed it meanwhile: an
/// entry lost (a damaged file removed, a reboot that kept the state root) is written back, and
/// a range another container holds now is refused. Maps outside minibox's subordinate ids
/// (`--uidmap`, a bundle's) are not ranges of ours: nothing to do.
pub fn claim(owner: &Path, range: Range) -> Result<()> {
    claim_in(&Sources::default(), owner, range)
}

fn claim_in(sources: &Sources, owner: &Path, range: Range) -> Result<()> {
    let inside = |entries: &[(u64, u64)], first: u32| {
        let (lo, hi) = (first as u64, first as u64 + range.size as u64);
        entries.iter().any(|&(s, n)| lo >= s && hi <= s + n)
    };
    let (Ok(uids), Ok(gids)) = (subordinate(&sources.subuid), subordinate(&sources.subgid)) else {
        return Ok(());
    };
    if !inside(&uids, range.uid) || !inside(&gids, range.gid) {
        return Ok(());
    }
    fs::create_dir_all(&sources.dir)
        .with_context(|| format!("creating {}", sources.dir.display()))?;
    let _lock = lock_file(&sources.dir.join(LOCK))?;
    let path = sources.dir.join(RANGES);
    let mut taken = read_taken(&path)?;
    taken.retain(|t| t.owner.is_dir());
    if taken.iter().any(|t| t.owner == owner && t.range == range) {
        return Ok(());
    }
    let overlaps = |a: u32, b: u32, n: u32| {
        (a as u64) < b as u64 + n as u64 && (b as u64) < a as u64 + range.size as u64
    };
    if let Some(other) = taken.iter().find(|t| {
        t.owner != owner
            && (overlaps(range.uid, t.range.uid, t.range.size)
                || overlaps(range.gid, t.range.gid, t.range.size))
    }) {
        bail!(
            "its host ids ({}..{}) are another container's now ({}): remove it (minibox rm) \
             and run a new one",
            range.uid,
            range.uid as u64 + range.size as u64,
            other.owner.display()
        );
    }
    taken.retain(|t| t.owner != owner);
    taken.push(Taken {
        owner: owner.to_path_buf(),
        range,
    });
    write_taken(&path, &taken)
}

fn release_in(sources: &Sources, owner: &Path) -> Result<()> {
    let path = sources.dir.join(RANGES);
    if !path.exists() {
        return Ok(());
    }
    let _lock = lock_file(&sources.dir.join(LOCK))?;
    let mut taken = read_taken(&path)?;
    let before = taken.len();
    taken.retain(|t| t.owner != owner);
    if taken.len() != before {
        write_taken(&path, &taken)?;
    }
    Ok(())
}

fn read_taken(path: &Path) -> Result<Vec<Taken>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "reading {}: it is damaged; remove it once no --userns auto container exists",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Written whole or not at all (a temporary file renamed over it).
fn write_taken(path: &Path, taken: &[Taken]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_vec_pretty(taken)?;
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The `minibox` user's entries of a subordinate id file: (first id, count) each.
fn subordinate(path: &Path) -> Result<Vec<(u64, u64)>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let uid = nix::unistd::User::from_name(USER)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw().to_string());
    let entries: Vec<(u64, u64)> = parse_entries(&text)
        .into_iter()
        .filter(|(name, _, _)| name == USER || Some(name) == uid.as_ref())
        .map(|(_, start, count)| (start, count))
        .collect();
    if entries.is_empty() {
        bail!(
            "{} has no entry for the user {USER}: add one (e.g. {USER}:{FIRST_ID}:{COUNT}) for \
             --userns auto, or use --userns host",
            path.display()
        );
    }
    Ok(entries)
}

/// `NAME:FIRST:COUNT` lines; others (comments, damaged lines) are skipped, as shadow's tools do.
fn parse_entries(text: &str) -> Vec<(String, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.trim().split(':');
            let name = parts.next()?.to_string();
            let start = parts.next()?.parse().ok()?;
            let count = parts.next()?.parse().ok()?;
            (parts.next().is_none() && !name.is_empty()).then_some((name, start, count))
        })
        .collect()
}

/// The first id of `size` free ids in `entries`, at a multiple of `size` from an entry's start
/// (ranges stay apart and easy to read): the lowest at or past `after`, else the lowest.
fn first_free(
    entries: &[(u64, u64)],
    used: &[(u64, u64)],
    size: u64,
    after: u64,
    file: &Path,
) -> Result<u32> {
    let found = [after, 0]
        .into_iter()
        .find_map(|from| lowest_free(entries, used, size, from));
    match found {
        Some(at) => Ok(at as u32),
        None => bail!(
            "no {size} free ids are left among the {USER} user's subordinate ids in {}: remove \
             containers (minibox rm) or give {USER} more ids there",
            file.display()
        ),
    }
}

fn lowest_free(entries: &[(u64, u64)], used: &[(u64, u64)], size: u64, from: u64) -> Option<u64> {
    let aligned = |start: u64, x: u64| start + x.saturating_sub(start).div_ceil(size) * size;
    for (start, count) in entries {
        let mut at = aligned(*start, from.max(*start));
        while at + size <= start + count && at + size <= u32::MAX as u64 {
            match used.iter().find(|(u, n)| at < u + n && *u < at + size) {
                None => return Some(at),
                // Past the range in the way, at the next multiple.
                Some((u, n)) => at = aligned(*start, u + n),
            }
        }
    }
    None
}

/// Makes the `minibox` user and its subordinate ids, unless they exist.
fn ensure_user(sources: &Sources) -> Result<()> {
    let user = nix::unistd::User::from_name(USER).ok().flatten();
    if user.is_none() {
        let made = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                USER,
            ])
            .status()
            .context("running useradd to make the user minibox (for --userns auto)")?;
        if !made.success() {
            bail!(
                "useradd could not make the user {USER} ({made}): make it by hand, with \
                 subordinate ids in /etc/subuid and /etc/subgid, or use --userns host"
            );
        }
        say!("minibox: made the system user {USER}, whose subordinate ids --userns auto gives containers");
    }
    for file in [&sources.subuid, &sources.subgid] {
        let text = match fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        let entries = parse_entries(&text);
        if entries.iter().any(|(n, _, _)| n == USER) {
            continue;
        }
        // Above every entry there is, so no other user's ids are handed out.
        let end = entries.iter().map(|(_, s, c)| s + c).max().unwrap_or(0);
        let first = FIRST_ID.max(end.div_ceil(65536) * 65536);
        if first + COUNT > u32::MAX as u64 {
            bail!(
                "{} leaves no room for {COUNT} ids for the user {USER}: add an entry for it by \
                 hand, or use --userns host",
                file.display()
            );
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .with_context(|| format!("opening {}", file.display()))?;
        let sep = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        writeln!(f, "{sep}{USER}:{first}:{COUNT}")
            .with_context(|| format!("adding the user {USER} to {}", file.display()))?;
        say!(
            "minibox: gave the user {USER} the subordinate ids {first}-{} in {} (for --userns auto)",
            first + COUNT - 1,
            file.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path, entries: &str) -> Sources {
        fs::write(dir.join("subuid"), entries).unwrap();
        fs::write(dir.join("subgid"), entries).unwrap();
        Sources {
            subuid: dir.join("subuid"),
            subgid: dir.join("subgid"),
            dir: dir.join("ids"),
        }
    }

    #[test]
    fn ranges_never_overlap_and_come_back() {
        let tmp = tempfile::tempdir().unwrap();
        let s = sources(tmp.path(), "alice:100000:65536\nminibox:200000:196608\n");
        let owner = |n: &str| {
            let d = tmp.path().join(n);
            fs::create_dir_all(&d).unwrap();
            d
        };
        let none = |_: &Sources| Ok(());
        let a = allocate_in(&s, &owner("a"), 65536, none).unwrap();
        let b = allocate_in(&s, &owner("b"), 65536, none).unwrap();
        let c = allocate_in(&s, &owner("c"), 65536, none).unwrap();
        assert_eq!((a.uid, b.uid, c.uid), (200000, 265536, 331072));
        assert_eq!(a.gid, 200000);
        let full = allocate_in(&s, &owner("d"), 65536, none).unwrap_err();
        assert!(full.to_string().contains("no 65536 free ids"), "{full}");
        release_in(&s, &owner("b")).unwrap();
        assert_eq!(
            allocate_in(&s, &owner("d"), 65536, none).unwrap().uid,
            265536
        );
        // A container whose directory is gone holds nothing.
        fs::remove_dir(tmp.path().join("a")).unwrap();
        assert_eq!(
            allocate_in(&s, &owner("e"), 1000, none).unwrap().uid,
            200000
        );
        // Next fit: a range freed is not the next one handed out while others are free.
        release_in(&s, &owner("e")).unwrap();
        release_in(&s, &owner("c")).unwrap();
        let f = allocate_in(&s, &owner("f"), 1000, none).unwrap();
        assert_eq!(f.uid, 201000);
    }

    #[test]
    fn entries_of_other_users_are_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let s = sources(tmp.path(), "alice:100000:65536\n");
        let e = allocate_in(&s, tmp.path(), 10, |_: &Sources| Ok(())).unwrap_err();
        assert!(
            e.to_string().contains("no entry for the user minibox"),
            "{e}"
        );
        assert_eq!(
            parse_entries("# c\nx:1:2\nbad\ny:a:1\nz:5:6:7\n"),
            vec![("x".to_string(), 1, 2)]
        );
    }
}
