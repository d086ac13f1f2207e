//! `POST /api/users` (also `/api/auth/register`): submit a registration.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::bodies::registration::{RegistrationAccepted, RegistrationRequest};
use crate::bodies::ErrorEnvelope;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::intake;
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "registration",
    request_body = RegistrationRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key and body returns the first answer")),
    responses(
        (status = 202, description = "Accepted; poll the Location", body = RegistrationAccepted),
        (status = 400, description = "Validation failed or malformed JSON", body = ErrorEnvelope),
        (status = 409, description = "REGISTRATION_PENDING: a registration of this email is pending", body = ErrorEnvelope),
        (status = 413, description = "Body over 16 KiB", body = ErrorEnvelope),
        (status = 415, description = "Not JSON", body = ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorEnvelope),
        (status = 429, description = "Rate limited", body = ErrorEnvelope),
        (status = 503, description = "Overloaded or a dependency is down; nothing accepted", body = ErrorEnvelope),
    )
)]
pub async fn register(
    State(app): State<AppState>,
    headers: HeaderMap,
    request: Result<ApiJson<RegistrationRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let registration = request.and_then(|ApiJson(r)| {
        r.parse(
            &app.accounts.password_policy,
            app.accounts.required_profile_fields,
        )
        .map_err(ApiError::invalid)
    });
    intake::submit(&app, &headers, registration).await
}

/// `POST /api/auth/register`: the same contract under the path auth-centred clients use.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "registration",
    request_body = RegistrationRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key and body returns the first answer")),
    responses(
        (status = 202, description = "Accepted; same contract as POST /api/users", body = RegistrationAccepted),
        (status = 400, description = "Validation failed or malformed JSON", body = ErrorEnvelope),
        (status = 409, description = "REGISTRATION_PENDING: a registration of this email is pending", body = ErrorEnvelope),
        (status = 413, description = "Body over 16 KiB", body = ErrorEnvelope),
        (status = 415, description = "Not JSON", body = ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorEnvelope),
        (status = 429, description = "Rate limited", body = ErrorEnvelope),
        (status = 503, description = "Overloaded or a dependency is down; nothing accepted", body = ErrorEnvelope),
    )
)]
pub async fn register_alias(
    state: State<AppState>,
    headers: HeaderMap,
    request: Result<ApiJson<RegistrationRequest>, ApiError>,
) -> Result<Response, ApiError> {
    register(state, headers, request).await
}
