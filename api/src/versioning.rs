//! API versions: `/api/v1` is the canonical prefix of every route; `/api` (the paths
//! the first clients were written against) and `/v1` are aliases answered by the same
//! handlers, each answer marked `Deprecation` with a `Link` to its `/api/v1` successor
//! (RFC 9745, RFC 8288). Nothing is removed: the aliases carry no `Sunset`.

use std::borrow::Cow;

use axum::extract::{OriginalUri, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The canonical prefix; the OpenAPI document lists every route under it.
pub const CANONICAL: &str = "/api/v1";
/// Prefixes answered identically to [`CANONICAL`] and marked deprecated.
pub const ALIASES: [&str; 2] = ["/api", "/v1"];
/// When the aliases were deprecated, as an RFC 9745 structured date (2026-11-23).
const DEPRECATED_SINCE: &str = "@1795392000";

/// The `/api/v1` path an alias path stands for; `None` for a canonical (or unversioned)
/// path.
pub fn successor(path: &str) -> Option<String> {
    if is_canonical(path) {
        return None;
    }
    ALIASES.iter().find_map(|alias| {
        let rest = path.strip_prefix(alias)?;
        (rest.is_empty() || rest.starts_with('/')).then(|| format!("{CANONICAL}{rest}"))
    })
}

fn is_canonical(path: &str) -> bool {
    path.strip_prefix(CANONICAL)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// A route template under its canonical prefix, so a metric series does not split when
/// a client moves from an alias to `/api/v1`. Allocates only for alias routes.
pub fn canonical_route(route: &str) -> Cow<'_, str> {
    match successor(route) {
        Some(canonical) => Cow::Owned(canonical),
        None => Cow::Borrowed(route),
    }
}

/// Middleware of the alias routers: the answer is the canonical route's, plus
/// `Deprecation` and `Link: <successor>; rel="successor-version"`.
pub async fn mark_deprecated(request: Request, next: Next) -> Response {
    // Nested routers see the path with the prefix stripped; the original has it.
    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |u| u.0.path());
    let link = successor(path).and_then(|successor| {
        HeaderValue::try_from(format!("<{successor}>; rel=\"successor-version\"")).ok()
    });
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("deprecation", HeaderValue::from_static(DEPRECATED_SINCE));
    if let Some(link) = link {
        headers.append(axum::http::header::LINK, link);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_path_has_its_v1_successor() {
        assert_eq!(
            successor("/api/users/a%40b.c").as_deref(),
            Some("/api/v1/users/a%40b.c")
        );
        assert_eq!(successor("/v1/users").as_deref(), Some("/api/v1/users"));
        assert_eq!(successor("/api").as_deref(), Some("/api/v1"));
    }

    #[test]
    fn canonical_and_unversioned_paths_have_no_successor() {
        assert_eq!(successor("/api/v1/users"), None);
        assert_eq!(successor("/api/v1"), None);
        assert_eq!(successor("/metrics"), None);
        assert_eq!(successor("/health"), None);
        // A prefix match must end at a segment boundary.
        assert_eq!(successor("/apix/users"), None);
        assert_eq!(successor("/v10/users"), None);
    }

    #[test]
    fn route_labels_are_canonical_whichever_prefix_was_called() {
        assert_eq!(canonical_route("/api/users/{id}"), "/api/v1/users/{id}");
        assert_eq!(canonical_route("/v1/users/{id}"), "/api/v1/users/{id}");
        assert!(matches!(
            canonical_route("/api/v1/users/{id}"),
            Cow::Borrowed(_)
        ));
    }
}
