//! The registration rules and the validated `Registration` the pipeline carries.
//!
//! The same rules run in the api (on the HTTP body) and in the consumer (on the decoded
//! event), so an event that did not come through the api cannot persist invalid data.

pub use super::field_error::FieldError;
use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use validator::ValidateLength;

use chrono::{Datelike, NaiveDate};

use crate::domain::email::Email;
use crate::domain::password_policy::PasswordPolicy;
use crate::domain::username::Username;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gender {
    Male,
    Female,
    NonBinary,
    PreferNotToSay,
}

impl Gender {
    pub const ALL: [Gender; 4] = [
        Gender::Male,
        Gender::Female,
        Gender::NonBinary,
        Gender::PreferNotToSay,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::NonBinary => "non-binary",
            Gender::PreferNotToSay => "prefer-not-to-say",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == raw)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sex {
    Male,
    Female,
    Intersex,
}

impl Sex {
    pub const ALL: [Sex; 3] = [Sex::Male, Sex::Female, Sex::Intersex];

    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
            Sex::Intersex => "intersex",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// The profile part of a registration: everything but the credential. `sex`,
/// `occupation`, `username` and `date_of_birth` are optional: clients written for other
/// registration APIs do not send them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    pub gender: Gender,
    pub sex: Option<Sex>,
    pub occupation: Option<String>,
    pub username: Option<Username>,
    pub date_of_birth: Option<NaiveDate>,
}

/// Unvalidated profile fields, as they arrive in JSON or in an event.
#[derive(Default)]
pub struct ProfileInput<'a> {
    pub email: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub gender: Option<&'a str>,
    pub sex: Option<&'a str>,
    pub occupation: Option<&'a str>,
    pub username: Option<&'a str>,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<&'a str>,
}

impl Profile {
    /// Validates every field and reports every problem, one entry per field.
    pub fn parse(input: ProfileInput<'_>) -> Result<Self, Vec<FieldError>> {
        let patch = ProfilePatch::parse(input, true)?;
        match patch {
            ProfilePatch {
                email: Some(email),
                first_name: Some(first_name),
                last_name: Some(last_name),
                gender: Some(gender),
                sex,
                occupation,
                username,
                date_of_birth,
            } => Ok(Profile {
                email,
                first_name,
                last_name,
                gender,
                sex,
                occupation,
                username,
                date_of_birth,
            }),
            // `require_all` reports every missing field, so this is unreachable in
            // practice; answer as a validation error rather than panic.
            _ => Err(vec![FieldError::new("profile", "is incomplete")]),
        }
    }
}

/// Profile changes (`PUT`/`PATCH /api/v1/users/:id`): the same rules as a registration,
/// each applied to the fields that are present; with `require_all` the required ones
/// (names, email, gender) must be present too. Absent optional fields stay unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    pub email: Option<Email>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub gender: Option<Gender>,
    pub sex: Option<Sex>,
    pub occupation: Option<String>,
    pub username: Option<Username>,
    pub date_of_birth: Option<NaiveDate>,
}

impl ProfilePatch {
    pub fn parse(input: ProfileInput<'_>, require_all: bool) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let wanted = |v: Option<&str>| require_all || v.is_some();
        let mut patch = ProfilePatch::default();
        if wanted(input.first_name) {
            patch.first_name = text_field(&mut errors, "firstName", input.first_name, 2, 100);
        }
        if wanted(input.last_name) {
            patch.last_name = text_field(&mut errors, "lastName", input.last_name, 2, 100);
        }
        if wanted(input.email) {
            patch.email = email_field(&mut errors, input.email);
        }
        if wanted(input.gender) {
            patch.gender = enum_field(
                &mut errors,
                "gender",
                input.gender,
                Gender::parse,
                "must be one of male, female, non-binary, prefer-not-to-say",
            );
        }
        if input.sex.is_some() {
            patch.sex = enum_field(
                &mut errors,
                "sex",
                input.sex,
                Sex::parse,
                "must be one of male, female, intersex",
            );
        }
        if input.occupation.is_some() {
            patch.occupation = text_field(&mut errors, "occupation", input.occupation, 2, 255);
        }
        if let Some(raw) = input.username {
            match Username::parse(raw) {
                Ok(name) => patch.username = Some(name),
                Err(e) => errors.push(FieldError::new("username", e.to_string())),
            }
        }
        if let Some(raw) = input.date_of_birth {
            patch.date_of_birth = date_of_birth_field(&mut errors, raw);
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(errors)
        }
    }
}

/// The earliest date of birth accepted; anything before is a typing error.
const EARLIEST_BIRTH_YEAR: i32 = 1900;

fn date_of_birth_field(errors: &mut Vec<FieldError>, raw: &str) -> Option<NaiveDate> {
    let parsed = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok();
    let today = chrono::Utc::now().date_naive();
    match parsed {
        Some(date) if date.year() >= EARLIEST_BIRTH_YEAR && date <= today => Some(date),
        Some(_) => {
            errors.push(FieldError::new(
                "dateOfBirth",
                format!("must be between {EARLIEST_BIRTH_YEAR}-01-01 and today"),
            ));
            None
        }
        None => {
            errors.push(FieldError::new("dateOfBirth", "must be a date YYYY-MM-DD"));
            None
        }
    }
}

/// Parses a required `email` field, recording what is wrong with it in `errors`.
pub fn email_field(errors: &mut Vec<FieldError>, value: Option<&str>) -> Option<Email> {
    match value.map(Email::parse) {
        None => {
            errors.push(FieldError::new("email", "is required"));
            None
        }
        Some(Err(e)) => {
            errors.push(FieldError::new("email", e.to_string()));
            None
        }
        Some(Ok(email)) => Some(email),
    }
}

fn text_field(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<&str>,
    min: u64,
    max: u64,
) -> Option<String> {
    let Some(value) = value else {
        errors.push(FieldError::new(field, "is required"));
        return None;
    };
    let value = value.trim();
    if !value.validate_length(Some(min), Some(max), None) {
        errors.push(FieldError::new(
            field,
            format!("must be {min}-{max} characters"),
        ));
        return None;
    }
    if value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
        return None;
    }
    Some(value.to_owned())
}

fn enum_field<T>(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    message: &str,
) -> Option<T> {
    match value {
        None => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
        Some(raw) => {
            let parsed = parse(raw.trim());
            if parsed.is_none() {
                errors.push(FieldError::new(field, message));
            }
            parsed
        }
    }
}

/// A registration that passed every rule. The password is still plaintext here; the api
/// seals it before it leaves the process.
pub struct Registration {
    pub profile: Profile,
    pub password: SecretString,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("profile", &self.profile)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl Registration {
    /// Validates the profile and the password together, reporting every problem.
    pub fn parse(
        input: ProfileInput<'_>,
        password: Option<SecretString>,
        policy: &PasswordPolicy,
    ) -> Result<Self, Vec<FieldError>> {
        let profile = Profile::parse(input);
        let password = match password {
            None => Err(FieldError::new("password", "is required")),
            Some(p) => policy.check("password", &p).map(|()| p),
        };
        match (profile, password) {
            (Ok(profile), Ok(password)) => Ok(Registration { profile, password }),
            (profile, password) => {
                let mut errors = profile.err().unwrap_or_default();
                errors.extend(password.err());
                // Report fields in the order of the request contract.
                let order = [
                    "firstName",
                    "lastName",
                    "email",
                    "password",
                    "gender",
                    "sex",
                    "occupation",
                    "username",
                    "dateOfBirth",
                ];
                errors.sort_by_key(|e| order.iter().position(|f| *f == e.field));
                Err(errors)
            }
        }
    }
}

/// What the consumer does with one registration; the reason codes are part of the
/// polling API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailureReason {
    /// Another user already has this email.
    EmailTaken,
    /// The sealed password could not be opened (unknown key id, tampered ciphertext).
    InvalidCredentialEnvelope,
    /// The event decoded but its fields break the registration rules.
    InvalidRegistration,
    /// Another user already has this username.
    UsernameTaken,
}

impl FailureReason {
    pub const ALL: [FailureReason; 4] = [
        FailureReason::EmailTaken,
        FailureReason::InvalidCredentialEnvelope,
        FailureReason::InvalidRegistration,
        FailureReason::UsernameTaken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::EmailTaken => "EMAIL_TAKEN",
            FailureReason::InvalidCredentialEnvelope => "INVALID_CREDENTIAL_ENVELOPE",
            FailureReason::InvalidRegistration => "INVALID_REGISTRATION",
            FailureReason::UsernameTaken => "USERNAME_TAKEN",
        }
    }
}

/// A fresh registration id: UUIDv7, so ids sort by submission time.
pub fn new_registration_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registration rules applied to a JSON body, as the api and the consumer see it.
    fn parse_json(json: &serde_json::Value) -> Result<Registration, Vec<FieldError>> {
        let field = |k: &str| json.get(k).and_then(serde_json::Value::as_str);
        Registration::parse(
            ProfileInput {
                email: field("email"),
                first_name: field("firstName"),
                last_name: field("lastName"),
                gender: field("gender"),
                sex: field("sex"),
                occupation: field("occupation"),
                username: field("username"),
                date_of_birth: field("dateOfBirth"),
            },
            field("password").map(|p| SecretString::from(p.to_owned())),
            &PasswordPolicy::new(8),
        )
    }

    fn valid() -> serde_json::Value {
        serde_json::json!({
            "firstName": "John", "lastName": "Doe", "email": " John.Doe@Example.com ",
            "password": "correct horse", "gender": "male", "sex": "male",
            "occupation": "Software Engineer"
        })
    }

    fn errors_for(field: &str, value: serde_json::Value) -> Vec<FieldError> {
        let mut body = valid();
        body[field] = value;
        parse_json(&body).unwrap_err()
    }

    #[test]
    fn a_valid_request_is_accepted_with_a_normalised_email() {
        let reg = parse_json(&valid()).unwrap();
        assert_eq!(reg.profile.email.as_str(), "john.doe@example.com");
        assert_eq!(reg.profile.gender, Gender::Male);
    }

    #[test]
    fn a_one_character_first_name_is_rejected() {
        let errors = errors_for("firstName", "J".into());
        assert_eq!(
            errors,
            vec![FieldError::new("firstName", "must be 2-100 characters")]
        );
    }

    #[test]
    fn a_last_name_of_101_characters_is_rejected() {
        let errors = errors_for("lastName", "x".repeat(101).into());
        assert_eq!(errors[0].field, "lastName");
    }

    #[test]
    fn a_name_of_100_multibyte_characters_is_accepted() {
        let mut body = valid();
        body["firstName"] = "é".repeat(100).into();
        assert!(parse_json(&body).is_ok());
    }

    #[test]
    fn a_seven_character_password_is_rejected() {
        assert_eq!(
            errors_for("password", "1234567".into())[0].field,
            "password"
        );
    }

    #[test]
    fn a_129_character_password_is_rejected() {
        assert_eq!(
            errors_for("password", "p".repeat(129).into())[0].field,
            "password"
        );
    }

    #[test]
    fn an_unknown_gender_is_rejected() {
        assert_eq!(errors_for("gender", "other".into())[0].field, "gender");
    }

    #[test]
    fn every_allowed_gender_and_sex_is_accepted() {
        for g in Gender::ALL {
            for s in Sex::ALL {
                let mut body = valid();
                body["gender"] = g.as_str().into();
                body["sex"] = s.as_str().into();
                assert!(parse_json(&body).is_ok(), "{g:?} {s:?}");
            }
        }
    }

    #[test]
    fn an_occupation_of_256_characters_is_rejected() {
        assert_eq!(
            errors_for("occupation", "o".repeat(256).into())[0].field,
            "occupation"
        );
    }

    #[test]
    fn every_missing_field_is_reported_once_in_contract_order() {
        let errors = parse_json(&serde_json::json!({})).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["firstName", "lastName", "email", "password", "gender"],
            "sex, occupation, username and dateOfBirth are optional"
        );
    }

    #[test]
    fn the_optional_fields_are_validated_when_present() {
        let mut body = valid();
        body["username"] = "Ada.Lovelace".into();
        body["dateOfBirth"] = "1815-12-10".into();
        let errors = parse_json(&body).unwrap_err();
        assert_eq!(
            errors,
            vec![FieldError::new(
                "dateOfBirth",
                "must be between 1900-01-01 and today"
            )]
        );
        body["dateOfBirth"] = "1990-02-30".into();
        assert_eq!(
            parse_json(&body).unwrap_err()[0].message,
            "must be a date YYYY-MM-DD"
        );
        body["dateOfBirth"] = "1990-02-28".into();
        let profile = parse_json(&body).unwrap().profile;
        assert_eq!(profile.username.unwrap().as_str(), "ada.lovelace");
        assert_eq!(profile.date_of_birth, NaiveDate::from_ymd_opt(1990, 2, 28));
        body["username"] = "root".into();
        assert_eq!(parse_json(&body).unwrap_err()[0].field, "username");
    }

    #[test]
    fn a_registration_without_sex_or_occupation_is_accepted() {
        let mut body = valid();
        body.as_object_mut().unwrap().remove("sex");
        body.as_object_mut().unwrap().remove("occupation");
        let profile = parse_json(&body).unwrap().profile;
        assert_eq!((profile.sex, profile.occupation), (None, None));
    }

    #[test]
    fn a_patch_validates_only_the_fields_it_carries() {
        let patch = ProfilePatch::parse(
            ProfileInput {
                first_name: Some("Ada"),
                ..Default::default()
            },
            false,
        )
        .unwrap();
        assert_eq!(patch.first_name.as_deref(), Some("Ada"));
        assert!(patch.email.is_none());
        let errors = ProfilePatch::parse(
            ProfileInput {
                sex: Some("unknown"),
                ..Default::default()
            },
            false,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "sex");
    }

    #[test]
    fn a_full_replacement_requires_every_field() {
        let errors = ProfilePatch::parse(
            ProfileInput {
                first_name: Some("Ada"),
                ..Default::default()
            },
            true,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 3, "lastName, email, gender: {errors:?}");
    }

    #[test]
    fn debug_output_never_contains_the_password() {
        let reg = parse_json(&valid()).unwrap();
        assert!(!format!("{reg:?}").contains("correct horse"));
    }
}
