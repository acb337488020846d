//! Key-value state of replicas sharing a PostgreSQL registry, through
//! nginx: increments and compare-and-swap from many clients on three
//! replicas, a write on one replica read by another, a replica killed in
//! the middle of a stream of writes, and data moved from one machine (a
//! data dir) into the cluster with `wasmrpc kv export` and `import`.

use std::time::Duration;

use hyper::Method;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::kv::{hammer, IncrementStream};
use crate::support::{self, Server};

const SETTLE: Duration = Duration::from_secs(10);

/// Deploys `file` as `name` through nginx and waits for every replica.
async fn deploy(cluster: &Cluster, name: &str, file: &str) {
    let deployed = cluster.nginx.endpoint.deploy_ok(name, file).await;
    cluster.converged(name, deployed["version"].as_u64().expect("a version"), SETTLE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_key_value_state_through_postgresql() {
    let _machine = support::heavy().await;
    let mut cluster = Cluster::start();
    deploy(&cluster, "counter", "test_kv_draft2").await;
    deploy(&cluster, "cas", "test_kv_sdk").await;
    let nginx_url = cluster.nginx.endpoint.url.clone();

    // 64 clients x 200 increments, spread by nginx over three replicas.
    let failed = hammer(&nginx_url, 64, 200, "counter.increment", json!(["default", "hits", 1])).await;
    assert!(failed.is_empty(), "{} calls failed, first: {}", failed.len(), failed[0]);
    for replica in &cluster.replicas {
        assert_eq!(replica.result("counter.get", json!(["default", "hits"])).await, json!("12800"));
    }

    // The SDK's compare-and-swap loop, across replicas.
    let failed = hammer(&nginx_url, 16, 50, "cas.bump", json!(["hits"])).await;
    assert!(failed.is_empty(), "{} calls failed, first: {}", failed.len(), failed[0]);
    assert_eq!(cluster.nginx.endpoint.result("cas.read", json!(["hits"])).await, json!(800));

    // A write answered by one replica is read by the next call on any other.
    for (i, writer) in cluster.replicas.iter().enumerate() {
        writer.result("counter.set", json!(["default", "last", format!("written by {i}")])).await;
        for reader in &cluster.replicas {
            assert_eq!(
                reader.result("counter.get", json!(["default", "last"])).await,
                json!(format!("written by {i}"))
            );
        }
    }

    // A replica killed under a stream of increments: every answered one is
    // stored, nothing is counted that was not sent.
    let stream = IncrementStream::start(&nginx_url, "counter.increment", json!(["default", "kill", 1]), 8, 300, false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = cluster.replicas.pop().expect("three replicas").kill();
    let (sent, answered) = stream.finish().await;
    let replica = killed.start_again();
    let stored = replica.result("counter.get", json!(["default", "kill"])).await;
    let stored: u64 = stored.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{stored}"));
    assert!(answered <= stored && stored <= sent, "{answered} answered, {stored} stored, {sent} sent");
    assert!(answered > sent / 2, "most calls should be answered: {answered} of {sent}");
    cluster.replicas.push(replica);

    // From one machine to the cluster: export from a data dir, import
    // into PostgreSQL, the same data read back.
    let single = Server::start(&[]);
    single.deploy_ok("moving", "test_kv_draft2").await;
    for (bucket, key, value) in
        [("default", "a", "1"), ("default", "a/b c", "ключ"), ("other", "\u{1F511}", "🔑"), ("other", "x", "")]
    {
        single.result("moving.set", json!([bucket, key, value])).await;
    }
    single.result("moving.increment", json!(["default", "n", 41])).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("moving.jsonl");
    let file = file.to_str().unwrap();
    let (ok, _, err) = support::wasmrpc(&["kv", "export", "moving", "-o", file, "--server", &single.url]);
    assert!(ok, "{err}");
    let (ok, out, err) = support::wasmrpc(&["kv", "import", "moving", file, "--server", &nginx_url]);
    assert!(ok, "{out}{err}");
    let again = dir.path().join("again.jsonl");
    let again = again.to_str().unwrap();
    let (ok, _, err) = support::wasmrpc(&["kv", "export", "moving", "-o", again, "--server", &cluster.replicas[1].url]);
    assert!(ok, "{err}");
    let exported = std::fs::read_to_string(file).unwrap();
    assert_eq!(exported.lines().count(), 5, "{exported}");
    assert_eq!(exported, std::fs::read_to_string(again).unwrap());
    deploy(&cluster, "moving", "test_kv_draft2").await;
    let nginx = &cluster.nginx.endpoint;
    assert_eq!(nginx.result("moving.increment", json!(["default", "n", 1])).await, json!(42));
    assert_eq!(nginx.result("moving.get", json!(["other", "\u{1F511}"])).await, json!("🔑"));
    let buckets: Value = nginx.request(Method::GET, "/procedures/moving/kv", &[], Vec::new()).await.json().unwrap();
    assert_eq!(buckets["buckets"].as_array().unwrap().len(), 2, "{buckets}");
}
