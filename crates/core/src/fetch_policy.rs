//! Which addresses a media fetch may connect to. An app (or a tenant) chooses
//! `payload.url`, and the worker runs next to things an app must not reach: the cloud
//! metadata service, Postgres, internal admin pages. So only public unicast addresses are
//! fetched, unless the operator lists a host or range in `whatsapp.rust.media_fetch_allow`.
//!
//! The ranges follow IANA's special-purpose registries. IPv6 is judged by what is global
//! (2000::/3 minus its special blocks) rather than by a list of what is not, so a block
//! forgotten here is refused rather than reachable.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

const V4_SPECIAL: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\" (0.0.0.0/8)"),
    ("10.0.0.0/8", "private (10.0.0.0/8)"),
    ("100.64.0.0/10", "carrier-grade NAT (100.64.0.0/10)"),
    ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
    ("169.254.0.0/16", "link-local (169.254.0.0/16, where cloud metadata services live)"),
    ("172.16.0.0/12", "private (172.16.0.0/12)"),
    ("192.0.0.0/24", "IETF protocol assignment (192.0.0.0/24)"),
    ("192.0.2.0/24", "documentation (192.0.2.0/24)"),
    ("192.88.99.0/24", "6to4 relay (192.88.99.0/24)"),
    ("192.168.0.0/16", "private (192.168.0.0/16)"),
    ("198.18.0.0/15", "benchmarking (198.18.0.0/15)"),
    ("198.51.100.0/24", "documentation (198.51.100.0/24)"),
    ("203.0.113.0/24", "documentation (203.0.113.0/24)"),
    ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
    ("240.0.0.0/4", "reserved or broadcast (240.0.0.0/4)"),
];

/// Blocks inside 2000::/3 that are not ordinary global unicast.
const V6_SPECIAL_IN_GLOBAL: &[(&str, &str)] = &[
    ("2001::/23", "IETF protocol assignment (2001::/23, Teredo among them)"),
    ("2001:db8::/32", "documentation (2001:db8::/32)"),
    ("2002::/16", "6to4 (2002::/16)"),
    ("3fff::/20", "documentation (3fff::/20)"),
];

/// Names for the common blocks outside 2000::/3, for the error text only.
const V6_NAMED: &[(&str, &str)] = &[
    ("::/128", "unspecified (::)"),
    ("::1/128", "loopback (::1)"),
    ("::/96", "IPv4-compatible (::/96)"),
    ("64:ff9b:1::/48", "local-use NAT64 (64:ff9b:1::/48)"),
    ("100::/64", "discard-only (100::/64)"),
    ("fc00::/7", "unique local (fc00::/7)"),
    ("fe80::/10", "link-local (fe80::/10)"),
    ("fec0::/10", "site-local (fec0::/10)"),
    ("ff00::/8", "multicast (ff00::/8)"),
];

fn find<N: FromStr>(table: &[(&str, &'static str)], contains: impl Fn(&N) -> bool) -> Option<&'static str>
where
    N::Err: std::fmt::Debug,
{
    table.iter().find(|(net, _)| contains(&net.parse::<N>().expect("the built-in ranges parse"))).map(|(_, name)| *name)
}

/// IPv4-mapped IPv6 (::ffff:a.b.c.d) reaches the IPv4 address, so it is judged as one.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// None for a public unicast address; else the name of the range it lies in.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    find::<Ipv4Net>(V4_SPECIAL, |n| n.contains(&ip))
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // NAT64's well-known prefix reaches the IPv4 address in its last 32 bits.
    let nat64: Ipv6Net = "64:ff9b::/96".parse().expect("a valid range");
    if nat64.contains(&ip) {
        let o = ip.octets();
        return non_public_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    let global: Ipv6Net = "2000::/3".parse().expect("a valid range");
    if global.contains(&ip) {
        return find::<Ipv6Net>(V6_SPECIAL_IN_GLOBAL, |n| n.contains(&ip));
    }
    Some(find::<Ipv6Net>(V6_NAMED, |n| n.contains(&ip)).unwrap_or("outside global unicast (2000::/3)"))
}

/// One entry of `whatsapp.rust.media_fetch_allow`.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    /// Any address in the range, whatever the host name and port.
    Net(IpNet),
    /// This address on this port only.
    Addr(SocketAddr),
    /// This host name (exactly, no subdomains), on this port if one is given: whatever
    /// it resolves to is fetched.
    Host(String, Option<u16>),
}

/// The operator's exceptions to the public-only rule: CIDR ranges (`10.0.0.0/8`),
/// addresses (`127.0.0.1`, `[::1]:8080`) and host names (`files.internal`,
/// `files.internal:8443`). Refuses a bad entry when the configuration loads.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct FetchAllow {
    raw: Vec<String>,
    entries: Vec<Entry>,
}

impl TryFrom<Vec<String>> for FetchAllow {
    type Error = String;

    fn try_from(raw: Vec<String>) -> Result<Self, String> {
        let entries = raw.iter().map(|s| parse_entry(s)).collect::<Result<_, _>>()?;
        Ok(Self { raw, entries })
    }
}

impl From<FetchAllow> for Vec<String> {
    fn from(a: FetchAllow) -> Self {
        a.raw
    }
}

fn parse_entry(s: &str) -> Result<Entry, String> {
    let t = s.trim();
    let shown: String = t.chars().take(40).collect();
    let bad = |why: &str| {
        Err(format!(
            "media_fetch_allow entry {shown:?}: {why} (expected a CIDR like 10.0.0.0/8, an address like 127.0.0.1 or \
             [::1]:8080, or a host name like files.internal or files.internal:8443)"
        ))
    };
    if t.is_empty() {
        return bad("is empty");
    }
    if t.contains('*') {
        return bad("wildcards are not supported: list each host, or the address range");
    }
    if t.contains('/') {
        return match t.parse::<IpNet>() {
            Ok(n) => Ok(Entry::Net(n.trunc())),
            Err(_) => bad("is not a valid CIDR range"),
        };
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(Entry::Net(IpNet::from(canonical(ip))));
    }
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Ok(Entry::Addr(SocketAddr::new(canonical(sa.ip()), sa.port())));
    }
    let (host, port) = match t.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(p) if p > 0 => (h, Some(p)),
            _ => return bad("has a port outside 1-65535"),
        },
        _ => (t, None),
    };
    // The URL parser's own host rules, so an entry matches what a URL's host becomes
    // (lower case, punycode, numeric IPv4 forms).
    match url::Host::parse(host) {
        Ok(url::Host::Domain(d)) => Ok(Entry::Host(d.trim_end_matches('.').to_owned(), port)),
        Ok(url::Host::Ipv4(ip)) => Ok(match port {
            Some(p) => Entry::Addr(SocketAddr::new(IpAddr::V4(ip), p)),
            None => Entry::Net(IpNet::from(IpAddr::V4(ip))),
        }),
        Ok(url::Host::Ipv6(_)) | Err(_) => bad("is not a valid host name"),
    }
}

impl FetchAllow {
    /// True when nothing is listed (the default): public addresses only.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The operator listed this host name (lower case, as the URL parser gives it) on
    /// this port.
    pub fn allows_host(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.');
        self.entries.iter().any(|e| matches!(e, Entry::Host(h, p) if h == host && p.is_none_or(|p| p == port)))
    }

    /// The operator listed this address (or a range holding it) for this port.
    pub fn allows_addr(&self, ip: IpAddr, port: u16) -> bool {
        let ip = canonical(ip);
        self.entries.iter().any(|e| match e {
            Entry::Net(n) => n.contains(&ip),
            Entry::Addr(sa) => sa.ip() == ip && sa.port() == port,
            Entry::Host(..) => false,
        })
    }

    /// Whether a connection to `ip:port` may be made; `host_allowed` is `allows_host` of
    /// the URL's host. Err names the range of a refused address.
    pub fn check(&self, ip: IpAddr, port: u16, host_allowed: bool) -> Result<(), &'static str> {
        if host_allowed || self.allows_addr(ip, port) {
            return Ok(());
        }
        non_public(ip).map_or(Ok(()), Err)
    }
}
