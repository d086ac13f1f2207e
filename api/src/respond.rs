//! HTTP details shared by several routes: the user answer with its `ETag`, `If-Match`,
//! conditional reads (`If-None-Match` → 304) and their `Cache-Control`, headers that
//! carry a URL, and the client's request id.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::store::users::UserRecord;
use serde::Serialize;

use crate::bodies::users::{UserAnswer, UserView};
use crate::error::ApiError;
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

/// Largest JSON answer [`conditional_get`] buffers to give it an entity tag; larger
/// answers (a user's export) go out streamed, without one.
const ETAG_BODY_LIMIT: usize = 256 * 1024;

/// `Cache-Control` of a read answer that has an entity tag: kept only by the client's own
/// cache (never a shared one: these are someone's data) and revalidated on every use, so
/// a repeated read costs a 304 without a body.
pub const REVALIDATE: &str = "private, no-cache";

/// Conditional reads. A `200` JSON answer to `GET`/`HEAD` gets an entity tag (the
/// handler's own, such as a user's version, or a weak tag hashed from the body) and
/// `Cache-Control` [`REVALIDATE`] unless the route set its own; when `If-None-Match`
/// names that tag the answer becomes `304 Not Modified` without a body.
pub async fn conditional_get(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return next.run(request).await;
    }
    let if_none_match = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::OK || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let (tag, body) = match parts.headers.get(header::ETAG) {
        Some(tag) => (tag.clone(), body),
        None => {
            use axum::body::HttpBody;
            let known_small = body
                .size_hint()
                .upper()
                .is_some_and(|n| n <= ETAG_BODY_LIMIT as u64);
            if !known_small {
                // Streamed or large: goes out as is, untagged.
                return Response::from_parts(parts, body);
            }
            let bytes = match axum::body::to_bytes(body, ETAG_BODY_LIMIT).await {
                Ok(bytes) => bytes,
                Err(_) => {
                    return ApiError::from(crate::service::ServiceError::Internal(anyhow::anyhow!(
                        "a read answer could not be buffered"
                    )))
                    .into_response()
                }
            };
            let tag = weak_etag(&bytes);
            (tag, axum::body::Body::from(bytes))
        }
    };
    parts.headers.insert(header::ETAG, tag.clone());
    parts
        .headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(REVALIDATE));
    parts
        .headers
        .append(header::VARY, HeaderValue::from_static("authorization"));
    if if_none_match.is_some_and(|v| none_match_hits(&v, &tag)) {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    Response::from_parts(parts, body)
}

/// A weak entity tag of a body: equal bodies, equal tags (SHA-256, 16 bytes shown).
fn weak_etag(body: &[u8]) -> HeaderValue {
    use sha2::Digest;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha2::Sha256::digest(body);
    // W/"<32 hex digits>", written in place (this runs on every JSON read).
    let mut tag = Vec::with_capacity(36);
    tag.extend_from_slice(b"W/\"");
    for b in &digest[..16] {
        tag.push(HEX[usize::from(b >> 4)]);
        tag.push(HEX[usize::from(b & 0xf)]);
    }
    tag.push(b'"');
    HeaderValue::from_bytes(&tag).unwrap_or(HeaderValue::from_static("W/\"0\""))
}

/// `If-None-Match` against an entity tag, by the weak comparison GET uses (RFC 9110
/// §13.1.2): `*` or any listed tag equal once `W/` is ignored.
fn none_match_hits(if_none_match: &HeaderValue, tag: &HeaderValue) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let tag = tag.to_str().map(opaque).unwrap_or_default();
    list.split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || opaque(candidate) == tag)
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
    fn if_none_match_hits_by_weak_comparison_in_a_list_or_star() {
        let tag = HeaderValue::from_static("\"7\"");
        let hits = |v: &'static str| none_match_hits(&HeaderValue::from_static(v), &tag);
        assert!(hits("\"7\""));
        assert!(hits("W/\"7\""));
        assert!(hits("\"1\", W/\"7\""));
        assert!(hits("*"));
        assert!(!hits("\"8\""));
        assert!(!hits(""));
        let weak = weak_etag(b"{}");
        assert!(weak.to_str().unwrap().starts_with("W/\""));
        assert_eq!(weak, weak_etag(b"{}"), "same body, same tag");
        assert_ne!(weak, weak_etag(b"[]"));
        // The first 16 bytes of SHA-256("{}") in lower-case hex.
        assert_eq!(weak, "W/\"44136fa355b3678a1146ad16f7e8649e\"");
    }

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
