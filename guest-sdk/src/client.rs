//! Calls from a procedure to other deployed procedures, through the server
//! (the `client` interface of `wit/procedure.wit`).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::Error;

/// Calls `method` (`module.method`) of another deployed procedure and reads
/// its result as an `R`.
///
/// `params` is anything that serialises to a JSON object (by name, e.g.
/// `json!({"a": 2, "b": 3})` or a struct), an array (by position: a tuple
/// `(2, 3)`, a `Vec`, `json!([2, 3])`), or `()` for none. The callee runs
/// in a fresh instance of the version serving now, within what is left of
/// this call's time limit.
///
/// A failed call returns the error an outside client would get for the same
/// call (the callee's own error, -32601 when nothing serves `method`,
/// -32000 trapped, -32001 out of time, -32002 memory limit, -32004 past the
/// server's call depth or nested-call limit), so `?` hands it to your caller
/// unchanged. A result that is not an `R` is a -32603 error naming `method`.
///
/// ```no_run
/// use wasmrpc_guest::{procedure, Error};
///
/// /// The square of `x`, computed by `math.multiply`.
/// #[procedure]
/// fn square(x: i64) -> Result<i64, Error> {
///     wasmrpc_guest::call("math.multiply", (x, x))
/// }
/// # wasmrpc_guest::export!(square);
/// ```
pub fn call<R: DeserializeOwned>(method: &str, params: impl Serialize) -> Result<R, Error> {
    let params = serde_json::to_string(&params).map_err(|e| {
        Error::new(Error::INTERNAL, format!("cannot serialise the params of {method}: {e}"))
            .with_data(json!({ "method": method }))
    })?;
    let result = call_json(method, &params)?;
    serde_json::from_str(&result).map_err(|e| {
        Error::new(Error::INTERNAL, format!("cannot read the result of {method}: {e}"))
            .with_data(json!({ "method": method, "result": result }))
    })
}

/// [`call`] with `params` and the result as JSON text, passed as they are.
pub fn call_json(method: &str, params: &str) -> Result<String, Error> {
    host_call(method, params)
}

#[cfg(target_arch = "wasm32")]
fn host_call(method: &str, params: &str) -> Result<String, Error> {
    crate::bindings::wasmrpc::procedure::client::call(method, params).map_err(|e| Error {
        code: e.code,
        message: e.message,
        // Data is JSON text; text that does not parse is kept as a string, as
        // the server does.
        data: e.data.map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
    })
}

/// Outside a Wasm build (the SDK's own tests, native benchmarks) there is no
/// server to call through.
#[cfg(not(target_arch = "wasm32"))]
fn host_call(method: &str, _params: &str) -> Result<String, Error> {
    Err(Error::new(Error::INTERNAL, format!("cannot call {method}: nested calls need the wasmrpc server"))
        .with_data(json!({ "method": method })))
}
