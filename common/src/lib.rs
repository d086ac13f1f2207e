//! Code shared by the api and the consumer: domain types, configuration, the Avro event
//! codec, password sealing, Redis keys, PostgreSQL repositories and telemetry.

pub mod config;
pub mod data_store;
pub mod db;
pub mod email;
pub mod event;
pub mod health;
pub mod kafka;
pub mod password;
pub mod redis_store;
pub mod registration;
pub mod seal;
pub mod sessions;
pub mod telemetry;
pub mod users;

pub use email::Email;
pub mod metrics;
pub mod shutdown;
