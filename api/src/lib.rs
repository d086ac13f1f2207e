//! Registrar's HTTP api: validates registrations, seals passwords, stages them in Redis
//! and publishes them to Kafka; logs users in and manages accounts. `main.rs` only
//! parses the command line and calls in here.
//!
//! Layers: `routes` (HTTP handlers: extract, call, respond) → `service` (use cases that
//! own their transactions, audit rows, Redis and Kafka steps) → `common::store`
//! (SQL repositories and Redis stores) and `publisher` (Kafka). `bodies` holds every
//! JSON body, shared by the handlers and the OpenAPI document.

pub mod admin;
pub mod auth;
pub mod bodies;
pub mod caller;
pub mod config;
pub mod error;
pub mod extract;
pub mod failure;
pub mod intake;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod poll_cache;
pub mod protection;
pub mod publisher;
pub mod respond;
pub mod routes;
pub mod scim;
pub mod service;
pub mod startup;
pub mod state;
pub mod versioning;
