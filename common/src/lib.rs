//! Code shared by the api and the consumer, grouped by concern:
//! - `domain`: types that cannot hold invalid data (email, profile, role, password hashing);
//! - `events`: the Avro registration event, password sealing and the Kafka client settings;
//! - `store`: PostgreSQL repositories and Redis stores, each owning its SQL or key names;
//! - `ops`: health checks, metrics, telemetry and shutdown shared by both binaries;
//! - `config`: the typed configuration pieces both binaries read from the environment.

pub mod config;
pub mod config_reference;
pub mod domain;
pub mod events;
pub mod ops;
pub mod store;
