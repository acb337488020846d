//! The `wasmrpc-componentize` binary as `make procedures` runs it: its
//! usage, and an input that is not a core module refused with the reason
//! and no output written. (The wrapping itself is exercised by every
//! no-WASI procedure the end-to-end tests deploy.)

use std::process::Command;

fn componentize(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmrpc-componentize")).args(args).output().expect("runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn wrong_arguments_print_the_usage() {
    let (code, stderr) = componentize(&["only-one-argument"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("usage: wasmrpc-componentize CORE.wasm -o COMPONENT.wasm"), "{stderr}");
}

#[test]
fn a_file_that_is_not_wasm_is_refused_and_nothing_is_written() {
    let dir = std::env::temp_dir().join(format!("wasmrpc-componentize-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("not.wasm");
    let output = dir.join("out.wasm");
    std::fs::write(&input, b"hello").expect("input");
    let (code, stderr) = componentize(&[input.to_str().expect("utf-8"), "-o", output.to_str().expect("utf-8")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("not a Wasm module"), "{stderr}");
    assert!(!output.exists());
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
