//! Bodies of email verification, password reset, two-factor authentication and the
//! session list.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::accounts::TokenAnswer;

/// `POST /api/auth/verify-email` body: the token of a verification link.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The `token` query parameter of the link in the mail.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 256)]
    pub token: Option<String>,
}

/// The answer of a verification: the address now verified.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyEmailAnswer {
    pub success: bool,
    pub email: String,
    /// Always `true`.
    pub email_verified: bool,
}

/// Body of the requests that send a mail to an address (`verify-email/resend`,
/// `password-reset`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    #[schema(
        required = true,
        nullable = false,
        min_length = 3,
        max_length = 254,
        example = "john.doe@example.com"
    )]
    pub email: Option<String>,
}

/// `POST /api/auth/password-reset/confirm` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PasswordResetConfirmRequest {
    /// The `token` query parameter of the link in the mail.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 256)]
    pub token: Option<String>,
    /// Under the password policy (length, not a common password).
    #[schema(required = true, nullable = false, value_type = String, min_length = 8, max_length = 128)]
    pub new_password: Option<SecretString>,
}

/// A login whose password was right for an account with a second factor.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaChallengeAnswer {
    pub success: bool,
    /// Always `true`: send a code with the challenge to `POST /api/auth/mfa/verify`.
    pub mfa_required: bool,
    /// Opaque, single use (`mfa_…`).
    pub challenge: String,
    /// Seconds the challenge stays valid (300).
    pub expires_in: u64,
}

impl std::fmt::Debug for MfaChallengeAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallengeAnswer").finish_non_exhaustive()
    }
}

/// `200` of a login: tokens, or a second-factor challenge.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginAnswer {
    Tokens(TokenAnswer),
    MfaRequired(MfaChallengeAnswer),
}

/// `POST /api/auth/mfa/verify` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyRequest {
    /// The `challenge` of the login answer.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 256)]
    pub challenge: Option<String>,
    /// Six digits from the authenticator app, or a recovery code (`xxxxx-xxxxx`).
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 32,
        example = "123456"
    )]
    pub code: Option<String>,
}

/// `POST /api/auth/mfa/totp/confirm` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaCodeRequest {
    #[schema(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 32,
        example = "123456"
    )]
    pub code: Option<String>,
}

/// `POST /api/auth/mfa/totp/enroll` body: the account's password, so that a stolen
/// access token alone cannot put a second factor of the thief's on the account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaEnrollRequest {
    #[schema(required = true, nullable = false, value_type = String, min_length = 1, max_length = 128)]
    pub password: Option<SecretString>,
}

/// `POST /api/auth/mfa/totp/disable` body: the password and a code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaDisableRequest {
    #[schema(required = true, nullable = false, value_type = String, min_length = 1, max_length = 128)]
    pub password: Option<SecretString>,
    /// A code from the app or a recovery code.
    #[schema(required = true, nullable = false, min_length = 1, max_length = 32)]
    pub code: Option<String>,
}

/// What an authenticator app needs to enrol.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaEnrollAnswer {
    pub success: bool,
    /// The secret in base32, for typing into an app.
    pub secret: String,
    /// `otpauth://totp/…`, what the QR code holds.
    pub otpauth_uri: String,
    /// The QR code as an SVG document.
    pub qr_svg: String,
}

impl std::fmt::Debug for MfaEnrollAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaEnrollAnswer").finish_non_exhaustive()
    }
}

/// The recovery codes, shown once: each replaces a code from the app, once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodesAnswer {
    pub success: bool,
    pub recovery_codes: Vec<String>,
}

/// `GET /api/auth/mfa`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaStatusAnswer {
    pub success: bool,
    pub enabled: bool,
    pub recovery_codes_left: i64,
}

/// One of the caller's sessions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub id: Uuid,
    /// When its login happened.
    pub created_at: DateTime<Utc>,
    /// Its last login or refresh.
    pub last_used_at: DateTime<Utc>,
    /// Address of that last login or refresh.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// When it ends unless refreshed.
    pub expires_at: DateTime<Utc>,
    /// The session of the access token that asked.
    pub current: bool,
}

impl SessionView {
    pub fn new(s: common::store::sessions::ActiveSession, current: bool) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            ip: s.ip,
            user_agent: s.user_agent,
            expires_at: s.expires_at,
            current,
        }
    }
}

/// `DELETE /api/auth/sessions`: how many other sessions ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsEndedAnswer {
    pub success: bool,
    pub count: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionListAnswer {
    pub success: bool,
    pub count: usize,
    pub data: Vec<SessionView>,
}

impl SessionListAnswer {
    pub fn new(sessions: impl Iterator<Item = SessionView>) -> Self {
        let data: Vec<SessionView> = sessions.collect();
        Self {
            success: true,
            count: data.len(),
            data,
        }
    }
}

/// `POST /api/v1/auth/passwordless/verify` body: the link's `token`, or the `email`
/// and the `code` of the mail.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInMailRequest {
    /// The `token` query parameter of the mail's link.
    #[schema(min_length = 1, max_length = 256)]
    pub token: Option<String>,
    #[schema(min_length = 3, max_length = 254, example = "john.doe@example.com")]
    pub email: Option<String>,
    /// The 6 digits of the mail.
    #[schema(pattern = "^[0-9]{6}$", example = "042917")]
    pub code: Option<String>,
}
