//! The HTTP client the command line (`deploy`, `list`, `remove`, `dev`) and
//! the end-to-end tests send their requests with: `wasmrpc-client`'s
//! transport, so the project has one. JSON-RPC calls (`wasmrpc call`) go
//! through `wasmrpc_client::Client`.

pub use wasmrpc_client::http::{send, Answer, HttpClient, TransportError};
