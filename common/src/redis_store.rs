//! Registration status in Redis: every key name and every command lives here.
//!
//! Keys (after an optional prefix):
//! - `user:pending:<email>`   the registration in flight; `SET NX`, TTL 1 h
//! - `user:completed:<email>` persisted; TTL 24 h
//! - `user:failed:<email>`    rejected, with a reason; TTL 24 h
//! - `idempotency:<key>`      the first answer to an `Idempotency-Key`; TTL 24 h
//! - `auth:attempts:<email>`  login attempts in the lockout window
//! - `auth:revoked:<sid>`     a revoked session; its access tokens are refused until
//!   they would have expired anyway

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::{Config, Pool, Runtime};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{ConfigError, RedisConfig};
use crate::email::Email;
use crate::registration::FailureReason;

pub const PENDING_TTL: Duration = Duration::from_secs(3600);
pub const COMPLETED_TTL: Duration = Duration::from_secs(24 * 3600);
pub const FAILED_TTL: Duration = Duration::from_secs(24 * 3600);
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("no Redis connection: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("Redis command failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis holds a value this version cannot read: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// Key names, with the deployment's prefix.
#[derive(Debug, Clone, Default)]
pub struct RedisKeys {
    prefix: String,
}

impl RedisKeys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }
    pub fn pending(&self, email: &Email) -> String {
        format!("{}user:pending:{}", self.prefix, email)
    }
    pub fn completed(&self, email: &Email) -> String {
        format!("{}user:completed:{}", self.prefix, email)
    }
    pub fn failed(&self, email: &Email) -> String {
        format!("{}user:failed:{}", self.prefix, email)
    }
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}idempotency:{}", self.prefix, key)
    }
    pub fn login_attempts(&self, email: &Email) -> String {
        format!("{}auth:attempts:{}", self.prefix, email)
    }
    pub fn revoked_session(&self, session_id: Uuid) -> String {
        format!("{}auth:revoked:{}", self.prefix, session_id)
    }
}

/// The value stored under the pending, completed and failed keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRecord {
    pub registration_id: Uuid,
    /// Unix ms when this state was reached.
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationStatus {
    Pending(StatusRecord),
    Completed(StatusRecord),
    Failed(StatusRecord),
}

/// How one registration ended, for `finish`.
#[derive(Debug, Clone)]
pub struct Finished {
    pub email: Email,
    pub registration_id: Uuid,
    pub reason: Option<FailureReason>,
}

/// Deletes the pending key only if it still belongs to this registration: a redelivered
/// old registration must not clear a newer one that is in flight.
const DELETE_PENDING_IF_OWNED: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['registrationId'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Counts one login attempt in a fixed window that starts with the first attempt:
/// returns the count including this one and the seconds the window has left.
const COUNT_ATTEMPT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"#;

/// Takes one attempt back, never below zero and never creating the key.
const REFUND_ATTEMPT: &str = r#"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"#;

pub fn pool(config: &RedisConfig) -> Result<Pool, ConfigError> {
    let mut cfg = Config::from_url(config.url.expose_secret());
    let mut pool_cfg = deadpool_redis::PoolConfig::new(config.pool_size);
    pool_cfg.timeouts.wait = Some(config.timeout());
    pool_cfg.timeouts.create = Some(config.timeout());
    pool_cfg.timeouts.recycle = Some(config.timeout());
    cfg.pool = Some(pool_cfg);
    cfg.create_pool(Some(Runtime::Tokio1))
        .map_err(|_| ConfigError::new("REDIS_URL", "is not a valid Redis URL"))
}

#[derive(Clone)]
pub struct StatusStore {
    pool: Pool,
    keys: RedisKeys,
    timeout: Duration,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl StatusStore {
    pub fn new(pool: Pool, keys: RedisKeys, timeout: Duration) -> Self {
        Self {
            pool,
            keys,
            timeout,
        }
    }

    pub fn keys(&self) -> &RedisKeys {
        &self.keys
    }

    /// Runs `f` on a pooled connection, the whole of it (checkout included) bounded by the
    /// configured timeout so a stalled Redis gives an error, never a hang.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(
            &'c mut deadpool_redis::Connection,
        ) -> futures::future::BoxFuture<'c, Result<T, StoreError>>,
    {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, async {
            let mut conn = self.pool.get().await?;
            f(&mut conn).await
        })
        .await
        .map_err(|_| StoreError::Timeout(timeout))?
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(|c| {
            Box::pin(async move {
                let _: String = redis::cmd("PING").query_async(c).await?;
                Ok(())
            })
        })
        .await
    }

    /// `SET NX` the pending key; `false` when a registration for this email is in flight.
    pub async fn create_pending(
        &self,
        email: &Email,
        registration_id: Uuid,
    ) -> Result<bool, StoreError> {
        let key = self.keys.pending(email);
        let value = serde_json::to_string(&StatusRecord {
            registration_id,
            at_ms: now_ms(),
            reason: None,
        })?;
        self.with_conn(move |c| {
            Box::pin(async move {
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&value)
                    .arg("NX")
                    .arg("EX")
                    .arg(PENDING_TTL.as_secs())
                    .query_async(c)
                    .await?;
                Ok(set.is_some())
            })
        })
        .await
    }

    /// Removes the pending key of a registration the broker did not take.
    pub async fn remove_pending(
        &self,
        email: &Email,
        registration_id: Uuid,
    ) -> Result<(), StoreError> {
        let key = self.keys.pending(email);
        self.with_conn(move |c| {
            Box::pin(async move {
                let _: i64 = redis::cmd("EVAL")
                    .arg(DELETE_PENDING_IF_OWNED)
                    .arg(1)
                    .arg(&key)
                    .arg(registration_id.to_string())
                    .query_async(c)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// The status the polling endpoint shows: a pending registration wins; otherwise
    /// the newer of completed and failed.
    pub async fn lookup(&self, email: &Email) -> Result<Option<RegistrationStatus>, StoreError> {
        let keys = [
            self.keys.pending(email),
            self.keys.completed(email),
            self.keys.failed(email),
        ];
        let values: Vec<Option<String>> = self
            .with_conn(move |c| Box::pin(async move { Ok(c.mget(&keys).await?) }))
            .await?;
        let parse = |v: &Option<String>| -> Result<Option<StatusRecord>, StoreError> {
            v.as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(StoreError::from)
        };
        let pending = parse(&values[0])?;
        let completed = parse(&values[1])?;
        let failed = parse(&values[2])?;
        Ok(match (pending, completed, failed) {
            (Some(p), _, _) => Some(RegistrationStatus::Pending(p)),
            (None, Some(c), Some(f)) if f.at_ms > c.at_ms => Some(RegistrationStatus::Failed(f)),
            (None, Some(c), _) => Some(RegistrationStatus::Completed(c)),
            (None, None, Some(f)) => Some(RegistrationStatus::Failed(f)),
            (None, None, None) => None,
        })
    }

    /// Records the end of a batch of registrations in one pipeline: the completed or
    /// failed key, then the pending key removed if it is still theirs.
    pub async fn finish(&self, finished: &[Finished]) -> Result<(), StoreError> {
        if finished.is_empty() {
            return Ok(());
        }
        let at_ms = now_ms();
        let mut pipe = redis::pipe();
        for f in finished {
            let record = serde_json::to_string(&StatusRecord {
                registration_id: f.registration_id,
                at_ms,
                reason: f.reason,
            })?;
            let (key, ttl) = match f.reason {
                None => (self.keys.completed(&f.email), COMPLETED_TTL),
                Some(_) => (self.keys.failed(&f.email), FAILED_TTL),
            };
            pipe.cmd("SET")
                .arg(key)
                .arg(record)
                .arg("EX")
                .arg(ttl.as_secs())
                .ignore();
            pipe.cmd("EVAL")
                .arg(DELETE_PENDING_IF_OWNED)
                .arg(1)
                .arg(self.keys.pending(&f.email))
                .arg(f.registration_id.to_string())
                .ignore();
        }
        self.with_conn(move |c| {
            Box::pin(async move {
                let () = pipe.query_async(c).await?;
                Ok(())
            })
        })
        .await
    }

    /// The stored answer for an idempotency key, if any.
    pub async fn idempotent_answer(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = self.keys.idempotency(key);
        self.with_conn(move |c| Box::pin(async move { Ok(c.get(&key).await?) }))
            .await
    }

    /// Stores the first answer for an idempotency key; a concurrent first answer wins.
    pub async fn store_idempotent_answer(&self, key: &str, answer: &str) -> Result<(), StoreError> {
        let key = self.keys.idempotency(key);
        let answer = answer.to_owned();
        self.with_conn(move |c| {
            Box::pin(async move {
                let _: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&answer)
                    .arg("NX")
                    .arg("EX")
                    .arg(IDEMPOTENCY_TTL.as_secs())
                    .query_async(c)
                    .await?;
                Ok(())
            })
        })
        .await
    }
}

/// Login lockout and session revocation.
impl StatusStore {
    /// Counts a login attempt before the password is checked, so parallel attempts
    /// cannot all slip in under the limit. Returns `(attempts, window_secs_left)`.
    pub async fn count_login_attempt(
        &self,
        email: &Email,
        window: Duration,
    ) -> Result<(u64, u64), StoreError> {
        let key = self.keys.login_attempts(email);
        self.with_conn(move |c| {
            Box::pin(async move {
                let (n, ttl): (u64, i64) = redis::cmd("EVAL")
                    .arg(COUNT_ATTEMPT)
                    .arg(1)
                    .arg(&key)
                    .arg(window.as_secs().max(1))
                    .query_async(c)
                    .await?;
                Ok((n, u64::try_from(ttl).unwrap_or(1).max(1)))
            })
        })
        .await
    }

    /// Gives back an attempt that ended without checking the password.
    pub async fn refund_login_attempt(&self, email: &Email) -> Result<(), StoreError> {
        let key = self.keys.login_attempts(email);
        self.with_conn(move |c| {
            Box::pin(async move {
                let _: i64 = redis::cmd("EVAL")
                    .arg(REFUND_ATTEMPT)
                    .arg(1)
                    .arg(&key)
                    .query_async(c)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    /// A successful login clears the count.
    pub async fn clear_login_attempts(&self, email: &Email) -> Result<(), StoreError> {
        let key = self.keys.login_attempts(email);
        self.with_conn(move |c| {
            Box::pin(async move {
                let _: i64 = c.del(&key).await?;
                Ok(())
            })
        })
        .await
    }

    /// Refuses the access tokens of these sessions for `ttl` (their longest lifetime).
    pub async fn revoke_sessions(
        &self,
        sessions: &[Uuid],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        if sessions.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for sid in sessions {
            pipe.cmd("SET")
                .arg(self.keys.revoked_session(*sid))
                .arg(1)
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .ignore();
        }
        self.with_conn(move |c| {
            Box::pin(async move {
                let () = pipe.query_async(c).await?;
                Ok(())
            })
        })
        .await
    }

    pub async fn is_session_revoked(&self, session_id: Uuid) -> Result<bool, StoreError> {
        let key = self.keys.revoked_session(session_id);
        self.with_conn(move |c| Box::pin(async move { Ok(c.exists(&key).await?) }))
            .await
    }

    /// Forgets the completed/failed status of an email (after its account was deleted
    /// or moved to another address), so polling answers from PostgreSQL.
    pub async fn forget_status(&self, email: &Email) -> Result<(), StoreError> {
        let keys = [self.keys.completed(email), self.keys.failed(email)];
        self.with_conn(move |c| {
            Box::pin(async move {
                let _: i64 = c.del(&keys).await?;
                Ok(())
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_names() {
        let keys = RedisKeys::new("");
        let email = Email::parse("a@b.io").unwrap();
        assert_eq!(keys.pending(&email), "user:pending:a@b.io");
        assert_eq!(keys.completed(&email), "user:completed:a@b.io");
        assert_eq!(keys.failed(&email), "user:failed:a@b.io");
        assert_eq!(RedisKeys::new("t1:").idempotency("k"), "t1:idempotency:k");
    }

    #[test]
    fn a_status_record_serialises_in_camel_case_without_an_empty_reason() {
        let r = StatusRecord {
            registration_id: Uuid::nil(),
            at_ms: 5,
            reason: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"registrationId":"00000000-0000-0000-0000-000000000000","atMs":5}"#
        );
    }
}
