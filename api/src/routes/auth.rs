//! Login, token refresh, logout, the caller's own profile and the public keys.
//!
//! Access tokens are EdDSA JWTs (15 min by default). Refresh tokens are opaque random
//! strings (7 days), stored only as SHA-256 digests in families: a refresh uses its
//! token and issues the next one of the family; presenting a used token again means it
//! was stolen or replayed, so the whole family is revoked.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::email::Email;
use common::redis_store::RegistrationStatus;
use common::registration::{email_field, FieldError};
use common::users::{self, UserRecord};
use common::{sessions, users::AuditContext};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;

pub(crate) fn unavailable(e: impl Into<anyhow::Error>) -> ApiError {
    ApiError::Unavailable(e.into())
}

/// Slack on top of the access-token lifetime for revocation records (clock skew).
const REVOCATION_SLACK_SECS: u64 = 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: Option<String>,
    password: Option<SecretString>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshRequest {
    refresh_token: Option<SecretString>,
}

fn new_refresh_token() -> (SecretString, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("rt_{}", URL_SAFE_NO_PAD.encode(bytes));
    let digest = token_digest(&token);
    (SecretString::from(token), digest)
}

fn token_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn token_answer(
    app: &AppState,
    user: &UserRecord,
    session: Uuid,
    refresh: &SecretString,
) -> Response {
    let (access, _) = app.accounts.jwt.issue(user.id, user.role, session);
    Json(json!({
        "success": true,
        "accessToken": access,
        "refreshToken": refresh.expose_secret(),
        "tokenType": "Bearer",
        "expiresIn": app.accounts.jwt.access_ttl.as_secs(),
        "refreshExpiresIn": app.accounts.refresh_ttl.as_secs(),
    }))
    .into_response()
}

fn refresh_expiry(app: &AppState) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
        + chrono::Duration::from_std(app.accounts.refresh_ttl).unwrap_or(chrono::Duration::days(7))
}

/// Refuses the access tokens of these sessions in Redis until they would have expired.
pub(crate) async fn revoke_access(app: &AppState, sessions: &[Uuid]) -> Result<(), ApiError> {
    let ttl = app.accounts.jwt.access_ttl + std::time::Duration::from_secs(REVOCATION_SLACK_SECS);
    app.store
        .revoke_sessions(sessions, ttl)
        .await
        .map_err(unavailable)
}

#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    request_body = crate::openapi::LoginBody,
    responses(
        (status = 200, description = "Tokens", body = crate::openapi::TokenAnswer),
        (status = 400, description = "Email or password missing or malformed", body = crate::openapi::ErrorEnvelope),
        (status = 401, description = "INVALID_CREDENTIALS: unknown email or wrong password, indistinguishable", body = crate::openapi::ErrorEnvelope),
        (status = 409, description = "REGISTRATION_PENDING: the registration is still being processed", body = crate::openapi::ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED after 5 failures in 15 minutes, or RATE_LIMITED per IP; see Retry-After", body = crate::openapi::ErrorEnvelope),
        (status = 503, description = "Password hashing saturated or a dependency down; see Retry-After", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn login(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<LoginRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let result = match request {
        Ok(ApiJson(request)) => authenticate(&app, &context, request).await,
        Err(e) => Err(e),
    };
    let outcome = match &result {
        Ok(_) => "success",
        Err(e) => e.code(),
    };
    app.metrics.logins.with_label_values(&[outcome]).inc();
    result
}

fn parse_login(request: LoginRequest) -> Result<(Email, SecretString), ApiError> {
    let mut errors = Vec::new();
    let email = email_field(&mut errors, request.email.as_deref());
    let password = match request.password {
        None => {
            errors.push(FieldError::new("password", "is required"));
            None
        }
        Some(p) if p.expose_secret().is_empty() || p.expose_secret().chars().count() > 128 => {
            errors.push(FieldError::new("password", "must be 1-128 characters"));
            None
        }
        Some(p) => Some(p),
    };
    match (email, password) {
        (Some(e), Some(p)) if errors.is_empty() => Ok((e, p)),
        _ => Err(ApiError::Validation(errors)),
    }
}

async fn authenticate(
    app: &AppState,
    context: &RequestContext,
    request: LoginRequest,
) -> Result<Response, ApiError> {
    let (email, password) = parse_login(request)?;
    // Counted before the password is checked: of many parallel attempts only the
    // first `max` are verified, the rest are refused without hashing.
    let (attempts, window_left) = app
        .store
        .count_login_attempt(&email, app.accounts.lockout_window)
        .await
        .map_err(unavailable)?;
    if attempts > app.accounts.lockout_max_attempts {
        tracing::warn!(event = "login_locked", email = %email.masked(), attempts);
        return Err(ApiError::AccountLocked {
            retry_after_secs: u32::try_from(window_left).unwrap_or(u32::MAX),
        });
    }
    let result = verify_and_start_session(app, context, &email, password, attempts).await;
    // An attempt that ended without a verdict on the password (overload, a dependency
    // down, a pending registration) is given back: only checked passwords count.
    if matches!(
        result,
        Err(ApiError::Overloaded { .. } | ApiError::Unavailable(_) | ApiError::RegistrationPending)
    ) {
        if let Err(e) = app.store.refund_login_attempt(&email).await {
            tracing::warn!(event = "login_attempt_not_refunded", error = %e);
        }
    }
    result
}

async fn verify_and_start_session(
    app: &AppState,
    context: &RequestContext,
    email: &Email,
    password: SecretString,
    attempts: u64,
) -> Result<Response, ApiError> {
    // Both lookups run for every login, known email or not, so neither path is
    // measurably shorter than the other.
    let status = app.store.lookup(email).await.map_err(unavailable)?;
    let mut client = app.db().await?;
    let user = users::find_by_email(&**client, email.as_str())
        .await
        .map_err(unavailable)?
        .filter(|u| !u.is_deleted());
    if user.is_none() && matches!(status, Some(RegistrationStatus::Pending(_))) {
        return Err(ApiError::RegistrationPending);
    }
    // An unknown email is checked against a dummy hash: the same work, the same time.
    let stored = user.as_ref().map_or_else(
        || app.accounts.dummy_hash.clone(),
        |u| u.password_hash.clone(),
    );
    let (verified, upgraded) = app
        .accounts
        .hashing
        .run(move |hasher| {
            let verified = hasher.verify(&password, &stored);
            let upgraded = (verified && hasher.needs_rehash(&stored))
                .then(|| hasher.hash(&password).ok())
                .flatten();
            (verified, upgraded)
        })
        .await?;
    let Some(user) = user.filter(|_| verified) else {
        tracing::info!(event = "login_failed", email = %email.masked(), attempts);
        return Err(ApiError::InvalidCredentials);
    };
    if let Err(e) = app.store.clear_login_attempts(email).await {
        tracing::warn!(event = "login_attempts_not_cleared", error = %e);
    }

    let audit = context.audit(Some(user.id));
    let (refresh, digest) = new_refresh_token();
    let session = Uuid::now_v7();
    let tx = client.transaction().await.map_err(unavailable)?;
    if let Some(new_hash) = upgraded {
        if users::upgrade_password_hash(&*tx, user.id, &user.password_hash, &new_hash)
            .await
            .map_err(unavailable)?
        {
            users::audit(&*tx, user.id, "user.password_rehashed", &audit, json!({}))
                .await
                .map_err(unavailable)?;
        }
    }
    sessions::insert(&*tx, session, user.id, &digest, refresh_expiry(app))
        .await
        .map_err(unavailable)?;
    users::audit(
        &*tx,
        user.id,
        "auth.login",
        &audit,
        json!({ "session": session }),
    )
    .await
    .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    tracing::info!(event = "login_succeeded", user_id = %user.id, %session);
    Ok(token_answer(app, &user, session, &refresh))
}

#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    tag = "auth",
    request_body = crate::openapi::RefreshBody,
    responses(
        (status = 200, description = "A new access token and the next refresh token of the family", body = crate::openapi::TokenAnswer),
        (status = 400, description = "refreshToken missing", body = crate::openapi::ErrorEnvelope),
        (status = 401, description = "INVALID_TOKEN: unknown, expired, revoked or already used (the family is then revoked)", body = crate::openapi::ErrorEnvelope),
        (status = 503, description = "A dependency is down", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn refresh(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<RefreshRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(request) = request?;
    let token = request
        .refresh_token
        .filter(|t| !t.expose_secret().is_empty() && t.expose_secret().len() <= 256)
        .ok_or_else(|| {
            ApiError::Validation(vec![FieldError::new("refreshToken", "is required")])
        })?;
    let digest = token_digest(token.expose_secret());
    let mut client = app.db().await?;
    let tx = client.transaction().await.map_err(unavailable)?;
    let Some(presented) = sessions::lock(&*tx, &digest).await.map_err(unavailable)? else {
        return Err(ApiError::InvalidToken);
    };
    let user = users::find_by_id(&*tx, presented.user_id)
        .await
        .map_err(unavailable)?
        .filter(|u| !u.is_deleted());
    let reused = presented.used || presented.revoked;
    if reused || user.is_none() {
        sessions::revoke_family(&*tx, presented.family_id)
            .await
            .map_err(unavailable)?;
        if reused && !presented.revoked {
            users::audit(
                &*tx,
                presented.user_id,
                "auth.refresh_reused",
                &context.audit(None),
                json!({ "session": presented.family_id }),
            )
            .await
            .map_err(unavailable)?;
            tracing::warn!(event = "refresh_token_reused", user_id = %presented.user_id, session = %presented.family_id);
        }
        tx.commit().await.map_err(unavailable)?;
        revoke_access(&app, &[presented.family_id]).await?;
        return Err(ApiError::InvalidToken);
    }
    if presented.expires_at <= chrono::Utc::now() {
        return Err(ApiError::InvalidToken);
    }
    let Some(user) = user else {
        return Err(ApiError::InvalidToken);
    };
    let (next, next_digest) = new_refresh_token();
    sessions::mark_used(&*tx, &digest)
        .await
        .map_err(unavailable)?;
    sessions::insert(
        &*tx,
        presented.family_id,
        user.id,
        &next_digest,
        refresh_expiry(&app),
    )
    .await
    .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    Ok(token_answer(&app, &user, presented.family_id, &next))
}

#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session's refresh tokens and access tokens are revoked", body = crate::openapi::MessageAnswer),
        (status = 401, description = "No or invalid access token", body = crate::openapi::ErrorEnvelope),
        (status = 503, description = "A dependency is down; retry", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn logout(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut client = app.db().await?;
    let tx = client.transaction().await.map_err(unavailable)?;
    sessions::revoke_family(&*tx, caller.session_id)
        .await
        .map_err(unavailable)?;
    users::audit(
        &*tx,
        caller.id,
        "auth.logout",
        &context.audit(Some(caller.id)),
        json!({ "session": caller.session_id }),
    )
    .await
    .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    revoke_access(&app, &[caller.session_id]).await?;
    Ok(Json(json!({ "success": true, "message": "Logged out" })))
}

/// The answer carrying one user: the profile and its `ETag`.
pub(crate) fn user_answer(user: &UserRecord) -> Response {
    let mut response = Json(json!({ "success": true, "data": user })).into_response();
    if let Ok(v) = HeaderValue::from_str(&user.etag()) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile, with ETag", body = crate::openapi::UserAnswer),
        (status = 401, description = "No or invalid access token", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn me(State(app): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let client = app.db().await?;
    let user = users::find_by_id(&**client, caller.id)
        .await
        .map_err(unavailable)?
        .filter(|u| !u.is_deleted())
        .ok_or(ApiError::InvalidToken)?;
    Ok(user_answer(&user))
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

/// The audit context of a change made by `caller`.
pub(crate) fn actor(context: &RequestContext, caller: &Caller) -> AuditContext {
    context.audit(Some(caller.id))
}
