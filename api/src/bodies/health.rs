//! Bodies of the health probes.

use common::ops::health::ServiceHealth;
use serde::Serialize;
use utoipa::ToSchema;

/// Each dependency: `healthy` or `unhealthy`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Services {
    #[schema(value_type = String)]
    pub redis: ServiceHealth,
    #[schema(value_type = String)]
    pub postgres: ServiceHealth,
    #[schema(value_type = String)]
    pub kafka: ServiceHealth,
}

impl Services {
    pub fn all_healthy(&self) -> bool {
        self.redis.is_healthy() && self.postgres.is_healthy() && self.kafka.is_healthy()
    }
}

/// `GET /api/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthBody {
    /// Seconds since start.
    pub uptime: f64,
    /// OK | DEGRADED
    pub message: &'static str,
    /// Unix milliseconds.
    pub timestamp: i64,
    pub services: Services,
}

/// `GET /api/health/live` and `/api/health/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeBody {
    /// alive | ready | not ready | draining
    pub status: &'static str,
    /// Which dependency is missing (not ready only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<Services>,
}

impl ProbeBody {
    pub fn status(status: &'static str) -> Self {
        Self {
            status,
            services: None,
        }
    }
}
