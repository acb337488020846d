//! The command line against a real server: deploy, call, list, remove, and
//! the errors a user sees.

use hyper::{Method, StatusCode};

use crate::support::{wasm_path, wasmrpc, wasmrpc_with_env, Server};

#[tokio::test(flavor = "multi_thread")]
async fn deploy_call_list_remove() {
    let server = Server::start(&[]);
    let url = server.url.clone();
    let math = wasm_path("math");
    let math = math.to_str().unwrap();
    let run = |args: Vec<&str>| {
        let mut all = args;
        all.extend(["--server", &url]);
        wasmrpc(&all)
    };
    let (ok, out, err) = tokio::task::block_in_place(|| run(vec!["deploy", "math", math]));
    assert!(ok, "{err}");
    assert!(out.contains("deployed math version 1"), "{out}");
    assert!(out.contains("math.add"), "{out}");

    let (ok, out, err) = tokio::task::block_in_place(|| run(vec!["call", "math.add", "[2, 40]"]));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "42");

    // Reuse is chosen at deploy; the server says what is wrong with it.
    let reuse = vec!["deploy", "math", math, "--reuse", "50", "--reuse-idle-ms", "1500", "--reuse-memory-mib", "8"];
    let (ok, out, err) = tokio::task::block_in_place(|| run(reuse));
    assert!(ok, "{err}");
    assert!(out.contains("updated math version 2"), "{out}");
    assert!(out.contains("reuse: up to 50 calls per instance, idle 1500 ms, dropped above 8 MiB"), "{out}");
    let (ok, _, err) = tokio::task::block_in_place(|| run(vec!["deploy", "math", math, "--reuse", "0"]));
    assert!(!ok);
    assert!(err.contains("invalid reuse=0"), "{err}");
    let (ok, _, err) = tokio::task::block_in_place(|| run(vec!["deploy", "math", math, "--reuse-idle-ms", "5"]));
    assert!(!ok);
    assert!(err.contains("--reuse"), "{err}");
    let (ok, out, _) = tokio::task::block_in_place(|| run(vec!["call", "math.add", r#"{"a": 1, "b": 2}"#]));
    assert!(ok);
    assert_eq!(out.trim(), "3");

    let (ok, out, err) = tokio::task::block_in_place(|| run(vec!["call", "math.divide", "[1, 0]"]));
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("error 1: division by zero"), "{err}");
    assert!(err.contains(r#""a": 1.0"#) || err.contains(r#""a":1.0"#), "the error's data is not shown: {err}");

    let (ok, _, err) = tokio::task::block_in_place(|| run(vec!["call", "math.add", "[1, 2"]));
    assert!(!ok);
    assert!(err.contains("PARAMS is not valid JSON"), "{err}");

    let (ok, out, _) = tokio::task::block_in_place(|| run(vec!["list"]));
    assert!(ok);
    assert!(out.contains("math v2"), "{out}");

    let (ok, out, _) = tokio::task::block_in_place(|| run(vec!["remove", "math"]));
    assert!(ok);
    assert!(out.contains("removed math"));
    let (ok, _, err) = tokio::task::block_in_place(|| run(vec!["remove", "math"]));
    assert!(!ok);
    assert!(err.contains("404") && err.contains("math"), "{err}");
}

/// Against a server with an admin token, the server and the token come
/// from `WASMRPC_SERVER` and `WASMRPC_ADMIN_TOKEN`; a wrong token is refused
/// and nothing is deployed.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_takes_server_and_token_from_the_environment() {
    let server = Server::start(&["--admin-token", "s3cret"]);
    let math = wasm_path("math");
    let math = math.to_str().unwrap();
    let run = |args: &[&str], token: &str| {
        let env = [("WASMRPC_SERVER", server.url.as_str()), ("WASMRPC_ADMIN_TOKEN", token)];
        tokio::task::block_in_place(|| wasmrpc_with_env(args, &env))
    };
    let (ok, _, err) = run(&["deploy", "math", math], "wrong");
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    let (ok, out, _) = run(&["list"], "wrong");
    assert!(ok && !out.contains("math"), "{out}");
    let (ok, out, err) = run(&["deploy", "math", math], "s3cret");
    assert!(ok, "{err}");
    assert!(out.contains("deployed math version 1"), "{out}");
    let (ok, out, err) = run(&["call", "math.add", "[2, 40]"], "");
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "42");
    let (ok, _, err) = run(&["remove", "math"], "");
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
    let (ok, out, err) = run(&["remove", "math"], "s3cret");
    assert!(ok, "{err}");
    assert!(out.contains("removed math"), "{out}");
}

/// Every limit of DESIGN.md's table has its variable and its default, as
/// `serve --help` shows them (from the flag definitions themselves).
#[test]
fn serve_help_names_each_variable_and_default() {
    let (ok, out, err) = wasmrpc(&["serve", "--help"]);
    assert!(ok, "{err}");
    let block = |flag: &str| -> String {
        let start = out.find(&format!("{flag} ")).unwrap_or_else(|| panic!("no {flag} in\n{out}"));
        let rest = &out[start..];
        let end = rest[1..].find("\n  -").map_or(rest.len(), |i| i + 1);
        rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
    };
    for (flag, env, default) in [
        ("--time-limit-ms", "WASMRPC_TIME_LIMIT_MS", Some("2000")),
        ("--memory-limit-mib", "WASMRPC_MEMORY_LIMIT_MIB", Some("64")),
        ("--max-module-mib", "WASMRPC_MAX_MODULE_MIB", Some("32")),
        ("--max-body-kib", "WASMRPC_MAX_BODY_KIB", Some("1024")),
        ("--max-batch", "WASMRPC_MAX_BATCH", Some("100")),
        ("--max-concurrent-calls", "WASMRPC_MAX_CONCURRENT_CALLS", Some("32 per core")),
        ("--listen", "WASMRPC_LISTEN", Some("127.0.0.1:8080")),
        ("--data-dir", "WASMRPC_DATA_DIR", Some("./wasmrpc-data")),
        ("--admin-token", "WASMRPC_ADMIN_TOKEN", None),
        ("--log-format", "WASMRPC_LOG_FORMAT", Some("text")),
    ] {
        let text = block(flag);
        assert!(text.contains(&format!("[env: {env}")), "{flag}: {text}");
        if let Some(default) = default {
            assert!(text.contains(&format!("[default: {default}]")), "{flag}: {text}");
        }
    }
}

#[test]
fn a_missing_server_is_named() {
    // Port 9 on loopback: nothing listens there.
    let (ok, _, err) = wasmrpc(&["list", "--server", "http://127.0.0.1:9"]);
    assert!(!ok);
    assert!(err.contains("cannot reach the server at http://127.0.0.1:9"), "{err}");
}

#[test]
fn every_command_has_help() {
    for command in ["serve", "deploy", "call", "list", "remove"] {
        let (ok, out, _) = wasmrpc(&[command, "--help"]);
        assert!(ok && out.contains("Usage"), "{command}: {out}");
    }
    let (_, out, _) = wasmrpc(&["serve", "--help"]);
    for flag in [
        "--listen",
        "--data-dir",
        "--time-limit-ms",
        "--memory-limit-mib",
        "--max-module-mib",
        "--max-body-kib",
        "--max-batch",
        "--max-concurrent-calls",
        "--max-connections",
        "--header-timeout-ms",
        "--body-timeout-ms",
        "--log-format",
        "--admin-token",
        "--watch",
    ] {
        assert!(out.contains(flag), "serve --help lacks {flag}");
    }
}

/// Runs `wasmrpc ARGS --server URL` with stdin from `stdin` (a file) or
/// empty; answers the raw output (a value is bytes, not text).
fn kv_cli(url: &str, args: &[&str], stdin: Option<&std::path::Path>) -> std::process::Output {
    use crate::support::{clean_command, output_within, wasmrpc_bin, COMMAND_TIMEOUT};
    let mut command = match stdin {
        None => clean_command(wasmrpc_bin()),
        Some(file) => {
            let mut sh = clean_command("sh");
            sh.args(["-c", r#"f="$1"; shift; exec "$@" < "$f""#, "sh"]).arg(file).arg(wasmrpc_bin());
            sh
        }
    };
    command.args(args).args(["--server", url]);
    tokio::task::block_in_place(|| output_within(command, COMMAND_TIMEOUT))
}

/// [`kv_cli`] that must succeed; answers stdout as text.
fn kv_ok(url: &str, args: &[&str]) -> String {
    let out = kv_cli(url, args, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wasmrpc {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`kv_cli`] that must fail; answers stderr.
fn kv_fails(url: &str, args: &[&str]) -> String {
    let out = kv_cli(url, args, None);
    assert!(!out.status.success(), "wasmrpc {args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `wasmrpc kv set/get/list/delete` against a real server, with keys and
/// buckets that need percent-encoding (`/`, spaces, unicode, `?#%+`),
/// values from an argument, a file and stdin (bytes that are not UTF-8),
/// and a bucket of more keys than one page (list follows the cursor). The
/// data is a name's whether or not it is deployed: nothing is.
#[tokio::test(flavor = "multi_thread")]
async fn kv_set_get_list_delete() {
    let server = Server::start(&[]);
    let url = server.url.as_str();
    let dir = tempfile::tempdir().unwrap();
    let slash = "drafts/2024 notes — ünïcödé ✓";
    let odd = "a+b?c#d%e&f=g";
    let out = kv_ok(url, &["kv", "set", "notes", "my bucket", slash, "héllo wörld"]);
    assert!(out.contains(&format!("set key {slash:?} in bucket \"my bucket\" of notes")), "{out}");
    let get = kv_cli(url, &["kv", "get", "notes", "my bucket", slash], None);
    assert!(get.status.success());
    assert_eq!(get.stdout, "héllo wörld".as_bytes(), "get prints the value's bytes, nothing added");
    // The key arrived as itself, not split at its `/` nor decoded twice.
    let path =
        "/procedures/notes/kv/my%20bucket/drafts%2F2024%20notes%20%E2%80%94%20%C3%BCn%C3%AFc%C3%B6d%C3%A9%20%E2%9C%93";
    let raw = server.request(Method::GET, path, &[], Vec::new()).await;
    assert_eq!((raw.status, raw.text()), (StatusCode::OK, "héllo wörld".to_owned()));

    let binary: Vec<u8> = vec![0, 0xff, 0xfe, b'\n', 7, 0x80];
    let file = dir.path().join("value.bin");
    std::fs::write(&file, &binary).unwrap();
    kv_ok(url, &["kv", "set", "notes", "my bucket", odd, "--file", file.to_str().unwrap()]);
    assert_eq!(kv_cli(url, &["kv", "get", "notes", "my bucket", odd], None).stdout, binary);
    let from_stdin = kv_cli(url, &["kv", "set", "notes", "default", "piped", "--file", "-"], Some(&file));
    assert!(from_stdin.status.success(), "{}", String::from_utf8_lossy(&from_stdin.stderr));
    assert_eq!(kv_cli(url, &["kv", "get", "notes", "default", "piped"], None).stdout, binary);

    // The buckets table: keys and bytes (of keys and values) per bucket.
    let table = kv_ok(url, &["kv", "list", "notes"]);
    let row = |bucket: &str| -> Vec<String> {
        let line = table.lines().find(|l| l.starts_with(bucket)).unwrap_or_else(|| panic!("no {bucket} in\n{table}"));
        line[bucket.len()..].split_whitespace().map(str::to_owned).collect()
    };
    let my_bytes = slash.len() + "héllo wörld".len() + odd.len() + binary.len();
    assert_eq!(row("my bucket"), ["2", &my_bytes.to_string()], "{table}");
    assert_eq!(row("default"), ["1", &("piped".len() + binary.len()).to_string()], "{table}");
    assert!(table.starts_with("BUCKET"), "{table}");
    let keys = kv_ok(url, &["kv", "list", "notes", "--bucket", "my bucket"]);
    let mut expected = vec![odd, slash];
    expected.sort_unstable();
    assert_eq!(keys.lines().collect::<Vec<_>>(), expected);
    assert_eq!(kv_ok(url, &["kv", "list", "notes", "--bucket", "my bucket", "--prefix", "drafts/"]).trim_end(), slash);

    // More keys than the server's page of 1000: the listing follows the cursor.
    let lines: String =
        (0..1500).map(|i| format!("{{\"bucket\":\"big\",\"key\":\"k{i:04}\",\"value\":\"eA==\"}}\n")).collect();
    let import = dir.path().join("big.jsonl");
    std::fs::write(&import, lines).unwrap();
    assert!(kv_ok(url, &["kv", "import", "notes", import.to_str().unwrap()]).contains("imported 1500 keys into notes"));
    let big = kv_ok(url, &["kv", "list", "notes", "--bucket", "big"]);
    let expected: Vec<String> = (0..1500).map(|i| format!("k{i:04}")).collect();
    assert_eq!(big.lines().collect::<Vec<_>>(), expected);
    assert_eq!(kv_ok(url, &["kv", "list", "notes", "--bucket", "big", "--prefix", "k149"]).lines().count(), 10);

    let out = kv_ok(url, &["kv", "delete", "notes", "my bucket", slash]);
    assert!(out.contains(&format!("deleted key {slash:?}")), "{out}");
    let err = kv_fails(url, &["kv", "get", "notes", "my bucket", slash]);
    assert!(err.contains("404") && err.contains("has no key") && err.contains("my bucket"), "{err}");
    assert_eq!(kv_ok(url, &["kv", "list", "notes", "--bucket", "my bucket"]).trim_end(), odd);
    assert_eq!(kv_ok(url, &["kv", "list", "nothing"]).trim_end(), "nothing has no key-value data");
    // A value is VALUE or --file, not both; --prefix needs --bucket.
    assert!(kv_fails(url, &["kv", "set", "notes", "b", "k", "v", "--file", "f"]).contains("cannot be used with"));
    assert!(kv_fails(url, &["kv", "list", "notes", "--prefix", "p"]).contains("--bucket"));
}

/// `export` then `delete --all --yes` then `import` gives back the same
/// data: the second export is the first, byte for byte. `delete --all`
/// without `--yes` deletes nothing and says how to.
#[tokio::test(flavor = "multi_thread")]
async fn kv_export_erase_import_restores_the_data() {
    let server = Server::start(&["--admin-token", "kv-s3cret"]);
    let url = server.url.as_str();
    let auth = [("authorization", "Bearer kv-s3cret")];
    let token = ["--admin-token", "kv-s3cret"];
    let with_token = |args: &[&str]| -> Vec<String> { args.iter().chain(&token).map(|s| (*s).to_owned()).collect() };
    let run_ok = |args: &[&str]| {
        let args = with_token(args);
        kv_ok(url, &args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // Three buckets, 250 keys in one (pages of the export), values of every byte.
    let mut writes: Vec<(String, String, Vec<u8>)> = vec![
        ("default".into(), "a/b c".into(), b"text".to_vec()),
        ("default".into(), "empty".into(), Vec::new()),
        ("ü bucket".into(), "ключ 🗝".into(), (0..=255).collect()),
    ];
    writes.extend((0..250).map(|i| ("pages".to_owned(), format!("{i:03}"), vec![b'v'; i])));
    for (bucket, key, value) in &writes {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        let path = format!("/procedures/notes/kv/{}/{}", enc(bucket), enc(key));
        let answer = server.request(Method::PUT, &path, &auth, value.clone()).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{path}: {}", answer.text());
    }
    // Without the token the server says 401, and the CLI says so.
    let err = kv_fails(url, &["kv", "export", "notes"]);
    assert!(err.contains("401"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.jsonl");
    run_ok(&["kv", "export", "notes", "-o", file.to_str().unwrap()]);
    let first = std::fs::read_to_string(&file).unwrap();
    assert_eq!(first.lines().count(), writes.len(), "{first}");
    assert_eq!(run_ok(&["kv", "export", "notes"]), first, "stdout and -o write the same");
    let line: serde_json::Value = serde_json::from_str(first.lines().find(|l| l.contains("ключ")).unwrap()).unwrap();
    assert_eq!(line["bucket"], "ü bucket");
    assert_eq!(line["key"], "ключ 🗝");
    assert_eq!(line.as_object().unwrap().len(), 3, "{line}");

    let refused = kv_cli(
        url,
        &with_token(&["kv", "delete", "notes", "--all"]).iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains(&format!("notes has {} keys", writes.len())) && said.contains("--all --yes"), "{said}");
    assert_eq!(run_ok(&["kv", "export", "notes"]), first, "delete --all without --yes deleted something");
    let erased = run_ok(&["kv", "delete", "notes", "--all", "--yes"]);
    assert!(erased.contains(&format!("erased {} keys of notes", writes.len())), "{erased}");
    assert_eq!(run_ok(&["kv", "export", "notes"]), "");
    assert_eq!(run_ok(&["kv", "list", "notes"]).trim_end(), "notes has no key-value data");

    let imported = run_ok(&["kv", "import", "notes", file.to_str().unwrap()]);
    assert!(imported.contains(&format!("imported {} keys into notes", writes.len())), "{imported}");
    assert_eq!(run_ok(&["kv", "export", "notes"]), first, "the import did not restore the same data");
    // From stdin into another name: the same data under that name.
    let piped = kv_cli(
        url,
        &with_token(&["kv", "import", "copy", "-"]).iter().map(String::as_str).collect::<Vec<_>>(),
        Some(&file),
    );
    assert!(piped.status.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    assert_eq!(run_ok(&["kv", "export", "copy"]), first);
    let value = kv_cli(
        url,
        &with_token(&["kv", "get", "copy", "ü bucket", "ключ 🗝"]).iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    assert_eq!(value.stdout, (0..=255).collect::<Vec<u8>>());
}

/// Against a server with short pages (`--kv-page-keys 7`), `list --bucket`
/// and `export` still read every key, following the cursor page by page.
#[tokio::test(flavor = "multi_thread")]
async fn kv_list_and_export_follow_a_servers_short_pages() {
    let server = Server::start(&["--kv-page-keys", "7"]);
    let url = server.url.as_str();
    let dir = tempfile::tempdir().unwrap();
    let lines: String = ["b", "a"]
        .iter()
        .flat_map(|bucket| {
            (0..30).map(move |i| format!("{{\"bucket\":\"{bucket}\",\"key\":\"{i:02}\",\"value\":\"eHk=\"}}\n"))
        })
        .collect();
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, &lines).unwrap();
    assert!(kv_ok(url, &["kv", "import", "notes", file.to_str().unwrap()]).contains("imported 60 keys"));
    let keys = kv_ok(url, &["kv", "list", "notes", "--bucket", "a"]);
    assert_eq!(keys.lines().collect::<Vec<_>>(), (0..30).map(|i| format!("{i:02}")).collect::<Vec<_>>());
    // Buckets in order of name: `a` first, though it was imported second.
    let export = kv_ok(url, &["kv", "export", "notes"]);
    let (b_lines, a_lines) = lines.split_at(lines.len() / 2);
    assert_eq!(export, format!("{a_lines}{b_lines}"));
}

/// An import with a malformed line names the line and writes nothing, also
/// of the lines before it.
#[tokio::test(flavor = "multi_thread")]
async fn kv_import_of_a_malformed_line_names_it_and_writes_nothing() {
    let server = Server::start(&[]);
    let url = server.url.as_str();
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"bucket":"default","key":"a","value":"aGk="}"#;
    for (bad, why) in [
        (r#"{"bucket":"default","key":"c","value":"not base64!"}"#, "value is not base64"),
        (r#"{"bucket":"default","key":"c"}"#, "not an entry"),
        ("this is not json", "not an entry"),
    ] {
        let file = dir.path().join("bad.jsonl");
        std::fs::write(&file, format!("{good}\n\n{}\n{bad}\n{good}\n", good.replace("\"a\"", "\"b\""))).unwrap();
        let err = kv_fails(url, &["kv", "import", "notes", file.to_str().unwrap()]);
        assert!(err.contains("line 4") && err.contains(why) && err.contains("400"), "{bad}: {err}");
        assert!(err.contains("bad.jsonl"), "the file is not named: {err}");
        assert_eq!(kv_ok(url, &["kv", "list", "notes"]).trim_end(), "notes has no key-value data", "{bad}");
    }
    let err = kv_fails(url, &["kv", "import", "notes", "/nonexistent/notes.jsonl"]);
    assert!(err.contains("cannot read /nonexistent/notes.jsonl"), "{err}");
}

/// A value of exactly 1 MiB (the default `--kv-max-value-kib`) is taken
/// (through the admin API and `kv set`), one byte more is refused with 413
/// and a message, and nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn kv_values_up_to_1_mib() {
    let server = Server::start(&[]);
    let url = server.url.as_str();
    let mib: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let put = server.request(Method::PUT, "/procedures/notes/kv/default/big", &[], mib.clone()).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.text());
    let get = server.request(Method::GET, "/procedures/notes/kv/default/big", &[], Vec::new()).await;
    assert_eq!(get.status, StatusCode::OK);
    assert!(get.body == mib, "the 1 MiB value came back different");
    let mut over = mib.clone();
    over.push(0);
    let put = server.request(Method::PUT, "/procedures/notes/kv/default/over", &[], over.clone()).await;
    assert_eq!(put.status, StatusCode::PAYLOAD_TOO_LARGE);
    let message = put.json().unwrap()["error"].as_str().unwrap().to_owned();
    assert!(message.contains("values are at most") && message.contains("1048576 bytes"), "{message}");
    let absent = server.request(Method::GET, "/procedures/notes/kv/default/over", &[], Vec::new()).await;
    assert_eq!(absent.status, StatusCode::NOT_FOUND);

    let dir = tempfile::tempdir().unwrap();
    let (exact, too_big) = (dir.path().join("exact"), dir.path().join("over"));
    std::fs::write(&exact, &mib).unwrap();
    std::fs::write(&too_big, &over).unwrap();
    kv_ok(url, &["kv", "set", "notes", "default", "cli", "--file", exact.to_str().unwrap()]);
    assert!(kv_cli(url, &["kv", "get", "notes", "default", "cli"], None).stdout == mib);
    let err = kv_fails(url, &["kv", "set", "notes", "default", "cli-over", "--file", too_big.to_str().unwrap()]);
    assert!(err.contains("413") && err.contains("values are at most 1048576 bytes"), "{err}");
}

/// `kv` and each subcommand have help; export's and import's say how to
/// move data to another server, such as one with a PostgreSQL registry.
#[test]
fn kv_help_says_how_to_move_data() {
    for sub in ["list", "get", "set", "delete", "export", "import"] {
        let (ok, out, err) = wasmrpc(&["kv", sub, "--help"]);
        assert!(ok && out.contains("Usage: wasmrpc kv"), "{sub}: {out}{err}");
    }
    for sub in ["export", "import"] {
        let (_, out, _) = wasmrpc(&["kv", sub, "--help"]);
        let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(text.contains("wasmrpc kv export NAME --server A > NAME.jsonl"), "{text}");
        assert!(text.contains("wasmrpc kv import NAME NAME.jsonl --server B"), "{text}");
        assert!(text.contains("PostgreSQL"), "{text}");
    }
}
