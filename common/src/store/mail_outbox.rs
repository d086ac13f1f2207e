//! The mail outbox: mails to send, written in the transaction of the change that calls
//! for them, claimed by the mailer with `FOR UPDATE SKIP LOCKED` (several consumers may
//! run it) and retried with backoff until sent or given up.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// The kinds of mail Registrar sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// After a registration completes: a link that verifies the address.
    VerifyEmail,
    /// After an email change: a link to the new address; the change waits for it.
    VerifyNewEmail,
    /// After an email change: a notice to the old address.
    EmailChangeNotice,
    /// A password-reset link.
    PasswordReset,
    /// A notice that the password was changed (by a reset).
    PasswordChanged,
    /// A notice that wrong second-factor codes keep coming after the right password.
    SecondFactorFailures,
    /// A notice that someone tried to register with the address of this account.
    RegistrationAttempt,
    /// A notice that two-factor sign-in was turned on.
    SecondFactorEnabled,
    /// A notice that the owner turned two-factor sign-in off.
    SecondFactorDisabled,
    /// A notice that an admin removed the second factor.
    SecondFactorReset,
    /// A notice to an admin that a webhook endpoint they registered was disabled.
    WebhookDisabled,
    /// A passwordless sign-in: a link and a 6-digit code.
    SignIn,
}

impl MailKind {
    pub const ALL: [MailKind; 12] = [
        MailKind::VerifyEmail,
        MailKind::VerifyNewEmail,
        MailKind::EmailChangeNotice,
        MailKind::PasswordReset,
        MailKind::PasswordChanged,
        MailKind::SecondFactorFailures,
        MailKind::RegistrationAttempt,
        MailKind::SecondFactorEnabled,
        MailKind::SecondFactorDisabled,
        MailKind::SecondFactorReset,
        MailKind::WebhookDisabled,
        MailKind::SignIn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::VerifyEmail => "verify_email",
            MailKind::VerifyNewEmail => "verify_new_email",
            MailKind::EmailChangeNotice => "email_change_notice",
            MailKind::PasswordReset => "password_reset",
            MailKind::PasswordChanged => "password_changed",
            MailKind::SecondFactorFailures => "second_factor_failures",
            MailKind::RegistrationAttempt => "registration_attempt",
            MailKind::SecondFactorEnabled => "second_factor_enabled",
            MailKind::SecondFactorDisabled => "second_factor_disabled",
            MailKind::SecondFactorReset => "second_factor_reset",
            MailKind::WebhookDisabled => "webhook_disabled",
            MailKind::SignIn => "sign_in",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Queues one mail.
pub async fn enqueue(
    client: &impl GenericClient,
    user_id: Uuid,
    kind: MailKind,
    recipient: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO mail_outbox (id, user_id, kind, recipient) VALUES ($1, $2, $3, $4)",
            &[&Uuid::now_v7(), &user_id, &kind.as_str(), &recipient],
        )
        .await?;
    Ok(())
}

/// Queues a mail of `kind` to `email` when it belongs to a live account (for
/// `VerifyEmail`: a live, unverified one), in one statement whose work does not depend
/// on whether it does: no second round trip for a known address. Returns whether a mail
/// was queued; callers must not tell.
pub async fn enqueue_for_address(
    client: &impl GenericClient,
    email: &str,
    kind: MailKind,
    paced: Option<Duration>,
) -> Result<bool, tokio_postgres::Error> {
    let n = match paced {
        None => {
            client
                .execute(
                    "INSERT INTO mail_outbox (id, user_id, kind, recipient)
                     SELECT $1, id, $3, email FROM users
                     WHERE email = $2 AND deleted_at IS NULL
                       AND ($3 <> 'verify_email' OR email_verified_at IS NULL)",
                    &[&Uuid::now_v7(), &email, &kind.as_str()],
                )
                .await?
        }
        Some(wait) => {
            client
                .execute(
                    "INSERT INTO mail_outbox (id, user_id, kind, recipient, next_attempt_at)
                     SELECT $1, u.id, $3, u.email, now() + make_interval(secs => $4) FROM users u
                     WHERE u.email = $2 AND u.deleted_at IS NULL
                       AND ($3 <> 'verify_email' OR u.email_verified_at IS NULL)
                       AND NOT EXISTS (SELECT 1 FROM mail_outbox m
                           WHERE m.user_id = u.id AND m.kind = $3 AND m.recipient = u.email
                             AND m.sent_at IS NULL AND m.failed_at IS NULL)",
                    &[&Uuid::now_v7(), &email, &kind.as_str(), &seconds(wait)],
                )
                .await?
        }
    };
    Ok(n == 1)
}

/// Queues a mail of `kind` for `user` to `recipient` not before `wait` from now, unless
/// one of the same kind to the same recipient still waits (it stands for both). Returns
/// whether a mail was queued.
pub async fn enqueue_paced(
    client: &impl GenericClient,
    user_id: Uuid,
    kind: MailKind,
    recipient: &str,
    wait: Duration,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "INSERT INTO mail_outbox (id, user_id, kind, recipient, next_attempt_at)
             SELECT $1, $2, $3, $4, now() + make_interval(secs => $5)
             WHERE NOT EXISTS (SELECT 1 FROM mail_outbox m
                 WHERE m.user_id = $2 AND m.kind = $3 AND m.recipient = $4
                   AND m.sent_at IS NULL AND m.failed_at IS NULL)",
            &[
                &Uuid::now_v7(),
                &user_id,
                &kind.as_str(),
                &recipient,
                &seconds(wait),
            ],
        )
        .await?;
    Ok(n == 1)
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Queues a notice of `kind` to the live account of `email`, unless one of the same kind
/// went to it within `quiet`: a stranger repeating the attempt cannot flood the owner.
/// Returns whether a mail was queued.
pub async fn enqueue_notice_once(
    client: &impl GenericClient,
    email: &str,
    kind: MailKind,
    quiet: Duration,
) -> Result<bool, tokio_postgres::Error> {
    let quiet_secs = f64::from(u32::try_from(quiet.as_secs()).unwrap_or(u32::MAX));
    let n = client
        .execute(
            "INSERT INTO mail_outbox (id, user_id, kind, recipient)
             SELECT $1, u.id, $3, u.email FROM users u
             WHERE u.email = $2 AND u.deleted_at IS NULL
               AND NOT EXISTS (
                 SELECT 1 FROM mail_outbox m
                 WHERE m.user_id = u.id AND m.kind = $3
                   AND m.created_at > now() - make_interval(secs => $4))",
            &[&Uuid::now_v7(), &email, &kind.as_str(), &quiet_secs],
        )
        .await?;
    Ok(n == 1)
}

/// A claimed mail: the claim lasts `lease`, after which another mailer may take it.
#[derive(Debug, Clone)]
pub struct ClaimedMail {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: Option<MailKind>,
    pub recipient: String,
    /// Including this one.
    pub attempts: i32,
}

/// Claims up to `limit` due mails, oldest first, for `lease`.
pub async fn claim(
    client: &impl GenericClient,
    limit: i64,
    lease: Duration,
) -> Result<Vec<ClaimedMail>, tokio_postgres::Error> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "UPDATE mail_outbox SET attempts = attempts + 1,
                    next_attempt_at = now() + make_interval(secs => $2::bigint / 1000.0)
             WHERE id IN (
                 SELECT id FROM mail_outbox
                 WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
                 ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, user_id, kind, recipient, attempts",
            &[&limit, &lease_ms],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ClaimedMail {
            id: r.get(0),
            user_id: r.get(1),
            kind: MailKind::parse(r.get(2)),
            recipient: r.get(3),
            attempts: r.get(4),
        })
        .collect())
}

pub async fn mark_sent(client: &impl GenericClient, id: Uuid) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE mail_outbox SET sent_at = now(), last_error = NULL WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(())
}

/// Records a failed attempt: the mail is due again after `retry_in`, or given up
/// (`failed_at`) when `give_up`.
pub async fn mark_failed(
    client: &impl GenericClient,
    id: Uuid,
    error: &str,
    retry_in: Duration,
    give_up: bool,
) -> Result<(), tokio_postgres::Error> {
    let retry_ms = i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX);
    client
        .execute(
            "UPDATE mail_outbox SET last_error = $2,
                    next_attempt_at = now() + make_interval(secs => $3::bigint / 1000.0),
                    failed_at = CASE WHEN $4 THEN now() END
             WHERE id = $1",
            &[&id, &error, &retry_ms, &give_up],
        )
        .await?;
    Ok(())
}

/// What the outbox holds, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OutboxStats {
    /// Mails not sent yet and not given up.
    pub unsent: i64,
    /// Age of the oldest of them, in seconds (0 when none).
    pub oldest_unsent_secs: f64,
    /// Mails given up after `MAIL_MAX_ATTEMPTS`.
    pub failed: i64,
}

pub async fn stats(client: &impl GenericClient) -> Result<OutboxStats, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE sent_at IS NULL AND failed_at IS NULL),
                    COALESCE(EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE sent_at IS NULL AND failed_at IS NULL)), 0)::float8,
                    count(*) FILTER (WHERE failed_at IS NOT NULL)
             FROM mail_outbox",
            &[],
        )
        .await?;
    Ok(OutboxStats {
        unsent: row.get(0),
        oldest_unsent_secs: row.get(1),
        failed: row.get(2),
    })
}

/// Deletes mails sent before `before`; returns how many.
pub async fn purge_sent(
    client: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute("DELETE FROM mail_outbox WHERE sent_at < $1", &[&before])
        .await
}
