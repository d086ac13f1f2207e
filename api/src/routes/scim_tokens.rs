//! SCIM tokens, for admins: issue one (shown once), list, revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::bodies::scim::{
    ScimTokenAnswer, ScimTokenEnvelope, ScimTokenListEnvelope, ScimTokenRequest,
};
use crate::bodies::ErrorEnvelope;
use crate::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::service::scim;
use crate::service::ServiceError;
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/api/v1/admin/scim/tokens",
    tag = "scim",
    security(("bearer" = [])),
    request_body = ScimTokenRequest,
    responses(
        (status = 201, description = "Issued; its `token` is in this answer only", body = ScimTokenEnvelope),
        (status = 400, description = "A field breaks a rule", body = ErrorEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    ApiJson(request): ApiJson<ScimTokenRequest>,
) -> Result<Response, ApiError> {
    let (token, secret) = scim::create_token(
        &app,
        Some(&caller),
        &context,
        &request.name,
        request.expires_in_days,
    )
    .await?;
    let data = ScimTokenAnswer::new(token, Some(secret.expose_secret().to_owned()));
    Ok((
        StatusCode::CREATED,
        Json(ScimTokenEnvelope {
            success: true,
            data,
        }),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/scim/tokens",
    tag = "scim",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every token, newest first, revoked ones too (never the token itself)", body = ScimTokenListEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<ScimTokenListEnvelope>, ApiError> {
    let all = scim::list_tokens(&app, Some(&caller)).await?;
    Ok(Json(ScimTokenListEnvelope {
        success: true,
        data: all
            .into_iter()
            .map(|t| ScimTokenAnswer::new(t, None))
            .collect(),
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/scim/tokens/{id}",
    tag = "scim",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked: the next request with it gets 401"),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such live token", body = ErrorEnvelope),
    )
)]
pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ServiceError::NotFound("SCIM token"))?;
    scim::revoke_token(&app, Some(&caller), &context, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
