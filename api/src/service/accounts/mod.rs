//! Accounts and sessions: login (with lockout and hash upgrade), refresh-token rotation
//! with reuse detection, logout, the caller's own account, and revoking the access
//! tokens of ended sessions.
//!
//! Access tokens are EdDSA JWTs (15 min by default). Refresh tokens are opaque random
//! strings (7 days), stored only as SHA-256 digests in families: a refresh uses its
//! token and issues the next one of the family; presenting a used token again means it
//! was stolen or replayed, so the whole family is revoked.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use common::store::sessions::{self as session_store, NewToken};
use common::store::users::{self, UserRecord};
use rand::RngCore;
use secrecy::SecretString;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ServiceError;
use crate::caller::{Caller, RequestContext};
use crate::state::AppState;

mod login;
mod sessions;

pub(crate) use login::session_or_second_factor;
pub use login::{attempt_client, count_attempt, login, settle_attempt, LoginOutcome};
pub use sessions::{
    end_other_sessions, end_session, end_user_session, list_sessions, list_user_sessions, logout,
    refresh,
};
pub(crate) use sessions::{rotate, SessionKind};

/// Slack on top of the access-token lifetime for revocation records (clock skew).
const REVOCATION_SLACK_SECS: u64 = 60;

/// What a login or a refresh hands out.
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: SecretString,
    pub access_ttl: Duration,
    /// Until the refresh token expires: its lifetime, or less when the session's
    /// absolute lifetime ends sooner.
    pub refresh_ttl: Duration,
    /// The session (refresh-token family) the tokens belong to, and its user.
    pub session_id: Uuid,
    pub user_id: Uuid,
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

fn tokens(
    app: &AppState,
    user: &UserRecord,
    session: Uuid,
    refresh: SecretString,
    refresh_expires_at: DateTime<Utc>,
) -> Tokens {
    let (access_token, _) = app.accounts.jwt.issue_with(
        user.id,
        user.role,
        session,
        user.email_verified_at.is_some(),
    );
    Tokens {
        session_id: session,
        user_id: user.id,
        access_token,
        refresh_token: refresh,
        access_ttl: app.accounts.jwt.access_ttl,
        refresh_ttl: (refresh_expires_at - Utc::now())
            .to_std()
            .unwrap_or_default(),
    }
}

fn after(d: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(30))
}

/// When the session that began at `started` must end, whatever refreshes it sees.
fn session_end(app: &AppState, started: DateTime<Utc>) -> DateTime<Utc> {
    started
        + chrono::Duration::from_std(app.accounts.session_max_lifetime)
            .unwrap_or(chrono::Duration::days(30))
}

/// A refresh token's expiry: its own lifetime, cut at the end of its session.
fn refresh_expiry(app: &AppState, session_started: DateTime<Utc>) -> DateTime<Utc> {
    after(app.accounts.refresh_ttl).min(session_end(app, session_started))
}

/// Refuses a token whose user was deleted, erased or given another role since it was
/// issued. Writes call it inside their transaction, so they stop at once even when the
/// session's revocation did not reach Redis.
pub async fn ensure_current(
    client: &impl tokio_postgres::GenericClient,
    caller: &Caller,
) -> Result<(), ServiceError> {
    match users::standing(client, caller.id).await? {
        Some((role, false)) if role == caller.role => Ok(()),
        _ => {
            tracing::info!(event = "access_token_refused", reason = "user changed", user_id = %caller.id);
            Err(ServiceError::InvalidToken)
        }
    }
}

/// For an admin's read of another user's records (the console's user view): the caller
/// is a current admin and the user exists (deleted ones too). Returns the connection.
pub async fn admin_reading(
    app: &AppState,
    caller: &Caller,
    user: Uuid,
) -> Result<deadpool_postgres::Object, ServiceError> {
    if !caller.is_admin() {
        return Err(ServiceError::Forbidden);
    }
    let client = app.db().await?;
    ensure_current(&**client, caller).await?;
    users::find_by_id(&**client, user)
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    Ok(client)
}

/// Refuses the access tokens of these sessions until they would have expired.
pub async fn revoke_access(app: &AppState, sessions: &[Uuid]) -> Result<(), ServiceError> {
    let ttl = app.accounts.jwt.access_ttl + Duration::from_secs(REVOCATION_SLACK_SECS);
    Ok(app.stores.revoked_sessions.revoke(sessions, ttl).await?)
}

/// Starts a session for a user who proved who they are with the password whose stored
/// hash is `verified_hash` (`method`: how, for audit). The user's row is locked while
/// the session is written, as every revocation (password change or reset, role change,
/// deletion, "end my sessions") locks it: a login that raced one either lands before it
/// and is revoked by it, or after it and is refused here because the hash it verified
/// is no longer the account's.
pub(crate) async fn start_session(
    app: &AppState,
    context: &RequestContext,
    client: &mut deadpool_postgres::Client,
    user_id: Uuid,
    verified_hash: &str,
    method: &str,
) -> Result<Tokens, ServiceError> {
    let tx = client.transaction().await?;
    let current = users::lock_by_id(&*tx, user_id)
        .await?
        .filter(|u| u.can_sign_in());
    let Some(user) = current.filter(|u| u.password_hash == verified_hash) else {
        tracing::info!(event = "login_refused", reason = "credentials changed during the login", user_id = %user_id);
        return Err(ServiceError::InvalidCredentials);
    };
    let user = &user;
    let audit = context.audit(Some(user.id));
    let (refresh, digest) = new_refresh_token();
    let session = Uuid::now_v7();
    let started = Utc::now();
    let expires_at = refresh_expiry(app, started);
    let token = NewToken {
        family_id: session,
        user_id: user.id,
        token_hash: &digest,
        expires_at,
        session_started_at: started,
        ip: context.ip.map(|ip| ip.to_string()),
        user_agent: context.user_agent.as_deref(),
    };
    session_store::insert(&*tx, &token).await?;
    users::audit(
        &*tx,
        user.id,
        "auth.login",
        &audit,
        json!({ "session": session, "method": method }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "login_succeeded", user_id = %user.id, %session, method);
    Ok(tokens(app, user, session, refresh, expires_at))
}

/// Opens a session (a refresh-token family) for a user inside the caller's
/// transaction, as a client of the OpenID Connect provider gets one: its first refresh
/// token lives `lifetime`, cut at the session's absolute end. Returns the family, the
/// token and its expiry.
pub(crate) async fn open_session(
    app: &AppState,
    tx: &deadpool_postgres::Transaction<'_>,
    context: &RequestContext,
    user_id: Uuid,
    lifetime: Duration,
) -> Result<(Uuid, SecretString, DateTime<Utc>), ServiceError> {
    let (refresh, digest) = new_refresh_token();
    let session = Uuid::now_v7();
    let started = Utc::now();
    let expires_at = after(lifetime).min(session_end(app, started));
    let token = NewToken {
        family_id: session,
        user_id,
        token_hash: &digest,
        expires_at,
        session_started_at: started,
        ip: context.ip.map(|ip| ip.to_string()),
        user_agent: context.user_agent.as_deref(),
    };
    session_store::insert(&**tx, &token).await?;
    Ok((session, refresh, expires_at))
}

/// The SHA-256 digest under which an opaque token is stored.
pub(crate) fn digest(token: &str) -> Vec<u8> {
    token_digest(token)
}

/// The caller's own live account; a deleted one makes the token invalid.
pub async fn current_user(app: &AppState, caller: &Caller) -> Result<UserRecord, ServiceError> {
    let client = app.db().await?;
    users::find_by_id(&**client, caller.id)
        .await?
        .filter(|u| u.can_sign_in())
        .ok_or(ServiceError::InvalidToken)
}
