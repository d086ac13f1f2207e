//! Bodies of user management: the user as the api shows it, listings, changes, the
//! audit trail and the export.

use chrono::{DateTime, Utc};
use common::domain::Role;
use common::store::users::{AuditRecord, UserRecord};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::data::DataItemView;
use super::Pagination;

/// A user as the api shows it (never the password hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    pub registration_id: Uuid,
    pub email: String,
    /// Whether `email` was verified (a mailed link was followed).
    pub email_verified: bool,
    /// A new address waiting for its verification; `email` changes when it is verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_email: Option<String>,
    /// `firstName lastName`, whichever is present (the OpenID Connect `name` claim).
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub gender: Option<String>,
    pub sex: Option<String>,
    pub occupation: Option<String>,
    /// Lower-cased; unique.
    pub username: Option<String>,
    /// `YYYY-MM-DD`.
    #[schema(value_type = Option<String>, format = Date)]
    pub date_of_birth: Option<chrono::NaiveDate>,
    /// user | moderator | admin
    #[schema(value_type = String)]
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Present on deleted users (admins only see them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<DateTime<Utc>>,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            registration_id: u.registration_id,
            email: u.email.clone(),
            email_verified: u.email_verified_at.is_some(),
            pending_email: u.pending_email.clone(),
            name: u.full_name(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            gender: u.gender.clone(),
            sex: u.sex.clone(),
            occupation: u.occupation.clone(),
            username: u.username.clone(),
            date_of_birth: u.date_of_birth,
            role: u.role,
            created_at: u.created_at,
            updated_at: u.updated_at,
            deleted_at: u.deleted_at,
            erased_at: u.erased_at,
        }
    }
}

/// One user (`GET /api/users/{id}`, `/api/auth/me`, updates); its `ETag` in the header.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserAnswer {
    pub success: bool,
    pub data: UserView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserListAnswer {
    pub success: bool,
    pub count: usize,
    pub data: Vec<UserView>,
    pub pagination: Pagination,
}

/// `PATCH /api/users/{id}` body: any of the fields; also read for `PUT`, whose missing
/// profile fields are then reported together as one validation error.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserUpdateRequest {
    /// The whole name, instead of `firstName` and `lastName`: split at its last space.
    #[schema(min_length = 2, max_length = 201)]
    pub name: Option<String>,
    #[schema(min_length = 2, max_length = 100)]
    pub first_name: Option<String>,
    #[schema(min_length = 2, max_length = 100)]
    pub last_name: Option<String>,
    #[schema(min_length = 3, max_length = 254)]
    pub email: Option<String>,
    #[schema(pattern = "^(male|female|non-binary|prefer-not-to-say)$")]
    pub gender: Option<String>,
    #[schema(pattern = "^(male|female|intersex)$")]
    pub sex: Option<String>,
    #[schema(min_length = 2, max_length = 255)]
    pub occupation: Option<String>,
    /// 3-32 of `a-z 0-9 . _ -`, case-insensitive, unique (`USERNAME_TAKEN`).
    #[schema(
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$"
    )]
    pub username: Option<String>,
    /// `YYYY-MM-DD`, from 1900-01-01 to today.
    #[schema(format = Date)]
    pub date_of_birth: Option<String>,
    /// Admin only: user | moderator | admin.
    #[schema(pattern = "^(user|moderator|admin)$")]
    pub role: Option<String>,
    /// A new password: 12-128 characters by default (`PASSWORD_MIN_LENGTH`), not a
    /// common one.
    #[schema(value_type = Option<String>, min_length = 12, max_length = 128)]
    pub password: Option<SecretString>,
    /// Required when changing one's own password.
    #[schema(value_type = Option<String>)]
    pub current_password: Option<SecretString>,
}

/// `PUT /api/users/{id}` body as the OpenAPI document shows it: the email and the fields
/// `REQUIRED_PROFILE_FIELDS` lists are present; optional ones left out keep their value.
/// The handler reads a [`UserUpdateRequest`], so that missing fields are reported
/// together in the validation envelope instead of as a JSON error.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserReplaceRequest {
    /// The whole name, instead of `firstName` and `lastName`: split at its last space.
    #[schema(min_length = 2, max_length = 201)]
    pub name: Option<String>,
    #[schema(min_length = 2, max_length = 100)]
    pub first_name: Option<String>,
    #[schema(min_length = 2, max_length = 100)]
    pub last_name: Option<String>,
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
    #[schema(pattern = "^(male|female|non-binary|prefer-not-to-say)$")]
    pub gender: Option<String>,
    #[schema(pattern = "^(male|female|intersex)$")]
    pub sex: Option<String>,
    #[schema(min_length = 2, max_length = 255)]
    pub occupation: Option<String>,
    #[schema(
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$"
    )]
    pub username: Option<String>,
    #[schema(format = Date)]
    pub date_of_birth: Option<String>,
    /// Admin only: user | moderator | admin. Absent or null: unchanged.
    #[schema(pattern = "^(user|moderator|admin)$")]
    pub role: Option<String>,
    /// A new password: 12-128 characters by default (`PASSWORD_MIN_LENGTH`). Absent or
    /// null: unchanged.
    #[schema(value_type = Option<String>, min_length = 12, max_length = 128)]
    pub password: Option<SecretString>,
    /// Required when changing one's own password.
    #[schema(value_type = Option<String>)]
    pub current_password: Option<SecretString>,
}

/// `DELETE /api/users/{id}` body: deleting one's own account re-authenticates.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteRequest {
    #[schema(value_type = Option<String>)]
    pub current_password: Option<SecretString>,
}

/// One audit row as the api shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryView {
    pub id: i64,
    /// user.registered, user.updated, auth.login, data.created...
    pub action: String,
    pub actor_id: Option<Uuid>,
    pub registration_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<AuditRecord> for AuditEntryView {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id,
            action: r.action,
            actor_id: r.actor_id,
            registration_id: r.registration_id,
            ip: r.ip,
            user_agent: r.user_agent,
            details: r.details,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditListAnswer {
    pub success: bool,
    pub count: usize,
    pub data: Vec<AuditEntryView>,
    pub pagination: Pagination,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserExport {
    pub exported_at: DateTime<Utc>,
    pub user: UserView,
    /// The newest audit entries (at most 1000).
    pub audit: Vec<AuditEntryView>,
    /// Pass as `cursor` to `/api/users/{id}/audit` for the older entries; null when the
    /// export holds the whole trail.
    pub audit_next_cursor: Option<String>,
    pub data: Vec<DataItemView>,
}

/// `GET /api/users/{id}/export`: everything stored about the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportAnswer {
    pub success: bool,
    pub data: UserExport,
}
