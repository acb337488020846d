//! Test-only: reads this procedure's configuration (`wasi:config`) through
//! the SDK, one key or all of them, so the tests can see what a guest sees.

use std::collections::BTreeMap;

use wasmrpc_guest::{config, procedure, Error};

/// The value of `key` (null: not set).
#[procedure]
fn get(key: String) -> Result<Option<String>, Error> {
    Ok(config::get(&key)?)
}

/// Every key and its value.
#[procedure]
fn all() -> Result<BTreeMap<String, String>, Error> {
    Ok(config::get_all()?.into_iter().collect())
}

/// How long the value of `key` is (0: not set): proves a guest read a
/// secret without answering it.
#[procedure]
fn length(key: String) -> Result<usize, Error> {
    Ok(config::get(&key)?.map_or(0, |v| v.len()))
}

wasmrpc_guest::export!(get, all, length);
