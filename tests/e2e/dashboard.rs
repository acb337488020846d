//! The web dashboard: `GET /` and its files as the binary serves them, the
//! switch that turns it off, and the page itself in a real browser
//! (headless Chromium driven by playwright-core, `tests/dashboard/`)
//! against a real server with the examples deployed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::{Method, StatusCode};

use crate::support::{clean_command, heavy, output_within, wasm, wasm_path, Server};

/// The admin token of the server the browser test runs against.
const TOKEN: &str = "dashboard-s3cret";
/// How long the browser script may run; it bounds itself at 120 s.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);
/// Debian's Chromium, which the Makefile installs; playwright-core drives it.
const CHROMIUM: &str = "/usr/bin/chromium";

/// Where screenshots of the main pages go: `dashboard-screenshots/` in the
/// build dir (`CARGO_TARGET_TMPDIR` is its `tmp/`).
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("dashboard-screenshots")
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_a_strict_policy() {
    let server = Server::start(&[]);
    let page = server.request(Method::GET, "/", &[], Vec::new()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.content_type.as_deref(), Some("text/html; charset=utf-8"));
    let policy = page.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(page.headers["cache-control"], "no-cache");
    assert!(page.text().contains(r#"<script type="module" src="/dashboard/app.js">"#), "{}", page.text());
    for script in
        ["/dashboard/app.js", "/dashboard/api.js", "/dashboard/form.js", "/dashboard/dom.js", "/dashboard/live.js"]
    {
        let answer = server.request(Method::GET, script, &[], Vec::new()).await;
        assert_eq!(answer.status, StatusCode::OK, "{script}");
        assert_eq!(answer.content_type.as_deref(), Some("text/javascript; charset=utf-8"), "{script}");
        // A browser that has the file revalidates and gets 304.
        let etag = answer.headers["etag"].to_str().unwrap().to_owned();
        let again = server.request(Method::GET, script, &[("if-none-match", &etag)], Vec::new()).await;
        assert_eq!((again.status, again.body.len()), (StatusCode::NOT_MODIFIED, 0), "{script}");
    }
    let missing = server.request(Method::GET, "/dashboard/nope.js", &[], Vec::new()).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json().unwrap()["error"], "no dashboard file /dashboard/nope.js: the dashboard is at GET /");
}

#[tokio::test]
async fn no_dashboard_answers_404_as_before() {
    let by_flag = Server::start(&["--no-dashboard"]);
    let by_env = Server::start_with_env(&[], &[("WASMRPC_NO_DASHBOARD", "1")]);
    for server in [&by_flag, &by_env] {
        for path in ["/", "/dashboard/app.js"] {
            let answer = server.request(Method::GET, path, &[], Vec::new()).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
            assert!(answer.json().unwrap()["error"].as_str().unwrap().starts_with("no route for"), "{path}");
        }
        let list = server.request(Method::GET, "/procedures", &[], Vec::new()).await;
        assert_eq!(list.status, StatusCode::OK);
    }
    assert!(!by_flag.log().contains("dashboard: http://"), "{}", by_flag.log());
}

/// Everything a person does in the page, in one browser: the list (live),
/// "try it" (math.add 2 + 3 = 5, the curl command, a wrong type's -32602, a
/// nested form), a module's HTML shown as text, deploy with the admin token
/// (a wrong one's 401), rollback and remove; no console errors. The checks
/// are in tests/dashboard/dashboard.test.mjs.
#[tokio::test]
async fn the_dashboard_in_a_browser() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
    );
    // A browser loads both cores for a while.
    let _heavy = heavy().await;
    let server = Server::start(&["--admin-token", TOKEN]);
    let authorization = format!("Bearer {TOKEN}");
    // flip: version 1 answers 1, version 2 answers 2; the page rolls back.
    for (name, file) in
        [("math", "math"), ("json", "json"), ("markup", "test_markup"), ("flip", "test_v1"), ("flip", "test_v2")]
    {
        let path = format!("/procedures/{name}");
        let answer = server.request(Method::PUT, &path, &[("authorization", &authorization)], wasm(file)).await;
        assert!(answer.status.is_success(), "deploy {name}: {} {}", answer.status, answer.text());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/dashboard/dashboard.test.mjs");
    let mut node = clean_command("node");
    node.arg(&script)
        .env("DASHBOARD_URL", &server.url)
        .env("DASHBOARD_TOKEN", TOKEN)
        .env("DASHBOARD_UPLOAD", wasm_path("text"))
        .env("DASHBOARD_SCREENSHOTS", screenshot_dir());
    let output = tokio::task::spawn_blocking(move || output_within(node, BROWSER_TIMEOUT)).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser test failed (screenshots in {}):\n{stdout}\n{}\n--- server log:\n{}",
        screenshot_dir().display(),
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

/// Percent-encodes a bucket or key as one path segment of the kv admin API.
fn segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A procedure's key-value data in a browser: the buckets with their keys
/// and bytes (after a 401 until the token is entered), a bucket and a key
/// with markup in them shown as text, a value that is not UTF-8 as hex with
/// a note, and "More keys" paging to the end of a bucket of 60. The data is
/// written through the admin API; the checks are in
/// tests/dashboard/kv.test.mjs.
#[tokio::test]
async fn key_value_data_in_a_browser() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
    );
    let _heavy = heavy().await;
    let server = Server::start(&["--admin-token", TOKEN]);
    let authorization = format!("Bearer {TOKEN}");
    let auth = [("authorization", authorization.as_str())];
    let answer = server.request(Method::PUT, "/procedures/math", &auth, wasm("math")).await;
    assert!(answer.status.is_success(), "deploy math: {} {}", answer.status, answer.text());
    let mut blob = vec![0xff, 0xfe];
    blob.extend((0..298_u32).map(|i| i as u8));
    let mut writes = vec![
        (
            r#"<script>alert("bucket")</script>"#.to_owned(),
            r#"<img src=x onerror="window.pwned=1">"#.to_owned(),
            r#"<b onmouseover="window.pwned=2">bold</b> café"#.as_bytes().to_vec(),
        ),
        ("default".to_owned(), "blob".to_owned(), blob),
    ];
    writes.extend((0..60).map(|i| ("many".to_owned(), format!("key {i:02}"), format!("value {i}").into_bytes())));
    for (bucket, key, value) in writes {
        let path = format!("/procedures/math/kv/{}/{}", segment(&bucket), segment(&key));
        let answer = server.request(Method::PUT, &path, &auth, value).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "PUT {path}: {}", answer.text());
    }
    let kv_js = server.request(Method::GET, "/dashboard/kv.js", &[], Vec::new()).await;
    assert_eq!(kv_js.status, StatusCode::OK);
    assert_eq!(kv_js.content_type.as_deref(), Some("text/javascript; charset=utf-8"));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/dashboard/kv.test.mjs");
    let mut node = clean_command("node");
    node.arg(&script)
        .env("DASHBOARD_URL", &server.url)
        .env("DASHBOARD_TOKEN", TOKEN)
        .env("DASHBOARD_SCREENSHOTS", screenshot_dir());
    let output = tokio::task::spawn_blocking(move || output_within(node, BROWSER_TIMEOUT)).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser test failed (screenshots in {}):\n{stdout}\n{}\n--- server log:\n{}",
        screenshot_dir().display(),
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
