//! The blocking client (feature `blocking`): [`crate::Client`]'s calls on a
//! tokio runtime of its own, for programs that are not async. Do not use it
//! inside an async runtime (tokio refuses to block one of its threads). The
//! runtime has one worker thread: with a `ws://` URL, the connection's
//! reader runs there between calls (it answers the server's pings and sees
//! a close at once, so the next call connects anew instead of failing).

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Answers, Batch, Call, Error};

/// A blocking JSON-RPC client of one wasmrpc server. Cloning it shares its
/// connections and its runtime.
#[derive(Clone, Debug)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Client {
    /// A client of the server at `url` (see [`crate::Client::new`]). Fails
    /// only if the operating system refuses the runtime its resources.
    pub fn new(url: &str) -> std::io::Result<Client> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wasmrpc-client")
            .enable_all()
            .build()?;
        Ok(Client { inner: crate::Client::new(url), runtime: Arc::new(runtime) })
    }

    /// See [`crate::Client::with_admin_token`].
    pub fn with_admin_token(mut self, token: &str) -> Client {
        self.inner = self.inner.with_admin_token(token);
        self
    }

    /// See [`crate::Client::with_root_certificate`].
    pub fn with_root_certificate(mut self, pem: &[u8]) -> std::io::Result<Client> {
        self.inner = self.inner.with_root_certificate(pem)?;
        Ok(self)
    }

    /// See [`crate::Client::with_timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.inner = self.inner.with_timeout(timeout);
        self
    }

    /// The URL the JSON-RPC requests go to.
    pub fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// Calls `method` with `params` (see [`Call::call`]) and returns the
    /// result as a `T`.
    pub fn call<T: DeserializeOwned>(&self, method: &str, params: impl Serialize) -> Result<T, Error> {
        self.runtime.block_on(self.inner.call(method, params))
    }

    /// A batch of calls, sent in one request by [`Batch::send`].
    pub fn batch(&self) -> Batch<'_, Client> {
        Batch::new(self)
    }
}

impl Call for Client {
    type Output<T: DeserializeOwned + Send + 'static> = Result<T, Error>;

    fn call<T: DeserializeOwned + Send + 'static>(&self, method: &str, params: impl Serialize) -> Result<T, Error> {
        Client::call(self, method, params)
    }
}

impl Batch<'_, Client> {
    /// Sends every call in one request. An empty batch sends nothing.
    pub fn send(self) -> Result<Answers, Error> {
        let client = self.client;
        let batch = Batch { client: &client.inner, calls: self.calls };
        client.runtime.block_on(batch.send())
    }
}
