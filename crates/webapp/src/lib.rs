//! The browser wallet (`web/`), built by Vite into `web/dist` and embedded here, so the
//! `micronode` binary serves it with no npm step for the user. `scripts/test.sh` rebuilds
//! `web/dist` from the sources and fails if the committed files differ.
//!
//! [`router`] serves `/` (the page), `/app.js` and `/app.css`, with headers that keep the page
//! to itself: no framing, no MIME sniffing, no referrer, and the page's own Content Security
//! Policy (in its `<meta>`, repeated as a header).
#![deny(missing_docs)]

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// The page.
pub const INDEX_HTML: &[u8] = include_bytes!("../../../web/dist/index.html");
/// Its script.
pub const APP_JS: &[u8] = include_bytes!("../../../web/dist/app.js");
/// Its style sheet.
pub const APP_CSS: &[u8] = include_bytes!("../../../web/dist/app.css");

/// The policy the page states in its `<meta>`, sent as a header too.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

fn file(content_type: &'static str, body: &'static [u8]) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, CSP),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The wallet's routes, to merge with the relay's.
pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/index.html",
            get(|| async { file("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { file("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { file("text/css; charset=utf-8", APP_CSS) }),
        )
}
