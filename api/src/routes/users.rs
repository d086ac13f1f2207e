//! User management: listing (staff), reading, full and partial updates with
//! `ETag`/`If-Match`, soft delete and GDPR erasure, export and the audit trail. Every
//! change writes its audit row in the transaction of the change.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::data_store;
use common::email::Email;
use common::registration::{validate_password, FieldError, ProfileInput, ProfilePatch};
use common::sessions;
use common::users::{self, ListCursor, Role, UserChanges, UserQuery, UserRecord};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::auth::{actor, revoke_access, unavailable, user_answer};
use crate::routes::registration;
use crate::state::AppState;

pub const DEFAULT_PAGE: i64 = 20;
pub const MAX_PAGE: i64 = 100;

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError::new(field, message)])
}

pub(crate) fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        l @ 1..=MAX_PAGE => Ok(l),
        _ => Err(invalid("limit", format!("must be 1-{MAX_PAGE}"))),
    }
}

pub(crate) fn page_offset(offset: Option<i64>) -> Result<i64, ApiError> {
    match offset.unwrap_or(0) {
        o if o >= 0 => Ok(o),
        _ => Err(invalid("offset", "must not be negative")),
    }
}

fn encode_cursor(user: &UserRecord) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{}",
        user.created_at.timestamp_micros(),
        user.id
    ))
}

fn decode_cursor(raw: &str) -> Option<ListCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (micros, id) = text.split_once('|')?;
    Some(ListCursor {
        created_at: chrono::DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        id: id.parse().ok()?,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListParams {
    limit: Option<i64>,
    offset: Option<i64>,
    cursor: Option<String>,
    role: Option<String>,
    q: Option<String>,
    include_deleted: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/api/users",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, description = "1-100, default 20"),
        ("offset" = Option<i64>, Query, description = "Rows to skip (default 0)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page: keyset pagination"),
        ("role" = Option<String>, Query, description = "user | moderator | admin"),
        ("q" = Option<String>, Query, description = "Case-insensitive prefix of email, first or last name"),
        ("includeDeleted" = Option<bool>, Query, description = "Admin only"),
    ),
    responses(
        (status = 200, description = "A page of users, newest first", body = crate::openapi::UserListAnswer),
        (status = 400, description = "Bad parameter", body = crate::openapi::ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = crate::openapi::ErrorEnvelope),
        (status = 403, description = "Not a moderator or admin (or includeDeleted without admin)", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if caller.role < Role::Moderator {
        return Err(ApiError::Forbidden);
    }
    let include_deleted = params.include_deleted.unwrap_or(false);
    if include_deleted && !caller.is_admin() {
        return Err(ApiError::Forbidden);
    }
    let limit = page_limit(params.limit)?;
    let offset = page_offset(params.offset)?;
    let after = params
        .cursor
        .as_deref()
        .map(|c| {
            decode_cursor(c).ok_or_else(|| invalid("cursor", "is not a cursor this api issued"))
        })
        .transpose()?;
    let role = params
        .role
        .as_deref()
        .map(|r| {
            Role::parse(r).ok_or_else(|| invalid("role", "must be one of user, moderator, admin"))
        })
        .transpose()?;
    let prefix = params
        .q
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    if prefix.as_ref().is_some_and(|q| q.chars().count() > 100) {
        return Err(invalid("q", "must be at most 100 characters"));
    }
    let client = app.db().await?;
    let mut rows = users::list(
        &**client,
        &UserQuery {
            role,
            prefix,
            include_deleted,
            after,
            limit: limit + 1,
            offset,
        },
    )
    .await
    .map_err(unavailable)?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = more.then(|| rows.last().map(encode_cursor)).flatten();
    Ok(Json(json!({
        "success": true,
        "count": rows.len(),
        "data": rows,
        "pagination": { "limit": limit, "offset": offset, "nextCursor": next_cursor },
    })))
}

#[utoipa::path(
    get,
    path = "/api/users/{id}",
    tag = "users",
    params(("id" = String, Path, description = "A user id (token required: self, moderator, admin), or an email: the registration status, with the profile for the owner or an admin")),
    responses(
        (status = 200, description = "The user (by id, with ETag) or the registration status (by email)", body = crate::openapi::RegistrationAnswer),
        (status = 400, description = "Neither a user id nor an email", body = crate::openapi::ErrorEnvelope),
        (status = 401, description = "A user id without a token, or an invalid token", body = crate::openapi::ErrorEnvelope),
        (status = 403, description = "Another user's id", body = crate::openapi::ErrorEnvelope),
        (status = 404, description = "Nothing known", body = crate::openapi::ErrorEnvelope),
        (status = 503, description = "Dependencies unavailable", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    caller: Option<Caller>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let Ok(id) = raw.parse::<Uuid>() else {
        return registration::status(&app, &raw, caller.as_ref())
            .await
            .map(IntoResponse::into_response);
    };
    let caller = caller.ok_or(ApiError::Unauthenticated)?;
    if !caller.is_self_or_staff(id) {
        return Err(ApiError::Forbidden);
    }
    let client = app.db().await?;
    let user = users::find_by_id(&**client, id)
        .await
        .map_err(unavailable)?
        .filter(|u| !u.is_deleted() || caller.is_admin())
        .ok_or(ApiError::NotFound("User"))?;
    Ok(user_answer(&user))
}

/// The body of `PUT` (every profile field) and `PATCH` (any of them).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserUpdateRequest {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    gender: Option<String>,
    sex: Option<String>,
    occupation: Option<String>,
    /// Admin only.
    role: Option<String>,
    /// A new password; changing one's own needs `currentPassword`.
    password: Option<SecretString>,
    current_password: Option<SecretString>,
}

/// `If-Match`: `None` when absent; `*` matches any current version.
fn if_match(headers: &HeaderMap) -> Option<Vec<String>> {
    let values: Vec<String> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().trim_start_matches("W/").to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    (!values.is_empty()).then_some(values)
}

fn precondition_holds(expected: &Option<Vec<String>>, user: &UserRecord) -> bool {
    match expected {
        None => true,
        Some(tags) => tags.iter().any(|t| t == "*" || *t == user.etag()),
    }
}

#[utoipa::path(
    put,
    path = "/api/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    request_body = crate::openapi::UserUpdateBody,
    params(
        ("id" = String, Path, description = "User id"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version this change is based on"),
    ),
    responses(
        (status = 200, description = "The updated user, with its new ETag", body = crate::openapi::UserAnswer),
        (status = 400, description = "Validation failed (every profile field is required)", body = crate::openapi::ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = crate::openapi::ErrorEnvelope),
        (status = 403, description = "Not self or admin, or a role change by a non-admin", body = crate::openapi::ErrorEnvelope),
        (status = 404, description = "No such live user", body = crate::openapi::ErrorEnvelope),
        (status = 409, description = "EMAIL_TAKEN", body = crate::openapi::ErrorEnvelope),
        (status = 412, description = "If-Match does not match the current ETag", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn replace(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<ApiJson<UserUpdateRequest>, ApiError>,
) -> Result<Response, ApiError> {
    update(&app, &caller, &context, &id, &headers, body?.0, true).await
}

#[utoipa::path(
    patch,
    path = "/api/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    request_body = crate::openapi::UserUpdateBody,
    params(
        ("id" = String, Path, description = "User id"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version this change is based on"),
    ),
    responses(
        (status = 200, description = "The updated user, with its new ETag", body = crate::openapi::UserAnswer),
        (status = 400, description = "Validation failed or nothing to change", body = crate::openapi::ErrorEnvelope),
        (status = 403, description = "Not self or admin, or a role change by a non-admin", body = crate::openapi::ErrorEnvelope),
        (status = 409, description = "EMAIL_TAKEN", body = crate::openapi::ErrorEnvelope),
        (status = 412, description = "If-Match does not match the current ETag", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn modify(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<ApiJson<UserUpdateRequest>, ApiError>,
) -> Result<Response, ApiError> {
    update(&app, &caller, &context, &id, &headers, body?.0, false).await
}

fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse()
        .map_err(|_| invalid("id", "must be a user id (UUID)"))
}

/// The column changes of `patch` against the stored user, with the names of the
/// fields that really change.
fn changes(
    patch: &ProfilePatch,
    role: Option<Role>,
    user: &UserRecord,
) -> (UserChanges, Vec<&'static str>) {
    fn differs(new: Option<&str>, old: Option<&str>) -> Option<String> {
        new.filter(|n| Some(*n) != old).map(str::to_owned)
    }
    let mut c = UserChanges {
        email: differs(patch.email.as_ref().map(Email::as_str), Some(&user.email)),
        first_name: differs(patch.first_name.as_deref(), user.first_name.as_deref()),
        last_name: differs(patch.last_name.as_deref(), user.last_name.as_deref()),
        gender: differs(patch.gender.map(|g| g.as_str()), user.gender.as_deref()),
        sex: differs(patch.sex.map(|s| s.as_str()), user.sex.as_deref()),
        occupation: differs(patch.occupation.as_deref(), user.occupation.as_deref()),
        ..Default::default()
    };
    c.role = role.filter(|r| *r != user.role);
    let mut fields = Vec::new();
    for (name, changed) in [
        ("email", c.email.is_some()),
        ("firstName", c.first_name.is_some()),
        ("lastName", c.last_name.is_some()),
        ("gender", c.gender.is_some()),
        ("sex", c.sex.is_some()),
        ("occupation", c.occupation.is_some()),
        ("role", c.role.is_some()),
    ] {
        if changed {
            fields.push(name);
        }
    }
    (c, fields)
}

async fn update(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    raw_id: &str,
    headers: &HeaderMap,
    request: UserUpdateRequest,
    full: bool,
) -> Result<Response, ApiError> {
    let id = user_id(raw_id)?;
    if !caller.is_self_or_admin(id) {
        return Err(ApiError::Forbidden);
    }
    let role = match request.role.as_deref() {
        None => None,
        Some(_) if !caller.is_admin() => return Err(ApiError::Forbidden),
        Some(r) => Some(
            Role::parse(r)
                .ok_or_else(|| invalid("role", "must be one of user, moderator, admin"))?,
        ),
    };
    let mut errors = Vec::new();
    let patch = ProfilePatch::parse(
        ProfileInput {
            email: request.email.as_deref(),
            first_name: request.first_name.as_deref(),
            last_name: request.last_name.as_deref(),
            gender: request.gender.as_deref(),
            sex: request.sex.as_deref(),
            occupation: request.occupation.as_deref(),
        },
        full,
    )
    .unwrap_or_else(|e| {
        errors.extend(e);
        ProfilePatch::default()
    });
    let changing_own_password = request.password.is_some() && caller.id == id;
    if let Some(p) = &request.password {
        errors.extend(validate_password("password", p).err());
        if changing_own_password && request.current_password.is_none() {
            errors.push(FieldError::new(
                "currentPassword",
                "is required to change your password",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if patch == ProfilePatch::default() && role.is_none() && request.password.is_none() {
        return Err(invalid("body", "names nothing to change"));
    }
    let expected = if_match(headers);

    let mut client = app.db().await?;
    let current = users::find_by_id(&**client, id)
        .await
        .map_err(unavailable)?
        .filter(|u| !u.is_deleted())
        .ok_or(ApiError::NotFound("User"))?;
    if !precondition_holds(&expected, &current) {
        return Err(ApiError::PreconditionFailed);
    }
    let new_hash = match request.password {
        None => None,
        Some(password) => {
            let stored = current.password_hash.clone();
            let current_password = request.current_password;
            let (verified, hash) = app
                .accounts
                .hashing
                .run(move |h| {
                    let verified = !changing_own_password
                        || current_password.is_some_and(|c| h.verify(&c, &stored));
                    let hash = verified.then(|| h.hash(&password));
                    (verified, hash)
                })
                .await?;
            if !verified {
                return Err(invalid("currentPassword", "is incorrect"));
            }
            Some(
                hash.transpose()
                    .map_err(|e| ApiError::Internal(e.into()))?
                    .unwrap_or_default(),
            )
        }
    };

    let tx = client.transaction().await.map_err(unavailable)?;
    let locked = users::lock_by_id(&*tx, id)
        .await
        .map_err(unavailable)?
        .filter(|u| !u.is_deleted())
        .ok_or(ApiError::NotFound("User"))?;
    // Changed since it was read above (the password check ran in between).
    if locked.version != current.version {
        return Err(ApiError::PreconditionFailed);
    }
    let (mut column_changes, mut fields) = changes(&patch, role, &locked);
    if new_hash.is_some() {
        fields.push("password");
        column_changes.password_hash = new_hash;
    }
    if fields.is_empty() {
        return Ok(user_answer(&locked));
    }
    let updated = match users::update(&*tx, id, &column_changes).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(ApiError::NotFound("User")),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            return Err(ApiError::EmailTaken)
        }
        Err(e) => return Err(unavailable(e)),
    };
    let mut details = json!({ "fields": fields });
    if let Some(new_role) = column_changes.role {
        details["role"] = json!({ "from": locked.role, "to": new_role });
    }
    users::audit(&*tx, id, "user.updated", &actor(context, caller), details)
        .await
        .map_err(unavailable)?;
    // A new password or role ends the user's other sessions (the caller's own session
    // survives a change of its own password).
    let revoked = if column_changes.password_hash.is_some() || column_changes.role.is_some() {
        let keep =
            (changing_own_password && column_changes.role.is_none()).then_some(caller.session_id);
        sessions::revoke_user(&*tx, id, keep)
            .await
            .map_err(unavailable)?
    } else {
        Vec::new()
    };
    tx.commit().await.map_err(unavailable)?;
    after_commit(
        app,
        &revoked,
        column_changes.email.is_some().then_some(&locked.email),
    )
    .await;
    tracing::info!(event = "user_updated", user_id = %id, actor = %caller.id, fields = ?fields);
    Ok(user_answer(&updated))
}

/// Work after a committed change: refuse the access tokens of revoked sessions and
/// forget the cached registration status of an email the account no longer uses. The
/// change is durable already; a failure here is logged (refresh tokens are revoked in
/// PostgreSQL either way; access tokens then live out their 15 minutes).
async fn after_commit(app: &AppState, revoked: &[Uuid], old_email: Option<&String>) {
    if let Err(e) = revoke_access(app, revoked).await {
        tracing::error!(event = "access_tokens_not_revoked", sessions = revoked.len(), error = %e);
    }
    if let Some(email) = old_email.and_then(|e| Email::parse(e).ok()) {
        if let Err(e) = app.store.forget_status(&email).await {
            tracing::warn!(event = "status_not_forgotten", error = %e);
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    erase: Option<bool>,
}

#[utoipa::path(
    delete,
    path = "/api/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "User id"),
        ("erase" = Option<bool>, Query, description = "Admin only: GDPR erasure (personal data anonymised, audit kept without it)"),
    ),
    responses(
        (status = 200, description = "Deleted (soft) or erased; the user's sessions are revoked", body = crate::openapi::MessageAnswer),
        (status = 401, description = "No or invalid access token", body = crate::openapi::ErrorEnvelope),
        (status = 403, description = "Not self or admin; erase without admin", body = crate::openapi::ErrorEnvelope),
        (status = 404, description = "No such user (or already deleted / erased)", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(raw_id): Path<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = user_id(&raw_id)?;
    let erase = params.erase.unwrap_or(false);
    if !caller.is_self_or_admin(id) || (erase && !caller.is_admin()) {
        return Err(ApiError::Forbidden);
    }
    let mut client = app.db().await?;
    let tx = client.transaction().await.map_err(unavailable)?;
    let user = users::lock_by_id(&*tx, id)
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::NotFound("User"))?;
    let (revoked, message) = if erase {
        if !users::erase(&*tx, id).await.map_err(unavailable)? {
            return Err(ApiError::NotFound("User"));
        }
        let revoked = sessions::delete_user(&*tx, id).await.map_err(unavailable)?;
        // The erasure row names the acting admin only: no address, no user agent.
        let audit = common::users::AuditContext {
            actor_id: Some(caller.id),
            ..Default::default()
        };
        users::audit(&*tx, id, "user.erased", &audit, json!({}))
            .await
            .map_err(unavailable)?;
        (revoked, "User erased")
    } else {
        if !users::soft_delete(&*tx, id).await.map_err(unavailable)? {
            return Err(ApiError::NotFound("User"));
        }
        let revoked = sessions::revoke_user(&*tx, id, None)
            .await
            .map_err(unavailable)?;
        users::audit(
            &*tx,
            id,
            "user.deleted",
            &actor(&context, &caller),
            json!({}),
        )
        .await
        .map_err(unavailable)?;
        (revoked, "User deleted")
    };
    tx.commit().await.map_err(unavailable)?;
    after_commit(&app, &revoked, Some(&user.email)).await;
    tracing::info!(event = "user_deleted", user_id = %id, actor = %caller.id, erase);
    Ok(Json(json!({ "success": true, "message": message })))
}

/// Rows an export reads at most per table; far above any real account.
const EXPORT_LIMIT: i64 = 100_000;

#[utoipa::path(
    get,
    path = "/api/users/{id}/export",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Everything stored about the user: profile, audit entries, data items", content_type = "application/json"),
        (status = 403, description = "Not self or admin", body = crate::openapi::ErrorEnvelope),
        (status = 404, description = "No such user", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn export(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = user_id(&raw_id)?;
    if !caller.is_self_or_admin(id) {
        return Err(ApiError::Forbidden);
    }
    let client = app.db().await?;
    let user = users::find_by_id(&**client, id)
        .await
        .map_err(unavailable)?
        .filter(|u| !u.is_deleted() || caller.is_admin())
        .ok_or(ApiError::NotFound("User"))?;
    let audit = users::audit_trail(&**client, id, EXPORT_LIMIT, 0, None)
        .await
        .map_err(unavailable)?;
    let data = data_store::list(&**client, id, None, EXPORT_LIMIT)
        .await
        .map_err(unavailable)?;
    let mut response = Json(json!({
        "success": true,
        "data": {
            "exportedAt": chrono::Utc::now(),
            "user": user,
            "audit": audit,
            "data": data,
        }
    }))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"user-{id}.json\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    limit: Option<i64>,
    offset: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/users/{id}/audit",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "User id"),
        ("limit" = Option<i64>, Query, description = "1-100, default 20"),
        ("offset" = Option<i64>, Query, description = "Rows to skip"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "The user's audit entries, newest first", content_type = "application/json"),
        (status = 403, description = "Not self or admin", body = crate::openapi::ErrorEnvelope),
        (status = 404, description = "No such user", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn audit(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = user_id(&raw_id)?;
    if !caller.is_self_or_admin(id) {
        return Err(ApiError::Forbidden);
    }
    let limit = page_limit(params.limit)?;
    let offset = page_offset(params.offset)?;
    let before = params
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| invalid("cursor", "is not a cursor this api issued"))
        })
        .transpose()?;
    let client = app.db().await?;
    // Erased and deleted users keep their trail; an unknown id has none.
    users::find_by_id(&**client, id)
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::NotFound("User"))?;
    let mut rows = users::audit_trail(&**client, id, limit + 1, offset, before)
        .await
        .map_err(unavailable)?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = more
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(json!({
        "success": true,
        "count": rows.len(),
        "data": rows,
        "pagination": { "limit": limit, "offset": offset, "nextCursor": next_cursor },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let at = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        let raw = URL_SAFE_NO_PAD.encode(format!("{}|{}", at.timestamp_micros(), id));
        assert_eq!(decode_cursor(&raw), Some(ListCursor { created_at: at, id }));
        assert_eq!(decode_cursor("not-a-cursor"), None);
    }

    #[test]
    fn if_match_accepts_lists_weak_tags_and_star() {
        let mut h = HeaderMap::new();
        assert_eq!(if_match(&h), None);
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"3\", \"4\""));
        assert_eq!(
            if_match(&h),
            Some(vec!["\"3\"".to_owned(), "\"4\"".to_owned()])
        );
    }

    #[test]
    fn page_limits_are_bounded() {
        assert_eq!(page_limit(None).unwrap(), 20);
        assert!(page_limit(Some(101)).is_err());
        assert!(page_limit(Some(0)).is_err());
        assert!(page_offset(Some(-1)).is_err());
    }
}
