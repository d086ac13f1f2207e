//! The operators' console: static assets (`console/`, built by `make console`) served
//! under `/console` with a strict CSP: scripts, styles and connections of this origin
//! only, no inline script or style, no framing.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

/// The console's Content-Security-Policy.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// `/console` and everything below it.
pub fn routes(state: &AppState) -> Router<AppState> {
    let dir = state.operations.console_dir.clone();
    let not_built = dir.join("index.html").is_file().then_some(()).is_none();
    if not_built {
        tracing::warn!(event = "console_not_built", dir = %dir.display(), "the console's assets are missing: run `make console` (or set CONSOLE_DIR)");
    }
    let files = ServeDir::new(&dir)
        .append_index_html_on_directories(true)
        .not_found_service(axum::routing::any(not_found).with_state(()));
    // `/console` and `/console/` both answer the index; its assets are named by absolute
    // paths (`/console/app.js`), so either address works.
    Router::new()
        .nest_service("/console", files)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONSOLE_CSP),
        ))
        // Assets change with each release: always revalidate (ServeDir sends ETags).
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not found. If this is the console's address, its assets are not built: `make console`, or set CONSOLE_DIR.\n",
    )
        .into_response()
}
