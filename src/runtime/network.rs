//! A container's place on its network, from the supervisor's side.
//!
//! Before `clone` (`connect`): the network exists (`bridge` is made on first use), its Linux
//! bridge is up with the gateway address, the container has an address leased, minibox's
//! nftables table says so (its published ports included), and its `/etc/hosts`,
//! `/etc/hostname` and `/etc/resolv.conf` are written in its state directory — every member's
//! hosts file is rewritten at the same time, so containers started earlier know the newcomer.
//! After `clone`, while the child waits (`plug`): a veth pair, one end on the bridge, the other
//! made directly in the child's namespace as `eth0`, with its address and default route. At
//! the end (`release`, also from `rm` and the sweep of every command): the lease goes back,
//! the veth goes, the table and the other members' hosts files are rewritten.
//!
//! Everything that changes networks or leases runs under the networks' lock, single-threaded:
//! netlink is spoken synchronously (no runtime, no thread); nft runs as a child process only
//! when a network is made or removed (a container's start and end change set elements over
//! netlink).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::kernel::netlink::Netlink;
use crate::model::network::{check_network_name, Network, PortMapping};
use crate::model::spec::ContainerSpec;
use crate::runtime::nft;
use crate::store::networks::{
    free_address, pick_subnet, Lease, NetworkRecord, Networks, Subnet, DEFAULT_NETWORK,
    DEFAULT_SUBNET,
};
use crate::store::state::{now_ms, Status, Store};

/// The names `host.docker.internal` answers to inside a container.
pub const HOST_NAMES: &str = "host.docker.internal host.minibox.internal";

/// A container's lease on a bridge network, as `connect` made it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub network: NetworkRecord,
    pub lease: Lease,
}

/// `minibox network create NAME [--subnet CIDR] [--gateway IP]`.
pub fn create(
    state_root: &Path,
    name: &str,
    subnet: Option<&str>,
    gateway: Option<&str>,
) -> Result<NetworkRecord> {
    check_network_name(name)?;
    let subnet = subnet.map(Subnet::parse).transpose()?;
    let gateway = gateway
        .map(|g| {
            g.parse::<Ipv4Addr>()
                .map_err(|_| anyhow::anyhow!("invalid --gateway {g:?}: give an IPv4 address"))
        })
        .transpose()?;
    if gateway.is_some() && subnet.is_none() {
        bail!("--gateway needs --subnet: the gateway is an address of the network's subnet");
    }
    let nets = Networks::open(state_root)?;
    let _lock = nets.lock()?;
    if nets.load(name)?.is_some() {
        bail!("network {name:?} already exists: remove it (minibox network rm) or choose another name");
    }
    let record = new_record(&nets, name, subnet, gateway)?;
    nets.save(&record)?;
    if let Err(e) = bring_up_bridge(&record).and_then(|()| sync_table(&nets)) {
        let _ = Netlink::open().and_then(|mut nl| nl.delete_link(&record.bridge));
        let _ = nets.delete(name);
        let _ = sync_table(&nets);
        return Err(e);
    }
    Ok(record)
}

fn new_record(
    nets: &Networks,
    name: &str,
    subnet: Option<Subnet>,
    gateway: Option<Ipv4Addr>,
) -> Result<NetworkRecord> {
    let existing = nets.list()?;
    let subnet = match subnet {
        Some(s) => s,
        None if name == DEFAULT_NETWORK => Subnet::parse(DEFAULT_SUBNET)?,
        None => pick_subnet(&existing)?,
    };
    if let Some(other) = existing.iter().find(|n| n.subnet.overlaps(&subnet)) {
        bail!(
            "subnet {subnet} overlaps network {:?}'s {}: choose another --subnet",
            other.name,
            other.subnet
        );
    }
    let gateway = gateway.unwrap_or_else(|| subnet.first_host());
    if !subnet.contains(gateway) || gateway == subnet.base || gateway == subnet.broadcast() {
        bail!("--gateway {gateway} is not a host address of subnet {subnet}");
    }
    let id = crate::model::spec::new_id()?;
    Ok(NetworkRecord {
        name: name.to_string(),
        bridge: format!("mbx-{}", &id[..11]),
        id,
        subnet,
        gateway,
        created_ms: now_ms(),
    })
}

/// The network's bridge, up, with the gateway's address; IPv4 forwarding on.
fn bring_up_bridge(net: &NetworkRecord) -> Result<()> {
    let mut nl = Netlink::open()?;
    if nl.link_index(&net.bridge)?.is_none() {
        nl.add_bridge(&net.bridge)?;
    }
    nl.add_address(&net.bridge, net.gateway, net.subnet.prefix)?;
    nl.set_up(&net.bridge, None)?;
    enable_forwarding()
}

/// Containers reach beyond the host only if the host routes for them: like docker, minibox
/// turns `net.ipv4.ip_forward` on (in the network namespace it runs in) when it makes a bridge.
fn enable_forwarding() -> Result<()> {
    const KNOB: &str = "/proc/sys/net/ipv4/ip_forward";
    if fs::read_to_string(KNOB).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    fs::write(KNOB, "1").with_context(|| format!("turning IPv4 forwarding on ({KNOB})"))
}

/// minibox's nftables table, rewritten from the records.
fn sync_table(nets: &Networks) -> Result<()> {
    let mut all = vec![];
    for net in nets.list()? {
        let leases = nets.leases(&net.name)?;
        all.push((net, leases));
    }
    nft::apply(&nft::render(&all))
}

/// `minibox network ls`.
pub fn list(state_root: &Path) -> Result<Vec<(NetworkRecord, Vec<Lease>)>> {
    let Some(nets) = Networks::existing(state_root) else {
        return Ok(vec![]);
    };
    let mut all = vec![];
    for net in nets.list()? {
        let leases = nets.leases(&net.name)?;
        all.push((net, leases));
    }
    Ok(all)
}

/// `minibox network rm NAME`: refused while containers are on it.
pub fn remove(state_root: &Path, name: &str) -> Result<()> {
    let Some(nets) = Networks::existing(state_root) else {
        bail!("no such network: {name}");
    };
    let _lock = nets.lock()?;
    let Some(net) = nets.load(name)? else {
        bail!("no such network: {name}");
    };
    let leases = nets.leases(name)?;
    if !leases.is_empty() {
        bail!(
            "network {name} has containers on it ({}): stop or remove them first",
            leases
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    nets.delete(name)?;
    Netlink::open()?.delete_link(&net.bridge)?;
    sync_table(&nets)
}

/// The network a spec names, made if it is the default one (then `true`).
fn network_for(nets: &Networks, name: &str) -> Result<(NetworkRecord, bool)> {
    if let Some(net) = nets.load(name)? {
        // The bridge may have gone (`ip link del`, or a state root that outlived the links).
        bring_up_bridge(&net)?;
        return Ok((net, false));
    }
    if name != DEFAULT_NETWORK {
        bail!("network {name} not found: create it with minibox network create {name}");
    }
    let net = new_record(nets, name, None, None)?;
    nets.save(&net)?;
    bring_up_bridge(&net)?;
    Ok((net, true))
}

/// Before `clone`: the container's lease and files (see the module's doc). `ports` are the
/// published ports as bound. `Ok(None)` for a container on no bridge network (its files are
/// written all the same).
pub fn connect(
    store: &Store,
    spec: &ContainerSpec,
    name: &str,
    ports: &[PortMapping],
) -> Result<Option<Connection>> {
    let dir = store.dir(&spec.id);
    let Network::Bridge(net_name) = &spec.network else {
        write_files(&dir, spec, name, None)?;
        return Ok(None);
    };
    let nets = Networks::open(store.root())?;
    let _lock = nets.lock()?;
    let (net, made) = network_for(&nets, net_name)?;
    // A new network's tables are rendered whole (nft); on an existing one the container's
    // guard entry and published ports are set elements, added over netlink.
    let table_changes = made;
    let mut leases = nets.leases(&net.name)?;
    let taken_name = |n: &str| {
        leases
            .iter()
            .any(|l| l.name == n || l.aliases.iter().any(|a| a == n))
    };
    for alias in &spec.net.aliases {
        if taken_name(alias) {
            bail!(
                "--network-alias {alias}: another container on network {} already has that name",
                net.name
            );
        }
    }
    let ip = match spec.net.ip {
        Some(ip) => {
            if !net.subnet.contains(ip)
                || ip == net.gateway
                || ip == net.subnet.base
                || ip == net.subnet.broadcast()
            {
                bail!(
                    "--ip {ip} is not a free host address of network {} ({})",
                    net.name,
                    net.subnet
                );
            }
            if let Some(l) = leases.iter().find(|l| l.ip == ip) {
                bail!(
                    "--ip {ip} is taken on network {} by container {}",
                    net.name,
                    l.name
                );
            }
            ip
        }
        None => free_address(&net.subnet, net.gateway, &leases).with_context(|| {
            format!(
                "network {} ({}) has no free address left",
                net.name, net.subnet
            )
        })?,
    };
    let gateway = IpAddr::V4(net.gateway);
    let lease = Lease {
        ip,
        container: spec.id.clone(),
        name: name.to_string(),
        hostname: spec.hostname.clone(),
        aliases: spec.net.aliases.clone(),
        veth: veth_name(&spec.id),
        ports: ports.to_vec(),
        extra_hosts: spec
            .net
            .add_hosts
            .iter()
            .map(|(n, a)| {
                (
                    n.clone(),
                    if a == "host-gateway" {
                        gateway
                    } else {
                        a.parse().unwrap_or(gateway)
                    },
                )
            })
            .collect(),
        hosts_file: dir.join("hosts"),
    };
    leases.push(lease.clone());
    nets.save_leases(&net.name, &leases)?;
    let connection = Connection {
        network: net.clone(),
        lease,
    };
    let done = write_files(&dir, spec, name, Some(&connection))
        .and_then(|()| rewrite_hosts(&net, &leases))
        .and_then(|()| {
            if table_changes {
                sync_table(&nets)
            } else {
                add_members(&nets, &connection.lease)
            }
        });
    if let Err(e) = done {
        leases.retain(|l| l.container != spec.id);
        let _ = nets.save_leases(&net.name, &leases);
        let _ = rewrite_hosts(&net, &leases);
        let _ = sync_table(&nets);
        return Err(e);
    }
    Ok(Some(connection))
}

/// The member's set elements, over netlink; the tables rendered anew if that fails (made by
/// an older minibox, or changed by hand).
fn add_members(nets: &Networks, lease: &Lease) -> Result<()> {
    nft::change_members(&[lease], true).or_else(|_| sync_table(nets))
}

/// After `clone`, the child waiting: its `eth0`, address and default route.
pub fn plug(conn: &Connection, pid: i32) -> Result<()> {
    let netns = File::open(format!("/proc/{pid}/ns/net"))
        .context("opening the container's network namespace")?;
    let mut host = Netlink::open()?;
    let mac = nft::mac_for(conn.lease.ip);
    // A last run's veth of this name (its namespace's teardown may not have run yet: a
    // restart follows the end at once) would make the new pair fail.
    let _ = host.delete_link(&conn.lease.veth);
    host.add_veth(&conn.lease.veth, "eth0", mac, &netns)?;
    host.set_up(&conn.lease.veth, Some(&conn.network.bridge))?;
    let mut inside = Netlink::open_in(&netns)?;
    inside.set_up("lo", None)?;
    inside.add_address("eth0", conn.lease.ip, conn.network.subnet.prefix)?;
    inside.set_up("eth0", None)?;
    inside.add_default_route(conn.network.gateway)?;
    Ok(())
}

/// What becomes of a released container's veth.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Veth {
    /// Deleted now (`rm`, the sweep: whoever asks expects it gone when the command returns).
    Delete,
    /// Left to the kernel: its peer is in the container's network namespace, which goes when
    /// the container's last process has, and takes the pair with it. Deleting it ourselves
    /// costs the supervisor the kernel's unregistering wait (RCU grace periods: 30+ ms) at
    /// every container's end; the namespace's teardown does that work in the background. A
    /// namespace still held (a `--network container:` joiner) keeps the veth until it ends,
    /// its frames dropped by the guard (its element is gone).
    WithNamespace,
}

/// `veth` of `container`'s lease: `mbxv` and the first 11 characters of its id (IFNAMSIZ).
fn veth_name(container: &str) -> String {
    format!("mbxv{}", &container[..container.len().min(11)])
}

/// `rm`: returns every lease `container` holds, removes its veth (if the kernel has not yet),
/// and brings the tables and the other members' hosts files up to date. Quiet when there is
/// nothing to do.
pub fn release(state_root: &Path, container: &str) -> Result<()> {
    let Some(nets) = Networks::existing(state_root) else {
        return Ok(());
    };
    let _lock = nets.lock()?;
    release_locked(&nets, |l| l.container == container, Veth::Delete)?;
    // Its supervisor may have returned the lease and left the veth to the namespace's
    // teardown, which may not have run yet.
    if let Ok(mut nl) = Netlink::open() {
        let _ = nl.delete_link(&veth_name(container));
    }
    Ok(())
}

/// The supervisor, its container ended: as `release`, the veth left to the kernel.
pub fn release_at_exit(state_root: &Path, container: &str) -> Result<()> {
    let Some(nets) = Networks::existing(state_root) else {
        return Ok(());
    };
    let _lock = nets.lock()?;
    release_locked(&nets, |l| l.container == container, Veth::WithNamespace)
}

/// `minibox rename`: the other members of the container's networks know it by its new name
/// (their hosts files are rewritten in place), as docker's embedded DNS does.
pub fn rename(state_root: &Path, container: &str, name: &str) -> Result<()> {
    let Some(nets) = Networks::existing(state_root) else {
        return Ok(());
    };
    let _lock = nets.lock()?;
    for net in nets.list()? {
        let mut leases = nets.leases(&net.name)?;
        let mut changed = false;
        for l in leases.iter_mut().filter(|l| l.container == container) {
            l.name = name.to_string();
            changed = true;
        }
        if changed {
            nets.save_leases(&net.name, &leases)?;
            rewrite_hosts(&net, &leases)?;
        }
    }
    Ok(())
}

fn release_locked(nets: &Networks, doomed: impl Fn(&Lease) -> bool, veth: Veth) -> Result<()> {
    let mut all_gone = vec![];
    for net in nets.list()? {
        let mut leases = nets.leases(&net.name)?;
        let (gone, kept): (Vec<Lease>, Vec<Lease>) = leases.drain(..).partition(|l| doomed(l));
        if gone.is_empty() {
            continue;
        }
        nets.save_leases(&net.name, &kept)?;
        if veth == Veth::Delete {
            if let Ok(mut nl) = Netlink::open() {
                for l in &gone {
                    let _ = nl.delete_link(&l.veth);
                }
            }
        }
        rewrite_hosts(&net, &kept)?;
        all_gone.extend(gone);
    }
    // Their set elements, over netlink; rendered anew if any was missing already.
    let gone: Vec<&Lease> = all_gone.iter().collect();
    if !gone.is_empty() && nft::change_members(&gone, false).is_err() {
        sync_table(nets)?;
    }
    Ok(())
}

/// Part of every command's sweep: leases of containers that are gone or have ended (their
/// supervisor was killed before it could say so) are returned.
pub fn sweep(store: &Store) -> Result<()> {
    let Some(nets) = Networks::existing(store.root()) else {
        return Ok(());
    };
    let holders: Vec<String> = nets
        .list()?
        .iter()
        .flat_map(|n| nets.leases(&n.name).unwrap_or_default())
        .map(|l| l.container)
        .collect();
    let ended = |id: &str| match store.load(id) {
        // A container between two runs of its restart policy keeps its lease: its supervisor
        // holds the connection for the next run.
        Ok(c) if c.restarting && c.supervisor_alive() => false,
        Ok(c) => c.status == Status::Exited || !c.supervisor_alive(),
        Err(_) => !store.dir(id).exists(),
    };
    if !holders.iter().any(|id| ended(id)) {
        return Ok(());
    }
    let _lock = nets.lock()?;
    release_locked(&nets, |l| ended(&l.container), Veth::Delete)
}

/// The container's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, in its state
/// directory (init bind-mounts them; the rootfs is never edited).
fn write_files(
    dir: &Path,
    spec: &ContainerSpec,
    name: &str,
    conn: Option<&Connection>,
) -> Result<()> {
    let hosts = match conn {
        Some(conn) => hosts_text(
            &conn.network,
            &conn.lease,
            std::slice::from_ref(&conn.lease),
        ),
        None => plain_hosts(spec, name),
    };
    write_in_place(&dir.join("hosts"), &hosts)?;
    write_in_place(&dir.join("hostname"), &format!("{}\n", spec.hostname))?;
    write_in_place(
        &dir.join("resolv.conf"),
        &resolv_conf(&spec.net.dns, !matches!(spec.network, Network::Host)),
    )
}

/// The hosts file of a container on no bridge network.
fn plain_hosts(spec: &ContainerSpec, name: &str) -> String {
    let mut s = String::new();
    if spec.network == Network::Host {
        // The host's own names, as docker gives a --network host container.
        s.push_str(&fs::read_to_string("/etc/hosts").unwrap_or_default());
        if !s.ends_with('\n') && !s.is_empty() {
            s.push('\n');
        }
    } else {
        s.push_str(LOCALHOST);
        if spec.network != Network::None {
            s.push_str(&format!(
                "127.0.1.1\t{}{}\n",
                spec.hostname,
                other_name(&spec.hostname, name)
            ));
        }
    }
    for (n, a) in &spec.net.add_hosts {
        s.push_str(&format!("{a}\t{n}\n"));
    }
    s
}

const LOCALHOST: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
    fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

fn other_name(hostname: &str, name: &str) -> String {
    if hostname == name {
        String::new()
    } else {
        format!(" {name}")
    }
}

/// The hosts file of `me`, one of `members` of `net`: itself first, then every other member
/// by name, hostname and aliases, then the host, then its `--add-host` entries.
fn hosts_text(net: &NetworkRecord, me: &Lease, members: &[Lease]) -> String {
    let mut s = String::from(LOCALHOST);
    let names = |l: &Lease| {
        let mut all = vec![l.hostname.clone()];
        for n in std::iter::once(&l.name).chain(&l.aliases) {
            if !all.contains(n) {
                all.push(n.clone());
            }
        }
        all.join(" ")
    };
    s.push_str(&format!("{}\t{}\n", me.ip, names(me)));
    for other in members.iter().filter(|l| l.container != me.container) {
        s.push_str(&format!("{}\t{}\n", other.ip, names(other)));
    }
    s.push_str(&format!("{}\t{HOST_NAMES}\n", net.gateway));
    for (n, a) in &me.extra_hosts {
        s.push_str(&format!("{a}\t{n}\n"));
    }
    s
}

/// Every member's hosts file, rewritten in place: the same inode, so the file bind-mounted in
/// the container shows the new text.
fn rewrite_hosts(net: &NetworkRecord, members: &[Lease]) -> Result<()> {
    for me in members {
        if me.hosts_file.parent().is_some_and(Path::exists) {
            write_in_place(&me.hosts_file, &hosts_text(net, me, members))?;
        }
    }
    Ok(())
}

/// Truncates and writes, never renames: a bind mount holds the inode, not the name.
fn write_in_place(path: &Path, text: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// resolv.conf: `--dns`, else the host's nameservers — those on the host's loopback
/// (systemd-resolved's 127.0.0.53) cannot be reached from a network namespace of its own, so
/// they are left out there, and docker's fallback (8.8.8.8, 8.8.4.4) used if none is left.
fn resolv_conf(dns: &[IpAddr], own_netns: bool) -> String {
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = String::new();
    let mut servers: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
    let given = !servers.is_empty();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                    if !(given || own_netns && ip.is_loopback()) {
                        servers.push(ip.to_string());
                    }
                }
            }
            Some("search") | Some("options") | Some("domain") => {
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let mut s: String = servers
        .iter()
        .map(|n| format!("nameserver {n}\n"))
        .collect();
    s.push_str(&out);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn lease(ip: &str, id: &str, name: &str) -> Lease {
        Lease {
            ip: ip.parse().unwrap(),
            container: id.into(),
            name: name.into(),
            hostname: format!("{id}host"),
            aliases: vec![format!("{name}-alias")],
            veth: "v".into(),
            ports: vec![],
            extra_hosts: vec![("db".into(), "10.1.2.3".parse().unwrap())],
            hosts_file: PathBuf::new(),
        }
    }

    #[test]
    fn a_hosts_file_names_every_member_and_the_host() {
        let net = NetworkRecord {
            name: "n".into(),
            id: "0".repeat(64),
            subnet: Subnet::parse("10.89.0.0/24").unwrap(),
            gateway: "10.89.0.1".parse().unwrap(),
            bridge: "b".into(),
            created_ms: 0,
        };
        let a = lease("10.89.0.2", "a", "web");
        let b = lease("10.89.0.3", "b", "redis");
        let text = hosts_text(&net, &a, &[a.clone(), b]);
        assert!(text.starts_with("127.0.0.1\tlocalhost\n"), "{text}");
        assert!(text.contains("10.89.0.2\tahost web web-alias\n"), "{text}");
        assert!(
            text.contains("10.89.0.3\tbhost redis redis-alias\n"),
            "{text}"
        );
        assert!(
            text.contains("10.89.0.1\thost.docker.internal host.minibox.internal\n"),
            "{text}"
        );
        assert!(text.ends_with("10.1.2.3\tdb\n"), "{text}");
    }

    #[test]
    fn resolv_conf_prefers_dns_flags() {
        let s = resolv_conf(&["192.0.2.53".parse().unwrap()], true);
        assert!(s.starts_with("nameserver 192.0.2.53\n"), "{s}");
        assert!(!s.contains("127.0.0.53"), "{s}");
    }
}
