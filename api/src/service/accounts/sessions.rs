//! A session after login: refresh-token rotation with reuse detection, logout, and the
//! caller's view of their sessions (list, end one, end all others).

use chrono::{DateTime, Utc};
use common::store::oidc;
use common::store::sessions::{self, ActiveSession, NewToken};
use common::store::users::{self, UserRecord};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;

use super::{
    after, ensure_current, new_refresh_token, refresh_expiry, revoke_access, session_end,
    token_digest, tokens, Tokens,
};
use crate::bodies::accounts::RefreshRequest;
use crate::caller::{Caller, RequestContext};
use crate::service::ServiceError;
use crate::state::AppState;

/// Which sessions a refresh may rotate: the api's own (login) sessions, or those a
/// client of the OpenID Connect provider was issued. A token of the other kind is
/// refused without touching its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind<'a> {
    /// A login's session (`/api/v1/auth/refresh`).
    Api,
    /// A session opened for this OIDC client (`/oauth2/token`).
    Client(&'a str),
}

/// A refresh token used and the next one of its family.
pub struct Rotated {
    pub user: UserRecord,
    pub family_id: Uuid,
    pub next: SecretString,
    pub expires_at: DateTime<Utc>,
}

/// Uses a refresh token and issues the next of its family. A token presented again
/// after its use revokes the whole family (and is audited): it was stolen or replayed.
pub async fn refresh(
    app: &AppState,
    context: &RequestContext,
    request: RefreshRequest,
) -> Result<Tokens, ServiceError> {
    let token = request
        .refresh_token
        .filter(|t| !t.expose_secret().is_empty() && t.expose_secret().len() <= 256)
        .ok_or_else(|| ServiceError::invalid("refreshToken", "is required"))?;
    let r = rotate(app, context, token.expose_secret(), SessionKind::Api, None).await?;
    Ok(tokens(app, &r.user, r.family_id, r.next, r.expires_at))
}

/// The rotation behind every refresh grant. `lifetime`: the token lifetime of the
/// session's client (the api's own `REFRESH_TOKEN_TTL_SECS` when `None`); the session's
/// absolute lifetime bounds it either way.
pub(crate) async fn rotate(
    app: &AppState,
    context: &RequestContext,
    token: &str,
    kind: SessionKind<'_>,
    lifetime: Option<std::time::Duration>,
) -> Result<Rotated, ServiceError> {
    let digest = token_digest(token);
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    // The user's row first, as every path that revokes sessions locks it: a refresh in
    // flight and a revocation are serialised, so no token issued here outlives one.
    let Some(owner) = sessions::owner(&*tx, &digest).await? else {
        return Err(ServiceError::InvalidToken);
    };
    let user = users::lock_by_id(&*tx, owner)
        .await?
        .filter(|u| u.can_sign_in());
    let Some(presented) = sessions::lock(&*tx, &digest).await? else {
        return Err(ServiceError::InvalidToken);
    };
    let opened_for = oidc::session(&*tx, presented.family_id).await?;
    let matches = match (kind, &opened_for) {
        (SessionKind::Api, None) => true,
        (SessionKind::Client(id), Some(s)) => s.client_id.as_deref() == Some(id),
        _ => false,
    };
    if !matches {
        tracing::info!(event = "refresh_refused", reason = "session of another kind", session = %presented.family_id);
        return Err(ServiceError::InvalidToken);
    }
    let reused = presented.used || presented.revoked;
    let Some(user) = user.filter(|_| !reused) else {
        sessions::revoke_family(&*tx, presented.family_id).await?;
        if reused && !presented.revoked {
            users::audit(
                &*tx,
                presented.user_id,
                "auth.refresh_reused",
                &context.audit(None),
                json!({ "session": presented.family_id }),
            )
            .await?;
            tracing::warn!(event = "refresh_token_reused", user_id = %presented.user_id, session = %presented.family_id);
        }
        tx.commit().await?;
        revoke_access(app, &[presented.family_id]).await?;
        return Err(ServiceError::InvalidToken);
    };
    let now = Utc::now();
    if presented.expires_at <= now || session_end(app, presented.session_started_at) <= now {
        return Err(ServiceError::InvalidToken);
    }
    let (next, next_digest) = new_refresh_token();
    let expires_at = match lifetime {
        Some(ttl) => after(ttl).min(session_end(app, presented.session_started_at)),
        None => refresh_expiry(app, presented.session_started_at),
    };
    sessions::mark_used(&*tx, &digest).await?;
    let token = NewToken {
        family_id: presented.family_id,
        user_id: user.id,
        token_hash: &next_digest,
        expires_at,
        session_started_at: presented.session_started_at,
        ip: context.ip.map(|ip| ip.to_string()),
        user_agent: context.user_agent.as_deref(),
    };
    sessions::insert(&*tx, &token).await?;
    tx.commit().await?;
    Ok(Rotated {
        user,
        family_id: presented.family_id,
        next,
        expires_at,
    })
}

/// Ends the caller's session: its refresh tokens in PostgreSQL, its access tokens in
/// Redis.
pub async fn logout(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
) -> Result<(), ServiceError> {
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    // Serialised with a refresh of this session in flight (see `refresh`).
    users::lock_by_id(&*tx, caller.id).await?;
    sessions::revoke_family(&*tx, caller.session_id).await?;
    users::audit(
        &*tx,
        caller.id,
        "auth.logout",
        &context.audit(Some(caller.id)),
        json!({ "session": caller.session_id }),
    )
    .await?;
    tx.commit().await?;
    revoke_access(app, &[caller.session_id]).await
}

/// The caller's sessions that can still be refreshed, newest first, with which one is
/// the caller's own.
pub async fn list_sessions(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<(ActiveSession, bool)>, ServiceError> {
    let client = app.db().await?;
    ensure_current(&**client, caller).await?;
    let mut seen = std::collections::HashSet::new();
    Ok(sessions::active(&**client, caller.id)
        .await?
        .into_iter()
        // A family has one live token; a refresh racing this read may show two.
        .filter(|s| seen.insert(s.id))
        .map(|s| {
            let current = s.id == caller.session_id;
            (s, current)
        })
        .collect())
}

/// Ends one of the caller's sessions: its refresh tokens and its access tokens.
pub async fn end_session(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    session: Uuid,
) -> Result<(), ServiceError> {
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    // Serialised with a refresh of this session in flight (see `refresh`).
    users::lock_by_id(&*tx, caller.id).await?;
    if !sessions::revoke_session_of(&*tx, caller.id, session).await? {
        return Err(ServiceError::NotFound("Session"));
    }
    users::audit(
        &*tx,
        caller.id,
        "auth.session_ended",
        &context.audit(Some(caller.id)),
        json!({ "session": session }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "session_ended", user_id = %caller.id, %session);
    revoke_access(app, &[session]).await
}

/// Ends every session of the caller but the current one (after a mail about a change
/// the owner did not make, say). Returns how many ended.
pub async fn end_other_sessions(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
) -> Result<usize, ServiceError> {
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    ensure_current(&*tx, caller).await?;
    users::lock_by_id(&*tx, caller.id).await?;
    let ended = sessions::revoke_user(&*tx, caller.id, Some(caller.session_id)).await?;
    users::audit(
        &*tx,
        caller.id,
        "auth.other_sessions_ended",
        &context.audit(Some(caller.id)),
        json!({ "sessions": ended.len() }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "other_sessions_ended", user_id = %caller.id, count = ended.len());
    revoke_access(app, &ended).await?;
    Ok(ended.len())
}

/// A user's live sessions, for an admin (the console's user view). Newest first.
pub async fn list_user_sessions(
    app: &AppState,
    caller: &Caller,
    user: Uuid,
) -> Result<Vec<ActiveSession>, ServiceError> {
    let client = super::admin_reading(app, caller, user).await?;
    let mut seen = std::collections::HashSet::new();
    Ok(sessions::active(&**client, user)
        .await?
        .into_iter()
        .filter(|s| seen.insert(s.id))
        .collect())
}

/// Ends one session of a user for an admin: its refresh tokens at once and its access
/// tokens within a request. Audited on the user with the admin as actor.
pub async fn end_user_session(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    user: Uuid,
    session: Uuid,
) -> Result<(), ServiceError> {
    if !caller.is_admin() {
        return Err(ServiceError::Forbidden);
    }
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    ensure_current(&*tx, caller).await?;
    users::lock_by_id(&*tx, user)
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    if !sessions::revoke_session_of(&*tx, user, session).await? {
        return Err(ServiceError::NotFound("Session"));
    }
    users::audit(
        &*tx,
        user,
        "auth.session_ended",
        &context.audit(Some(caller.id)),
        json!({ "session": session, "by": "admin" }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "session_ended", user_id = %user, %session, actor = %caller.id);
    revoke_access(app, &[session]).await
}
