//! The admin client: how the command line (`deploy`, `list`, `remove`,
//! `versions`, `rollback`, `kv`, `dev`) talks to a server's admin API, over
//! `wasmrpc-client`'s HTTP transport (`wasmrpc_client::http`), so the
//! project has one. JSON-RPC calls (`wasmrpc call`) go through
//! `wasmrpc_client::Client` instead.

use hyper::{Method, StatusCode};

pub use wasmrpc_client::http::{send, Answer};

/// Why an admin request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AdminFailure {
    /// The server answered with an error status; `message` is its `{"error"}` text.
    #[error("the server answered {status}: {message}")]
    Refused { status: StatusCode, message: String },
    /// The server could not be reached, or the request not made.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The admin API (`/procedures`) of one server, with its token if any.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    authorization: Option<String>,
}

impl AdminClient {
    /// A client of the server at `server` (a base URL); an empty token counts as none.
    pub fn new(server: &str, admin_token: Option<&str>) -> Self {
        AdminClient {
            base: server.trim_end_matches('/').to_owned(),
            authorization: admin_token.filter(|t| !t.is_empty()).map(|t| format!("Bearer {t}")),
        }
    }

    /// Sends `method path` with `body`; a non-2xx answer is [`AdminFailure::Refused`].
    pub async fn request(&self, method: Method, path: &str, body: Vec<u8>) -> Result<Answer, AdminFailure> {
        let headers: Vec<(&str, &str)> = self.authorization.iter().map(|b| ("authorization", b.as_str())).collect();
        let answer =
            send(method, &format!("{}{path}", self.base), &headers, body).await.map_err(anyhow::Error::from)?;
        if !answer.status.is_success() {
            let message = answer
                .json()
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| answer.text());
            return Err(AdminFailure::Refused { status: answer.status, message });
        }
        Ok(answer)
    }
}
