//! Upload validation on arbitrary bytes: compiling and checking a module
//! either accepts it or says why not, and never panics; what it accepts is
//! then described, as a deploy does next, under a time limit, and that ends
//! (with an answer or an error) without a panic either.
//!
//! Random bytes rarely get past the header check, so `make fuzz` has this
//! target write the small hand-made components of `seeds.rs` into the corpus
//! (`FUZZ_SEED_DIR`): a valid procedure and one per check (missing export,
//! forbidden import, wrong stub type), each under 1 KiB. The built example
//! procedures are real components too, but compiling one takes seconds in
//! the instrumented build; `make fuzz FUZZ_EXAMPLE_SEEDS=1` adds them.
//! Built without cargo-fuzz, it runs the check on each seed (see
//! `fuzz/Cargo.toml`).

#![cfg_attr(fuzzing, no_main)]

use std::path::Path;
use std::sync::OnceLock;

use wasmrpc::config::Config;
use wasmrpc::sandbox::{CallContext, Sandbox};

#[path = "../seeds.rs"]
mod seeds;

struct Harness {
    sandbox: Sandbox,
    runtime: tokio::runtime::Runtime,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let mut config = Config::new(std::env::temp_dir());
        // A describe that loops is stopped quickly; the fuzzer's own
        // timeout only sees a hang if the limit fails.
        config.time_limit = std::time::Duration::from_millis(500);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio");
        Harness { sandbox: Sandbox::new(&config).expect("sandbox"), runtime }
    })
}

/// Writes [`SEEDS`] as `.wasm` files into `dir` (libFuzzer reads its corpus
/// after this init, so they are fuzzed from the first run).
#[cfg_attr(not(fuzzing), allow(dead_code))]
fn write_seeds(dir: &Path) {
    std::fs::create_dir_all(dir).expect("seed dir");
    for (name, bytes) in seed_bytes() {
        std::fs::write(dir.join(format!("seed_{name}.wasm")), bytes).expect("write seed");
    }
}

/// Compiles and checks `bytes`, and describes what is accepted; a refusal
/// is fine (the seeds' messages are checked by the e2e test
/// `fuzz_seeds_end_where_they_should`), a panic is the bug.
fn check(bytes: &[u8]) {
    let h = harness();
    if let Ok(compiled) = h.sandbox.compile(bytes) {
        let described = h.runtime.block_on(h.sandbox.describe("fuzz", &compiled, CallContext::new(0)));
        if let Ok(text) = described {
            // Whatever it answers is parsed as a deploy would, without a panic.
            let _ = serde_json::from_str::<serde_json::Value>(&text);
        }
    }
}

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(
    init: {
        if let Some(dir) = std::env::var_os("FUZZ_SEED_DIR") {
            write_seeds(Path::new(&dir));
        }
    },
    |bytes: &[u8]| check(bytes)
);

/// The seeds, named, as bytes.
fn seed_bytes() -> impl Iterator<Item = (&'static str, Vec<u8>)> {
    seeds::seeds()
        .into_iter()
        .map(|(name, wat, _)| (name, wat::parse_str(&wat).unwrap_or_else(|e| panic!("seed {name}: {e}"))))
}

/// Without cargo-fuzz: the check once on each seed.
#[cfg(not(fuzzing))]
fn main() {
    seed_bytes().for_each(|(_, bytes)| check(&bytes));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_target_holds_on_its_seeds() {
        super::seed_bytes().for_each(|(_, bytes)| super::check(&bytes));
    }
}
