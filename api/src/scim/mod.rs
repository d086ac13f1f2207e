//! SCIM 2.0 (RFC 7643, RFC 7644) at `/scim/v2`: identity providers provision accounts.
//! `schema` is the attribute table, `filter` the query and path grammar, `user` the
//! mapping of accounts, `patch` the PATCH operations. The use cases are in
//! `service::scim`, the handlers in `routes::scim`.
//!
//! Answers are `application/scim+json`; errors use SCIM's own format
//! (`urn:ietf:params:scim:api:messages:2.0:Error`), not the api's envelope, because
//! that is what a provider's client reads.

pub mod filter;
pub mod patch;
pub mod query;
pub mod schema;
pub mod user;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::failure::ServiceError;
use crate::state::AppState;

pub const CONTENT_TYPE: &str = "application/scim+json";
/// The largest request body, in bytes.
pub const BODY_LIMIT_BYTES: usize = 256 * 1024;

/// A SCIM error answer.
#[derive(Debug)]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    retry_after_secs: Option<u32>,
    www_authenticate: Option<&'static str>,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
            retry_after_secs: None,
            www_authenticate: None,
        }
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidValue"), detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidSyntax"), detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidFilter"), detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::new(400, Some("invalidPath"), detail)
    }

    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::new(400, Some("noTarget"), detail)
    }

    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::new(400, Some("mutability"), detail)
    }

    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(409, Some("uniqueness"), detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(404, None, format!("{what} not found"))
    }

    pub fn unauthenticated() -> Self {
        Self {
            www_authenticate: Some("Bearer"),
            ..Self::new(401, None, "a valid SCIM bearer token is required")
        }
    }
}

impl From<ServiceError> for ScimError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::EmailTaken => Self::uniqueness("another account has this email address"),
            ServiceError::UsernameTaken => Self::uniqueness("another account has this userName"),
            ServiceError::PreconditionFailed => Self::new(
                412,
                None,
                "the resource changed since the version in If-Match",
            ),
            ServiceError::Invalid(fields) => Self::invalid_value(
                fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            other => {
                let api = ApiError::from(other);
                api.log();
                Self {
                    status: api.status().as_u16(),
                    scim_type: None,
                    detail: api.message(),
                    retry_after_secs: api.retry_after_secs(),
                    www_authenticate: api.www_authenticate(),
                }
            }
        }
    }
}

impl From<tokio_postgres::Error> for ScimError {
    fn from(e: tokio_postgres::Error) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<common::store::user_events::OutboxError> for ScimError {
    fn from(e: common::store::user_events::OutboxError) -> Self {
        ServiceError::from(e).into()
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [schema::ERROR],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = answer(status, &body);
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(scheme) = self.www_authenticate {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(scheme));
        }
        response
    }
}

/// A SCIM answer: `application/scim+json`.
pub fn answer(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body.to_string(),
    )
        .into_response()
}

/// A resource answer with its `ETag` and, for a creation, its `Location`.
pub fn resource(status: StatusCode, body: &Value) -> Response {
    let mut response = answer(status, body);
    let meta = &body["meta"];
    if let Some(tag) = meta["version"].as_str() {
        if let Ok(v) = HeaderValue::from_str(tag) {
            response.headers_mut().insert(header::ETAG, v);
        }
    }
    if status == StatusCode::CREATED {
        if let Some(Ok(v)) = meta["location"].as_str().map(HeaderValue::from_str) {
            response.headers_mut().insert(header::LOCATION, v);
        }
    }
    response
}

/// The request body as JSON: `application/scim+json` or `application/json`.
pub fn body(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ScimError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence != CONTENT_TYPE && essence != "application/json" {
        return Err(ScimError::new(
            415,
            None,
            "send application/scim+json or application/json",
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

/// The version an `If-Match` header asks for: `None` without one or with `*`.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ScimError> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let raw = raw.to_str().unwrap_or_default().trim();
    if raw == "*" {
        return Ok(None);
    }
    raw.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| ScimError::new(412, None, "If-Match names no version of this resource"))
}

/// The base URL of the SCIM endpoints, as links in answers name them: the OpenID
/// Connect issuer when one is configured, else the request's own host.
pub fn base_url(app: &AppState, headers: &HeaderMap) -> String {
    if let Some(issuer) = app.accounts.oidc.as_ref().map(|p| p.issuer.clone()) {
        return format!("{}/scim/v2", issuer.trim_end_matches('/'));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    format!("http://{host}/scim/v2")
}
