//! The `wasmrpc` binary: parse the command line, start logging, run the command.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = wasmrpc::cli::Cli::parse();
    match wasmrpc::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
