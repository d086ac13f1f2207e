//! HTTP details shared by several routes: the user answer with its `ETag`, `If-Match`,
//! headers that carry a URL, and the client's request id.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::store::users::UserRecord;
use serde::Serialize;

use crate::bodies::users::{UserAnswer, UserView};
use crate::service::users::Expected;

const REQUEST_ID_HEADER: &str = "x-request-id";

/// The strong entity tag of a version of a user.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// `If-Match` as the versions a change may apply to. No header: no condition. A header
/// that names no entity tag (empty, or not text) is a condition nothing meets (412), so
/// a client that meant to send one never overwrites unconditionally.
pub fn expected_version(headers: &HeaderMap) -> Expected {
    if !headers.contains_key(header::IF_MATCH) {
        return Expected::AnyVersion;
    }
    let tags: Vec<&str> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().trim_start_matches("W/"))
        .filter(|s| !s.is_empty())
        .collect();
    if tags.contains(&"*") {
        Expected::Exists
    } else {
        Expected::OneOf(
            tags.iter()
                .filter_map(|t| t.strip_prefix('"')?.strip_suffix('"')?.parse().ok())
                .collect(),
        )
    }
}

/// The answer carrying one user: the profile and its `ETag`.
pub fn user(user: &UserRecord) -> Response {
    let body = UserAnswer {
        success: true,
        data: UserView::from(user),
    };
    with_header(Json(body), header::ETAG, &etag(user.version))
}

/// `body` with `status` and a header whose value is built at run time (a value that
/// is not a valid header is left out rather than failing the answer).
pub fn with_status_and_header(
    status: StatusCode,
    body: impl Serialize,
    name: HeaderName,
    value: &str,
) -> Response {
    with_header((status, Json(body)), name, value)
}

fn with_header(answer: impl IntoResponse, name: HeaderName, value: &str) -> Response {
    let mut response = answer.into_response();
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
    response
}

/// The request id the request-id layer set (or the client sent).
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_lists_weak_tags_and_star() {
        let mut h = HeaderMap::new();
        assert_eq!(expected_version(&h), Expected::AnyVersion);
        h.insert(header::IF_MATCH, HeaderValue::from_static("W/\"3\", \"4\""));
        assert_eq!(expected_version(&h), Expected::OneOf(vec![3, 4]));
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(expected_version(&h), Expected::Exists);
        h.insert(
            header::IF_MATCH,
            HeaderValue::from_static("\"stale-or-foreign\""),
        );
        assert_eq!(expected_version(&h), Expected::OneOf(vec![]));
    }

    #[test]
    fn an_empty_or_unreadable_if_match_is_a_condition_nothing_meets() {
        // Found by schemathesis: `If-Match:` with an empty value made the change
        // unconditional. A client that sent a condition gets 412, never an overwrite.
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, HeaderValue::from_static(""));
        assert_eq!(expected_version(&h), Expected::OneOf(vec![]));
        h.insert(header::IF_MATCH, HeaderValue::from_static(" , "));
        assert_eq!(expected_version(&h), Expected::OneOf(vec![]));
        h.insert(
            header::IF_MATCH,
            HeaderValue::from_bytes(b"\"\xff\"").unwrap(),
        );
        assert_eq!(expected_version(&h), Expected::OneOf(vec![]));
    }
}
