//! `POST /api/users` (also `/api/auth/register`): submit a registration.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use common::domain::registration::{FieldError, Registration};

use crate::bodies::registration::{RegistrationAccepted, RegistrationRequest};
use crate::bodies::ErrorEnvelope;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::respond;
use crate::service::registration::{submit_registration, Submission};
use crate::state::AppState;

const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Marks an answer replayed from the idempotency store.
const REPLAYED_HEADER: &str = "idempotent-replayed";

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid(vec![FieldError::new(
            "Idempotency-Key",
            "must be 1-255 visible ASCII characters",
        )]));
    }
    Ok(Some(key.to_owned()))
}

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
        r.parse(&app.accounts.password_policy)
            .map_err(ApiError::invalid)
    });
    submit(&app, &headers, registration).await
}

/// Submits a parsed registration (or answers its parse error) and counts the outcome;
/// every registration route ends here.
pub(crate) async fn submit(
    app: &AppState,
    headers: &HeaderMap,
    registration: Result<Registration, ApiError>,
) -> Result<Response, ApiError> {
    let result = accept(app, headers, registration).await;
    let outcome = match &result {
        Ok(r) if r.headers().contains_key(REPLAYED_HEADER) => "replayed",
        Ok(_) => "accepted",
        Err(e) => e.code(),
    };
    app.metrics
        .registrations
        .with_label_values(&[outcome])
        .inc();
    result
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

async fn accept(
    app: &AppState,
    headers: &HeaderMap,
    registration: Result<Registration, ApiError>,
) -> Result<Response, ApiError> {
    let registration = registration?;
    let submission = Submission {
        registration,
        idempotency_key: idempotency_key(headers)?,
        request_id: respond::request_id(headers),
    };
    // Boxed: the handler's future stays small for the layers that move it.
    let submitted = Box::pin(submit_registration(app, submission)).await?;
    let mut response = respond::with_status_and_header(
        StatusCode::ACCEPTED,
        &submitted.answer,
        header::LOCATION,
        &submitted.location,
    );
    if submitted.replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idempotency_key_with_spaces_inside_is_rejected() {
        let mut h = HeaderMap::new();
        h.insert(IDEMPOTENCY_HEADER, HeaderValue::from_static("a b"));
        assert!(idempotency_key(&h).is_err());
        h.insert(IDEMPOTENCY_HEADER, HeaderValue::from_static("retry-1"));
        assert_eq!(idempotency_key(&h).unwrap().as_deref(), Some("retry-1"));
    }
}
