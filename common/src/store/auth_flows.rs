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

/// One more wrong code against a challenge (KEYS[1]); its count (KEYS[2]) lives as long
/// as the challenge, and at ARGV[1] wrong codes both are deleted.
const FAIL_CHALLENGE: &str = r#"
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then redis.call('DEL', KEYS[2]); return 0 end
local n = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ttl)
if n >= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1], KEYS[2]) end
return n
"#;

/// One more second-factor failure on an account (a hash: failures, until). ARGV: now,
/// free failures, longest wait, window (seconds).
const RECORD_SECOND_FACTOR_FAILURE: &str = r#"
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local free = tonumber(ARGV[2])
if n >= free then
  local wait = math.min(2 ^ math.min(n - free + 1, 30), tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'until', tonumber(ARGV[1]) + wait)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return n
"#;

/// Who a pending second-factor challenge is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Challenge {
    pub user_id: Uuid,
    /// The account's email, for the lockout count (the same as the password's).
    pub email: String,
    /// The client the password was checked for (its address or /64).
    pub client: String,
    /// Which password was checked: a digest of the stored hash it matched. A password
    /// change or reset replaces the hash, and every challenge issued before it stops
    /// working.
    #[serde(default)]
    pub credential: String,
}

/// The digest a [`Challenge`] keeps of the password hash it was issued for (base64url
/// SHA-256: the hash itself never goes to Redis).
pub fn credential_digest(password_hash: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(password_hash.as_bytes()))
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
        let n = self.redis.del(key).await?;
        Ok(n == 1)
    }

    /// Counts a wrong code against a challenge; at `max` wrong codes the challenge is
    /// deleted, so a code can no longer be tried against it. Returns the wrong codes so
    /// far (0 when the challenge was already gone).
    pub async fn fail_challenge(&self, challenge: &str, max: u32) -> Result<u64, StoreError> {
        let key = self.challenge_key(challenge);
        let failures = format!("{key}:failures");
        let n: u64 = self
            .redis
            .eval_keys(
                FAIL_CHALLENGE,
                vec![key, failures],
                vec![max.max(1).to_string()],
            )
            .await?;
        Ok(n)
    }

    fn second_factor_key(&self, user_id: Uuid) -> String {
        format!("{}auth:mfa-failures:{user_id}", self.redis.keys.prefix())
    }

    /// The account's second-factor failures, whatever the client: `(failures, seconds
    /// until the next code may be tried)`.
    pub async fn second_factor_backoff(
        &self,
        user_id: Uuid,
        now_unix: u64,
    ) -> Result<(u64, u64), StoreError> {
        let key = self.second_factor_key(user_id);
        let (failures, until): (Option<u64>, Option<u64>) = self
            .redis
            .with_conn(move |c| {
                Box::pin(async move {
                    Ok(redis::cmd("HMGET")
                        .arg(&key)
                        .arg("failures")
                        .arg("until")
                        .query_async(c)
                        .await?)
                })
            })
            .await?;
        Ok((
            failures.unwrap_or(0),
            until.unwrap_or(0).saturating_sub(now_unix),
        ))
    }

    /// Records a wrong second-factor code for the account: the count grows and, from
    /// `free` failures on, the next try must wait `2^(failures - free + 1)` seconds (2, 4,
    /// 8...), at most `max_wait`. The count lives `window` after the last failure. Returns the count.
    pub async fn record_second_factor_failure(
        &self,
        user_id: Uuid,
        now_unix: u64,
        free: u64,
        max_wait: Duration,
        window: Duration,
    ) -> Result<u64, StoreError> {
        let key = self.second_factor_key(user_id);
        let n: u64 = self
            .redis
            .eval_keys(
                RECORD_SECOND_FACTOR_FAILURE,
                vec![key],
                vec![
                    now_unix.to_string(),
                    free.to_string(),
                    max_wait.as_secs().to_string(),
                    window.as_secs().max(1).to_string(),
                ],
            )
            .await?;
        Ok(n)
    }

    fn flow_key(&self, kind: &str, id: &str) -> String {
        format!(
            "{}auth:flow:{kind}:{}",
            self.redis.keys.prefix(),
            digest_hex(id)
        )
    }

    /// Stores the state of a browser flow (a hosted login in progress) under its
    /// random id (by digest) for `ttl`.
    pub async fn put_flow<T: serde::Serialize>(
        &self,
        kind: &str,
        id: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = self.flow_key(kind, id);
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

    /// A browser flow's state; `None` when unknown, expired or unreadable.
    pub async fn flow<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        let key = self.flow_key(kind, id);
        let raw: Option<String> = self
            .redis
            .with_conn(move |c| Box::pin(async move { Ok(c.get(&key).await?) }))
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Reads and ends a flow in one step (GETDEL): of two requests that present the same
    /// id, one gets the state and the other `None`. For single-use challenges.
    pub async fn take_flow<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        let key = self.flow_key(kind, id);
        let raw: Option<String> = self
            .redis
            .with_conn(move |c| {
                Box::pin(async move { Ok(redis::cmd("GETDEL").arg(&key).query_async(c).await?) })
            })
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    /// Ends a browser flow; true for the one caller that ended it.
    pub async fn end_flow(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.redis.del(self.flow_key(kind, id)).await? == 1)
    }

    /// A right code (or a reset of the factor) clears the account's failures.
    pub async fn clear_second_factor_failures(&self, user_id: Uuid) -> Result<(), StoreError> {
        self.redis.del(self.second_factor_key(user_id)).await?;
        Ok(())
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
                    let keys: Vec<String> = ["verify", "reset", "recipient"]
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
