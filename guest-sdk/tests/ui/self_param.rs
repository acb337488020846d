use wasmrpc_guest::procedure;

struct Counter(u32);

impl Counter {
    #[procedure]
    fn get(&self) -> u32 {
        self.0
    }
}

fn main() {}
