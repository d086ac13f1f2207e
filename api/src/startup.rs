//! Building the application from its configuration and serving it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use common::config::ConfigError;
use common::redis_store::{RedisKeys, StatusStore};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::publisher::{KafkaPublisher, RegistrationPublisher};
use crate::routes::{health, registration};
use crate::state::AppState;

/// Largest accepted request body (DESIGN.md).
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("migrations failed: {0:#}")]
    Migrations(anyhow::Error),
}

pub struct Application {
    pub state: AppState,
    pub config: ApiConfig,
}

impl Application {
    /// Wires pools, producer and state. Connections are lazy, so this succeeds while a
    /// dependency is down; only migrations (when enabled) need PostgreSQL now.
    pub async fn build(config: ApiConfig) -> Result<Self, StartError> {
        let sealing_key = config.sealing_key()?;
        let pg = common::db::pool(&config.postgres)?;
        let redis = common::redis_store::pool(&config.redis)?;
        let store = StatusStore::new(
            redis,
            RedisKeys::new(config.redis.key_prefix.clone()),
            config.redis.timeout(),
        );
        let publisher: Arc<dyn RegistrationPublisher> = KafkaPublisher::new(
            &config.kafka,
            config.produce_timeout(),
            config.producer_queue_max_messages,
            config.producer_linger_ms,
        )?;
        if config.run_migrations {
            let applied = common::db::migrate(&pg)
                .await
                .map_err(StartError::Migrations)?;
            tracing::info!(
                event = "migrations_applied",
                count = applied.len(),
                ?applied
            );
        }
        let state = AppState::new(
            store,
            pg,
            config.postgres.timeout(),
            publisher,
            sealing_key,
            config.health_timeout(),
        );
        Ok(Self { state, config })
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting, lets
    /// in-flight requests finish (bounded by the grace period) and flushes the producer.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let grace = self.config.shutdown_grace();
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let draining_state = state.clone();
        let signal = async move {
            shutdown.await;
            draining_state.start_draining();
            let _ = drained_tx.send(());
        };
        let server = axum::serve(
            listener,
            router(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let server = tokio::spawn(async move { server.await });
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => result??,
            _ = drained_rx => {
                if tokio::time::timeout(grace, &mut server).await.is_err() {
                    tracing::warn!(event = "shutdown_grace_exceeded", grace_secs = grace.as_secs());
                    server.abort();
                }
            }
        }
        state.publisher.flush(grace).await;
        tracing::info!(event = "api_stopped");
        Ok(())
    }
}

/// The request span names the matched route, never the raw path: paths carry emails.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    tracing::info_span!("request", method = %request.method(), route = %route)
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/users", post(registration::register))
        .route("/api/auth/register", post(registration::register))
        .route("/api/users/{email}", get(registration::status))
        .route("/api/health", get(health::health))
        .route("/api/health/live", get(health::live))
        .route("/api/health/ready", get(health::ready))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}
