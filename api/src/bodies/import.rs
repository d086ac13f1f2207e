//! Bodies of bulk imports.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ErrorDetail;

/// One line of an import (NDJSON): a registration body with `password` (sealed, hashed
/// by the consumer) or `passwordHash` (kept as is), and what an existing account brings.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImportLine {
    /// The whole name, instead of `firstName` and `lastName` (split at its last space).
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// Under the password policy; or give `passwordHash`.
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
    /// argon2id, argon2i or scrypt PHC string, or a bcrypt hash (`$2b$…`).
    pub password_hash: Option<String>,
    pub gender: Option<String>,
    pub sex: Option<String>,
    pub occupation: Option<String>,
    pub username: Option<String>,
    pub date_of_birth: Option<String>,
    /// user (default) | moderator | admin
    pub role: Option<String>,
    /// When the account was created in the system it comes from (RFC 3339).
    pub created_at: Option<String>,
    /// The address was verified there: no verification mail.
    pub email_verified: Option<bool>,
    /// The registration id; default: derived from the import id and the line number, so
    /// rerunning an import with its id persists each line once.
    pub id: Option<Uuid>,
}

/// A refused line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LineError {
    pub line: i64,
    pub errors: Vec<ErrorDetail>,
}

/// The answer of an import: what the api accepted (published to the pipeline) and
/// refused; follow `GET /api/v1/admin/imports/{id}` for what the consumer persisted.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportAnswer {
    pub success: bool,
    pub import_id: Uuid,
    pub lines: i64,
    pub accepted: i64,
    pub rejected: i64,
    /// The first 1000 refused lines with their errors.
    pub rejected_lines: Vec<LineError>,
}

/// An import's progress.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportStatusAnswer {
    pub success: bool,
    pub import_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// What stopped the import early (a dependency down); rerun it with the same id.
    pub error: Option<String>,
    pub lines: i64,
    pub accepted: i64,
    pub rejected: i64,
    /// Accepted lines persisted as users.
    pub completed: i64,
    /// Accepted lines the consumer could not turn into users, by reason (`EMAIL_TAKEN`…).
    pub failed: std::collections::BTreeMap<String, i64>,
    /// Accepted lines neither persisted nor failed yet.
    pub pending: i64,
    /// The first 100 refused lines.
    pub rejected_lines: Vec<LineError>,
    /// The first 100 failed lines.
    pub failed_lines: Vec<LineFailure>,
}

/// An accepted line the consumer could not turn into a user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LineFailure {
    pub line: i64,
    /// `EMAIL_TAKEN`, `USERNAME_TAKEN`, `INVALID_REGISTRATION`, `INVALID_CREDENTIAL_ENVELOPE`.
    pub reason: String,
}
