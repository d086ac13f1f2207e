//! Failed-login counting for the account lockout: one fixed window per account *and*
//! client address, so an attacker who locks an account from one address does not lock
//! its owner out from another.

use std::time::Duration;

use deadpool_redis::redis::AsyncCommands;

use super::redis::{Redis, StoreError};
use crate::domain::email::Email;

/// Counts one login attempt in a fixed window that starts with the first attempt:
/// returns the count including this one and the seconds the window has left. The
/// account's index (KEYS[2]) names the attempt key and outlives it, so erasure finds
/// every client's count without scanning the keyspace.
const COUNT_ATTEMPT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return {n, ttl}
"#;

/// Takes one attempt back, never below zero and never creating the key.
const REFUND_ATTEMPT: &str = r#"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"#;

#[derive(Clone)]
pub struct LoginAttemptStore {
    redis: Redis,
}

impl LoginAttemptStore {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Counts a login attempt before the password is checked, so parallel attempts
    /// cannot all slip in under the limit. Returns `(attempts, window_secs_left)`.
    pub async fn count(
        &self,
        email: &Email,
        client: &str,
        window: Duration,
    ) -> Result<(u64, u64), StoreError> {
        let (n, ttl): (u64, i64) = self
            .redis
            .eval_keys(
                COUNT_ATTEMPT,
                vec![
                    self.redis.keys.login_attempts(email, client),
                    self.redis.keys.login_attempts_index(email),
                ],
                vec![window.as_secs().max(1).to_string()],
            )
            .await?;
        Ok((n, u64::try_from(ttl).unwrap_or(1).max(1)))
    }

    /// Gives back an attempt that ended without checking the password.
    pub async fn refund(&self, email: &Email, client: &str) -> Result<(), StoreError> {
        let key = self.redis.keys.login_attempts(email, client);
        let _: i64 = self.redis.eval(REFUND_ATTEMPT, key, vec![]).await?;
        Ok(())
    }

    /// Forgets the attempts on an account from every client (erasure): the keys its
    /// index names, then the index. (Counts older than the index expire with their
    /// window, `LOGIN_LOCKOUT_SECS`.)
    pub async fn forget_email(&self, email: &Email) -> Result<(), StoreError> {
        let index = self.redis.keys.login_attempts_index(email);
        self.redis
            .with_conn(move |c| {
                Box::pin(async move {
                    let mut doomed: Vec<String> = c.smembers(&index).await?;
                    doomed.push(index);
                    let _: i64 = c.del(&doomed).await?;
                    Ok(())
                })
            })
            .await
    }

    /// A successful login clears the count of that client.
    pub async fn clear(&self, email: &Email, client: &str) -> Result<(), StoreError> {
        self.redis
            .del(self.redis.keys.login_attempts(email, client))
            .await?;
        Ok(())
    }
}
