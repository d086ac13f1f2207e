//! Health probes: `/api/health` (all dependencies), `/api/health/live`, `/api/health/ready`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use common::health::{check, ServiceHealth};
use serde_json::json;

use crate::state::AppState;

struct Services {
    redis: ServiceHealth,
    postgres: ServiceHealth,
    kafka: ServiceHealth,
}

async fn services(app: &AppState) -> Services {
    let t = app.health_timeout;
    let (redis, postgres, kafka) = tokio::join!(
        check("redis", t, app.store.ping()),
        check("postgres", t, common::db::ping(&app.pg, t)),
        check("kafka", t, app.publisher.check(t)),
    );
    Services {
        redis,
        postgres,
        kafka,
    }
}

#[utoipa::path(get, path = "/api/health", tag = "health", responses(
    (status = 200, description = "Every dependency healthy", body = crate::openapi::HealthBody),
    (status = 503, description = "A dependency is unhealthy", body = crate::openapi::HealthBody),
))]
pub async fn health(State(app): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let s = services(&app).await;
    let all = s.redis.is_healthy() && s.postgres.is_healthy() && s.kafka.is_healthy();
    let status = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "uptime": app.started.elapsed().as_secs_f64(),
        "message": if all { "OK" } else { "DEGRADED" },
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "services": { "redis": s.redis, "postgres": s.postgres, "kafka": s.kafka },
    });
    (status, Json(body))
}

#[utoipa::path(get, path = "/api/health/live", tag = "health", responses(
    (status = 200, description = "The process serves", body = crate::openapi::ProbeBody),
))]
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "alive" }))
}

/// Ready when registrations can be accepted: Redis and the broker answer. PostgreSQL is
/// not required: the api keeps accepting while it is down, which is the point of the
/// queue.
#[utoipa::path(get, path = "/api/health/ready", tag = "health", responses(
    (status = 200, description = "Redis and the broker answer", body = crate::openapi::ProbeBody),
    (status = 503, description = "Not ready or draining", body = crate::openapi::ProbeBody),
))]
pub async fn ready(State(app): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    if app.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        );
    }
    let s = services(&app).await;
    if s.redis.is_healthy() && s.kafka.is_healthy() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "not ready",
                "services": { "redis": s.redis, "postgres": s.postgres, "kafka": s.kafka },
            })),
        )
    }
}
