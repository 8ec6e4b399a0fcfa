//! What minibox remembers about networks: one directory per network under the state root
//! (`<root>/networks/<name>/`), holding `network.json` (its subnet, gateway and bridge) and
//! `leases.json` (which container holds which address, under which names, with which published
//! ports). Every change is made under one lock (`<root>/networks/lock`): addresses are handed
//! out, returned, and every member's `/etc/hosts` rewritten, as one step.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::network::{PortMapping, NETWORKS_DIR};
use crate::store::state::{lock_file, Lock};

/// The network `--network bridge` (and a container on no network flag... see README) uses,
/// made on first use. Podman's default subnet; docker's 172.17.0.0/16 stays docker's.
pub const DEFAULT_NETWORK: &str = "bridge";
pub const DEFAULT_SUBNET: &str = "10.88.0.0/16";

/// An IPv4 subnet: `10.88.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(text: &str) -> Result<Subnet> {
        let bad =
            || anyhow::anyhow!("invalid subnet {text:?}: use an IPv4 CIDR such as 10.89.0.0/24");
        let (ip, prefix) = text.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            bail!("invalid subnet {text:?}: the prefix must be between /8 and /30");
        }
        let subnet = Subnet {
            base: Ipv4Addr::from(u32::from(ip) & Self::mask_of(prefix)),
            prefix,
        };
        if subnet.base != ip {
            bail!(
                "invalid subnet {text:?}: host bits are set; did you mean {}?",
                subnet
            );
        }
        Ok(subnet)
    }

    fn mask_of(prefix: u8) -> u32 {
        u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask_of(self.prefix) == u32::from(self.base)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.base) || other.contains(self.base)
    }

    /// The network's broadcast address (never handed out).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) | !Self::mask_of(self.prefix))
    }

    /// The first usable address: docker's and podman's gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl TryFrom<String> for Subnet {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Subnet> {
        Subnet::parse(&s)
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

/// `network.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    pub subnet: Subnet,
    /// The bridge's own address: the containers' default route, and `host.docker.internal`.
    pub gateway: Ipv4Addr,
    /// The Linux bridge, `mbx-` and 11 hex digits of the id.
    pub bridge: String,
    pub created_ms: u64,
}

/// One container on a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub ip: Ipv4Addr,
    /// The container's id.
    pub container: String,
    pub name: String,
    pub hostname: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The host end of its veth pair.
    pub veth: String,
    /// Published ports (host ports as bound): DNAT rules in minibox's nftables table.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// `--add-host` entries, for its own hosts file.
    #[serde(default)]
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// Where its generated hosts file is (rewritten when members come and go).
    pub hosts_file: PathBuf,
}

/// The networks directory.
pub struct Networks {
    dir: PathBuf,
}

impl Networks {
    pub fn open(state_root: &Path) -> Result<Networks> {
        let dir = state_root.join(NETWORKS_DIR);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(Networks { dir })
    }

    /// Without creating anything: `None` when no network was ever made there.
    pub fn existing(state_root: &Path) -> Option<Networks> {
        let dir = state_root.join(NETWORKS_DIR);
        dir.is_dir().then_some(Networks { dir })
    }

    /// The one lock every change of networks and leases is made under.
    pub fn lock(&self) -> Result<Lock> {
        lock_file(&self.dir.join("lock"))
    }

    fn net_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn list(&self) -> Result<Vec<NetworkRecord>> {
        let mut all = vec![];
        let entries =
            fs::read_dir(&self.dir).with_context(|| format!("listing {}", self.dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                if let Some(n) = self.load(&name)? {
                    all.push(n);
                }
            }
        }
        all.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.name.cmp(&b.name)));
        Ok(all)
    }

    pub fn load(&self, name: &str) -> Result<Option<NetworkRecord>> {
        let path = self.net_dir(name).join("network.json");
        match fs::read(&path) {
            Ok(text) => serde_json::from_slice(&text)
                .map(Some)
                .with_context(|| format!("{} is not a minibox network record", path.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Records a new network (under the lock, by the caller).
    pub fn save(&self, net: &NetworkRecord) -> Result<()> {
        let dir = self.net_dir(&net.name);
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        write_atomic(&dir.join("network.json"), &serde_json::to_vec_pretty(net)?)
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        match fs::remove_dir_all(self.net_dir(name)) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing network {name}'s records"))
            }
            _ => Ok(()),
        }
    }

    pub fn leases(&self, name: &str) -> Result<Vec<Lease>> {
        let path = self.net_dir(name).join("leases.json");
        match fs::read(&path) {
            Ok(text) => serde_json::from_slice::<BTreeMap<Ipv4Addr, Lease>>(&text)
                .map(|m| m.into_values().collect())
                .with_context(|| format!("{} is not a minibox lease file", path.display())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save_leases(&self, name: &str, leases: &[Lease]) -> Result<()> {
        let map: BTreeMap<Ipv4Addr, &Lease> = leases.iter().map(|l| (l.ip, l)).collect();
        write_atomic(
            &self.net_dir(name).join("leases.json"),
            &serde_json::to_vec_pretty(&map)?,
        )
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The first address of `subnet` that is neither the gateway, the broadcast, nor leased.
pub fn free_address(subnet: &Subnet, gateway: Ipv4Addr, leases: &[Lease]) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.base) + 1;
    let last = u32::from(subnet.broadcast());
    (first..last)
        .map(Ipv4Addr::from)
        .find(|ip| *ip != gateway && !leases.iter().any(|l| l.ip == *ip))
}

/// A subnet for a new network when none is asked for: the first free /24 of 10.89.0.0/16 up
/// (podman's choice), clear of every existing network's.
pub fn pick_subnet(existing: &[NetworkRecord]) -> Result<Subnet> {
    for second in 89..=254u8 {
        for third in 0..=255u8 {
            let candidate = Subnet {
                base: Ipv4Addr::new(10, second, third, 0),
                prefix: 24,
            };
            if !existing.iter().any(|n| n.subnet.overlaps(&candidate)) {
                return Ok(candidate);
            }
        }
    }
    bail!("no free subnet left in 10.89.0.0-10.254.255.0: give one with --subnet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_refuse() {
        let s = Subnet::parse("10.88.0.0/16").unwrap();
        assert_eq!(s.first_host(), Ipv4Addr::new(10, 88, 0, 1));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert!(s.contains(Ipv4Addr::new(10, 88, 3, 4)));
        assert!(!s.contains(Ipv4Addr::new(10, 89, 0, 1)));
        for bad in [
            "10.88.0.1/16",
            "10.88.0.0",
            "x/16",
            "10.0.0.0/31",
            "10.0.0.0/4",
        ] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_are_handed_out_once() {
        let s = Subnet::parse("10.9.9.0/30").unwrap();
        let gw = s.first_host();
        let lease = |ip| Lease {
            ip,
            container: "c".into(),
            name: "n".into(),
            hostname: "h".into(),
            aliases: vec![],
            veth: "v".into(),
            ports: vec![],
            extra_hosts: vec![],
            hosts_file: PathBuf::new(),
        };
        let a = free_address(&s, gw, &[]).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 9, 2));
        assert_eq!(free_address(&s, gw, &[lease(a)]), None);
    }

    #[test]
    fn new_networks_get_disjoint_subnets() {
        let rec = |s: &str| NetworkRecord {
            name: s.into(),
            id: "0".repeat(64),
            subnet: Subnet::parse(s).unwrap(),
            gateway: Ipv4Addr::UNSPECIFIED,
            bridge: "b".into(),
            created_ms: 0,
        };
        let picked = pick_subnet(&[rec("10.89.0.0/24"), rec("10.89.1.0/24")]).unwrap();
        assert_eq!(picked.to_string(), "10.89.2.0/24");
    }
}
