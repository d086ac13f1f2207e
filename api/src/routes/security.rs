//! Email verification, password reset, two-factor authentication and the caller's
//! sessions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use crate::bodies::accounts::TokenAnswer;
use crate::bodies::security::{
    EmailRequest, MfaCodeRequest, MfaDisableRequest, MfaEnrollAnswer, MfaEnrollRequest,
    MfaStatusAnswer, MfaVerifyRequest, PasswordResetConfirmRequest, RecoveryCodesAnswer,
    SessionListAnswer, SessionView, SessionsEndedAnswer, VerifyEmailAnswer, VerifyEmailRequest,
};
use crate::bodies::{ErrorEnvelope, MessageAnswer};
use crate::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::service::{accounts, email, mfa, users::parse_user_id};
use crate::state::AppState;

/// The one answer of the requests that may send a mail, whoever the address belongs to.
fn accepted(message: &str) -> (StatusCode, Json<MessageAnswer>) {
    (StatusCode::ACCEPTED, Json(MessageAnswer::new(message)))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/verify-email",
    tag = "auth",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "The address is verified; after an email change it is now the account's email", body = VerifyEmailAnswer),
        (status = 400, description = "VALIDATION_ERROR: token missing; INVALID_OR_EXPIRED_TOKEN: unknown, used or older than 24 hours", body = ErrorEnvelope),
        (status = 409, description = "EMAIL_TAKEN: another account took the new address meanwhile", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down; retry", body = ErrorEnvelope),
    )
)]
pub async fn verify_email(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<VerifyEmailRequest>, ApiError>,
) -> Result<Json<VerifyEmailAnswer>, ApiError> {
    let ApiJson(request) = request?;
    let user = email::verify_email(&app, &context, request.token.as_deref()).await?;
    Ok(Json(VerifyEmailAnswer {
        success: true,
        email: user.email,
        email_verified: true,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/verify-email/resend",
    tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "If the address belongs to an unverified account, a new link is on its way; the same answer otherwise", body = MessageAnswer),
        (status = 400, description = "VALIDATION_ERROR: email missing or malformed", body = ErrorEnvelope),
        (status = 429, description = "RATE_LIMITED: too many requests for this address or from this client (MAIL_REQUESTS_PER_EMAIL, MAIL_REQUESTS_PER_IP); see Retry-After", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down; retry", body = ErrorEnvelope),
    )
)]
pub async fn resend_verification(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<EmailRequest>, ApiError>,
) -> Result<(StatusCode, Json<MessageAnswer>), ApiError> {
    let ApiJson(request) = request?;
    email::resend_verification(&app, &context, request.email.as_deref()).await?;
    Ok(accepted(
        "If this address belongs to an unverified account, a verification link is on its way",
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset",
    tag = "auth",
    request_body = EmailRequest,
    responses(
        (status = 202, description = "If the address belongs to an account, a reset link (valid 30 minutes) is on its way; the same answer, in the same time, otherwise", body = MessageAnswer),
        (status = 400, description = "VALIDATION_ERROR: email missing or malformed", body = ErrorEnvelope),
        (status = 429, description = "RATE_LIMITED: too many requests for this address or from this client; see Retry-After", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down; retry", body = ErrorEnvelope),
    )
)]
pub async fn request_password_reset(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<EmailRequest>, ApiError>,
) -> Result<(StatusCode, Json<MessageAnswer>), ApiError> {
    let ApiJson(request) = request?;
    email::request_password_reset(&app, &context, request.email.as_deref()).await?;
    Ok(accepted(
        "If this address belongs to an account, a password-reset link is on its way",
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset/confirm",
    tag = "auth",
    request_body = PasswordResetConfirmRequest,
    responses(
        (status = 200, description = "The password is changed and every session of the account ended", body = MessageAnswer),
        (status = 400, description = "VALIDATION_ERROR: token or newPassword missing, or the password breaks the policy; INVALID_OR_EXPIRED_TOKEN: unknown, used or older than 30 minutes", body = ErrorEnvelope),
        (status = 503, description = "Password hashing saturated or a dependency down; see Retry-After", body = ErrorEnvelope),
    )
)]
pub async fn confirm_password_reset(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<PasswordResetConfirmRequest>, ApiError>,
) -> Result<Json<MessageAnswer>, ApiError> {
    let ApiJson(request) = request?;
    email::confirm_password_reset(
        &app,
        &context,
        request.token.as_deref(),
        request.new_password,
    )
    .await?;
    Ok(Json(MessageAnswer::new(
        "Password changed; log in with the new password",
    )))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/verify",
    tag = "auth",
    request_body = MfaVerifyRequest,
    responses(
        (status = 200, description = "Tokens: the login is complete", body = TokenAnswer),
        (status = 400, description = "VALIDATION_ERROR: challenge or code missing", body = ErrorEnvelope),
        (status = 401, description = "INVALID_MFA_CODE: wrong, stale or used code (counts toward the lockout); INVALID_TOKEN: unknown or expired challenge", body = ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED: too many wrong passwords or codes; see Retry-After", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down; retry", body = ErrorEnvelope),
    )
)]
pub async fn verify_mfa(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<MfaVerifyRequest>, ApiError>,
) -> Result<Json<TokenAnswer>, ApiError> {
    let ApiJson(request) = request?;
    let result = mfa::verify_login(
        &app,
        &context,
        request.challenge.as_deref(),
        request.code.as_deref(),
    )
    .await
    .map_err(ApiError::from);
    let outcome = match &result {
        Ok(_) => "success",
        Err(e) => e.code(),
    };
    app.metrics.logins.with_label_values(&[outcome]).inc();
    Ok(Json(result?.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/mfa",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Whether the caller has a second factor", body = MfaStatusAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
    )
)]
pub async fn mfa_status(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<MfaStatusAnswer>, ApiError> {
    let (enabled, recovery_codes_left) = mfa::status(&app, &caller).await?;
    Ok(Json(MfaStatusAnswer {
        success: true,
        enabled,
        recovery_codes_left,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/totp/enroll",
    tag = "auth",
    security(("bearer" = [])),
    request_body = MfaEnrollRequest,
    responses(
        (status = 200, description = "A new secret for an authenticator app; confirm it with a code", body = MfaEnrollAnswer),
        (status = 400, description = "VALIDATION_ERROR: password missing or incorrect", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED: too many wrong passwords; see Retry-After", body = ErrorEnvelope),
        (status = 409, description = "MFA_ALREADY_ENABLED", body = ErrorEnvelope),
        (status = 501, description = "MFA_NOT_CONFIGURED: the server has no MFA_ENCRYPTION_KEY", body = ErrorEnvelope),
    )
)]
pub async fn enroll_totp(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    request: Result<ApiJson<MfaEnrollRequest>, ApiError>,
) -> Result<Json<MfaEnrollAnswer>, ApiError> {
    let ApiJson(request) = request?;
    let enrolment = mfa::enroll(&app, &caller, &context, request.password).await?;
    Ok(Json(MfaEnrollAnswer {
        success: true,
        secret: enrolment.secret_base32,
        otpauth_uri: enrolment.otpauth_uri,
        qr_svg: enrolment.qr_svg,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/totp/confirm",
    tag = "auth",
    security(("bearer" = [])),
    request_body = MfaCodeRequest,
    responses(
        (status = 200, description = "Two-factor login is on; the ten recovery codes are shown this once", body = RecoveryCodesAnswer),
        (status = 400, description = "VALIDATION_ERROR: code missing", body = ErrorEnvelope),
        (status = 401, description = "INVALID_MFA_CODE, or no or invalid access token", body = ErrorEnvelope),
        (status = 409, description = "MFA_NOT_ENABLED: no enrolment started; MFA_ALREADY_ENABLED", body = ErrorEnvelope),
        (status = 501, description = "MFA_NOT_CONFIGURED", body = ErrorEnvelope),
    )
)]
pub async fn confirm_totp(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    request: Result<ApiJson<MfaCodeRequest>, ApiError>,
) -> Result<Json<RecoveryCodesAnswer>, ApiError> {
    let ApiJson(request) = request?;
    let recovery_codes = mfa::confirm(&app, &caller, &context, request.code.as_deref()).await?;
    Ok(Json(RecoveryCodesAnswer {
        success: true,
        recovery_codes,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/mfa/totp/disable",
    tag = "auth",
    security(("bearer" = [])),
    request_body = MfaDisableRequest,
    responses(
        (status = 200, description = "Two-factor login is off; the recovery codes are gone", body = MessageAnswer),
        (status = 400, description = "VALIDATION_ERROR: code or password missing, or the password is incorrect", body = ErrorEnvelope),
        (status = 401, description = "INVALID_MFA_CODE, or no or invalid access token", body = ErrorEnvelope),
        (status = 409, description = "MFA_NOT_ENABLED", body = ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED: too many wrong passwords; see Retry-After", body = ErrorEnvelope),
    )
)]
pub async fn disable_totp(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    request: Result<ApiJson<MfaDisableRequest>, ApiError>,
) -> Result<Json<MessageAnswer>, ApiError> {
    let ApiJson(request) = request?;
    mfa::disable(
        &app,
        &caller,
        &context,
        request.password,
        request.code.as_deref(),
    )
    .await?;
    Ok(Json(MessageAnswer::new(
        "Two-factor authentication disabled",
    )))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}/mfa",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses(
        (status = 200, description = "The user's second factor and recovery codes are removed (audited)", body = MessageAnswer),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
        (status = 404, description = "No such live user", body = ErrorEnvelope),
        (status = 409, description = "MFA_NOT_ENABLED", body = ErrorEnvelope),
    )
)]
pub async fn reset_user_mfa(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<MessageAnswer>, ApiError> {
    let id = parse_user_id(&id)?;
    mfa::admin_reset(&app, &caller, &context, id).await?;
    Ok(Json(MessageAnswer::new("Second factor removed")))
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's live sessions, newest first", body = SessionListAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
    )
)]
pub async fn list_sessions(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<SessionListAnswer>, ApiError> {
    Ok(Json(SessionListAnswer::new(
        accounts::list_sessions(&app, &caller)
            .await?
            .into_iter()
            .map(|(s, current)| SessionView::new(s, current)),
    )))
}

#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every session of the caller but the current one is ended (refresh and access tokens); `count` says how many", body = SessionsEndedAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
    )
)]
pub async fn end_other_sessions(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
) -> Result<Json<SessionsEndedAnswer>, ApiError> {
    let count = accounts::end_other_sessions(&app, &caller, &context).await?;
    Ok(Json(SessionsEndedAnswer {
        success: true,
        count,
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions/{id}",
    tag = "auth",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id (UUID)")),
    responses(
        (status = 200, description = "The session's refresh tokens and access tokens are revoked", body = MessageAnswer),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 404, description = "No such live session of the caller", body = ErrorEnvelope),
    )
)]
pub async fn end_session(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<MessageAnswer>, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| {
        ApiError::from(crate::service::ServiceError::invalid(
            "id",
            "must be a UUID",
        ))
    })?;
    accounts::end_session(&app, &caller, &context, id).await?;
    Ok(Json(MessageAnswer::new("Session ended")))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/sessions",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses(
        (status = 200, description = "The user's live sessions, newest first (`current` is always false)", body = SessionListAnswer),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
        (status = 404, description = "No such user", body = ErrorEnvelope),
    )
)]
pub async fn list_user_sessions(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SessionListAnswer>, ApiError> {
    let id = parse_user_id(&id)?;
    Ok(Json(SessionListAnswer::new(
        accounts::list_user_sessions(&app, &caller, id)
            .await?
            .into_iter()
            .map(|s| SessionView::new(s, false)),
    )))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}/sessions/{session}",
    tag = "users",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "User id (UUID)"),
        ("session" = String, Path, description = "Session id (UUID)"),
    ),
    responses(
        (status = 200, description = "The session's refresh tokens and access tokens are revoked; audited with the admin as actor", body = MessageAnswer),
        (status = 400, description = "An id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
        (status = 404, description = "No such user or live session", body = ErrorEnvelope),
    )
)]
pub async fn end_user_session(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, session)): Path<(String, String)>,
) -> Result<Json<MessageAnswer>, ApiError> {
    let id = parse_user_id(&id)?;
    let session = uuid::Uuid::parse_str(&session)
        .map_err(|_| crate::service::ServiceError::invalid("session", "must be a UUID"))?;
    accounts::end_user_session(&app, &caller, &context, id, session).await?;
    Ok(Json(MessageAnswer::new("Session ended")))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{id}/verify-email",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses(
        (status = 200, description = "The user's current address is verified (already verified: unchanged); audited with the admin as actor", body = MessageAnswer),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
        (status = 404, description = "No such live user", body = ErrorEnvelope),
    )
)]
pub async fn admin_verify_email(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<MessageAnswer>, ApiError> {
    let id = parse_user_id(&id)?;
    email::admin_verify_email(&app, &caller, &context, id).await?;
    Ok(Json(MessageAnswer::new("Address verified")))
}
