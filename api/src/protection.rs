//! Request protection: security headers, CORS, per-client rate limits (tower_governor)
//! with trusted proxies, and the request timeout.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderName, HeaderValue, Method, Request};
use ipnet::IpNet;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;

/// Headers every answer carries. The CSP is the strictest there is: the api serves JSON.
const SECURITY_HEADERS: [(HeaderName, &str); 6] = [
    (
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=63072000; includeSubDomains",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::CACHE_CONTROL, "no-store"),
];

/// Adds the security headers a route has not set itself (one middleware for all six:
/// each layer costs a little on every request).
pub async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// CORS for the configured origins. `*` allows any origin without credentials; explicit
/// origins may send credentials. No origins: no CORS headers (same-origin only).
pub fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
            header::IF_MATCH,
            header::IF_NONE_MATCH,
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            header::ETAG,
            header::LINK,
            HeaderName::from_static("deprecation"),
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(AllowOrigin::any()));
    }
    let values: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    Some(layer.allow_origin(values).allow_credentials(true))
}

/// The client's IP: the TCP peer, or, when the peer is a trusted proxy, the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy.
#[derive(Clone)]
pub struct ClientIp {
    trusted: Arc<Vec<IpNet>>,
}

impl ClientIp {
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self {
            trusted: Arc::new(trusted),
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    pub fn client_ip<T>(&self, req: &Request<T>) -> Option<IpAddr> {
        self.from_parts(req.headers(), req.extensions())
    }

    pub fn from_parts(
        &self,
        headers: &axum::http::HeaderMap,
        extensions: &axum::http::Extensions,
    ) -> Option<IpAddr> {
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !self.is_trusted(*ip))
                .unwrap_or(peer),
        )
    }
}

/// The rate-limit key of a client: its IPv4 address, or the /64 network of its IPv6
/// address (one subscriber usually holds a whole /64, so single addresses would let it
/// rotate through 2^64 keys).
pub fn rate_limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
    }
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<Self::Key, GovernorError> {
        self.client_ip(req)
            .map(rate_limit_key)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// Parses `TRUSTED_PROXIES`: IPs or CIDRs, comma-separated.
pub fn parse_trusted_proxies(raw: &str) -> Result<Vec<IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{s}` is not an IP address or CIDR"))
        })
        .collect()
}

/// How often the per-client state of a rate limit is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

type Limiter =
    tower_governor::governor::SharedRateLimiter<IpAddr, governor::middleware::NoOpMiddleware>;

/// Forgets clients whose limit has fully recovered, so a scan from many addresses does
/// not keep growing the limiter's memory. Ends when the limiter is dropped.
async fn prune(limiter: std::sync::Weak<<Limiter as std::ops::Deref>::Target>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(limiter) = limiter.upgrade() else {
            return;
        };
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

pub type RateLimit =
    GovernorLayer<ClientIp, governor::middleware::NoOpMiddleware, axum::body::Body>;

/// A limit of `per_minute` requests per client IP with `burst` allowed at once; `None`
/// when `per_minute` is 0 (off).
pub fn rate_limit(per_minute: u32, burst: u32, key: ClientIp) -> Option<RateLimit> {
    if per_minute == 0 {
        return None;
    }
    let period = Duration::from_nanos(60_000_000_000 / u64::from(per_minute));
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(burst.max(1))
        .key_extractor(key)
        .finish()?;
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(prune(Arc::downgrade(config.limiter()), PRUNE_EVERY));
    }
    Some(GovernorLayer::new(config).error_handler(|e| {
        let retry_after_secs = match e {
            GovernorError::TooManyRequests { wait_time, .. } => wait_time.max(1),
            _ => 1,
        };
        axum::response::IntoResponse::into_response(ApiError::RateLimited {
            retry_after_secs: u32::try_from(retry_after_secs).unwrap_or(u32::MAX),
        })
    }))
}

/// Longest client request id kept; longer ones are replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A client's `X-Request-Id` travels into logs, Kafka headers and audit rows: one that is
/// too long or holds anything but `[A-Za-z0-9._:-]` is removed here, so the request-id
/// layer replaces it with a fresh UUID.
pub async fn drop_untidy_request_id(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let tidy = |v: &HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= MAX_REQUEST_ID_LEN
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
    };
    let name = HeaderName::from_static("x-request-id");
    if request.headers().get_all(&name).iter().count() > 1
        || request.headers().get(&name).is_some_and(|v| !tidy(v))
    {
        request.headers_mut().remove(&name);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, xff: Option<&str>) -> Request<()> {
        let mut b = Request::builder();
        if let Some(x) = xff {
            b = b.header("x-forwarded-for", x);
        }
        let mut r = b.body(()).unwrap();
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 1234)));
        r
    }

    #[test]
    fn forwarded_for_is_ignored_from_an_untrusted_peer() {
        let k = ClientIp::new(parse_trusted_proxies("10.0.0.0/8").unwrap());
        let ip = k
            .client_ip(&request("203.0.113.9", Some("1.2.3.4")))
            .unwrap();
        assert_eq!(ip.to_string(), "203.0.113.9");
    }

    #[test]
    fn the_rightmost_untrusted_forwarded_address_is_the_client() {
        let k = ClientIp::new(parse_trusted_proxies("10.0.0.0/8, 192.168.1.1").unwrap());
        let ip = k
            .client_ip(&request("10.1.1.1", Some("6.6.6.6, 1.2.3.4, 192.168.1.1")))
            .unwrap();
        assert_eq!(ip.to_string(), "1.2.3.4");
    }

    #[test]
    fn ipv6_clients_share_a_key_per_64_and_ipv4_is_kept_whole() {
        let key = |s: &str| rate_limit_key(s.parse().unwrap()).to_string();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9");
    }

    #[tokio::test]
    async fn the_limiter_forgets_clients_whose_limit_recovered() {
        let config = GovernorConfigBuilder::default()
            .period(Duration::from_millis(1))
            .burst_size(1)
            .key_extractor(ClientIp::new(Vec::new()))
            .finish()
            .unwrap();
        let limiter = Arc::clone(config.limiter());
        for i in 0..200u32 {
            let _ = limiter.check_key(&IpAddr::from(std::net::Ipv4Addr::from(i)));
        }
        assert_eq!(limiter.len(), 200);
        tokio::spawn(prune(Arc::downgrade(&limiter), Duration::from_millis(20)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(limiter.len(), 0, "recovered clients are pruned");
    }

    #[test]
    fn a_malformed_proxy_list_is_rejected() {
        assert!(parse_trusted_proxies("10.0.0.0/8, nonsense").is_err());
    }
}
