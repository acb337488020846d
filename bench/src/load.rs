//! The load generator: N keep-alive connections, each sending one request
//! and waiting for its answer before the next (closed loop), for a fixed
//! time. Hand-written HTTP/1.1 on one thread, so its own cost per request is
//! a write, a read and a length check, and it takes one core at most (wrk
//! `-t1` does the same). Every answer's body is compared with the expected
//! bytes, or, for answers that vary (a counter's next value), checked to be
//! a result for the request's id: a fast wrong answer counts as an error,
//! not as throughput.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Bounds a run even if the duration were set absurdly high.
const MAX_REQUESTS_PER_CONNECTION: u64 = 5_000_000;

/// What one run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency of every answered request, in nanoseconds.
    pub latencies_ns: Vec<u64>,
}

impl Outcome {
    pub fn merge(&mut self, other: Outcome) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies_ns.extend(other.latencies_ns);
    }

    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What a right answer is.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// Exactly these bytes.
    Bytes(&'a [u8]),
    /// A result, whatever its value, for the request whose `"id"` is this
    /// JSON text: `{"jsonrpc":"2.0","result":` ... `,"id":ID}`, the server's
    /// layout (an error answer starts `{"jsonrpc":"2.0","error":`).
    ResultFor { id: &'a str },
}

/// An [`Expect`] made into what one connection compares with.
#[derive(Clone)]
enum Check {
    Bytes(Vec<u8>),
    Result { suffix: Vec<u8> },
}

const RESULT_PREFIX: &[u8] = br#"{"jsonrpc":"2.0","result":"#;

impl Check {
    fn new(expect: Expect<'_>) -> Check {
        match expect {
            Expect::Bytes(bytes) => Check::Bytes(bytes.to_vec()),
            Expect::ResultFor { id } => Check::Result { suffix: format!(r#","id":{id}}}"#).into_bytes() },
        }
    }

    #[inline]
    fn accepts(&self, body: &[u8]) -> bool {
        match self {
            Check::Bytes(expect) => body == expect.as_slice(),
            Check::Result { suffix } => {
                body.len() > RESULT_PREFIX.len() + suffix.len()
                    && body.starts_with(RESULT_PREFIX)
                    && body.ends_with(suffix)
            }
        }
    }
}

/// Sends `body` to `POST /rpc` at `addr` over `connections` connections for
/// `duration`, and checks each answer's body is what `expect` says.
pub fn run(
    addr: SocketAddr,
    body: &[u8],
    expect: Expect<'_>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let request = format!(
        "POST /rpc HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    let check = Check::new(expect);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut streams = Vec::with_capacity(connections);
        for _ in 0..connections {
            let stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
            stream.set_nodelay(true)?;
            streams.push(stream);
        }
        let started = Instant::now();
        let deadline = started + duration;
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|stream| {
                let request = request.clone();
                tokio::spawn(connection(stream, request, check.clone(), deadline))
            })
            .collect();
        let mut outcome = Outcome::default();
        for task in tasks {
            let (latencies, errors) = task.await??;
            outcome.requests += latencies.len() as u64;
            outcome.errors += errors;
            outcome.latencies_ns.extend(latencies);
        }
        outcome.elapsed = started.elapsed();
        Ok(outcome)
    })
}

/// One connection's closed loop; returns the latencies and the count of wrong answers.
async fn connection(
    mut stream: TcpStream,
    request: Vec<u8>,
    check: Check,
    deadline: Instant,
) -> anyhow::Result<(Vec<u64>, u64)> {
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let sent = Instant::now();
        if sent >= deadline {
            break;
        }
        stream.write_all(&request).await.context("sending a request")?;
        let body = read_answer(&mut stream, &mut buf).await?;
        latencies.push(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if !check.accepts(body) {
            errors += 1;
        }
    }
    Ok((latencies, errors))
}

/// Reads one HTTP/1.1 answer with a Content-Length; returns its body.
async fn read_answer<'b>(stream: &mut TcpStream, buf: &'b mut Vec<u8>) -> anyhow::Result<&'b [u8]> {
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = stream.read(&mut buf[filled..]).await.context("reading an answer")?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        filled += n;
        let Some(head_end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let length = content_length(&buf[..head_end])?;
        let total = head_end + 4 + length;
        if filled >= total {
            return Ok(&buf[head_end + 4..total]);
        }
        if total > buf.len() {
            buf.resize(total, 0);
        }
    }
}

fn content_length(head: &[u8]) -> anyhow::Result<usize> {
    for line in head.split(|&b| b == b'\n') {
        let line = std::str::from_utf8(line).unwrap_or("");
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                return value.trim().parse().context("a bad Content-Length");
            }
        }
    }
    bail!("an answer without Content-Length: {}", String::from_utf8_lossy(head))
}

/// The `q`-quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;

    #[test]
    fn content_length_is_found_in_any_case() {
        assert_eq!(content_length(b"HTTP/1.1 200 OK\r\ncontent-length: 42\r\ndate: x").unwrap(), 42);
        assert_eq!(content_length(b"HTTP/1.1 200 OK\r\nContent-Length:7").unwrap(), 7);
        assert!(content_length(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked").is_err());
    }

    #[test]
    fn a_result_check_takes_any_result_for_the_id_and_nothing_else() {
        let check = Check::new(Expect::ResultFor { id: "1" });
        assert!(check.accepts(br#"{"jsonrpc":"2.0","result":17,"id":1}"#));
        assert!(check.accepts(br#"{"jsonrpc":"2.0","result":{"n":[1,2]},"id":1}"#));
        assert!(!check.accepts(br#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"x"},"id":1}"#));
        assert!(!check.accepts(br#"{"jsonrpc":"2.0","result":17,"id":2}"#));
        assert!(!check.accepts(br#"{"jsonrpc":"2.0","result":,"id":1}"#));
        let exact = Check::new(Expect::Bytes(b"abc"));
        assert!(exact.accepts(b"abc") && !exact.accepts(b"abd"));
    }

    #[test]
    fn quantiles_pick_from_sorted_samples() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&samples, 0.5), 51);
        assert_eq!(quantile(&samples, 0.99), 99);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
