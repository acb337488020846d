//! `math.add` over plain `wasi:http`, for `wasmtime serve` (`make bench`):
//! parses the JSON-RPC request, adds its two params and answers the bytes
//! wasmrpc answers (`{"jsonrpc":"2.0","result":3,"id":1}`), or a JSON-RPC
//! error for a request it cannot read.

use serde::Deserialize;
use serde_json::value::RawValue;
use wstd::http::{Body, Error, Request, Response};

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    params: (i64, i64),
}

#[wstd::http_server]
async fn main(mut request: Request<Body>) -> Result<Response<Body>, Error> {
    let body = request.body_mut().contents().await?;
    let answer = match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { id, params: (a, b) }) => {
            format!(r#"{{"jsonrpc":"2.0","result":{},"id":{}}}"#, a.wrapping_add(b), id.get())
        }
        Err(_) => r#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}"#.to_owned(),
    };
    // A length, not chunks: as wasmrpc and the native baseline answer.
    let length = answer.len();
    let mut response = Response::new(Body::from(answer));
    response.headers_mut().insert("content-type", "application/json".parse()?);
    response.headers_mut().insert("content-length", length.into());
    Ok(response)
}
