use wasmrpc_guest::procedure;

#[procedure]
fn first<T>(items: Vec<T>) -> Option<T> {
    items.into_iter().next()
}

fn main() {}
