//! `--userns`, `--uidmap`, `--gidmap` (podman's spellings): whose ids the container's are.
//!
//! `host` (today's default): the container's uid 0 is the host's root, its 65534 the host's
//! nobody, shared with every other container. `auto`: a user namespace of its own, mapped onto
//! a range of host ids no other container holds (allocated when the container is made, from
//! the subordinate ids of the `minibox` user, and freed at `rm`). `--uidmap CONTAINER:HOST:SIZE`
//! (repeatable): a user namespace mapped as given (`--gidmap` defaults to the same).

use anyhow::{bail, Context, Result};

use crate::kernel::namespaces::IdMap;

/// How many ids `--userns auto` gives a container (podman's default: a whole 16-bit space, so
/// every id an image names, 65534 included, is mapped).
pub const AUTO_SIZE: u32 = 65536;

/// The container's ids, as the flags ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Userns {
    /// The host's ids (no user namespace).
    Host,
    /// A range of `size` host ids of its own, allocated when the container is made.
    Auto { size: u32 },
    /// A user namespace with these maps.
    Maps { uids: Vec<IdMap>, gids: Vec<IdMap> },
}

impl Userns {
    /// `--userns MODE` with `--uidmap`/`--gidmap`, checked.
    pub fn parse(mode: Option<&str>, uidmap: &[String], gidmap: &[String]) -> Result<Userns> {
        let maps_given = !uidmap.is_empty() || !gidmap.is_empty();
        match mode {
            Some("host") if maps_given => {
                bail!("--uidmap/--gidmap need a user namespace: drop --userns host")
            }
            Some(m) if m.starts_with("auto") && maps_given => bail!(
                "--userns auto allocates the container's ids itself: give either it or \
                 --uidmap/--gidmap"
            ),
            Some("host") => Ok(Userns::Host),
            Some(m) if m == "auto" || m.starts_with("auto:") => parse_auto(m),
            Some("") | None if !maps_given => Ok(Userns::Host),
            Some("") | None => {
                let uids = parse_maps("--uidmap", if uidmap.is_empty() { gidmap } else { uidmap })?;
                let gids = parse_maps("--gidmap", if gidmap.is_empty() { uidmap } else { gidmap })?;
                Ok(Userns::Maps { uids, gids })
            }
            Some(other) => bail!(
                "invalid --userns {other:?}: use host, auto (or auto:size=N), or give \
                 --uidmap/--gidmap CONTAINER:HOST:SIZE"
            ),
        }
    }

    /// Every id of `ids` is mapped (always true of `host`; `auto` maps 0..size).
    pub fn check_mapped(&self, what: &str, ids: &[u32], uid: bool) -> Result<()> {
        let maps = match self {
            Userns::Host => return Ok(()),
            Userns::Auto { size } => vec![IdMap {
                inside: 0,
                outside: 0,
                count: *size,
            }],
            Userns::Maps { uids, gids } => match uid {
                true => uids.clone(),
                false => gids.clone(),
            },
        };
        for id in ids {
            if !crate::kernel::namespaces::is_mapped(&maps, *id) {
                bail!(
                    "the container's {what} {id} is not mapped in its user namespace ({}): \
                     map it, or run as another user (--user)",
                    describe(&maps)
                );
            }
        }
        Ok(())
    }
}

fn parse_auto(mode: &str) -> Result<Userns> {
    let Some(opts) = mode.strip_prefix("auto:") else {
        return Ok(Userns::Auto { size: AUTO_SIZE });
    };
    let mut size = AUTO_SIZE;
    for opt in opts.split(',') {
        let bad = || format!("invalid --userns {mode:?}: use auto or auto:size=N (1 to 65536)");
        let n = opt.strip_prefix("size=").with_context(bad)?;
        size = n
            .parse()
            .ok()
            .filter(|n| (1..=AUTO_SIZE).contains(n))
            .with_context(bad)?;
    }
    Ok(Userns::Auto { size })
}

/// `CONTAINER:HOST:SIZE` entries (podman's `--uidmap`), each an id map line.
pub fn parse_maps(flag: &str, given: &[String]) -> Result<Vec<IdMap>> {
    let maps: Vec<IdMap> = given
        .iter()
        .flat_map(|g| g.split(','))
        .map(|entry| {
            let bad = || {
                format!(
                    "invalid {flag} {entry:?}: use CONTAINER:HOST:SIZE (e.g. 0:100000:65536), \
                     numbers with SIZE at least 1"
                )
            };
            let parts: Vec<&str> = entry.split(':').collect();
            let [inside, outside, count] = parts[..] else {
                bail!(bad());
            };
            let num = |s: &str| s.parse::<u32>().ok();
            let (Some(inside), Some(outside), Some(count)) =
                (num(inside), num(outside), num(count))
            else {
                bail!(bad());
            };
            if count == 0
                || inside.checked_add(count).is_none()
                || outside.checked_add(count).is_none()
            {
                bail!(bad());
            }
            Ok(IdMap {
                inside,
                outside,
                count,
            })
        })
        .collect::<Result<_>>()?;
    for (i, a) in maps.iter().enumerate() {
        for b in &maps[i + 1..] {
            let overlap = |x0: u32, y0: u32, n: u32, m: u32| x0 < y0 + m && y0 < x0 + n;
            if overlap(a.inside, b.inside, a.count, b.count)
                || overlap(a.outside, b.outside, a.count, b.count)
            {
                bail!("{flag}: the ranges {} and {} overlap", line(a), line(b));
            }
        }
    }
    if maps.len() > 340 {
        bail!(
            "{flag}: {} ranges, the kernel takes at most 340",
            maps.len()
        );
    }
    Ok(maps)
}

fn line(m: &IdMap) -> String {
    format!("{}:{}:{}", m.inside, m.outside, m.count)
}

/// `0-65535 → 100000-165535`, each line, for messages, `--explain` and `inspect`.
pub fn describe(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| {
            let last = |x: u32| x + (m.count - 1);
            format!(
                "{}-{} → {}-{}",
                m.inside,
                last(m.inside),
                m.outside,
                last(m.outside)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn modes_are_podmans() {
        assert_eq!(Userns::parse(None, &[], &[]).unwrap(), Userns::Host);
        assert_eq!(Userns::parse(Some("host"), &[], &[]).unwrap(), Userns::Host);
        assert_eq!(
            Userns::parse(Some("auto"), &[], &[]).unwrap(),
            Userns::Auto { size: 65536 }
        );
        assert_eq!(
            Userns::parse(Some("auto:size=1000"), &[], &[]).unwrap(),
            Userns::Auto { size: 1000 }
        );
        for bad in [
            "auto:size=0",
            "auto:size=70000",
            "auto:x=1",
            "keep-id",
            "private",
        ] {
            let e = Userns::parse(Some(bad), &[], &[]).unwrap_err().to_string();
            assert!(e.contains("--userns"), "{bad}: {e}");
        }
    }

    #[test]
    fn maps_are_read_and_gidmap_defaults_to_uidmap() {
        let u = Userns::parse(None, &s(&["0:100000:65536"]), &[]).unwrap();
        let m = IdMap {
            inside: 0,
            outside: 100000,
            count: 65536,
        };
        assert_eq!(
            u,
            Userns::Maps {
                uids: vec![m],
                gids: vec![m]
            }
        );
        let u = Userns::parse(None, &s(&["0:100000:1", "1:200000:10"]), &s(&["0:5:1"])).unwrap();
        let Userns::Maps { uids, gids } = u else {
            panic!()
        };
        assert_eq!((uids.len(), gids.len()), (2, 1));
        assert!(Userns::parse(Some("host"), &s(&["0:1:1"]), &[]).is_err());
        assert!(Userns::parse(Some("auto"), &s(&["0:1:1"]), &[]).is_err());
        for bad in ["0:1", "0:1:0", "a:1:1", "0:4294967295:2", "0:10:5,2:100:5"] {
            assert!(parse_maps("--uidmap", &s(&[bad])).is_err(), "{bad}");
        }
    }

    #[test]
    fn unmapped_users_are_named() {
        let u = Userns::Auto { size: 1000 };
        assert!(u.check_mapped("uid", &[0, 999], true).is_ok());
        let e = u
            .check_mapped("uid", &[65534], true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("uid 65534 is not mapped"), "{e}");
        assert_eq!(
            describe(&[IdMap {
                inside: 0,
                outside: 100000,
                count: 65536
            }]),
            "0-65535 → 100000-165535"
        );
    }
}
