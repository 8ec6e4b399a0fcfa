//! minibox's own nftables tables: `inet minibox` (masquerading of each network's outbound
//! traffic, isolation between networks, the DNAT of published ports) and `bridge minibox` (the
//! guard: a frame from a container's veth must carry that container's MAC and IPv4 address,
//! in its Ethernet header, its ARP sender fields and its IPv4 source; anything else from it,
//! IPv6 and VLAN tags included, is dropped — no ARP spoofing, no forged source address).
//!
//! The tables are rendered whole from the records (networks and their leases) and replaced in
//! one `nft -f -` transaction (`table` + `delete table` + the new table) when a network is made
//! or removed, so they say exactly what the records say, a killed minibox leaves nothing that
//! the next change does not correct, and no other table, chain or rule of the host is read or
//! touched. With no network left, both tables are deleted.
//!
//! What varies per container lives in sets and maps (`guard`, `ports`, `ports_at`): a
//! container's start or end adds or deletes its elements over netlink (`elements`, through
//! `kernel::nftables`), without running `nft`; the rendered script writes the same elements,
//! so both ways agree.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::kernel::nftables::{Element, Key, FAMILY_BRIDGE, FAMILY_INET};
use crate::model::network::{PortMapping, Proto};
use crate::store::networks::{Lease, NetworkRecord};

pub const TABLE: &str = "minibox";

/// A container's MAC, from its address (as docker's 02:42:...): fixed when its veth is made,
/// so the guard knows it before the container runs.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => libc::IPPROTO_TCP as u8,
        Proto::Udp => libc::IPPROTO_UDP as u8,
    }
}

/// Where a published port is served by DNAT: on every local address (`ports`), or on one
/// (`ports_at`). Loopback and IPv6 host addresses are the userland relay's.
enum Dnat {
    Any,
    At(Ipv4Addr),
}

fn dnat_of(p: &PortMapping) -> Option<Dnat> {
    match p.host_ip {
        IpAddr::V4(v4) if v4.is_unspecified() => Some(Dnat::Any),
        IpAddr::V4(v4) if !v4.is_loopback() => Some(Dnat::At(v4)),
        _ => None,
    }
}

/// The set and map elements of one member: its guard entry, its published ports.
pub fn elements(lease: &Lease) -> Vec<Element> {
    let el = |family, set: &str, key, data| Element {
        family,
        table: TABLE.to_string(),
        set: set.to_string(),
        key,
        data,
    };
    let mut all = vec![el(
        FAMILY_BRIDGE,
        "guard",
        Key::new()
            .ifname(&lease.veth)
            .mac(mac_for(lease.ip))
            .ipv4(lease.ip),
        None,
    )];
    for p in &lease.ports {
        let to = Key::new().ipv4(lease.ip).port(p.container_port);
        let proto = proto_number(p.proto);
        match dnat_of(p) {
            Some(Dnat::Any) => all.push(el(
                FAMILY_INET,
                "ports",
                Key::new().proto(proto).port(p.host_port),
                Some(to),
            )),
            Some(Dnat::At(v4)) => all.push(el(
                FAMILY_INET,
                "ports_at",
                Key::new().ipv4(v4).proto(proto).port(p.host_port),
                Some(to),
            )),
            None => {}
        }
    }
    all
}

/// Both tables for these networks and their members.
pub fn render(networks: &[(NetworkRecord, Vec<Lease>)]) -> String {
    // Creating then deleting makes the delete succeed whether the table existed or not.
    let mut s = String::new();
    for family in ["inet", "bridge"] {
        s.push_str(&format!(
            "table {family} {TABLE}\ndelete table {family} {TABLE}\n"
        ));
    }
    if networks.is_empty() {
        return s;
    }
    let mut post = vec![];
    let mut fwd = vec![
        // Replies, and what a published port let in, go through whatever the networks are.
        "ct state established,related accept".to_string(),
        "ct status dnat accept".to_string(),
    ];
    let (mut guard, mut ports, mut ports_at) = (vec![], vec![], vec![]);
    for (net, leases) in networks {
        let (subnet, bridge) = (net.subnet, &net.bridge);
        // Outbound: the host's address replaces the container's.
        post.push(format!(
            "ip saddr {subnet} oifname != \"{bridge}\" masquerade comment \"{}\"",
            net.name
        ));
        // A container reaching a published port of its own network through the host's
        // address (host.docker.internal:PORT): the answer must come back through the host.
        post.push(format!(
            "ip saddr {subnet} oifname \"{bridge}\" ct status dnat masquerade comment \"{}\"",
            net.name
        ));
        // Between two minibox networks nothing passes (but published ports, above).
        fwd.push(format!(
            "iifname \"{bridge}\" oifname \"mbx-*\" oifname != \"{bridge}\" drop comment \"{}\"",
            net.name
        ));
        for lease in leases {
            guard.push(format!(
                "\"{}\" . {} . {}",
                lease.veth,
                mac_text(mac_for(lease.ip)),
                lease.ip
            ));
            for p in &lease.ports {
                let to = format!("{} . {}", lease.ip, p.container_port);
                let proto = p.proto.name();
                match dnat_of(p) {
                    Some(Dnat::Any) => ports.push(format!("{proto} . {} : {to}", p.host_port)),
                    Some(Dnat::At(v4)) => {
                        ports_at.push(format!("{v4} . {proto} . {} : {to}", p.host_port))
                    }
                    None => {}
                }
            }
        }
    }
    let chain = |name: &str, head: &str, rules: &[String]| {
        let mut c = format!("  chain {name} {{\n    {head}\n");
        for r in rules {
            c.push_str(&format!("    {r}\n"));
        }
        c.push_str("  }\n");
        c
    };
    let set = |name: &str, kind: &str, elements: &[String]| {
        let word = if kind.contains(':') { "map" } else { "set" };
        let mut c = format!("  {word} {name} {{\n    type {kind}\n");
        if !elements.is_empty() {
            c.push_str(&format!("    elements = {{ {} }}\n", elements.join(", ")));
        }
        c.push_str("  }\n");
        c
    };
    const PUBLISHED: &str = "ipv4_addr . inet_service";
    s.push_str(&format!("table inet {TABLE} {{\n"));
    s.push_str(&set(
        "ports",
        &format!("inet_proto . inet_service : {PUBLISHED}"),
        &ports,
    ));
    s.push_str(&set(
        "ports_at",
        &format!("ipv4_addr . inet_proto . inet_service : {PUBLISHED}"),
        &ports_at,
    ));
    let dnat = [
        "meta nfproto ipv4 fib daddr type local dnat ip to meta l4proto . th dport map @ports"
            .to_string(),
        "meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @ports_at".to_string(),
    ];
    s.push_str(&chain(
        "prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
        &dnat,
    ));
    // The host's own connections too, but from loopback (the relay takes those).
    let local = [
        "meta nfproto ipv4 fib daddr type local ip daddr != 127.0.0.0/8 \
         dnat ip to meta l4proto . th dport map @ports"
            .to_string(),
        dnat[1].clone(),
    ];
    s.push_str(&chain(
        "output",
        "type nat hook output priority -100; policy accept;",
        &local,
    ));
    s.push_str(&chain(
        "postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
        &post,
    ));
    s.push_str(&chain(
        "forward",
        "type filter hook forward priority filter; policy accept;",
        &fwd,
    ));
    s.push_str("}\n");
    s.push_str(&format!("table bridge {TABLE} {{\n"));
    s.push_str(&set("guard", "ifname . ether_addr . ipv4_addr", &guard));
    let rules = [
        // Only containers' veths are guarded (the host's own ports of the bridge are not).
        "iifname != \"mbxv*\" accept".to_string(),
        // ARP: the sender's MAC and address, in the frame's header and in the ARP body.
        "ether type arp iifname . ether saddr . arp saddr ip != @guard drop".to_string(),
        "ether type arp iifname . arp saddr ether . arp saddr ip != @guard drop".to_string(),
        "ether type ip iifname . ether saddr . ip saddr != @guard drop".to_string(),
        // Minibox's networks are IPv4: nothing else (IPv6 neighbour discovery, VLAN tags)
        // could be checked, so nothing else passes.
        "ether type != { arp, ip } drop".to_string(),
    ];
    s.push_str(&chain(
        "prerouting",
        "type filter hook prerouting priority -300; policy accept;",
        &rules,
    ));
    s.push_str("}\n");
    s
}

/// Adds (`add`) or deletes the elements of these members over netlink (no `nft` process).
pub fn change_members(leases: &[&Lease], add: bool) -> Result<()> {
    let all: Vec<Element> = leases.iter().flat_map(|l| elements(l)).collect();
    crate::kernel::nftables::change(&all, add)
}

/// Replaces minibox's tables with `script` (see `render`), atomically.
pub fn apply(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context(
            "running nft (minibox's bridge networks need nftables: apt-get install nftables)",
        )?;
    child
        .stdin
        .take()
        .context("nft's stdin")?
        .write_all(script.as_bytes())
        .context("writing to nft")?;
    let out = child.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        bail!(
            "nft refused minibox's table: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::network::PortMapping;
    use crate::store::networks::Subnet;
    use std::path::PathBuf;

    #[test]
    fn the_table_says_what_the_records_say() {
        assert_eq!(
            render(&[]),
            "table inet minibox\ndelete table inet minibox\n\
             table bridge minibox\ndelete table bridge minibox\n"
        );
        let net = NetworkRecord {
            name: "web".into(),
            id: "a".repeat(64),
            subnet: Subnet::parse("10.89.0.0/24").unwrap(),
            gateway: "10.89.0.1".parse().unwrap(),
            bridge: "mbx-aaaaaaaaaaa".into(),
            created_ms: 0,
        };
        let lease = Lease {
            ip: "10.89.0.2".parse().unwrap(),
            container: "c".into(),
            name: "redis".into(),
            hostname: "h".into(),
            aliases: vec![],
            veth: "v".into(),
            ports: vec![
                PortMapping::parse("6379:6379").unwrap(),
                PortMapping::parse("5353:53/udp").unwrap(),
            ],
            extra_hosts: vec![],
            hosts_file: PathBuf::new(),
        };
        let s = render(&[(net, vec![lease.clone()])]);
        assert!(
            s.contains("ip saddr 10.89.0.0/24 oifname != \"mbx-aaaaaaaaaaa\" masquerade"),
            "{s}"
        );
        assert!(
            s.contains("elements = { tcp . 6379 : 10.89.0.2 . 6379, udp . 5353 : 10.89.0.2 . 53 }"),
            "{s}"
        );
        assert!(
            s.contains("elements = { \"v\" . 02:42:0a:59:00:02 . 10.89.0.2 }"),
            "{s}"
        );
        assert!(
            s.starts_with("table inet minibox\ndelete table inet minibox\n"),
            "{s}"
        );
        // Over netlink, the same: the guard's element and one per DNAT'd port.
        let els = elements(&lease);
        assert_eq!(els.len(), 3);
        assert_eq!(els[0].set, "guard");
        assert_eq!(els[1].set, "ports");
    }
}
