//! wasmrpc: a JSON-RPC 2.0 server that runs each call in a fresh WebAssembly
//! sandbox.
//!
//! A request's path through the code, top-down:
//!
//! 1. [`server`] accepts the connection and routes the request;
//! 2. [`rpc`] decodes the JSON-RPC envelope (single, batch, notification) and
//!    finds the procedure in the [`registry`];
//! 3. [`runtime`] instantiates the procedure's component in a fresh store and
//!    calls its `call` export; the answer goes back the same way.
//!
//! Deploys go [`server`] -> [`admin`] -> [`registry`] (compile, check,
//! describe, then [`storage`] and an atomic swap).

pub mod admin;
pub mod cli;
pub mod client;
pub mod config;
pub mod dev;
pub mod metrics;
pub mod registry;
pub mod rpc;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod storage;
pub mod watch;
