//! Integration tests: api and consumer in-process against real PostgreSQL, Redis and a
//! Kafka-API broker (`make test` starts them). One binary, one module per area.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod accounts;
mod clients;
mod console;
mod consumer;
mod crash;
mod deploy_files;
mod dlq;
mod docs;
mod events;
mod hardening;
mod health;
mod imports;
mod kafka_access;
mod observability;
mod oidc;
mod operations;
mod passkeys;
mod passwordless;
mod privacy;
mod profile;
mod registration;
mod resilience;
mod scim;
mod security;
mod services;
mod sessions;
mod social;
mod tls;
mod webhooks;
