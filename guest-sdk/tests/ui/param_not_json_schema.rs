use wasmrpc_guest::procedure;
use wasmrpc_guest::serde::Deserialize;

/// `Deserialize` but not `JsonSchema`: `describe` could not say what the
/// parameter accepts.
#[derive(Deserialize)]
#[serde(crate = "wasmrpc_guest::serde")]
struct Point {
    x: f64,
}

#[procedure]
fn norm(point: Point) -> f64 {
    point.x.abs()
}

wasmrpc_guest::export!(norm);

fn main() {}
