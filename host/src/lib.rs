//! wasmrpc: a JSON-RPC 2.0 server that runs each call in a fresh WebAssembly
//! sandbox.
//!
//! A request's path through the code, top-down:
//!
//! 1. [`server`] accepts the connection and routes the request (a
//!    WebSocket on `GET /rpc` is served by [`ws`], each message going on
//!    as a request body);
//! 2. [`rpc`] decodes the JSON-RPC envelope (single, batch, notification) and
//!    hands each call to [`registry::Registry::call`];
//! 3. the [`registry`] finds the serving version and runs it in the
//!    [`sandbox`]: a fresh store and instance, limited in time and memory;
//!    the answer goes back the same way, and a failure is a
//!    [`sandbox::CallError`], whose table gives its JSON-RPC code, message
//!    and data.
//!
//! A procedure's own calls (`client.call`) leave the sandbox through its
//! [`sandbox::Dispatcher`], which the registry implements, and come back
//! down step 3 as nested calls of the same call tree.
//!
//! Deploys, rollbacks and removals go [`server`] -> [`admin`] -> [`registry`]
//! (compile, check, describe, then the [`store`] and an atomic swap); the
//! store is the data dir or PostgreSQL ([`store`], which also holds the
//! compiled-code cache). Procedures' own state is kept by name beside the
//! registry: key-value data in [`kv`], configuration (variables and
//! secrets, `wasi:config`) in [`vars`]; who may call what, and how often
//! (caller keys, rate limits), in [`keys`]. [`replica`] follows a shared
//! registry, [`watch`] deploys from a directory, [`metrics`] keeps the counters `/metrics`
//! shows, [`config`] holds every limit, [`outbound`] the rules of a
//! procedure's outgoing HTTP, [`cors`] which web pages may call `/rpc`,
//! [`trace`] the W3C trace context a call
//! tree carries and the spans it exports, and [`http_error`] is the one error
//! type of the HTTP API; [`dashboard`] serves the web page at `GET /`, a
//! client of that API like any other. The command line ([`cli`]: `serve`,
//! the admin and call commands, `new`, `dev`, `stub`) is the binary's glue
//! on top.
//!
//! # Glossary
//!
//! One word, one meaning; where a word must keep two (it is ABI or public
//! API), this says which is which.
//!
//! - **procedure**: a deployed component under a name (`math`); its
//!   exported functions are **methods** (`math.add`). A **version** is one
//!   deploy of a name. `#[procedure]` (the guest SDK's macro) marks a
//!   method's function: the name is the SDK's public API.
//! - **module**: only where the contract says it (JSON-RPC's `module.method`,
//!   `--max-module-mib`); in the code an upload is a component.
//! - **stub**: the WIT interface `wasmrpc:procedure/stub` every procedure
//!   exports (ABI), and what `wasmrpc stub` generates (typed client code);
//!   nothing else.
//! - **client**: the WIT interface `wasmrpc:procedure/client` a procedure
//!   imports to call procedures (ABI), and the `wasmrpc-client` crate
//!   (public API). The sandbox's side of a nested call is a
//!   [`sandbox::Dispatcher`]; the command line's client of the admin API is
//!   [`cli::admin_client`].
//! - **store**: [`store::Store`], where the registry's truth is kept (the
//!   data dir or PostgreSQL). A wasmtime store (one instance's state) is
//!   only ever a `Store<CallState>` inside the sandbox.
//! - **config**: [`config::Config`] is the server's own settings (limits,
//!   flags); a procedure's configuration (what `wasi:config` serves, set
//!   with `PUT /procedures/{name}/config`) is [`vars`]: **variables** and
//!   **secrets**, one namespace of keys, a secret's value never shown.
//! - **sandbox**: the Wasm side of a call (engine, checks, instances);
//!   **registry**: the deployed procedures and their versions.

pub mod admin;
pub mod body;
pub mod cli;
pub mod config;
pub mod cors;
pub mod dashboard;
pub mod http_error;
pub mod keys;
pub mod kv;
pub mod logtext;
pub mod metrics;
pub mod outbound;
pub mod registry;
pub mod replica;
pub mod rpc;
pub mod sandbox;
pub mod server;
pub mod store;
pub mod timeout;
pub mod trace;
pub mod vars;
pub mod watch;
pub mod ws;
