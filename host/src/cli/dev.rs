//! `wasmrpc dev [CRATE]`: the procedure developer's loop. It owns finding the
//! crate's artifact (`cargo metadata`), building it (`cargo build --target
//! wasm32-wasip2` in a fast profile, output as cargo prints it; for a crate
//! with `[package.metadata.wasmrpc] wasi = false`, `wasm32-unknown-unknown`
//! and `wasmrpc component`), deploying it with a
//! PUT, watching `src/`, `Cargo.toml` and `build.rs` to do it again on every
//! change, and starting a server in this process when none answers on a
//! loopback `--server`. Each round prints one line: the new version and the
//! time spent building and deploying, or why the serving version stays.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hyper::{Method, StatusCode};
use notify::RecursiveMode;
use serde_json::Value;

use super::admin_client::{self, AdminClient, AdminFailure};
use super::{DeploySettings, DevArgs};
use crate::config::Config;
use crate::registry;
use crate::watch::FileWatcher;

/// How long `GET /healthz` may take before the server counts as absent.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a server started here may take to open its data dir.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The compilation target of procedures.
const TARGET: &str = "wasm32-wasip2";
/// The target of a crate with `[package.metadata.wasmrpc] wasi = false`:
/// a core module without WASI imports, which `wasmrpc component` wraps.
const NO_WASI_TARGET: &str = "wasm32-unknown-unknown";
/// The profile `wasmrpc dev` builds with: the crate's release profile
/// without what makes a rebuild slow (LTO, one codegen unit), and
/// incremental, so a save is answered in about a second instead of four. It
/// is defined on cargo's command line ([`DEV_PROFILE_CONFIG`]), so a crate
/// needs nothing for it, and builds into its own directory: `cargo build
/// --release` (and `make procedures`) keep the small, optimised release build.
const DEV_PROFILE: &str = "wasmrpc-dev";
const DEV_PROFILE_CONFIG: [&str; 4] = [
    "profile.wasmrpc-dev.inherits=\"release\"",
    "profile.wasmrpc-dev.lto=false",
    "profile.wasmrpc-dev.codegen-units=16",
    "profile.wasmrpc-dev.incremental=true",
];

/// Runs `wasmrpc dev`. Exits 0 when stopped by Ctrl-C or SIGTERM; with
/// `once`, 1 when the build or the deploy failed.
pub fn run(options: DevArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let shutdown = super::process::shutdown_signal();
        tokio::pin!(shutdown);
        let mut local = None;
        let result = tokio::select! {
            result = dev(&options, &mut local) => result,
            () = &mut shutdown => Ok(ExitCode::SUCCESS),
        };
        if let Some(server) = local {
            server.stop().await;
        }
        result
    })
}

async fn dev(options: &DevArgs, local: &mut Option<LocalServer>) -> anyhow::Result<ExitCode> {
    let dir = options
        .crate_dir
        .canonicalize()
        .with_context(|| format!("cannot find the crate directory {}", options.crate_dir.display()))?;
    if !dir.join("Cargo.toml").is_file() {
        bail!("{} has no Cargo.toml: pass the directory of a procedure crate (see `wasmrpc new`)", dir.display());
    }
    let krate = Crate::inspect(&dir).await?;
    let name = match &options.name {
        Some(name) => name.clone(),
        None => krate.package.replace('-', "_"),
    };
    registry::check_name(&name).map_err(|e| anyhow::anyhow!("{e} (choose the procedure name with --name)"))?;
    let server = options.server.server.trim_end_matches('/').to_owned();
    if !healthy(&server).await? {
        if options.once {
            bail!("no wasmrpc server answers at {server}: start one with `wasmrpc serve`, or set --server");
        }
        let Some(addr) = loopback_addr(&server) else {
            bail!(
                "no wasmrpc server answers at {server}, and it is not a loopback address I could start one on: \
                 start it, or set --server"
            );
        };
        let data_dir = dir.join("target").join("wasmrpc-dev-data");
        *local = Some(LocalServer::start(addr, data_dir.clone(), options.server.admin_token.clone()).await?);
        println!(
            "no server answered at {server}: started one in this process (data in {}); it stops with `wasmrpc dev`",
            data_dir.display()
        );
    }
    let mut deployer = Deployer::new(name, server, options.server.admin_token.clone()).await;
    deployer.settings = options.settings.clone();
    if options.once {
        let ok = deployer.round(&dir).await;
        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let mut watcher = watch(&dir)?;
    deployer.round(&dir).await;
    println!("watching {} (src/, Cargo.toml, build.rs); Ctrl-C stops", dir.display());
    loop {
        if watcher.changes().await.is_none() {
            bail!("the file watcher stopped");
        }
        deployer.round(&dir).await;
    }
}

/// What `cargo metadata` says about the crate.
#[derive(Debug)]
struct Crate {
    package: String,
    /// [`TARGET`], or [`NO_WASI_TARGET`] for a crate that asks for no WASI.
    target: &'static str,
    /// The `.wasm` a [`DEV_PROFILE`] build for `target` produces.
    artifact: PathBuf,
}

impl Crate {
    /// Asks `cargo metadata` for the package in `dir` (canonical) and where
    /// its artifact lands (honouring `CARGO_TARGET_DIR` and cargo config).
    async fn inspect(dir: &Path) -> anyhow::Result<Crate> {
        let manifest = dir.join("Cargo.toml");
        let output = tokio::process::Command::new("cargo")
            .args(["metadata", "--no-deps", "--format-version", "1", "--manifest-path"])
            .arg(&manifest)
            .current_dir(dir)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .context("cannot run `cargo` (is Rust installed and on PATH?)")?;
        if !output.status.success() {
            bail!("cargo metadata failed:\n{}", String::from_utf8_lossy(&output.stderr).trim_end());
        }
        let metadata: Value = serde_json::from_slice(&output.stdout).context("cargo metadata printed invalid JSON")?;
        let target_dir = metadata["target_directory"].as_str().context("cargo metadata gave no target_directory")?;
        let packages = metadata["packages"].as_array().map(Vec::as_slice).unwrap_or_default();
        let package = packages
            .iter()
            .find(|p| p["manifest_path"].as_str().is_some_and(|m| same_file(Path::new(m), &manifest)))
            .with_context(|| {
                format!("{} is a workspace without a package of its own: pass one procedure crate", dir.display())
            })?;
        let package_name = package["name"].as_str().context("cargo metadata gave a package without a name")?;
        let targets = package["targets"].as_array().map(Vec::as_slice).unwrap_or_default();
        let lib = targets
            .iter()
            .find(|t| t["crate_types"].as_array().is_some_and(|k| k.iter().any(|k| k == "cdylib")))
            .and_then(|t| t["name"].as_str())
            .with_context(|| {
                format!(
                    "{package_name} does not build a component: add `[lib] crate-type = [\"cdylib\"]` to {}",
                    manifest.display()
                )
            })?;
        let target = match &package["metadata"]["wasmrpc"]["wasi"] {
            Value::Null | Value::Bool(true) => TARGET,
            Value::Bool(false) => NO_WASI_TARGET,
            other => {
                bail!("`[package.metadata.wasmrpc] wasi` in {} must be true or false, not {other}", manifest.display())
            }
        };
        let artifact =
            Path::new(target_dir).join(target).join(DEV_PROFILE).join(format!("{}.wasm", lib.replace('-', "_")));
        Ok(Crate { package: package_name.to_owned(), target, artifact })
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || a.canonicalize().ok().is_some_and(|a| b.canonicalize().ok().is_some_and(|b| a == b))
}

/// Builds and deploys; remembers the serving version to say what keeps serving.
struct Deployer {
    name: String,
    admin: AdminClient,
    version: Option<u64>,
    methods: Option<Vec<String>>,
    /// What each deploy chooses besides the code (`--allow-outbound`, `--reuse`, ...).
    settings: DeploySettings,
}

impl Deployer {
    async fn new(name: String, server: String, admin_token: Option<String>) -> Deployer {
        let admin = AdminClient::new(&server, admin_token.as_deref());
        let mut deployer = Deployer { name, admin, version: None, methods: None, settings: DeploySettings::default() };
        let path = format!("/procedures/{}", deployer.name);
        if let Ok(answer) = deployer.admin.request(Method::GET, &path, Vec::new()).await {
            deployer.version = answer.json().ok().and_then(|meta| meta["version"].as_u64());
        }
        deployer
    }

    fn serving(&self) -> String {
        match self.version {
            Some(version) => format!("version {version} keeps serving"),
            None => format!("nothing is deployed as {} yet", self.name),
        }
    }

    /// One round: build, deploy, print the outcome. True when it deployed.
    async fn round(&mut self, dir: &Path) -> bool {
        let started = Instant::now();
        let artifact = match build(dir).await {
            Ok(artifact) => artifact,
            Err(e) => {
                if let Some(e) = e {
                    eprintln!("{e:#}");
                }
                println!("build failed; {}", self.serving());
                return false;
            }
        };
        let build_time = started.elapsed();
        let started = Instant::now();
        let outcome = self.upload(&artifact).await;
        let deploy_time = started.elapsed();
        let times = format!("build {:.2} s, deploy {} ms", build_time.as_secs_f64(), deploy_time.as_millis());
        match outcome {
            Ok(Uploaded { version, unchanged: true, .. }) => {
                println!("{} version {version} unchanged ({times})", self.name);
                true
            }
            Ok(Uploaded { version, methods, .. }) => {
                println!("deployed {} version {version} ({times})", self.name);
                if self.methods.as_ref() != Some(&methods) {
                    println!("  methods: {}", methods.join(", "));
                }
                self.version = Some(version);
                self.methods = Some(methods);
                true
            }
            Err(AdminFailure::Refused { message, .. }) => {
                println!("deploy refused: {message} ({})", self.serving());
                false
            }
            Err(AdminFailure::Failed(e)) => {
                println!("deploy failed: {e:#}");
                false
            }
        }
    }

    /// PUTs the build's output as the procedure.
    async fn upload(&self, artifact: &Path) -> Result<Uploaded, AdminFailure> {
        let bytes = tokio::fs::read(artifact)
            .await
            .with_context(|| format!("cannot read the build's output {}", artifact.display()))?;
        let path = format!("/procedures/{}{}", self.name, self.settings.query());
        let answer = self.admin.request(Method::PUT, &path, bytes).await?;
        let meta = answer.json().map_err(anyhow::Error::from)?;
        let version = meta["version"].as_u64().context("the server's answer has no version")?;
        let methods = meta["methods"]
            .as_array()
            .map(|m| m.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(Uploaded { version, methods, unchanged: self.version == Some(version) })
    }
}

/// A version the server accepted.
struct Uploaded {
    version: u64,
    methods: Vec<String>,
    /// The bytes were those already serving: the server kept the version.
    unchanged: bool,
}

/// Builds the crate in `dir` (cargo's output goes to this process's
/// stdout and stderr) and returns the artifact. `Err(None)` when cargo
/// reported the failure itself.
async fn build(dir: &Path) -> Result<PathBuf, Option<anyhow::Error>> {
    // Asked every round: an edit to Cargo.toml may rename the library.
    let krate = Crate::inspect(dir).await.map_err(Some)?;
    let status = tokio::process::Command::new("cargo")
        .args(["build", "--profile", DEV_PROFILE, "--target", krate.target])
        .args(DEV_PROFILE_CONFIG.iter().flat_map(|c| ["--config", c]))
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .context("cannot run `cargo build`")
        .map_err(Some)?;
    if !status.success() {
        return Err(None);
    }
    if !krate.artifact.is_file() {
        return Err(Some(anyhow::anyhow!("cargo built no {}", krate.artifact.display())));
    }
    if krate.target == TARGET {
        return Ok(krate.artifact);
    }
    // A core module: wrapped into a component next to it.
    let component = krate.artifact.with_extension("component.wasm");
    wasmrpc_componentize::file(&krate.artifact, &component).map_err(Some)?;
    Ok(component)
}

/// Watches the crate's sources: the directory itself, not the files
/// (editors often save by writing a new file and renaming it over the old
/// one), and `src/` below it.
fn watch(dir: &Path) -> anyhow::Result<FileWatcher> {
    let root = dir.to_owned();
    let src = dir.join("src");
    let mut dirs = vec![(dir, RecursiveMode::NonRecursive)];
    if src.is_dir() {
        dirs.push((src.as_path(), RecursiveMode::Recursive));
    }
    FileWatcher::new(&dirs, move |p| is_source(&root, p))
}

/// Whether a change to `path` calls for a rebuild: `Cargo.toml`, `build.rs`
/// or a file under `src/`, but not editors' swap and backup files, nor
/// anything under `target/`.
fn is_source(root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    let parts: Vec<&str> =
        relative.components().filter_map(|c| if let Component::Normal(s) = c { s.to_str() } else { None }).collect();
    match parts.as_slice() {
        ["Cargo.toml"] | ["build.rs"] => true,
        ["src", rest @ ..] => rest.last().is_none_or(|file| {
            !(file.starts_with('.') || file.ends_with('~') || file.ends_with(".swp") || *file == "4913")
        }),
        _ => false,
    }
}

/// Whether `GET /healthz` answers; an error when something else answers.
async fn healthy(server: &str) -> anyhow::Result<bool> {
    let url = format!("{server}/healthz");
    match tokio::time::timeout(HEALTH_TIMEOUT, admin_client::send(Method::GET, &url, &[], Vec::new())).await {
        // 503: a server still loading its registry; requests wait for it.
        Ok(Ok(answer)) if answer.status == StatusCode::OK || answer.status == StatusCode::SERVICE_UNAVAILABLE => {
            Ok(true)
        }
        Ok(Ok(answer)) => {
            bail!("{server} answered GET /healthz with {}: is it a wasmrpc server? Set --server", answer.status)
        }
        Ok(Err(_)) | Err(_) => Ok(false),
    }
}

/// The address to listen on for `server` when it is an `http://` URL on
/// loopback (`localhost`, `127.0.0.1`, `[::1]`).
fn loopback_addr(server: &str) -> Option<SocketAddr> {
    let uri: hyper::Uri = server.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let ip =
        if host.eq_ignore_ascii_case("localhost") { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { host.parse().ok()? };
    ip.is_loopback().then(|| SocketAddr::new(ip, uri.port_u16().unwrap_or(80)))
}

/// A server running in this process for `dev`.
struct LocalServer {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl LocalServer {
    async fn start(addr: SocketAddr, data_dir: PathBuf, admin_token: Option<String>) -> anyhow::Result<LocalServer> {
        // The log of a server started here: warnings, and what procedures
        // log (`RUST_LOG` overrides).
        super::process::init_logging(super::LogFormat::Text, "warn,guest=debug");
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let mut config = Config::new(data_dir);
        config.admin_token = admin_token.filter(|t| !t.is_empty());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut task = tokio::spawn(crate::server::run(listener, config, async {
            let _ = stopped.await;
        }));
        let url = format!("http://{addr}");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if task.is_finished() {
                (&mut task).await.context("the server crashed")??;
                bail!("the server stopped as it started");
            }
            if healthy(&url).await.unwrap_or(false) {
                return Ok(LocalServer { stop, task });
            }
            if Instant::now() > deadline {
                bail!("the server started here did not become ready within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Shuts the server down gracefully.
    async fn stop(self) {
        let _ = self.stop.send(());
        let grace = crate::config::SHUTDOWN_GRACE + Duration::from_secs(1);
        if let Ok(Ok(Err(e))) = tokio::time::timeout(grace, self.task).await {
            eprintln!("the server stopped with an error: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sources_trigger_a_build() {
        let root = Path::new("/c");
        for yes in ["/c/Cargo.toml", "/c/build.rs", "/c/src/lib.rs", "/c/src/a/b.rs", "/c/src"] {
            assert!(is_source(root, Path::new(yes)), "{yes}");
        }
        for no in [
            "/c/target/x",
            "/c/Cargo.lock",
            "/c/src/.lib.rs.swp",
            "/c/src/lib.rs~",
            "/c/src/4913",
            "/d/src/lib.rs",
            "/c/README.md",
        ] {
            assert!(!is_source(root, Path::new(no)), "{no}");
        }
    }

    #[test]
    fn servers_started_here_are_on_loopback() {
        assert_eq!(loopback_addr("http://127.0.0.1:8080"), Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(loopback_addr("http://localhost:9000"), Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(loopback_addr("http://[::1]:81"), Some("[::1]:81".parse().unwrap()));
        assert_eq!(loopback_addr("http://127.0.0.1"), Some("127.0.0.1:80".parse().unwrap()));
        for remote in ["http://10.0.0.1:8080", "http://example.com", "https://127.0.0.1:8080", "nonsense"] {
            assert_eq!(loopback_addr(remote), None, "{remote}");
        }
    }
}
