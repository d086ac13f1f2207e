//! The Redis connection shared by the stores: the pool, every key name (after the
//! deployment's prefix) and a bounded way to run commands.
//!
//! Keys:
//! - `user:pending:<email>`   the registration in flight; `SET NX`, TTL 1 h
//! - `user:completed:<email>` persisted; TTL 24 h
//! - `user:failed:<email>`    rejected, with a reason; TTL 24 h
//! - `registration:decision:<registrationId>` who settled a registration whose publish
//!   the api saw fail: `taken` (a consumer read it, TTL 1 h) or `withdrawn` (the api
//!   answered 503, TTL 8 days); the first `SET NX` wins
//! - `idempotency:<key>`      the first answer to an `Idempotency-Key`; TTL 24 h
//! - `idempotency:email:<email>` the idempotency keys of that email's answers; TTL 24 h
//! - `auth:attempts:<email>:<client>` login attempts on an account from one client
//!   address (IPv6: its /64) in the lockout window
//! - `auth:revoked:<sid>`     a revoked session; its access tokens are refused until
//!   they would have expired anyway

use std::time::Duration;

use deadpool_redis::redis;
use deadpool_redis::{Config, Pool, Runtime};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::{ConfigError, RedisConfig};
use crate::domain::email::Email;

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
    /// The prefix every key of this deployment starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
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
    /// Whether a consumer took a registration or the api withdrew it (see
    /// `RegistrationStatusStore::withdraw`).
    pub fn decision(&self, registration_id: Uuid) -> String {
        format!("{}registration:decision:{}", self.prefix, registration_id)
    }
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}idempotency:{}", self.prefix, key)
    }
    /// The idempotency keys whose answers name this email (so erasure can find them).
    pub fn idempotency_by_email(&self, email: &Email) -> String {
        format!("{}idempotency:email:{}", self.prefix, email)
    }
    /// Login attempts on an account from one client (its address, or /64 network).
    pub fn login_attempts(&self, email: &Email, client: &str) -> String {
        format!("{}auth:attempts:{}:{}", self.prefix, email, client)
    }
    /// The set of an account's attempt keys (one per client), so erasure deletes them
    /// without scanning the keyspace.
    pub fn login_attempts_index(&self, email: &Email) -> String {
        format!("{}auth:attempts-index:{}", self.prefix, email)
    }
    pub fn revoked_session(&self, session_id: Uuid) -> String {
        format!("{}auth:revoked:{}", self.prefix, session_id)
    }
}

/// Builds a lazy pool. A `rediss://` URL connects over TLS, checking the server's
/// certificate against `REDIS_TLS_CA_FILE` when set, else the system trust store.
pub fn pool(config: &RedisConfig) -> Result<Pool, ConfigError> {
    let invalid = || ConfigError::new("REDIS_URL", "is not a valid Redis URL");
    let url = config.url.expose_secret();
    let mut pool_cfg = deadpool_redis::PoolConfig::new(config.pool_size);
    pool_cfg.timeouts.wait = Some(config.timeout());
    pool_cfg.timeouts.create = Some(config.timeout());
    pool_cfg.timeouts.recycle = Some(config.timeout());
    let tls = url.starts_with("rediss://");
    if tls {
        super::tls::install_crypto_provider();
    }
    let Some(ca_file) = &config.tls_ca_file else {
        let mut cfg = Config::from_url(url);
        cfg.pool = Some(pool_cfg);
        return cfg
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|_| invalid());
    };
    if !tls {
        return Err(ConfigError::new(
            "REDIS_TLS_CA_FILE",
            "is set but REDIS_URL is not a rediss:// URL",
        ));
    }
    let root_cert = std::fs::read(ca_file).map_err(|e| {
        ConfigError::new(
            "REDIS_TLS_CA_FILE",
            format!("cannot read {}: {e}", ca_file.display()),
        )
    })?;
    // build_with_tls keeps the CA inside the connection info; deadpool's own Config
    // would drop it, so the manager is built from the client's connection info.
    let client = redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root_cert),
        },
    )
    .map_err(|e| ConfigError::new("REDIS_TLS_CA_FILE", e))?;
    let manager = deadpool_redis::Manager::new(client.get_connection_info().clone())
        .map_err(|_| invalid())?;
    Pool::builder(manager)
        .config(pool_cfg)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|_| invalid())
}

/// A pooled connection, the key names and the bound on every command; cheap to clone,
/// one per store.
#[derive(Clone)]
pub struct Redis {
    pool: Pool,
    pub(crate) keys: RedisKeys,
    timeout: Duration,
}

impl Redis {
    /// The connection pool's numbers, for `registrar_pool_connections`.
    pub fn pool_status(&self) -> crate::ops::metrics::PoolStatus {
        self.pool.status().into()
    }

    pub fn new(pool: Pool, keys: RedisKeys, timeout: Duration) -> Self {
        Self {
            pool,
            keys,
            timeout,
        }
    }

    /// Builds the handle from the configuration (pool, prefix, timeout).
    pub fn from_config(config: &RedisConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(
            pool(config)?,
            RedisKeys::new(config.key_prefix.clone()),
            config.timeout(),
        ))
    }

    /// Runs `f` on a pooled connection, the whole of it (checkout included) bounded by the
    /// configured timeout so a stalled Redis gives an error, never a hang.
    pub(crate) async fn with_conn<T, F>(&self, f: F) -> Result<T, StoreError>
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

    /// Runs a pipeline whose replies are all ignored.
    pub(crate) async fn run_pipeline(&self, pipe: redis::Pipeline) -> Result<(), StoreError> {
        self.with_conn(move |c| {
            Box::pin(async move {
                let () = pipe.query_async(c).await?;
                Ok(())
            })
        })
        .await
    }

    /// Deletes one key; returns how many keys were deleted (0 or 1).
    pub(crate) async fn del(&self, key: String) -> Result<i64, StoreError> {
        self.with_conn(move |c| {
            Box::pin(async move { Ok(redis::AsyncCommands::del(c, &key).await?) })
        })
        .await
    }

    /// Runs a Lua script on one key.
    pub(crate) async fn eval<T>(
        &self,
        script: &'static str,
        key: String,
        args: Vec<String>,
    ) -> Result<T, StoreError>
    where
        T: redis::FromRedisValue + Send + 'static,
    {
        self.eval_keys(script, vec![key], args).await
    }

    /// Runs a Lua script on the given keys.
    pub(crate) async fn eval_keys<T>(
        &self,
        script: &'static str,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<T, StoreError>
    where
        T: redis::FromRedisValue + Send + 'static,
    {
        self.with_conn(move |c| {
            Box::pin(async move {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(script).arg(keys.len()).arg(&keys);
                for a in &args {
                    cmd.arg(a);
                }
                Ok(cmd.query_async(c).await?)
            })
        })
        .await
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
        assert_eq!(
            keys.login_attempts(&email, "203.0.113.9"),
            "auth:attempts:a@b.io:203.0.113.9"
        );
        assert_eq!(
            keys.login_attempts_index(&email),
            "auth:attempts-index:a@b.io"
        );
        assert_eq!(RedisKeys::new("t1:").idempotency("k"), "t1:idempotency:k");
        assert_eq!(
            keys.revoked_session(Uuid::nil()),
            "auth:revoked:00000000-0000-0000-0000-000000000000"
        );
    }
}
