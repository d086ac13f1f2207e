//! User management: listing (staff), reading, full and partial updates guarded by the
//! user's version, soft delete and erasure, export and the audit trail. Every change
//! writes its audit row in the transaction of the change.

use common::domain::Role;
use common::store::data::{self as data_store, DataItem};
use common::store::users::{self, AuditRecord, ListCursor, UserQuery, UserRecord};
use serde_json::json;
use uuid::Uuid;

mod remove;
mod update;

pub use remove::{remove_user, Removal};
pub(crate) use update::{keep_an_admin, reauthenticate};
pub use update::{update_user, Expected, UpdateMode};

use super::{page_limit, page_offset, Page, ServiceError};
use crate::caller::{Caller, RequestContext};
use crate::state::AppState;

/// Audit entries an export carries at most (the newest); the rest is paged from
/// `/api/users/{id}/audit` with the export's `auditNextCursor`. With the data quota this
/// bounds an export's size, and the api's memory for it, whatever the account's age.
pub const EXPORT_AUDIT_LIMIT: i64 = 1000;

fn encode_cursor(user: &UserRecord) -> String {
    ListCursor {
        created_at: user.created_at,
        id: user.id,
    }
    .encode()
}

fn parse_role(raw: &str) -> Result<Role, ServiceError> {
    Role::parse(raw)
        .ok_or_else(|| ServiceError::invalid("role", "must be one of user, moderator, admin"))
}

/// A user id from a path segment.
pub fn parse_user_id(raw: &str) -> Result<Uuid, ServiceError> {
    raw.parse()
        .map_err(|_| ServiceError::invalid("id", "must be a user id (UUID)"))
}

/// The filters of the user listing, as the caller sent them.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub cursor: Option<String>,
    pub role: Option<String>,
    pub q: Option<String>,
    pub include_deleted: Option<bool>,
    /// `active` (default), `deleted` or `all`; the last two for admins.
    pub status: Option<String>,
    pub verified: Option<bool>,
    pub mfa: Option<bool>,
}

/// Users newest first, for moderators and admins (deleted ones for admins only).
pub async fn list_users(
    app: &AppState,
    caller: &Caller,
    filter: ListFilter,
) -> Result<Page<UserRecord>, ServiceError> {
    if caller.role < Role::Moderator {
        return Err(ServiceError::Forbidden);
    }
    let (include_deleted, deleted_only) = match filter.status.as_deref() {
        None | Some("active") => (filter.include_deleted.unwrap_or(false), false),
        Some("deleted") => (true, true),
        Some("all") => (true, false),
        Some(_) => {
            return Err(ServiceError::invalid(
                "status",
                "must be active, deleted or all",
            ))
        }
    };
    if include_deleted && !caller.is_admin() {
        return Err(ServiceError::Forbidden);
    }
    let limit = page_limit(filter.limit)?;
    let offset = page_offset(filter.offset)?;
    let after = filter
        .cursor
        .as_deref()
        .map(|c| {
            ListCursor::decode(c)
                .ok_or_else(|| ServiceError::invalid("cursor", "is not a cursor this api issued"))
        })
        .transpose()?;
    let role = filter.role.as_deref().map(parse_role).transpose()?;
    let prefix = filter
        .q
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    if prefix.as_ref().is_some_and(|q| q.chars().count() > 100) {
        return Err(ServiceError::invalid("q", "must be at most 100 characters"));
    }
    if prefix
        .as_ref()
        .is_some_and(|q| q.chars().any(char::is_control))
    {
        return Err(ServiceError::invalid(
            "q",
            "must not contain control characters",
        ));
    }
    let client = app.db().await?;
    let query = UserQuery {
        role,
        prefix,
        include_deleted,
        deleted_only,
        verified: filter.verified,
        mfa: filter.mfa,
        after,
        limit: limit + 1,
        offset,
    };
    let rows = users::list(&**client, &query).await?;
    Ok(Page::from_fetch(rows, limit, Some(offset), encode_cursor))
}

/// A user by id: self, moderators and admins; deleted users for admins only.
pub async fn get_user(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: Uuid,
) -> Result<UserRecord, ServiceError> {
    if !caller.is_self_or_staff(id) {
        return Err(ServiceError::Forbidden);
    }
    let user = visible_user(app, caller, id).await?;
    audit_staff_read(app, caller, context, id, "user.viewed").await?;
    Ok(user)
}

/// Staff reading another user's data leaves a trace in that user's audit trail.
async fn audit_staff_read(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: Uuid,
    action: &str,
) -> Result<(), ServiceError> {
    if caller.id == id {
        return Ok(());
    }
    let client = app.db().await?;
    let audit = context.audit(Some(caller.id));
    Ok(users::audit(&**client, id, action, &audit, json!({})).await?)
}

/// What the user sees of their own trail: where staff acted on the account, not the
/// staff member's address or user agent (admins see everything).
fn as_seen_by(caller: &Caller, id: Uuid, mut rows: Vec<AuditRecord>) -> Vec<AuditRecord> {
    if caller.is_admin() {
        return rows;
    }
    for row in rows
        .iter_mut()
        .filter(|r| r.actor_id.is_some_and(|a| a != id))
    {
        row.ip = None;
        row.user_agent = None;
    }
    rows
}

async fn visible_user(
    app: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<UserRecord, ServiceError> {
    let client = app.db().await?;
    users::find_by_id(&**client, id)
        .await?
        .filter(|u| !u.is_deleted() || caller.is_admin())
        .ok_or(ServiceError::NotFound("User"))
}

/// Everything stored about a user.
#[derive(Debug)]
pub struct Export {
    pub user: UserRecord,
    /// The newest audit entries, at most `EXPORT_AUDIT_LIMIT`.
    pub audit: Vec<AuditRecord>,
    /// Where `/api/users/{id}/audit?cursor=` continues when the trail is longer.
    pub audit_next_cursor: Option<String>,
    pub data: Vec<DataItem>,
}

/// The user's profile, audit trail and data items (self or admin).
pub async fn export_user(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: Uuid,
) -> Result<Export, ServiceError> {
    if !caller.is_self_or_admin(id) {
        return Err(ServiceError::Forbidden);
    }
    let user = visible_user(app, caller, id).await?;
    audit_staff_read(app, caller, context, id, "user.exported").await?;
    let client = app.db().await?;
    let audit = users::audit_trail(&**client, id, EXPORT_AUDIT_LIMIT + 1, 0, None).await?;
    let audit = Page::from_fetch(
        as_seen_by(caller, id, audit),
        EXPORT_AUDIT_LIMIT,
        None,
        |r| r.id.to_string(),
    );
    // The quota bounds the items; the limit only guards against a quota lowered later.
    let data = data_store::list(&**client, id, None, app.accounts.data_quota.0).await?;
    Ok(Export {
        user,
        audit_next_cursor: audit.next_cursor,
        audit: audit.rows,
        data,
    })
}

/// A page of the user's audit trail, newest first (self or admin). Erased and deleted
/// users keep their trail; an unknown id has none.
pub async fn audit_trail(
    app: &AppState,
    caller: &Caller,
    id: Uuid,
    limit: Option<i64>,
    offset: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<AuditRecord>, ServiceError> {
    if !caller.is_self_or_admin(id) {
        return Err(ServiceError::Forbidden);
    }
    let limit = page_limit(limit)?;
    let offset = page_offset(offset)?;
    let before = cursor
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ServiceError::invalid("cursor", "is not a cursor this api issued"))
        })
        .transpose()?;
    let client = app.db().await?;
    users::find_by_id(&**client, id)
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    let rows = as_seen_by(
        caller,
        id,
        users::audit_trail(&**client, id, limit + 1, offset, before).await?,
    );
    Ok(Page::from_fetch(rows, limit, Some(offset), |r| {
        r.id.to_string()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let at = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        let raw = ListCursor { created_at: at, id }.encode();
        assert_eq!(
            ListCursor::decode(&raw),
            Some(ListCursor { created_at: at, id })
        );
        assert_eq!(ListCursor::decode("not-a-cursor"), None);
    }
}
