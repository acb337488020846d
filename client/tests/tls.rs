//! `https://` and `wss://`: calls to servers whose certificate an authority
//! of the test's own signed, trusted with `with_root_certificate` or not.

mod common;

use common::{Ca, Hello, Protocol, TlsServer};
use serde_json::Value;
use wasmrpc_client::{Client, Error, TransportError};

fn http_hello(name: Option<&str>) -> Hello {
    Hello { server_name: name.map(str::to_owned), alpn: Some("http/1.1".into()) }
}

#[tokio::test]
async fn https_and_wss_calls_succeed_when_the_servers_authority_is_trusted() {
    let ca = Ca::new("wasmrpc-client test CA");
    let https = TlsServer::start(&ca, &["localhost", "127.0.0.1"], Protocol::Http).await;
    let client = Client::new(&format!("https://localhost:{}", https.port)).with_root_certificate(ca.pem.as_bytes());
    let client = client.unwrap();
    assert_eq!(client.call::<i64>("math.add", [2, 3]).await.unwrap(), 5);
    // The name of the URL went as SNI; HTTP/1.1 was agreed.
    assert_eq!(https.hellos(), [http_hello(Some("localhost"))]);

    let wss = TlsServer::start(&ca, &["localhost", "127.0.0.1"], Protocol::WebSocket).await;
    let client = Client::new(&format!("wss://127.0.0.1:{}", wss.port)).with_root_certificate(ca.pem.as_bytes());
    let client = client.unwrap();
    assert_eq!(client.call::<i64>("math.add", [2, 3]).await.unwrap(), 5);
    assert_eq!(client.call::<i64>("math.add", [4, 5]).await.unwrap(), 9);
    // One connection for both calls; an IP address is checked against the
    // certificate's, with no SNI.
    assert_eq!(wss.hellos(), [http_hello(None)]);
}

/// The TLS error of a call by `client`, as the user reads it.
async fn tls_error(client: Client) -> String {
    let Err(err) = client.call::<Value>("math.add", [2, 3]).await else { panic!("the call succeeded") };
    match &err {
        Error::Transport(TransportError::Tls { url, .. }) => assert_eq!(url, client.endpoint()),
        other => panic!("not a TLS error: {other:?}"),
    }
    err.to_string()
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_fails_the_call_saying_why() {
    let ca = Ca::new("wasmrpc-client test CA");
    let other = Ca::new("another CA");
    let https = TlsServer::start(&ca, &["localhost", "127.0.0.1"], Protocol::Http).await;
    let wss = TlsServer::start(&ca, &["localhost", "127.0.0.1"], Protocol::WebSocket).await;
    for url in [format!("https://localhost:{}", https.port), format!("wss://localhost:{}", wss.port)] {
        // Not trusted, nor with another authority trusted.
        for client in [Client::new(&url), Client::new(&url).with_root_certificate(other.pem.as_bytes()).unwrap()] {
            let err = tls_error(client).await;
            assert!(
                err.starts_with(&format!("cannot reach the server at {url}/rpc over TLS: certificate verify failed for localhost: UnknownIssuer")),
                "{err}"
            );
            assert!(err.contains("with_root_certificate") && err.contains("SSL_CERT_FILE"), "{err}");
        }
    }
    assert_eq!((https.hellos(), wss.hellos()), (vec![], vec![]), "no handshake succeeded");

    // A certificate of a trusted authority, but for another name.
    let elsewhere = TlsServer::start(&ca, &["rpc.example.com"], Protocol::Http).await;
    let client = Client::new(&format!("https://127.0.0.1:{}", elsewhere.port));
    let err = tls_error(client.with_root_certificate(ca.pem.as_bytes()).unwrap()).await;
    assert!(err.contains("certificate verify failed for 127.0.0.1: certificate not valid for name"), "{err}");
}

#[tokio::test]
async fn a_server_without_tls_at_an_https_url_says_so() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let _ = tcp.read(&mut [0; 4096]).await;
            let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
        }
    });
    for url in [format!("https://127.0.0.1:{port}"), format!("wss://127.0.0.1:{port}")] {
        let err = tls_error(Client::new(&url)).await;
        assert!(err.contains("127.0.0.1 does not answer in TLS") && err.contains("http:// or ws://"), "{err}");
    }
}

#[test]
fn root_certificates_must_be_certificates() {
    let err = Client::new("https://localhost").with_root_certificate(b"-----BEGIN PRIVATE KEY-----\n").unwrap_err();
    assert!(err.to_string().starts_with("cannot trust these root certificates"), "{err}");
}

#[cfg(feature = "blocking")]
#[test]
fn the_blocking_client_trusts_the_same_way() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let ca = Ca::new("wasmrpc-client test CA");
    let https = runtime.block_on(TlsServer::start(&ca, &["localhost"], Protocol::Http));
    let url = format!("https://localhost:{}", https.port);
    let client = wasmrpc_client::blocking::Client::new(&url).unwrap();
    assert!(matches!(client.call::<i64>("math.add", [2, 3]), Err(Error::Transport(TransportError::Tls { .. }))));
    let client = client.with_root_certificate(ca.pem.as_bytes()).unwrap();
    assert_eq!(client.call::<i64>("math.add", [2, 3]).unwrap(), 5);
}
