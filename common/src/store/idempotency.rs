//! The first answer to an `Idempotency-Key`, kept for a day so a retry gets it again.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::redis::{Redis, StoreError};
use crate::domain::email::Email;

pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct IdempotencyStore {
    redis: Redis,
}

impl IdempotencyStore {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// The stored answer for an idempotency key, if any.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let key = self.redis.keys.idempotency(key);
        let raw: Option<String> = self
            .redis
            .with_conn(move |c| Box::pin(async move { Ok(c.get(&key).await?) }))
            .await?;
        Ok(raw.as_deref().map(serde_json::from_str).transpose()?)
    }

    /// Stores the first answer for an idempotency key (a concurrent first answer wins),
    /// indexed under the email it is about so that erasing the email finds it.
    pub async fn put<T: Serialize>(
        &self,
        key: &str,
        email: &Email,
        answer: &T,
    ) -> Result<(), StoreError> {
        let index = self.redis.keys.idempotency_by_email(email);
        let ttl = IDEMPOTENCY_TTL.as_secs();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.redis.keys.idempotency(key))
            .arg(serde_json::to_string(answer)?)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .ignore();
        pipe.cmd("SADD").arg(&index).arg(key).ignore();
        pipe.cmd("EXPIRE").arg(&index).arg(ttl).ignore();
        self.redis.run_pipeline(pipe).await
    }

    /// Forgets every stored answer about `email` (erasure).
    pub async fn forget_email(&self, email: &Email) -> Result<(), StoreError> {
        let index = self.redis.keys.idempotency_by_email(email);
        let keys = self.redis.keys.clone();
        self.redis
            .with_conn(move |c| {
                Box::pin(async move {
                    let members: Vec<String> = c.smembers(&index).await?;
                    let mut doomed: Vec<String> =
                        members.iter().map(|k| keys.idempotency(k)).collect();
                    doomed.push(index);
                    let _: i64 = c.del(&doomed).await?;
                    Ok(())
                })
            })
            .await
    }
}
