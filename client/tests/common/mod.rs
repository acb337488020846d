//! TLS servers of the tests' own, on loopback: a certificate authority
//! made for the test (rcgen), a server certificate it signs, and JSON-RPC
//! answered over HTTP/1.1 (one request per connection) or WebSocket; each
//! answer is the sum of the call's params.

#![allow(dead_code, reason = "each test binary uses its part")]
#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt as _, StreamExt as _};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A certificate authority of the test's own.
pub(crate) struct Ca {
    /// Its certificate, to trust.
    pub(crate) pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { pem: issuer.pem(), issuer }
    }

    /// A server certificate for `names` (host names or IP addresses) and
    /// its key.
    fn sign(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate.der().clone(), PrivatePkcs8KeyDer::from(key.serialize_der()).into())
    }
}

/// What the server speaks over TLS.
#[derive(Clone, Copy)]
pub(crate) enum Protocol {
    Http,
    WebSocket,
}

/// What a TLS client said in its handshake: the name it asked for (SNI)
/// and the protocol agreed (ALPN).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hello {
    pub(crate) server_name: Option<String>,
    pub(crate) alpn: Option<String>,
}

/// A server on a free loopback port with a certificate `ca` signed for
/// `names`.
pub(crate) struct TlsServer {
    pub(crate) port: u16,
    /// The handshakes that succeeded, in order.
    pub(crate) hellos: Arc<Mutex<Vec<Hello>>>,
}

impl TlsServer {
    pub(crate) async fn start(ca: &Ca, names: &[&str], protocol: Protocol) -> TlsServer {
        let (certificate, key) = ca.sign(names);
        #[allow(deprecated, reason = "ring, the client's provider")]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certificate], key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hellos = Arc::new(Mutex::new(Vec::new()));
        let seen = hellos.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends here.
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let connection = tls.get_ref().1;
                    seen.lock().unwrap().push(Hello {
                        server_name: connection.server_name().map(str::to_owned),
                        alpn: connection.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
                    });
                    match protocol {
                        Protocol::Http => answer_http(tls).await,
                        Protocol::WebSocket => answer_websocket(tls).await,
                    }
                });
            }
        });
        TlsServer { port, hellos }
    }

    pub(crate) fn hellos(&self) -> Vec<Hello> {
        self.hellos.lock().unwrap().clone()
    }
}

/// The answer to the JSON-RPC request `request`: the sum of its params.
fn sum_of(request: &Value) -> Value {
    let sum: i64 = request["params"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).sum();
    json!({"jsonrpc": "2.0", "result": sum, "id": request["id"]})
}

/// Reads one HTTP request and answers it, closing the connection.
async fn answer_http(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    let mut read = Vec::new();
    let mut buffer = [0; 4096];
    let (head_end, length) = loop {
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the connection ended within the request");
        read.extend_from_slice(&buffer[..n]);
        if let Some(at) = read.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&read[..at]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            break (at + 4, length);
        }
    };
    while read.len() < head_end + length {
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "the connection ended within the body");
        read.extend_from_slice(&buffer[..n]);
    }
    let request: Value = serde_json::from_slice(&read[head_end..head_end + length]).unwrap();
    let body = sum_of(&request).to_string();
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
}

/// Answers every call on one WebSocket connection.
async fn answer_websocket(stream: impl AsyncRead + AsyncWrite + Unpin) {
    let mut socket = tokio_tungstenite::accept_async(stream).await.unwrap();
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Text(text) = message {
            let request: Value = serde_json::from_str(text.as_str()).unwrap();
            socket.send(Message::text(sum_of(&request).to_string())).await.unwrap();
        }
    }
}
