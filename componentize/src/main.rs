//! `wasmrpc-componentize CORE.wasm -o OUT.wasm`: `wasmrpc component` for
//! `make procedures`, without building the server.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, output) = match args.as_slice() {
        [input, flag, output] if flag == "-o" => (PathBuf::from(input), PathBuf::from(output)),
        _ => {
            eprintln!("usage: wasmrpc-componentize CORE.wasm -o COMPONENT.wasm");
            return ExitCode::from(2);
        }
    };
    match wasmrpc_componentize::file(&input, &output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
