//! Shared state handed to every handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_store::StatusStore;
use common::seal::SealingKey;

use crate::auth::Accounts;
use crate::metrics::ApiMetrics;
use crate::publisher::RegistrationPublisher;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: StatusStore,
    pub pg: deadpool_postgres::Pool,
    pub pg_timeout: Duration,
    pub publisher: Arc<dyn RegistrationPublisher>,
    pub sealing_key: SealingKey,
    pub started: Instant,
    pub health_timeout: Duration,
    pub metrics: Arc<ApiMetrics>,
    pub accounts: Accounts,
    draining: AtomicBool,
}

/// What the state is built from.
pub struct Dependencies {
    pub store: StatusStore,
    pub pg: deadpool_postgres::Pool,
    pub pg_timeout: Duration,
    pub publisher: Arc<dyn RegistrationPublisher>,
    pub sealing_key: SealingKey,
    pub health_timeout: Duration,
    pub metrics: Arc<ApiMetrics>,
    pub accounts: Accounts,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(deps: Dependencies) -> Self {
        let Dependencies {
            store,
            pg,
            pg_timeout,
            publisher,
            sealing_key,
            health_timeout,
            metrics,
            accounts,
        } = deps;
        Self(Arc::new(Inner {
            store,
            pg,
            pg_timeout,
            publisher,
            sealing_key,
            started: Instant::now(),
            health_timeout,
            metrics,
            accounts,
            draining: AtomicBool::new(false),
        }))
    }

    /// After SIGTERM readiness fails, so the load balancer stops sending traffic while
    /// in-flight requests finish.
    pub fn start_draining(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }

    /// A pooled PostgreSQL connection, the checkout bounded by the configured timeout.
    pub async fn db(&self) -> Result<deadpool_postgres::Client, crate::error::ApiError> {
        tokio::time::timeout(self.pg_timeout, self.pg.get())
            .await
            .map_err(|_| {
                crate::error::ApiError::Unavailable(anyhow::anyhow!(
                    "no PostgreSQL connection within {:?}",
                    self.pg_timeout
                ))
            })?
            .map_err(|e| crate::error::ApiError::Unavailable(e.into()))
    }
}
