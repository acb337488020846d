//! wasmrpc: a JSON-RPC 2.0 server that runs each call in a fresh WebAssembly
//! sandbox.
//!
//! A request's path through the code, top-down:
//!
//! 1. [`server`] accepts the connection and routes the request;
//! 2. [`rpc`] decodes the JSON-RPC envelope (single, batch, notification) and
//!    hands each call to [`registry::Registry::call`];
//! 3. the [`registry`] finds the serving version and runs it in the
//!    [`sandbox`]: a fresh store and instance, limited in time and memory;
//!    the answer goes back the same way.
//!
//! A procedure's own calls (`client.call`) leave the sandbox through its
//! [`sandbox::Client`] trait, which [`rpc`] implements for the registry, and
//! come back down steps 2 and 3 as nested calls of the same call tree.
//!
//! Deploys, rollbacks and removals go [`server`] -> [`admin`] -> [`registry`]
//! (compile, check, describe, then the [`store`] and an atomic swap); the
//! store is the data dir ([`storage`], which also caches compiled code). [`watch`] deploys from a
//! directory, [`metrics`] keeps the counters `/metrics` shows, [`config`]
//! holds every limit, and [`http_error`] is the one error type of the HTTP
//! API; [`dashboard`] serves the web page at `GET /`, a client of that API
//! like any other. The command line ([`cli`]: `serve`, the client commands, `new`,
//! `dev`) is the binary's glue on top.

pub mod admin;
pub mod body;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod http_error;
pub mod logtext;
pub mod metrics;
pub mod registry;
pub mod replica;
pub mod rpc;
pub mod sandbox;
pub mod server;
pub mod storage;
pub mod store;
pub mod store_pg;
pub mod watch;
