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
use common::domain::email::Email;
use common::domain::registration::{email_field, FieldError};
use common::domain::username::Username;
use common::store::auth_flows::{credential_digest, Challenge};
use common::store::mfa;
use common::store::registration_status::RegistrationStatus;
use common::store::sessions::{self, ActiveSession, NewToken};
use common::store::users::{self, UserRecord};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ServiceError;
use crate::bodies::accounts::{LoginRequest, RefreshRequest};
use crate::caller::{Caller, RequestContext};
use crate::state::AppState;

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

/// Refuses the access tokens of these sessions until they would have expired.
pub async fn revoke_access(app: &AppState, sessions: &[Uuid]) -> Result<(), ServiceError> {
    let ttl = app.accounts.jwt.access_ttl + Duration::from_secs(REVOCATION_SLACK_SECS);
    Ok(app.stores.revoked_sessions.revoke(sessions, ttl).await?)
}

/// Who logs in: an email, or a username to be looked up.
enum LoginName {
    Email(Email),
    Username(Username),
}

fn login_name(errors: &mut Vec<FieldError>, request: &LoginRequest) -> Option<LoginName> {
    match (request.email.as_deref(), request.username.as_deref()) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "username",
                "give an email or a username, not both",
            ));
            None
        }
        (None, Some(name)) => match Username::parse(name) {
            Ok(name) => Some(LoginName::Username(name)),
            Err(e) => {
                errors.push(FieldError::new("username", e.to_string()));
                None
            }
        },
        (email, None) => email_field(errors, email).map(LoginName::Email),
    }
}

/// The account email a username belongs to. An unknown username maps to an address no
/// account can have (`.invalid`), so the login goes on the same way and takes the same
/// time as for a wrong password, and its attempts are counted like any other.
async fn resolve_login_name(app: &AppState, name: LoginName) -> Result<Email, ServiceError> {
    let username = match name {
        LoginName::Email(email) => return Ok(email),
        LoginName::Username(username) => username,
    };
    let client = app.db().await?;
    let owner = users::find_by_username(&**client, username.as_str())
        .await?
        .filter(|u| !u.is_deleted())
        .and_then(|u| Email::parse(&u.email).ok());
    match owner {
        Some(email) => Ok(email),
        None => Email::parse(&format!("{}@username.invalid", username.as_str()))
            .map_err(|e| ServiceError::Internal(e.into())),
    }
}

fn parse_login(request: LoginRequest) -> Result<(LoginName, SecretString), ServiceError> {
    let mut errors = Vec::new();
    let name = login_name(&mut errors, &request);
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
    match (name, password) {
        (Some(n), Some(p)) if errors.is_empty() => Ok((n, p)),
        _ => Err(ServiceError::Invalid(errors)),
    }
}

/// Checks the credentials and starts a session. Attempts are counted per account and
/// client address before the password is checked (see `count_attempt`).
pub async fn login(
    app: &AppState,
    context: &RequestContext,
    request: LoginRequest,
) -> Result<LoginOutcome, ServiceError> {
    let (name, password) = parse_login(request)?;
    let email = resolve_login_name(app, name).await?;
    let client = attempt_client(context);
    let attempts = count_attempt(app, &email, &client).await?;
    let result = verify_and_start_session(app, context, &email, &client, password, attempts).await;
    match &result {
        // The password was right but the login is not over: the attempt stays counted
        // until the second factor is given, so a known password does not reset the
        // count that guards the codes.
        Ok(LoginOutcome::MfaRequired { .. }) => {}
        // The password was right; the address only waits for its verification.
        Err(ServiceError::EmailNotVerified) => {
            settle_attempt(app, &email, &client, &Ok::<(), ServiceError>(())).await
        }
        other => settle_attempt(app, &email, &client, other).await,
    }
    result
}

/// How a login with the right password ends.
pub enum LoginOutcome {
    /// A new session.
    Tokens(Tokens),
    /// The account has a second factor: `POST /auth/mfa/verify` with this challenge
    /// and a code turns it into a session.
    MfaRequired {
        challenge: SecretString,
        expires_in: Duration,
    },
}

/// Who the lockout counts an attempt against beside the account: the client's address
/// (IPv6: its /64). An attacker locks an account only for the addresses it uses.
pub fn attempt_client(context: &RequestContext) -> String {
    context.ip.map_or_else(
        || "unknown".to_owned(),
        |ip| crate::protection::rate_limit_key(ip).to_string(),
    )
}

/// Counts a password check (login or `currentPassword`) before it runs: of many
/// parallel attempts only the first `max` are verified, the rest are refused without
/// hashing. Returns the attempts so far.
pub async fn count_attempt(
    app: &AppState,
    email: &Email,
    client: &str,
) -> Result<u64, ServiceError> {
    let (attempts, window_left) = app
        .stores
        .login_attempts
        .count(email, client, app.accounts.lockout_window)
        .await?;
    if attempts > app.accounts.lockout_max_attempts {
        tracing::warn!(event = "login_locked", email = %email.masked(), attempts);
        return Err(ServiceError::AccountLocked {
            retry_after_secs: u32::try_from(window_left).unwrap_or(u32::MAX),
        });
    }
    Ok(attempts)
}

/// After a password check: success clears the count; an attempt that ended without a
/// verdict on the password (overload, a dependency down, a pending registration) is
/// given back; a wrong password stays counted.
pub async fn settle_attempt<T>(
    app: &AppState,
    email: &Email,
    client: &str,
    result: &Result<T, ServiceError>,
) {
    let attempts = &app.stores.login_attempts;
    let outcome = match result {
        Ok(_) => attempts.clear(email, client).await,
        Err(
            ServiceError::Overloaded { .. }
            | ServiceError::Unavailable(_)
            | ServiceError::RegistrationPending,
        ) => attempts.refund(email, client).await,
        Err(_) => Ok(()),
    };
    if let Err(e) = outcome {
        tracing::warn!(event = "login_attempt_not_settled", error = %e);
    }
}

async fn verify_and_start_session(
    app: &AppState,
    context: &RequestContext,
    email: &Email,
    attempt_client: &str,
    password: SecretString,
    attempts: u64,
) -> Result<LoginOutcome, ServiceError> {
    // Both lookups run for every login, known email or not, so neither path is
    // measurably shorter than the other.
    let status = app.stores.status.lookup(email).await?;
    let mut client = app.db().await?;
    let user = users::find_by_email(&**client, email.as_str())
        .await?
        .filter(|u| !u.is_deleted());
    if user.is_none() && matches!(status, Some(RegistrationStatus::Pending(_))) {
        return Err(ServiceError::RegistrationPending);
    }
    // A stored hash with costs outside the bounds (an imported one) is never computed.
    if let Some(u) = &user {
        if let Err(e) = common::domain::password::within_bounds(&u.password_hash) {
            tracing::warn!(event = "login_refused", reason = "password hash outside bounds", user_id = %u.id, detail = %e);
            return Err(ServiceError::PasswordResetRequired);
        }
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
        return Err(ServiceError::InvalidCredentials);
    };
    if app.accounts.require_verified_email && user.email_verified_at.is_none() {
        tracing::info!(event = "login_refused", reason = "email not verified", user_id = %user.id);
        return Err(ServiceError::EmailNotVerified);
    }
    // The hash the session is for: the one that matched, or its upgrade once written.
    let mut verified_hash = user.password_hash.clone();
    if let Some(new_hash) = &upgraded {
        if users::upgrade_password_hash(&**client, user.id, &user.password_hash, new_hash).await? {
            verified_hash.clone_from(new_hash);
            users::audit(
                &**client,
                user.id,
                "user.password_rehashed",
                &context.audit(Some(user.id)),
                json!({}),
            )
            .await?;
        }
    }
    if mfa::is_enabled(&**client, user.id).await? {
        return mfa_challenge(app, &user, &verified_hash, email, attempt_client).await;
    }
    start_session(
        app,
        context,
        &mut client,
        user.id,
        &verified_hash,
        "password",
    )
    .await
    .map(LoginOutcome::Tokens)
}

/// Hands out a challenge for the second factor of a login whose password was right.
async fn mfa_challenge(
    app: &AppState,
    user: &UserRecord,
    verified_hash: &str,
    email: &Email,
    attempt_client: &str,
) -> Result<LoginOutcome, ServiceError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let challenge = format!("mfa_{}", URL_SAFE_NO_PAD.encode(bytes));
    let ttl = app.accounts.mfa.challenge_ttl;
    let value = Challenge {
        user_id: user.id,
        email: email.as_str().to_owned(),
        client: attempt_client.to_owned(),
        credential: credential_digest(verified_hash),
    };
    app.stores
        .auth_flows
        .put_challenge(&challenge, &value, ttl)
        .await?;
    tracing::info!(event = "login_needs_second_factor", user_id = %user.id);
    Ok(LoginOutcome::MfaRequired {
        challenge: SecretString::from(challenge),
        expires_in: ttl,
    })
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
        .filter(|u| !u.is_deleted());
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
    sessions::insert(&*tx, &token).await?;
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
    let digest = token_digest(token.expose_secret());
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    // The user's row first, as every path that revokes sessions locks it: a refresh in
    // flight and a revocation are serialised, so no token issued here outlives one.
    let Some(owner) = sessions::owner(&*tx, &digest).await? else {
        return Err(ServiceError::InvalidToken);
    };
    let user = users::lock_by_id(&*tx, owner)
        .await?
        .filter(|u| !u.is_deleted());
    let Some(presented) = sessions::lock(&*tx, &digest).await? else {
        return Err(ServiceError::InvalidToken);
    };
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
    let expires_at = refresh_expiry(app, presented.session_started_at);
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
    Ok(tokens(app, &user, presented.family_id, next, expires_at))
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

/// The caller's own live account; a deleted one makes the token invalid.
pub async fn current_user(app: &AppState, caller: &Caller) -> Result<UserRecord, ServiceError> {
    let client = app.db().await?;
    users::find_by_id(&**client, caller.id)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or(ServiceError::InvalidToken)
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
