//! Running the binaries: dependency health, Prometheus metrics, logging and shutdown.

pub mod dead_letters;
pub mod health;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;
