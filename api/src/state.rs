//! Shared state handed to every handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::events::seal::Sealer;
use common::store::auth_flows::AuthFlowStore;
use common::store::idempotency::IdempotencyStore;
use common::store::leases::LeaseStore;
use common::store::login_attempts::LoginAttemptStore;
use common::store::redis::Redis;
use common::store::registration_status::RegistrationStatusStore;
use common::store::revoked_sessions::RevokedSessionStore;

use crate::auth::Accounts;
use crate::bodies::health::Services;
use crate::metrics::ApiMetrics;
use crate::publisher::RegistrationPublisher;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The Redis stores, each for one job, over one connection pool.
pub struct Stores {
    /// The connection itself, for the health check.
    pub redis: Redis,
    pub status: RegistrationStatusStore,
    pub login_attempts: LoginAttemptStore,
    pub revoked_sessions: RevokedSessionStore,
    pub idempotency: IdempotencyStore,
    pub auth_flows: AuthFlowStore,
    /// Leases that bound concurrent work (an admin's running imports).
    pub leases: LeaseStore,
}

impl Stores {
    pub fn new(redis: Redis) -> Self {
        Self {
            status: RegistrationStatusStore::new(redis.clone()),
            login_attempts: LoginAttemptStore::new(redis.clone()),
            revoked_sessions: RevokedSessionStore::new(redis.clone()),
            idempotency: IdempotencyStore::new(redis.clone()),
            auth_flows: AuthFlowStore::new(redis.clone()),
            leases: LeaseStore::new(redis.clone()),
            redis,
        }
    }
}

/// SCIM provisioning limits (`SCIM_*`).
#[derive(Debug, Clone, Copy)]
pub struct ScimSettings {
    pub rate_per_minute: u64,
    pub create_wait: Duration,
    pub max_results: usize,
}

/// Bulk imports: chunking and the limits that keep one import from crowding out
/// sign-ups or another admin's work.
#[derive(Debug, Clone, Copy)]
pub struct ImportLimits {
    /// Lines per published chunk.
    pub chunk_lines: usize,
    pub max_bytes: u64,
    pub max_lines: u64,
    /// Imports one admin may run at once (api only).
    pub per_admin: u32,
    /// Lines per second one import publishes at most; 0: unpaced.
    pub rate_per_sec: u32,
}

/// What the operators' console reads beyond the stores: the dead-letter topic, the
/// consumers' metrics, and the built console itself.
#[derive(Clone)]
pub struct Operations {
    pub kafka: common::config::KafkaConfig,
    /// The keys of the records this api signs: a dead letter is replayed only when it
    /// verifies with one of them (the consumer's `dlq replay` also knows older keys).
    pub verifier: Arc<common::events::signature::RecordVerifier>,
    /// The consumers' `/metrics` URLs (`CONSUMER_METRICS_URLS`).
    pub consumer_metrics: Vec<String>,
    pub http: reqwest::Client,
    /// The console's built assets (`CONSOLE_DIR`).
    pub console_dir: std::path::PathBuf,
}

pub struct Inner {
    pub operations: Operations,
    pub stores: Stores,
    pub pg: deadpool_postgres::Pool,
    pub pg_timeout: Duration,
    pub publisher: Arc<dyn RegistrationPublisher>,
    pub sealer: Sealer,
    /// Finished registrations answered from memory for a few seconds (polling).
    pub finished: crate::poll_cache::FinishedRegistrations,
    /// How bulk imports are chunked and limited.
    pub imports: ImportLimits,
    /// `POLL_WITHOUT_REGISTRATION_ID`: anonymous polls without the id see the latest.
    pub poll_without_registration_id: bool,
    /// Where webhook endpoints may point (`WEBHOOK_ALLOW_NETWORKS`).
    pub webhook_guard: common::domain::webhook_target::TargetGuard,
    pub scim: ScimSettings,
    pub started: Instant,
    pub health_timeout: Duration,
    pub metrics: Arc<ApiMetrics>,
    pub accounts: Accounts,
    /// The last dependency check and when it ran: `/api/health` and readiness answer
    /// from it for a second, so a flood of probes cannot flood the dependencies. The
    /// lock also makes concurrent probes wait for one check instead of each running one.
    pub health_cache: tokio::sync::Mutex<Option<(Instant, Services)>>,
    draining: AtomicBool,
}

/// What the state is built from.
pub struct Dependencies {
    pub operations: Operations,
    pub stores: Stores,
    pub pg: deadpool_postgres::Pool,
    pub pg_timeout: Duration,
    pub publisher: Arc<dyn RegistrationPublisher>,
    pub sealer: Sealer,
    /// How long a finished registration's state is answered from memory.
    pub poll_cache_ttl: Duration,
    pub imports: ImportLimits,
    pub poll_without_registration_id: bool,
    pub webhook_guard: common::domain::webhook_target::TargetGuard,
    pub scim: ScimSettings,
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
            operations,
            stores,
            pg,
            pg_timeout,
            publisher,
            sealer,
            poll_cache_ttl,
            imports,
            poll_without_registration_id,
            webhook_guard,
            scim,
            health_timeout,
            metrics,
            accounts,
        } = deps;
        Self(Arc::new(Inner {
            operations,
            stores,
            pg,
            pg_timeout,
            publisher,
            sealer,
            finished: crate::poll_cache::FinishedRegistrations::new(poll_cache_ttl),
            imports: ImportLimits {
                chunk_lines: imports.chunk_lines.max(1),
                ..imports
            },
            poll_without_registration_id,
            webhook_guard,
            scim,
            started: Instant::now(),
            health_timeout,
            metrics,
            accounts,
            health_cache: tokio::sync::Mutex::new(None),
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
