//! Passwordless email: a mail with a sign-in link and a 6-digit code, each single use
//! for `SIGN_IN_MAIL_TTL_SECS` (10 minutes); and a sign-up that brings no password at
//! all (the account then signs in by mail).
//!
//! A request for a mail takes the same path for a known and an unknown address (one
//! statement that queues the mail only for a live account) and gets the same answer; it
//! counts against the client's limit (429) and the address's (the mail is slowed down).
//! The mailer makes the link's token and the code when it sends them, so neither is
//! ever stored in the clear. Wrong codes count against the account's login lockout, as
//! wrong passwords do: 6 digits are guessable only at that pace.

use chrono::Utc;
use common::domain::registration::{FieldError, Profile};
use common::store::account_tokens::{self, Purpose};
use common::store::mail_outbox::{self, MailKind};
use common::store::users::{self, UserRecord};
use serde_json::json;

use super::accounts::{self, LoginOutcome};
use super::email::{limit_mail_request, parse_email, parse_token};
use super::registration::{self, Submitted};
use super::ServiceError;
use crate::caller::RequestContext;
use crate::state::AppState;

/// Asks for a sign-in mail (link and code).
pub async fn request_sign_in_mail(
    app: &AppState,
    context: &RequestContext,
    email: Option<&str>,
) -> Result<(), ServiceError> {
    let email = parse_email(email)?;
    let pace = limit_mail_request(app, "sign-in", &email, context).await?;
    let client = app.db().await?;
    let queued =
        mail_outbox::enqueue_for_address(&**client, email.as_str(), MailKind::SignIn, pace.wait())
            .await?;
    tracing::info!(event = "sign_in_mail_requested", email = %email.masked(), queued);
    Ok(())
}

/// How a mailed sign-in comes back.
pub enum MailProof<'a> {
    /// The link's token.
    Link(Option<&'a str>),
    /// The address and the code typed in.
    Code {
        email: Option<&'a str>,
        code: Option<&'a str>,
    },
}

fn parse_code(code: Option<&str>) -> Result<&str, ServiceError> {
    match code.map(str::trim) {
        Some(c) if c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()) => Ok(c),
        Some(_) => Err(ServiceError::invalid(
            "code",
            "must be the 6 digits of the mail",
        )),
        None => Err(ServiceError::invalid("code", "is required")),
    }
}

/// Signs in with a mailed link or code: a session, or the second-factor challenge when
/// the account has one. The mailbox is proven, so an unverified address becomes
/// verified. Every token of the mail (link and code) is used up at once.
pub async fn sign_in(
    app: &AppState,
    context: &RequestContext,
    proof: MailProof<'_>,
) -> Result<LoginOutcome, ServiceError> {
    let (digest, purpose, lockout) = match proof {
        MailProof::Link(token) => (parse_token(token)?, Purpose::SignIn, None),
        MailProof::Code { email, code } => {
            let (email, code) = match (parse_email(email), parse_code(code)) {
                (Ok(e), Ok(c)) => (e, c),
                (e, c) => {
                    let mut errors: Vec<FieldError> = Vec::new();
                    for err in [e.err(), c.err()].into_iter().flatten() {
                        if let ServiceError::Invalid(f) = err {
                            errors.extend(f);
                        }
                    }
                    return Err(ServiceError::Invalid(errors));
                }
            };
            let digest = account_tokens::code_digest(email.as_str(), code);
            (digest, Purpose::SignInCode, Some(email))
        }
    };
    let attempts_by = accounts::attempt_client(context);
    if let Some(email) = &lockout {
        accounts::count_attempt(app, email, &attempts_by).await?;
    }
    let result = verify(app, context, &digest, purpose).await;
    if let Some(email) = &lockout {
        accounts::settle_attempt(app, email, &attempts_by, &result).await;
    }
    let method = match purpose {
        Purpose::SignInCode => "email_code",
        _ => "email_link",
    };
    accounts::session_or_second_factor(app, context, &result?, method).await
}

async fn verify(
    app: &AppState,
    context: &RequestContext,
    digest: &[u8],
    purpose: Purpose,
) -> Result<UserRecord, ServiceError> {
    let invalid = || match purpose {
        Purpose::SignInCode => ServiceError::InvalidSignInCode,
        _ => ServiceError::LinkTokenInvalid,
    };
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    let presented = account_tokens::lock(&*tx, digest, purpose)
        .await?
        .filter(|t| t.usable(Utc::now()))
        .ok_or_else(invalid)?;
    // The mail went to an address; it works only while the account still has it.
    let mut user = users::lock_by_id(&*tx, presented.user_id)
        .await?
        .filter(|u| u.can_sign_in() && u.email == presented.email)
        .ok_or_else(invalid)?;
    account_tokens::use_all(&*tx, user.id, Purpose::SignIn).await?;
    account_tokens::use_all(&*tx, user.id, Purpose::SignInCode).await?;
    let verified_now = user.email_verified_at.is_none();
    if verified_now {
        if let Some(verified) = users::verify_email(&*tx, user.id, &presented.email).await? {
            let event = context
                .event(
                    common::events::user::UserEventType::EmailVerified,
                    verified.id,
                    verified.version,
                    None,
                )
                .email(verified.email.as_str());
            common::store::user_events::append(&*tx, &[event]).await?;
            user = verified;
        }
    }
    users::audit(
        &*tx,
        user.id,
        "auth.sign_in_mail_used",
        &context.audit(Some(user.id)),
        json!({ "by": if purpose == Purpose::SignInCode { "code" } else { "link" }, "emailVerified": verified_now }),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// A sign-up without a password: the profile goes through the pipeline like any
/// registration; the account then signs in by mail.
pub async fn sign_up(
    app: &AppState,
    profile: Result<Profile, Vec<FieldError>>,
    password_given: bool,
    idempotency_key: Option<String>,
    request_id: Option<String>,
) -> Result<Submitted, ServiceError> {
    let mut errors = profile.as_ref().err().cloned().unwrap_or_default();
    if password_given {
        errors.push(FieldError::new(
            "password",
            "must be absent: this sign-up has none (use POST /api/v1/users for one with a password)",
        ));
    }
    match profile {
        Ok(profile) if errors.is_empty() => {
            registration::submit_mailbox_registration(app, profile, idempotency_key, request_id)
                .await
        }
        _ => Err(ServiceError::Invalid(errors)),
    }
}
