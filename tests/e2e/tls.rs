//! `https://` and `wss://` to a real server behind a TLS proxy of the
//! test's own, as nginx in front of it would be: `wasmrpc call` (on
//! `wasmrpc-client`, as the Rust stubs are) verifies the proxy's
//! certificate against the authority `SSL_CERT_FILE` names, and refuses one
//! it cannot verify, saying why. The client's own tests (`client/tests/`)
//! cover the rest.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{wasmrpc_with_env, Server};

/// A TLS proxy on a free loopback port in front of `upstream`
/// (`host:port`), with a certificate for `localhost` signed by an
/// authority made here; its port and the authority's PEM.
async fn tls_proxy(upstream: String) -> (u16, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, &ca).unwrap().der().clone();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key.serialize_der()));
    #[allow(deprecated, reason = "ring, the provider of the workspace")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                // A client that does not trust the certificate ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut server = TcpStream::connect(upstream).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
            });
        }
    });
    (port, ca.pem())
}

#[tokio::test(flavor = "multi_thread")]
async fn wasmrpc_call_reaches_a_server_behind_tls_it_can_verify() {
    let server = Server::start(&[]);
    server.deploy_ok("math", "math").await;
    let upstream = server.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let (port, ca) = tls_proxy(upstream).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let ca_file = ca_file.to_string_lossy().into_owned();
    for url in [format!("https://localhost:{port}"), format!("wss://localhost:{port}")] {
        let call = |env: Vec<(&'static str, String)>| {
            let url = url.clone();
            tokio::task::spawn_blocking(move || {
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                wasmrpc_with_env(&["call", "math.add", "[2, 3]", "--server", &url], &env)
            })
        };
        let (ok, stdout, stderr) = call(vec![("SSL_CERT_FILE", ca_file.clone())]).await.unwrap();
        assert!(ok && stdout.trim() == "5", "{url}: {stdout}\n{stderr}");
        let (ok, _, stderr) = call(vec![("SSL_CERT_FILE", String::new())]).await.unwrap();
        assert!(!ok, "{url}: a certificate nobody trusts was taken");
        assert!(stderr.contains("certificate verify failed for localhost: UnknownIssuer"), "{url}: {stderr}");
    }
}
