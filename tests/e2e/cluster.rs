//! Replicas sharing one PostgreSQL registry behind nginx, all real and on
//! loopback: a private PostgreSQL (`initdb` into a temporary directory and
//! `pg_ctl` on a free port, as the `postgres` user when the tests run as
//! root), nginx with a configuration made from `deploy/nginx.conf`, and
//! three `wasmrpc serve --registry` replicas, each with its own data dir.
//! Everything is stopped and removed when the test ends, also when it fails.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{self, sha256_hex, signal_process, wait_within, wasm, Endpoint, Server};

/// How long a change may take to reach every replica when nothing is down
/// and the replicas have compiled its module before (the compiled cache).
const PROPAGATION: Duration = Duration::from_secs(1);
/// How long a change may take to reach every replica when it brings a
/// module they never compiled: each compiles it, on shared cores.
const SETTLE: Duration = Duration::from_secs(10);
/// How long a replica may take to notice PostgreSQL is back and catch up:
/// its reconnect backoff (at most 5 s) plus a poll.
const RECOVERY: Duration = Duration::from_secs(15);

/// A free port on 127.0.0.1 (bound and released: the process that uses it
/// binds it again right after).
fn free_port() -> u16 {
    wasmrpc_testkit::postgres::free_port().expect("a free port")
}

/// A private PostgreSQL cluster (`wasmrpc_testkit::postgres`, which the
/// benchmarks use too), failing the test when it cannot start or stop;
/// stopped and removed when dropped.
pub struct Postgres(wasmrpc_testkit::postgres::Postgres);

impl Postgres {
    /// Starts one with a `wasmrpc` database; the cluster `initdb` makes is
    /// kept in cargo's temporary directory for the next runs.
    pub fn start() -> Postgres {
        match wasmrpc_testkit::postgres::Postgres::start(Path::new(env!("CARGO_TARGET_TMPDIR"))) {
            Ok(pg) => Postgres(pg),
            Err(e) => panic!("{e:#}\n(`make test` installs Debian's postgresql package)"),
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// The registry URL the replicas use.
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&self) {
        self.0.start_again().unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Stops the server (fast: open connections are cut) and waits.
    pub fn stop(&self) {
        self.0.stop().unwrap_or_else(|e| panic!("{e:#}"));
    }
}

/// nginx with the replicas as upstreams (`deploy/nginx.conf`); stopped
/// when dropped.
pub struct Nginx {
    pub endpoint: Endpoint,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start(replicas: &[&str]) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        // Workers run as an unprivileged user when nginx starts as root:
        // they must reach the temporary directories under `dir`.
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let listen = format!("127.0.0.1:{}", free_port());
        let conf = render_nginx_conf(dir.path(), &listen, replicas);
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let log = dir.path().join("error.log");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(&log)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run nginx: `make test` installs Debian's nginx package");
        let nginx = Nginx { endpoint: Endpoint::new(format!("http://{listen}")), child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&listen).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {listen}\n{}", nginx.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM: the master stops its workers, then exits.
        signal_process(self.child.id(), "TERM");
        wait_within(&mut self.child, Duration::from_secs(10));
    }
}

/// `deploy/nginx.conf` filled in for `replicas` (`http://127.0.0.1:PORT`).
fn render_nginx_conf(dir: &Path, listen: &str, replicas: &[&str]) -> String {
    let template = include_str!("../../deploy/nginx.conf");
    let upstreams: Vec<String> = replicas
        .iter()
        .map(|url| format!("server {} max_fails=1 fail_timeout=2s;", url.trim_start_matches("http://")))
        .collect();
    template
        .replace("{{DIR}}", &dir.display().to_string())
        .replace("{{LISTEN}}", listen)
        .replace("{{UPSTREAMS}}", &upstreams.join("\n        "))
}

/// PostgreSQL, three replicas on fixed loopback ports, and nginx in front.
pub struct Cluster {
    pub replicas: Vec<Server>,
    pub nginx: Nginx,
    pub pg: Postgres,
}

impl Cluster {
    pub fn start() -> Cluster {
        let pg = Postgres::start();
        let url = pg.url();
        let replicas: Vec<Server> = (0..3)
            .map(|_| {
                let listen = format!("127.0.0.1:{}", free_port());
                Server::start(&["--listen", &listen, "--registry", &url])
            })
            .collect();
        let urls: Vec<&str> = replicas.iter().map(|r| r.url.as_str()).collect();
        let nginx = Nginx::start(&urls);
        Cluster { replicas, nginx, pg }
    }

    /// Waits until every replica serves `version` of `name` (0: none);
    /// returns how long that took.
    pub async fn converged(&self, name: &str, version: u64, within: Duration) -> Duration {
        let started = Instant::now();
        for replica in &self.replicas {
            replica
                .eventually(within.saturating_sub(started.elapsed()), &format!("{name} version {version}"), || async {
                    serving(replica, name).await == version
                })
                .await;
        }
        started.elapsed()
    }
}

/// The version of `name` that `endpoint` serves (0: none).
async fn serving(endpoint: &Endpoint, name: &str) -> u64 {
    let answer = endpoint.request(Method::GET, &format!("/procedures/{name}"), &[], Vec::new()).await;
    match answer.status {
        StatusCode::OK => answer.json().expect("metadata")["version"].as_u64().expect("a version"),
        StatusCode::NOT_FOUND => 0,
        status => panic!("GET /procedures/{name}: {status} {}", answer.text()),
    }
}

fn version_of(metadata: &Value) -> u64 {
    metadata["version"].as_u64().expect("a version number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deploy_through_nginx_reaches_every_replica_within_a_second() {
    let _machine = support::heavy().await;
    let cluster = Cluster::start();
    // Every replica compiles both builds once; the measured deploys then
    // swap between them from the compiled cache.
    for file in ["test_v2", "test_v1"] {
        let deployed = cluster.nginx.endpoint.deploy_ok("prop", file).await;
        cluster.converged("prop", version_of(&deployed), SETTLE).await;
    }
    let mut times = Vec::new();
    for i in 0..20 {
        let file = if i % 2 == 0 { "test_v2" } else { "test_v1" };
        let deployed = cluster.nginx.endpoint.deploy_ok("prop", file).await;
        times.push(cluster.converged("prop", version_of(&deployed), PROPAGATION).await);
        // Calls answer from the new code, on every replica.
        for replica in &cluster.replicas {
            assert_eq!(replica.result("prop.version", json!([])).await, json!(2 - i % 2));
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "propagation to all 3 replicas over {} deploys: max {:.1} ms, median {:.1} ms",
        times.len(),
        ms(times[times.len() - 1]),
        ms(times[times.len() / 2])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_through_nginx_never_fail_while_replicas_redeploy() {
    let _machine = support::heavy().await;
    let cluster = Arc::new(Cluster::start());
    let first = cluster.replicas[0].deploy_ok("flip", "test_v1").await;
    cluster.converged("flip", version_of(&first), SETTLE).await;

    let deploying = Arc::new(AtomicBool::new(true));
    let redeploys = {
        let (cluster, deploying) = (cluster.clone(), deploying.clone());
        tokio::spawn(async move {
            for i in 0..20 {
                let file = if i % 2 == 0 { "test_v2" } else { "test_v1" };
                cluster.replicas[i % 3].deploy_ok("flip", file).await;
            }
            deploying.store(false, Ordering::SeqCst);
        })
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (cluster, deploying, calls) = (cluster.clone(), deploying.clone(), calls.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                // At least 200 calls in all, and calls until the last redeploy.
                while (deploying.load(Ordering::SeqCst) || calls.load(Ordering::SeqCst) < 200)
                    && calls.fetch_add(1, Ordering::SeqCst) < 20_000
                {
                    answers.push(cluster.nginx.endpoint.call("flip.version", json!([])).await);
                }
                answers
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(120), redeploys).await.expect("redeploys took too long").unwrap();
    let mut answered = 0;
    for worker in workers {
        for answer in tokio::time::timeout(Duration::from_secs(60), worker).await.expect("calls").unwrap() {
            // Every answer is a result from one of the two deployed builds.
            assert!(answer["result"] == json!(1) || answer["result"] == json!(2), "{answer}");
            answered += 1;
        }
    }
    assert!(answered >= 200, "{answered} calls");
    println!("{answered} calls through nginx during 20 redeploys on 3 replicas: none failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deploys_of_one_name_get_distinct_versions_and_converge() {
    let _machine = support::heavy().await;
    let cluster = Cluster::start();
    for round in 0..5 {
        let name = format!("race{round}");
        let (a, b) = tokio::join!(
            cluster.replicas[0].deploy_ok(&name, "test_v1"),
            cluster.replicas[1].deploy_ok(&name, "test_v2")
        );
        let mut versions = [version_of(&a), version_of(&b)];
        versions.sort();
        assert_eq!(versions, [1, 2], "round {round}: {a} {b}");
        // The one committed last serves, on every replica.
        cluster.converged(&name, 2, SETTLE).await;
        let last = if version_of(&a) == 2 { &a } else { &b };
        for replica in &cluster.replicas {
            let meta = replica.request(Method::GET, &format!("/procedures/{name}"), &[], Vec::new()).await;
            assert_eq!(meta.json().unwrap()["sha256"], last["sha256"]);
        }
    }
}

/// Calls `math.add` through `nginx` from [`WORKERS`] clients until `running`
/// turns false; counts the calls answered right in `ok` and returns what
/// went wrong with the others.
fn traffic(
    nginx: &Arc<Endpoint>,
    running: &Arc<AtomicBool>,
    ok: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..WORKERS)
        .map(|w| {
            let (nginx, running, ok) = (nginx.clone(), running.clone(), ok.clone());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for i in 0..1_000_000u64 {
                    if !running.load(Ordering::SeqCst) {
                        break;
                    }
                    let body = json!({"jsonrpc": "2.0", "method": "math.add", "params": [w, i], "id": 1});
                    let answer = nginx.post(&body.to_string()).await;
                    if answer.status == StatusCode::OK
                        && answer.json().ok().map(|a| a["result"].clone()) == Some(json!(w as u64 + i))
                    {
                        ok.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failures.push(format!("{} {}", answer.status, answer.text()));
                    }
                }
                failures
            })
        })
        .collect()
}

/// Clients calling at once in [`traffic`].
const WORKERS: usize = 4;

/// Waits until `n` more calls than now have been answered right.
async fn more_calls(ok: &AtomicUsize, n: usize) {
    let target = ok.load(Ordering::SeqCst) + n;
    let deadline = Instant::now() + Duration::from_secs(60);
    while ok.load(Ordering::SeqCst) < target {
        assert!(Instant::now() < deadline, "calls through nginx stopped succeeding");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Stops [`traffic`] and returns every failure.
async fn stop_traffic(running: &AtomicBool, workers: Vec<tokio::task::JoinHandle<Vec<String>>>) -> Vec<String> {
    running.store(false, Ordering::SeqCst);
    let mut failures = Vec::new();
    for worker in workers {
        failures.extend(tokio::time::timeout(Duration::from_secs(60), worker).await.expect("a client hung").unwrap());
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_replica_is_routed_around_and_catches_up_before_it_is_ready() {
    let _machine = support::heavy().await;
    let mut cluster = Cluster::start();
    let math = cluster.nginx.endpoint.deploy_ok("math", "math").await;
    cluster.converged("math", version_of(&math), SETTLE).await;
    let nginx = Arc::new(Endpoint::new(cluster.nginx.endpoint.url.clone()));
    let (running, ok) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicUsize::new(0)));
    let workers = traffic(&nginx, &running, &ok);
    more_calls(&ok, 100).await;

    // SIGKILL a replica mid-traffic; deploy while it is down.
    let killed = cluster.replicas.remove(1).kill();
    more_calls(&ok, 100).await;
    nginx.deploy_ok("words", "text").await;
    let words = nginx.deploy_ok("words", "json").await;
    more_calls(&ok, 100).await;

    // Restarted, it is ready (healthz 200) only once it has caught up: it
    // serves what was deployed meanwhile at once, without waiting for a
    // notification.
    let back = killed.start_again();
    let meta = back.request(Method::GET, "/procedures/words", &[], Vec::new()).await;
    assert_eq!(meta.status, StatusCode::OK, "{}", back.log());
    assert_eq!(meta.json().unwrap()["sha256"], words["sha256"]);
    assert_eq!(version_of(&meta.json().unwrap()), version_of(&words));
    cluster.replicas.insert(1, back);
    more_calls(&ok, 200).await;
    let failures = stop_traffic(&running, workers).await;
    let answered = ok.load(Ordering::SeqCst);
    println!("{answered} calls through nginx around a SIGKILL and a restart: {} failed {failures:?}", failures.len());
    // Only a call the killed replica was running may fail: nginx does not
    // send a POST again once it reached a replica.
    assert!(failures.len() <= WORKERS, "{} calls failed: {failures:?}", failures.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_postgres_is_down_calls_are_answered_and_deploys_get_503() {
    let _machine = support::heavy().await;
    let cluster = Cluster::start();
    let math = cluster.nginx.endpoint.deploy_ok("math", "math").await;
    cluster.converged("math", version_of(&math), SETTLE).await;
    let nginx = &cluster.nginx.endpoint;

    cluster.pg.stop();
    for i in 0..50u64 {
        assert_eq!(nginx.result("math.add", json!([i, 1])).await, json!(i + 1));
    }
    for replica in &cluster.replicas {
        let answer = replica.deploy("words", "text").await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{}", answer.text());
        assert!(answer.headers.contains_key("retry-after"));
        let error = answer.json().unwrap()["error"].as_str().unwrap().to_owned();
        assert!(error.contains("the shared registry postgres://postgres@127.0.0.1:"), "{error}");
        assert!(error.contains("cannot be reached") && error.contains("nothing was changed"), "{error}");
        // Reading still works from what the replica has.
        assert_eq!(serving(replica, "math").await, version_of(&math));
    }
    assert_eq!(nginx.deploy("words", "text").await.status, StatusCode::SERVICE_UNAVAILABLE);
    for i in 0..50u64 {
        assert_eq!(nginx.result("math.add", json!([i, 2])).await, json!(i + 2));
    }

    cluster.pg.start_again();
    let deadline = Instant::now() + RECOVERY;
    let words = loop {
        let answer = nginx.deploy("words", "text").await;
        if answer.status.is_success() {
            break answer.json().unwrap();
        }
        assert!(Instant::now() < deadline, "deploys still fail after PostgreSQL is back: {}", answer.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    cluster.converged("words", version_of(&words), RECOVERY).await;
    // Back to normal: the next deploy propagates within the usual bound.
    let again = nginx.deploy_ok("words", "json").await;
    cluster.converged("words", version_of(&again), SETTLE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_and_remove_on_one_replica_reach_the_others_and_every_replica_describes_the_same() {
    let _machine = support::heavy().await;
    let cluster = Cluster::start();
    let [a, b, c] = [&cluster.replicas[0], &cluster.replicas[1], &cluster.replicas[2]];
    a.deploy_ok("math", "math").await;
    a.deploy_ok("ver", "test_v1").await;
    let v2 = b.deploy_ok("ver", "test_v2").await;
    cluster.converged("ver", version_of(&v2), SETTLE).await;

    let activated = c.request(Method::POST, "/procedures/ver/versions/1/activate", &[], Vec::new()).await;
    assert_eq!(activated.status, StatusCode::OK, "{}", activated.text());
    cluster.converged("ver", 1, SETTLE).await;
    for replica in &cluster.replicas {
        assert_eq!(replica.result("ver.version", json!([])).await, json!(1));
        let meta = replica.request(Method::GET, "/procedures/ver", &[], Vec::new()).await.json().unwrap();
        assert_eq!(meta["sha256"], json!(sha256_hex(&wasm("test_v1"))));
    }

    // The same metadata, versions and OpenRPC document everywhere.
    let view = |replica: &Server| {
        let replica = replica.url.clone();
        async move {
            let endpoint = Endpoint::new(replica);
            let list = endpoint.request(Method::GET, "/procedures", &[], Vec::new()).await.json().unwrap();
            let versions =
                endpoint.request(Method::GET, "/procedures/ver/versions", &[], Vec::new()).await.json().unwrap();
            let discover = endpoint.result("rpc.discover", json!([])).await;
            (list, versions, discover)
        }
    };
    let first = view(a).await;
    assert_eq!(first.0.as_array().map(Vec::len), Some(2), "{}", first.0);
    for replica in [b, c] {
        assert_eq!(view(replica).await, first, "{} differs from {}", replica.url, a.url);
    }

    let removed = b.request(Method::DELETE, "/procedures/ver", &[], Vec::new()).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text());
    cluster.converged("ver", 0, SETTLE).await;
    // Numbering goes on across the fleet after the delete.
    let v3 = c.deploy_ok("ver", "test_v2").await;
    assert_eq!(version_of(&v3), 3);
    cluster.converged("ver", 3, SETTLE).await;
}

/// The PostgreSQL store itself, under the registry: numbering unique across
/// concurrent publishers, retention of the `keep` newest with their bytes,
/// rollback and removal keeping the history, migrations applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_numbers_keeps_and_forgets_like_the_data_dir() {
    use wasmrpc::sandbox::Reuse;
    use wasmrpc::store::pg::{PgStore, PgTarget};
    use wasmrpc::store::{Settings, Store as _, StoreError};

    let pg = Postgres::start();
    let target = PgTarget::parse(&pg.url(), None).unwrap();
    let store = PgStore::connect(&target, 3).await.unwrap();
    // A second replica starting finds the schema in place.
    PgStore::connect(&target, 3).await.unwrap();
    fn publisher(store: PgStore, t: usize) -> std::thread::JoinHandle<Vec<u64>> {
        std::thread::spawn(move || {
            (0..10)
                .map(|i| {
                    let bytes = format!("module {t}-{i}");
                    store.publish("n", &sha256_hex(bytes.as_bytes()), bytes.as_bytes(), "{}").unwrap().version
                })
                .collect()
        })
    }
    let blocking = store.clone();
    tokio::task::spawn_blocking(move || {
        let store = blocking;
        let (a, b) = (publisher(store.clone(), 0), publisher(store.clone(), 1));
        let mut numbers: Vec<u64> = a.join().unwrap().into_iter().chain(b.join().unwrap()).collect();
        numbers.sort();
        assert_eq!(numbers, (1..=20).collect::<Vec<u64>>());

        let history = store.history("n").unwrap();
        assert_eq!((history.last_version, history.serving), (20, Some(20)));
        assert_eq!(history.versions.iter().map(|v| v.version).collect::<Vec<_>>(), [20, 19, 18]);
        // Only the kept versions' bytes stay.
        let kept = store.kept_modules().unwrap();
        assert_eq!(kept.len(), 3);
        for v in &history.versions {
            assert!(kept.contains(&v.sha256));
            assert_eq!(sha256_hex(&store.module(&v.sha256).unwrap()), v.sha256);
        }
        assert!(store.module(&sha256_hex(b"module 0-0")).is_err());

        assert_eq!(store.activate("n", 19).unwrap().version, 19);
        assert_eq!(store.serving().unwrap()[0].1.version, 19);
        match store.activate("n", 5) {
            Err(StoreError::NotFound(m)) => assert!(m.contains("no longer kept (kept: 20, 19, 18"), "{m}"),
            other => panic!("{other:?}"),
        }
        store.unpublish("n").unwrap();
        assert!(store.serving().unwrap().is_empty());
        assert!(matches!(store.unpublish("n"), Err(StoreError::NotFound(_))));
        assert!(matches!(store.unpublish("never"), Err(StoreError::NotFound(_))));
        assert_eq!(store.history("never").unwrap(), Default::default());
        let again = store.publish("n", &sha256_hex(b"again"), b"again", "{}").unwrap();
        assert_eq!(again.version, 21);
        assert!(again.deployed_at.ends_with('Z'), "{}", again.deployed_at);
        // A version's settings are kept with it, as in the data dir.
        assert_eq!(again.settings, Settings::default());
        let settings = Settings {
            allowed_outbound: vec!["http://127.0.0.1:9".into()],
            reuse: Reuse { calls: 5, idle_ms: 1000, memory_mib: Some(16) },
        };
        let with = store.publish_with("n", &sha256_hex(b"again"), b"again", "{}", &settings).unwrap();
        assert_eq!((with.version, &with.settings), (22, &settings));
        assert_eq!(store.history("n").unwrap().versions[0], with);
        assert_eq!(store.serving().unwrap()[0].1, with);
    })
    .await
    .unwrap();
    // 20 publishes, an activate, an unpublish, two publishes; refusals record nothing.
    assert_eq!(store.last_change().await.unwrap(), 24);
    assert_eq!(
        store.changes_since(21).await.unwrap(),
        [(22, "n".to_owned()), (23, "n".to_owned()), (24, "n".to_owned())]
    );
}

// PostgreSQL chaos: a crash in the middle of deploys, a killed LISTEN
// connection, a replica started while PostgreSQL is down.

impl Postgres {
    /// Crashes the server: `pg_ctl stop -m immediate` quits every process
    /// at once, without a checkpoint, so the next [`Postgres::start_again`]
    /// recovers from the WAL (a crash of PostgreSQL, not of the machine:
    /// with fsync off, what it wrote stays in the kernel's cache).
    pub fn crash(&self) {
        self.0.crash().unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// A connection of the test's own to the registry's database, to look
    /// at what the replicas wrote and to meddle with their connections.
    pub async fn client(&self) -> tokio_postgres::Client {
        let url = self.url();
        let connecting = tokio_postgres::connect(&url, tokio_postgres::NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(10), connecting)
            .await
            .expect("connecting to PostgreSQL took over 10 s")
            .expect("connecting to PostgreSQL");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

/// Runs `query` on `client`, at most 10 s.
async fn sql(
    client: &tokio_postgres::Client,
    query: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Vec<tokio_postgres::Row> {
    tokio::time::timeout(Duration::from_secs(10), client.query(query, params))
        .await
        .unwrap_or_else(|_| panic!("{query}: no answer within 10 s"))
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// The local ports of process `pid`'s TCP connections to 127.0.0.1:`port`
/// (its sockets from `/proc/PID/fd`, their addresses from `/proc/net/tcp`):
/// how a test tells one replica's PostgreSQL backends from the others'
/// (`pg_stat_activity.client_port`), all of which say `wasmrpc` as their
/// application_name.
fn connections_to(pid: u32, port: u16) -> Vec<i32> {
    let sockets: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|link| Some(link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned()))
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port_of = |address: &str| i32::from_str_radix(address.rsplit(':').next()?, 16).ok();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
            (port_of(remote)? == i32::from(port) && sockets.contains(*inode)).then(|| port_of(local)).flatten()
        })
        .collect()
}

/// The PostgreSQL backends (pids) of `replica`'s LISTEN connection.
async fn listen_backends(client: &tokio_postgres::Client, replica: &Server, pg: &Postgres) -> Vec<i32> {
    let ports = connections_to(replica.pid(), pg.port());
    let rows = sql(
        client,
        "SELECT pid FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND client_port = ANY($1)",
        &[&ports],
    )
    .await;
    rows.iter().map(|row| row.get(0)).collect()
}

/// Waits until `done` is true, at most `within`; fails naming `what`.
async fn until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which build of `test_v1`/`test_v2` has sha256 `sha256` (what its
/// `version` method answers).
fn build_of(sha256: &str) -> u64 {
    let build = [1, 2].into_iter().find(|n| sha256_hex(&wasm(&format!("test_v{n}"))) == sha256);
    build.unwrap_or_else(|| panic!("{sha256} is neither test_v1 nor test_v2"))
}

/// The names the deploy stream of the crash test deploys.
const CHAOS_NAMES: [&str; 3] = ["chaos0", "chaos1", "chaos2"];
/// How long the replicas may take to accept deploys and converge after
/// PostgreSQL is back from a crash.
const CHAOS_RECOVERY: Duration = Duration::from_secs(30);

/// One deploy of the crash test's stream: what was sent, when, and what came back.
struct Attempt {
    replica: usize,
    name: &'static str,
    file: &'static str,
    sent: Instant,
    answered: Instant,
    status: StatusCode,
    /// The version and sha256 it was acknowledged with (HTTP 200/201).
    acked: Option<(u64, String)>,
    /// The answer's body when it was not acknowledged.
    refusal: String,
}

/// Deploys `test_v1` or `test_v2` (chosen pseudo-randomly, as the name
/// among [`CHAOS_NAMES`]) to replica `r` one after the other until
/// `running` turns false, counting acknowledgements in `acks[r]`.
fn deploy_stream(
    cluster: &Arc<Cluster>,
    r: usize,
    running: &Arc<AtomicBool>,
    acks: &Arc<Vec<AtomicUsize>>,
) -> tokio::task::JoinHandle<Vec<Attempt>> {
    let (cluster, running, acks) = (cluster.clone(), running.clone(), acks.clone());
    tokio::spawn(async move {
        let replica = &cluster.replicas[r];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64 + r as u64;
        let mut attempts = Vec::new();
        while running.load(Ordering::SeqCst) && attempts.len() < 10_000 {
            // xorshift64
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let name = CHAOS_NAMES[(seed % 3) as usize];
            let file = ["test_v1", "test_v2"][(seed >> 8) as usize & 1];
            let sent = Instant::now();
            let answer = replica.deploy(name, file).await;
            let answered = Instant::now();
            let acked = answer.status.is_success().then(|| {
                let metadata = answer.json().expect("metadata");
                (version_of(&metadata), metadata["sha256"].as_str().expect("a sha256").to_owned())
            });
            let refusal = if acked.is_some() { String::new() } else { answer.text() };
            if acked.is_some() {
                acks[r].fetch_add(1, Ordering::SeqCst);
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            attempts.push(Attempt { replica: r, name, file, sent, answered, status: answer.status, acked, refusal });
        }
        attempts
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_deploy_survives_a_postgres_crash_mid_stream_on_every_replica() {
    let _machine = support::heavy().await;
    let cluster = Arc::new(Cluster::start());
    // Every replica compiles both builds once: the stream then measures
    // the registry, not the compiler.
    for name in CHAOS_NAMES {
        for file in ["test_v1", "test_v2"] {
            let deployed = cluster.replicas[0].deploy_ok(name, file).await;
            cluster.converged(name, version_of(&deployed), SETTLE).await;
        }
    }

    // One stream of deploys into each replica; PostgreSQL crashes in the
    // middle, stays down a moment, and comes back.
    let running = Arc::new(AtomicBool::new(true));
    let acks: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    let streams: Vec<_> = (0..3).map(|r| deploy_stream(&cluster, r, &running, &acks)).collect();
    let count = |acks: &[AtomicUsize]| acks.iter().map(|a| a.load(Ordering::SeqCst)).collect::<Vec<usize>>();
    until(Duration::from_secs(60), "30 acknowledged deploys", || count(&acks).iter().sum::<usize>() >= 30).await;
    cluster.pg.crash();
    let crashed = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.pg.start_again();
    let restarted = Instant::now();
    // Recovery: every replica acknowledges deploys again. The stream goes
    // on for a while, as the replicas' followers reconnect and catch up.
    let before = count(&acks);
    until(CHAOS_RECOVERY, "every replica acknowledging deploys after PostgreSQL restarted", || {
        count(&acks).iter().zip(&before).all(|(now, then)| *now > *then)
    })
    .await;
    let recovered = restarted.elapsed();
    until(CHAOS_RECOVERY, "every replica acknowledging 20 deploys after PostgreSQL restarted", || {
        count(&acks).iter().zip(&before).all(|(now, then)| *now >= then + 20)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(restarted.elapsed())).await;
    running.store(false, Ordering::SeqCst);
    let mut attempts = Vec::new();
    for stream in streams {
        attempts.extend(tokio::time::timeout(Duration::from_secs(60), stream).await.expect("a deploy hung").unwrap());
    }

    // The stream ran across the crash: acknowledged before it, refused
    // while PostgreSQL was down, acknowledged after.
    let acked: Vec<&Attempt> = attempts.iter().filter(|a| a.acked.is_some()).collect();
    assert!(acked.iter().any(|a| a.answered < crashed), "nothing acknowledged before the crash");
    assert!(attempts.iter().any(|a| a.acked.is_none() && a.sent > crashed && a.answered < restarted));
    // A deploy that was not acknowledged was refused as the registry being
    // unavailable (retry later), never as anything else.
    for a in attempts.iter().filter(|a| a.acked.is_none()) {
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{} on replica {}: {}", a.name, a.replica, a.refusal);
        assert!(a.refusal.contains("cannot be reached"), "{}", a.refusal);
    }

    // Each acknowledgement names the bytes deployed, and acknowledgements
    // of one name never go back in time: a deploy acknowledged before
    // another was sent has the lower version (or the same one, unchanged).
    for a in &acked {
        let (version, sha256) = a.acked.as_ref().unwrap();
        assert_eq!(*sha256, sha256_hex(&wasm(a.file)), "{} version {version} acknowledged for {}", a.name, a.file);
    }
    for a in &acked {
        for b in acked.iter().filter(|b| b.name == a.name && a.answered < b.sent) {
            let ((va, sa), (vb, sb)) = (a.acked.as_ref().unwrap(), b.acked.as_ref().unwrap());
            assert!(
                vb > va || (vb == va && sb == sa),
                "{}: replica {} acknowledged version {vb} ({}) after replica {} had acknowledged version {va} ({}) \
                 (sent {:?} / answered {:?} after the crash, vs {:?}; PostgreSQL restarted {:?} after it)\n{}",
                a.name,
                b.replica,
                b.file,
                a.replica,
                a.file,
                b.sent.checked_duration_since(crashed),
                b.answered.checked_duration_since(crashed),
                a.answered.checked_duration_since(crashed),
                restarted - crashed,
                cluster.replicas[b.replica].log()
            );
        }
    }

    // What PostgreSQL has after the crash: every acknowledged version still
    // kept, with its bytes, whole.
    let client = cluster.pg.client().await;
    let serving = sql(
        &client,
        "SELECT p.name, p.serving, p.last_version, v.sha256 FROM procedures p
         JOIN versions v ON v.name = p.name AND v.version = p.serving",
        &[],
    )
    .await;
    let serving: std::collections::HashMap<String, (u64, u64, String)> = serving
        .iter()
        .map(|row| {
            let (version, last): (i64, i64) = (row.get(1), row.get(2));
            (row.get(0), (version as u64, last as u64, row.get(3)))
        })
        .collect();
    let kept = sql(&client, "SELECT name, version, sha256 FROM versions", &[]).await;
    let kept: std::collections::HashMap<(String, u64), String> =
        kept.iter().map(|row| ((row.get(0), row.get::<_, i64>(1) as u64), row.get(2))).collect();
    for a in &acked {
        let (version, sha256) = a.acked.as_ref().unwrap();
        let last = serving[a.name].1;
        if version + wasmrpc::config::DEFAULT_KEEP_VERSIONS as u64 > last {
            assert_eq!(kept.get(&(a.name.to_owned(), *version)), Some(sha256), "{} version {version}", a.name);
        }
    }
    for row in sql(&client, "SELECT sha256, bytes FROM modules", &[]).await {
        let (sha256, bytes): (String, Vec<u8>) = (row.get(0), row.get(1));
        assert_eq!(sha256_hex(&bytes), sha256, "a module torn in PostgreSQL");
    }
    let orphans = sql(
        &client,
        "SELECT v.name, v.version FROM versions v LEFT JOIN modules m USING (sha256) WHERE m.sha256 IS NULL",
        &[],
    )
    .await;
    assert!(orphans.is_empty(), "{} kept versions lost their module", orphans.len());

    // Every replica serves what PostgreSQL says serves: at least the latest
    // acknowledged version, the same bytes if it is that one, its code
    // matching its metadata. A newer version must come from a deploy that
    // had not finished when the latest acknowledged one began.
    for name in CHAOS_NAMES {
        let (version, _, sha256) = serving.get(name).unwrap_or_else(|| panic!("{name} serves nowhere"));
        let last = acked.iter().filter(|a| a.name == name).max_by_key(|a| a.answered).expect("an acknowledged deploy");
        for a in acked.iter().filter(|a| a.name == name) {
            let (acked_version, acked_sha) = a.acked.as_ref().unwrap();
            assert!(version >= acked_version, "{name} serves version {version}, {acked_version} was acknowledged");
            if version == acked_version {
                assert_eq!(sha256, acked_sha, "{name} version {version}");
            }
        }
        if *version > last.acked.as_ref().unwrap().0 {
            assert!(
                attempts
                    .iter()
                    .any(|b| b.name == name && b.answered > last.sent && sha256_hex(&wasm(b.file)) == *sha256),
                "{name} version {version} replaced the latest acknowledged deploy, but no later deploy of it was made"
            );
        }
        cluster.converged(name, *version, CHAOS_RECOVERY).await;
        for replica in &cluster.replicas {
            let meta = replica.request(Method::GET, &format!("/procedures/{name}"), &[], Vec::new()).await;
            assert_eq!(meta.json().unwrap()["sha256"], json!(sha256), "{name} on {}", replica.url);
            let build = replica.result(&format!("{name}.version"), json!([])).await;
            assert_eq!(build, json!(build_of(sha256)), "{name} on {}: code and metadata differ", replica.url);
        }
    }
    let refused = attempts.len() - acked.len();
    println!(
        "{} deploys across a PostgreSQL crash: {} acknowledged, {refused} refused (503); \
         every replica acknowledging again {:.0} ms after the restart",
        attempts.len(),
        acked.len(),
        recovered.as_secs_f64() * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_listen_connection_is_killed_still_gets_deploys_and_listens_again() {
    use wasmrpc::config::REGISTRY_POLL;

    let _machine = support::heavy().await;
    let cluster = Cluster::start();
    for file in ["test_v1", "test_v2"] {
        let deployed = cluster.replicas[0].deploy_ok("ping", file).await;
        cluster.converged("ping", version_of(&deployed), SETTLE).await;
    }
    let target = &cluster.replicas[2];
    let client = cluster.pg.client().await;
    let listening = listen_backends(&client, target, &cluster.pg).await;
    assert_eq!(listening.len(), 1, "replica 2 should have one LISTEN connection: {listening:?}");

    // Only that connection is cut; its pool and the other replicas' stay.
    let log_before = target.log().len();
    let ports = connections_to(target.pid(), cluster.pg.port());
    let killed = sql(
        &client,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%' AND client_port = ANY($1)",
        &[&ports],
    )
    .await;
    assert_eq!(killed.iter().map(|row| row.get::<_, bool>(0)).collect::<Vec<_>>(), [true]);

    // A deploy on another replica still reaches it: by the next poll at the
    // latest (plus a reconnect's first backoff and a margin).
    let deployed = cluster.replicas[0].deploy_ok("ping", "test_v1").await;
    let bound = REGISTRY_POLL + Duration::from_secs(1);
    let started = Instant::now();
    target
        .eventually(bound, "the deploy made after the LISTEN connection was killed", || async {
            serving(target, "ping").await == version_of(&deployed)
        })
        .await;
    let caught_up = started.elapsed();
    // It noticed the connection was gone, and LISTENs again on a new one.
    target.wait_for_log(log_before, &["the notification connection was closed"], bound).await;
    let deadline = Instant::now() + bound;
    let again = loop {
        let now = listen_backends(&client, target, &cluster.pg).await;
        if now.len() == 1 && now != listening {
            break now;
        }
        assert!(Instant::now() < deadline, "replica 2 does not LISTEN again: {now:?} (was {listening:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Notifications, not the poll, bring the next deploys: each arrives
    // within PROPAGATION, well under REGISTRY_POLL (by polling alone, six
    // in a row would do so about once in 64 runs).
    let mut times = Vec::new();
    for i in 0..6 {
        let file = ["test_v2", "test_v1"][i % 2];
        let deployed = cluster.replicas[i % 2].deploy_ok("ping", file).await;
        let started = Instant::now();
        target
            .eventually(PROPAGATION, &format!("deploy {i} after the LISTEN connection came back"), || async {
                serving(target, "ping").await == version_of(&deployed)
            })
            .await;
        times.push(started.elapsed());
    }
    println!(
        "LISTEN backend {listening:?} killed: the next deploy arrived after {:.0} ms, re-LISTEN as {again:?}, \
         then deploys within {:.0} ms",
        caught_up.as_secs_f64() * 1000.0,
        times.iter().max().unwrap().as_secs_f64() * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_started_while_postgres_is_down_is_unready_holds_calls_and_serves_once_it_is_back() {
    use wasmrpc::config::STARTUP_WAIT;

    let _machine = support::heavy().await;
    let cluster = Cluster::start();
    cluster.replicas[0].deploy_ok("math", "math").await;
    cluster.pg.stop();

    let late = Server::start_unready(&["--registry", &cluster.pg.url()]);
    // Not ready, and /healthz says why, as JSON.
    let registry = format!("the shared registry postgres://postgres@127.0.0.1:{}/wasmrpc", cluster.pg.port());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = late.request(Method::GET, "/healthz", &[], Vec::new()).await;
        assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{}", health.text());
        assert_eq!(health.content_type.as_deref(), Some("application/json"));
        let health = health.json().expect("JSON");
        assert_eq!(health["status"], json!("starting"), "{health}");
        let detail = health["detail"].as_str().expect("a detail");
        if detail.contains("cannot be reached") {
            assert!(detail.contains(&registry), "{detail}");
            break;
        }
        assert!(Instant::now() < deadline, "/healthz never named the unreachable registry: {detail}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A call made meanwhile waits for the replica to be ready...
    let endpoint = Arc::new(Endpoint::new(late.url.clone()));
    let sent = Instant::now();
    let call = tokio::spawn({
        let endpoint = endpoint.clone();
        async move {
            endpoint.post(&json!({"jsonrpc": "2.0", "method": "math.add", "params": [2, 3], "id": 1}).to_string()).await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!call.is_finished(), "the call was answered while PostgreSQL was down");
    let health = late.request(Method::GET, "/healthz", &[], Vec::new()).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{}", health.text());

    // ... and is answered once PostgreSQL is back, within STARTUP_WAIT.
    cluster.pg.start_again();
    let answer = tokio::time::timeout(STARTUP_WAIT + Duration::from_secs(5), call)
        .await
        .expect("the waiting call was never answered")
        .unwrap();
    let waited = sent.elapsed();
    assert_eq!(answer.status, StatusCode::OK, "after {waited:?}: {}\n{}", answer.text(), late.log());
    assert_eq!(answer.json().unwrap()["result"], json!(5), "{}", answer.text());
    assert!(waited < STARTUP_WAIT + Duration::from_secs(1), "answered after {waited:?}");
    let health = late.request(Method::GET, "/healthz", &[], Vec::new()).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text());
    assert_eq!(health.json().unwrap()["status"], json!("ok"));

    // It follows the registry like the others: a deploy elsewhere reaches it.
    let ver = cluster.replicas[1].deploy_ok("ver", "test_v1").await;
    late.eventually(SETTLE, "a deploy made on another replica", || async {
        serving(&late, "ver").await == version_of(&ver)
    })
    .await;
    println!("a call made while PostgreSQL was down was answered after {:.1} s", waited.as_secs_f64());
}
