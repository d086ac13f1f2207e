//! Authentication and authorisation: access tokens, the caller extractor, the bounded
//! password-hashing pool and the account settings.

pub mod hashing;
pub mod keys;
pub mod mfa;
pub mod oidc_keys;
pub mod passkeys;

use std::time::Duration;

use hashing::HashingPool;
use keys::JwtKeys;

use crate::protection::ClientIp;

/// Everything the account routes need beside the pools.
pub struct Accounts {
    pub jwt: JwtKeys,
    pub hashing: HashingPool,
    pub refresh_ttl: Duration,
    /// Absolute session lifetime; refreshing does not extend it.
    pub session_max_lifetime: Duration,
    /// Per-user bounds of the key/value data: (items, bytes).
    pub data_quota: (i64, i64),
    /// What a new password must be.
    pub password_policy: common::domain::password_policy::PasswordPolicy,
    /// The profile fields a registration must carry (`REQUIRED_PROFILE_FIELDS`).
    pub required_profile_fields: common::domain::registration::RequiredFields,
    pub lockout_max_attempts: u64,
    pub lockout_window: Duration,
    pub client_ip: ClientIp,
    /// A hash of a random password with the configured parameters: an unknown email is
    /// verified against it, so it costs the same time as a wrong password.
    pub dummy_hash: String,
    /// Logins wait for a verified email (`REQUIRE_VERIFIED_EMAIL`).
    pub require_verified_email: bool,
    /// Limits on requests that send mail (reset, resend).
    pub mail_limits: MailLimits,
    /// Two-factor settings; `None` keys: enrolment is refused.
    pub mfa: MfaSettings,
    /// The OpenID Connect provider; `None` when `OIDC_ISSUER` is not set.
    pub oidc: Option<oidc_keys::OidcProvider>,
    /// The WebAuthn relying party of passkeys.
    pub passkeys: passkeys::RelyingParty,
    /// Frontends a social sign-in may send the browser back to: the CORS origins.
    pub return_origins: Vec<String>,
}

/// Fixed-window limits on requests that send mail, per email and per client address.
pub struct MailLimits {
    pub per_email: u64,
    pub per_ip: u64,
    pub window: Duration,
}

pub struct MfaSettings {
    pub keys: Option<mfa::MfaKeys>,
    pub issuer: String,
    pub challenge_ttl: Duration,
}
