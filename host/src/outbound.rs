//! Outgoing HTTP rules, apart from the sandbox that applies them
//! (`sandbox/capabilities/http.rs`): a version's grant of hosts
//! ([`Grant`], from `?allow-outbound=URL` at deploy), how a request's
//! scheme, host and port match it ([`Grant::find`]), and which addresses
//! are refused after resolution ([`refused_range`], [`check_address`]):
//! loopback, private, link-local (cloud metadata), unspecified and
//! multicast ones, in IPv4, IPv6 and IPv4-mapped IPv6 form, unless the
//! matching entry names that address literally.
//!
//! An entry is `scheme://host[:port]`: `http` or `https`, the port
//! defaulting to the scheme's; `*.example.com` matches every subdomain of
//! `example.com` but not `example.com` itself; an IP address (IPv6 in
//! brackets) matches only requests to that address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The most entries one deploy may grant: a grant is a short list of the
/// services a procedure talks to, kept in every version record.
pub const MAX_ENTRIES: usize = 64;

/// Outbound requests one call may send (`--max-outbound-requests`): each
/// holds a connection and up to the time limit; the bound keeps one call
/// from fanning out without end.
pub const DEFAULT_MAX_REQUESTS: u32 = 16;
/// Response body bytes one call may receive over all its requests
/// (`--max-outbound-response-mib`): bodies are read whole into the host
/// before the guest gets them, so this bounds the host memory a call holds.
pub const DEFAULT_MAX_RESPONSE_MIB: u64 = 8;
/// How long resolving and connecting may take (`--outbound-connect-timeout-ms`);
/// the call's deadline bounds the rest of a request.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(5000);

/// The server's limits on outbound requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_requests: u32,
    pub max_response_bytes: u64,
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_requests: DEFAULT_MAX_REQUESTS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_MIB << 20,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `http` or `https`, or `None` for any other scheme.
    pub fn parse(text: &str) -> Option<Scheme> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    /// 80 or 443.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// What an entry's host part names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// One host name, lowercase, without a trailing dot.
    Name(String),
    /// `*.suffix`: every name ending in `.suffix` (not `suffix` itself).
    Subdomains(String),
    /// One address, named literally: the only way to reach a refused range.
    Ip(IpAddr),
}

/// One granted `scheme://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        match &self.host {
            Host::Name(name) => f.write_str(name)?,
            Host::Subdomains(suffix) => write!(f, "*.{suffix}")?,
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl Entry {
    /// Parses `scheme://host[:port]` (a trailing `/` is allowed), or says
    /// what is wrong with it.
    pub fn parse(text: &str) -> Result<Entry, String> {
        let bad = |why: &str| {
            let shown = crate::logtext::loggable(text.get(..200).unwrap_or("(not shown)"));
            format!("invalid allow-outbound entry \"{shown}\": {why}; expected scheme://host[:port], e.g. https://api.example.com or http://127.0.0.1:8123")
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = Scheme::parse(scheme).ok_or_else(|| bad("the scheme must be http or https"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("a path, query or fragment is not allowed: grant the whole host"));
        }
        if rest.contains('@') {
            return Err(bad("user information is not allowed"));
        }
        let (host, port) = split_host_port(rest).map_err(|why| bad(&why))?;
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad("the port must be 1 to 65535"))?,
            None => scheme.default_port(),
        };
        let host = parse_host(host).map_err(|why| bad(&why))?;
        Ok(Entry { scheme, host, port })
    }

    /// Whether a request to `host` (as the URL names it: a name or an
    /// address, lowercase) matches this entry's host.
    fn matches_host(&self, host: &RequestHost) -> bool {
        match (&self.host, host) {
            (Host::Name(name), RequestHost::Name(asked)) => name == asked,
            (Host::Subdomains(suffix), RequestHost::Name(asked)) => {
                asked.len() > suffix.len() + 1
                    && asked.ends_with(suffix.as_str())
                    && asked.as_bytes()[asked.len() - suffix.len() - 1] == b'.'
            }
            (Host::Ip(ip), RequestHost::Ip(asked)) => canonical(*ip) == canonical(*asked),
            _ => false,
        }
    }
}

/// `host[:port]` with `[v6]` brackets.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address without its closing `]`")?;
        return match after {
            "" => Ok((host, None)),
            _ => after.strip_prefix(':').map(|p| (host, Some(p))).ok_or_else(|| "junk after `]`".to_owned()),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host, Some(port))),
        Some(_) => Err("an IPv6 address must be in brackets, e.g. http://[::1]:8080".into()),
        None => Ok((text, None)),
    }
}

/// An entry's host: an address, `*.suffix`, or a name of DNS characters.
fn parse_host(host: &str) -> Result<Host, String> {
    if host.is_empty() {
        return Err("no host".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let lower = host.to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower);
    let (wild, name) = match lower.strip_prefix("*.") {
        Some(suffix) => (true, suffix),
        None => (false, lower),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(
            "the host must be a DNS name (letters, digits, `-`; `*.` only as the first label) or an IP address".into(),
        );
    }
    if wild {
        if !name.contains('.') {
            return Err("a wildcard must name a domain below a top-level one, e.g. *.example.com".into());
        }
        return Ok(Host::Subdomains(name.to_owned()));
    }
    Ok(Host::Name(name.to_owned()))
}

/// A request's host as its URL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestHost {
    Name(String),
    Ip(IpAddr),
}

impl RequestHost {
    /// The host of a URL's authority (`[v6]` in brackets), lowercase.
    pub fn parse(host: &str) -> RequestHost {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => RequestHost::Ip(ip),
            Err(_) => {
                let lower = bare.to_ascii_lowercase();
                RequestHost::Name(lower.strip_suffix('.').map(str::to_owned).unwrap_or(lower))
            }
        }
    }
}

impl fmt::Display for RequestHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestHost::Name(name) => f.write_str(name),
            RequestHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            RequestHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// A version's outbound grant: the entries a deploy named (no entry, no
/// egress).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    entries: Vec<Entry>,
}

impl Grant {
    /// Parses every entry (duplicates kept once), or says what is wrong
    /// with the first bad one.
    pub fn parse<S: AsRef<str>>(texts: &[S]) -> Result<Grant, String> {
        if texts.len() > MAX_ENTRIES {
            return Err(format!("at most {MAX_ENTRIES} allow-outbound entries may be granted, not {}", texts.len()));
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(texts.len());
        for text in texts {
            let entry = Entry::parse(text.as_ref())?;
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        Ok(Grant { entries })
    }

    /// The entries in their canonical text (`https://api.example.com`,
    /// `http://127.0.0.1:8123`): what is stored and shown.
    pub fn texts(&self) -> Vec<String> {
        self.entries.iter().map(ToString::to_string).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry that grants a request to `scheme://host:port`.
    pub fn find(&self, scheme: Scheme, host: &RequestHost, port: u16) -> Option<&Entry> {
        self.entries.iter().find(|e| e.scheme == scheme && e.port == port && e.matches_host(host))
    }
}

/// The canonical texts of `texts`, or what is wrong with them: what a
/// deploy stores.
pub fn canonical_texts<S: AsRef<str>>(texts: &[S]) -> Result<Vec<String>, String> {
    Grant::parse(texts).map(|g| g.texts())
}

/// An IPv4-mapped (`::ffff:a.b.c.d`) address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The refused range `ip` is in, named for a log line, or `None` for an
/// address a request may reach by name.
pub fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match (a, b) {
        (0, _) => "0.0.0.0/8 (this network)",
        (127, _) => "127.0.0.0/8 (loopback)",
        (10, _) => "10.0.0.0/8 (private)",
        (172, 16..=31) => "172.16.0.0/12 (private)",
        (192, 168) => "192.168.0.0/16 (private)",
        (169, 254) => "169.254.0.0/16 (link-local, cloud metadata)",
        (100, 64..=127) => "100.64.0.0/10 (shared address space)",
        (224..=239, _) => "224.0.0.0/4 (multicast)",
        (240..=255, _) => "240.0.0.0/4 (reserved, broadcast)",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some(":: (unspecified)");
    }
    if ip.is_loopback() {
        return Some("::1 (loopback)");
    }
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96)
    // forms reach the IPv4 address they embed.
    let embedded =
        Ipv4Addr::new((segments[6] >> 8) as u8, segments[6] as u8, (segments[7] >> 8) as u8, segments[7] as u8);
    if segments[..6] == [0; 6] || segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return refused_v4(embedded).map(|_| "an IPv4-embedding IPv6 form of a refused IPv4 range");
    }
    Some(match segments[0] {
        s if s & 0xfe00 == 0xfc00 => "fc00::/7 (unique local, private)",
        s if s & 0xffc0 == 0xfe80 => "fe80::/10 (link-local)",
        s if s & 0xff00 == 0xff00 => "ff00::/8 (multicast)",
        _ => return None,
    })
}

/// Whether a request granted by `entry` may connect to `ip`: an address in
/// a refused range only when the entry names it literally.
pub fn check_address(entry: &Entry, ip: IpAddr) -> Result<(), &'static str> {
    match refused_range(ip) {
        None => Ok(()),
        Some(_) if entry.host == Host::Ip(ip) || matches!(entry.host, Host::Ip(e) if canonical(e) == canonical(ip)) => {
            Ok(())
        }
        Some(range) => Err(range),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(texts: &[&str]) -> Grant {
        Grant::parse(texts).unwrap()
    }

    fn host(text: &str) -> RequestHost {
        RequestHost::parse(text)
    }

    #[test]
    fn entries_parse_to_a_canonical_form() {
        let cases = [
            ("https://api.example.com", "https://api.example.com"),
            ("https://API.Example.com:443/", "https://api.example.com"),
            ("http://example.com:8080", "http://example.com:8080"),
            ("HTTP://*.Example.com", "http://*.example.com"),
            ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
            ("http://[::1]:80", "http://[::1]"),
            ("https://example.com.", "https://example.com"),
        ];
        for (text, canonical) in cases {
            assert_eq!(Entry::parse(text).map(|e| e.to_string()), Ok(canonical.to_owned()), "{text}");
        }
        assert_eq!(grant(&["http://a.com", "http://a.com:80"]).texts(), ["http://a.com"]);
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        let cases = [
            ("example.com", "no scheme"),
            ("ftp://example.com", "http or https"),
            ("https://example.com/path", "path"),
            ("https://example.com?x=1", "query"),
            ("https://user@example.com", "user information"),
            ("https://example.com:0", "port"),
            ("https://example.com:99999", "port"),
            ("https://", "no host"),
            ("https://exa mple.com", "DNS name"),
            ("https://*", "DNS name"),
            ("https://*.com", "wildcard"),
            ("https://a.*.com", "DNS name"),
            ("http://::1", "brackets"),
            ("http://[::1", "closing"),
        ];
        for (text, why) in cases {
            let err = Entry::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("scheme://host[:port]"), "{err}");
        }
        let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("https://h{i}.com")).collect();
        assert!(Grant::parse(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn matching_needs_scheme_host_and_port() {
        let g = grant(&["https://api.example.com", "http://127.0.0.1:8123", "http://[::1]:9000"]);
        assert!(g.find(Scheme::Https, &host("api.example.com"), 443).is_some());
        assert!(g.find(Scheme::Https, &host("API.example.com."), 443).is_some());
        assert!(g.find(Scheme::Http, &host("api.example.com"), 443).is_none(), "scheme");
        assert!(g.find(Scheme::Https, &host("api.example.com"), 8443).is_none(), "port");
        assert!(g.find(Scheme::Https, &host("example.com"), 443).is_none());
        assert!(g.find(Scheme::Http, &host("127.0.0.1"), 8123).is_some());
        assert!(g.find(Scheme::Http, &host("[::ffff:127.0.0.1]"), 8123).is_some(), "the same address");
        assert!(g.find(Scheme::Http, &host("localhost"), 8123).is_none(), "a name is not its address");
        assert!(g.find(Scheme::Http, &host("[::1]"), 9000).is_some());
        assert!(Grant::default().find(Scheme::Https, &host("api.example.com"), 443).is_none(), "no grant");
    }

    #[test]
    fn a_wildcard_matches_subdomains_not_the_domain() {
        let g = grant(&["https://*.example.com"]);
        for yes in ["a.example.com", "a.b.example.com", "A.Example.COM"] {
            assert!(g.find(Scheme::Https, &host(yes), 443).is_some(), "{yes}");
        }
        for no in ["example.com", "badexample.com", "a.example.com.evil.net", "example.com.evil.net", ".example.com"] {
            assert!(g.find(Scheme::Https, &host(no), 443).is_none(), "{no}");
        }
        assert!(g.find(Scheme::Https, &host("[::1]"), 443).is_none());
    }

    #[test]
    fn refused_ranges_and_allowed_addresses() {
        let refused = [
            "127.0.0.1",
            "127.255.255.254",
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:192.168.0.1",
            "::ffff:172.20.0.1",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ];
        for ip in refused {
            assert!(refused_range(ip.parse().unwrap()).is_some(), "{ip} must be refused");
        }
        let allowed = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "192.167.1.1",
            "169.253.0.1",
            "11.0.0.1",
            "2606:4700:4700::1111",
            "2001:db8::1",
            "fec0::1",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
        ];
        for ip in allowed {
            assert_eq!(refused_range(ip.parse().unwrap()), None, "{ip} must be allowed");
        }
    }

    #[test]
    fn only_a_literal_entry_reaches_a_refused_address() {
        let literal = Entry::parse("http://127.0.0.1:8123").unwrap();
        let by_name = Entry::parse("http://localhost:8123").unwrap();
        let metadata = Entry::parse("http://169.254.169.254").unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(check_address(&literal, loopback), Ok(()));
        assert_eq!(check_address(&literal, "::ffff:127.0.0.1".parse().unwrap()), Ok(()));
        assert!(check_address(&literal, "127.0.0.2".parse().unwrap()).is_err(), "another address");
        assert!(check_address(&by_name, loopback).unwrap_err().contains("loopback"));
        assert!(check_address(&by_name, "::1".parse().unwrap()).is_err());
        assert_eq!(check_address(&metadata, "169.254.169.254".parse().unwrap()), Ok(()));
        assert!(check_address(&metadata, "169.254.169.253".parse().unwrap()).is_err());
        assert_eq!(check_address(&by_name, "93.184.216.34".parse().unwrap()), Ok(()));
    }
}
