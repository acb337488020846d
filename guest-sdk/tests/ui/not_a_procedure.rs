/// Not marked `#[procedure]`: `export!` cannot list it.
fn add(a: i64, b: i64) -> i64 {
    a + b
}

wasmrpc_guest::export!(add);

fn main() {}
