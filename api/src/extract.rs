//! `ApiJson`: axum's JSON extractor with its rejections mapped into `ApiError`, so
//! oversized, non-JSON and malformed bodies answer in the error envelope.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use common::domain::registration::FieldError;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| map_rejection(JsonRejection::BytesRejection(e)))?;
        // serde fills a struct from a JSON array too (`[false]` as `{"value": false}`);
        // every body of this api is an object.
        let opens_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if !opens_object && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok() {
            return Err(ApiError::invalid(vec![FieldError::new(
                "body",
                "must be a JSON object",
            )]));
        }
        axum::Json::<T>::from_bytes(&bytes)
            .map(|axum::Json(v)| ApiJson(v))
            .map_err(map_rejection)
    }
}

/// `application/json` or any `+json` type, as axum's own extractor accepts.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// `Query` with its rejection (unknown parameter, wrong type) as a 400 in the envelope.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => {
                let message = std::error::Error::source(&rejection)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| rejection.body_text());
                let (field, message) = split_field(&message);
                let field = if field == "body" {
                    "query".to_owned()
                } else {
                    field
                };
                Err(ApiError::invalid(vec![FieldError::new(field, message)]))
            }
        }
    }
}

fn map_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonDataError(e) => {
            // A well-formed body of the wrong shape: unknown field, wrong type. serde's
            // message names the field and says nothing about the server.
            let message = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.body_text());
            let (field, message) = split_field(&message);
            ApiError::invalid(vec![FieldError::new(field, message)])
        }
        JsonRejection::JsonSyntaxError(e) => {
            let message = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "syntax error".to_owned());
            ApiError::MalformedJson(message)
        }
        JsonRejection::BytesRejection(e) => {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::MalformedJson("body could not be read".to_owned())
            }
        }
        other => ApiError::MalformedJson(other.body_text()),
    }
}

/// Splits serde's "path: message" into the field and the message; the unknown-field
/// error names its field inside the message instead.
fn split_field(message: &str) -> (String, String) {
    if let Some(field) = unknown_field_name(message) {
        return (field, "unknown field".to_owned());
    }
    match message.split_once(": ") {
        Some((path, rest)) if !path.is_empty() && path != "." && !path.contains(' ') => {
            (path.to_owned(), rest.to_owned())
        }
        _ => ("body".to_owned(), message.to_owned()),
    }
}

/// Pulls `foo` out of serde's "unknown field `foo`, expected one of ...".
fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unknown_field_is_named() {
        assert_eq!(
            unknown_field_name("unknown field `isAdmin`, expected one of `firstName`"),
            Some("isAdmin".into())
        );
        assert_eq!(unknown_field_name("invalid type: integer"), None);
    }

    #[test]
    fn a_wrong_type_is_reported_on_its_field() {
        assert_eq!(
            split_field("firstName: invalid type: integer `42`, expected a string"),
            (
                "firstName".to_owned(),
                "invalid type: integer `42`, expected a string".to_owned()
            )
        );
        assert_eq!(split_field("trailing characters").0, "body");
    }
}
