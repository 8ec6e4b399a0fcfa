//! minibox's own nftables table, `inet minibox`: masquerading of each network's outbound
//! traffic, isolation between networks, and the DNAT of published ports.
//!
//! The table is never edited rule by rule: it is rendered whole from the records (networks and
//! their leases) and replaced in one `nft -f -` transaction (`table` + `delete table` + the new
//! table), so it always says exactly what the records say, a killed minibox leaves nothing that
//! the next change does not correct, and no other table, chain or rule of the host is read or
//! touched. With no network left, the table is deleted.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::store::networks::{Lease, NetworkRecord};

pub const TABLE: &str = "minibox";

/// The whole table for these networks and their members.
pub fn render(networks: &[(NetworkRecord, Vec<Lease>)]) -> String {
    // Creating then deleting makes the delete succeed whether the table existed or not.
    let mut s = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
    if networks.is_empty() {
        return s;
    }
    let mut pre = vec![];
    let mut out = vec![];
    let mut post = vec![];
    let mut fwd = vec![
        // Replies, and what a published port let in, go through whatever the networks are.
        "ct state established,related accept".to_string(),
        "ct status dnat accept".to_string(),
    ];
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
            for p in &lease.ports {
                let to = format!("dnat ip to {}:{}", lease.ip, p.container_port);
                let proto = p.proto.name();
                let comment = format!("comment \"{} {}\"", net.name, lease.name);
                match p.host_ip {
                    IpAddr::V4(v4) if v4.is_unspecified() => {
                        pre.push(format!(
                            "fib daddr type local {proto} dport {} {to} {comment}",
                            p.host_port
                        ));
                        // The host's own connections, but from loopback (the relay takes those).
                        out.push(format!(
                            "fib daddr type local ip daddr != 127.0.0.0/8 {proto} dport {} {to} {comment}",
                            p.host_port
                        ));
                    }
                    IpAddr::V4(v4) if !v4.is_loopback() => {
                        pre.push(format!(
                            "ip daddr {v4} {proto} dport {} {to} {comment}",
                            p.host_port
                        ));
                        out.push(format!(
                            "ip daddr {v4} {proto} dport {} {to} {comment}",
                            p.host_port
                        ));
                    }
                    // Loopback and IPv6 host addresses: the userland relay serves them.
                    _ => {}
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
    s.push_str(&format!("table inet {TABLE} {{\n"));
    s.push_str(&chain(
        "prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
        &pre,
    ));
    s.push_str(&chain(
        "output",
        "type nat hook output priority -100; policy accept;",
        &out,
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
    s
}

/// Replaces minibox's table with `script` (see `render`), atomically.
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
            "table inet minibox\ndelete table inet minibox\n"
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
        let s = render(&[(net, vec![lease])]);
        assert!(
            s.contains("ip saddr 10.89.0.0/24 oifname != \"mbx-aaaaaaaaaaa\" masquerade"),
            "{s}"
        );
        assert!(
            s.contains("fib daddr type local tcp dport 6379 dnat ip to 10.89.0.2:6379"),
            "{s}"
        );
        assert!(
            s.contains("fib daddr type local udp dport 5353 dnat ip to 10.89.0.2:53"),
            "{s}"
        );
        assert!(
            s.starts_with("table inet minibox\ndelete table inet minibox\n"),
            "{s}"
        );
    }
}
