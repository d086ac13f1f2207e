//! TOTP two-factor authentication: enrolment (secret, otpauth URI, QR code), its
//! confirmation with a first code (which hands out ten recovery codes), the second step
//! of a login, disabling it (password and code), and an admin's reset.
//!
//! Codes are checked in constant time within ±1 step; the accepted step is stored, so
//! a code is never accepted twice. Wrong codes at login count toward the same lockout as
//! wrong passwords (per account and client address).

use common::domain::email::Email;
use common::store::mfa::{self, StoredFactor};
use common::store::users;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{accounts, ServiceError};
use crate::auth::caller::{Caller, RequestContext};
use crate::auth::mfa::{self as totp, Enrolment, MfaKeys};
use crate::service::accounts::Tokens;
use crate::state::AppState;

fn keys(app: &AppState) -> Result<&MfaKeys, ServiceError> {
    app.accounts
        .mfa
        .keys
        .as_ref()
        .ok_or(ServiceError::MfaNotConfigured)
}

fn now_unix() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

fn required_code(code: Option<&str>) -> Result<&str, ServiceError> {
    match code.map(str::trim) {
        Some(c) if !c.is_empty() && c.len() <= 32 => Ok(c),
        Some(_) => Err(ServiceError::invalid("code", "must be 1-32 characters")),
        None => Err(ServiceError::invalid("code", "is required")),
    }
}

/// The factor's secret in the clear (for this check only), re-sealed under the current
/// key when it was sealed under an earlier one.
async fn open_secret(
    app: &AppState,
    client: &impl tokio_postgres::GenericClient,
    user: Uuid,
    factor: &StoredFactor,
) -> Result<Zeroizing<Vec<u8>>, ServiceError> {
    let keys = keys(app)?;
    let secret = keys
        .open(user, &factor.key_id, &factor.secret_sealed)
        .map_err(|e| ServiceError::Internal(e.into()))?;
    if factor.key_id != keys.current_key_id() {
        let (kid, sealed) = keys.seal(user, &secret);
        mfa::reseal(client, user, &kid, &sealed).await?;
    }
    Ok(secret)
}

/// Checks a TOTP code or a recovery code against the locked factor and uses it up.
async fn accept_code(
    app: &AppState,
    client: &impl tokio_postgres::GenericClient,
    user: Uuid,
    factor: &StoredFactor,
    code: &str,
) -> Result<&'static str, ServiceError> {
    if totp::looks_like_recovery_code(code) {
        return match mfa::use_recovery_code(client, user, &totp::recovery_digest(code)).await? {
            true => Ok("recovery_code"),
            false => Err(ServiceError::InvalidMfaCode),
        };
    }
    let secret = open_secret(app, client, user, factor).await?;
    let step = totp::check_code(&secret, code, now_unix(), factor.last_step)
        .ok_or(ServiceError::InvalidMfaCode)?;
    match mfa::accept_step(client, user, step).await? {
        true => Ok("totp"),
        false => Err(ServiceError::InvalidMfaCode),
    }
}

/// Whether the caller has a second factor, and how many recovery codes are left.
pub async fn status(app: &AppState, caller: &Caller) -> Result<(bool, i64), ServiceError> {
    let client = app.db().await?;
    let enabled = mfa::is_enabled(&**client, caller.id).await?;
    let left = mfa::recovery_codes_left(&**client, caller.id).await?;
    Ok((enabled, if enabled { left } else { 0 }))
}

/// Starts an enrolment: a new secret for the caller's authenticator app. Not in force
/// until `confirm` sees a code from it.
pub async fn enroll(app: &AppState, caller: &Caller) -> Result<Enrolment, ServiceError> {
    let keys = keys(app)?;
    let client = app.db().await?;
    accounts::ensure_current(&**client, caller).await?;
    let user = users::find_by_id(&**client, caller.id)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or(ServiceError::InvalidToken)?;
    let secret = totp::new_secret();
    let (kid, sealed) = keys.seal(user.id, &secret);
    if !mfa::begin_enrolment(&**client, user.id, &kid, &sealed).await? {
        return Err(ServiceError::MfaAlreadyEnabled);
    }
    tracing::info!(event = "mfa_enrolment_started", user_id = %user.id);
    totp::enrolment(&secret, &app.accounts.mfa.issuer, &user.email).map_err(ServiceError::Internal)
}

/// Confirms an enrolment with a code from the app: the factor is in force from now on.
/// Returns the recovery codes, shown this once.
pub async fn confirm(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    code: Option<&str>,
) -> Result<Vec<String>, ServiceError> {
    let code = required_code(code)?;
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    accounts::ensure_current(&*tx, caller).await?;
    let factor = mfa::lock(&*tx, caller.id)
        .await?
        .ok_or(ServiceError::MfaNotEnabled)?;
    if factor.enabled {
        return Err(ServiceError::MfaAlreadyEnabled);
    }
    let secret = open_secret(app, &*tx, caller.id, &factor).await?;
    let step = totp::check_code(&secret, code, now_unix(), factor.last_step)
        .ok_or(ServiceError::InvalidMfaCode)?;
    if !mfa::accept_step(&*tx, caller.id, step).await? {
        return Err(ServiceError::InvalidMfaCode);
    }
    let (codes, digests) = totp::new_recovery_codes();
    mfa::replace_recovery_codes(&*tx, caller.id, &digests).await?;
    users::audit(
        &*tx,
        caller.id,
        "auth.mfa_enabled",
        &context.audit(Some(caller.id)),
        json!({ "factor": "totp" }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "mfa_enabled", user_id = %caller.id);
    Ok(codes)
}

/// Turns the second factor off: needs the password and a code (or a recovery code).
pub async fn disable(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    password: Option<SecretString>,
    code: Option<&str>,
) -> Result<(), ServiceError> {
    let code = required_code(code)?;
    let mut client = app.db().await?;
    let user = users::find_by_id(&**client, caller.id)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or(ServiceError::InvalidToken)?;
    if !mfa::is_enabled(&**client, caller.id).await? {
        return Err(ServiceError::MfaNotEnabled);
    }
    let password = password.filter(|p| !p.expose_secret().is_empty());
    super::users::reauthenticate(app, context, password, &user).await?;
    let tx = client.transaction().await?;
    accounts::ensure_current(&*tx, caller).await?;
    let factor = mfa::lock(&*tx, caller.id)
        .await?
        .filter(|f| f.enabled)
        .ok_or(ServiceError::MfaNotEnabled)?;
    accept_code(app, &*tx, caller.id, &factor, code).await?;
    mfa::remove(&*tx, caller.id).await?;
    users::audit(
        &*tx,
        caller.id,
        "auth.mfa_disabled",
        &context.audit(Some(caller.id)),
        json!({ "factor": "totp" }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "mfa_disabled", user_id = %caller.id);
    Ok(())
}

/// An admin removes a user's second factor (a lost phone and lost recovery codes).
pub async fn admin_reset(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    user: Uuid,
) -> Result<(), ServiceError> {
    if !caller.is_admin() {
        return Err(ServiceError::Forbidden);
    }
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    accounts::ensure_current(&*tx, caller).await?;
    users::lock_by_id(&*tx, user)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or(ServiceError::NotFound("User"))?;
    if !mfa::remove(&*tx, user).await? {
        return Err(ServiceError::MfaNotEnabled);
    }
    users::audit(
        &*tx,
        user,
        "auth.mfa_reset",
        &context.audit(Some(caller.id)),
        json!({ "factor": "totp" }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "mfa_reset", user_id = %user, actor = %caller.id);
    Ok(())
}

/// The second step of a login: a challenge from the first and a code (TOTP or
/// recovery) become a session. Each code counts as a login attempt until one is right.
pub async fn verify_login(
    app: &AppState,
    context: &RequestContext,
    challenge: Option<&str>,
    code: Option<&str>,
) -> Result<Tokens, ServiceError> {
    let challenge = match challenge.map(str::trim) {
        Some(c) if !c.is_empty() && c.len() <= 256 => c,
        Some(_) => {
            return Err(ServiceError::invalid(
                "challenge",
                "must be 1-256 characters",
            ))
        }
        None => return Err(ServiceError::invalid("challenge", "is required")),
    };
    let code = required_code(code)?;
    let pending = app
        .stores
        .auth_flows
        .challenge(challenge)
        .await?
        .ok_or(ServiceError::InvalidToken)?;
    let email = Email::parse(&pending.email).map_err(|e| ServiceError::Internal(e.into()))?;
    let client_key = accounts::attempt_client(context);
    accounts::count_attempt(app, &email, &client_key).await?;
    let result = verify_and_start(app, context, challenge, pending.user_id, code).await;
    accounts::settle_attempt(app, &email, &client_key, &result).await;
    if let Err(ServiceError::InvalidMfaCode) = &result {
        tracing::info!(event = "mfa_code_refused", user_id = %pending.user_id);
    }
    result
}

async fn verify_and_start(
    app: &AppState,
    context: &RequestContext,
    challenge: &str,
    user_id: Uuid,
    code: &str,
) -> Result<Tokens, ServiceError> {
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    let user = users::lock_by_id(&*tx, user_id)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or(ServiceError::InvalidToken)?;
    let factor = mfa::lock(&*tx, user_id)
        .await?
        .filter(|f| f.enabled)
        .ok_or(ServiceError::InvalidToken)?;
    let method = accept_code(app, &*tx, user_id, &factor, code).await?;
    // One session per challenge, even when two right codes race.
    if !app.stores.auth_flows.take_challenge(challenge).await? {
        return Err(ServiceError::InvalidToken);
    }
    tx.commit().await?;
    accounts::start_session(app, context, &mut client, &user, method).await
}
