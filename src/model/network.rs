//! The container's network as the model holds it: its mode (`--network`), what its name
//! resolution and address are made of (`--ip`, `--add-host`, `--dns`, `--network-alias`), and
//! its published ports (`-p`), each parsed and checked by the rules below.
//!
//! `private` (minibox's default): the container's own namespace holds only `lo`. Published ports
//! are then served by the supervisor's relay (`runtime::ports`): it listens on the host and, for
//! each connection, connects to `127.0.0.1:PORT` from *inside* the container's network
//! namespace and relays the bytes. On a bridge network (`bridge`, or one made by `minibox
//! network create`; see `runtime::network`) the kernel forwards published ports (DNAT in
//! minibox's nftables table); the host port is still bound, so no other program takes it, and
//! the relay serves only what DNAT cannot: connections from the host's own loopback.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::model::names::check_name;

/// `--network`: where the container's network namespace comes from, and what is in it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// A new namespace with `lo` up, and nothing else; `-p` through the userland relay.
    #[default]
    Private,
    /// A new namespace with `lo` down: no network at all.
    None,
    /// The host's own network namespace.
    Host,
    /// A new namespace plugged into minibox network NAME (`bridge`, the default network, or
    /// one made by `minibox network create`): a veth on its Linux bridge, an address of its
    /// subnet, a default route through the bridge; `-p` by DNAT in the kernel.
    Bridge(String),
    /// `container:NAME`: the network namespace of that (running) container.
    Container(String),
    /// An existing network namespace, by path (an OCI bundle's `linux.namespaces` path).
    Join(PathBuf),
}

impl Network {
    pub fn parse(text: &str) -> Result<Network> {
        match text {
            "private" | "default" => Ok(Network::Private),
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            _ => match text.strip_prefix("container:") {
                Some(name) => {
                    check_name(name).map_err(|_| {
                        anyhow::anyhow!(
                            "invalid --network {text:?}: container:NAME needs a container's \
                             name or id"
                        )
                    })?;
                    Ok(Network::Container(name.to_string()))
                }
                None => {
                    check_network_name(text).map_err(|e| {
                        anyhow::anyhow!(
                            "invalid --network {text:?}: use private, none, host, bridge, \
                             container:NAME or the name of a network ({e})"
                        )
                    })?;
                    Ok(Network::Bridge(text.to_string()))
                }
            },
        }
    }

    /// As `--network` takes it.
    pub fn name(&self) -> String {
        match self {
            Network::Private => "private".into(),
            Network::None => "none".into(),
            Network::Host => "host".into(),
            Network::Bridge(n) => n.clone(),
            Network::Container(c) => format!("container:{c}"),
            Network::Join(p) => format!("ns:{}", p.display()),
        }
    }

    /// Whether the container gets a network namespace of its own (made by `clone`).
    pub fn has_own_namespace(&self) -> bool {
        matches!(self, Network::Private | Network::None | Network::Bridge(_))
    }
}

/// What a container's name resolution and addresses are made of, beyond its network.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NetOptions {
    /// `--ip`: the address asked for on a bridge network.
    pub ip: Option<Ipv4Addr>,
    /// `--add-host NAME:IP`; IP may be `host-gateway` (the network's gateway).
    pub add_hosts: Vec<(String, String)>,
    /// `--dns`: nameservers for its resolv.conf, instead of the host's.
    pub dns: Vec<IpAddr>,
    /// `--network-alias`: more names the other containers of its network know it by.
    pub aliases: Vec<String>,
}

impl NetOptions {
    /// Checks the flags against the network they are for.
    pub fn parse(
        network: &Network,
        ip: Option<&str>,
        add_hosts: &[String],
        dns: &[String],
        aliases: &[String],
    ) -> Result<NetOptions> {
        let bridge = matches!(network, Network::Bridge(_));
        let ip = ip
            .map(|text| {
                text.parse::<Ipv4Addr>()
                    .map_err(|_| anyhow::anyhow!("invalid --ip {text:?}: give an IPv4 address"))
            })
            .transpose()?;
        if ip.is_some() && !bridge {
            bail!("--ip needs a bridge network (--network bridge or a network's name), not --network {}", network.name());
        }
        if !aliases.is_empty() && !bridge {
            bail!("--network-alias needs a bridge network (--network bridge or a network's name)");
        }
        let mut hosts = vec![];
        for entry in add_hosts {
            let (name, addr) = entry
                .split_once(':')
                .filter(|(n, a)| !n.is_empty() && !a.is_empty())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "invalid --add-host {entry:?}: use NAME:IP or NAME:host-gateway"
                    )
                })?;
            check_host_name(name).with_context(|| format!("invalid --add-host {entry:?}"))?;
            if addr == "host-gateway" {
                if !bridge {
                    bail!("--add-host {entry:?}: host-gateway needs a bridge network (the host's address on it)");
                }
            } else if addr.parse::<IpAddr>().is_err() {
                bail!(
                    "invalid --add-host {entry:?}: {addr:?} is not an IP address (or host-gateway)"
                );
            }
            hosts.push((name.to_string(), addr.to_string()));
        }
        let dns = dns
            .iter()
            .map(|d| {
                d.parse::<IpAddr>()
                    .map_err(|_| anyhow::anyhow!("invalid --dns {d:?}: give an IP address"))
            })
            .collect::<Result<Vec<_>>>()?;
        for alias in aliases {
            check_host_name(alias).with_context(|| format!("invalid --network-alias {alias:?}"))?;
        }
        Ok(NetOptions {
            ip,
            add_hosts: hosts,
            dns,
            aliases: aliases.to_vec(),
        })
    }
}

/// A name a hosts file can hold: letters, digits, `-`, `_` and `.`, 1 to 253 bytes.
pub fn check_host_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        bail!("a host name is 1 to 253 letters, digits, '-', '_' or '.'");
    }
    Ok(())
}

/// A published port's protocol (`-p ...:53/udp`); `tcp` when `-p` names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
}

impl Proto {
    pub fn parse(text: &str) -> Option<Proto> {
        match text {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }

    /// As `-p`, `ps` and nftables write it.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One `-p [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/tcp|/udp]`; host port 0 lets the kernel
/// choose (`-p 8080`, `-p 127.0.0.1::8080`, and `-P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    /// Absent in records written before UDP: tcp.
    #[serde(default)]
    pub proto: Proto,
}

impl PortMapping {
    pub fn parse(text: &str) -> Result<PortMapping> {
        let bad = |why: &str| {
            anyhow::anyhow!(
                "invalid --publish {text:?}: {why}; use [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/tcp|/udp]"
            )
        };
        let (spec, proto) = match text.rsplit_once('/') {
            Some((s, p)) => match Proto::parse(p) {
                Some(proto) => (s, proto),
                None => {
                    return Err(bad(&format!(
                        "protocol {p:?} is not supported, only tcp and udp"
                    )))
                }
            },
            None => (text, Proto::Tcp),
        };
        if spec.contains('-') {
            return Err(bad("port ranges are not supported; publish each port"));
        }
        // An IPv6 host address comes in brackets: [::1]:8080:80.
        let (host_ip, rest) = if let Some(v6) = spec.strip_prefix('[') {
            let (ip, rest) = v6.split_once("]:").ok_or_else(|| bad("unclosed '['"))?;
            (
                ip.parse::<IpAddr>().map_err(|_| bad("bad host address"))?,
                rest,
            )
        } else {
            match spec.split(':').collect::<Vec<_>>().as_slice() {
                // docker's `-p 8080`: the container's port, on a port the kernel picks.
                [_] => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), spec),
                [_, _] => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), spec),
                [ip, _, _] => (
                    ip.parse::<IpAddr>().map_err(|_| bad("bad host address"))?,
                    &spec[ip.len() + 1..],
                ),
                _ => return Err(bad("too many ':'")),
            }
        };
        let (host, container) = rest.split_once(':').unwrap_or(("", rest));
        let host_port = if host.is_empty() {
            0
        } else {
            host.parse::<u16>().map_err(|_| bad("bad host port"))?
        };
        let container_port = container
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("bad container port"))?;
        Ok(PortMapping {
            host_ip,
            host_port,
            container_port,
            proto,
        })
    }

    /// An image's `ExposedPorts` key (`8080/tcp`, `53/udp`, `8080`), as `-P` publishes it: on
    /// every host address, on a port the kernel picks.
    pub fn exposed(key: &str) -> Result<PortMapping> {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let proto = Proto::parse(&proto.to_ascii_lowercase());
        match (port.parse::<u16>(), proto) {
            (Ok(p), Some(proto)) if p != 0 => Ok(PortMapping {
                host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                host_port: 0,
                container_port: p,
                proto,
            }),
            _ => bail!(
                "the exposed port {key:?} cannot be published: use PORT/tcp or PORT/udp \
                 (--expose, or the image's ExposedPorts)"
            ),
        }
    }

    /// docker's way of showing it: `0.0.0.0:8080->80/tcp`.
    pub fn display(&self) -> String {
        format!(
            "{}->{}/{}",
            self.host_addr(),
            self.container_port,
            self.proto.name()
        )
    }

    /// `0.0.0.0:8080`, `[::1]:8443`: where it listens on the host.
    pub fn host_addr(&self) -> String {
        match self.host_ip {
            IpAddr::V6(v6) => format!("[{v6}]:{}", self.host_port),
            v4 => format!("{v4}:{}", self.host_port),
        }
    }

    /// `-p`'s own syntax, which `parse` reads back (config.json's annotation).
    pub fn to_flag(self) -> String {
        format!(
            "{}:{}/{}",
            self.host_addr(),
            self.container_port,
            self.proto.name()
        )
    }
}

/// Network names follow container names' rule.
pub fn check_network_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 64;
    if !ok {
        bail!("invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* (64 at most) is allowed");
    }
    if ["host", "none", "private", "default"].contains(&name)
        || name.starts_with("container") && name.contains(':')
    {
        bail!("network name {name:?} is reserved: it names a network mode of --network");
    }
    Ok(())
}

/// The directory of the state root that holds networks and leases, beside the containers' (no
/// container may take it for its id).
pub const NETWORKS_DIR: &str = "networks";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_follows_dockers_syntax() {
        let p = PortMapping::parse("8080:80").unwrap();
        assert_eq!(
            (
                p.host_ip.to_string().as_str(),
                p.host_port,
                p.container_port
            ),
            ("0.0.0.0", 8080, 80)
        );
        let p = PortMapping::parse("127.0.0.1:9000:8080/tcp").unwrap();
        assert_eq!(
            (
                p.host_ip.to_string().as_str(),
                p.host_port,
                p.container_port
            ),
            ("127.0.0.1", 9000, 8080)
        );
        let p = PortMapping::parse("127.0.0.1::8080").unwrap();
        assert_eq!((p.host_port, p.container_port), (0, 8080));
        let p = PortMapping::parse("[::1]:8443:443").unwrap();
        assert_eq!((p.host_ip.to_string().as_str(), p.host_port), ("::1", 8443));
        assert_eq!(
            PortMapping::parse("1.2.3.4:80:8080").unwrap().display(),
            "1.2.3.4:80->8080/tcp"
        );
        // docker's -p PORT: the container's port on a port the kernel picks, every address.
        let p = PortMapping::parse("8080").unwrap();
        assert_eq!(
            (
                p.host_ip.to_string().as_str(),
                p.host_port,
                p.container_port
            ),
            ("0.0.0.0", 0, 8080)
        );
        let p = PortMapping::parse("5353:53/udp").unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.proto),
            (5353, 53, Proto::Udp)
        );
        assert_eq!(p.display(), "0.0.0.0:5353->53/udp");
        assert_eq!(PortMapping::parse("53/udp").unwrap().host_port, 0);
        for text in [
            "127.0.0.1:9000:8080/udp",
            "[::1]:8443:443",
            "0.0.0.0:0:53/udp",
        ] {
            let p = PortMapping::parse(text).unwrap();
            assert_eq!(PortMapping::parse(&p.to_flag()).unwrap(), p, "{text}");
        }
    }

    #[test]
    fn exposed_ports_publish_on_a_port_the_kernel_picks() {
        let p = PortMapping::exposed("8080/tcp").unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.proto),
            (0, 8080, Proto::Tcp)
        );
        assert_eq!(PortMapping::exposed("53/udp").unwrap().proto, Proto::Udp);
        assert_eq!(PortMapping::exposed("9000").unwrap().proto, Proto::Tcp);
        for bad in ["x/tcp", "80/sctp", "0/tcp", ""] {
            assert!(PortMapping::exposed(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn records_before_udp_read_as_tcp() {
        let old = r#"{"host_ip":"0.0.0.0","host_port":80,"container_port":8080}"#;
        let p: PortMapping = serde_json::from_str(old).unwrap();
        assert_eq!(p.proto, Proto::Tcp);
    }

    #[test]
    fn publish_rejects_nonsense() {
        for bad in [
            "a:80",
            "80:b",
            "80:0",
            "80:70000",
            "300.1.1.1:80:80",
            "80:80/sctp",
            "8080-8081:80-81",
            "1.2.3.4:1:2:3",
            "[::1:80:80",
            "",
        ] {
            let e = PortMapping::parse(bad).unwrap_err().to_string();
            assert!(e.contains("invalid --publish"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn network_modes() {
        assert_eq!(Network::parse("private").unwrap(), Network::Private);
        assert_eq!(Network::parse("none").unwrap(), Network::None);
        assert_eq!(Network::parse("host").unwrap(), Network::Host);
        assert_eq!(
            Network::parse("wifi").unwrap(),
            Network::Bridge("wifi".into())
        );
        assert_eq!(
            Network::parse("container:db").unwrap(),
            Network::Container("db".into())
        );
        assert!(Network::parse("container:").is_err());
        assert!(Network::parse("a b").is_err());
    }

    #[test]
    fn network_names_follow_container_names_rule() {
        assert!(check_network_name("bridge").is_ok());
        assert!(check_network_name("host").is_err());
        assert!(check_network_name("a b").is_err());
    }
}
