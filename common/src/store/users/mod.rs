//! The users repository: every SQL statement about `users` and `user_audit_log`.
//! One file per job: `persist` (registrations into users), `changes`, `list`, `audit`;
//! the records and the finds here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::domain::registration::Profile;
use crate::domain::role::Role;

mod audit;
mod changes;
mod list;
mod persist;

pub use audit::*;
pub use changes::*;
pub use list::*;
pub use persist::*;

/// A user as stored, password hash and version included: the api shows a view of it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: Uuid,
    pub registration_id: Uuid,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub gender: Option<String>,
    pub sex: Option<String>,
    pub occupation: Option<String>,
    pub username: Option<String>,
    pub date_of_birth: Option<chrono::NaiveDate>,
    pub role: Role,
    pub password_hash: String,
    /// Incremented by every change; the api's entity tag.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub erased_at: Option<DateTime<Utc>>,
    /// When `email` was verified; `None` until a mailed link was followed.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// A new address waiting for its verification; `email` changes only then.
    pub pending_email: Option<String>,
    /// SCIM `userName`, for accounts an identity provider provisioned.
    pub scim_user_name: Option<String>,
    /// SCIM `externalId`: the provider's id for the account.
    pub external_id: Option<String>,
    /// The SCIM attributes without a column of their own (a JSON object).
    pub scim_attributes: Option<serde_json::Value>,
    /// When the account was deactivated (SCIM `active=false`): no sign-in until then.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl UserRecord {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// Live and not deactivated: may sign in and keep sessions.
    pub fn can_sign_in(&self) -> bool {
        self.deleted_at.is_none() && self.disabled_at.is_none()
    }

    /// Whether a password was ever set ([`crate::domain::password::NO_PASSWORD`] is
    /// not one).
    pub fn has_password(&self) -> bool {
        !self.password_hash.starts_with('!')
    }

    /// `first_name last_name`, whichever is present.
    pub fn full_name(&self) -> Option<String> {
        crate::domain::registration::join_name(
            self.first_name.as_deref(),
            self.last_name.as_deref(),
        )
    }
}

pub(crate) const USER_COLUMNS: &str = "id, registration_id, email, first_name, last_name, gender, sex, occupation, role, password_hash, version, created_at, updated_at, deleted_at, erased_at, username, date_of_birth, email_verified_at, pending_email, scim_user_name, external_id, scim_attributes, disabled_at";

pub(crate) fn user_from_row(r: &tokio_postgres::Row) -> UserRecord {
    UserRecord {
        id: r.get(0),
        registration_id: r.get(1),
        email: r.get(2),
        first_name: r.get(3),
        last_name: r.get(4),
        gender: r.get(5),
        sex: r.get(6),
        occupation: r.get(7),
        // The CHECK constraint admits only the three roles.
        role: Role::parse(r.get::<_, &str>(8)).unwrap_or(Role::User),
        password_hash: r.get(9),
        version: r.get(10),
        created_at: r.get(11),
        updated_at: r.get(12),
        deleted_at: r.get(13),
        erased_at: r.get(14),
        username: r.get(15),
        date_of_birth: r.get(16),
        email_verified_at: r.get(17),
        pending_email: r.get(18),
        scim_user_name: r.get(19),
        external_id: r.get(20),
        scim_attributes: r.get(21),
        disabled_at: r.get(22),
    }
}

/// A user by id, deleted ones included.
pub async fn find_by_id(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    Ok(client
        .query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(user_from_row))
}

/// The same, locking the row until the transaction ends.
pub async fn lock_by_id(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE");
    Ok(client
        .query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(user_from_row))
}

/// An arbitrary constant: the transaction lock taken before a change that could leave
/// no admin, so two such changes cannot both see the other admin.
const ADMIN_CHANGE_LOCK: i64 = 0x5245_4741_444d_494e;

/// Live admins other than `id`, counted under a transaction-scoped lock that serialises
/// every demotion and deletion of an admin. Call it on the change's transaction.
pub async fn other_live_admins(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<i64, tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&ADMIN_CHANGE_LOCK])
        .await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM users WHERE role = 'admin' AND deleted_at IS NULL AND id <> $1",
            &[&id],
        )
        .await?;
    Ok(row.get(0))
}

/// A user's role and whether it is gone (deleted or deactivated): what an access
/// token's claims are checked against before a write.
pub async fn standing(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<(Role, bool)>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT role, deleted_at IS NOT NULL OR disabled_at IS NOT NULL FROM users WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| {
        (
            Role::parse(r.get::<_, &str>(0)).unwrap_or(Role::User),
            r.get(1),
        )
    }))
}

/// A user by (normalised) email, deleted ones included.
pub async fn find_by_email(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    find_one(client, "email", email).await
}

/// A user by (lower-cased) username, deleted ones included.
pub async fn find_by_username(
    client: &impl GenericClient,
    username: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    find_one(client, "username", username).await
}

/// The user whose unique text `column` (a name of this module, never input) is `value`.
async fn find_one(
    client: &impl GenericClient,
    column: &'static str,
    value: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE {column} = $1");
    Ok(client
        .query_opt(&sql, &[&value])
        .await?
        .as_ref()
        .map(user_from_row))
}
