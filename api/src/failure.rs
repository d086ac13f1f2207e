//! `ServiceError`: how a use case fails, in the product's terms. Failures of the stores,
//! the pools and the broker are classified here, once: a broken dependency is
//! `Unavailable` (retryable), a unique constraint the product knows is its domain error.
//! `crate::error` maps these to HTTP answers.

use common::domain::registration::FieldError;
use common::store::redis::StoreError;

use crate::publisher::PublishError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("validation failed")]
    Invalid(Vec<FieldError>),
    #[error("a registration for this email is already pending")]
    RegistrationPending,
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The access or refresh token is expired, revoked, reused or names no live user.
    #[error("invalid token")]
    InvalidToken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("forbidden")]
    Forbidden,
    #[error("account locked")]
    AccountLocked { retry_after_secs: u32 },
    /// The resource changed since the version the caller based its change on.
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("email taken")]
    EmailTaken,
    #[error("username taken")]
    UsernameTaken,
    #[error("data key exists")]
    DataKeyExists,
    /// The caller's key/value data would exceed its quota.
    #[error("data quota exceeded")]
    DataQuotaExceeded,
    /// The change would leave no live admin.
    #[error("last admin")]
    LastAdmin,
    /// Login refused until the account's email is verified (`REQUIRE_VERIFIED_EMAIL`).
    #[error("email not verified")]
    EmailNotVerified,
    /// The account's stored hash names costs outside the bounds (an import): it is not
    /// computed; the owner must reset the password.
    #[error("password reset required")]
    PasswordResetRequired,
    /// A mailed token (verification, password reset) that is unknown, used or expired.
    #[error("link token invalid or expired")]
    LinkTokenInvalid,
    /// Too many requests of one kind for this email or client address.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u32 },
    /// The OAuth2 password grant cannot finish a login that needs a second factor.
    #[error("second factor required")]
    MfaRequired,
    #[error("second factor already enabled")]
    MfaAlreadyEnabled,
    #[error("no second factor")]
    MfaNotEnabled,
    /// A wrong, stale or reused second-factor code.
    #[error("invalid second-factor code")]
    InvalidMfaCode,
    /// Two-factor enrolment needs `MFA_ENCRYPTION_KEY`.
    #[error("two-factor authentication is not configured")]
    MfaNotConfigured,
    /// An import beyond its size or line limit (`IMPORT_MAX_BYTES`, `IMPORT_MAX_LINES`).
    #[error("import too large: {0}")]
    ImportTooLarge(String),
    /// The admin's imports running now reach `IMPORTS_PER_ADMIN`.
    #[error("import in progress")]
    ImportInProgress,
    /// A mailed sign-in code that is wrong, used or expired.
    #[error("invalid sign-in code")]
    InvalidSignInCode,
    /// A passkey sign-in whose assertion does not verify: an unknown credential, a bad
    /// signature, another origin or RP id, a counter that went back, a used or expired
    /// challenge. Deliberately one answer for all of them.
    #[error("passkey not accepted")]
    PasskeyRejected,
    /// The change would leave the account with no way to sign in (its last passkey
    /// without a password, or the password without a passkey).
    #[error("last sign-in method")]
    LastSignInMethod,
    /// Back-pressure (producer queue or hashing pool full): retry shortly.
    #[error("overloaded")]
    Overloaded { retry_after_secs: u32 },
    #[error("dependency unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ServiceError {
    /// One invalid field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ServiceError::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn unavailable(e: impl Into<anyhow::Error>) -> Self {
        ServiceError::Unavailable(e.into())
    }
}

/// Unique constraints whose violation is a domain answer rather than a fault.
const EMAIL_UNIQUE: &str = "users_email_key";
const USERNAME_UNIQUE: &str = "users_username_key";

impl From<tokio_postgres::Error> for ServiceError {
    fn from(e: tokio_postgres::Error) -> Self {
        let constraint = e.as_db_error().and_then(|d| d.constraint());
        match (e.code(), constraint) {
            (Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION), Some(EMAIL_UNIQUE)) => {
                ServiceError::EmailTaken
            }
            (Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION), Some(USERNAME_UNIQUE)) => {
                ServiceError::UsernameTaken
            }
            // Any other constraint failing is a bug of ours, not a dependency outage.
            (Some(code), _) if code.code().starts_with("23") => ServiceError::Internal(e.into()),
            // A data exception is caused by a value the client sent that slipped past
            // validation: refuse the request, don't blame the database.
            (Some(code), _) if code.code().starts_with("22") => {
                tracing::warn!(event = "database_refused_value", sqlstate = code.code());
                ServiceError::invalid("request", "contains a value that cannot be stored")
            }
            _ => ServiceError::Unavailable(e.into()),
        }
    }
}

impl From<common::store::user_events::OutboxError> for ServiceError {
    fn from(e: common::store::user_events::OutboxError) -> Self {
        match e {
            common::store::user_events::OutboxError::Database(e) => e.into(),
            e @ common::store::user_events::OutboxError::Encode(_) => {
                ServiceError::Internal(e.into())
            }
        }
    }
}

impl From<deadpool_postgres::PoolError> for ServiceError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ServiceError::Unavailable(e.into())
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Unavailable(e.into())
    }
}

impl From<PublishError> for ServiceError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::QueueFull => ServiceError::Overloaded {
                retry_after_secs: 1,
            },
            PublishError::Unavailable(e) => ServiceError::Unavailable(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_producer_queue_is_back_pressure_and_a_broker_failure_is_unavailable() {
        assert!(matches!(
            ServiceError::from(PublishError::QueueFull),
            ServiceError::Overloaded { .. }
        ));
        assert!(matches!(
            ServiceError::from(PublishError::Unavailable(anyhow::anyhow!("down"))),
            ServiceError::Unavailable(_)
        ));
    }
}
