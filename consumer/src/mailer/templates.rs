//! The mail templates (text and HTML per kind, a shared layout), built in or replaced by
//! files of the same name in `MAIL_TEMPLATE_DIR`, rendered with minijinja.

use common::config::ConfigError;
use common::store::mail_outbox::MailKind;

/// What a mail's templates are rendered with.
#[derive(Debug, Clone, Copy)]
pub struct MailValues<'a> {
    pub recipient: &'a str,
    /// Whom the mail greets.
    pub name: &'a str,
    /// The link of a mail that carries one.
    pub link: Option<&'a str>,
    /// A sign-in mail's 6-digit code.
    pub code: Option<&'a str>,
    /// How long a verification link works, in hours.
    pub valid_hours: u64,
    /// How long a reset or sign-in mail works, in minutes.
    pub valid_minutes: u64,
}

/// The templates, built in or from `MAIL_TEMPLATE_DIR`.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

const BUILT_IN: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../templates/mail/layout.html"),
    ),
    (
        "verify_email.subject.txt",
        include_str!("../../templates/mail/verify_email.subject.txt"),
    ),
    (
        "verify_email.txt",
        include_str!("../../templates/mail/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("../../templates/mail/verify_email.html"),
    ),
    (
        "verify_new_email.subject.txt",
        include_str!("../../templates/mail/verify_new_email.subject.txt"),
    ),
    (
        "verify_new_email.txt",
        include_str!("../../templates/mail/verify_new_email.txt"),
    ),
    (
        "verify_new_email.html",
        include_str!("../../templates/mail/verify_new_email.html"),
    ),
    (
        "email_change_notice.subject.txt",
        include_str!("../../templates/mail/email_change_notice.subject.txt"),
    ),
    (
        "email_change_notice.txt",
        include_str!("../../templates/mail/email_change_notice.txt"),
    ),
    (
        "email_change_notice.html",
        include_str!("../../templates/mail/email_change_notice.html"),
    ),
    (
        "password_reset.subject.txt",
        include_str!("../../templates/mail/password_reset.subject.txt"),
    ),
    (
        "password_reset.txt",
        include_str!("../../templates/mail/password_reset.txt"),
    ),
    (
        "password_reset.html",
        include_str!("../../templates/mail/password_reset.html"),
    ),
    (
        "password_changed.subject.txt",
        include_str!("../../templates/mail/password_changed.subject.txt"),
    ),
    (
        "password_changed.txt",
        include_str!("../../templates/mail/password_changed.txt"),
    ),
    (
        "password_changed.html",
        include_str!("../../templates/mail/password_changed.html"),
    ),
    (
        "registration_attempt.subject.txt",
        include_str!("../../templates/mail/registration_attempt.subject.txt"),
    ),
    (
        "registration_attempt.txt",
        include_str!("../../templates/mail/registration_attempt.txt"),
    ),
    (
        "registration_attempt.html",
        include_str!("../../templates/mail/registration_attempt.html"),
    ),
    (
        "second_factor_failures.subject.txt",
        include_str!("../../templates/mail/second_factor_failures.subject.txt"),
    ),
    (
        "second_factor_failures.txt",
        include_str!("../../templates/mail/second_factor_failures.txt"),
    ),
    (
        "second_factor_failures.html",
        include_str!("../../templates/mail/second_factor_failures.html"),
    ),
    (
        "second_factor_enabled.subject.txt",
        include_str!("../../templates/mail/second_factor_enabled.subject.txt"),
    ),
    (
        "second_factor_enabled.txt",
        include_str!("../../templates/mail/second_factor_enabled.txt"),
    ),
    (
        "second_factor_enabled.html",
        include_str!("../../templates/mail/second_factor_enabled.html"),
    ),
    (
        "second_factor_disabled.subject.txt",
        include_str!("../../templates/mail/second_factor_disabled.subject.txt"),
    ),
    (
        "second_factor_disabled.txt",
        include_str!("../../templates/mail/second_factor_disabled.txt"),
    ),
    (
        "second_factor_disabled.html",
        include_str!("../../templates/mail/second_factor_disabled.html"),
    ),
    (
        "second_factor_reset.subject.txt",
        include_str!("../../templates/mail/second_factor_reset.subject.txt"),
    ),
    (
        "second_factor_reset.txt",
        include_str!("../../templates/mail/second_factor_reset.txt"),
    ),
    (
        "second_factor_reset.html",
        include_str!("../../templates/mail/second_factor_reset.html"),
    ),
    (
        "webhook_disabled.subject.txt",
        include_str!("../../templates/mail/webhook_disabled.subject.txt"),
    ),
    (
        "webhook_disabled.txt",
        include_str!("../../templates/mail/webhook_disabled.txt"),
    ),
    (
        "webhook_disabled.html",
        include_str!("../../templates/mail/webhook_disabled.html"),
    ),
    (
        "sign_in.subject.txt",
        include_str!("../../templates/mail/sign_in.subject.txt"),
    ),
    (
        "sign_in.txt",
        include_str!("../../templates/mail/sign_in.txt"),
    ),
    (
        "sign_in.html",
        include_str!("../../templates/mail/sign_in.html"),
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
                    &MailValues {
                        recipient: "someone@example.com",
                        name: "Someone",
                        link: Some("https://example.com/x"),
                        code: Some("123456"),
                        valid_hours: 24,
                        valid_minutes: 30,
                    },
                )
                .map_err(|e| {
                    ConfigError::new("MAIL_TEMPLATE_DIR", format!("{}: {e}", kind.as_str()))
                })?;
        }
        Ok(templates)
    }

    pub fn render(&self, kind: MailKind, v: &MailValues<'_>) -> Result<Rendered, minijinja::Error> {
        let MailValues {
            recipient,
            name,
            link,
            code,
            valid_hours,
            valid_minutes,
        } = *v;
        let k = kind.as_str();
        let base = minijinja::context! {
            product => "Registrar",
            recipient => recipient,
            name => name,
            code => code,
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
            code => code,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_template_renders_with_its_link_and_escapes_html() {
        let t = Templates::load(None).unwrap();
        let r = t
            .render(
                MailKind::PasswordReset,
                &MailValues {
                    recipient: "a@b.io",
                    name: "<Ada>",
                    link: Some("https://x/reset-password?token=T"),
                    code: None,
                    valid_hours: 24,
                    valid_minutes: 30,
                },
            )
            .unwrap();
        assert_eq!(r.subject, "Reset your password");
        assert!(r.text.contains("https://x/reset-password?token=T"));
        assert!(r.text.contains("30 minutes"));
        assert!(r.html.contains("&lt;Ada&gt;"), "{}", r.html);
        assert!(!r.html.contains("<Ada>"));
    }

    #[test]
    fn a_sign_in_mail_carries_its_code_in_the_subject_and_the_body_and_its_link() {
        let t = Templates::load(None).unwrap();
        let r = t
            .render(
                MailKind::SignIn,
                &MailValues {
                    recipient: "a@b.io",
                    name: "Ada",
                    link: Some("https://x/sign-in?token=T"),
                    code: Some("042917"),
                    valid_hours: 24,
                    valid_minutes: 10,
                },
            )
            .unwrap();
        assert_eq!(r.subject, "Your sign-in code: 042917");
        assert!(r.text.contains("https://x/sign-in?token=T"));
        for body in [&r.text, &r.html] {
            assert!(
                body.contains("042917") && body.contains("10 minutes"),
                "{body}"
            );
        }
        assert!(r.html.contains("sign-in?token=T"), "{}", r.html);
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
            .render(
                MailKind::VerifyEmail,
                &MailValues {
                    recipient: "a@b.io",
                    name: "A",
                    link: Some("l"),
                    code: None,
                    valid_hours: 24,
                    valid_minutes: 30,
                },
            )
            .unwrap();
        assert_eq!(r.subject, "Bienvenue Registrar");
        std::fs::write(dir.join("verify_email.txt"), "{% if %}").unwrap();
        assert!(Templates::load(Some(&dir)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
