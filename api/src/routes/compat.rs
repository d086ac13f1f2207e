//! Compatibility routes for clients written against other registration APIs, each a
//! thin adapter onto the canonical use case: `POST /api/v1/register` submits a
//! registration through the same pipeline as `POST /api/v1/users`, `POST /api/v1/token`
//! logs in (or refreshes) as `/api/v1/auth/login` and `/auth/refresh` do.

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::Json;
use common::domain::registration::FieldError;
use secrecy::ExposeSecret;

use crate::bodies::compat::{
    rename_for_compat, CompatRegistrationRequest, Grant, TokenGrantAnswer, TokenRequest,
};
use crate::bodies::registration::RegistrationAccepted;
use crate::bodies::ErrorEnvelope;
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::service::accounts::{self, Tokens};
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/api/v1/register",
    tag = "compatibility",
    request_body = CompatRegistrationRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key and body returns the first answer")),
    responses(
        (status = 202, description = "Accepted into the same pipeline as POST /api/v1/users; poll the Location", body = RegistrationAccepted),
        (status = 409, description = "REGISTRATION_PENDING: a registration of this email is pending", body = ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = ErrorEnvelope),
    )
)]
pub async fn register(
    State(app): State<AppState>,
    headers: HeaderMap,
    request: Result<ApiJson<CompatRegistrationRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let registration = request.and_then(|ApiJson(body)| {
        let (canonical, mut errors) = body.into_canonical(chrono::Utc::now().date_naive());
        match canonical.parse(
            &app.accounts.password_policy,
            app.accounts.required_profile_fields,
        ) {
            Ok(registration) if errors.is_empty() => Ok(registration),
            Ok(_) => Err(ApiError::invalid(errors)),
            Err(rule_errors) => {
                for e in rename_for_compat(rule_errors) {
                    let repeated =
                        e.field == "fullName" && errors.iter().any(|x| x.field == "fullName");
                    if !repeated {
                        errors.push(e);
                    }
                }
                Err(ApiError::invalid(errors))
            }
        }
    });
    crate::intake::submit(&app, &headers, registration).await
}

#[utoipa::path(
    post,
    path = "/api/v1/token",
    tag = "compatibility",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "Tokens, in OAuth2's names", body = TokenGrantAnswer),
        (status = 401, description = "INVALID_CREDENTIALS (password grant) or INVALID_TOKEN (refresh grant)", body = ErrorEnvelope),
        (status = 403, description = "MFA_REQUIRED: the account has a second factor; log in with POST /api/v1/auth/login; EMAIL_NOT_VERIFIED", body = ErrorEnvelope),
        (status = 409, description = "REGISTRATION_PENDING: the account is not persisted yet", body = ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED or rate limited; Retry-After says when", body = ErrorEnvelope),
    )
)]
pub async fn token(
    State(app): State<AppState>,
    context: RequestContext,
    request: Request,
) -> Result<Json<TokenGrantAnswer>, ApiError> {
    let grant = token_request(request, &app).await?.into_grant();
    let grant = grant.map_err(|e| ApiError::invalid(vec![e]))?;
    let result = match grant {
        Grant::Password(login) => {
            // The password grant has no second step: an account with a second factor
            // logs in with `POST /api/v1/auth/login`.
            let result = accounts::login(&app, &context, login)
                .await
                .and_then(|outcome| match outcome {
                    accounts::LoginOutcome::Tokens(tokens) => Ok(tokens),
                    accounts::LoginOutcome::MfaRequired { .. } => {
                        Err(crate::service::ServiceError::MfaRequired)
                    }
                })
                .map_err(ApiError::from);
            let outcome = result.as_ref().map_or_else(|e| e.code(), |_| "success");
            app.metrics.logins.with_label_values(&[outcome]).inc();
            result
        }
        Grant::Refresh(refresh) => accounts::refresh(&app, &context, refresh)
            .await
            .map_err(ApiError::from),
    };
    Ok(Json(answer(result?)))
}

/// The body as a form when it says so, else as JSON (whose extractor answers 415 for
/// anything that is neither).
async fn token_request(request: Request, app: &AppState) -> Result<TokenRequest, ApiError> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        axum::Form::<TokenRequest>::from_request(request, app)
            .await
            .map(|axum::Form(body)| body)
            .map_err(|rejection| {
                let status = rejection.status();
                if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    let message = std::error::Error::source(&rejection)
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| rejection.body_text());
                    ApiError::invalid(vec![FieldError::new("body", message)])
                }
            })
    } else {
        ApiJson::<TokenRequest>::from_request(request, app)
            .await
            .map(|ApiJson(body)| body)
    }
}

fn answer(tokens: Tokens) -> TokenGrantAnswer {
    TokenGrantAnswer {
        access_token: tokens.access_token,
        token_type: "Bearer",
        expires_in: tokens.access_ttl.as_secs(),
        refresh_token: tokens.refresh_token.expose_secret().to_owned(),
    }
}
