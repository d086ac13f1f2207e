//! The `Caller` extractor (who is calling, from a Bearer access token) and the
//! `RequestContext` extractor (client IP and user agent for audit rows).

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use common::domain::Role;
use common::store::users::AuditContext;
use uuid::Uuid;

use crate::error::ApiError;
use crate::failure::ServiceError;
use crate::state::AppState;

/// An authenticated caller: a verified, unrevoked access token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
    pub token_id: Uuid,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The caller is `user` or an admin.
    pub fn is_self_or_admin(&self, user: Uuid) -> bool {
        self.id == user || self.is_admin()
    }

    /// The caller is `user`, a moderator or an admin.
    pub fn is_self_or_staff(&self, user: Uuid) -> bool {
        self.id == user || self.role >= Role::Moderator
    }
}

fn bearer(parts: &Parts) -> Option<Result<&str, ApiError>> {
    let value = parts.headers.get(header::AUTHORIZATION)?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::from(ServiceError::InvalidToken));
    Some(token)
}

async fn authenticate(token: &str, state: &AppState) -> Result<Caller, ApiError> {
    let claims = state.accounts.jwt.verify(token).map_err(|e| {
        tracing::info!(event = "access_token_refused", reason = %e);
        ApiError::from(ServiceError::InvalidToken)
    })?;
    // Fail closed: without Redis a revoked session cannot be told apart.
    if state
        .stores
        .revoked_sessions
        .is_revoked(claims.sid)
        .await
        .map_err(|e| ApiError::from(ServiceError::unavailable(e)))?
    {
        tracing::info!(event = "access_token_refused", reason = "session revoked");
        return Err(ApiError::from(ServiceError::InvalidToken));
    }
    Ok(Caller {
        id: claims.sub,
        role: claims.role,
        session_id: claims.sid,
        token_id: claims.jti,
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(parts) {
            None => Err(ApiError::Unauthenticated),
            Some(token) => authenticate(token?, state).await,
        }
    }
}

/// No `Authorization` header: anonymous. A header with a bad token is still refused.
impl OptionalFromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        match bearer(parts) {
            None => Ok(None),
            Some(token) => authenticate(token?, state).await.map(Some),
        }
    }
}

/// Where a request came from, for audit rows (all empty for the CLI).
#[derive(Debug, Default)]
pub struct RequestContext {
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
    /// The request's `X-Request-Id` (set or propagated by the api), for events.
    pub request_id: Option<String>,
}

impl RequestContext {
    /// A user event made by `actor` in this request.
    pub fn event(
        &self,
        event_type: common::events::user::UserEventType,
        user: Uuid,
        version: i64,
        actor: Option<Uuid>,
    ) -> common::events::user::UserEvent {
        common::events::user::UserEvent::new(event_type, user, version)
            .actor(actor)
            .request(self.request_id.clone())
    }

    pub fn audit(&self, actor: Option<Uuid>) -> AuditContext {
        AuditContext {
            actor_id: actor,
            ip: self.ip,
            user_agent: self.user_agent.clone(),
        }
    }
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ip = state
            .accounts
            .client_ip
            .from_parts(&parts.headers, &parts.extensions);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect());
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(128).collect());
        Ok(Self {
            ip,
            user_agent,
            request_id,
        })
    }
}
