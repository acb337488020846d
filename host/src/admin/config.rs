//! The admin API of procedures' configuration (`wasi:config/store`), all
//! behind admin auth:
//!
//! - `GET /procedures/{name}/config`: `{"variables": {KEY: VALUE},
//!   "secrets": [KEY]}`: variables with their values, secrets by name only;
//! - `PUT /procedures/{name}/config` with `{"variables": {KEY: VALUE|null},
//!   "secrets": {KEY: VALUE|null}}`: merges into what the name has (keys
//!   not in the body stay; `null` unsets a key, whichever kind it is),
//!   all or nothing, and answers as `GET` does;
//! - `DELETE /procedures/{name}/config`: unsets every key.
//!
//! The configuration belongs to a name whether or not it is deployed now.
//! A body is never logged, and no answer or error holds a secret's value.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::{authorize_request, to_json};
use crate::config::Config;
use crate::http_error::{json_response, HttpError, HttpResponse};
use crate::registry::{check_name, Registry};
use crate::vars::{self, VarsError};

/// Largest PUT body: the total of keys and values, with room for JSON's
/// escapes (a value of control characters is 6 bytes a character).
const MAX_BODY_BYTES: u64 = 8 << 20;

impl From<VarsError> for HttpError {
    fn from(e: VarsError) -> Self {
        match e {
            VarsError::Invalid(m) | VarsError::TooLarge(m) => HttpError::BadRequest(m),
            VarsError::Unavailable(m) => HttpError::Unavailable(m),
            VarsError::Storage(e) => HttpError::internal(&e),
        }
    }
}

/// A route `/procedures/{name}/config`: the name.
pub fn handles(rest: &str) -> Option<&str> {
    rest.strip_suffix("/config").filter(|name| !name.contains('/'))
}

/// Serves a request to `/procedures/{name}/config`.
pub async fn serve(
    registry: &Arc<Registry>,
    config: &Config,
    peer: SocketAddr,
    name: &str,
    req: Request<Incoming>,
) -> Result<HttpResponse, HttpError> {
    authorize_request(config, peer, &req)?;
    check_name(name)?;
    let vars = registry.vars();
    let shown = match req.method().as_str() {
        "GET" => vars.get(name).await?,
        "PUT" => {
            let what = format!(
                "it is larger than {} MiB, and a procedure's configuration is at most {} bytes",
                MAX_BODY_BYTES >> 20,
                vars::MAX_TOTAL_BYTES
            );
            let body = super::read_body(req, config, MAX_BODY_BYTES, &what).await?;
            let changes = vars::parse_changes(&body)?;
            vars.change(name, changes).await?
        }
        "DELETE" => vars.erase(name).await?,
        _ => {
            return Err(HttpError::MethodNotAllowed {
                message: "this path takes GET, PUT, DELETE".into(),
                allow: "GET, PUT, DELETE",
            })
        }
    };
    Ok(json_response(StatusCode::OK, to_json(&shown.shown())))
}

#[cfg(test)]
mod tests {
    use super::handles;

    #[test]
    fn routes() {
        assert_eq!(handles("notes/config"), Some("notes"));
        assert_eq!(handles("notes"), None);
        assert_eq!(handles("a/b/config"), None);
        assert_eq!(handles("notes/kv/config"), None);
    }
}
