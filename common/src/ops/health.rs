//! Dependency health as reported by `/api/health` of both binaries.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceHealth {
    Healthy,
    Unhealthy,
}

impl ServiceHealth {
    pub fn is_healthy(self) -> bool {
        self == ServiceHealth::Healthy
    }
}

/// Runs one check bounded by `timeout`; any error or a timeout is `Unhealthy`, and the
/// cause goes to the log, not to the response.
pub async fn check<F, E>(name: &'static str, timeout: Duration, fut: F) -> ServiceHealth
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(())) => ServiceHealth::Healthy,
        Ok(Err(e)) => {
            tracing::warn!(event = "health_check_failed", service = name, error = %e);
            ServiceHealth::Unhealthy
        }
        Err(_) => {
            tracing::warn!(
                event = "health_check_timed_out",
                service = name,
                timeout_ms = timeout.as_millis() as u64
            );
            ServiceHealth::Unhealthy
        }
    }
}
