//! Health probes: `/api/health` (all dependencies), `/api/health/live`, `/api/health/ready`.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use common::ops::health::check;

use crate::bodies::health::{HealthBody, ProbeBody, Services};
use crate::state::AppState;

/// How long one dependency check answers the health endpoints.
const HEALTH_CACHE: Duration = Duration::from_secs(1);

/// The dependencies' health, checked at most once a second.
async fn services(app: &AppState) -> Services {
    let mut cache = app.health_cache.lock().await;
    if let Some((at, services)) = cache.as_ref() {
        if at.elapsed() < HEALTH_CACHE {
            return services.clone();
        }
    }
    let services = check_services(app).await;
    app.metrics.health_checks.inc();
    let up = &app.metrics.dependencies;
    up.set("redis", services.redis.is_healthy());
    up.set("postgres", services.postgres.is_healthy());
    up.set("kafka", services.kafka.is_healthy());
    *cache = Some((Instant::now(), services.clone()));
    services
}

async fn check_services(app: &AppState) -> Services {
    let t = app.health_timeout;
    let (redis, postgres, kafka) = tokio::join!(
        check("redis", t, app.stores.redis.ping()),
        check("postgres", t, common::store::postgres::ping(&app.pg, t)),
        check("kafka", t, app.publisher.check(t)),
    );
    Services {
        redis,
        postgres,
        kafka,
    }
}

#[utoipa::path(get, path = "/api/v1/health", tag = "health", responses(
    (status = 200, description = "Every dependency healthy", body = HealthBody),
    (status = 503, description = "A dependency is unhealthy", body = HealthBody),
))]
pub async fn health(State(app): State<AppState>) -> (StatusCode, Json<HealthBody>) {
    let services = services(&app).await;
    let all = services.all_healthy();
    let status = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = HealthBody {
        uptime: app.started.elapsed().as_secs_f64(),
        message: if all { "OK" } else { "DEGRADED" },
        timestamp: chrono::Utc::now().timestamp_millis(),
        services,
    };
    (status, Json(body))
}

#[utoipa::path(get, path = "/api/v1/health/live", tag = "health", responses(
    (status = 200, description = "The process serves", body = ProbeBody),
))]
pub async fn live() -> Json<ProbeBody> {
    Json(ProbeBody::status("alive"))
}

/// Ready when registrations can be accepted: Redis and the broker answer. PostgreSQL is
/// not required: the api keeps accepting while it is down, which is the point of the
/// queue.
#[utoipa::path(get, path = "/api/v1/health/ready", tag = "health", responses(
    (status = 200, description = "Redis and the broker answer", body = ProbeBody),
    (status = 503, description = "Not ready or draining", body = ProbeBody),
))]
pub async fn ready(State(app): State<AppState>) -> (StatusCode, Json<ProbeBody>) {
    if app.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ProbeBody::status("draining")),
        );
    }
    let services = services(&app).await;
    if services.redis.is_healthy() && services.kafka.is_healthy() {
        (StatusCode::OK, Json(ProbeBody::status("ready")))
    } else {
        let body = ProbeBody {
            status: "not ready",
            services: Some(services),
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Prometheus text exposition", content_type = "text/plain"),
))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    m.pools.set("postgres", state.pg.status().into());
    m.pools.set("redis", state.stores.redis.pool_status());
    m.producer_queue.set(state.publisher.queued());
    (
        [(header::CONTENT_TYPE, common::ops::metrics::CONTENT_TYPE)],
        common::ops::metrics::render(&state.metrics.registry),
    )
}
