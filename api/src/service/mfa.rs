//! TOTP two-factor authentication: enrolment (secret, otpauth URI, QR code), its
//! confirmation with a first code (which hands out ten recovery codes), the second step
//! of a login, disabling it (password and code), and an admin's reset.
//!
//! Codes are checked in constant time within ±1 step; the accepted step is stored, so
//! a code is never accepted twice. Wrong codes at login count toward the same lockout as
//! wrong passwords (per account and client address), end their challenge after five, and
//! slow the account down whatever the address (see [`verify_login`]).

use common::domain::email::Email;
use common::store::auth_flows::{credential_digest, Challenge};
use common::store::mail_outbox::{self, MailKind};
use common::store::mfa::{self, StoredFactor};
use common::store::users;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{accounts, ServiceError};
use crate::auth::mfa::{self as totp, Enrolment, MfaKeys};
use crate::caller::{Caller, RequestContext};
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

/// Queues a notice about the account's second factor to its current address, in the
/// transaction of the change.
async fn notify_owner(
    tx: &impl tokio_postgres::GenericClient,
    user: Uuid,
    kind: MailKind,
) -> Result<(), ServiceError> {
    let owner = users::find_by_id(tx, user)
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    mail_outbox::enqueue(tx, user, kind, &owner.email).await?;
    Ok(())
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
        let candidates = totp::recovery_candidates(keys(app)?, user, code);
        return match mfa::use_recovery_code(client, user, &candidates).await? {
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
/// Needs the account's password: an access token alone (a stolen one) cannot bind a
/// second factor of someone else's to the account.
pub async fn enroll(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    password: Option<SecretString>,
) -> Result<Enrolment, ServiceError> {
    let keys = keys(app)?;
    let client = app.db().await?;
    accounts::ensure_current(&**client, caller).await?;
    let user = users::find_by_id(&**client, caller.id)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or(ServiceError::InvalidToken)?;
    let password = password.filter(|p| !p.expose_secret().is_empty());
    super::users::reauthenticate(app, context, password, &user).await?;
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
    let (codes, digests) = totp::new_recovery_codes(keys(app)?, caller.id);
    mfa::replace_recovery_codes(&*tx, caller.id, &digests).await?;
    users::audit(
        &*tx,
        caller.id,
        "auth.mfa_enabled",
        &context.audit(Some(caller.id)),
        json!({ "factor": "totp" }),
    )
    .await?;
    notify_owner(&*tx, caller.id, MailKind::SecondFactorEnabled).await?;
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
    notify_owner(&*tx, caller.id, MailKind::SecondFactorDisabled).await?;
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
    notify_owner(&*tx, user, MailKind::SecondFactorReset).await?;
    tx.commit().await?;
    tracing::info!(event = "mfa_reset", user_id = %user, actor = %caller.id);
    Ok(())
}

/// Wrong codes a challenge survives; the fifth ends it.
pub const CHALLENGE_MAX_FAILURES: u32 = 5;
/// Wrong codes on an account (from any client) after which each further try must wait,
/// 2, 4, 8... seconds, at most [`SECOND_FACTOR_MAX_WAIT`].
pub const SECOND_FACTOR_FREE_FAILURES: u64 = 3;
pub const SECOND_FACTOR_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(900);
/// How long an account's count lasts after its last wrong code.
const SECOND_FACTOR_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// The owner is mailed at this many wrong codes, and at every further tenth.
pub const SECOND_FACTOR_MAIL_AT: u64 = 5;

/// The second step of a login: a challenge from the first and a code (TOTP or
/// recovery) become a session. Guessing is bounded three ways: a challenge is good for
/// the client it was issued to only and ends after [`CHALLENGE_MAX_FAILURES`] wrong
/// codes; the account counts wrong codes from every client and backs off
/// exponentially; each code also counts as a login attempt of its client until one is
/// right. The owner gets a mail when wrong codes pile up.
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
    if pending.client != client_key {
        // Issued to another address: to this client the challenge does not exist.
        tracing::warn!(event = "mfa_challenge_other_client", user_id = %pending.user_id);
        return Err(ServiceError::InvalidToken);
    }
    let flows = &app.stores.auth_flows;
    let (_, wait) = flows
        .second_factor_backoff(pending.user_id, now_unix())
        .await?;
    if wait > 0 {
        return Err(ServiceError::AccountLocked {
            retry_after_secs: u32::try_from(wait).unwrap_or(u32::MAX),
        });
    }
    accounts::count_attempt(app, &email, &client_key).await?;
    let result = verify_and_start(app, context, challenge, &pending, code).await;
    accounts::settle_attempt(app, &email, &client_key, &result).await;
    match &result {
        Err(ServiceError::InvalidMfaCode) => {
            record_wrong_code(app, challenge, pending.user_id, &email).await;
        }
        Ok(_) => {
            if let Err(e) = flows.clear_second_factor_failures(pending.user_id).await {
                tracing::warn!(event = "mfa_failures_not_cleared", error = %e);
            }
        }
        Err(_) => {}
    }
    result
}

/// A wrong code: counted on the challenge (which ends at the fifth) and on the account
/// (which backs off); at [`SECOND_FACTOR_MAIL_AT`] and every tenth after, the owner is
/// mailed. Best effort: the code was refused whatever happens here.
async fn record_wrong_code(app: &AppState, challenge: &str, user_id: Uuid, email: &Email) {
    let flows = &app.stores.auth_flows;
    let on_challenge = flows
        .fail_challenge(challenge, CHALLENGE_MAX_FAILURES)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(event = "mfa_challenge_failure_not_counted", error = %e);
            0
        });
    let on_account = flows
        .record_second_factor_failure(
            user_id,
            now_unix(),
            SECOND_FACTOR_FREE_FAILURES,
            SECOND_FACTOR_MAX_WAIT,
            SECOND_FACTOR_WINDOW,
        )
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(event = "mfa_account_failure_not_counted", error = %e);
            0
        });
    tracing::info!(event = "mfa_code_refused", user_id = %user_id, challenge_failures = on_challenge, account_failures = on_account);
    let mail = on_account == SECOND_FACTOR_MAIL_AT
        || (on_account > SECOND_FACTOR_MAIL_AT
            && (on_account - SECOND_FACTOR_MAIL_AT).is_multiple_of(10));
    if mail {
        let queued = async {
            let client = app.db().await?;
            mail_outbox::enqueue(
                &**client,
                user_id,
                MailKind::SecondFactorFailures,
                email.as_str(),
            )
            .await?;
            Ok::<(), ServiceError>(())
        }
        .await;
        if let Err(e) = queued {
            tracing::warn!(event = "mfa_failure_mail_not_queued", error = %e);
        }
    }
}

async fn verify_and_start(
    app: &AppState,
    context: &RequestContext,
    challenge: &str,
    pending: &Challenge,
    code: &str,
) -> Result<Tokens, ServiceError> {
    let user_id = pending.user_id;
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    let user = users::lock_by_id(&*tx, user_id)
        .await?
        .filter(|u| u.can_sign_in())
        .ok_or(ServiceError::InvalidToken)?;
    // A password change or reset since the challenge was issued ends it: the password
    // that earned it is no longer the account's.
    if credential_digest(&user.password_hash) != pending.credential {
        let _ = app.stores.auth_flows.take_challenge(challenge).await;
        tracing::info!(event = "mfa_challenge_stale", user_id = %user_id);
        return Err(ServiceError::InvalidToken);
    }
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
    accounts::start_session(
        app,
        context,
        &mut client,
        user_id,
        &user.password_hash,
        method,
    )
    .await
}
