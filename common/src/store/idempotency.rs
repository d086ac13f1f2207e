//! The first answer to an `Idempotency-Key`, kept for a day so a retry gets it again.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::redis::{Redis, StoreError};

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

    /// Stores the first answer for an idempotency key; a concurrent first answer wins.
    pub async fn put<T: Serialize>(&self, key: &str, answer: &T) -> Result<(), StoreError> {
        let key = self.redis.keys.idempotency(key);
        let answer = serde_json::to_string(answer)?;
        self.redis
            .with_conn(move |c| {
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
