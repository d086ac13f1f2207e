//! `Email`: a trimmed, lower-cased, syntactically valid address, and its log-safe mask.

use std::fmt;

use validator::ValidateEmail;

/// The longest address SMTP allows (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is required")]
    Empty,
    #[error("must be at most 254 characters")]
    TooLong,
    #[error("must be a valid email address")]
    Invalid,
}

impl Email {
    /// Trims and lower-cases `raw` before validating it, so the same mailbox always maps
    /// to the same Redis key, Kafka key and database row.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let normalised = raw.trim().to_lowercase();
        if normalised.is_empty() {
            return Err(EmailError::Empty);
        }
        if normalised.chars().count() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
        if !normalised.validate_email() {
            return Err(EmailError::Invalid);
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A form safe for logs and metrics: `j***@example.com`.
    pub fn masked(&self) -> MaskedEmail<'_> {
        MaskedEmail(&self.0)
    }
}

impl std::str::FromStr for Email {
    type Err = EmailError;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Email::parse(raw)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Debug output is masked so that a stray `?email` in a log line never leaks an address.
impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.masked())
    }
}

pub struct MaskedEmail<'a>(&'a str);

impl fmt::Display for MaskedEmail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        mask_email(self.0, f)
    }
}

/// Masks any string that may be an email (also unvalidated input): keeps the first
/// character of the local part and the domain.
pub fn mask_email(raw: &str, f: &mut impl fmt::Write) -> fmt::Result {
    match raw.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().unwrap_or('*');
            write!(f, "{first}***@{domain}")
        }
        None => f.write_str("***"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_trimmed_and_lower_cased() {
        let email = Email::parse("  John.Doe@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "john.doe@example.com");
    }

    #[test]
    fn an_email_without_at_sign_is_rejected() {
        assert_eq!(Email::parse("john.example.com"), Err(EmailError::Invalid));
    }

    #[test]
    fn an_empty_email_is_rejected() {
        assert_eq!(Email::parse("   "), Err(EmailError::Empty));
    }

    #[test]
    fn an_email_longer_than_254_characters_is_rejected() {
        let raw = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&raw), Err(EmailError::TooLong));
    }

    #[test]
    fn the_masked_form_hides_the_local_part() {
        let email = Email::parse("john.doe@example.com").unwrap();
        assert_eq!(email.masked().to_string(), "j***@example.com");
        assert_eq!(format!("{email:?}"), "Email(j***@example.com)");
    }
}
