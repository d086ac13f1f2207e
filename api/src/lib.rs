//! Registrar's HTTP api: validates registrations, seals passwords, stages them in Redis
//! and publishes them to Kafka. `main.rs` only parses the command line and calls in here.

pub mod admin;
pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod protection;
pub mod publisher;
pub mod routes;
pub mod startup;
pub mod state;
