//! Capabilities: which of root's powers the container keeps.
//!
//! A non-root container keeps none. A root container (`--user 0`) keeps docker's default 14
//! less `NET_RAW` (as podman), adjusted by `--cap-add`/`--cap-drop`. Inheritable and ambient are always empty, so nothing is
//! passed on through `execve` except what the kernel gives root itself.

use anyhow::{bail, Context, Result};
use caps::CapSet;
pub use caps::{Capability, CapsHashSet};

/// Docker's default capabilities (moby `oci/caps/defaults.go`) less `CAP_NET_RAW`, which podman
/// leaves out too: with it, container root forges ARP and IP on a bridge network (spoofing its
/// neighbours' addresses). `--cap-add NET_RAW` gives it back (ping-like tools).
pub const DEFAULT: [Capability; 13] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// `NET_ADMIN`, `net_admin` or `CAP_NET_ADMIN`; `ALL` stands for every capability.
fn parse(names: &[String]) -> Result<CapsHashSet> {
    let mut set = CapsHashSet::new();
    for name in names {
        if name.eq_ignore_ascii_case("all") {
            set.extend(caps::all());
            continue;
        }
        let upper = name.to_ascii_uppercase();
        let canonical = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        let cap = canonical.parse::<Capability>().map_err(|_| {
            anyhow::anyhow!(
                "unknown capability {name:?}: use a name such as NET_ADMIN or CAP_NET_ADMIN, or ALL"
            )
        })?;
        set.insert(cap);
    }
    Ok(set)
}

/// The set a container with this uid keeps.
/// `ALL` means every capability minibox itself holds (its bounding set: a host may withhold
/// some); one named outright that minibox lacks is refused by name, as no container can get it.
pub fn resolve(uid: u32, add: &[String], drop: &[String]) -> Result<CapsHashSet> {
    let named: Vec<String> = add
        .iter()
        .filter(|a| !a.eq_ignore_ascii_case("all"))
        .cloned()
        .collect();
    let named = parse(&named)?;
    let add = parse(add)?;
    let drop = parse(drop)?;
    if uid != 0 {
        return Ok(CapsHashSet::new());
    }
    let held = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
    let mut missing: Vec<String> = named.difference(&held).map(|c| c.to_string()).collect();
    if !missing.is_empty() {
        missing.sort();
        bail!(
            "--cap-add {}: minibox itself does not hold it (not in its own bounding set, \
             /proc/self/status CapBnd), so no container it makes can",
            missing.join(", ")
        );
    }
    let mut keep: CapsHashSet = DEFAULT.into_iter().collect();
    keep.extend(add.iter().copied());
    keep.retain(|c| (!drop.contains(c) || add.contains(c)) && held.contains(c));
    Ok(keep)
}

/// The five capability sets of config.json's `process.capabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapSets {
    /// The ceiling no later exec can rise above.
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub permitted: CapsHashSet,
    /// Passed on through exec to programs with matching file capabilities.
    pub inheritable: CapsHashSet,
    /// Kept through the exec of any program, for a non-root user too.
    pub ambient: CapsHashSet,
}

impl CapSets {
    /// Docker's shape: one set for bounding, effective and permitted; nothing passed on.
    pub fn same(keep: CapsHashSet) -> CapSets {
        CapSets {
            bounding: keep.clone(),
            effective: keep.clone(),
            permitted: keep,
            ..CapSets::default()
        }
    }
}

/// Keeps the permitted capabilities through the change to a non-root uid, so that
/// `set_process_caps` can then set the sets config.json asked for (execve clears the flag).
pub fn keep_through_setuid(sets: &CapSets) -> Result<()> {
    if sets.permitted.is_empty() && sets.ambient.is_empty() {
        return Ok(());
    }
    nix::sys::prctl::set_keepcaps(true).context("prctl(PR_SET_KEEPCAPS)")
}

/// Shrinks the bounding set to `keep`: the ceiling no later exec can rise above.
/// Needs CAP_SETPCAP, so it runs before we change uid.
pub fn limit_bounding_set(keep: &CapsHashSet) -> Result<()> {
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .with_context(|| format!("dropping {cap} from the bounding set"))?;
        }
    }
    Ok(())
}

/// Leaves exactly the asked sets in effective, permitted, inheritable and ambient.
pub fn set_process_caps(sets: &CapSets) -> Result<()> {
    caps::clear(None, CapSet::Ambient).context("clearing the ambient capabilities")?;
    // All we still hold in effective, so that CAP_SETPCAP allows the inheritable set.
    let held = caps::read(None, CapSet::Permitted).context("reading the capabilities")?;
    caps::set(None, CapSet::Effective, &held).context("raising the effective capabilities")?;
    caps::set(None, CapSet::Inheritable, &sets.inheritable)
        .context("setting the inheritable capabilities (each must be in the bounding set)")?;
    // Effective must never hold more than permitted: narrow it first.
    caps::set(None, CapSet::Effective, &sets.effective)
        .context("setting the effective capabilities")?;
    caps::set(None, CapSet::Permitted, &sets.permitted)
        .context("setting the permitted capabilities")?;
    for cap in &sets.ambient {
        caps::raise(None, CapSet::Ambient, *cap)
            .with_context(|| format!("raising {cap} in the ambient set"))?;
    }
    if caps::read(None, CapSet::Permitted).context("reading back the capabilities")?
        != sets.permitted
    {
        bail!("the kernel kept other capabilities than asked for");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn root_keeps_docker_default() {
        let keep = resolve(0, &[], &[]).unwrap();
        assert_eq!(keep.len(), 13);
        assert!(
            !keep.contains(&Capability::CAP_NET_RAW),
            "podman's default: no NET_RAW"
        );
        assert!(keep.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert!(!keep.contains(&Capability::CAP_SYS_ADMIN));
    }

    #[test]
    fn add_and_drop_adjust_root() {
        let keep = resolve(
            0,
            &s(&["net_admin", "CAP_SYS_TIME"]),
            &s(&["CHOWN", "kill"]),
        )
        .unwrap();
        assert!(keep.contains(&Capability::CAP_NET_ADMIN));
        assert!(keep.contains(&Capability::CAP_SYS_TIME));
        assert!(!keep.contains(&Capability::CAP_CHOWN));
        assert!(!keep.contains(&Capability::CAP_KILL));
        assert_eq!(keep.len(), 13);
    }

    #[test]
    fn drop_all_then_add_one() {
        let keep = resolve(0, &s(&["NET_BIND_SERVICE"]), &s(&["ALL"])).unwrap();
        assert_eq!(
            keep.into_iter().collect::<Vec<_>>(),
            vec![Capability::CAP_NET_BIND_SERVICE]
        );
        // ALL: every capability minibox itself holds (this host may withhold some).
        let held = caps::read(None, caps::CapSet::Bounding).unwrap();
        assert_eq!(resolve(0, &s(&["all"]), &[]).unwrap(), held);
    }

    #[test]
    fn a_capability_minibox_lacks_is_refused_by_name() {
        let held = caps::read(None, caps::CapSet::Bounding).unwrap();
        match caps::all().difference(&held).next() {
            Some(lacking) => {
                let name = lacking.to_string();
                let e = resolve(0, std::slice::from_ref(&name), &[])
                    .unwrap_err()
                    .to_string();
                assert!(e.contains(&name) && e.contains("does not hold it"), "{e}");
            }
            // A host that withholds nothing: every named capability is granted.
            None => assert!(resolve(0, &s(&["SYS_ADMIN"]), &[]).is_ok()),
        }
    }

    #[test]
    fn non_root_keeps_nothing() {
        assert!(resolve(65534, &s(&["NET_ADMIN"]), &[]).unwrap().is_empty());
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = resolve(0, &s(&["FLY"]), &[]).unwrap_err().to_string();
        assert!(e.contains("unknown capability \"FLY\""), "{e}");
        assert!(resolve(65534, &[], &s(&["nope"])).is_err());
    }
}
