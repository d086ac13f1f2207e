//! One webhook attempt: the body, the Standard Webhooks headers and signatures, and an
//! HTTP client that connects only to allowed addresses, follows no redirect, and bounds
//! its time and what it reads of the answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::domain::webhook_target::TargetGuard;
use common::store::webhooks::{Attempt, Claimed};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What is read of an answer at most (the rest is dropped); enough for an error text.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// What of an answer's body is kept in the delivery log.
const LOGGED_ANSWER_CHARS: usize = 200;

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under a `whsec_` secret; `None`
/// for a secret that is not in that form.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Resolves names, keeping only the addresses the guard allows: a name that resolves
/// only to internal addresses fails to connect.
struct GuardedResolver {
    guard: TargetGuard,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| guard.allows(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("refused: {host} resolves only to internal addresses").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

pub struct Sender {
    http: reqwest::Client,
    guard: TargetGuard,
}

impl Sender {
    pub fn new(guard: TargetGuard, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent("Registrar-Webhooks/1")
            .dns_resolver(Arc::new(GuardedResolver {
                guard: guard.clone(),
            }))
            .no_proxy()
            .build()?;
        Ok(Self { http, guard })
    }

    /// Sends one attempt; `Ok` carries the outcome of a request that was made (any
    /// status), `Err` one that was refused before it was made or failed on the way.
    pub async fn send(&self, delivery: &Claimed) -> (bool, Attempt) {
        let started = Instant::now();
        let latency =
            |started: Instant| i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let refused = |error: String| {
            (
                false,
                Attempt {
                    status: None,
                    error: Some(error),
                    latency_ms: 0,
                },
            )
        };
        if let Err(e) = self.guard.check_url(&delivery.url) {
            return refused(format!("refused: {e}"));
        }
        let body = match serde_json::to_vec(&delivery.payload) {
            Ok(body) => body,
            Err(e) => return refused(format!("payload: {e}")),
        };
        let id = delivery.event_id.to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let signatures: Vec<String> = delivery
            .secrets
            .iter()
            .filter_map(|s| signature(s, &id, timestamp, &body))
            .collect();
        if signatures.is_empty() {
            return refused("the endpoint has no usable secret".into());
        }
        let request = self
            .http
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.join(" "))
            .body(body);
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    message = format!("{message}: {s}");
                    source = s.source();
                }
                return (
                    false,
                    Attempt {
                        status: None,
                        error: Some(message),
                        latency_ms: latency(started),
                    },
                );
            }
        };
        let status = response.status();
        let mut answer = Vec::new();
        while answer.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let ok = status.is_success();
        let error = (!ok).then(|| {
            let text: String = String::from_utf8_lossy(&answer)
                .chars()
                .filter(|c| !c.is_control())
                .take(LOGGED_ANSWER_CHARS)
                .collect();
            if status.is_redirection() {
                format!("HTTP {status} (redirects are not followed)")
            } else {
                format!("HTTP {status} {text}").trim_end().to_owned()
            }
        });
        (
            ok,
            Attempt {
                status: Some(i32::from(status.as_u16())),
                error,
                latency_ms: latency(started),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    #[tokio::test]
    async fn a_name_that_resolves_only_to_internal_addresses_is_refused() {
        // `localhost` resolves (through the hosts file) to loopback addresses only.
        let strict = GuardedResolver {
            guard: TargetGuard::default(),
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let refused = strict.resolve(name).await.err().expect("refused");
        assert!(refused.to_string().contains("internal"), "{refused}");
        let loopback = GuardedResolver {
            guard: TargetGuard::parse("127.0.0.0/8,::1/128").unwrap(),
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addresses: Vec<_> = loopback.resolve(name).await.unwrap().collect();
        assert!(addresses.iter().all(|a| a.ip().is_loopback()) && !addresses.is_empty());
    }

    #[test]
    fn the_signature_matches_the_specifications_example() {
        // The example of the Standard Webhooks specification (and of its libraries'
        // tests).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(signature("no-prefix", "id", 1, body).is_none());
    }
}
