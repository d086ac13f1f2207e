//! Passwordless email: ask for a sign-in mail (link and code), sign in with either, and
//! sign up without a password.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;

use crate::bodies::registration::{RegistrationAccepted, RegistrationRequest};
use crate::bodies::security::{EmailRequest, LoginAnswer, SignInMailRequest};
use crate::bodies::{ErrorEnvelope, MessageAnswer};
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::respond;
use crate::service::passwordless::{self, MailProof};
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/api/v1/auth/passwordless",
    tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "If the address belongs to an account, a mail with a sign-in link and a 6-digit code (each single use, 10 minutes) is on its way; the same answer, in the same time, otherwise", body = MessageAnswer),
        (status = 400, description = "VALIDATION_ERROR: email missing or malformed", body = ErrorEnvelope),
        (status = 429, description = "RATE_LIMITED: too many requests from this client; see Retry-After (an address's own limit slows its mails down instead)", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down; retry", body = ErrorEnvelope),
    )
)]
pub async fn request_mail(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<EmailRequest>, ApiError>,
) -> Result<(StatusCode, Json<MessageAnswer>), ApiError> {
    let ApiJson(request) = request?;
    passwordless::request_sign_in_mail(&app, &context, request.email.as_deref()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageAnswer::new(
            "If this address belongs to an account, a sign-in mail is on its way",
        )),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passwordless/verify",
    tag = "auth",
    request_body = SignInMailRequest,
    responses(
        (status = 200, description = "Tokens; or, for an account with a second factor, `mfaRequired` and a challenge. The address counts as verified from now on", body = LoginAnswer),
        (status = 400, description = "VALIDATION_ERROR (neither a token nor an email and a code, or both); INVALID_OR_EXPIRED_TOKEN: the link is unknown, used or expired", body = ErrorEnvelope),
        (status = 401, description = "INVALID_CODE: the code is wrong, used or expired", body = ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED: too many wrong codes (or passwords) for this account; see Retry-After", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down; retry", body = ErrorEnvelope),
    )
)]
pub async fn verify(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<SignInMailRequest>, ApiError>,
) -> Result<Json<LoginAnswer>, ApiError> {
    let ApiJson(r) = request?;
    let proof = match (&r.token, &r.email, &r.code) {
        (Some(token), None, None) => MailProof::Link(Some(token)),
        (None, email, code) if email.is_some() || code.is_some() => MailProof::Code {
            email: email.as_deref(),
            code: code.as_deref(),
        },
        _ => {
            return Err(ApiError::invalid(vec![
                common::domain::registration::FieldError::new(
                    "token",
                    "give the link's token, or the email and the code",
                ),
            ]))
        }
    };
    let result = passwordless::sign_in(&app, &context, proof)
        .await
        .map_err(ApiError::from);
    let outcome = match &result {
        Ok(crate::service::accounts::LoginOutcome::Tokens(_)) => "email",
        Ok(_) => "mfa_required",
        Err(e) => e.code(),
    };
    app.metrics.logins.with_label_values(&[outcome]).inc();
    Ok(Json(result?.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passwordless/register",
    tag = "registration",
    request_body = RegistrationRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key and body returns the first answer")),
    responses(
        (status = 202, description = "Accepted without a password; poll the Location, then sign in with `POST /api/v1/auth/passwordless`", body = RegistrationAccepted),
        (status = 400, description = "Validation failed, or a password was given", body = ErrorEnvelope),
        (status = 409, description = "REGISTRATION_PENDING: a registration of this email is pending", body = ErrorEnvelope),
        (status = 429, description = "Rate limited", body = ErrorEnvelope),
        (status = 503, description = "Overloaded or a dependency is down; nothing accepted", body = ErrorEnvelope),
    )
)]
pub async fn sign_up(
    State(app): State<AppState>,
    headers: HeaderMap,
    request: Result<ApiJson<RegistrationRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(r) = request?;
    let password_given = r.password.is_some();
    let profile = r.profile(app.accounts.required_profile_fields);
    let key = crate::intake::idempotency_key(&headers)?;
    let submitted = passwordless::sign_up(
        &app,
        profile,
        password_given,
        key,
        respond::request_id(&headers),
    )
    .await
    .map_err(ApiError::from);
    crate::intake::answer(&app, submitted)
}
