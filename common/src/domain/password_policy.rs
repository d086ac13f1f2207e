//! What a new password must be: long enough (12 characters by default, configurable),
//! at most 128, and not one of the commonly used passwords every guessing attack tries
//! first.
//!
//! The list (`common/data/common-passwords.txt.gz`, 20 000 passwords, one per line) is
//! the one Django ships, compiled by Royce Williams from leaked-password corpora; it is
//! built into the binary, so the check makes no network call.

use std::collections::HashSet;
use std::io::Read;
use std::sync::LazyLock;

use secrecy::{ExposeSecret, SecretString};

use super::field_error::FieldError;

pub const MAX_CHARS: usize = 128;
/// The shortest minimum an operator may configure.
pub const LOWEST_MIN_CHARS: usize = 8;
pub const DEFAULT_MIN_CHARS: usize = 12;

static COMMON_GZ: &[u8] = include_bytes!("../../data/common-passwords.txt.gz");

static COMMON: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let mut text = String::new();
    // The list is part of the binary; a corrupt one is caught by the unit tests.
    let _ = flate2::read::GzDecoder::new(COMMON_GZ).read_to_string(&mut text);
    text.lines().map(|l| l.trim().to_lowercase()).collect()
});

/// Whether `password` (compared case-insensitively) is on the list of common passwords.
pub fn is_common(password: &str) -> bool {
    COMMON.contains(&password.to_lowercase())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    min_chars: usize,
}

impl PasswordPolicy {
    /// A policy with this minimum length (never below 8 characters).
    pub fn new(min_chars: usize) -> Self {
        Self {
            min_chars: min_chars.clamp(LOWEST_MIN_CHARS, MAX_CHARS),
        }
    }

    pub fn min_chars(&self) -> usize {
        self.min_chars
    }

    /// Checks a new password; the error names `field`.
    pub fn check(&self, field: &str, password: &SecretString) -> Result<(), FieldError> {
        let p = password.expose_secret();
        let chars = p.chars().count();
        if chars < self.min_chars || chars > MAX_CHARS {
            return Err(FieldError::new(
                field,
                format!("must be {}-{MAX_CHARS} characters", self.min_chars),
            ));
        }
        if is_common(p) {
            return Err(FieldError::new(
                field,
                "is too common: it is on a list of frequently used passwords",
            ));
        }
        Ok(())
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::new(DEFAULT_MIN_CHARS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(policy: &PasswordPolicy, p: &str) -> Result<(), FieldError> {
        policy.check("password", &SecretString::from(p.to_owned()))
    }

    #[test]
    fn the_shipped_list_holds_twenty_thousand_common_passwords() {
        // 20 000 lines, fewer once compared case-insensitively.
        assert!(COMMON.len() > 19_000, "{}", COMMON.len());
        assert!(is_common("123456") && is_common("Password1") && is_common("QWERTY"));
        assert!(!is_common("correct horse battery staple 42"));
    }

    #[test]
    fn an_eleven_character_password_is_too_short_by_default() {
        let policy = PasswordPolicy::default();
        assert!(check(&policy, "abcdefghijk").is_err());
        assert!(check(&policy, "a quiet lantern").is_ok());
    }

    #[test]
    fn a_common_password_of_any_length_is_refused() {
        let policy = PasswordPolicy::new(8);
        let e = check(&policy, "password1234").unwrap_err();
        assert!(e.message.contains("too common"), "{}", e.message);
        assert!(check(&policy, "baseball").is_err());
    }

    #[test]
    fn the_minimum_cannot_be_configured_below_eight() {
        assert_eq!(PasswordPolicy::new(4).min_chars(), 8);
        assert!(check(&PasswordPolicy::new(4), &"x".repeat(129)).is_err());
    }
}
