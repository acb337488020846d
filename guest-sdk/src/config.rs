//! This procedure's configuration: variables and secrets an operator sets
//! per procedure name (`wasmrpc config NAME set KEY VALUE [--secret]`, or
//! `PUT /procedures/NAME/config`), read through `wasi:config/store`
//! (`@0.2.0-rc.1`).
//!
//! ```no_run
//! use wasmrpc_guest::{config, procedure, Error};
//!
//! /// Greets with the configured greeting, "hello" if none is set.
//! #[procedure]
//! fn greet(name: String) -> Result<String, Error> {
//!     let greeting = config::get("greeting")?.unwrap_or_else(|| "hello".into());
//!     Ok(format!("{greeting}, {name}"))
//! }
//! # wasmrpc_guest::export!(greet);
//! ```
//!
//! What the server guarantees:
//!
//! * Variables and secrets are read alike; a key is one or the other. A
//!   secret's value is never shown by the server (not in its logs, its
//!   admin API or `rpc.discover`): what the procedure does with it is its
//!   own business, so do not return or log it.
//! * A change applies to calls that start after it was answered, without
//!   a redeploy. Two `get`s of one call may straddle a change: read keys
//!   that belong together with one [`get_all`].
//! * Keys are 1 to 128 characters of `a-z`, `0-9`, `_`, `.` and `-`; asking
//!   for any other is a [`ConfigError`], never a quiet `None`.
//!
//! A procedure that does not call this module does not import
//! `wasi:config` at all. Outside a Wasm build (native unit tests) there is
//! no server: every function fails.

use std::fmt;

use serde_json::json;

use crate::Error;

#[cfg(target_arch = "wasm32")]
use crate::bindings::wasi::config::store;

/// The value of `key`, `None` when it is not set.
pub fn get(key: &str) -> Result<Option<String>, ConfigError> {
    #[cfg(target_arch = "wasm32")]
    {
        store::get(key).map_err(|e| ConfigError::from_wit(Some(key), e))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err(ConfigError::no_server(Some(key)))
    }
}

/// Every key and its value, in key order.
pub fn get_all() -> Result<Vec<(String, String)>, ConfigError> {
    #[cfg(target_arch = "wasm32")]
    {
        store::get_all().map_err(|e| ConfigError::from_wit(None, e))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err(ConfigError::no_server(None))
    }
}

/// Why reading the configuration failed.
///
/// `?` in a `#[procedure]` turns it into an [`Error`] that the server
/// answers as a JSON-RPC error with code [`Error::CONFIG`] (-32011), this
/// error's `Display` text as the message, and `data` with the `kind`
/// (`"upstream"`: a bad key; `"io"`: the server's storage) and the `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The key is not valid, or the configuration cannot be read here.
    Upstream {
        /// The key asked for (`None`: `get_all`).
        key: Option<String>,
        /// The server's message.
        message: String,
    },
    /// The server could not read its storage.
    Io {
        /// The key asked for (`None`: `get_all`).
        key: Option<String>,
        /// The server's message.
        message: String,
    },
}

impl ConfigError {
    #[cfg(target_arch = "wasm32")]
    fn from_wit(key: Option<&str>, e: store::Error) -> ConfigError {
        let key = key.map(str::to_owned);
        match e {
            store::Error::Upstream(message) => ConfigError::Upstream { key, message },
            store::Error::Io(message) => ConfigError::Io { key, message },
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn no_server(key: Option<&str>) -> ConfigError {
        ConfigError::Upstream { key: key.map(str::to_owned), message: "configuration needs the wasmrpc server".into() }
    }

    /// The key asked for, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Upstream { key, .. } | ConfigError::Io { key, .. } => key.as_deref(),
        }
    }

    /// `"upstream"` or `"io"`, as the WIT names them.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfigError::Upstream { .. } => "upstream",
            ConfigError::Io { .. } => "io",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ConfigError::Upstream { message, .. } | ConfigError::Io { message, .. }) = self;
        match self.key() {
            Some(key) => write!(f, "config: get {key:?}: {message}"),
            None => write!(f, "config: get-all: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for Error {
    fn from(err: ConfigError) -> Error {
        let data = match err.key() {
            Some(key) => json!({ "kind": err.kind(), "key": key }),
            None => json!({ "kind": err.kind() }),
        };
        Error::new(Error::CONFIG, err.to_string()).with_data(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_becomes_a_config_error_with_its_kind_and_key() {
        let err: Error = get("greeting").unwrap_err().into();
        assert_eq!(err.code, Error::CONFIG);
        assert!(err.message.starts_with("config: get \"greeting\": "), "{}", err.message);
        assert_eq!(err.data, Some(json!({"kind": "upstream", "key": "greeting"})));
        let err: Error = get_all().unwrap_err().into();
        assert_eq!(err.data, Some(json!({"kind": "upstream"})));
    }
}
