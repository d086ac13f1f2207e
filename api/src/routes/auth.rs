//! Login, token refresh, logout, the caller's own profile and the public keys.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;

use crate::bodies::accounts::{LoginRequest, RefreshRequest, TokenAnswer};
use crate::bodies::security::{LoginAnswer, MfaChallengeAnswer};
use crate::bodies::users::UserAnswer;
use crate::bodies::{ErrorEnvelope, MessageAnswer};
use crate::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::respond;
use crate::service::accounts::{self, LoginOutcome, Tokens};
use crate::state::AppState;

impl From<Tokens> for TokenAnswer {
    fn from(t: Tokens) -> Self {
        TokenAnswer {
            success: true,
            access_token: t.access_token,
            refresh_token: t.refresh_token.expose_secret().to_owned(),
            token_type: "Bearer",
            expires_in: t.access_ttl.as_secs(),
            refresh_expires_in: t.refresh_ttl.as_secs(),
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens; or, for an account with a second factor, `mfaRequired` and a challenge for `POST /api/auth/mfa/verify`", body = LoginAnswer),
        (status = 400, description = "Email or password missing or malformed", body = ErrorEnvelope),
        (status = 401, description = "INVALID_CREDENTIALS: unknown email or wrong password, indistinguishable", body = ErrorEnvelope),
        (status = 403, description = "EMAIL_NOT_VERIFIED: the password is right but REQUIRE_VERIFIED_EMAIL is on and the address is not verified yet", body = ErrorEnvelope),
        (status = 409, description = "REGISTRATION_PENDING: the registration is still being processed", body = ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED after 5 failures in 15 minutes, or RATE_LIMITED per IP; see Retry-After", body = ErrorEnvelope),
        (status = 503, description = "Password hashing saturated or a dependency down; see Retry-After", body = ErrorEnvelope),
    )
)]
pub async fn login(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<LoginRequest>, ApiError>,
) -> Result<Json<LoginAnswer>, ApiError> {
    let result = match request {
        Ok(ApiJson(request)) => accounts::login(&app, &context, request)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    let outcome = match &result {
        Ok(LoginOutcome::Tokens(_)) => "success",
        Ok(LoginOutcome::MfaRequired { .. }) => "mfa_required",
        Err(e) => e.code(),
    };
    app.metrics.logins.with_label_values(&[outcome]).inc();
    Ok(Json(result?.into()))
}

impl From<LoginOutcome> for LoginAnswer {
    fn from(outcome: LoginOutcome) -> Self {
        match outcome {
            LoginOutcome::Tokens(tokens) => LoginAnswer::Tokens(tokens.into()),
            LoginOutcome::MfaRequired {
                challenge,
                expires_in,
            } => LoginAnswer::MfaRequired(MfaChallengeAnswer {
                success: true,
                mfa_required: true,
                challenge: challenge.expose_secret().to_owned(),
                expires_in: expires_in.as_secs(),
            }),
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and the next refresh token of the family", body = TokenAnswer),
        (status = 400, description = "refreshToken missing", body = ErrorEnvelope),
        (status = 401, description = "INVALID_TOKEN: unknown, expired, revoked or already used (the family is then revoked)", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down", body = ErrorEnvelope),
    )
)]
pub async fn refresh(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<RefreshRequest>, ApiError>,
) -> Result<Json<TokenAnswer>, ApiError> {
    let ApiJson(request) = request?;
    let tokens = accounts::refresh(&app, &context, request).await?;
    Ok(Json(tokens.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session's refresh tokens and access tokens are revoked", body = MessageAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down; retry", body = ErrorEnvelope),
    )
)]
pub async fn logout(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
) -> Result<Json<MessageAnswer>, ApiError> {
    accounts::logout(&app, &caller, &context).await?;
    Ok(Json(MessageAnswer::new("Logged out")))
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile, with ETag", body = UserAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
    )
)]
pub async fn me(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let user = accounts::current_user(&app, &caller).await?;
    Ok(respond::user(&user))
}

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    responses(
        (status = 200, description = "The Ed25519 public keys (JWK, `kid`) that verify access tokens", content_type = "application/json"),
    )
)]
pub async fn jwks(State(app): State<AppState>) -> Response {
    let mut response = Json(app.accounts.jwt.jwks().clone()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
