//! Test-only: the SDK's key-value calls the tests and the bench drive
//! directly: `update`, whose compare-and-swap loop must lose no update
//! under contention, and one `get` or one `increment` per call (the bench's
//! key-value rows; built without WASI, like `math`).

use wasmrpc_guest::{kv, procedure, Error};

/// Adds one to the counter `key` with `update` (compare-and-swap, not
/// `increment`); the new count.
#[procedure]
fn bump(key: String) -> Result<u64, Error> {
    Ok(kv::open_default()?.update(&key, |n: Option<u64>| n.unwrap_or(0) + 1)?)
}

/// Adds one to the counter `key` with `increment`; the new count.
#[procedure]
fn increment(key: String) -> Result<i64, Error> {
    Ok(kv::open_default()?.increment(&key, 1)?)
}

/// Sets `key` to the JSON text of `value` (one durable write, with an
/// answer that is always the same: what in-process measurements need).
#[procedure]
fn put(key: String, value: u64) -> Result<(), Error> {
    Ok(kv::open_default()?.set(&key, &value)?)
}

/// The counter `key` (null: never bumped).
#[procedure]
fn read(key: String) -> Result<Option<u64>, Error> {
    Ok(kv::open_default()?.get(&key)?)
}

wasmrpc_guest::export!(bump, increment, put, read);
