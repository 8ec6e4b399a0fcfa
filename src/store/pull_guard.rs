//! Where `pull` may connect: the registry the user named, wherever it is, and any public
//! address; a Bearer `realm` or an HTTP redirect (both chosen by the registry, which may be
//! hostile) is never followed to a loopback, link-local or private address other than the
//! registry's own, unless the user asks (`--allow-private-redirects`). Without this, a
//! registry could make minibox, as root, send requests to services that only trust the host
//! (a loopback admin port, the cloud metadata service at 169.254.169.254).
//!
//! The check sits in the HTTP client's name resolver, so it holds on the addresses actually
//! connected to (a name that resolves to a public address when checked and to 127.0.0.1 a
//! moment later gains nothing) and on every hop of a redirect. Through a proxy
//! (`HTTPS_PROXY`), the proxy connects, and no address is resolved here.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// A resolver that refuses private addresses for any host but the registry's.
#[derive(Debug)]
pub struct Guard {
    /// The registry's own `host:port`, as the user named it.
    registry: String,
    /// What the registry's name resolved to: the same address under another name is the
    /// registry too.
    own: Mutex<Vec<SocketAddr>>,
    allow_private: bool,
    /// Why the last connection was refused, for the user's message.
    refused: Mutex<Option<String>>,
    inner: DefaultResolver,
}

impl Guard {
    /// `registry` is `host:port` (the port made explicit).
    pub fn new(registry: String, allow_private: bool) -> Guard {
        Guard {
            registry,
            own: Mutex::new(vec![]),
            allow_private,
            refused: Mutex::new(None),
            inner: DefaultResolver::default(),
        }
    }

    /// Why a connection was refused, if one was (taken: asked once per error).
    pub fn take_refusal(&self) -> Option<String> {
        self.refused.lock().ok()?.take()
    }

    fn refuse(&self, why: String) -> ureq::Error {
        if let Ok(mut r) = self.refused.lock() {
            *r = Some(why.clone());
        }
        ureq::Error::Io(io::Error::new(io::ErrorKind::PermissionDenied, why))
    }
}

/// `host:port` of a URL, the port made explicit (80 for http, 443 for https).
pub fn host_port(uri: &Uri) -> Option<String> {
    let authority = uri.authority()?;
    let port = authority.port_u16().or(match uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    })?;
    Some(format!("{}:{port}", authority.host()))
}

impl Resolver for Guard {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let target = host_port(uri).unwrap_or_default();
        if target.eq_ignore_ascii_case(&self.registry) {
            if let Ok(mut own) = self.own.lock() {
                own.extend(addrs.iter().copied());
            }
            return Ok(addrs);
        }
        if self.allow_private {
            return Ok(addrs);
        }
        let own = self.own.lock().map(|o| o.clone()).unwrap_or_default();
        if let Some(bad) = addrs
            .iter()
            .find(|a| !own.contains(a) && private_kind(a.ip()).is_some())
        {
            let kind = private_kind(bad.ip()).unwrap_or("private");
            return Err(self.refuse(format!(
                "the registry {} sent minibox to {uri}, which is {bad}, a {kind} address that \
                 is not the registry's own: refused (a hostile registry could reach services \
                 that trust this host this way). Pass --allow-private-redirects (or \
                 MINIBOX_PULL_ALLOW_PRIVATE=1) if this registry's token service or storage \
                 really is there",
                self.registry
            )));
        }
        Ok(addrs)
    }
}

/// What kind of non-public address `ip` is (`None`: a public one).
pub fn private_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            private_v6(v6)
        }
    }
}

fn private_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    match () {
        _ if ip.is_loopback() => Some("loopback"),
        _ if ip.is_link_local() => Some("link-local"),
        _ if ip.is_private() => Some("private"),
        // 100.64.0.0/10: carrier-grade NAT, a provider's own network.
        _ if a == 100 && (64..128).contains(&b) => Some("shared (carrier-grade NAT)"),
        _ if a == 0 || ip.is_broadcast() || a >= 224 => Some("non-unicast"),
        _ => None,
    }
}

fn private_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    match () {
        _ if ip.is_loopback() => Some("loopback"),
        _ if ip.is_unspecified() || ip.is_multicast() => Some("non-unicast"),
        // fe80::/10, and the old site-local fec0::/10.
        _ if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 => Some("link-local"),
        // fc00::/7: unique local addresses, IPv6's private ranges.
        _ if first & 0xfe00 == 0xfc00 => Some("private"),
        // ::a.b.c.d (IPv4-compatible, deprecated): as the IPv4 address.
        _ if ip.segments()[..6] == [0; 6] => private_v4(Ipv4Addr::from_bits(ip.to_bits() as u32)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_named_public_ones_pass() {
        for (ip, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("169.254.169.254", "link-local"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("0.0.0.0", "non-unicast"),
            ("224.0.0.1", "non-unicast"),
            ("::1", "loopback"),
            ("::", "non-unicast"),
            ("fe80::1", "link-local"),
            ("fd00::1", "private"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
        ] {
            assert_eq!(private_kind(ip.parse().unwrap()), Some(kind), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "100.128.0.1", "2606:4700::1111"] {
            assert_eq!(private_kind(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn host_port_makes_the_port_explicit() {
        let p = |u: &str| host_port(&u.parse().unwrap()).unwrap();
        assert_eq!(p("https://auth.docker.io/token"), "auth.docker.io:443");
        assert_eq!(p("http://127.0.0.1/token"), "127.0.0.1:80");
        assert_eq!(p("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
    }
}
