//! Bodies of the passkey routes: ceremony options, the browser's answers, the list of
//! a user's passkeys, and a sign-up that brings a passkey instead of a password.

use chrono::{DateTime, Utc};
use common::domain::registration::{FieldError, Profile, ProfileInput, RequiredFields};
use common::store::passkeys::PasskeyRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The options of a passkey ceremony.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyOptionsAnswer {
    pub success: bool,
    /// Send it back with the browser's answer; single use.
    pub ceremony_id: String,
    /// Seconds left to finish the ceremony.
    pub expires_in: u64,
    /// WebAuthn's JSON form of the options: pass `publicKey` to
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` (adding a passkey) or
    /// `parseRequestOptionsFromJSON` (signing in). A sign-in's `mediation` is
    /// `conditional`, for the login field's autofill; a sign-in button leaves it out.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// `POST /api/v1/auth/passkey/register/options` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PasskeySignUpOptionsRequest {
    /// The address the account will have; the passkey is made for it.
    #[schema(
        required = true,
        nullable = false,
        min_length = 3,
        max_length = 254,
        example = "john.doe@example.com"
    )]
    pub email: Option<String>,
    /// What the authenticator shows beside the address; the address when absent.
    #[schema(max_length = 100, example = "John Doe")]
    pub display_name: Option<String>,
}

/// The browser's answer to a ceremony: `credential.toJSON()` (a `PublicKeyCredential`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PasskeyCeremonyRequest {
    #[schema(required = true, nullable = false)]
    pub ceremony_id: Option<String>,
    #[schema(required = true, nullable = false, value_type = Object)]
    pub credential: Option<serde_json::Value>,
    /// Adding a passkey: what the user calls it (1-100 characters; `Passkey` when
    /// absent). Ignored by a sign-in.
    #[schema(max_length = 100, example = "Work laptop")]
    pub name: Option<String>,
}

/// `POST /api/v1/auth/passkey/register` body: the registration's profile (as for
/// `POST /api/v1/users`, without a password) and the passkey ceremony's answer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PasskeySignUpRequest {
    #[schema(required = true, nullable = false)]
    pub ceremony_id: Option<String>,
    /// `credential.toJSON()` of `navigator.credentials.create()`.
    #[schema(required = true, nullable = false, value_type = Object)]
    pub credential: Option<serde_json::Value>,
    /// 1-100 characters; `Passkey` when absent.
    #[schema(max_length = 100, example = "Phone")]
    pub passkey_name: Option<String>,
    /// The address the ceremony was started for.
    #[schema(
        required = true,
        nullable = false,
        min_length = 3,
        max_length = 254,
        example = "john.doe@example.com"
    )]
    pub email: Option<String>,
    #[schema(min_length = 2, max_length = 201, example = "John Doe")]
    pub name: Option<String>,
    #[schema(min_length = 2, max_length = 100)]
    pub first_name: Option<String>,
    #[schema(min_length = 2, max_length = 100)]
    pub last_name: Option<String>,
    #[schema(pattern = "^(male|female|non-binary|prefer-not-to-say)$")]
    pub gender: Option<String>,
    #[schema(pattern = "^(male|female|intersex)$")]
    pub sex: Option<String>,
    #[schema(min_length = 2, max_length = 255)]
    pub occupation: Option<String>,
    #[schema(
        min_length = 3,
        max_length = 32,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$"
    )]
    pub username: Option<String>,
    #[schema(format = Date)]
    pub date_of_birth: Option<String>,
}

impl PasskeySignUpRequest {
    /// The profile under the registration rules (every problem reported).
    pub fn profile(&self, required: RequiredFields) -> Result<Profile, Vec<FieldError>> {
        Profile::parse(
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
            },
            required,
        )
    }
}

/// `PATCH /api/v1/auth/passkeys/{id}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenamePasskeyRequest {
    #[schema(required = true, nullable = false, min_length = 1, max_length = 100)]
    pub name: Option<String>,
}

/// One of the caller's passkeys.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyView {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// `synced` (a passkey a password manager or platform backs up and copies to the
    /// user's devices) or `device-bound` (it never leaves its authenticator).
    pub authenticator_type: &'static str,
    /// Whether the authenticator says it is backed up right now.
    pub backed_up: bool,
    /// How the browser reaches the authenticator: internal, hybrid, usb, nfc, ble.
    pub transports: Vec<String>,
}

impl From<PasskeyRecord> for PasskeyView {
    fn from(p: PasskeyRecord) -> Self {
        Self {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
            authenticator_type: if p.backup_eligible {
                "synced"
            } else {
                "device-bound"
            },
            backed_up: p.backup_state,
            transports: p.transports,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyAnswer {
    pub success: bool,
    pub data: PasskeyView,
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyListAnswer {
    pub success: bool,
    pub count: usize,
    pub data: Vec<PasskeyView>,
}
