//! `wasi:config/store` (`get`, `get-all`) at `0.2.0-rc.1` (wasmtime's, and
//! the SDK's) and at `0.2.0-draft-2024-09-27` (Spin's): the same interface
//! under two package versions, both served by [`Vars`](crate::vars::Vars)
//! through the [`Dispatcher`]. The WIT is the published one (`wit/config/`).
//! The configuration is the calling procedure's (its name comes from the
//! call, never from the guest); variables and secrets answer alike.
//!
//! No per-call state: a call that never calls `get` costs nothing here. The
//! first `get` of a name on this process (or after a change on another
//! replica) loads it, with the call's slot lent while PostgreSQL answers;
//! every later one reads the cached `Arc`. A refusal (a bad key, storage
//! down) is the WIT's `error`, never a trap, and never shows a value.

use std::sync::Arc;

use super::Capability;
use crate::sandbox::state::CallState;
use crate::vars::{self, ProcConfig, VarsError};

mod rc1 {
    wasmtime::component::bindgen!({
        path: "../wit/config/rc1",
        world: "wasi:config/imports",
        imports: { default: async | trappable },
    });
}

mod draft {
    wasmtime::component::bindgen!({
        path: "../wit/config/draft-2024-09-27",
        world: "wasi:config/imports",
        imports: { default: async | trappable },
    });
}

use draft::wasi::config::store as d;
use rc1::wasi::config::store as r;

pub(in crate::sandbox) const CAPABILITY: Capability = Capability {
    described: "`wasi:config/store` (0.2.0-rc.1 and 0.2.0-draft-2024-09-27)",
    serves,
    link: |linker| {
        rc1::Imports::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |s| s)?;
        draft::Imports::add_to_linker::<_, wasmtime::component::HasSelf<_>>(linker, |s| s)
    },
};

fn serves(name: &str) -> bool {
    matches!(name, "wasi:config/store@0.2.0-rc.1" | "wasi:config/store@0.2.0-draft-2024-09-27")
}

/// Why `get` failed, as both versions' `error` says it.
enum Failure {
    /// A bad key, or no configuration while `describe` runs.
    Upstream(String),
    /// The storage failed or cannot be reached.
    Io(String),
}

impl From<Failure> for r::Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Upstream(m) => r::Error::Upstream(m),
            Failure::Io(m) => r::Error::Io(m),
        }
    }
}

impl From<Failure> for d::Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Upstream(m) => d::Error::Upstream(m),
            Failure::Io(m) => d::Error::Io(m),
        }
    }
}

impl CallState {
    /// The calling procedure's configuration. Takes what it needs from
    /// `self` before it waits: the store's data is not `Sync`.
    fn proc_config(&mut self) -> impl std::future::Future<Output = Result<Arc<ProcConfig>, Failure>> + Send + 'static {
        let dispatcher = self.tree.dispatcher.clone();
        let (procedure, request_id) = (self.procedure.clone(), self.request_id);
        async move {
            let Some(dispatcher) = dispatcher else {
                return Err(Failure::Upstream("configuration cannot be read while `describe` runs (at deploy)".into()));
            };
            let vars = dispatcher.vars();
            if let Some(config) = vars.cached(&procedure) {
                return Ok(config);
            }
            let loaded = if vars.loads_wait() {
                dispatcher.slots().lend_while(vars.get(&procedure)).await
            } else {
                vars.get(&procedure).await
            };
            loaded.map_err(|e| match e {
                VarsError::Storage(e) => {
                    tracing::error!(request_id, procedure = %procedure, "reading the configuration failed: {e:#}");
                    Failure::Io(format!(
                        "configuration storage failed (request id {request_id}; the server log has the details)"
                    ))
                }
                VarsError::Unavailable(_) => {
                    Failure::Io("the configuration store cannot be reached now; retry later".into())
                }
                other => Failure::Upstream(other.to_string()),
            })
        }
    }

    async fn config_get(&mut self, key: &str) -> Result<Option<String>, Failure> {
        vars::check_key(key).map_err(|e| Failure::Upstream(e.to_string()))?;
        Ok(self.proc_config().await?.get(key).map(str::to_owned))
    }

    async fn config_get_all(&mut self) -> Result<Vec<(String, String)>, Failure> {
        let config = self.proc_config().await?;
        Ok(config.entries.iter().map(|(k, e)| (k.clone(), e.value.clone())).collect())
    }
}

impl r::Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, r::Error>> {
        Ok(self.config_get(&key).await.map_err(Into::into))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, r::Error>> {
        Ok(self.config_get_all().await.map_err(Into::into))
    }
}

impl d::Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, d::Error>> {
        Ok(self.config_get(&key).await.map_err(Into::into))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, d::Error>> {
        Ok(self.config_get_all().await.map_err(Into::into))
    }
}

#[cfg(test)]
mod tests {
    use super::serves;

    #[test]
    fn serves_both_versions_and_nothing_else() {
        assert!(serves("wasi:config/store@0.2.0-rc.1"));
        assert!(serves("wasi:config/store@0.2.0-draft-2024-09-27"));
        assert!(!serves("wasi:config/store@0.2.0-draft"));
        assert!(!serves("wasi:config/store"));
        assert!(!serves("wasi:keyvalue/store@0.2.0-draft2"));
    }
}
