//! `Username`: an optional, unique handle to log in with besides the email. Lower-cased,
//! 3-32 characters of `a-z 0-9 . _ -`, starting and ending with a letter or digit, and
//! not one of the names that would let an account pass for the service or its staff.

use std::fmt;

const MIN_LEN: usize = 3;
const MAX_LEN: usize = 32;

/// Names no user may take: they read as the service, its operators or its routes.
const RESERVED: &[&str] = &[
    "admin",
    "administrator",
    "api",
    "auth",
    "help",
    "info",
    "me",
    "moderator",
    "null",
    "postmaster",
    "registrar",
    "root",
    "security",
    "support",
    "system",
    "undefined",
    "webmaster",
];

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("must be 3-32 characters")]
    Length,
    #[error("may contain only a-z, 0-9, '.', '_' and '-', and must start and end with a letter or digit")]
    Characters,
    #[error("is reserved")]
    Reserved,
}

impl Username {
    /// Trims and lower-cases `raw` (usernames are case-insensitive) before the rules.
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let name = raw.trim().to_lowercase();
        let len = name.chars().count();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(UsernameError::Length);
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let edges_ok = name.starts_with(allowed) && name.ends_with(allowed);
        if !edges_ok
            || !name
                .chars()
                .all(|c| allowed(c) || matches!(c, '.' | '_' | '-'))
        {
            return Err(UsernameError::Characters);
        }
        if RESERVED.contains(&name.as_str()) {
            return Err(UsernameError::Reserved);
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A handle identifies a person as well as an email does: not in debug output.
        f.write_str("Username(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_is_trimmed_and_lower_cased() {
        assert_eq!(Username::parse("  Ada.L_1 ").unwrap().as_str(), "ada.l_1");
    }

    #[test]
    fn lengths_outside_3_to_32_are_refused() {
        assert_eq!(Username::parse("ab"), Err(UsernameError::Length));
        assert!(Username::parse("abc").is_ok());
        assert!(Username::parse(&"a".repeat(32)).is_ok());
        assert_eq!(Username::parse(&"a".repeat(33)), Err(UsernameError::Length));
    }

    #[test]
    fn only_the_allowed_characters_and_edges_pass() {
        for bad in [
            "ada lovelace",
            "ada@x",
            "-ada",
            "ada.",
            "ädä",
            "ada!",
            "_ada",
        ] {
            assert_eq!(
                Username::parse(bad),
                Err(UsernameError::Characters),
                "{bad}"
            );
        }
        assert!(Username::parse("a-d.a_9").is_ok());
    }

    #[test]
    fn reserved_names_are_refused_in_any_case() {
        assert_eq!(Username::parse("Admin"), Err(UsernameError::Reserved));
        assert_eq!(Username::parse("ROOT"), Err(UsernameError::Reserved));
    }

    #[test]
    fn debug_output_does_not_show_the_name() {
        let name = Username::parse("ada.lovelace").unwrap();
        assert!(!format!("{name:?}").contains("ada"));
    }
}
