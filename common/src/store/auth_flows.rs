//! Redis state of the account flows: the short-lived second-factor challenges a login
//! hands out, and the fixed-window limits on mail-sending requests. Neither key names
//! an email in the clear: challenges by the digest of the challenge, limits by the
//! digest of the address.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::redis::{Redis, StoreError};

/// INCR in a fixed window that starts with the first request; returns `{count, ttl}`.
const COUNT_IN_WINDOW: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"#;

fn digest_hex(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Who a pending second-factor challenge is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Challenge {
    pub user_id: Uuid,
    /// The account's email, for the lockout count (the same as the password's).
    pub email: String,
    /// The client the password was checked for (its address or /64).
    pub client: String,
}

#[derive(Clone)]
pub struct AuthFlowStore {
    redis: Redis,
}

impl AuthFlowStore {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    fn challenge_key(&self, challenge: &str) -> String {
        format!(
            "{}auth:mfa-challenge:{}",
            self.redis.keys.prefix(),
            digest_hex(challenge)
        )
    }

    /// Stores a challenge (by its digest) for `ttl`.
    pub async fn put_challenge(
        &self,
        challenge: &str,
        value: &Challenge,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = self.challenge_key(challenge);
        let json = serde_json::to_string(value).unwrap_or_default();
        self.redis
            .with_conn(move |c| {
                Box::pin(async move {
                    let () = c.set_ex(&key, json, ttl.as_secs().max(1)).await?;
                    Ok(())
                })
            })
            .await
    }

    pub async fn challenge(&self, challenge: &str) -> Result<Option<Challenge>, StoreError> {
        let key = self.challenge_key(challenge);
        let raw: Option<String> = self
            .redis
            .with_conn(move |c| Box::pin(async move { Ok(c.get(&key).await?) }))
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Ends a challenge; true for the one caller that ended it (a challenge yields one
    /// session even when two right codes race).
    pub async fn take_challenge(&self, challenge: &str) -> Result<bool, StoreError> {
        let key = self.challenge_key(challenge);
        let n: i64 = self
            .redis
            .with_conn(move |c| Box::pin(async move { Ok(c.del(&key).await?) }))
            .await?;
        Ok(n == 1)
    }

    /// Counts a request of `kind` by `subject` (an email or a client address) in a
    /// window; returns `(count, window_secs_left)`.
    pub async fn count_request(
        &self,
        kind: &str,
        subject: &str,
        window: Duration,
    ) -> Result<(u64, u64), StoreError> {
        let key = format!(
            "{}auth:mail-limit:{kind}:{}",
            self.redis.keys.prefix(),
            digest_hex(subject)
        );
        let (n, ttl): (u64, i64) = self
            .redis
            .eval(
                COUNT_IN_WINDOW,
                key,
                vec![window.as_secs().max(1).to_string()],
            )
            .await?;
        Ok((n, u64::try_from(ttl).unwrap_or(1).max(1)))
    }

    /// Drops every request limit of an email (erasure).
    pub async fn forget_email(&self, email: &str) -> Result<(), StoreError> {
        let prefix = self.redis.keys.prefix().to_owned();
        let digest = digest_hex(email);
        self.redis
            .with_conn(move |c| {
                Box::pin(async move {
                    let keys: Vec<String> = ["verify", "reset"]
                        .iter()
                        .map(|k| format!("{prefix}auth:mail-limit:{k}:{digest}"))
                        .collect();
                    let _: i64 = redis::cmd("DEL").arg(&keys).query_async(c).await?;
                    Ok(())
                })
            })
            .await
    }
}
