//! `calc`: a procedure that calls procedures. `calc.hypot` computes with the
//! `math` example through the server, each step in a fresh instance of
//! `math`, so `math` must be deployed too (`make run` deploys both).
//!
//! Call `calc.hypot` with `[3, 4]` or `{"a": 3, "b": 4}`: 5.

use wasmrpc_guest::serde_json::json;
use wasmrpc_guest::{call, procedure, Error};

/// The length of the hypotenuse of a right triangle with legs `a` and `b`:
/// sqrt(a² + b²), the squares computed by `math.multiply` and their sum by
/// `math.add`.
///
/// Errors of those calls come back unchanged: code 1 when a square or the
/// sum overflows 64 bits, -32601 naming the method when `math` is not
/// deployed.
#[procedure]
fn hypot(a: i64, b: i64) -> Result<f64, Error> {
    // By position: a tuple is a JSON array.
    let a2: i64 = call("math.multiply", (a, a))?;
    let b2: i64 = call("math.multiply", (b, b))?;
    // By name: a JSON object.
    let sum: i64 = call("math.add", json!({"a": a2, "b": b2}))?;
    Ok((sum as f64).sqrt())
}

wasmrpc_guest::export!(hypot);
