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

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Lines of `name:x:uid:gid:gecos:home:shell`; malformed lines are skipped, as libc does.
fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || line.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

/// Lines of `name:x:gid:member,member`.
fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || line.starts_with('#') {
            return None;
        }
        Some(GroupEntry {
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

fn parse_id(s: &str) -> Option<u32> {
    // u32::MAX is (uid_t)-1, which means "unchanged" to setresuid: never a real id.
    s.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

/// Resolves `--user NAME|UID[:GROUP|GID]` against the rootfs's passwd and group files
/// (`None` when the rootfs has no such file). Without `--user`: 65534:65534, no other groups.
pub fn resolve(user: Option<&str>, passwd: Option<&str>, group: Option<&str>) -> Result<Identity> {
    let passwd = passwd.unwrap_or("");
    let group = group.unwrap_or("");
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

    let entry = passwd_entries(passwd).find(|e| match parse_id(user_part) {
        Some(uid) => e.uid == uid,
        None => e.name == user_part,
    });
    let (uid, mut gid, home, name) = match (&entry, parse_id(user_part)) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name.to_string())),
        // A numeric uid needs no entry (as in docker); it gets nogroup, the least privileged.
        (None, Some(uid)) => (uid, NOBODY, "/".to_string(), None),
        (None, None) => bail!(
            "unknown user {user_part:?}: no such name in the rootfs's /etc/passwd; \
             add it there or give a numeric UID"
        ),
    };
    if let Some(g) = group_part {
        gid = match parse_id(g) {
            Some(gid) => gid,
            None => group_entries(group)
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .with_context(|| {
                    format!(
                        "unknown group {g:?}: no such name in the rootfs's /etc/group; \
                         add it there or give a numeric GID"
                    )
                })?,
        };
    }
    let mut groups: Vec<u32> = match &name {
        Some(n) => group_entries(group)
            .filter(|e| e.members.contains(&n.as_str()))
            .map(|e| e.gid)
            .collect(),
        None => vec![],
    };
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
pub fn describe(uid: u32, passwd: Option<&str>) -> (Option<String>, String) {
    match passwd_entries(passwd.unwrap_or("")).find(|e| e.uid == uid) {
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
        resolve(u, Some(PASSWD), Some(GROUP))
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
}
