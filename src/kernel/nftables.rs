//! Elements of nftables sets and maps, added and deleted over netlink (nfnetlink's nf_tables
//! subsystem) — synchronously, on the calling thread, without running `nft`.
//!
//! Only this is spoken: one batch (`NFNL_MSG_BATCH_BEGIN` ... `END`) of `NEWSETELEM` or
//! `DELSETELEM` messages, applied by the kernel as one transaction, each acknowledged. Tables,
//! chains, rules and sets themselves are made by `nft -f` from a rendered script (rare: a
//! network made or removed); a container's start or end only changes elements. Keys and data
//! are given already encoded (see `Key`): the layout is the kernel's, each field of a
//! concatenation in registers of 4 bytes.

use std::net::Ipv4Addr;

use anyhow::{anyhow, Context, Result};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

/// Address families of nftables tables.
pub const FAMILY_INET: u8 = 1; // NFPROTO_INET
pub const FAMILY_BRIDGE: u8 = 7; // NFPROTO_BRIDGE

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLMSG_ERROR: u16 = 2;

/// A key or a map's data, field by field, in the kernel's layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new() -> Key {
        Key::default()
    }

    /// One field: its bytes, then zeros up to a multiple of 4.
    fn field(mut self, bytes: &[u8]) -> Key {
        self.0.extend_from_slice(bytes);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    /// `ifname`: 16 bytes, NUL-padded.
    pub fn ifname(self, name: &str) -> Key {
        let mut b = [0u8; 16];
        let n = name.len().min(15);
        b[..n].copy_from_slice(&name.as_bytes()[..n]);
        self.field(&b)
    }

    /// `ether_addr`.
    pub fn mac(self, mac: [u8; 6]) -> Key {
        self.field(&mac)
    }

    /// `ipv4_addr`, network order.
    pub fn ipv4(self, ip: Ipv4Addr) -> Key {
        self.field(&ip.octets())
    }

    /// `inet_proto`: one byte.
    pub fn proto(self, proto: u8) -> Key {
        self.field(&[proto])
    }

    /// `inet_service`: network order.
    pub fn port(self, port: u16) -> Key {
        self.field(&port.to_be_bytes())
    }
}

/// One element of set `set` in table `table` of `family`; `data` for a map's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub family: u8,
    pub table: String,
    pub set: String,
    pub key: Key,
    pub data: Option<Key>,
}

/// Adds (`add`) or deletes `elements`, all or none (one transaction). Adding an element that is
/// there already is no error; deleting one that is not there is (ENOENT), and then nothing of
/// the batch was done.
pub fn change(elements: &[Element], add: bool) -> Result<()> {
    if elements.is_empty() {
        return Ok(());
    }
    let mut socket =
        Socket::new(NETLINK_NETFILTER).context("opening a netfilter netlink socket")?;
    socket
        .bind_auto()
        .context("binding a netfilter netlink socket")?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .context("connecting a netfilter netlink socket")?;
    let (buf, acked) = batch(elements, add);
    socket.send(&buf, 0).context("sending to nf_tables")?;
    let mut waiting: Vec<u32> = acked;
    let mut rx = vec![0u8; 16 << 10];
    while !waiting.is_empty() {
        let n = socket
            .recv(&mut &mut rx[..], 0)
            .context("reading nf_tables' answer")?;
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(rx[off..off + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(rx[off + 4..off + 6].try_into().unwrap());
            let seq = u32::from_ne_bytes(rx[off + 8..off + 12].try_into().unwrap());
            if len < 16 || off + len > n {
                return Err(anyhow!("nf_tables answered a malformed message"));
            }
            if kind == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes(rx[off + 16..off + 20].try_into().unwrap());
                if code != 0 {
                    return Err(std::io::Error::from_raw_os_error(-code))
                        .context("nf_tables refused a set element change");
                }
                waiting.retain(|&s| s != seq);
            }
            off += len.next_multiple_of(4);
        }
    }
    Ok(())
}

/// The batch's bytes, and the sequence numbers whose acknowledgements are awaited.
fn batch(elements: &[Element], add: bool) -> (Vec<u8>, Vec<u32>) {
    const REQUEST: u16 = libc::NLM_F_REQUEST as u16;
    const ACK: u16 = libc::NLM_F_ACK as u16;
    const CREATE: u16 = libc::NLM_F_CREATE as u16;
    let mut buf = vec![];
    let mut seq = 1;
    message(
        &mut buf,
        NFNL_MSG_BATCH_BEGIN,
        REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    let mut acked = vec![];
    for e in elements {
        seq += 1;
        let mut elem = vec![];
        attr(&mut elem, NFTA_SET_ELEM_KEY | NLA_F_NESTED, &{
            let mut v = vec![];
            attr(&mut v, NFTA_DATA_VALUE, &e.key.0);
            v
        });
        if let Some(data) = &e.data {
            attr(&mut elem, NFTA_SET_ELEM_DATA | NLA_F_NESTED, &{
                let mut v = vec![];
                attr(&mut v, NFTA_DATA_VALUE, &data.0);
                v
            });
        }
        let mut list = vec![];
        attr(&mut list, NFTA_LIST_ELEM | NLA_F_NESTED, &elem);
        let mut body = vec![];
        attr(&mut body, NFTA_SET_ELEM_LIST_TABLE, &cstr(&e.table));
        attr(&mut body, NFTA_SET_ELEM_LIST_SET, &cstr(&e.set));
        attr(&mut body, NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, &list);
        let (kind, flags) = match add {
            true => (NFT_MSG_NEWSETELEM, REQUEST | ACK | CREATE),
            false => (NFT_MSG_DELSETELEM, REQUEST | ACK),
        };
        message(
            &mut buf,
            (NFNL_SUBSYS_NFTABLES << 8) | kind,
            flags,
            seq,
            e.family,
            0,
            &body,
        );
        acked.push(seq);
    }
    seq += 1;
    message(
        &mut buf,
        NFNL_MSG_BATCH_END,
        REQUEST,
        seq,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    (buf, acked)
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// A netlink attribute: length, type, the value, padding to 4.
fn attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    buf.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// A netlink message with nfnetlink's header (family, version 0, resource id).
fn message(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, family: u8, res: u16, body: &[u8]) {
    let len = 16 + 4 + body.len();
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.push(family);
    buf.push(0); // NFNETLINK_V0
    buf.extend_from_slice(&res.to_be_bytes());
    buf.extend_from_slice(body);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_laid_out_in_registers_of_four_bytes() {
        let k = Key::new()
            .ifname("mbxv0123")
            .mac([2, 0x42, 10, 88, 0, 2])
            .ipv4("10.88.0.2".parse().unwrap());
        assert_eq!(k.0.len(), 16 + 8 + 4);
        assert_eq!(&k.0[..8], b"mbxv0123");
        assert_eq!(&k.0[16..24], &[2, 0x42, 10, 88, 0, 2, 0, 0]);
        assert_eq!(&k.0[24..], &[10, 88, 0, 2]);
        let p = Key::new().proto(6).port(8080);
        assert_eq!(p.0, vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
    }

    #[test]
    fn a_batch_is_begin_messages_end() {
        let e = Element {
            family: FAMILY_BRIDGE,
            table: "minibox".into(),
            set: "guard".into(),
            key: Key::new().ipv4(Ipv4Addr::LOCALHOST),
            data: None,
        };
        let (buf, acked) = batch(&[e.clone(), e], true);
        assert_eq!(acked, vec![2, 3]);
        let kind_at = |off: usize| u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        assert_eq!(kind_at(0), NFNL_MSG_BATCH_BEGIN);
        let first = u32::from_ne_bytes(buf[20..24].try_into().unwrap()) as usize;
        assert_eq!(kind_at(20), (10 << 8) | NFT_MSG_NEWSETELEM);
        assert_eq!(buf[20 + 16], FAMILY_BRIDGE);
        let end = 20 + 2 * first;
        assert_eq!(kind_at(end), NFNL_MSG_BATCH_END);
        assert_eq!(buf.len(), end + 20);
    }
}
