//! Login: the login name (email or username), the password check on the hashing pool
//! with lockout per account and per client, the hash upgrade, and the second-factor
//! challenge when the account has one.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::domain::email::Email;
use common::domain::registration::{email_field, FieldError};
use common::domain::username::Username;
use common::store::auth_flows::{credential_digest, Challenge};
use common::store::mfa;
use common::store::registration_status::RegistrationStatus;
use common::store::users::{self, UserRecord};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{start_session, Tokens};
use crate::bodies::accounts::LoginRequest;
use crate::caller::RequestContext;
use crate::service::ServiceError;
use crate::state::AppState;

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
        .filter(|u| u.can_sign_in());
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
    // An unknown email, or an account without a password (provisioned over SCIM), is
    // checked against a dummy hash: the same work, the same time.
    let stored = user.as_ref().filter(|u| u.has_password()).map_or_else(
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

/// Ends a sign-in that proved the person another way than with the password (a mailed
/// link or code): the second-factor challenge when the account has one, else a session.
pub(crate) async fn session_or_second_factor(
    app: &AppState,
    context: &RequestContext,
    user: &UserRecord,
    method: &str,
) -> Result<LoginOutcome, ServiceError> {
    let mut client = app.db().await?;
    if mfa::is_enabled(&**client, user.id).await? {
        let email = Email::parse(&user.email).map_err(|e| ServiceError::Internal(e.into()))?;
        let attempts_by = attempt_client(context);
        return mfa_challenge(app, user, &user.password_hash, &email, &attempts_by).await;
    }
    start_session(
        app,
        context,
        &mut client,
        user.id,
        &user.password_hash,
        method,
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
