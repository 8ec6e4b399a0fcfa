//! Links, addresses and routes, through rtnetlink — synchronously, on the calling thread.
//!
//! `netlink-packet-route` builds and parses the messages and `netlink-sys` is the socket: no
//! async runtime and no thread, so this works in the supervisor at any point (before `clone`
//! too, where no thread may exist). A netlink socket acts on the network namespace it was made
//! in: `Netlink::open_in` makes one inside a container's namespace (the calling thread enters
//! it for the `socket()` call only, then returns to its own).

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{anyhow, Context, Result};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::sched::CloneFlags;

/// One link as the kernel reports it (read back for `minibox show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    /// `veth`, `bridge`...; `None` for a physical device or loopback.
    pub kind: Option<String>,
    pub up: bool,
    /// A veth's other end: its index, in the peer's namespace (IFLA_LINK).
    pub peer: Option<u32>,
    /// The bridge it is a port of, by index.
    pub controller: Option<u32>,
    pub mtu: Option<u32>,
}

/// One address of a link: (link index, address, prefix length).
pub type LinkAddress = (u32, IpAddr, u8);

/// An rtnetlink socket, bound to the network namespace it was opened in.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    /// In our own network namespace.
    pub fn open() -> Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE).context("opening a netlink socket")?;
        socket.bind_auto().context("binding a netlink socket")?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .context("connecting a netlink socket")?;
        Ok(Netlink { socket, seq: 0 })
    }

    /// In the network namespace `netns` (an open `/proc/PID/ns/net`): this thread enters it for
    /// the `socket()` call, and comes back.
    pub fn open_in(netns: &File) -> Result<Netlink> {
        let ours = File::open("/proc/thread-self/ns/net").context("opening our netns")?;
        nix::sched::setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)
            .context("entering the container's network namespace")?;
        let opened = Netlink::open();
        nix::sched::setns(ours.as_fd(), CloneFlags::CLONE_NEWNET)
            .context("returning to minibox's own network namespace")?;
        opened
    }

    /// Sends one request and waits for its acknowledgement (or the kernel's error).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).context("netlink send")?;
        let mut answers = vec![];
        let mut rx = vec![0u8; 64 << 10];
        loop {
            let n = self
                .socket
                .recv(&mut &mut rx[..], 0)
                .context("netlink recv")?;
            let mut offset = 0;
            while offset < n {
                let reply = <NetlinkMessage<RouteNetlinkMessage>>::deserialize(&rx[offset..n])
                    .map_err(|e| anyhow!("a netlink answer could not be read: {e}"))?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number == self.seq {
                    match reply.payload {
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(answers),
                                Some(code) => {
                                    Err(std::io::Error::from_raw_os_error(-code.get()).into())
                                }
                            }
                        }
                        NetlinkPayload::Done(_) => return Ok(answers),
                        NetlinkPayload::InnerMessage(m) => answers.push(m),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// Every link of the namespace (a dump: changes nothing).
    pub fn links(&mut self) -> Result<Vec<LinkState>> {
        let answers = self
            .request(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                NLM_F_DUMP,
            )
            .context("listing links")?;
        Ok(answers
            .iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewLink(l) => Some(link_state(l)),
                _ => None,
            })
            .collect())
    }

    /// Every address of every link of the namespace (a dump: changes nothing).
    pub fn addresses(&mut self) -> Result<Vec<LinkAddress>> {
        let answers = self
            .request(
                RouteNetlinkMessage::GetAddress(AddressMessage::default()),
                NLM_F_DUMP,
            )
            .context("listing addresses")?;
        Ok(answers
            .iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewAddress(m) => {
                    // IFA_LOCAL is the address itself; IFA_ADDRESS the peer's on a
                    // point-to-point link, else the same.
                    let ip = m
                        .attributes
                        .iter()
                        .find_map(|a| match a {
                            AddressAttribute::Local(ip) => Some(*ip),
                            _ => None,
                        })
                        .or_else(|| {
                            m.attributes.iter().find_map(|a| match a {
                                AddressAttribute::Address(ip) => Some(*ip),
                                _ => None,
                            })
                        })?;
                    Some((m.header.index, ip, m.header.prefix_len))
                }
                _ => None,
            })
            .collect())
    }

    /// The index of link `name`, if there is one.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(answers) => Ok(answers.iter().find_map(|a| match a {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("looking up link {name}")),
        }
    }

    fn index_of(&mut self, name: &str) -> Result<u32> {
        self.link_index(name)?
            .ok_or_else(|| anyhow!("link {name} does not exist"))
    }

    /// A new Linux bridge `name`.
    pub fn add_bridge(&mut self, name: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .with_context(|| format!("creating bridge {name}"))?;
        Ok(())
    }

    /// A veth pair: `host` stays here, `peer` is made directly in the namespace `netns`.
    /// The peer gets the MAC `peer_mac`.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_mac: [u8; 6],
        netns: &File,
    ) -> Result<()> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::Address(peer_mac.to_vec()));
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .with_context(|| format!("creating the veth pair {host} / {peer}"))?;
        Ok(())
    }

    /// Sets link `name` up, and (if given) makes it a port of bridge `master`.
    pub fn set_up(&mut self, name: &str, master: Option<&str>) -> Result<()> {
        let index = self.index_of(name)?;
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        if let Some(master) = master {
            let master = self.index_of(master)?;
            msg.attributes.push(LinkAttribute::Controller(master));
        }
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
            .with_context(|| format!("setting link {name} up"))?;
        Ok(())
    }

    /// Deletes link `name`; Ok(false) when there was none.
    pub fn delete_link(&mut self, name: &str) -> Result<bool> {
        let Some(index) = self.link_index(name)? else {
            return Ok(false);
        };
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if errno_of(&e) == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("deleting link {name}")),
        }
    }

    /// Gives link `name` the address `ip/prefix` (an existing one is fine).
    pub fn add_address(&mut self, name: &str, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let index = self.index_of(name)?;
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V4(ip)));
        let broadcast = u32::from(ip) | (u32::MAX.checked_shr(prefix as u32).unwrap_or(0));
        msg.attributes
            .push(AddressAttribute::Broadcast(Ipv4Addr::from(broadcast)));
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(()),
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("adding {ip}/{prefix} to {name}")),
        }
    }

    /// The addresses of link `index` that move with it (global ones: the kernel makes the
    /// link-local ones again).
    pub fn global_addresses_of(&mut self, index: u32) -> Result<Vec<AddressMessage>> {
        let msg = AddressMessage::default();
        let all = self
            .request(RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP)
            .context("listing addresses")?;
        Ok(all
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a)
                    if a.header.index == index
                        && a.header.scope
                            == netlink_packet_route::address::AddressScope::Universe =>
                {
                    Some(a)
                }
                _ => None,
            })
            .collect())
    }

    /// Moves link `index` into the network namespace `netns`, renamed `new_name` there, in one
    /// request (the name is never free-floating in either namespace).
    pub fn move_link(&mut self, index: u32, netns: &File, new_name: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        msg.attributes
            .push(LinkAttribute::IfName(new_name.to_string()));
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
            .with_context(|| format!("moving link {index} into the container as {new_name}"))?;
        Ok(())
    }

    /// Gives link `index` an address as `addresses` listed it (from another namespace).
    pub fn restore_address(&mut self, index: u32, mut msg: AddressMessage) -> Result<()> {
        msg.header.index = index;
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(()),
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(()),
            Err(e) => Err(e).context("restoring an address of a moved link"),
        }
    }

    /// The default route, through `gateway`.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header = RouteHeader {
            address_family: AddressFamily::Inet,
            table: RouteHeader::RT_TABLE_MAIN,
            protocol: RouteProtocol::Boot,
            scope: RouteScope::Universe,
            kind: RouteType::Unicast,
            ..Default::default()
        };
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .with_context(|| format!("adding the default route via {gateway}"))?;
        Ok(())
    }
}

fn link_state(l: &LinkMessage) -> LinkState {
    let mut state = LinkState {
        index: l.header.index,
        name: String::new(),
        kind: None,
        up: l.header.flags.contains(LinkFlags::Up),
        peer: None,
        controller: None,
        mtu: None,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => state.name = n.clone(),
            LinkAttribute::Link(i) => state.peer = Some(*i),
            LinkAttribute::Controller(i) => state.controller = Some(*i),
            LinkAttribute::Mtu(m) => state.mtu = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                state.kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    state
}

/// The errno behind a netlink failure, if it was one.
pub fn errno_of(e: &anyhow::Error) -> Option<i32> {
    e.chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .and_then(|io| io.raw_os_error())
}
