//! `ApiError`: every failure the HTTP layer can answer, mapped to a status and the
//! error envelope `{"success":false,"error":{"code","message","details"?}}`. The cause of
//! a 5xx goes to the log; the response stays opaque.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::domain::registration::FieldError;

use crate::bodies::{ErrorBody, ErrorEnvelope};
use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("request body must be JSON")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("a registration for this email is already pending")]
    RegistrationPending,
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    #[error("not found")]
    NotFound(&'static str),
    /// No credentials were presented.
    #[error("authentication required")]
    Unauthenticated,
    /// The access or refresh token is malformed, expired, revoked or not ours.
    #[error("invalid token")]
    InvalidToken,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("forbidden")]
    Forbidden,
    /// Too many failed logins for this account.
    #[error("account locked")]
    AccountLocked { retry_after_secs: u32 },
    /// `If-Match` does not name the current version.
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("email taken")]
    EmailTaken,
    #[error("data key exists")]
    DataKeyExists,
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Back-pressure: the caller should retry after the given seconds.
    #[error("overloaded")]
    Overloaded { retry_after_secs: u32 },
    /// The client exceeded its rate limit.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u32 },
    /// The request took longer than the configured timeout.
    #[error("request timed out")]
    Timeout,
    /// A dependency failed; retryable.
    #[error("dependency unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RegistrationPending => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthenticated | ApiError::InvalidToken | ApiError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::AccountLocked { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::EmailTaken | ApiError::DataKeyExists => StatusCode::CONFLICT,
            ApiError::Overloaded { .. } | ApiError::Unavailable(_) | ApiError::Timeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "VALIDATION_ERROR",
            ApiError::MalformedJson(_) => "MALFORMED_JSON",
            ApiError::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ApiError::RegistrationPending => "REGISTRATION_PENDING",
            ApiError::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ApiError::NotFound(_) | ApiError::RouteNotFound => "NOT_FOUND",
            ApiError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::InvalidToken => "INVALID_TOKEN",
            ApiError::InvalidCredentials => "INVALID_CREDENTIALS",
            ApiError::Forbidden => "FORBIDDEN",
            ApiError::AccountLocked { .. } => "ACCOUNT_LOCKED",
            ApiError::PreconditionFailed => "PRECONDITION_FAILED",
            ApiError::EmailTaken => "EMAIL_TAKEN",
            ApiError::DataKeyExists => "DATA_KEY_EXISTS",
            ApiError::Overloaded { .. } => "OVERLOADED",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::Timeout => "TIMEOUT",
            ApiError::Unavailable(_) => "SERVICE_UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL_ERROR",
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Validation(_) => "Validation failed".into(),
            ApiError::MalformedJson(m) => format!("Request body is not valid JSON: {m}"),
            ApiError::UnsupportedMediaType => {
                "Request body must be JSON with Content-Type: application/json".into()
            }
            ApiError::PayloadTooLarge => "Request body exceeds 16 KiB".into(),
            ApiError::RegistrationPending => {
                "A registration for this email is already being processed".into()
            }
            ApiError::IdempotencyKeyReused => {
                "This Idempotency-Key was used with a different request".into()
            }
            ApiError::NotFound(what) => format!("{what} not found"),
            ApiError::RouteNotFound => "No such route".into(),
            ApiError::MethodNotAllowed => "Method not allowed on this route".into(),
            ApiError::Unauthenticated => {
                "Authentication required: send a Bearer access token".into()
            }
            ApiError::InvalidToken => "The token is invalid, expired or revoked".into(),
            ApiError::InvalidCredentials => "Invalid email or password".into(),
            ApiError::Forbidden => "You are not allowed to do this".into(),
            ApiError::AccountLocked { .. } => {
                "Too many failed logins for this account; retry later".into()
            }
            ApiError::PreconditionFailed => {
                "The resource changed since it was read (If-Match does not match its ETag)".into()
            }
            ApiError::EmailTaken => "This email belongs to another account".into(),
            ApiError::DataKeyExists => "An item with this key exists; use PUT to change it".into(),
            ApiError::Overloaded { .. } => "Too many registrations in flight; retry shortly".into(),
            ApiError::RateLimited { .. } => "Too many requests; retry later".into(),
            ApiError::Timeout => "The request took too long; retry shortly".into(),
            ApiError::Unavailable(_) => "A required service is unavailable; retry shortly".into(),
            ApiError::Internal(_) => "Internal server error".into(),
        }
    }
}

/// The one mapping of use-case failures to HTTP answers.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(fields) => ApiError::Validation(fields),
            ServiceError::RegistrationPending => ApiError::RegistrationPending,
            ServiceError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            ServiceError::NotFound(what) => ApiError::NotFound(what),
            ServiceError::InvalidToken => ApiError::InvalidToken,
            ServiceError::InvalidCredentials => ApiError::InvalidCredentials,
            ServiceError::Forbidden => ApiError::Forbidden,
            ServiceError::AccountLocked { retry_after_secs } => {
                ApiError::AccountLocked { retry_after_secs }
            }
            ServiceError::PreconditionFailed => ApiError::PreconditionFailed,
            ServiceError::EmailTaken => ApiError::EmailTaken,
            ServiceError::DataKeyExists => ApiError::DataKeyExists,
            ServiceError::Overloaded { retry_after_secs } => {
                ApiError::Overloaded { retry_after_secs }
            }
            ServiceError::Unavailable(e) => ApiError::Unavailable(e),
            ServiceError::Internal(e) => ApiError::Internal(e),
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
        let status = self.status();
        match &self {
            ApiError::Unavailable(e) => {
                tracing::warn!(event = "dependency_unavailable", error = %error_chain(e.as_ref()));
            }
            ApiError::Internal(e) => {
                tracing::error!(event = "internal_error", error = %error_chain(e.as_ref()));
            }
            _ => {}
        }
        let body = ErrorEnvelope {
            success: false,
            error: ErrorBody {
                code: self.code(),
                message: self.message(),
                details: match &self {
                    ApiError::Validation(details) => {
                        Some(details.iter().cloned().map(Into::into).collect())
                    }
                    _ => None,
                },
            },
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self {
            ApiError::Overloaded { retry_after_secs }
            | ApiError::RateLimited { retry_after_secs }
            | ApiError::AccountLocked { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Timeout => Some(1),
            ApiError::Unavailable(_) => Some(5),
            _ => None,
        };
        if matches!(self, ApiError::Unauthenticated) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, ApiError::InvalidToken) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_5xx_body_never_contains_the_cause() {
        let e = ApiError::Internal(anyhow::anyhow!("password authentication failed for user x"));
        assert_eq!(e.message(), "Internal server error");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn overload_carries_retry_after() {
        let r = ApiError::Overloaded {
            retry_after_secs: 1,
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
