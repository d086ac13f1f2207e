//! Persistence. PostgreSQL repositories (`users`, `sessions`, `data`) hold every SQL
//! statement; the Redis stores (`registration_status`, `login_attempts`,
//! `revoked_sessions`, `idempotency`) hold every key name and command, over the shared
//! connection handle in `redis`. `tls` is how both connect over TLS.

pub mod data;
pub mod idempotency;
pub mod login_attempts;
pub mod postgres;
pub mod redis;
pub mod registration_status;
pub mod revoked_sessions;
pub mod sessions;
pub mod tls;
pub mod users;
