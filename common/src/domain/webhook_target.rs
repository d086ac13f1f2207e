//! Where a webhook may be sent: `http`/`https` URLs whose host is not a private,
//! loopback, link-local or otherwise internal address, unless the operator allows that
//! network explicitly (`WEBHOOK_ALLOW_NETWORKS`). The api checks a URL when it is
//! registered; the consumer checks every address a name resolves to before it connects,
//! so a name that resolves to an internal address later (DNS rebinding) is refused too.

use std::net::IpAddr;

use ipnet::IpNet;

/// The operator's exceptions.
#[derive(Debug, Clone, Default)]
pub struct TargetGuard {
    allowed: Vec<IpNet>,
}

impl TargetGuard {
    /// Reads a comma-separated list of networks (`127.0.0.0/8,::1/128`); empty: none.
    pub fn parse(list: &str) -> Result<Self, String> {
        let allowed = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s} is not a network (CIDR) or an address"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        !is_internal(ip) || self.allowed.iter().any(|n| n.contains(&ip))
    }

    /// Checks a URL's form: absolute `http`/`https` with a host, no credentials, and an
    /// address host that is allowed. Names are checked when they are resolved.
    pub fn check_url(&self, raw: &str) -> Result<url::Url, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not an absolute URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be http or https".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not hold credentials".into());
        }
        match url.host() {
            None => Err("has no host".into()),
            Some(url::Host::Ipv4(ip)) if !self.allows(IpAddr::V4(ip)) => {
                Err(format!("{ip} is an internal address"))
            }
            Some(url::Host::Ipv6(ip)) if !self.allows(IpAddr::V6(ip)) => {
                Err(format!("{ip} is an internal address"))
            }
            Some(url::Host::Domain(d))
                if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") =>
            {
                if self.allows(IpAddr::from([127, 0, 0, 1])) {
                    Ok(url)
                } else {
                    Err(format!("{d} is an internal address"))
                }
            }
            Some(_) => Ok(url),
        }
    }
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, multicast, broadcast,
/// documentation and benchmarking ranges, IPv6 unique-local and link-local.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_and_public_ones_allowed() {
        let guard = TargetGuard::default();
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!guard.allows(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(guard.allows(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn an_allowed_network_is_an_exception_and_nothing_more() {
        let guard = TargetGuard::parse("127.0.0.0/8, ::1").unwrap();
        assert!(guard.allows("127.0.0.1".parse().unwrap()));
        assert!(guard.allows("::1".parse().unwrap()));
        assert!(!guard.allows("10.0.0.1".parse().unwrap()));
        assert!(TargetGuard::parse("not-a-net").is_err());
    }

    #[test]
    fn urls_are_checked_for_form_and_address() {
        let guard = TargetGuard::default();
        assert!(guard.check_url("https://hooks.example.com/in").is_ok());
        for bad in [
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "http://127.0.0.1:9000/",
            "http://[::1]/",
            "http://localhost:8080/",
            "http://169.254.169.254/latest/meta-data",
            "/relative",
        ] {
            assert!(guard.check_url(bad).is_err(), "{bad}");
        }
        let loopback = TargetGuard::parse("127.0.0.0/8").unwrap();
        assert!(loopback.check_url("http://127.0.0.1:9000/").is_ok());
        assert!(loopback.check_url("http://localhost:9000/").is_ok());
    }
}
