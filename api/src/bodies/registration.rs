//! Bodies of the registration routes: the submitted registration, the 202 answer and
//! the polling answer.

use std::fmt;

use common::domain::password_policy::PasswordPolicy;
use common::domain::registration::{
    FieldError, Profile, ProfileInput, Registration, RequiredFields,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::users::UserView;

/// `POST /api/users` body. Every field is optional here so that a missing field is
/// reported beside the others instead of aborting deserialisation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistrationRequest {
    /// The whole name, instead of `firstName` and `lastName`: split at its last space
    /// into given name(s) and family name (one word is a given name only).
    #[schema(min_length = 2, max_length = 201, example = "John Doe")]
    pub name: Option<String>,
    /// 2-100 characters. Optional unless `REQUIRED_PROFILE_FIELDS` lists it, like every
    /// field but email and password.
    #[schema(min_length = 2, max_length = 100, example = "John")]
    pub first_name: Option<String>,
    /// 2-100 characters.
    #[schema(min_length = 2, max_length = 100, example = "Doe")]
    pub last_name: Option<String>,
    /// Trimmed and lower-cased before use.
    #[schema(required = true, nullable = false, value_type = String, min_length = 3, max_length = 254, example = "john.doe@example.com")]
    pub email: Option<String>,
    /// 12-128 characters by default (`PASSWORD_MIN_LENGTH`), not one of the 20 000 most
    /// common passwords; sealed for the consumer, never stored or logged.
    #[schema(required = true, nullable = false, value_type = String, min_length = 12, max_length = 128, example = "correct horse battery")]
    pub password: Option<SecretString>,
    /// male | female | non-binary | prefer-not-to-say
    #[schema(
        pattern = "^(male|female|non-binary|prefer-not-to-say)$",
        example = "male"
    )]
    pub gender: Option<String>,
    /// Optional (absent or null): male | female | intersex.
    #[schema(pattern = "^(male|female|intersex)$", example = "male")]
    pub sex: Option<String>,
    /// Optional: 2-255 characters.
    #[schema(min_length = 2, max_length = 255, example = "Software Engineer")]
    pub occupation: Option<String>,
    /// Optional handle to log in with: 3-32 of `a-z 0-9 . _ -` (lower-cased), unique;
    /// a taken one fails the registration with `USERNAME_TAKEN`.
    #[schema(
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$",
        example = "john.doe"
    )]
    pub username: Option<String>,
    /// Optional `YYYY-MM-DD`, from 1900-01-01 to today.
    #[schema(format = Date, example = "1990-04-01")]
    pub date_of_birth: Option<String>,
}

impl fmt::Debug for RegistrationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrationRequest")
            .finish_non_exhaustive()
    }
}

impl RegistrationRequest {
    /// Applies the registration rules; every problem is reported.
    pub fn parse(
        mut self,
        policy: &PasswordPolicy,
        required: RequiredFields,
    ) -> Result<Registration, Vec<FieldError>> {
        let password = self.password.take();
        Registration::parse(self.profile_input(), password, policy, required)
    }

    /// The profile alone, under the registration rules (a sign-up without a password).
    pub fn profile(&self, required: RequiredFields) -> Result<Profile, Vec<FieldError>> {
        Profile::parse(self.profile_input(), required)
    }

    fn profile_input(&self) -> ProfileInput<'_> {
        ProfileInput {
            email: self.email.as_deref(),
            name: self.name.as_deref(),
            first_name: self.first_name.as_deref(),
            last_name: self.last_name.as_deref(),
            gender: self.gender.as_deref(),
            sex: self.sex.as_deref(),
            occupation: self.occupation.as_deref(),
            username: self.username.as_deref(),
            date_of_birth: self.date_of_birth.as_deref(),
        }
    }
}

/// The `data` of a 202.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedRegistration {
    pub email: String,
    pub registration_id: Uuid,
    /// Always `pending`.
    pub status: String,
}

/// `202 Accepted` answer of a registration; replayed as is for a retried
/// `Idempotency-Key`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegistrationAccepted {
    pub success: bool,
    /// `User registration submitted successfully`
    pub message: String,
    pub data: AcceptedRegistration,
}

impl RegistrationAccepted {
    pub fn new(email: &str, registration_id: Uuid) -> Self {
        Self {
            success: true,
            message: "User registration submitted successfully".to_owned(),
            data: AcceptedRegistration {
                email: email.to_owned(),
                registration_id,
                status: "pending".to_owned(),
            },
        }
    }
}

/// The `data` of the polling answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationStatusData {
    pub email: String,
    /// pending | completed | failed
    pub status: &'static str,
    pub registration_id: Uuid,
    /// EMAIL_TAKEN | USERNAME_TAKEN | INVALID_CREDENTIAL_ENVELOPE | INVALID_REGISTRATION
    /// (failed only)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The profile, for the account's owner or an admin presenting a token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView>,
}

/// `200` answer of `GET /api/users/{email}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationStatusAnswer {
    pub success: bool,
    pub data: RegistrationStatusData,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_field_is_rejected_by_deserialisation() {
        let body = serde_json::json!({
            "firstName": "John", "lastName": "Doe", "email": "j@example.com",
            "password": "correct horse", "gender": "male", "sex": "male",
            "occupation": "Engineer", "isAdmin": true
        });
        assert!(serde_json::from_value::<RegistrationRequest>(body).is_err());
    }

    #[test]
    fn a_request_never_shows_its_password_in_debug_output() {
        let body = serde_json::json!({ "password": "correct horse" });
        let request: RegistrationRequest = serde_json::from_value(body).unwrap();
        assert!(!format!("{request:?}").contains("correct horse"));
    }
}

/// `200` of `GET /api/users/{id}`: a user (by id) or a registration status (by email).
/// Documentation only: the handler answers one of the two bodies.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum UserOrRegistrationStatus {
    User(super::users::UserAnswer),
    Status(RegistrationStatusAnswer),
}
