//! Bodies of login, refresh and the token answer.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/auth/login` body: `email` or `username`, and the password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's email, or (absent or null) `username` instead.
    #[schema(min_length = 1, max_length = 254, example = "john.doe@example.com")]
    pub email: Option<String>,
    #[schema(min_length = 3, max_length = 32, example = "john.doe")]
    pub username: Option<String>,
    #[schema(required = true, nullable = false, value_type = String, min_length = 1, max_length = 128, example = "correct horse battery")]
    pub password: Option<SecretString>,
}

/// `POST /api/auth/refresh` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefreshRequest {
    /// The `refreshToken` of the last login or refresh (`rt_…`).
    #[schema(required = true, nullable = false, value_type = String)]
    pub refresh_token: Option<SecretString>,
}

/// The answer of login and refresh.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenAnswer {
    pub success: bool,
    /// EdDSA JWT; claims sub, role, iat, exp, jti, iss, aud, sid.
    pub access_token: String,
    /// Opaque; single use: each refresh returns the next one.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime in seconds (900).
    pub expires_in: u64,
    /// Refresh-token lifetime in seconds (604800).
    pub refresh_expires_in: u64,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer").finish_non_exhaustive()
    }
}
