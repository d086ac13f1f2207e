//! `ApiError`: every failure the HTTP layer can answer, mapped to a status and the
//! error envelope `{"success":false,"error":{"code","message","details"?}}`. A use
//! case's `ServiceError` is mapped here, once; the HTTP layer adds the failures only it
//! can see (bodies, routes, limits). The cause of a 5xx goes to the log; the response
//! stays opaque.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::domain::registration::FieldError;

use crate::bodies::{ErrorBody, ErrorEnvelope};
use crate::failure::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// What a use case refused or could not do.
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("request body must be JSON")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    /// No credentials were presented.
    #[error("authentication required")]
    Unauthenticated,
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The client exceeded its rate limit.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u32 },
    /// The request took longer than the configured timeout.
    #[error("request timed out")]
    Timeout,
}

impl ApiError {
    /// A request part (query, header) that breaks a rule.
    pub fn invalid(fields: Vec<FieldError>) -> Self {
        ApiError::Service(ServiceError::Invalid(fields))
    }

    /// Logs a failure of a dependency or of ours (the answer never carries its cause).
    pub(crate) fn log(&self) {
        match self {
            ApiError::Service(ServiceError::Unavailable(e)) => {
                tracing::warn!(event = "dependency_unavailable", error = %error_chain(e.as_ref()));
            }
            ApiError::Service(ServiceError::Internal(e)) => {
                tracing::error!(event = "internal_error", error = %error_chain(e.as_ref()));
            }
            _ => {}
        }
    }

    pub fn status(&self) -> StatusCode {
        use ServiceError as S;
        match self {
            ApiError::Service(e) => match e {
                S::Invalid(_) => StatusCode::BAD_REQUEST,
                S::RegistrationPending
                | S::EmailTaken
                | S::UsernameTaken
                | S::DataKeyExists
                | S::DataQuotaExceeded
                | S::LastAdmin
                | S::MfaAlreadyEnabled
                | S::MfaNotEnabled
                | S::ImportInProgress
                | S::LastSignInMethod => StatusCode::CONFLICT,
                S::ImportTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                S::EmailNotVerified | S::MfaRequired | S::PasswordResetRequired => {
                    StatusCode::FORBIDDEN
                }
                S::LinkTokenInvalid => StatusCode::BAD_REQUEST,
                S::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                S::InvalidMfaCode | S::PasskeyRejected | S::InvalidSignInCode => {
                    StatusCode::UNAUTHORIZED
                }
                S::MfaNotConfigured => StatusCode::NOT_IMPLEMENTED,
                S::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
                S::NotFound(_) => StatusCode::NOT_FOUND,
                S::InvalidToken | S::InvalidCredentials => StatusCode::UNAUTHORIZED,
                S::Forbidden => StatusCode::FORBIDDEN,
                S::AccountLocked { .. } => StatusCode::TOO_MANY_REQUESTS,
                S::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
                S::Overloaded { .. } | S::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                S::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        use ServiceError as S;
        match self {
            ApiError::Service(e) => match e {
                S::Invalid(_) => "VALIDATION_ERROR",
                S::RegistrationPending => "REGISTRATION_PENDING",
                S::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
                S::NotFound(_) => "NOT_FOUND",
                S::InvalidToken => "INVALID_TOKEN",
                S::InvalidCredentials => "INVALID_CREDENTIALS",
                S::Forbidden => "FORBIDDEN",
                S::AccountLocked { .. } => "ACCOUNT_LOCKED",
                S::PreconditionFailed => "PRECONDITION_FAILED",
                S::EmailTaken => "EMAIL_TAKEN",
                S::UsernameTaken => "USERNAME_TAKEN",
                S::DataKeyExists => "DATA_KEY_EXISTS",
                S::LastAdmin => "LAST_ADMIN",
                S::DataQuotaExceeded => "DATA_QUOTA_EXCEEDED",
                S::EmailNotVerified => "EMAIL_NOT_VERIFIED",
                S::PasswordResetRequired => "PASSWORD_RESET_REQUIRED",
                S::MfaRequired => "MFA_REQUIRED",
                S::LinkTokenInvalid => "INVALID_OR_EXPIRED_TOKEN",
                S::RateLimited { .. } => "RATE_LIMITED",
                S::MfaAlreadyEnabled => "MFA_ALREADY_ENABLED",
                S::MfaNotEnabled => "MFA_NOT_ENABLED",
                S::InvalidMfaCode => "INVALID_MFA_CODE",
                S::MfaNotConfigured => "MFA_NOT_CONFIGURED",
                S::ImportTooLarge(_) => "PAYLOAD_TOO_LARGE",
                S::ImportInProgress => "IMPORT_IN_PROGRESS",
                S::PasskeyRejected => "PASSKEY_REJECTED",
                S::InvalidSignInCode => "INVALID_CODE",
                S::LastSignInMethod => "LAST_SIGN_IN_METHOD",
                S::Overloaded { .. } => "OVERLOADED",
                S::Unavailable(_) => "SERVICE_UNAVAILABLE",
                S::Internal(_) => "INTERNAL_ERROR",
            },
            ApiError::MalformedJson(_) => "MALFORMED_JSON",
            ApiError::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ApiError::RouteNotFound => "NOT_FOUND",
            ApiError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::Timeout => "TIMEOUT",
        }
    }

    pub(crate) fn message(&self) -> String {
        use ServiceError as S;
        match self {
            ApiError::Service(e) => match e {
                S::Invalid(_) => "Validation failed".into(),
                S::RegistrationPending => {
                    "A registration for this email is already being processed".into()
                }
                S::IdempotencyKeyReused => {
                    "This Idempotency-Key was used with a different request".into()
                }
                S::NotFound(what) => format!("{what} not found"),
                S::InvalidToken => "The token is invalid, expired or revoked".into(),
                S::InvalidCredentials => "Invalid email or password".into(),
                S::Forbidden => "You are not allowed to do this".into(),
                S::AccountLocked { .. } => {
                    "Too many failed logins for this account; retry later".into()
                }
                S::PreconditionFailed => {
                    "The resource changed since it was read (If-Match does not match its ETag)"
                        .into()
                }
                S::EmailTaken => "This email belongs to another account".into(),
                S::UsernameTaken => "This username belongs to another account".into(),
                S::DataKeyExists => "An item with this key exists; use PUT to change it".into(),
                S::DataQuotaExceeded => {
                    "Your stored data would exceed its quota (items or bytes); delete some first"
                        .into()
                }
                S::LastAdmin => {
                    "This is the last admin: promote another user before demoting or deleting it"
                        .into()
                }
                S::PasswordResetRequired => {
                    "This account's password must be reset: request a password-reset link".into()
                }
                S::EmailNotVerified => {
                    "Verify your email address first: follow the link in the mail we sent".into()
                }
                S::MfaRequired => {
                    "This account has two-factor authentication: log in with POST /api/v1/auth/login"
                        .into()
                }
                S::LinkTokenInvalid => "This link is invalid, was used already or expired".into(),
                S::RateLimited { .. } => "Too many requests; retry later".into(),
                S::MfaAlreadyEnabled => "Two-factor authentication is enabled already".into(),
                S::MfaNotEnabled => "Two-factor authentication is not enabled".into(),
                S::InvalidMfaCode => "The code is wrong, expired or was used already".into(),
                S::MfaNotConfigured => {
                    "Two-factor authentication is not configured on this server".into()
                }
                S::ImportTooLarge(why) => format!("The import is too large: {why}; split it"),
                S::ImportInProgress => {
                    "You have as many imports running as allowed; wait for one to finish".into()
                }
                S::PasskeyRejected => {
                    "The passkey was not accepted: start the sign-in again".into()
                }
                S::InvalidSignInCode => {
                    "The code is wrong, was used already or expired: ask for a new mail".into()
                }
                S::LastSignInMethod => {
                    "This is the account's last way to sign in: add a passkey or set a password first"
                        .into()
                }
                S::Overloaded { .. } => "Too many registrations in flight; retry shortly".into(),
                S::Unavailable(_) => "A required service is unavailable; retry shortly".into(),
                S::Internal(_) => "Internal server error".into(),
            },
            ApiError::MalformedJson(m) => format!("Request body is not valid JSON: {m}"),
            ApiError::UnsupportedMediaType => {
                "Request body must be JSON with Content-Type: application/json".into()
            }
            ApiError::PayloadTooLarge => "Request body exceeds 16 KiB".into(),
            ApiError::RouteNotFound => "No such route".into(),
            ApiError::MethodNotAllowed => "Method not allowed on this route".into(),
            ApiError::Unauthenticated => {
                "Authentication required: send a Bearer access token".into()
            }
            ApiError::RateLimited { .. } => "Too many requests; retry later".into(),
            ApiError::Timeout => "The request took too long; retry shortly".into(),
        }
    }

    pub(crate) fn retry_after_secs(&self) -> Option<u32> {
        match self {
            ApiError::Service(
                ServiceError::Overloaded { retry_after_secs }
                | ServiceError::AccountLocked { retry_after_secs }
                | ServiceError::RateLimited { retry_after_secs },
            )
            | ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Timeout => Some(1),
            ApiError::Service(ServiceError::Unavailable(_)) => Some(5),
            _ => None,
        }
    }

    pub(crate) fn www_authenticate(&self) -> Option<&'static str> {
        match self {
            ApiError::Unauthenticated => Some("Bearer"),
            ApiError::Service(ServiceError::InvalidToken) => Some("Bearer error=\"invalid_token\""),
            _ => None,
        }
    }
}

/// Formats an error with its whole `source()` chain for the log.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let details = match &self {
            ApiError::Service(ServiceError::Invalid(fields)) => {
                Some(fields.iter().cloned().map(Into::into).collect())
            }
            _ => None,
        };
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: self.code(),
                message: self.message(),
                details,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(value) = self.www_authenticate() {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(value));
        }
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_5xx_body_never_contains_the_cause() {
        let e = ApiError::from(ServiceError::Internal(anyhow::anyhow!(
            "password authentication failed for user x"
        )));
        assert_eq!(e.message(), "Internal server error");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn overload_carries_retry_after() {
        let r = ApiError::from(ServiceError::Overloaded {
            retry_after_secs: 1,
        })
        .into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn an_invalid_token_names_the_bearer_error() {
        let r = ApiError::from(ServiceError::InvalidToken).into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
    }
}
