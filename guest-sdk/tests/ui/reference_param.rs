use wasmrpc_guest::procedure;

#[procedure]
fn shout(text: &str) -> String {
    text.to_uppercase()
}

fn main() {}
