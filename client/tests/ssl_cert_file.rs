//! `SSL_CERT_FILE`: the authorities of the PEM file it names are trusted
//! besides the built-in ones, by every client of the process. A test binary
//! of its own, as the variable is read once per process.

mod common;

use common::{Ca, Protocol, TlsServer};
use wasmrpc_client::Client;

#[tokio::test]
async fn the_authorities_in_ssl_cert_file_are_trusted() {
    let ca = Ca::new("wasmrpc-client SSL_CERT_FILE CA");
    let file = std::env::temp_dir().join(format!("wasmrpc-client-ssl-cert-file-{}.pem", std::process::id()));
    std::fs::write(&file, &ca.pem).unwrap();
    // The only test of this binary: no other thread reads the environment.
    std::env::set_var("SSL_CERT_FILE", &file);
    let https = TlsServer::start(&ca, &["localhost"], Protocol::Http).await;
    let wss = TlsServer::start(&ca, &["localhost"], Protocol::WebSocket).await;
    for url in [format!("https://localhost:{}", https.port), format!("wss://localhost:{}", wss.port)] {
        let sum = Client::new(&url).call::<i64>("math.add", [2, 3]).await;
        assert_eq!(sum.unwrap_or_else(|e| panic!("{url}: {e}")), 5);
    }
    let _ = std::fs::remove_file(&file);
}
