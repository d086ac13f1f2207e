//! The mailer: sends what the mail outbox holds, at least once. It claims due mails
//! with `FOR UPDATE SKIP LOCKED` (every consumer replica may run it), creates a mail's
//! single-use token only when sending it (the database keeps its SHA-256 digest, the
//! mail the token), renders the templates (text and HTML) and sends over pooled SMTP.
//! A failed send is retried with exponential backoff; after `MAIL_MAX_ATTEMPTS` the mail
//! is marked failed, logged and counted, never dropped silently. Requests never wait for
//! it: they only write outbox rows.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Args;
use common::config::ConfigError;
use common::store::account_tokens::{self, Purpose};
use common::store::mail_outbox::{self, ClaimedMail, MailKind};
use common::store::users::{self, UserRecord};
use futures::StreamExt;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

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

#[derive(Args, Clone, Debug)]
pub struct MailConfig {
    /// Run the mailer in this consumer (any number of replicas may).
    #[arg(long = "mailer", env = "MAILER", default_value_t = true, action = clap::ArgAction::Set)]
    pub enabled: bool,
    /// SMTP server: `smtp://host:port` (plain, development), `smtp://host:587?tls=required`
    /// (STARTTLS), `smtps://host:465` (TLS); credentials as `smtps://user:pass@host`.
    #[arg(
        long = "smtp-url",
        env = "SMTP_URL",
        default_value = "smtp://127.0.0.1:1025",
        hide_env_values = true,
        value_parser = common::config::secret
    )]
    pub smtp_url: SecretString,
    /// The sender of every mail.
    #[arg(
        long = "mail-from",
        env = "MAIL_FROM",
        default_value = "Registrar <no-reply@registrar.invalid>"
    )]
    pub from: String,
    /// Where the frontend lives: links in mails are `<PUBLIC_URL>/verify-email?token=…`
    /// and `<PUBLIC_URL>/reset-password?token=…`.
    #[arg(
        long = "public-url",
        env = "PUBLIC_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub public_url: String,
    /// A directory with templates replacing the built-in ones (same file names:
    /// `<kind>.subject.txt`, `<kind>.txt`, `<kind>.html`, `layout.html`).
    #[arg(long = "mail-template-dir", env = "MAIL_TEMPLATE_DIR")]
    pub template_dir: Option<PathBuf>,
    /// Attempts before a mail is marked failed.
    #[arg(
        long = "mail-max-attempts",
        env = "MAIL_MAX_ATTEMPTS",
        default_value_t = 10
    )]
    pub max_attempts: i32,
    /// How often the outbox is polled, in milliseconds.
    #[arg(long = "mail-poll-ms", env = "MAIL_POLL_MS", default_value_t = 500)]
    pub poll_ms: u64,
    /// Bound on one SMTP exchange, in milliseconds.
    #[arg(
        long = "smtp-timeout-ms",
        env = "SMTP_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub smtp_timeout_ms: u64,
    /// Lifetime of a verification link, in seconds.
    #[arg(
        long = "email-verification-ttl-secs",
        env = "EMAIL_VERIFICATION_TTL_SECS",
        default_value_t = 86_400
    )]
    pub verification_ttl_secs: u64,
    /// Lifetime of a password-reset link, in seconds.
    #[arg(
        long = "password-reset-ttl-secs",
        env = "PASSWORD_RESET_TTL_SECS",
        default_value_t = 1_800
    )]
    pub reset_ttl_secs: u64,
}

/// The mailer's metrics.
pub struct MailMetrics {
    /// `registrar_mail_sent_total{kind}`
    pub sent: IntCounterVec,
    /// `registrar_mail_send_failures_total{kind}`: attempts that failed (retried).
    pub failures: IntCounterVec,
    /// `registrar_mail_given_up_total{kind}`: mails marked failed.
    pub given_up: IntCounterVec,
    /// `registrar_mail_outbox_unsent`
    pub unsent: IntGauge,
    /// `registrar_mail_outbox_oldest_unsent_seconds`
    pub oldest_unsent: IntGauge,
    /// `registrar_mail_outbox_failed`
    pub failed: IntGauge,
}

impl MailMetrics {
    pub fn new(registry: &Registry) -> Arc<Self> {
        let vec = |name: &str, help: &str| {
            let v = IntCounterVec::new(Opts::new(name, help), &["kind"])
                .unwrap_or_else(|e| panic!("{e}"));
            let _ = registry.register(Box::new(v.clone()));
            v
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("{e}"));
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        Arc::new(Self {
            sent: vec(
                "registrar_mail_sent_total",
                "Mails handed to the SMTP server",
            ),
            failures: vec(
                "registrar_mail_send_failures_total",
                "Mail attempts that failed and will be retried",
            ),
            given_up: vec(
                "registrar_mail_given_up_total",
                "Mails marked failed after MAIL_MAX_ATTEMPTS",
            ),
            unsent: gauge(
                "registrar_mail_outbox_unsent",
                "Mails in the outbox not sent yet",
            ),
            oldest_unsent: gauge(
                "registrar_mail_outbox_oldest_unsent_seconds",
                "Age of the oldest unsent mail",
            ),
            failed: gauge(
                "registrar_mail_outbox_failed",
                "Mails given up after MAIL_MAX_ATTEMPTS, still in the outbox",
            ),
        })
    }
}

/// The templates, built in or from `MAIL_TEMPLATE_DIR`.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

const BUILT_IN: &[(&str, &str)] = &[
    ("layout.html", include_str!("../templates/mail/layout.html")),
    (
        "verify_email.subject.txt",
        include_str!("../templates/mail/verify_email.subject.txt"),
    ),
    (
        "verify_email.txt",
        include_str!("../templates/mail/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("../templates/mail/verify_email.html"),
    ),
    (
        "verify_new_email.subject.txt",
        include_str!("../templates/mail/verify_new_email.subject.txt"),
    ),
    (
        "verify_new_email.txt",
        include_str!("../templates/mail/verify_new_email.txt"),
    ),
    (
        "verify_new_email.html",
        include_str!("../templates/mail/verify_new_email.html"),
    ),
    (
        "email_change_notice.subject.txt",
        include_str!("../templates/mail/email_change_notice.subject.txt"),
    ),
    (
        "email_change_notice.txt",
        include_str!("../templates/mail/email_change_notice.txt"),
    ),
    (
        "email_change_notice.html",
        include_str!("../templates/mail/email_change_notice.html"),
    ),
    (
        "password_reset.subject.txt",
        include_str!("../templates/mail/password_reset.subject.txt"),
    ),
    (
        "password_reset.txt",
        include_str!("../templates/mail/password_reset.txt"),
    ),
    (
        "password_reset.html",
        include_str!("../templates/mail/password_reset.html"),
    ),
    (
        "password_changed.subject.txt",
        include_str!("../templates/mail/password_changed.subject.txt"),
    ),
    (
        "password_changed.txt",
        include_str!("../templates/mail/password_changed.txt"),
    ),
    (
        "password_changed.html",
        include_str!("../templates/mail/password_changed.html"),
    ),
    (
        "registration_attempt.subject.txt",
        include_str!("../templates/mail/registration_attempt.subject.txt"),
    ),
    (
        "registration_attempt.txt",
        include_str!("../templates/mail/registration_attempt.txt"),
    ),
    (
        "registration_attempt.html",
        include_str!("../templates/mail/registration_attempt.html"),
    ),
    (
        "second_factor_failures.subject.txt",
        include_str!("../templates/mail/second_factor_failures.subject.txt"),
    ),
    (
        "second_factor_failures.txt",
        include_str!("../templates/mail/second_factor_failures.txt"),
    ),
    (
        "second_factor_failures.html",
        include_str!("../templates/mail/second_factor_failures.html"),
    ),
    (
        "second_factor_enabled.subject.txt",
        include_str!("../templates/mail/second_factor_enabled.subject.txt"),
    ),
    (
        "second_factor_enabled.txt",
        include_str!("../templates/mail/second_factor_enabled.txt"),
    ),
    (
        "second_factor_enabled.html",
        include_str!("../templates/mail/second_factor_enabled.html"),
    ),
    (
        "second_factor_disabled.subject.txt",
        include_str!("../templates/mail/second_factor_disabled.subject.txt"),
    ),
    (
        "second_factor_disabled.txt",
        include_str!("../templates/mail/second_factor_disabled.txt"),
    ),
    (
        "second_factor_disabled.html",
        include_str!("../templates/mail/second_factor_disabled.html"),
    ),
    (
        "second_factor_reset.subject.txt",
        include_str!("../templates/mail/second_factor_reset.subject.txt"),
    ),
    (
        "second_factor_reset.txt",
        include_str!("../templates/mail/second_factor_reset.txt"),
    ),
    (
        "second_factor_reset.html",
        include_str!("../templates/mail/second_factor_reset.html"),
    ),
];

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Templates {
    /// The built-in templates, each replaced by a file of the same name in `dir`.
    /// Every template is rendered once here, so a broken one stops the start.
    pub fn load(dir: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut env = minijinja::Environment::new();
        for (name, built_in) in BUILT_IN {
            let source = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| {
                    ConfigError::new(
                        "MAIL_TEMPLATE_DIR",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?,
                None => (*built_in).to_owned(),
            };
            env.add_template_owned(*name, source)
                .map_err(|e| ConfigError::new("MAIL_TEMPLATE_DIR", format!("{name}: {e}")))?;
        }
        let templates = Self { env };
        for kind in MailKind::ALL {
            templates
                .render(
                    kind,
                    "someone@example.com",
                    "Someone",
                    Some("https://example.com/x"),
                    24,
                    30,
                )
                .map_err(|e| {
                    ConfigError::new("MAIL_TEMPLATE_DIR", format!("{}: {e}", kind.as_str()))
                })?;
        }
        Ok(templates)
    }

    pub fn render(
        &self,
        kind: MailKind,
        recipient: &str,
        name: &str,
        link: Option<&str>,
        valid_hours: u64,
        valid_minutes: u64,
    ) -> Result<Rendered, minijinja::Error> {
        let k = kind.as_str();
        let base = minijinja::context! {
            product => "Registrar",
            recipient => recipient,
            name => name,
        };
        let subject = self
            .env
            .get_template(&format!("{k}.subject.txt"))?
            .render(&base)?;
        let subject = subject.trim().to_owned();
        let ctx = minijinja::context! {
            product => "Registrar",
            subject => &subject,
            recipient => recipient,
            name => name,
            link => link,
            valid_hours => valid_hours,
            valid_minutes => valid_minutes,
        };
        Ok(Rendered {
            text: self.env.get_template(&format!("{k}.txt"))?.render(&ctx)?,
            html: self.env.get_template(&format!("{k}.html"))?.render(&ctx)?,
            subject,
        })
    }
}

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
                };
                let token = new_token();
                let expires = chrono::Utc::now()
                    + chrono::Duration::seconds(i64::try_from(ttl).unwrap_or(86_400));
                if !account_tokens::insert(
                    &**client,
                    &Sha256::digest(token.expose_secret().as_bytes()),
                    user.id,
                    purpose,
                    &mail.recipient,
                    expires,
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
        drop(client);
        let name = user
            .first_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "there".to_owned());
        let rendered = self.templates.render(
            kind,
            &mail.recipient,
            &name,
            link.as_deref(),
            self.config.verification_ttl_secs / 3600,
            self.config.reset_ttl_secs / 60,
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
        MailKind::PasswordReset if user.email != recipient => Some("address changed"),
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
        MailKind::EmailChangeNotice
        | MailKind::PasswordChanged
        | MailKind::SecondFactorFailures
        | MailKind::SecondFactorEnabled
        | MailKind::SecondFactorDisabled
        | MailKind::SecondFactorReset
        | MailKind::RegistrationAttempt => None,
    }
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
    fn every_built_in_template_renders_with_its_link_and_escapes_html() {
        let t = Templates::load(None).unwrap();
        let r = t
            .render(
                MailKind::PasswordReset,
                "a@b.io",
                "<Ada>",
                Some("https://x/reset-password?token=T"),
                24,
                30,
            )
            .unwrap();
        assert_eq!(r.subject, "Reset your password");
        assert!(r.text.contains("https://x/reset-password?token=T"));
        assert!(r.text.contains("30 minutes"));
        assert!(r.html.contains("&lt;Ada&gt;"), "{}", r.html);
        assert!(!r.html.contains("<Ada>"));
    }

    #[test]
    fn a_template_directory_replaces_built_in_templates_by_name() {
        let dir = std::env::temp_dir().join(format!("mail-tpl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("verify_email.subject.txt"),
            "Bienvenue {{ product }}",
        )
        .unwrap();
        let t = Templates::load(Some(&dir)).unwrap();
        let r = t
            .render(MailKind::VerifyEmail, "a@b.io", "A", Some("l"), 24, 30)
            .unwrap();
        assert_eq!(r.subject, "Bienvenue Registrar");
        std::fs::write(dir.join("verify_email.txt"), "{% if %}").unwrap();
        assert!(Templates::load(Some(&dir)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }
}
