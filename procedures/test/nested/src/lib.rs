//! Test-only: a procedure that calls procedures in every way the nested-call
//! tests need: passing errors through, catching them, recursing, fanning
//! out, holding memory or time while it calls. Never deployed by `make run`.

use std::hint::black_box;
use std::sync::Mutex;
use std::time::Duration;

use wasmrpc_guest::serde_json::{json, Value};
use wasmrpc_guest::{call, procedure, Error};

/// What this instance was told to remember (see `remember`).
static MEMORY: Mutex<String> = Mutex::new(String::new());

/// Calls `method` with `params`; its error passes through unchanged.
#[procedure(name = "call")]
fn call_through(method: String, params: Value) -> Result<Value, Error> {
    call(&method, params)
}

/// Calls `method` with `params` and answers what came back, result or
/// error, as `{"ok": result}` or `{"error": {"code", "message", "data"}}`.
#[procedure]
fn catch(method: String, params: Value) -> Value {
    match call::<Value>(&method, params) {
        Ok(result) => json!({ "ok": result }),
        Err(e) => json!({ "error": { "code": e.code, "message": e.message, "data": e.data } }),
    }
}

/// Calls `method` with `params` `times` times, sleeping `pause_ms` before
/// each call; answers every result. The first error passes through.
#[procedure]
fn repeat(method: String, params: Value, times: u32, pause_ms: u64) -> Result<Vec<Value>, Error> {
    (0..times)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(pause_ms));
            call(&method, params.clone())
        })
        .collect()
}

/// Calls `{next}.bounce` with `[then, next]`: deployed as `a` alone,
/// `a.bounce(["a", "a"])` calls itself; deployed as `a` and `b`,
/// `a.bounce(["b", "a"])` goes a -> b -> a -> ... Only a limit ends it.
#[procedure]
fn bounce(next: String, then: String) -> Result<u32, Error> {
    let depth: u32 = call(&format!("{next}.bounce"), (&then, &next))?;
    Ok(depth + 1)
}

/// Remembers `secret` in this instance's memory, calls `method` (another
/// instance's `recall`), and answers what the callee found and what this
/// instance holds after the call.
#[procedure]
fn remember(secret: String, method: String) -> Result<Value, Error> {
    *MEMORY.lock().unwrap_or_else(|p| p.into_inner()) = secret;
    let callee_found: String = call(&method, ())?;
    let mine = MEMORY.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(json!({ "callee_found": callee_found, "mine_after": mine }))
}

/// What this instance remembers (nothing, in a fresh one); then overwrites it.
#[procedure]
fn recall() -> String {
    let mut memory = MEMORY.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::replace(&mut *memory, "overwritten by the callee".to_owned())
}

/// Holds `mib` MiB of its own memory while it calls `method` with `params`.
#[procedure]
fn hold(mib: usize, method: String, params: Value) -> Result<Value, Error> {
    let block = black_box(vec![7u8; mib << 20]);
    let result: Value = call(&method, params)?;
    Ok(json!({ "held_mib": block.len() >> 20, "result": result }))
}

/// `method(a, b)` through the server, read as an integer: one typed nested
/// call, as `calc` makes them (the benchmark's nested call).
#[procedure]
fn sum_via(method: String, a: i64, b: i64) -> Result<i64, Error> {
    call(&method, (a, b))
}

/// `a + b` here, with `sum_via`'s params: the benchmark subtracts it from
/// `sum_via`, leaving the nested call alone.
#[procedure]
fn sum_here(method: String, a: i64, b: i64) -> Result<i64, Error> {
    black_box(method);
    a.checked_add(b).ok_or_else(|| Error::from("overflow"))
}

wasmrpc_guest::export!(call_through, catch, repeat, bounce, remember, recall, hold, sum_via, sum_here);
