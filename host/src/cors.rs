//! Who may call from a web page: the `Origin` a browser sends with a `/rpc`
//! request (a POST, its preflight, or the WebSocket upgrade) is checked
//! against `--cors-origin`; a page of the server's own origin always may.
//! Allowed origins get the CORS headers that let their page read the
//! answer; others are refused with 403 before anything runs, so a page
//! elsewhere cannot make a browser call procedures behind its user's back
//! (a loopback or intranet server included). Requests without `Origin`
//! (every client that is not a browser) pass untouched.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, ALLOW, HOST, ORIGIN, VARY};
use hyper::{Response, StatusCode};

use crate::http_error::{HttpError, HttpResponse};

/// What the allowed origins' pages may send and read.
const ALLOW_HEADERS: &str = "authorization, content-type, traceparent, tracestate";
const EXPOSE_HEADERS: &str = "retry-after";
/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

/// Checks one `--cors-origin` value, and gives it in the form browsers send:
/// `scheme://host[:port]` in lower case (or `*`: any origin).
pub fn parse_origin(text: &str) -> Result<String, String> {
    let origin = text.trim().to_ascii_lowercase();
    if origin == "*" {
        return Ok(origin);
    }
    let bad = |why: &str| {
        Err(format!("--cors-origin {text:?}: {why}; give it as a browser sends it, e.g. https://app.example.com or http://localhost:3000 (or * for any origin)"))
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return bad("no scheme");
    };
    if scheme != "http" && scheme != "https" {
        return bad("the scheme must be http or https");
    }
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return bad("an origin has a host and maybe a port, no path, query or user");
    }
    if let Some((_, port)) = authority.rsplit_once(':').filter(|_| !authority.ends_with(']')) {
        if port.parse::<u16>().is_err() {
            return bad("the port is not a number from 0 to 65535");
        }
    }
    Ok(origin)
}

/// Whether a request from a page may go on, and the `Access-Control-Allow-Origin`
/// its answer then carries (`None`: not a cross-origin request). `Err`: why
/// not, for the 403 answer.
pub fn check(allowed: &[String], headers: &HeaderMap) -> Result<Option<HeaderValue>, String> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(None);
    };
    if same_origin(origin, headers) {
        return Ok(None);
    }
    let text = origin.to_str().unwrap_or_default();
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(text)) {
        return Ok(Some(origin.clone()));
    }
    crate::metrics::count(&crate::metrics::PUBLIC.origin, 1);
    Err(format!(
        "calls from pages of {text:?} are not allowed: start the server with --cors-origin {text} to allow them"
    ))
}

/// Adds the headers of an allowed cross-origin answer.
pub fn allow(response: &mut HttpResponse, origin: HeaderValue) {
    let headers = response.headers_mut();
    headers.insert("access-control-allow-origin", origin);
    headers.insert("access-control-expose-headers", HeaderValue::from_static(EXPOSE_HEADERS));
    headers.append(VARY, HeaderValue::from_static("origin"));
}

/// Answers `OPTIONS /rpc`: a browser's preflight before a cross-origin POST
/// (204 with what it may send, or 403), or a plain OPTIONS (204 with `Allow`).
pub fn preflight(allowed: &[String], headers: &HeaderMap) -> Result<HttpResponse, HttpError> {
    let mut response = Response::new(http_body_util::Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, POST, OPTIONS"));
    if let Some(origin) = check(allowed, headers).map_err(HttpError::Forbidden)? {
        allow(&mut response, origin);
        let headers = response.headers_mut();
        headers.insert("access-control-allow-methods", HeaderValue::from_static("POST"));
        headers.insert("access-control-allow-headers", HeaderValue::from_static(ALLOW_HEADERS));
        headers.insert("access-control-max-age", HeaderValue::from_static(MAX_AGE));
    }
    Ok(response)
}

/// Whether `origin` is the server's own (its host and port are the request's
/// `Host`): the dashboard, or a page served behind the same proxy.
fn same_origin(origin: &HeaderValue, headers: &HeaderMap) -> bool {
    let (Some(host), Ok(origin)) = (headers.get(HOST), origin.to_str()) else {
        return false;
    };
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    host.to_str().is_ok_and(|host| host.eq_ignore_ascii_case(authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (hyper::header::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn origins_are_read_as_browsers_send_them() {
        assert_eq!(parse_origin("https://App.Example.com").unwrap(), "https://app.example.com");
        assert_eq!(parse_origin("http://localhost:3000").unwrap(), "http://localhost:3000");
        assert_eq!(parse_origin("http://[::1]:8080").unwrap(), "http://[::1]:8080");
        assert_eq!(parse_origin("*").unwrap(), "*");
        for bad in ["app.example.com", "ftp://x", "https://x/path", "https://x:port", "https://", "http://u@x"] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_listed_or_own_origins_pass() {
        let allowed = vec!["https://app.example.com".to_owned()];
        assert_eq!(check(&allowed, &headers(&[])).unwrap(), None);
        let own = headers(&[("origin", "http://127.0.0.1:8080"), ("host", "127.0.0.1:8080")]);
        assert_eq!(check(&allowed, &own).unwrap(), None);
        let listed = headers(&[("origin", "https://app.example.com"), ("host", "api.example.com")]);
        assert_eq!(check(&allowed, &listed).unwrap().unwrap(), "https://app.example.com");
        let other = headers(&[("origin", "https://evil.example"), ("host", "api.example.com")]);
        let err = check(&allowed, &other).unwrap_err().to_string();
        assert!(err.contains("--cors-origin https://evil.example"), "{err}");
        assert!(check(&[], &listed).is_err());
        assert!(check(&["*".to_owned()], &other).unwrap().is_some());
    }

    #[test]
    fn a_preflight_says_what_the_page_may_send() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let asked = headers(&[("origin", "https://app.example.com"), ("access-control-request-method", "POST")]);
        let answer = preflight(&allowed, &asked).unwrap();
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        assert_eq!(answer.headers()["access-control-allow-origin"], "https://app.example.com");
        assert!(answer.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
        assert_eq!(answer.headers()["vary"], "origin");
        let refused = headers(&[("origin", "https://evil.example")]);
        assert!(preflight(&allowed, &refused).is_err());
    }
}
