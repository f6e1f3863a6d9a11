//! Where the hub may send requests to URLs that others name: the URLs a mirror's upstream
//! names (the redirect of its resolve route, its CAS, the signed URLs of xorb ranges) and the
//! webhooks an organisation's admin registers. Either could name an address inside the
//! operator's network (the hub's own database, an admin console, a cloud metadata service) and
//! use the hub to reach it; a webhook's delivery log would even show what answered. So such a
//! request reaches a non-public address only at an origin the operator configured: a mirror's
//! upstream, or a host an `internal_hosts` setting names. Public addresses are open, since the
//! public hub sends files to its CDN and CAS hosts and webhooks go to public services.
//!
//! Names are checked where they resolve ([`GuardedResolver`]), so a name that resolves to a
//! private address is caught, including one that resolves differently a second time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// The origins trusted with non-public addresses.
#[derive(Debug, Default)]
pub struct Destinations {
    /// Host (lower case; IPv6 in brackets, as URLs write it) and port; no port: any port.
    trusted: Vec<(String, Option<u16>)>,
}

impl Destinations {
    /// The origins of `trusted` (URLs), and `internal_hosts` (`host` or `host:port`).
    pub fn new<'a>(trusted: impl Iterator<Item = &'a str>, internal_hosts: &[String]) -> Self {
        let origins = trusted
            .filter_map(|u| url::Url::parse(u).ok())
            .filter_map(|u| Some((host_of(&u)?, Some(u.port_or_known_default()?))));
        let internal = internal_hosts.iter().filter_map(|entry| {
            let u = url::Url::parse(&format!("http://{entry}")).ok()?;
            Some((host_of(&u)?, u.port()))
        });
        let proxies = proxy_origins(PROXY_VARIABLES.iter().filter_map(|v| std::env::var(v).ok()));
        Self {
            trusted: origins.chain(internal).chain(proxies).collect(),
        }
    }

    /// Whether a request may go to `url`; the error says why not.
    pub fn check(&self, url: &url::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{url} is not an HTTP URL"));
        }
        let (Some(host), Some(port)) = (host_of(url), url.port_or_known_default()) else {
            return Err(format!("{url} names no host"));
        };
        let trusted = |(h, p): &(String, Option<u16>)| *h == host && p.is_none_or(|p| p == port);
        if self.trusted.iter().any(trusted) {
            return Ok(());
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => Err(not_public(&host)),
            Some(url::Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => Err(not_public(&host)),
            Some(url::Host::Domain(name)) if is_localhost(name) => Err(not_public(&host)),
            // The resolver lets a configured name reach private addresses whatever the port.
            Some(url::Host::Domain(_)) if self.trusted.iter().any(|(h, _)| *h == host) => Err(
                format!("port {port} of {host} is not one the configuration names"),
            ),
            _ => Ok(()),
        }
    }

    /// Of the addresses `name` resolved to, those a request may go to: all of them for a
    /// configured host, the public ones otherwise.
    pub fn admit(&self, name: &str, addresses: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let name = name.to_ascii_lowercase();
        if self.trusted.iter().any(|(h, _)| *h == name) {
            return addresses;
        }
        addresses
            .into_iter()
            .filter(|a| is_public(a.ip()))
            .collect()
    }
}

/// The proxy settings reqwest follows. A proxy is usually on the operator's network, and the
/// connection to it is resolved here; the name of the host behind it is resolved by the proxy,
/// so behind a proxy only the URLs themselves are checked.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The origins of proxy settings (`host:port` or a URL).
fn proxy_origins(values: impl Iterator<Item = String>) -> Vec<(String, Option<u16>)> {
    values
        .filter_map(|value| {
            let value = value.trim();
            let u = match value.contains("://") {
                true => url::Url::parse(value),
                false => url::Url::parse(&format!("http://{value}")),
            }
            .ok()?;
            Some((host_of(&u)?, Some(u.port_or_known_default()?)))
        })
        .collect()
}

/// `localhost` and its subdomains, with or without the root's trailing dot.
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    name == "localhost" || name.ends_with(".localhost")
}

fn host_of(url: &url::Url) -> Option<String> {
    url.host_str().map(str::to_ascii_lowercase)
}

/// A request the hub refused to send: the reason, carried through reqwest's errors so that a
/// refusal is told apart from a host that cannot be reached.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Misdirected(pub String);

fn not_public(host: &str) -> String {
    format!(
        "{host} is not a public address, and the hub reaches such addresses only at hosts its \
         configuration names"
    )
}

/// The refusal behind a failed request, if a [`Destinations`] check refused it.
pub fn misdirected(e: &reqwest::Error) -> Option<&Misdirected> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Misdirected>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// The message of a failed request with its innermost cause: reqwest's own message names only
/// the URL ("error sending request for url …"), not what went wrong.
pub fn describe(e: &reqwest::Error) -> String {
    let mut source = std::error::Error::source(e);
    let mut innermost = None;
    while let Some(cause) = source {
        innermost = Some(cause);
        source = cause.source();
    }
    match innermost {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Whether `ip` is an address of the public internet: not loopback, private, link-local,
/// shared (carrier NAT), multicast, reserved or set aside for documentation.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || a >= 224
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    !(s[..6] == [0; 6] // unspecified, loopback, IPv4-compatible
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
}

/// The system resolver, keeping only the addresses [`Destinations::admit`] lets through.
pub struct GuardedResolver(pub Arc<Destinations>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let destinations = self.0.clone();
        let name = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let admitted = destinations.admit(&name, found);
            if admitted.is_empty() {
                return Err(Misdirected(not_public(&name)).into());
            }
            Ok(Box::new(admitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A redirect policy that follows up to ten redirects, each to a URL `destinations` admits.
pub fn redirects(destinations: Arc<Destinations>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("more than ten redirects");
        }
        match destinations.check(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(why) => {
                let why = format!("it redirected to {}: {why}", attempt.url());
                attempt.error(Misdirected(why))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn public_and_other_addresses() {
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for other in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            assert!(!is_public(other.parse().unwrap()), "{other}");
        }
        assert!(is_public("172.32.0.1".parse().unwrap()));
        assert!(is_public("100.128.0.1".parse().unwrap()));
    }

    #[test]
    fn proxies_are_trusted_as_the_proxy_variables_name_them() {
        let origins = proxy_origins(
            [
                "http://proxy.corp:3128",
                "10.1.1.1:8080",
                " https://Squid.corp ",
                "",
                "::",
            ]
            .into_iter()
            .map(String::from),
        );
        assert_eq!(
            origins,
            [
                ("proxy.corp".to_string(), Some(3128)),
                ("10.1.1.1".to_string(), Some(8080)),
                ("squid.corp".to_string(), Some(443)),
            ]
        );
    }

    #[test]
    fn non_public_addresses_only_at_configured_origins() {
        let d = Destinations::new(
            ["http://127.0.0.1:9000", "https://huggingface.co"].into_iter(),
            &["minio.acme.internal:9001".into(), "10.0.0.5".into()],
        );
        assert!(
            d.check(&url("http://127.0.0.1:9000/a/b/resolve/main/x"))
                .is_ok()
        );
        assert!(d.check(&url("https://cdn-lfs.hf.co/x")).is_ok(), "public");
        assert!(d.check(&url("http://93.184.216.34/x")).is_ok(), "public");
        assert!(d.check(&url("http://minio.acme.internal:9001/b/k")).is_ok());
        assert!(d.check(&url("http://10.0.0.5:1234/x")).is_ok(), "any port");
        for refused in [
            "http://127.0.0.1:5432/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:9000/",
            "http://[::ffff:7f00:1]:9000/",
            "http://localhost:9000/",
            "http://localhost.:9000/",
            "http://db.localhost/",
            // Other spellings of 127.0.0.1, which URLs normalise to it.
            "http://2130706433/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://017700000001/",
            "http://minio.acme.internal:22/",
            "file:///etc/passwd",
            "ftp://8.8.8.8/",
        ] {
            assert!(d.check(&url(refused)).is_err(), "{refused}");
        }
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let public = SocketAddr::from(([8, 8, 8, 8], 0));
        assert_eq!(
            d.admit("metadata.evil.example", vec![loopback(0), public]),
            vec![public]
        );
        assert_eq!(
            d.admit("MinIO.acme.internal", vec![loopback(0)]),
            vec![loopback(0)]
        );
    }
}
