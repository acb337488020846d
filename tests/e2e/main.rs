#![allow(unreachable_pub)] // a test binary has no API: `pub` only shares helpers between its modules
//! End-to-end tests: the real `wasmrpc` binary on 127.0.0.1 with an ephemeral
//! port and a temporary data dir, driven over real HTTP with real `.wasm`
//! files built from `procedures/`. One test binary; one module per concern.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod admin;
mod cli;
mod clients;
mod cluster;
mod config;
mod connections;
mod dashboard;
mod dev;
mod examples;
mod faults;
mod fetch;
mod isolation;
mod keys;
mod kv;
mod kv_cluster;
mod kv_pg;
mod logging;
mod nested;
mod oracle;
mod outbound;
mod persistence;
mod public;
mod reload;
mod remote;
mod reuse;
/// The fuzz target `module_upload`'s seeds and the procedure template.
#[path = "../../fuzz/seeds.rs"]
mod seeds;
mod spec;
mod stubs;
mod support;
mod tls;
mod tracing;
mod upstream;
mod versions;
mod websocket;
