//! Revoked sessions: their access tokens are refused until they would have expired.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use uuid::Uuid;

use super::redis::{Redis, StoreError};

#[derive(Clone)]
pub struct RevokedSessionStore {
    redis: Redis,
}

impl RevokedSessionStore {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Refuses the access tokens of these sessions for `ttl` (their longest lifetime).
    pub async fn revoke(&self, sessions: &[Uuid], ttl: Duration) -> Result<(), StoreError> {
        if sessions.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for sid in sessions {
            pipe.cmd("SET")
                .arg(self.redis.keys.revoked_session(*sid))
                .arg(1)
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .ignore();
        }
        self.redis.run_pipeline(pipe).await
    }

    pub async fn is_revoked(&self, session_id: Uuid) -> Result<bool, StoreError> {
        let key = self.redis.keys.revoked_session(session_id);
        self.redis
            .with_conn(move |c| Box::pin(async move { Ok(c.exists(&key).await?) }))
            .await
    }
}
