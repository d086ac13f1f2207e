//! User management routes: listing (staff), reading (a user id, or an email for the
//! registration status), `PUT`/`PATCH` with `ETag`/`If-Match`, delete and erase, export
//! and the audit trail.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

use crate::bodies::registration::{
    RegistrationStatusAnswer, RegistrationStatusData, UserOrRegistrationStatus,
};
use crate::bodies::users::{
    AuditListAnswer, DeleteRequest, ExportAnswer, UserAnswer, UserExport, UserListAnswer,
    UserReplaceRequest, UserUpdateRequest, UserView,
};
use crate::bodies::{ErrorEnvelope, MessageAnswer, Pagination};
use crate::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::respond;
use crate::service::registration::{registration_status, RegistrationState};
use crate::service::users::{self, ListFilter, Removal, UpdateMode};
use crate::service::Page;
use crate::state::AppState;

fn pagination<T>(page: &Page<T>) -> Pagination {
    Pagination {
        limit: page.limit,
        offset: page.offset,
        next_cursor: page.next_cursor.clone(),
    }
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
    status: Option<String>,
    verified: Option<bool>,
    mfa: Option<bool>,
}

#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1-100, default 20"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Rows to skip (default 0)"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page: keyset pagination"),
        ("role" = Option<String>, Query, description = "user | moderator | admin"),
        ("q" = Option<String>, Query, description = "Case-insensitive prefix of email, first or last name"),
        ("includeDeleted" = Option<bool>, Query, description = "Admin only"),
        ("status" = Option<String>, Query, description = "active (default) | deleted | all; deleted and all are admin only"),
        ("verified" = Option<bool>, Query, description = "Only users whose address is (true) or is not (false) verified"),
        ("mfa" = Option<bool>, Query, description = "Only users with (true) or without (false) a second factor"),
    ),
    responses(
        (status = 200, description = "A page of users, newest first", body = UserListAnswer),
        (status = 400, description = "Bad parameter", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Not a moderator or admin (or includeDeleted without admin)", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<UserListAnswer>, ApiError> {
    let filter = ListFilter {
        limit: params.limit,
        offset: params.offset,
        cursor: params.cursor,
        role: params.role,
        q: params.q,
        include_deleted: params.include_deleted,
        status: params.status,
        verified: params.verified,
        mfa: params.mfa,
    };
    let page = users::list_users(&app, &caller, filter).await?;
    Ok(Json(UserListAnswer {
        success: true,
        count: page.rows.len(),
        pagination: pagination(&page),
        data: page.rows.iter().map(UserView::from).collect(),
    }))
}

fn status_answer(state: RegistrationState) -> RegistrationStatusAnswer {
    RegistrationStatusAnswer {
        success: true,
        data: RegistrationStatusData {
            email: state.email.as_str().to_owned(),
            status: state.status,
            registration_id: state.registration_id,
            reason: state.reason.map(|r| r.as_str()),
            user: state.profile.as_ref().map(UserView::from),
        },
    }
}

/// Other parameters are ignored here, as they always were on this route.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusParams {
    registration_id: Option<Uuid>,
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    tag = "users",
    params(
        ("id" = String, Path, description = "A user id (token required: self, moderator, admin), or an email: the registration status, with the profile for the owner or an admin"),
        ("registrationId" = Option<String>, Query, description = "By email without the owner's or an admin's token: the registrationId of the 202 (its Location carries it). Without it the answer is 404, as for an unknown email"),
    ),
    responses(
        (status = 200, description = "The user (by id, with ETag: `UserAnswer`) or the registration status (by email: `RegistrationStatusAnswer`)", body = UserOrRegistrationStatus),
        (status = 400, description = "Neither a user id nor an email", body = ErrorEnvelope),
        (status = 401, description = "A user id without a token, or an invalid token", body = ErrorEnvelope),
        (status = 403, description = "Another user's id", body = ErrorEnvelope),
        (status = 404, description = "Nothing known, or (by email, anonymous) no matching registrationId", body = ErrorEnvelope),
        (status = 503, description = "Dependencies unavailable", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    caller: Option<Caller>,
    context: RequestContext,
    Path(raw): Path<String>,
    ApiQuery(params): ApiQuery<StatusParams>,
) -> Result<Response, ApiError> {
    // Both branches are boxed: the handler's own future stays small, so the layers that
    // move it around (every request, one of the hottest paths) copy a few bytes, not the
    // state of both use cases.
    let Ok(id) = raw.parse::<Uuid>() else {
        let state = Box::pin(registration_status(
            &app,
            &raw,
            params.registration_id,
            caller.as_ref(),
        ))
        .await?;
        return Ok(Json(status_answer(state)).into_response());
    };
    let caller = caller.ok_or(ApiError::Unauthenticated)?;
    let user = Box::pin(users::get_user(&app, &caller, &context, id)).await?;
    Ok(respond::user(&user))
}

/// `PUT` replaces every profile field; conditional on `If-Match` when it is sent.
#[utoipa::path(
    put,
    path = "/api/v1/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    request_body(content = UserReplaceRequest, description = "Every profile field"),
    params(
        ("id" = String, Path, description = "User id"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version this change is based on"),
    ),
    responses(
        (status = 200, description = "The updated user, with its new ETag", body = UserAnswer),
        (status = 400, description = "Validation failed (every profile field is required)", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Not self or admin, or a role change by a non-admin", body = ErrorEnvelope),
        (status = 404, description = "No such live user", body = ErrorEnvelope),
        (status = 409, description = "EMAIL_TAKEN, or LAST_ADMIN: the only admin cannot be demoted", body = ErrorEnvelope),
        (status = 412, description = "If-Match does not match the current ETag", body = ErrorEnvelope),
    )
)]
pub async fn replace(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Result<ApiJson<UserUpdateRequest>, ApiError>,
) -> Result<Response, ApiError> {
    change(
        app,
        caller,
        context,
        raw_id,
        headers,
        body,
        UpdateMode::Replace,
    )
    .await
}

/// `PATCH` changes the fields it names; conditional on `If-Match` when it is sent.
#[utoipa::path(
    patch,
    path = "/api/v1/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    request_body(content = UserUpdateRequest, description = "Any of the fields"),
    params(
        ("id" = String, Path, description = "User id"),
        ("If-Match" = Option<String>, Header, description = "The ETag of the version this change is based on"),
    ),
    responses(
        (status = 200, description = "The updated user, with its new ETag", body = UserAnswer),
        (status = 400, description = "Validation failed or nothing to change", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Not self or admin, or a role change by a non-admin", body = ErrorEnvelope),
        (status = 404, description = "No such live user", body = ErrorEnvelope),
        (status = 409, description = "EMAIL_TAKEN, or LAST_ADMIN: the only admin cannot be demoted", body = ErrorEnvelope),
        (status = 412, description = "If-Match does not match the current ETag", body = ErrorEnvelope),
    )
)]
pub async fn patch(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Result<ApiJson<UserUpdateRequest>, ApiError>,
) -> Result<Response, ApiError> {
    change(
        app,
        caller,
        context,
        raw_id,
        headers,
        body,
        UpdateMode::Patch,
    )
    .await
}

async fn change(
    app: AppState,
    caller: Caller,
    context: RequestContext,
    raw_id: String,
    headers: HeaderMap,
    body: Result<ApiJson<UserUpdateRequest>, ApiError>,
    mode: UpdateMode,
) -> Result<Response, ApiError> {
    let ApiJson(body) = body?;
    let id = users::parse_user_id(&raw_id)?;
    let expected = respond::expected_version(&headers);
    let user = users::update_user(&app, &caller, &context, id, expected, body, mode).await?;
    Ok(respond::user(&user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    erase: Option<bool>,
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "User id"),
        ("erase" = Option<bool>, Query, description = "Admin only: GDPR erasure (personal data anonymised, audit kept without it)"),
    ),
    request_body(content = Option<DeleteRequest>, description = "Deleting one's own account: `{\"currentPassword\"}`"),
    responses(
        (status = 200, description = "Deleted (soft) or erased; the user's sessions are revoked", body = MessageAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Not self or admin; erase without admin", body = ErrorEnvelope),
        (status = 400, description = "currentPassword missing or wrong (deleting one's own account)", body = ErrorEnvelope),
        (status = 404, description = "No such user (or already deleted / erased)", body = ErrorEnvelope),
        (status = 409, description = "LAST_ADMIN: the only admin cannot be deleted", body = ErrorEnvelope),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(raw_id): Path<String>,
    ApiQuery(params): ApiQuery<DeleteParams>,
    body: axum::body::Bytes,
) -> Result<Json<MessageAnswer>, ApiError> {
    // The body is optional (only self-deletion needs one), so it is read by hand.
    // No body and a JSON `null` both mean "no confirmation".
    let confirmation: DeleteRequest = if body.is_empty() || body.trim_ascii() == b"null" {
        DeleteRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::MalformedJson(e.to_string()))?
    };
    let id = users::parse_user_id(&raw_id)?;
    let (removal, message) = if params.erase.unwrap_or(false) {
        (Removal::Erase, "User erased")
    } else {
        (Removal::Delete, "User deleted")
    };
    users::remove_user(
        &app,
        &caller,
        &context,
        id,
        removal,
        confirmation.current_password,
    )
    .await?;
    Ok(Json(MessageAnswer::new(message)))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/export",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Everything stored about the user: profile, audit entries, data items", body = ExportAnswer),
        (status = 403, description = "Not self or admin", body = ErrorEnvelope),
        (status = 404, description = "No such user", body = ErrorEnvelope),
    )
)]
pub async fn export(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let id = users::parse_user_id(&raw_id)?;
    let export = users::export_user(&app, &caller, &context, id).await?;
    let body = ExportAnswer {
        success: true,
        data: UserExport {
            exported_at: Utc::now(),
            user: UserView::from(&export.user),
            audit: export.audit.into_iter().map(Into::into).collect(),
            audit_next_cursor: export.audit_next_cursor,
            data: export.data.into_iter().map(Into::into).collect(),
        },
    };
    Ok(respond::with_status_and_header(
        StatusCode::OK,
        body,
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"user-{id}.json\""),
    ))
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
    path = "/api/v1/users/{id}/audit",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "User id"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1-100, default 20"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Rows to skip"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "The user's audit entries, newest first", body = AuditListAnswer),
        (status = 403, description = "Not self or admin", body = ErrorEnvelope),
        (status = 404, description = "No such user", body = ErrorEnvelope),
    )
)]
pub async fn audit(
    State(app): State<AppState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditListAnswer>, ApiError> {
    let id = users::parse_user_id(&raw_id)?;
    let page = users::audit_trail(
        &app,
        &caller,
        id,
        params.limit,
        params.offset,
        params.cursor.as_deref(),
    )
    .await?;
    let pagination = pagination(&page);
    Ok(Json(AuditListAnswer {
        success: true,
        count: page.rows.len(),
        data: page.rows.into_iter().map(Into::into).collect(),
        pagination,
    }))
}
