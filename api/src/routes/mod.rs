//! HTTP handlers, one module per resource.

pub mod auth;
pub mod compat;
pub mod console;
pub mod data;
pub mod health;
pub mod hosted;
pub mod imports;
pub mod oidc;
pub mod oidc_clients;
pub mod operations;
pub mod passkeys;
pub mod passwordless;
pub mod registration;
pub mod scim;
pub mod scim_tokens;
pub mod security;
pub mod social;
pub mod users;
pub mod webhooks;
