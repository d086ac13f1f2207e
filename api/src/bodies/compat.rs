//! Bodies of the compatibility routes, for clients written against other registration
//! APIs: `POST /api/v1/register` (username, full name, age or date of birth) and
//! `POST /api/v1/token` (OAuth2-style password and refresh grants). Each is turned into
//! the canonical request and handled by the same use case.

use chrono::{Datelike, NaiveDate};
use common::domain::registration::FieldError;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::accounts::{LoginRequest, RefreshRequest};
use super::registration::RegistrationRequest;

/// `POST /api/v1/register` body. `fullName` is split at its last space into first and
/// last name; `age` is checked (1-150, and against `dateOfBirth` when both are given)
/// but not stored, since an age goes stale: send `dateOfBirth` to keep it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CompatRegistrationRequest {
    #[schema(example = "john.doe")]
    pub username: Option<String>,
    /// Given name(s) and family name; also read as `full_name`. Required when
    /// `REQUIRED_PROFILE_FIELDS` lists firstName or lastName.
    #[serde(alias = "full_name")]
    #[schema(example = "John Doe")]
    pub full_name: Option<String>,
    #[schema(value_type = Option<u16>, minimum = 1, maximum = 150, example = 34)]
    pub age: Option<i64>,
    /// `YYYY-MM-DD`; also read as `date_of_birth`.
    #[serde(alias = "date_of_birth")]
    #[schema(format = Date, example = "1990-04-01")]
    pub date_of_birth: Option<String>,
    /// male | female | non-binary | prefer-not-to-say, any case.
    #[schema(example = "male")]
    pub gender: Option<String>,
    #[schema(required = true, nullable = false, value_type = String, example = "john.doe@example.com")]
    pub email: Option<String>,
    #[schema(required = true, nullable = false, value_type = String, min_length = 12, max_length = 128)]
    pub password: Option<SecretString>,
}

impl std::fmt::Debug for CompatRegistrationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompatRegistrationRequest")
            .finish_non_exhaustive()
    }
}

impl CompatRegistrationRequest {
    /// The canonical registration, and what is wrong with the fields that have no
    /// canonical counterpart (`fullName`, `age`).
    pub fn into_canonical(self, today: NaiveDate) -> (RegistrationRequest, Vec<FieldError>) {
        let mut errors = Vec::new();
        let (first_name, last_name) = match self.full_name.as_deref().map(str::trim) {
            None => (None, None),
            Some(full) => match full.rsplit_once(char::is_whitespace) {
                Some((first, last)) if !first.trim().is_empty() => {
                    (Some(first.trim().to_owned()), Some(last.to_owned()))
                }
                _ => {
                    errors.push(FieldError::new(
                        "fullName",
                        "must hold a given name and a family name",
                    ));
                    (Some(String::new()), Some(String::new()))
                }
            },
        };
        if let Some(age) = self.age {
            if !(1..=150).contains(&age) {
                errors.push(FieldError::new("age", "must be 1-150"));
            } else if let Some(born) = self
                .date_of_birth
                .as_deref()
                .and_then(|d| NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok())
            {
                if age_on(born, today) != Some(age) {
                    errors.push(FieldError::new("age", "does not match dateOfBirth"));
                }
            }
        }
        let request = RegistrationRequest {
            name: None,
            first_name,
            last_name,
            email: self.email,
            password: self.password,
            gender: self.gender.map(|g| g.trim().to_lowercase()),
            sex: None,
            occupation: None,
            username: self.username,
            date_of_birth: self.date_of_birth,
        };
        (request, errors)
    }
}

/// Whole years from `born` to `today`.
fn age_on(born: NaiveDate, today: NaiveDate) -> Option<i64> {
    let mut years = i64::from(today.year() - born.year());
    if (today.month(), today.day()) < (born.month(), born.day()) {
        years -= 1;
    }
    (years >= 0).then_some(years)
}

/// Registration rule fields named as the compatibility body names them.
pub fn rename_for_compat(mut errors: Vec<FieldError>) -> Vec<FieldError> {
    for e in &mut errors {
        if e.field == "firstName" || e.field == "lastName" {
            e.field = "fullName".to_owned();
        }
    }
    errors.dedup_by(|a, b| a.field == "fullName" && b.field == "fullName");
    errors
}

/// `POST /api/v1/token` body, as a form (`application/x-www-form-urlencoded`, OAuth2) or
/// JSON. `grant_type` is `password` (the default) or `refresh_token`. For the password
/// grant `username` is a username or an email (it holds `@`); `email` may be sent
/// instead. `client_id` and `scope` are accepted and ignored.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[schema(pattern = "^(password|refresh_token)$", example = "password")]
    pub grant_type: Option<String>,
    #[schema(example = "john.doe")]
    pub username: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    pub refresh_token: Option<SecretString>,
    pub client_id: Option<String>,
    pub scope: Option<String>,
}

/// What a token request asks for.
pub enum Grant {
    Password(LoginRequest),
    Refresh(RefreshRequest),
}

impl TokenRequest {
    pub fn into_grant(self) -> Result<Grant, FieldError> {
        match self.grant_type.as_deref().unwrap_or("password") {
            "password" => {
                let (email, username) = match (self.username, self.email) {
                    (Some(name), None) if name.contains('@') => (Some(name), None),
                    (username, email) => (email, username),
                };
                Ok(Grant::Password(LoginRequest {
                    email,
                    username,
                    password: self.password,
                }))
            }
            "refresh_token" => Ok(Grant::Refresh(RefreshRequest {
                refresh_token: self.refresh_token,
            })),
            _ => Err(FieldError::new(
                "grant_type",
                "must be password or refresh_token",
            )),
        }
    }
}

/// The answer of `POST /api/v1/token`, in the OAuth2 token response's names (RFC 6749
/// §5.1).
#[derive(Serialize, ToSchema)]
pub struct TokenGrantAnswer {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
    /// Single use: a `refresh_token` grant returns the next one.
    pub refresh_token: String,
}

impl std::fmt::Debug for TokenGrantAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrantAnswer").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    fn body(json: serde_json::Value) -> CompatRegistrationRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_full_name_splits_at_its_last_space() {
        let (r, errors) =
            body(serde_json::json!({ "full_name": "Mary Ann  Evans" })).into_canonical(today());
        assert!(errors.is_empty());
        assert_eq!(r.first_name.as_deref(), Some("Mary Ann"));
        assert_eq!(r.last_name.as_deref(), Some("Evans"));
    }

    #[test]
    fn a_single_word_full_name_is_refused() {
        let (_, errors) = body(serde_json::json!({ "fullName": "Cher" })).into_canonical(today());
        assert_eq!(errors[0].field, "fullName");
    }

    #[test]
    fn an_age_must_agree_with_the_date_of_birth() {
        let check = |age: i64, born: &str| {
            body(serde_json::json!({ "age": age, "dateOfBirth": born }))
                .into_canonical(today())
                .1
        };
        assert!(check(36, "1990-11-23").is_empty(), "birthday today");
        assert!(check(35, "1990-11-24").is_empty(), "birthday tomorrow");
        assert_eq!(
            check(36, "1990-11-24")[0].message,
            "does not match dateOfBirth"
        );
        assert_eq!(check(0, "2026-01-01")[0].message, "must be 1-150");
    }

    #[test]
    fn the_gender_of_another_api_is_read_in_any_case() {
        let (r, _) = body(serde_json::json!({ "gender": " Female" })).into_canonical(today());
        assert_eq!(r.gender.as_deref(), Some("female"));
    }

    #[test]
    fn a_password_grant_reads_an_email_in_username() {
        let grant = |json| match serde_json::from_value::<TokenRequest>(json)
            .unwrap()
            .into_grant()
        {
            Ok(Grant::Password(l)) => (l.email, l.username),
            _ => panic!("not a password grant"),
        };
        assert_eq!(
            grant(serde_json::json!({ "username": "a@b.example", "password": "x" })),
            (Some("a@b.example".to_owned()), None)
        );
        assert_eq!(
            grant(serde_json::json!({ "username": "ada", "password": "x" })),
            (None, Some("ada".to_owned()))
        );
        let unknown = serde_json::from_value::<TokenRequest>(
            serde_json::json!({ "grant_type": "client_credentials" }),
        )
        .unwrap()
        .into_grant();
        assert!(unknown.is_err());
    }
}
