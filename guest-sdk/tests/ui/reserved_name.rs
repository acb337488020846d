use wasmrpc_guest::procedure;

#[procedure(name = "rpc.discover")]
fn discover() -> u32 {
    1
}

fn main() {}
