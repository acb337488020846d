//! Reading a request's body within its size and time limits. Every upload and
//! every JSON-RPC body goes through [`read`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::Request;

use crate::timeout::until;

/// Why a body could not be read.
pub enum BodyError {
    /// Larger than the limit (declared or as it arrived).
    TooLarge,
    /// Not all there within the body timeout.
    Timeout,
    /// The connection broke.
    Broken(String),
}

/// How far past the limit a refused body is still read (and dropped) before
/// the error is sent: closing a socket with unread data resets it, and the
/// client, still sending, would see a broken pipe instead of the answer.
const DRAIN_BYTES: u64 = 8 << 20;
/// How long that reading may take.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Reads a whole body of at most `limit` bytes within `timeout`.
pub async fn read(req: Request<Incoming>, limit: u64, timeout: Duration) -> Result<Bytes, BodyError> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&n| n > limit) {
        if declared - limit <= DRAIN_BYTES {
            drain(req.into_body()).await;
        }
        return Err(BodyError::TooLarge);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let collect = Limited::new(req.into_body(), limit).collect();
    match until(Instant::now() + timeout, collect).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
    }
}

async fn drain(mut body: Incoming) {
    let _ = tokio::time::timeout(DRAIN_TIME, async { while let Some(Ok(_)) = body.frame().await {} }).await;
}
