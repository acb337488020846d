//! The command line: `serve`, the client commands (`deploy`, `call`, `list`,
//! `remove`, `versions`, `rollback`, `kv`, `config`, `keys`), the procedure developer's (`new`,
//! `dev`, `component`) and `stub`, which generates typed clients. The
//! arguments are in `args.rs`; this file runs them.

pub mod admin_client;
mod args;
mod config;
pub mod dev;
mod keys;
mod kv;
mod process;
pub mod scaffold;
pub mod stub;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use hyper::{Method, StatusCode};
use serde_json::Value;

pub use args::{
    Cli, Command, ConfigCommand, DeploySettings, DevArgs, KeysCommand, KvCommand, LogFormat, ServeArgs, ServerArgs,
    StubArgs,
};

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Deploy { name, file, settings, server } => client_command(deploy_file(name, file, settings, server)),
        Command::Call { method, params, key, server } => client_command(call(method, params, key, server)),
        Command::List { server } => client_command(list(server)),
        Command::Remove { name, server } => client_command(remove(name, server)),
        Command::Versions { name, server } => client_command(versions(name, server)),
        Command::Rollback { name, version, server } => client_command(rollback(name, version, server)),
        Command::New { name, path, sdk } => new(name, path, sdk),
        Command::Component { core, out } => wasmrpc_componentize::file(&core, &out).map(|()| ExitCode::SUCCESS),
        Command::Stub(args) => stub::run(&args),
        Command::Dev(args) => dev::run(args),
        Command::Kv(command) => kv::run(command),
        Command::Config { name, command } => config::run(&name, command),
        Command::Keys(command) => keys::run(command),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    process::init_logging(args.log_format, "info");
    let config = args.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!("wasmrpc listening on http://{addr}");
        std::io::stdout().flush()?;
        if config.dashboard {
            tracing::info!("dashboard: http://{addr}/ (--no-dashboard turns it off)");
        }
        crate::server::run(listener, config, process::shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn client_command(fut: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(fut)
}

async fn admin_request(
    server: &ServerArgs,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<admin_client::Answer> {
    let admin = admin_client::AdminClient::new(&server.server, server.admin_token.as_deref());
    Ok(admin.request(method, path, body).await?)
}

async fn deploy_file(
    name: String,
    file: PathBuf,
    settings: DeploySettings,
    server: ServerArgs,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let path = format!("/procedures/{name}{}", settings.query());
    let answer = admin_request(&server, Method::PUT, &path, bytes).await?;
    let meta = answer.json()?;
    let verb = if answer.status == StatusCode::CREATED { "deployed" } else { "updated" };
    println!(
        "{verb} {name} version {} ({} bytes, sha256 {})",
        meta["version"],
        meta["size"],
        meta["sha256"].as_str().unwrap_or_default()
    );
    print_methods(&meta);
    if let Some(hosts) = meta["allowed_outbound"].as_array().filter(|h| !h.is_empty()) {
        let hosts: Vec<&str> = hosts.iter().filter_map(Value::as_str).collect();
        println!("  allowed outbound: {}", hosts.join(", "));
    }
    if let Some(calls) = meta["reuse"]["calls"].as_u64().filter(|&n| n > 1) {
        let memory =
            meta["reuse"]["memory_mib"].as_u64().map(|m| format!(", dropped above {m} MiB")).unwrap_or_default();
        println!("  reuse: up to {calls} calls per instance, idle {} ms{memory}", meta["reuse"]["idle_ms"]);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_methods(meta: &Value) {
    if let Some(methods) = meta["methods"].as_array() {
        let names: Vec<&str> = methods.iter().filter_map(Value::as_str).collect();
        println!("  methods: {}", names.join(", "));
    }
}

async fn call(
    method: String,
    params: Option<String>,
    key: Option<String>,
    server: ServerArgs,
) -> anyhow::Result<ExitCode> {
    let params: Option<Value> = params
        .map(|p| {
            serde_json::from_str(&p).with_context(|| {
                format!(
                    "PARAMS is not valid JSON: `{p}` (pass an array like '[1, 2]' or an object like '{{\"a\": 1}}')"
                )
            })
        })
        .transpose()?;
    if params.as_ref().is_some_and(|p| !p.is_array() && !p.is_object()) {
        bail!("PARAMS must be a JSON array or object, not a bare value");
    }
    let mut client = wasmrpc_client::Client::new(&server.server);
    // An empty variable (`WASMRPC_ADMIN_TOKEN=`) is no key at all.
    let key = key.filter(|k| !k.is_empty());
    if let Some(key) = &key {
        client = client.with_key(key);
    } else if let Some(token) = server.admin_token.as_deref().filter(|t| !t.is_empty()) {
        client = client.with_admin_token(token);
    }
    match client.call::<Value>(&method, params).await {
        Ok(result) => println!("{}", serde_json::to_string_pretty(&result)?),
        Err(wasmrpc_client::Error::Rpc(error)) => {
            eprintln!("error {}: {}", error.code, error.message);
            if let Some(data) = &error.data {
                eprintln!("{}", serde_json::to_string_pretty(data)?);
            }
            return Ok(ExitCode::FAILURE);
        }
        Err(other) => return Err(other.into()),
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(server: ServerArgs) -> anyhow::Result<ExitCode> {
    let answer = admin_request(&server, Method::GET, "/procedures", Vec::new()).await?;
    let all = answer.json()?;
    let all = all.as_array().cloned().unwrap_or_default();
    if all.is_empty() {
        println!("no procedures deployed");
    }
    for meta in all {
        println!(
            "{} v{} ({} bytes, deployed {})",
            meta["name"].as_str().unwrap_or_default(),
            meta["version"],
            meta["size"],
            meta["deployed_at"].as_str().unwrap_or_default()
        );
        print_methods(&meta);
    }
    Ok(ExitCode::SUCCESS)
}

fn new(name: String, path: Option<PathBuf>, sdk: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let dir = path.unwrap_or_else(|| PathBuf::from(&name));
    let created = scaffold::create(&name, &dir, sdk.as_deref())?;
    println!("created procedure crate `{name}` in {}:", dir.display());
    for file in &created.files {
        println!("  {}", dir.join(file).display());
    }
    println!("It depends on the guest SDK at {}.", created.sdk.display());
    let procedure = &created.procedure;
    if procedure != &name {
        println!("Its component is {procedure}.wasm; `wasmrpc dev` deploys it as `{procedure}`.");
    }
    println!();
    println!("Next:");
    println!("  rustup target add wasm32-wasip2   # once, if it is not installed");
    println!("  cd {}", dir.display());
    println!("  wasmrpc dev                       # build, deploy as `{procedure}`, redeploy on every save");
    println!("  wasmrpc call {procedure}.hello '[\"world\"]'   # in another terminal");
    Ok(ExitCode::SUCCESS)
}

async fn remove(name: String, server: ServerArgs) -> anyhow::Result<ExitCode> {
    admin_request(&server, Method::DELETE, &format!("/procedures/{name}"), Vec::new()).await?;
    println!("removed {name}");
    Ok(ExitCode::SUCCESS)
}

async fn versions(name: String, server: ServerArgs) -> anyhow::Result<ExitCode> {
    for kept in kept_versions(&name, &server).await? {
        println!(
            "{} v{} ({} bytes, deployed {}, sha256 {}){}",
            kept["name"].as_str().unwrap_or_default(),
            kept["version"],
            kept["size"],
            kept["deployed_at"].as_str().unwrap_or_default(),
            kept["sha256"].as_str().unwrap_or_default(),
            if kept["serving"] == true { "  <- serving" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn kept_versions(name: &str, server: &ServerArgs) -> anyhow::Result<Vec<Value>> {
    let answer = admin_request(server, Method::GET, &format!("/procedures/{name}/versions"), Vec::new()).await?;
    Ok(answer.json()?.as_array().cloned().unwrap_or_default())
}

async fn rollback(name: String, version: Option<u64>, server: ServerArgs) -> anyhow::Result<ExitCode> {
    let version = match version {
        Some(v) => v,
        None => previous_version(&name, &kept_versions(&name, &server).await?)?,
    };
    let path = format!("/procedures/{name}/versions/{version}/activate");
    let meta = admin_request(&server, Method::POST, &path, Vec::new()).await?.json()?;
    println!("{name} now serves version {} (sha256 {})", meta["version"], meta["sha256"].as_str().unwrap_or_default());
    print_methods(&meta);
    Ok(ExitCode::SUCCESS)
}

/// The version `rollback NAME` goes back to: the newest kept version older
/// than the serving one.
fn previous_version(name: &str, kept: &[Value]) -> anyhow::Result<u64> {
    let numbers = |serving: bool| {
        kept.iter().filter(move |v| (v["serving"] == true) == serving).filter_map(|v| v["version"].as_u64())
    };
    let Some(serving) = numbers(true).next() else {
        bail!("`{name}` is not serving: name the version to bring back (`wasmrpc versions {name}` lists them)");
    };
    numbers(false).filter(|&v| v < serving).max().with_context(|| {
        format!("`{name}` has no kept version older than version {serving}, the one serving: nothing to roll back to")
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser as _;

    use super::*;
    use crate::config::{self, Config};

    fn serve_config(args: &[&str]) -> anyhow::Result<Config> {
        let cli = Cli::try_parse_from(["wasmrpc", "serve"].iter().chain(args))?;
        let Command::Serve(serve) = cli.command else { unreachable!("parsed `serve`") };
        serve.config()
    }

    #[test]
    fn every_default_is_the_documented_one() {
        let config = serve_config(&[]).unwrap();
        let documented = Config::new(PathBuf::from("./wasmrpc-data"));
        assert_eq!(config.data_dir, documented.data_dir);
        assert_eq!(config.time_limit, Duration::from_millis(2000));
        assert_eq!(config.memory_limit_bytes, 64 << 20);
        assert_eq!(config.max_module_bytes, 32 << 20);
        assert_eq!(config.max_body_bytes, 1024 << 10);
        assert_eq!(config.max_batch, 100);
        assert_eq!(config.max_concurrent_calls, config::default_concurrent_calls());
        assert_eq!(config.max_connections, documented.max_connections);
        assert_eq!(config.header_read_timeout, documented.header_read_timeout);
        assert_eq!(config.body_read_timeout, documented.body_read_timeout);
        assert_eq!(config.admin_token, None);
        assert!(config.pagemap_scan);
        assert!(!config.guard_pages);
        assert_eq!(config.ready_instances, 1);
        assert!(config.dashboard);
        assert_eq!(config.keep_versions, 10);
    }

    #[test]
    fn flags_reach_the_config() {
        let config = serve_config(&[
            "--time-limit-ms=300",
            "--memory-limit-mib=16",
            "--max-module-mib=2",
            "--max-body-kib=8",
            "--max-batch=3",
            "--max-concurrent-calls=5",
            "--admin-token=s3cret",
            "--listen=0.0.0.0:0",
            "--no-pagemap-scan",
            "--guard-pages",
            "--ready-instances=0",
            "--no-dashboard",
            "--keep-versions=3",
        ])
        .unwrap();
        assert_eq!(config.time_limit, Duration::from_millis(300));
        assert_eq!(config.memory_limit_bytes, 16 << 20);
        assert_eq!(config.max_module_bytes, 2 << 20);
        assert_eq!(config.max_body_bytes, 8 << 10);
        assert_eq!(config.max_batch, 3);
        assert_eq!(config.max_concurrent_calls, 5);
        assert_eq!(config.admin_token.as_deref(), Some("s3cret"));
        assert!(!config.pagemap_scan);
        assert!(config.guard_pages);
        assert_eq!(config.ready_instances, 0);
        assert!(!config.dashboard);
        assert_eq!(config.keep_versions, 3);
    }

    #[test]
    fn bad_flags_are_refused_with_the_reason() {
        let refused = |args: &[&str], expected: &str| {
            let err = serve_config(args).expect_err("must be refused");
            assert!(format!("{err:#}").contains(expected), "{args:?}: {err:#}");
        };
        refused(&["--max-batch=0"], "--max-batch must be at least 1");
        refused(&["--max-concurrent-calls=0"], "--max-concurrent-calls must be at least 1");
        refused(&["--time-limit-ms=0"], "0 is not in 1..");
        refused(&["--memory-limit-mib=5000"], "5000 is not in 1..=4096");
        refused(&["--listen=0.0.0.0:0"], "without an admin token");
        refused(&["--keep-versions=0"], "0 is not in 1..=10000");
        // An empty token is no token: it must not open a public listener.
        refused(&["--listen=0.0.0.0:0", "--admin-token="], "without an admin token");
        assert_eq!(serve_config(&["--admin-token="]).unwrap().admin_token, None);
    }

    #[test]
    fn the_registry_password_comes_from_a_file_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "fr0m-file\n").unwrap();
        let file_flag = format!("--registry-password-file={}", file.display());
        let config = serve_config(&["--registry=postgres://app@127.0.0.1:5432/reg", &file_flag]).unwrap();
        let target = config.registry.unwrap();
        assert_eq!(target.to_string(), "postgres://app@127.0.0.1:5432/reg");
        let config = serve_config(&["--registry=postgres://app:s3cret@127.0.0.1:5432/reg"]).unwrap();
        assert!(!format!("{config:?}").contains("s3cret"), "{config:?}");
        let err = serve_config(&["--registry=postgres://app@127.0.0.1/reg", "--registry-password-file=/nonexistent"])
            .expect_err("must be refused");
        assert!(format!("{err:#}").contains("cannot read --registry-password-file /nonexistent"), "{err:#}");
        assert!(serve_config(&[&file_flag]).is_err(), "a password file without --registry");
    }

    #[test]
    fn rollback_goes_to_the_newest_older_kept_version() {
        let kept = |list: &[(u64, bool)]| -> Vec<Value> {
            list.iter().map(|(v, s)| serde_json::json!({"version": v, "serving": s})).collect()
        };
        assert_eq!(previous_version("m", &kept(&[(5, true), (4, false), (2, false)])).unwrap(), 4);
        // After a rollback to 3, the next one goes to 2, not to the newer 4.
        assert_eq!(previous_version("m", &kept(&[(4, false), (3, true), (2, false)])).unwrap(), 2);
        let err = previous_version("m", &kept(&[(1, true)])).unwrap_err();
        assert!(err.to_string().contains("no kept version older than version 1"), "{err}");
        let err = previous_version("m", &kept(&[(2, false)])).unwrap_err();
        assert!(err.to_string().contains("is not serving"), "{err}");
    }
}
