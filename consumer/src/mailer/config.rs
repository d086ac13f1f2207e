//! The mailer's settings and metrics.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use secrecy::SecretString;

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
    /// Lifetime of a passwordless sign-in mail's link and code, in seconds.
    #[arg(
        long = "sign-in-mail-ttl-secs",
        env = "SIGN_IN_MAIL_TTL_SECS",
        default_value_t = 600
    )]
    pub sign_in_ttl_secs: u64,
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
