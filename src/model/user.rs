//! Who the container runs as: resolved from the rootfs's own `/etc/passwd` and `/etc/group`
//! (never the host's, and without glibc's NSS), then applied with setgroups/setresgid/setresuid.

use anyhow::{bail, Context, Result};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};

/// `nobody` / `nogroup`: the default identity of a container.
pub const NOBODY: u32 = 65534;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (not counting `gid` unless the group file lists the user in it).
    pub groups: Vec<u32>,
    /// `HOME` for the process: from the passwd entry, else `/`.
    pub home: String,
    /// The passwd name, when there is an entry.
    pub name: Option<String>,
}

/// `(uid_t)-1`: to setresuid/setresgid it means "leave unchanged", so an entry carrying it would
/// keep minibox's own root. It is the only id the kernel reads specially there (65534 and the
/// legacy 16-bit overflow id 65535 are ordinary ids).
pub const RESERVED_ID: u32 = u32::MAX;

struct PasswdEntry<'a> {
    /// 1-based, for messages.
    line: usize,
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    line: usize,
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// The lines of a passwd or group file that libc would read: valid UTF-8 (a name we can
/// compare), not comments. Others are skipped, as libc skips lines it cannot parse, so one
/// broken line in an image never stops a container that does not need it.
fn text_lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &str)> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(i, line)| Some((i + 1, std::str::from_utf8(line).ok()?)))
        .filter(|(_, line)| !line.starts_with('#'))
}

/// Lines of `name:x:uid:gid:gecos:home:shell`; malformed lines are skipped, as libc does.
fn passwd_entries(bytes: &[u8]) -> impl Iterator<Item = PasswdEntry<'_>> {
    text_lines(bytes).filter_map(|(line, text)| {
        let f: Vec<&str> = text.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        Some(PasswdEntry {
            line,
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

/// Lines of `name:x:gid:member,member`.
fn group_entries(bytes: &[u8]) -> impl Iterator<Item = GroupEntry<'_>> {
    text_lines(bytes).filter_map(|(line, text)| {
        let f: Vec<&str> = text.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        Some(GroupEntry {
            line,
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3]
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .collect(),
        })
    })
}

/// A numeric `--user` part: `None` when it is a name, an error when it is a number no process
/// can have (beyond 32 bits, or the reserved `(uid_t)-1`).
fn parse_id(s: &str, what: &str, spec: &str) -> Result<Option<u32>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(n) if n != RESERVED_ID => Ok(Some(n)),
        _ => bail!(
            "invalid --user {spec:?}: {what} {s} is out of range: ids go from 0 to {} \
             ({RESERVED_ID} is reserved: the kernel reads it as \"unchanged\")",
            RESERVED_ID - 1
        ),
    }
}

/// Fails, naming the file and line, when an id taken from the rootfs is the reserved one.
fn check_file_id(id: u32, what: &str, name: &str, file: &str, line: usize) -> Result<()> {
    if id == RESERVED_ID {
        bail!(
            "the rootfs's {file} line {line}: {name:?} has {what} {id}, which the kernel reserves \
             (setresuid/setresgid read it as \"unchanged\", which would keep root): fix that \
             entry of the image"
        );
    }
    Ok(())
}

/// Resolves `--user NAME|UID[:GROUP|GID]` against the rootfs's passwd and group files
/// (`None` when the rootfs has no such file). Without `--user`: 65534:65534, no other groups.
pub fn resolve(
    user: Option<&str>,
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> Result<Identity> {
    let passwd = passwd.unwrap_or(b"");
    let group = group.unwrap_or(b"");
    let Some(spec) = user else {
        let entry = passwd_entries(passwd).find(|e| e.uid == NOBODY);
        return Ok(Identity {
            uid: NOBODY,
            gid: NOBODY,
            groups: vec![],
            home: entry.as_ref().map_or("/", |e| e.home).to_string(),
            name: entry.map(|e| e.name.to_string()),
        });
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() || group_part == Some("") {
        bail!("invalid --user {spec:?}: use NAME, UID, NAME:GROUP or UID:GID");
    }
    let numeric_uid = parse_id(user_part, "uid", spec)?;
    let numeric_gid = group_part
        .map(|g| parse_id(g, "gid", spec))
        .transpose()?
        .flatten();

    let entry = passwd_entries(passwd).find(|e| match numeric_uid {
        Some(uid) => e.uid == uid,
        None => e.name == user_part,
    });
    if let Some(e) = &entry {
        check_file_id(e.uid, "uid", e.name, "/etc/passwd", e.line)?;
        check_file_id(e.gid, "gid", e.name, "/etc/passwd", e.line)?;
    }
    let (uid, mut gid, home, name) = match (&entry, numeric_uid) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name.to_string())),
        // A numeric uid needs no entry (as in docker); it gets nogroup, the least privileged.
        (None, Some(uid)) => (uid, NOBODY, "/".to_string(), None),
        (None, None) => bail!(
            "unknown user {user_part:?}: no such name in the rootfs's /etc/passwd; \
             add it there or give a numeric UID"
        ),
    };
    if let Some(g) = group_part {
        gid = match numeric_gid {
            Some(gid) => gid,
            None => {
                let e = group_entries(group)
                    .find(|e| e.name == g)
                    .with_context(|| {
                        format!(
                            "unknown group {g:?}: no such name in the rootfs's /etc/group; \
                         add it there or give a numeric GID"
                        )
                    })?;
                check_file_id(e.gid, "gid", e.name, "/etc/group", e.line)?;
                e.gid
            }
        };
    }
    let mut groups = vec![];
    if let Some(n) = &name {
        for e in group_entries(group).filter(|e| e.members.contains(&n.as_str())) {
            check_file_id(e.gid, "gid", e.name, "/etc/group", e.line)?;
            groups.push(e.gid);
        }
    }
    groups.sort_unstable();
    groups.dedup();
    Ok(Identity {
        uid,
        gid,
        groups,
        home: if home.is_empty() { "/".into() } else { home },
        name,
    })
}

/// The passwd name and home of `uid` in the rootfs's passwd file (`None` and `/` without an
/// entry): what a numeric OCI `process.user` is called, for messages and `--explain`.
pub fn describe(uid: u32, passwd: Option<&[u8]>) -> (Option<String>, String) {
    match passwd_entries(passwd.unwrap_or(b"")).find(|e| e.uid == uid) {
        Some(e) if !e.home.is_empty() => (Some(e.name.to_string()), e.home.to_string()),
        Some(e) => (Some(e.name.to_string()), "/".to_string()),
        None => (None, "/".to_string()),
    }
}

/// Becomes the container's user. Groups first: changing them needs CAP_SETGID, and setresuid
/// to a non-root uid is the point of no return (the kernel then clears our capabilities).
pub fn switch_to(id: &Identity) -> Result<()> {
    let groups: Vec<Gid> = id.groups.iter().map(|&g| Gid::from_raw(g)).collect();
    setgroups(&groups).with_context(|| format!("setgroups({:?})", id.groups))?;
    let gid = Gid::from_raw(id.gid);
    setresgid(gid, gid, gid).with_context(|| format!("setresgid({})", id.gid))?;
    let uid = Uid::from_raw(id.uid);
    setresuid(uid, uid, uid).with_context(|| format!("setresuid({})", id.uid))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        broken line\n\
        web:x:1000:1000:Web:/srv/web:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
        nohome:x:1001:1001:::/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
        web:x:1000:\n\
        audio:x:29:web,other\n\
        video:x:44: web \n\
        nogroup:x:65534:\n";

    fn res(u: Option<&str>) -> Result<Identity> {
        resolve(u, Some(PASSWD.as_bytes()), Some(GROUP.as_bytes()))
    }

    #[test]
    fn default_is_nobody_with_no_groups() {
        let id = res(None).unwrap();
        assert_eq!((id.uid, id.gid, id.groups.clone()), (65534, 65534, vec![]));
        assert_eq!(id.home, "/nonexistent");
        // Even without any passwd file.
        let bare = resolve(None, None, None).unwrap();
        assert_eq!(
            (bare.uid, bare.gid, bare.home.as_str()),
            (65534, 65534, "/")
        );
    }

    #[test]
    fn name_gives_uid_gid_home_and_supplementary_groups() {
        let id = res(Some("web")).unwrap();
        assert_eq!((id.uid, id.gid), (1000, 1000));
        assert_eq!(id.groups, vec![29, 44]);
        assert_eq!(id.home, "/srv/web");
        assert_eq!(id.name.as_deref(), Some("web"));
    }

    #[test]
    fn numeric_uid_with_and_without_entry() {
        let id = res(Some("1000")).unwrap();
        assert_eq!((id.uid, id.gid, id.home.as_str()), (1000, 1000, "/srv/web"));
        let id = res(Some("4242")).unwrap();
        assert_eq!((id.uid, id.gid, id.home.as_str()), (4242, 65534, "/"));
        assert!(id.groups.is_empty());
        let root = res(Some("0")).unwrap();
        assert_eq!((root.uid, root.gid, root.home.as_str()), (0, 0, "/root"));
    }

    #[test]
    fn explicit_group_by_name_or_number() {
        let id = res(Some("web:audio")).unwrap();
        assert_eq!((id.uid, id.gid), (1000, 29));
        let id = res(Some("4242:77")).unwrap();
        assert_eq!((id.uid, id.gid), (4242, 77));
    }

    #[test]
    fn empty_home_falls_back_to_root_dir() {
        assert_eq!(res(Some("nohome")).unwrap().home, "/");
    }

    #[test]
    fn unknown_or_malformed_users_are_errors() {
        let e = res(Some("bob")).unwrap_err().to_string();
        assert!(e.contains("unknown user \"bob\""), "{e}");
        let e = res(Some("web:nosuch")).unwrap_err().to_string();
        assert!(e.contains("unknown group \"nosuch\""), "{e}");
        for bad in ["", ":1", "1:", "4294967295"] {
            assert!(res(Some(bad)).is_err(), "{bad:?} accepted");
        }
        // No passwd file at all: names cannot be resolved.
        assert!(resolve(Some("web"), None, None).is_err());
    }

    #[test]
    fn the_reserved_id_is_refused_from_the_flag_with_its_range() {
        for (bad, what) in [
            ("4294967295", "uid 4294967295 is out of range"),
            ("4294967296", "uid 4294967296 is out of range"),
            ("99999999999999999999", "is out of range"),
            ("0:4294967295", "gid 4294967295 is out of range"),
            ("web:4294967295", "gid 4294967295 is out of range"),
        ] {
            let e = res(Some(bad)).unwrap_err().to_string();
            assert!(e.contains(what) && e.contains("reserved"), "{bad}: {e}");
            assert!(!e.contains("unknown user"), "{bad}: {e}");
        }
        // 65535, the legacy overflow id, is an ordinary id.
        assert_eq!(
            res(Some("65535:65535")).map(|i| (i.uid, i.gid)).unwrap(),
            (65535, 65535)
        );
    }

    #[test]
    fn a_reserved_id_in_the_files_is_refused_naming_file_and_line() {
        let passwd = b"root:x:0:0::/root:/bin/sh\n\
            app:x:4294967295:1000::/app:/bin/sh\n\
            app2:x:1002:4294967295::/app:/bin/sh\n\
            ok:x:1003:1003::/ok:/bin/sh\n";
        let group = b"evil:x:4294967295:ok\nstaff:x:50:\n";
        let r = |u: &str, g: &[u8]| {
            resolve(Some(u), Some(passwd), Some(g))
                .unwrap_err()
                .to_string()
        };
        let e = r("app", b"");
        assert!(
            e.contains("/etc/passwd line 2") && e.contains("uid 4294967295"),
            "{e}"
        );
        let e = r("app2", b"");
        assert!(
            e.contains("/etc/passwd line 3") && e.contains("gid 4294967295"),
            "{e}"
        );
        // A supplementary group of the user, and one asked for by name.
        let e = r("ok", group);
        assert!(
            e.contains("/etc/group line 1") && e.contains("\"evil\""),
            "{e}"
        );
        let e = r("root:evil", group);
        assert!(e.contains("/etc/group line 1"), "{e}");
        // Entries nobody asked for are no obstacle.
        assert_eq!(
            resolve(Some("root"), Some(passwd), Some(b"staff:x:50:\n"))
                .unwrap()
                .uid,
            0
        );
        assert_eq!(
            resolve(None, Some(passwd), Some(group)).unwrap().uid,
            NOBODY
        );
    }

    #[test]
    fn lines_that_are_not_utf8_are_skipped_as_libc_would() {
        let passwd = b"root:x:0:0::/root:/bin/sh\n\
            br\xffoken:x:1000:1000::/home/\xfe:/bin/sh\n\
            nobody:x:65534:65534::/nonexistent:/bin/sh\n";
        let id = resolve(None, Some(passwd), None).unwrap();
        assert_eq!((id.uid, id.home.as_str()), (NOBODY, "/nonexistent"));
        assert_eq!(resolve(Some("root"), Some(passwd), None).unwrap().uid, 0);
        // The broken line matches nothing: its name and uid are not seen.
        let e = resolve(Some("broken"), Some(passwd), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown user"), "{e}");
        let id = resolve(Some("1000"), Some(passwd), None).unwrap();
        assert_eq!((id.gid, id.home.as_str()), (NOBODY, "/"));
        let group = b"g\xff:x:1:root\nstaff:x:50:root\n";
        assert_eq!(
            resolve(Some("root"), Some(passwd), Some(group))
                .unwrap()
                .groups,
            vec![50]
        );
    }
}
