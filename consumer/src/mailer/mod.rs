//! The mailer: sends what the mail outbox holds, at least once. It claims due mails
//! with `FOR UPDATE SKIP LOCKED` (every consumer replica may run it), creates a mail's
//! single-use token only when sending it (the database keeps its SHA-256 digest, the
//! mail the token), renders the templates (text and HTML) and sends over pooled SMTP.
//! A failed send is retried with exponential backoff; after `MAIL_MAX_ATTEMPTS` the mail
//! is marked failed, logged and counted, never dropped silently. Requests never wait for
//! it: they only write outbox rows.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::config::ConfigError;
use common::store::account_tokens::{self, Purpose};
use common::store::mail_outbox::{self, ClaimedMail, MailKind};
use common::store::users::{self, UserRecord};
use futures::StreamExt;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use prometheus::Registry;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

mod config;
mod templates;

pub use config::{MailConfig, MailMetrics};
pub use templates::{Rendered, Templates};

/// Mails claimed at once.
const CLAIM_BATCH: i64 = 32;
/// Mails sent at once.
const SEND_CONCURRENCY: usize = 4;
/// How long a claim holds before another mailer may take the mail (a crashed sender).
const CLAIM_LEASE: Duration = Duration::from_secs(120);
/// Longest wait between two attempts of one mail.
const BACKOFF_MAX: Duration = Duration::from_secs(3600);
/// Sent mails are kept this long (for support), then purged.
const SENT_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("template: {0}")]
    Template(#[from] minijinja::Error),
    #[error("address: {0}")]
    Address(#[from] lettre::address::AddressError),
    #[error("message: {0}")]
    Message(#[from] lettre::error::Error),
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

pub struct Mailer {
    pg: deadpool_postgres::Pool,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    templates: Templates,
    from: Mailbox,
    public_url: String,
    config: MailConfig,
    metrics: Arc<MailMetrics>,
}

/// What became of one claimed mail.
enum Delivery {
    Sent,
    /// No longer called for (the user is gone, the address changed, verified already).
    Skipped(&'static str),
}

impl Mailer {
    pub fn new(
        config: &MailConfig,
        pg: deadpool_postgres::Pool,
        registry: &Registry,
    ) -> Result<Self, ConfigError> {
        common::store::tls::install_crypto_provider();
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(config.smtp_url.expose_secret())
                .map_err(|e| ConfigError::new("SMTP_URL", e))?
                .timeout(Some(Duration::from_millis(config.smtp_timeout_ms.max(1))))
                .build();
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| ConfigError::new("MAIL_FROM", format!("is not a mailbox: {e}")))?;
        if !(config.public_url.starts_with("http://") || config.public_url.starts_with("https://"))
        {
            return Err(ConfigError::new(
                "PUBLIC_URL",
                "must be an http:// or https:// URL",
            ));
        }
        Ok(Self {
            pg,
            transport,
            templates: Templates::load(config.template_dir.as_deref())?,
            from,
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            config: config.clone(),
            metrics: MailMetrics::new(registry),
        })
    }

    /// Polls the outbox until `shutdown`; a mail in flight is finished first.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.config.poll_ms.max(10));
        let mut last_upkeep = std::time::Instant::now() - Duration::from_secs(3600);
        while !shutdown.is_cancelled() {
            let worked = match self.tick().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(event = "mailer_poll_failed", error = %e);
                    false
                }
            };
            if last_upkeep.elapsed() >= Duration::from_secs(10) {
                last_upkeep = std::time::Instant::now();
                self.upkeep().await;
            }
            if !worked {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(poll) => {}
                }
            }
        }
    }

    /// Claims and sends one batch; returns how many mails it handled.
    async fn tick(&self) -> Result<usize, SendError> {
        let claimed = {
            let client = self.pg.get().await?;
            mail_outbox::claim(&**client, CLAIM_BATCH, CLAIM_LEASE).await?
        };
        let n = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(SEND_CONCURRENCY, |mail| self.handle(mail))
            .await;
        Ok(n)
    }

    async fn handle(&self, mail: ClaimedMail) {
        let kind = mail.kind.map_or("unknown", MailKind::as_str);
        match self.deliver(&mail).await {
            Ok(delivery) => {
                if let Delivery::Skipped(reason) = delivery {
                    tracing::info!(event = "mail_skipped", kind, mail_id = %mail.id, reason);
                } else {
                    self.metrics.sent.with_label_values(&[kind]).inc();
                    tracing::info!(event = "mail_sent", kind, mail_id = %mail.id, user_id = %mail.user_id, attempts = mail.attempts);
                }
                if let Err(e) = self
                    .mark(|c| Box::pin(async move { mail_outbox::mark_sent(c, mail.id).await }))
                    .await
                {
                    // Sent but not marked: it will be sent again after the lease (at least once).
                    tracing::warn!(event = "mail_not_marked_sent", mail_id = %mail.id, error = %e);
                }
            }
            Err(e) => {
                let give_up = mail.attempts >= self.config.max_attempts.max(1);
                let error = e.to_string();
                if give_up {
                    self.metrics.given_up.with_label_values(&[kind]).inc();
                    tracing::error!(event = "mail_given_up", kind, mail_id = %mail.id, user_id = %mail.user_id, attempts = mail.attempts, error = %error);
                } else {
                    self.metrics.failures.with_label_values(&[kind]).inc();
                    tracing::warn!(event = "mail_send_failed", kind, mail_id = %mail.id, attempts = mail.attempts, error = %error);
                }
                let retry_in = backoff(mail.attempts);
                let id = mail.id;
                if let Err(e) = self
                    .mark(|c| {
                        Box::pin(async move {
                            mail_outbox::mark_failed(c, id, &error, retry_in, give_up).await
                        })
                    })
                    .await
                {
                    tracing::warn!(event = "mail_failure_not_recorded", mail_id = %id, error = %e);
                }
            }
        }
    }

    async fn mark<F>(&self, f: F) -> Result<(), SendError>
    where
        F: for<'c> FnOnce(
            &'c tokio_postgres::Client,
        )
            -> futures::future::BoxFuture<'c, Result<(), tokio_postgres::Error>>,
    {
        let client = self.pg.get().await?;
        f(&client).await?;
        Ok(())
    }

    async fn deliver(&self, mail: &ClaimedMail) -> Result<Delivery, SendError> {
        let Some(kind) = mail.kind else {
            return Ok(Delivery::Skipped("unknown kind"));
        };
        let client = self.pg.get().await?;
        let Some(user) = users::find_by_id(&**client, mail.user_id)
            .await?
            .filter(|u| !u.is_deleted())
        else {
            return Ok(Delivery::Skipped("user deleted"));
        };
        if let Some(reason) = stale(kind, &user, &mail.recipient) {
            return Ok(Delivery::Skipped(reason));
        }
        let link = match token_purpose(kind) {
            Some((purpose, path)) => {
                let ttl = match purpose {
                    Purpose::VerifyEmail => self.config.verification_ttl_secs,
                    Purpose::ResetPassword => self.config.reset_ttl_secs,
                    Purpose::SignIn | Purpose::SignInCode => self.config.sign_in_ttl_secs,
                };
                let token = new_token();
                if !account_tokens::insert(
                    &**client,
                    &Sha256::digest(token.expose_secret().as_bytes()),
                    user.id,
                    purpose,
                    &mail.recipient,
                    expires_in(ttl),
                )
                .await?
                {
                    return Ok(Delivery::Skipped("user deleted"));
                }
                Some(format!(
                    "{}/{path}?token={}",
                    self.public_url,
                    token.expose_secret()
                ))
            }
            None => None,
        };
        // A sign-in mail also carries a 6-digit code; it replaces the codes before it.
        let code = if kind == MailKind::SignIn {
            let code = new_code();
            account_tokens::delete_all(&**client, user.id, Purpose::SignInCode).await?;
            account_tokens::insert(
                &**client,
                &account_tokens::code_digest(&mail.recipient, code.expose_secret()),
                user.id,
                Purpose::SignInCode,
                &mail.recipient,
                expires_in(self.config.sign_in_ttl_secs),
            )
            .await?;
            Some(code)
        } else {
            None
        };
        drop(client);
        let name = user
            .first_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "there".to_owned());
        let rendered = self.templates.render(
            kind,
            &templates::MailValues {
                recipient: &mail.recipient,
                name: &name,
                link: link.as_deref(),
                code: code.as_ref().map(|c| c.expose_secret()),
                valid_hours: self.config.verification_ttl_secs / 3600,
                valid_minutes: if kind == MailKind::SignIn {
                    self.config.sign_in_ttl_secs / 60
                } else {
                    self.config.reset_ttl_secs / 60
                },
            },
        )?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, mail.recipient.parse()?))
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))?;
        self.transport.send(message).await?;
        Ok(Delivery::Sent)
    }

    /// Outbox gauges, and purging of sent mails and expired tokens.
    async fn upkeep(&self) {
        let result: Result<(), SendError> = async {
            let client = self.pg.get().await?;
            let stats = mail_outbox::stats(&**client).await?;
            self.metrics.unsent.set(stats.unsent);
            self.metrics
                .oldest_unsent
                .set(stats.oldest_unsent_secs as i64);
            self.metrics.failed.set(stats.failed);
            let now = chrono::Utc::now();
            mail_outbox::purge_sent(&**client, now - SENT_RETENTION).await?;
            account_tokens::purge_expired(&**client, now - chrono::Duration::days(1)).await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(event = "mailer_upkeep_failed", error = %e);
        }
    }
}

/// Why a queued mail is no longer called for, if it is not.
fn stale(kind: MailKind, user: &UserRecord, recipient: &str) -> Option<&'static str> {
    match kind {
        MailKind::VerifyEmail if user.email != recipient => Some("address changed"),
        MailKind::VerifyEmail if user.email_verified_at.is_some() => Some("verified already"),
        MailKind::VerifyNewEmail if user.pending_email.as_deref() != Some(recipient) => {
            Some("email change withdrawn")
        }
        MailKind::PasswordReset | MailKind::SignIn if user.email != recipient => {
            Some("address changed")
        }
        MailKind::SignIn if user.disabled_at.is_some() => Some("account deactivated"),
        _ => None,
    }
}

/// The token a kind of mail carries: its purpose and the frontend path of its link.
fn token_purpose(kind: MailKind) -> Option<(Purpose, &'static str)> {
    match kind {
        MailKind::VerifyEmail | MailKind::VerifyNewEmail => {
            Some((Purpose::VerifyEmail, "verify-email"))
        }
        MailKind::PasswordReset => Some((Purpose::ResetPassword, "reset-password")),
        MailKind::SignIn => Some((Purpose::SignIn, "sign-in")),
        MailKind::EmailChangeNotice
        | MailKind::PasswordChanged
        | MailKind::SecondFactorFailures
        | MailKind::SecondFactorEnabled
        | MailKind::SecondFactorDisabled
        | MailKind::SecondFactorReset
        | MailKind::WebhookDisabled
        | MailKind::RegistrationAttempt => None,
    }
}

fn expires_in(ttl_secs: u64) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::seconds(i64::try_from(ttl_secs).unwrap_or(86_400))
}

/// A 6-digit code, uniform over 000000-999999.
fn new_code() -> SecretString {
    use rand::Rng;
    SecretString::from(format!(
        "{:06}",
        rand::rngs::OsRng.gen_range(0..1_000_000u32)
    ))
}

fn new_token() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// Wait before the next attempt: 5 s, 10 s, 20 s… up to an hour.
fn backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    Duration::from_secs(5u64.saturating_mul(1u64 << exp)).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }
}
