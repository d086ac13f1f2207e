//! Persistence. PostgreSQL repositories (`users`, `sessions`, `data`, `account_tokens`, `mail_outbox`, `mfa`) hold every SQL
//! statement; the Redis stores (`registration_status`, `login_attempts`,
//! `revoked_sessions`, `idempotency`, `auth_flows`) hold every key name and command, over the shared
//! connection handle in `redis`. `tls` is how both connect over TLS.

pub mod account_tokens;
pub mod auth_flows;
pub mod data;
pub mod idempotency;
pub mod identities;
pub mod imports;
pub mod leases;
pub mod login_attempts;
pub mod mail_outbox;
pub mod mfa;
pub mod oidc;
pub mod passkeys;
pub mod postgres;
pub mod redis;
pub mod registration_status;
pub mod revoked_sessions;
pub mod scim;
pub mod sessions;
pub mod tls;
pub mod user_events;
pub mod users;
pub mod webhooks;
