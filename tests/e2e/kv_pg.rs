//! The PostgreSQL key-value backend (`host/src/kv/pg.rs`) against a real
//! private PostgreSQL, through the library's [`Kv`] as the sandbox and the
//! admin API use it: the embedded backend's semantics (values, NUL and
//! Unicode names, swaps, counters, the quota to the byte, listings in byte
//! order with both cursors, bucket counts, erasing), and several replicas'
//! pools on one database never losing an increment or a swap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmrpc::kv::{BucketInfo, Kv, KvError, KvLimits, Start, Write, Written};
use wasmrpc::store::pg::{PgStore, PgTarget};

use crate::cluster::Postgres;
use crate::support;

/// A replica's view of the database: its own registry connection and pool.
async fn replica(pg: &Postgres, quota_mib: u64) -> Kv {
    let target = PgTarget::parse(&pg.url(), None).unwrap();
    let store = PgStore::connect(&target, 3).await.unwrap();
    Kv::postgres(store.kv(), KvLimits { quota_bytes: quota_mib << 20, ..KvLimits::default() })
}

fn set(key: &str, value: &[u8]) -> Write {
    Write::Set { key: key.into(), value: value.to_vec() }
}

fn inc(key: &str, delta: i64) -> Write {
    Write::Increment { key: key.into(), delta }
}

fn bucket(name: &str, keys: u64, bytes: u64) -> BucketInfo {
    BucketInfo { bucket: name.into(), keys, bytes }
}

/// How a write reaches the database: alone (one statement, `kv_write_one`)
/// or in a list (worked out by the client under the procedure's lock).
#[derive(Clone, Copy, Debug)]
enum Path {
    One,
    List,
}

/// `write` to `procedure`'s `bucket` by `path`: in a list, after a delete of
/// a key nothing uses.
async fn put(kv: &Kv, path: Path, procedure: &str, bucket: &str, write: Write) -> Result<Written, KvError> {
    match path {
        Path::One => kv.write_one(procedure, bucket, write).await,
        Path::List => {
            let decoy = Write::Delete { key: "\u{1}unused".into() };
            let mut outcomes = kv.write(procedure, bucket, vec![decoy, write]).await?;
            assert_eq!(outcomes.len(), 2);
            outcomes.pop().unwrap()
        }
    }
}

/// Swaps, counters, the quota and erasing, by `path`, in procedures
/// `p-{path}` and `q-{path}`, each rule seen by the other replica too.
async fn rules(kv: &Kv, other: &Kv, path: Path) {
    let p = &format!("p-{path:?}").to_lowercase();
    let q = &format!("q-{path:?}").to_lowercase();
    // Swaps: absent expected, a stale value, the current value.
    let swap = |expected: Option<&[u8]>, value: &[u8]| Write::Swap {
        key: "s".into(),
        expected: expected.map(<[u8]>::to_vec),
        value: value.to_vec(),
    };
    assert_eq!(put(kv, path, p, "b", swap(None, b"one")).await.unwrap(), Written::Done);
    assert_eq!(put(other, path, p, "b", swap(None, b"two")).await.unwrap(), Written::SwapFailed(Some(b"one".to_vec())));
    assert_eq!(
        put(other, path, p, "b", swap(Some(b"uno"), b"two")).await.unwrap(),
        Written::SwapFailed(Some(b"one".to_vec()))
    );
    assert_eq!(put(other, path, p, "b", swap(Some(b"one"), b"two")).await.unwrap(), Written::Done);
    assert_eq!(kv.get(p, "b", "s").await.unwrap().unwrap(), b"two");
    put(kv, path, p, "b", Write::Delete { key: "s".into() }).await.unwrap();
    assert_eq!(put(kv, path, p, "b", swap(Some(b"two"), b"x")).await.unwrap(), Written::SwapFailed(None));

    // Counters: decimal text, absent is 0; a refused increment changes nothing.
    assert_eq!(put(kv, path, p, "c", inc("n", 5)).await.unwrap(), Written::Counter(5));
    assert_eq!(put(kv, path, p, "c", inc("n", -7)).await.unwrap(), Written::Counter(-2));
    assert_eq!(kv.get(p, "c", "n").await.unwrap().unwrap(), b"-2");
    put(kv, path, p, "c", set("t", b" 41 ")).await.unwrap();
    assert_eq!(put(kv, path, p, "c", inc("t", 1)).await.unwrap(), Written::Counter(42));
    put(kv, path, p, "c", set("x", b"x1")).await.unwrap();
    assert!(matches!(put(kv, path, p, "c", inc("x", 1)).await, Err(KvError::NotAnInteger(k)) if k == "x"));
    put(kv, path, p, "c", set("max", i64::MAX.to_string().as_bytes())).await.unwrap();
    assert!(matches!(put(kv, path, p, "c", inc("max", 1)).await, Err(KvError::Overflow(_))));
    assert_eq!(kv.get(p, "c", "max").await.unwrap().unwrap(), i64::MAX.to_string().as_bytes());
    assert_eq!(kv.get(p, "c", "x").await.unwrap().unwrap(), b"x1");
    // Rust's parsing, also where the database leaves it to the client
    // (Unicode whitespace, many digits, NUL, not UTF-8).
    for (key, value) in [("u", "\u{a0}41\u{3000}"), ("z", "0000000000000000000000041"), ("w", "+41")] {
        put(kv, path, p, "c", set(key, value.as_bytes())).await.unwrap();
        assert_eq!(put(other, path, p, "c", inc(key, 1)).await.unwrap(), Written::Counter(42), "{value:?}");
    }
    for value in [&b"4\x002"[..], b"\xff1", b"1e3", b"", b"-", b"0x10", b"1_000"] {
        put(kv, path, p, "c", set("x", value)).await.unwrap();
        assert!(matches!(put(kv, path, p, "c", inc("x", 1)).await, Err(KvError::NotAnInteger(_))), "{value:?}");
        assert_eq!(kv.get(p, "c", "x").await.unwrap().unwrap(), value);
    }
    put(kv, path, p, "c", set("x", b"x1")).await.unwrap();
    for (value, delta) in [("900000000000000000", i64::MAX), ("-900000000000000000", i64::MIN)] {
        put(kv, path, p, "c", set("o", value.as_bytes())).await.unwrap();
        assert!(matches!(put(kv, path, p, "c", inc("o", delta)).await, Err(KvError::Overflow(_))));
    }
    assert_eq!(
        put(kv, path, p, "c", inc("o", -i64::MAX + 900000000000000000)).await.unwrap(),
        Written::Counter(i64::MIN + 1)
    );
    put(kv, path, p, "c", set("o", b"-900000000000000000")).await.unwrap();

    // The quota, to the byte: 1 MiB over every bucket of the procedure.
    let mib = 1 << 20;
    put(kv, path, q, "one", set("a", &[7; 10])).await.unwrap(); // 11 bytes
    let fill = vec![0; mib - 11 - 3];
    assert_eq!(put(other, path, q, "two", set("big", &fill)).await.unwrap(), Written::Done);
    assert_eq!(kv.buckets(q).await.unwrap(), [bucket("one", 1, 11), bucket("two", 1, mib as u64 - 11)]);
    match put(kv, path, q, "one", set("b", b"")).await {
        Err(e @ KvError::Quota { would: 1_048_577, quota_mib: 1, .. }) => {
            assert!(e.to_string().contains(&format!("`{q}` would keep 1048577 bytes")), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        put(kv, path, q, "one", Write::Increment { key: "z".into(), delta: 1 }).await,
        Err(KvError::Quota { .. })
    ));
    assert!(matches!(put(kv, path, q, "one", set("a", &[7; 11])).await, Err(KvError::Quota { .. })));
    assert_eq!(kv.get_many(q, "one", &["a", "b", "z"]).await.unwrap(), [Some(vec![7; 10]), None, None]);
    // Same size and shrinking always work; then there is room again.
    assert_eq!(put(kv, path, q, "one", set("a", &[8; 10])).await.unwrap(), Written::Done);
    assert_eq!(put(kv, path, q, "one", set("a", &[8; 2])).await.unwrap(), Written::Done);
    assert_eq!(put(kv, path, q, "one", set("b", b"1234567")).await.unwrap(), Written::Done);
    assert!(matches!(put(kv, path, q, "one", set("c", b"")).await, Err(KvError::Quota { would: 1_048_577, .. })));
    // A swap past the quota is refused, not failed.
    let grow = Write::Swap { key: "b".into(), expected: Some(b"1234567".to_vec()), value: b"12345678".to_vec() };
    assert!(matches!(put(kv, path, q, "one", grow).await, Err(KvError::Quota { .. })));
    assert_eq!(kv.buckets(q).await.unwrap(), [bucket("one", 2, 3 + 8), bucket("two", 1, mib as u64 - 11)]);

    // Erase: every key of the procedure and its counts, nobody else's.
    assert_eq!(other.erase(q).await.unwrap(), 3);
    assert!(kv.buckets(q).await.unwrap().is_empty());
    assert_eq!(kv.get(q, "two", "big").await.unwrap(), None);
    assert_eq!(put(kv, path, q, "one", set("big", &fill)).await.unwrap(), Written::Done);
    assert_eq!(kv.erase(q).await.unwrap(), 1);
    assert_eq!(kv.erase(q).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_values_swaps_quotas_and_buckets_like_the_embedded_store() {
    let pg = Postgres::start();
    let kv = replica(&pg, 1).await;
    let other = replica(&pg, 1).await;

    // Values, absent keys, deletes; a second replica sees them at once.
    assert_eq!(kv.get("p", "b", "k").await.unwrap(), None);
    assert_eq!(kv.write_one("p", "b", set("k", b"v1")).await.unwrap(), Written::Done);
    assert_eq!(other.get("p", "b", "k").await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(kv.write_one("p", "b", set("k", b"")).await.unwrap(), Written::Done);
    assert_eq!(other.get("p", "b", "k").await.unwrap().as_deref(), Some(&b""[..]));
    kv.write_one("p", "b", Write::Delete { key: "k".into() }).await.unwrap();
    assert_eq!(other.get("p", "b", "k").await.unwrap(), None);
    // Deleting an absent key is fine.
    assert_eq!(kv.write_one("p", "b", Write::Delete { key: "k".into() }).await.unwrap(), Written::Done);

    // NUL, Unicode and empty names and keys; every byte of the values.
    let all_bytes: Vec<u8> = (0..=255).collect();
    let names = ["", "\0", "a\0b", "ключ", "🔑", "\u{10ffff}", "tab\there"];
    for b in ["", "b\0ucket", "ведро"] {
        let writes = names.iter().map(|k| set(k, &[k.as_bytes(), &all_bytes].concat())).collect();
        assert!(kv.write("n", b, writes).await.unwrap().iter().all(|o| matches!(o, Ok(Written::Done))));
    }
    for b in ["", "b\0ucket", "ведро"] {
        let values = other.get_many("n", b, &names).await.unwrap();
        for (k, v) in names.iter().zip(values) {
            assert_eq!(v.unwrap(), [k.as_bytes(), &all_bytes].concat(), "{b:?}/{k:?}");
        }
        let page = other.list("n", b, "", &Start::First, 100, false).await.unwrap();
        let mut sorted: Vec<&str> = names.to_vec();
        sorted.sort(); // byte order
        assert_eq!(page.entries.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), sorted);
        assert!(page.entries.iter().all(|(_, v)| v.is_none()));
    }
    // get_many answers in the order asked, absent keys and repeats included.
    let got = kv.get_many("n", "", &["ключ", "absent", "\0", "ключ"]).await.unwrap();
    assert_eq!(
        got.iter().map(|v| v.as_ref().map(|v| v.len())).collect::<Vec<_>>(),
        [Some(8 + 256), None, Some(1 + 256), Some(8 + 256)]
    );

    // Scopes never meet, whatever the bytes: (ab, c) vs (a, bc); bucket b
    // key "c" vs bucket "bc" key "".
    kv.write_one("ab", "c", set("k", b"ab/c")).await.unwrap();
    kv.write_one("a", "bc", set("k", b"a/bc")).await.unwrap();
    kv.write_one("a", "b", set("c", b"a/b/c")).await.unwrap();
    kv.write_one("a", "bc", set("", b"a/bc/")).await.unwrap();
    assert_eq!(kv.get("ab", "c", "k").await.unwrap().unwrap(), b"ab/c");
    assert_eq!(kv.get("a", "bc", "k").await.unwrap().unwrap(), b"a/bc");
    assert_eq!(kv.get("a", "b", "").await.unwrap(), None);
    let page = kv.list("a", "b", "", &Start::First, 10, true).await.unwrap();
    assert_eq!(page.entries, [("c".to_owned(), Some(b"a/b/c".to_vec()))]);

    for path in [Path::One, Path::List] {
        rules(&kv, &other, path).await;
    }

    // A list: each write its own outcome, in order, a repeated key seeing
    // the writes before it.
    let outcomes = kv
        .write(
            "p-list",
            "c",
            vec![inc("l", 1), inc("x", 1), inc("l", 1), set("l", b"9"), inc("l", 1), Write::Delete { key: "l".into() }],
        )
        .await
        .unwrap();
    assert_eq!(outcomes[0].as_ref().unwrap(), &Written::Counter(1));
    assert!(matches!(outcomes[1], Err(KvError::NotAnInteger(_))));
    assert_eq!(outcomes[2].as_ref().unwrap(), &Written::Counter(2));
    assert_eq!(outcomes[4].as_ref().unwrap(), &Written::Counter(10));
    assert_eq!(kv.get("p-list", "c", "l").await.unwrap(), None);

    // Buckets: key counts and bytes (keys + values), sorted by name bytes.
    // p-*/c: n "-2", t "42", x "x1", max (3 + 19), u, z and w "42", o (1 + 19).
    for p in ["p-one", "p-list"] {
        assert_eq!(kv.buckets(p).await.unwrap(), [bucket("c", 8, 3 + 3 + 3 + 22 + 3 + 3 + 3 + 20)]);
    }
    let per_key: u64 = names.iter().map(|k| 2 * k.len() as u64 + 256).sum();
    assert_eq!(
        other.buckets("n").await.unwrap(),
        [bucket("", 7, per_key), bucket("b\0ucket", 7, per_key), bucket("ведро", 7, per_key)]
    );
    assert_eq!(kv.erase("ab").await.unwrap(), 1);
    assert_eq!(kv.get("a", "bc", "k").await.unwrap().unwrap(), b"a/bc");
    // Emptied buckets are gone from the counts.
    kv.write_one("a", "b", Write::Delete { key: "c".into() }).await.unwrap();
    assert_eq!(kv.buckets("a").await.unwrap(), [bucket("bc", 2, 1 + 4 + 5)]);

    // The database down: storage errors naming it, no panic, within the
    // timeout; back: served again on fresh connections.
    pg.stop();
    let started = Instant::now();
    for result in [kv.get("a", "bc", "k").await.map(|_| ()), kv.write_one("a", "bc", set("k", b"v")).await.map(|_| ())]
    {
        match result {
            Err(e @ KvError::Storage(_)) => {
                assert!(e.to_string().contains("127.0.0.1"), "{e}");
                assert!(e.public_message(1).contains("request id 1"));
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(12), "{:?}", started.elapsed());
    pg.start_again();
    assert_eq!(kv.get("a", "bc", "k").await.unwrap().unwrap(), b"a/bc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lists_ten_thousand_keys_in_byte_order_with_both_cursors() {
    let pg = Postgres::start();
    let kv = replica(&pg, 64).await;
    // Keys in an order unlike their numbers, and some outside the prefix.
    let mut keys: Vec<String> = (0..10_000u32).map(|i| format!("k/{}", i * 7919 % 10_007)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 10_000);
    let started = Instant::now();
    for chunk in keys.chunks(wasmrpc::kv::MAX_BATCH_KEYS) {
        let writes = chunk.iter().map(|k| set(k, k.as_bytes())).collect();
        assert!(kv.write("p", "b", writes).await.unwrap().iter().all(Result::is_ok));
    }
    let outside = ["", "a", "k", "k.", "k0", "l/1", "k\u{7f}"];
    kv.write("p", "b", outside.iter().map(|k| set(k, b"x")).collect()).await.unwrap();
    kv.write("p", "other", keys[..10].iter().map(|k| set(k, b"x")).collect()).await.unwrap();
    let wrote = started.elapsed();
    assert_eq!(
        kv.buckets("p").await.unwrap()[0],
        bucket("b", 10_007, {
            let keys: u64 = keys.iter().map(|k| 2 * k.len() as u64).sum();
            keys + outside.iter().map(|k| k.len() as u64 + 1).sum::<u64>()
        })
    );

    // After cursors: each key exactly once, in byte order, page after page.
    let started = Instant::now();
    for limit in [1000, 333] {
        let (mut seen, mut start) = (Vec::new(), Start::First);
        loop {
            let page = kv.list("p", "b", "k/", &start, limit, limit == 333).await.unwrap();
            assert!(page.entries.len() <= limit);
            if limit == 333 {
                assert!(page.entries.iter().all(|(k, v)| v.as_deref() == Some(k.as_bytes())));
            }
            seen.extend(page.entries.iter().map(|(k, _)| k.clone()));
            match (page.more, page.entries.last()) {
                (true, Some((last, _))) => start = Start::After(last.clone()),
                _ => break,
            }
        }
        assert_eq!(seen, keys, "limit {limit}");
    }
    let paged = started.elapsed();
    // Skip cursors (offsets) too.
    let (mut seen, mut skip) = (Vec::new(), 0);
    loop {
        let page = kv.list("p", "b", "k/", &Start::Skip(skip), 1000, false).await.unwrap();
        skip += page.entries.len() as u64;
        seen.extend(page.entries.into_iter().map(|(k, _)| k));
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, keys);
    // Exactly a page's worth left: no `more`.
    let page = kv.list("p", "b", "k/", &Start::Skip(9_000), 1000, false).await.unwrap();
    assert_eq!((page.entries.len(), page.more), (1000, false));
    let page = kv.list("p", "b", "k/", &Start::Skip(10_000), 1000, false).await.unwrap();
    assert_eq!((page.entries.len(), page.more), (0, false));

    // The whole bucket, prefix-less, is the keys and the others in byte order.
    let mut all: Vec<String> = keys.iter().cloned().chain(outside.iter().map(|k| k.to_string())).collect();
    all.sort();
    let mut seen = Vec::new();
    let mut start = Start::First;
    loop {
        let page = kv.list("p", "b", "", &start, 1000, false).await.unwrap();
        seen.extend(page.entries.iter().map(|(k, _)| k.clone()));
        match (page.more, page.entries.last()) {
            (true, Some((last, _))) => start = Start::After(last.clone()),
            _ => break,
        }
    }
    assert_eq!(seen, all);
    // A cursor before the prefix starts at the prefix; one past it ends.
    let page = kv.list("p", "b", "k/", &Start::After("a".into()), 2, false).await.unwrap();
    assert_eq!(page.entries.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), [&keys[0], &keys[1]]);
    assert!(page.more);
    let page = kv.list("p", "b", "k/", &Start::After("k0".into()), 10, false).await.unwrap();
    assert!(page.entries.is_empty() && !page.more);
    // A cursor that is not a key starts after where it would be.
    let page = kv.list("p", "b", "k/", &Start::After(format!("{}!", keys[4])), 1, false).await.unwrap();
    assert_eq!(page.entries[0].0, keys[5]);
    assert_eq!(kv.erase("p").await.unwrap(), 10_017);
    eprintln!("10,017 keys written in {wrote:?}; 10,000 listed twice with After cursors in {paged:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_never_lose_an_increment_a_swap_or_a_quota_byte() {
    let _machine = support::heavy().await;
    let pg = Postgres::start();
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(Arc::new(replica(&pg, 1).await));
    }

    // 64 clients x 200 increments of one key, spread over the replicas.
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let kv = replicas[i % 3].clone();
            tokio::spawn(async move {
                let mut last = 0;
                for _ in 0..200 {
                    match kv.write_one("p", "b", Write::Increment { key: "n".into(), delta: 1 }).await.unwrap() {
                        Written::Counter(n) => {
                            assert!(n > last, "a counter went back: {n} after {last}");
                            last = n;
                        }
                        other => panic!("{other:?}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let increments = started.elapsed();
    assert_eq!(replicas[1].get("p", "b", "n").await.unwrap().unwrap(), b"12800");

    // 64 clients x 50 increments of their own keys of one procedure.
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let kv = replicas[i % 3].clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    kv.write_one("own", "b", Write::Increment { key: format!("n{i}"), delta: 1 }).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let own_keys = started.elapsed();
    let keys: Vec<String> = (0..64).map(|i| format!("n{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values = replicas[0].get_many("own", "b", &keys).await.unwrap();
    assert!(values.iter().all(|v| v.as_deref() == Some(&b"50"[..])), "{values:?}");

    // Compare-and-swap loops: 16 clients x 50 read-modify-writes.
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let kv = replicas[i % 3].clone();
            tokio::spawn(async move {
                let mut retries = 0;
                for _ in 0..50 {
                    let mut current = kv.get("p", "cas", "n").await.unwrap();
                    loop {
                        let n: u64 = current.as_deref().map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                        let swap = Write::Swap {
                            key: "n".into(),
                            expected: current.clone(),
                            value: (n + 1).to_string().into_bytes(),
                        };
                        match kv.write_one("p", "cas", swap).await.unwrap() {
                            Written::Done => break,
                            Written::SwapFailed(now) => {
                                retries += 1;
                                current = now;
                            }
                            other => panic!("{other:?}"),
                        }
                    }
                }
                retries
            })
        })
        .collect();
    let mut retries = 0;
    for task in tasks {
        retries += task.await.unwrap();
    }
    let swaps = started.elapsed();
    assert_eq!(replicas[2].get("p", "cas", "n").await.unwrap().unwrap(), b"800");

    // The quota under concurrency: 32 clients filling one procedure with
    // 10 KiB values until refused end within it, to the byte, with counts
    // that match the data.
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let kv = replicas[i % 3].clone();
            tokio::spawn(async move {
                let mut stored = 0u64;
                for j in 0.. {
                    let key = format!("{i:02}-{j:04}");
                    match kv.write_one("full", &format!("b{}", i % 4), set(&key, &[0; 10_240])).await {
                        Ok(Written::Done) => stored += key.len() as u64 + 10_240,
                        Err(KvError::Quota { .. }) => break,
                        other => panic!("{other:?}"),
                    }
                }
                stored
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        stored += task.await.unwrap();
    }
    let buckets = replicas[0].buckets("full").await.unwrap();
    let counted: u64 = buckets.iter().map(|b| b.bytes).sum();
    assert_eq!(counted, stored);
    assert!(stored <= 1 << 20 && stored > (1 << 20) - 10_240 - 7, "{stored}");
    let mut listed = 0;
    for b in &buckets {
        let page = replicas[1].list("full", &b.bucket, "", &Start::First, 1000, true).await.unwrap();
        assert_eq!(page.entries.len() as u64, b.keys);
        listed += page.entries.iter().map(|(k, v)| (k.len() + v.as_ref().unwrap().len()) as u64).sum::<u64>();
    }
    assert_eq!(listed, stored);
    eprintln!(
        "12,800 increments of one key in {increments:?} ({:.0}/s); 3,200 of 64 keys of one procedure in {own_keys:?}; \
         800 swaps in {swaps:?} with {retries} retries",
        12_800.0 / increments.as_secs_f64()
    );
}
