//! `math`: arithmetic over JSON numbers, the first example procedure.
//!
//! Call `math.add` with `[2, 3]` or `{"a": 2, "b": 3}`.

use wasmrpc_guest::{procedure, Error};

/// Code of the errors this module answers with (outside JSON-RPC's range).
const ARITHMETIC: i32 = 1;

/// Adds two integers.
///
/// Fails with code 1 when the sum does not fit in 64 bits.
#[procedure]
fn add(a: i64, b: i64) -> Result<i64, Error> {
    a.checked_add(b).ok_or_else(|| overflow("add", a, b))
}

/// Subtracts `b` from `a`.
#[procedure]
fn subtract(a: i64, b: i64) -> Result<i64, Error> {
    a.checked_sub(b).ok_or_else(|| overflow("subtract", a, b))
}

/// Multiplies two integers.
#[procedure]
fn multiply(a: i64, b: i64) -> Result<i64, Error> {
    a.checked_mul(b).ok_or_else(|| overflow("multiply", a, b))
}

/// Divides `a` by `b`.
///
/// Fails with code 1, "division by zero", when `b` is 0.
#[procedure]
fn divide(a: f64, b: f64) -> Result<f64, Error> {
    if b == 0.0 {
        return Err(Error::new(ARITHMETIC, "division by zero").with_data(wasmrpc_guest::serde_json::json!({"a": a})));
    }
    Ok(a / b)
}

/// Rounds `x` to `digits` decimal places (0 when left out).
#[procedure]
fn round(x: f64, digits: Option<u8>) -> f64 {
    let factor = 10f64.powi(i32::from(digits.unwrap_or(0).min(15)));
    (x * factor).round() / factor
}

/// The sum and the mean of a list of numbers (the mean is null for an empty list).
#[procedure]
fn stats(values: Vec<f64>) -> Stats {
    let sum: f64 = values.iter().sum();
    let mean = (!values.is_empty()).then(|| sum / values.len() as f64);
    Stats { count: values.len(), sum, mean }
}

/// What `stats` answers.
#[derive(serde::Serialize, wasmrpc_guest::schemars::JsonSchema)]
#[schemars(crate = "wasmrpc_guest::schemars")]
struct Stats {
    count: usize,
    sum: f64,
    mean: Option<f64>,
}

fn overflow(op: &str, a: i64, b: i64) -> Error {
    Error::new(ARITHMETIC, format!("integer overflow in {op}"))
        .with_data(wasmrpc_guest::serde_json::json!({"a": a, "b": b}))
}

wasmrpc_guest::export!(add, subtract, multiply, divide, round, stats);
