//! Leases in Redis: at most N holders of a named resource at once (one admin's running
//! imports, say). A holder renews its lease while it works; a lease it did not renew in
//! time (its process died) expires, so a crash never blocks the resource for good.

use std::time::Duration;

use uuid::Uuid;

use super::redis::{Redis, StoreError};

/// Drops expired holders, then adds this one if fewer than the limit hold the
/// resource. KEYS[1]: the holders (a sorted set scored by expiry, ms). ARGV: now (ms),
/// holder, lease (ms), limit. Returns 1 when the lease was taken.
const ACQUIRE: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// Extends a lease still held. ARGV: now (ms), holder, lease (ms). Returns 1 when held.
const RENEW: &str = r#"
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

#[derive(Clone)]
pub struct LeaseStore {
    redis: Redis,
}

/// A lease taken: renew it while working, release it at the end.
#[derive(Debug, Clone)]
pub struct Lease {
    key: String,
    holder: String,
    ttl: Duration,
}

fn now_ms() -> String {
    chrono::Utc::now().timestamp_millis().to_string()
}

impl LeaseStore {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Takes one of `limit` leases on `resource` for `ttl`; `None` when all are held.
    pub async fn acquire(
        &self,
        resource: &str,
        limit: u32,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let key = format!("{}lease:{resource}", self.redis.keys.prefix());
        let holder = Uuid::new_v4().to_string();
        let taken: i64 = self
            .redis
            .eval(
                ACQUIRE,
                key.clone(),
                vec![
                    now_ms(),
                    holder.clone(),
                    ttl.as_millis().to_string(),
                    limit.to_string(),
                ],
            )
            .await?;
        Ok((taken == 1).then_some(Lease { key, holder, ttl }))
    }

    /// Extends the lease; false when it had expired meanwhile (and may be someone
    /// else's slot now).
    pub async fn renew(&self, lease: &Lease) -> Result<bool, StoreError> {
        let held: i64 = self
            .redis
            .eval(
                RENEW,
                lease.key.clone(),
                vec![
                    now_ms(),
                    lease.holder.clone(),
                    lease.ttl.as_millis().to_string(),
                ],
            )
            .await?;
        Ok(held == 1)
    }

    pub async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let (key, holder) = (lease.key.clone(), lease.holder.clone());
        self.redis
            .with_conn(move |c| {
                Box::pin(async move {
                    let _: i64 = redis::cmd("ZREM")
                        .arg(&key)
                        .arg(&holder)
                        .query_async(c)
                        .await?;
                    Ok(())
                })
            })
            .await
    }
}
