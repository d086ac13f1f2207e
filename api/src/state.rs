//! Shared state handed to every handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_store::StatusStore;
use common::seal::SealingKey;

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
    draining: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        store: StatusStore,
        pg: deadpool_postgres::Pool,
        pg_timeout: Duration,
        publisher: Arc<dyn RegistrationPublisher>,
        sealing_key: SealingKey,
        health_timeout: Duration,
        metrics: Arc<ApiMetrics>,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            pg,
            pg_timeout,
            publisher,
            sealing_key,
            started: Instant::now(),
            health_timeout,
            metrics,
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
}
