//! Email verification and password reset. Tokens are created by the mailer when it
//! sends a mail (only their SHA-256 digests are stored); these use cases take them back.
//! Requests that make mail go out (resend, reset) answer the same for known and unknown
//! addresses and are limited per email and per client address.

use chrono::Utc;
use common::domain::email::Email;
use common::domain::registration::{email_field, FieldError};
use common::events::user::UserEventType;
use common::store::account_tokens::{self, Purpose};
use common::store::mail_outbox::{self, MailKind};
use common::store::sessions;
use common::store::user_events;
use common::store::users::{self, UserRecord};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{accounts, ServiceError};
use crate::caller::RequestContext;
use crate::state::AppState;

/// The digest a mailed token is stored as.
pub fn token_digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub(crate) fn parse_token(token: Option<&str>) -> Result<Vec<u8>, ServiceError> {
    match token.map(str::trim) {
        Some(t) if !t.is_empty() && t.len() <= 256 => Ok(token_digest(t)),
        Some(_) => Err(ServiceError::invalid("token", "must be 1-256 characters")),
        None => Err(ServiceError::invalid("token", "is required")),
    }
}

pub(crate) fn parse_email(email: Option<&str>) -> Result<Email, ServiceError> {
    let mut errors = Vec::new();
    email_field(&mut errors, email).ok_or(ServiceError::Invalid(errors))
}

/// When a mail that a request asks for may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailPace {
    /// Within the recipient's limit: at once.
    Now,
    /// Beyond it: not before this long, and only if no mail of the same kind still
    /// waits for the recipient (requests in between are folded into that one).
    After(std::time::Duration),
}

impl MailPace {
    /// `None` for at once, else the wait before the (coalesced) mail.
    pub fn wait(self) -> Option<std::time::Duration> {
        match self {
            MailPace::Now => None,
            MailPace::After(wait) => Some(wait),
        }
    }
}

/// The first wait beyond a recipient's limit; each further request doubles it, up to the
/// limit's window.
const PACE_BASE: std::time::Duration = std::time::Duration::from_secs(60);

/// Counts a mail to `recipient` against the one per-recipient limit that every mail a
/// request can cause shares (reset, verification resend, email-change verification).
/// Beyond the limit the mail is slowed down, never refused: whoever floods an address
/// cannot keep its owner from getting a working link, only make it come later.
pub async fn pace_for_recipient(app: &AppState, recipient: &str) -> Result<MailPace, ServiceError> {
    let limits = &app.accounts.mail_limits;
    let (n, _) = app
        .stores
        .auth_flows
        .count_request("recipient", recipient, limits.window)
        .await?;
    let Some(excess) = n.checked_sub(limits.per_email).filter(|e| *e > 0) else {
        return Ok(MailPace::Now);
    };
    let doubled = PACE_BASE.saturating_mul(1u32 << (excess - 1).min(16));
    Ok(MailPace::After(doubled.min(limits.window.max(PACE_BASE))))
}

/// Counts a mail request against the client's limit (429 beyond it, whoever the address
/// belongs to) and the recipient's (which slows the mail down instead).
pub(crate) async fn limit_mail_request(
    app: &AppState,
    kind: &str,
    email: &Email,
    context: &RequestContext,
) -> Result<MailPace, ServiceError> {
    let limits = &app.accounts.mail_limits;
    let client = accounts::attempt_client(context);
    let ip_kind = format!("{kind}-ip");
    let (n_ip, ttl_ip) = app
        .stores
        .auth_flows
        .count_request(&ip_kind, &client, limits.window)
        .await?;
    if n_ip > limits.per_ip {
        tracing::info!(event = "mail_request_limited", kind, by = "client");
        return Err(ServiceError::RateLimited {
            retry_after_secs: u32::try_from(ttl_ip).unwrap_or(u32::MAX),
        });
    }
    let pace = pace_for_recipient(app, email.as_str()).await?;
    if let MailPace::After(wait) = pace {
        tracing::info!(event = "mail_request_slowed", kind, email = %email.masked(), wait_secs = wait.as_secs());
    }
    Ok(pace)
}

/// Follows a verification link: the account's address (or the new one it asked for)
/// is verified. A new address replaces the old one only now.
pub async fn verify_email(
    app: &AppState,
    context: &RequestContext,
    token: Option<&str>,
) -> Result<UserRecord, ServiceError> {
    let digest = parse_token(token)?;
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    let presented = account_tokens::lock(&*tx, &digest, Purpose::VerifyEmail)
        .await?
        .filter(|t| t.usable(Utc::now()))
        .ok_or(ServiceError::LinkTokenInvalid)?;
    let before = users::lock_by_id(&*tx, presented.user_id)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or(ServiceError::LinkTokenInvalid)?;
    // Another account took the address since the link was sent: the link simply no
    // longer works, like any stale link (a 409 would tell that the address has an account).
    let user = match users::verify_email(&*tx, before.id, &presented.email).await {
        Ok(user) => user.ok_or(ServiceError::LinkTokenInvalid)?,
        Err(e) => match ServiceError::from(e) {
            ServiceError::EmailTaken => {
                tracing::info!(event = "email_verification_address_taken", user_id = %before.id);
                return Err(ServiceError::LinkTokenInvalid);
            }
            other => return Err(other),
        },
    };
    account_tokens::use_all(&*tx, user.id, Purpose::VerifyEmail).await?;
    let changed = before.email != user.email;
    if changed {
        // Reset links went to the old address.
        account_tokens::use_all(&*tx, user.id, Purpose::ResetPassword).await?;
    }
    let event = context
        .event(UserEventType::EmailVerified, user.id, user.version, None)
        .email(user.email.as_str());
    user_events::append(&*tx, &[event]).await?;
    users::audit(
        &*tx,
        user.id,
        "user.email_verified",
        &context.audit(Some(user.id)),
        json!({ "emailChanged": changed }),
    )
    .await?;
    tx.commit().await?;
    if changed {
        super::committed::forget_old_email(app, &before.email).await;
    }
    tracing::info!(event = "email_verified", user_id = %user.id, changed);
    Ok(user)
}

/// Sends the verification mail again, to a live unverified account of this address.
pub async fn resend_verification(
    app: &AppState,
    context: &RequestContext,
    email: Option<&str>,
) -> Result<(), ServiceError> {
    let email = parse_email(email)?;
    let pace = limit_mail_request(app, "verify", &email, context).await?;
    let client = app.db().await?;
    let queued = mail_outbox::enqueue_for_address(
        &**client,
        email.as_str(),
        MailKind::VerifyEmail,
        pace.wait(),
    )
    .await?;
    tracing::info!(event = "verification_resend_requested", email = %email.masked(), queued);
    Ok(())
}

/// Asks for a password-reset mail. Known and unknown addresses take the same path (one
/// statement that queues the mail only for a live account) and get the same answer.
pub async fn request_password_reset(
    app: &AppState,
    context: &RequestContext,
    email: Option<&str>,
) -> Result<(), ServiceError> {
    let email = parse_email(email)?;
    let pace = limit_mail_request(app, "reset", &email, context).await?;
    let client = app.db().await?;
    let queued = mail_outbox::enqueue_for_address(
        &**client,
        email.as_str(),
        MailKind::PasswordReset,
        pace.wait(),
    )
    .await?;
    tracing::info!(event = "password_reset_requested", email = %email.masked(), queued);
    Ok(())
}

/// Sets a new password with a reset token: every session ends, the owner is told by
/// mail, the change is audited.
pub async fn confirm_password_reset(
    app: &AppState,
    context: &RequestContext,
    token: Option<&str>,
    new_password: Option<SecretString>,
) -> Result<(), ServiceError> {
    let mut errors: Vec<FieldError> = Vec::new();
    let digest = match parse_token(token) {
        Ok(d) => Some(d),
        Err(ServiceError::Invalid(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(e) => return Err(e),
    };
    match &new_password {
        None => errors.push(FieldError::new("newPassword", "is required")),
        Some(p) if p.expose_secret().chars().count() > 128 => errors.push(FieldError::new(
            "newPassword",
            "must be at most 128 characters",
        )),
        Some(p) => errors.extend(app.accounts.password_policy.check("newPassword", p).err()),
    }
    let (Some(digest), Some(password), true) = (digest, new_password, errors.is_empty()) else {
        return Err(ServiceError::Invalid(errors));
    };
    let mut client = app.db().await?;
    // The token is checked before the password is hashed: an invalid token costs no hash.
    account_tokens::lock(&**client, &digest, Purpose::ResetPassword)
        .await?
        .filter(|t| t.usable(Utc::now()))
        .ok_or(ServiceError::LinkTokenInvalid)?;
    let hash = app
        .accounts
        .hashing
        .run(move |h| h.hash(&password))
        .await?
        .map_err(|e| ServiceError::Internal(e.into()))?;
    let tx = client.transaction().await?;
    let presented = account_tokens::lock(&*tx, &digest, Purpose::ResetPassword)
        .await?
        .filter(|t| t.usable(Utc::now()))
        .ok_or(ServiceError::LinkTokenInvalid)?;
    // The link was sent to an address; it works only while the account still has it.
    let user = users::lock_by_id(&*tx, presented.user_id)
        .await?
        .filter(|u| !u.is_deleted() && u.email == presented.email)
        .ok_or(ServiceError::LinkTokenInvalid)?;
    users::set_password_hash(&*tx, user.id, &hash).await?;
    account_tokens::use_all(&*tx, user.id, Purpose::ResetPassword).await?;
    let revoked = sessions::revoke_user(&*tx, user.id, None).await?;
    users::audit(
        &*tx,
        user.id,
        "user.password_reset",
        &context.audit(Some(user.id)),
        json!({ "sessionsEnded": revoked.len() }),
    )
    .await?;
    mail_outbox::enqueue(&*tx, user.id, MailKind::PasswordChanged, &user.email).await?;
    let event = context.event(
        UserEventType::PasswordChanged,
        user.id,
        user.version + 1,
        None,
    );
    user_events::append(&*tx, &[event]).await?;
    tx.commit().await?;
    if let Err(e) = accounts::revoke_access(app, &revoked).await {
        tracing::error!(event = "access_tokens_not_revoked", sessions = revoked.len(), error = %crate::error::error_chain(&e));
    }
    if let Ok(email) = Email::parse(&user.email) {
        // The owner proved it reads the mailbox: a lockout from guessing ends too.
        if let Err(e) = app.stores.login_attempts.forget_email(&email).await {
            tracing::warn!(event = "login_attempts_not_cleared", error = %e);
        }
    }
    tracing::info!(event = "password_reset", user_id = %user.id, sessions_ended = revoked.len());
    Ok(())
}

/// An admin marks a user's current address verified (the console's "verify"): the
/// owner proved it some other way. Outstanding verification links are used up.
pub async fn admin_verify_email(
    app: &AppState,
    caller: &crate::caller::Caller,
    context: &RequestContext,
    user: uuid::Uuid,
) -> Result<UserRecord, ServiceError> {
    if !caller.is_admin() {
        return Err(ServiceError::Forbidden);
    }
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    super::accounts::ensure_current(&*tx, caller).await?;
    let before = users::lock_by_id(&*tx, user)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or(ServiceError::NotFound("User"))?;
    if before.email_verified_at.is_some() {
        return Ok(before);
    }
    let user = users::verify_email(&*tx, before.id, before.email.as_str())
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    account_tokens::use_all(&*tx, user.id, Purpose::VerifyEmail).await?;
    let event = context
        .event(
            UserEventType::EmailVerified,
            user.id,
            user.version,
            Some(caller.id),
        )
        .email(user.email.as_str());
    user_events::append(&*tx, &[event]).await?;
    users::audit(
        &*tx,
        user.id,
        "user.email_verified",
        &context.audit(Some(caller.id)),
        json!({ "emailChanged": false, "by": "admin" }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "email_verified", user_id = %user.id, actor = %caller.id);
    Ok(user)
}
