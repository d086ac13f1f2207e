//! The consumer's probe server: `/health/live`, `/health/ready` and `/api/health*`
//! aliases, on `CONSUMER_PORT`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use common::ops::health::check;
use common::store::redis::Redis;
use serde_json::json;

use crate::metrics::ConsumerMetrics;
use crate::ConsumerHealth;

#[derive(Clone)]
pub struct ProbeState {
    pub health: Arc<ConsumerHealth>,
    pub metrics: Arc<ConsumerMetrics>,
    pub redis: Redis,
    pub pg: deadpool_postgres::Pool,
    pub timeout: Duration,
}

pub fn router(state: ProbeState) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health", get(ready))
        .route("/ready", get(ready))
        .route("/api/health/live", get(live))
        .route("/api/health/ready", get(ready))
        .route("/api/health", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(s): State<ProbeState>) -> impl axum::response::IntoResponse {
    s.metrics.pools.set("postgres", s.pg.status().into());
    s.metrics.pools.set("redis", s.redis.pool_status());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            common::ops::metrics::CONTENT_TYPE,
        )],
        common::ops::metrics::render(&s.metrics.registry),
    )
}

async fn live(State(s): State<ProbeState>) -> (StatusCode, Json<serde_json::Value>) {
    if s.health.is_running() {
        (StatusCode::OK, Json(json!({ "status": "alive" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "stopped" })),
        )
    }
}

/// Ready when the loop runs and PostgreSQL and Redis answer.
async fn ready(State(s): State<ProbeState>) -> (StatusCode, Json<serde_json::Value>) {
    let (redis, postgres) = tokio::join!(
        check("redis", s.timeout, s.redis.ping()),
        check(
            "postgres",
            s.timeout,
            common::store::postgres::ping(&s.pg, s.timeout)
        ),
    );
    s.metrics.dependencies.set("redis", redis.is_healthy());
    s.metrics
        .dependencies
        .set("postgres", postgres.is_healthy());
    let ok = s.health.is_running() && redis.is_healthy() && postgres.is_healthy();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ok { "ready" } else { "not ready" },
            "degraded": s.health.is_degraded(),
            "services": { "redis": redis, "postgres": postgres },
        })),
    )
}
