use wasmrpc_guest::procedure;

#[procedure]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

wasmrpc_guest::export!(add, add);

fn main() {}
