//! The web dashboard: `GET /` answers one HTML page, and `/dashboard/*` its
//! scripts, stylesheet and icon. The files live in `host/dashboard/` and are
//! embedded into the binary at build time, so the page works offline and
//! always matches the server that serves it. The page is plain ES modules
//! that speak to the JSON API (`/procedures`, `/procedures/{name}/kv`,
//! `/rpc`, `/metrics`, and `/rpc` as a WebSocket for the procedure list's
//! changes) like any other client: nothing here knows about procedures.
//!
//! Every answer carries a strict Content-Security-Policy (scripts and styles
//! from this server only, no inline script, requests to this server only),
//! so a procedure's name or doc text that slipped into the page as markup
//! still could not run. `--no-dashboard` turns it all off (404, as before).

use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderMap, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Response, StatusCode};

use crate::http_error::{HttpError, HttpResponse};

/// What the page may load and where it may send requests: only this server.
/// No inline script or style, no plugins, no framing, no form posts
/// elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's files: the path each is served at, its type and its bytes.
const ASSETS: [(&str, &str, &[u8]); 9] = [
    ("/", "text/html; charset=utf-8", include_bytes!("../dashboard/index.html")),
    ("/dashboard/app.js", JS, include_bytes!("../dashboard/app.js")),
    ("/dashboard/api.js", JS, include_bytes!("../dashboard/api.js")),
    ("/dashboard/dom.js", JS, include_bytes!("../dashboard/dom.js")),
    ("/dashboard/form.js", JS, include_bytes!("../dashboard/form.js")),
    ("/dashboard/kv.js", JS, include_bytes!("../dashboard/kv.js")),
    ("/dashboard/live.js", JS, include_bytes!("../dashboard/live.js")),
    ("/dashboard/style.css", "text/css; charset=utf-8", include_bytes!("../dashboard/style.css")),
    ("/dashboard/icon.svg", "image/svg+xml", include_bytes!("../dashboard/icon.svg")),
];
const JS: &str = "text/javascript; charset=utf-8";

/// Whether `path` is one of the dashboard's (`/` or under `/dashboard/`),
/// known or not: the router sends these here.
pub fn owns(path: &str) -> bool {
    path == "/" || path.starts_with("/dashboard/")
}

/// Answers `GET path`: the asset with its type, an ETag and `no-cache` (the
/// browser revalidates, so a new binary's page is never mixed with an old
/// one's scripts), or 304 when the browser's copy is current.
pub fn serve(path: &str, request_headers: &HeaderMap) -> Result<HttpResponse, HttpError> {
    let Some(index) = ASSETS.iter().position(|(p, _, _)| *p == path) else {
        return Err(HttpError::NotFound(format!("no dashboard file {path}: the dashboard is at GET /")));
    };
    let (_, content_type, body) = ASSETS[index];
    let etag = &etags()[index];
    let fresh = request_headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag.to_str().unwrap_or_default()));
    let mut response = if fresh {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(Full::new(Bytes::from_static(body)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, etag.clone());
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(response)
}

/// Each asset's ETag (a prefix of its SHA-256), computed once.
fn etags() -> &'static [HeaderValue] {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, body)| {
                let hash = crate::store::sha256_hex(body);
                // Hex digits and quotes: always a valid header value.
                HeaderValue::from_str(&format!("\"{}\"", &hash[..16])).unwrap_or(HeaderValue::from_static("\"0\""))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    async fn body(response: HttpResponse) -> Bytes {
        response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default()
    }

    #[tokio::test]
    async fn each_asset_has_its_type_and_the_policy() {
        for (path, expected) in [
            ("/", "text/html"),
            ("/dashboard/app.js", "text/javascript"),
            ("/dashboard/style.css", "text/css"),
            ("/dashboard/icon.svg", "image/svg+xml"),
        ] {
            let response = serve(path, &HeaderMap::new()).unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert!(headers[CONTENT_TYPE].to_str().unwrap().starts_with(expected), "{path}");
            assert_eq!(headers[CONTENT_SECURITY_POLICY], CSP);
            assert_eq!(headers[CACHE_CONTROL], "no-cache");
            assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(!body(response).await.is_empty(), "{path}");
        }
        let err = serve("/dashboard/nope.js", &HeaderMap::new()).unwrap_err();
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
        assert!(err.to_string().contains("/dashboard/nope.js"), "{err}");
    }

    #[tokio::test]
    async fn a_current_copy_is_answered_304() {
        let first = serve("/dashboard/app.js", &HeaderMap::new()).unwrap();
        let etag = first.headers()[ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, etag.clone());
        let again = serve("/dashboard/app.js", &headers).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[ETAG], etag);
        assert!(body(again).await.is_empty());
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("\"stale\""));
        assert_eq!(serve("/dashboard/app.js", &headers).unwrap().status(), StatusCode::OK);
    }

    /// The page loads nothing from elsewhere, runs no inline script, and
    /// stays small (the issue's budget: under 100 KB in all).
    #[test]
    fn the_page_is_self_contained_and_small() {
        let total: usize = ASSETS.iter().map(|(_, _, body)| body.len()).sum();
        assert!(total < 100_000, "the dashboard's assets are {total} bytes");
        for (path, _, body) in ASSETS {
            let text = std::str::from_utf8(body).unwrap();
            // The SVG's namespace is a name, not a load.
            let text = text.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
            assert!(!text.contains("http://") && !text.contains("https://"), "{path} names another origin");
            assert!(!text.contains("innerHTML") && !text.contains("outerHTML"), "{path} inserts markup");
            assert!(!text.contains("insertAdjacentHTML") && !text.contains("document.write"), "{path}");
        }
        let index = std::str::from_utf8(ASSETS[0].2).unwrap();
        assert!(!index.contains("<script>") && !index.contains("<style"), "inline script or style in index.html");
        let inline_handler = index.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!inline_handler, "an inline event handler in index.html");
        assert!(index.contains(r#"<script type="module" src="/dashboard/app.js">"#), "{index}");
    }
}
