//! TLS for `https://` and `wss://` URLs: rustls with ring's provider,
//! HTTP/1.1 over it (ALPN `http/1.1`), the host of the URL as the name the
//! server's certificate must hold (and as SNI). It owns what a client
//! trusts ([`Tls`]), the handshake, the connector hyper's client makes its
//! connections with ([`Connector`]) and the connection both transports
//! read and write ([`Stream`]).
//!
//! Trusted are the Mozilla roots built in (`webpki-roots`), the
//! certificates of the PEM file `SSL_CERT_FILE` names if it is set (read
//! at the first TLS connection: once for every client of the default trust,
//! once more for each `with_root_certificate`), and those a client is
//! given (`Client::with_root_certificate`): a server with a certificate of
//! a private authority is reached by trusting that authority. There is no
//! way to skip verification.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The environment variable naming a PEM file of authorities to trust
/// besides the built-in ones.
pub(crate) const CERT_FILE_VAR: &str = "SSL_CERT_FILE";

/// What a client trusts, and the rustls settings made of it at its first
/// TLS connection (shared by the client's clones).
#[derive(Clone)]
pub(crate) struct Tls {
    roots: Arc<Roots>,
}

struct Roots {
    /// The certificates given to `with_root_certificate`, checked.
    added: Vec<CertificateDer<'static>>,
    /// The settings, or why they cannot be made (an unreadable
    /// `SSL_CERT_FILE`).
    config: OnceLock<Result<Arc<ClientConfig>, String>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("added_roots", &self.roots.added.len()).finish_non_exhaustive()
    }
}

impl Default for Tls {
    /// The built-in roots and `SSL_CERT_FILE`: one set of settings for
    /// every client of the process.
    fn default() -> Self {
        static DEFAULT: OnceLock<Arc<Roots>> = OnceLock::new();
        let roots = DEFAULT.get_or_init(|| Arc::new(Roots { added: Vec::new(), config: OnceLock::new() }));
        Tls { roots: roots.clone() }
    }
}

impl Tls {
    /// The same trust, and also in the certificates of `pem` (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks; anything else in it is
    /// skipped).
    pub(crate) fn with_pem(&self, pem: &[u8]) -> io::Result<Tls> {
        let certificates = certificates(pem).map_err(|reason| {
            io::Error::new(io::ErrorKind::InvalidData, format!("cannot trust these root certificates: {reason}"))
        })?;
        let mut added = self.roots.added.clone();
        added.extend(certificates);
        Ok(Tls { roots: Arc::new(Roots { added, config: OnceLock::new() }) })
    }

    fn config(&self) -> Result<Arc<ClientConfig>, Failure> {
        let roots = &self.roots;
        roots
            .config
            .get_or_init(|| client_config(std::env::var_os(CERT_FILE_VAR), &roots.added))
            .clone()
            .map_err(Failure)
    }

    /// A TLS connection over `tcp` to the server `host` (a name, or an IP
    /// address, IPv6 in brackets or not), its certificate verified.
    pub(crate) async fn connect(&self, host: &str, tcp: TcpStream) -> Result<Stream, Failure> {
        let config = self.config()?;
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let name = ServerName::try_from(bare.to_owned())
            .map_err(|e| Failure(format!("`{host}` is not a name a certificate can be checked against: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| Failure(handshake_failure(bare, &e)))?;
        Ok(Stream::Tls(Box::new(stream)))
    }
}

/// Why a TLS connection was not made: the handshake failed (the server's
/// certificate did not verify, ...) or the client's settings could not be
/// made. The transports report it as `TransportError::Tls`.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Failure {}

impl Failure {
    /// The TLS failure somewhere in `error`'s chain of causes, if any.
    pub(crate) fn find<'e>(error: &'e (dyn StdError + 'static)) -> Option<&'e Failure> {
        let mut source = Some(error);
        while let Some(error) = source {
            if let Some(failure) = error.downcast_ref::<Failure>() {
                return Some(failure);
            }
            source = error.source();
        }
        None
    }
}

/// What a failed handshake with `host` says to the user.
fn handshake_failure(host: &str, error: &io::Error) -> String {
    match error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::InvalidCertificate(reason)) => format!(
            "certificate verify failed for {host}: {reason} (if an authority of your own signed it, trust it with \
             `Client::with_root_certificate` or {CERT_FILE_VAR}=its-ca.pem)"
        ),
        Some(rustls::Error::InvalidMessage(_)) => {
            format!("{host} does not answer in TLS ({error}): is it an http:// or ws:// server?")
        }
        _ => format!("the TLS handshake with {host} failed: {error}"),
    }
}

/// The certificates in `pem`; at least one, each usable as a root.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("they are not valid PEM: {e}"))?;
    if certificates.is_empty() {
        return Err("there is no `-----BEGIN CERTIFICATE-----` block in them".into());
    }
    let mut check = RootCertStore::empty();
    for (index, certificate) in certificates.iter().enumerate() {
        check
            .add(certificate.clone())
            .map_err(|e| format!("certificate {} of {} is not usable: {e}", index + 1, certificates.len()))?;
    }
    Ok(certificates)
}

/// The rustls settings trusting the built-in roots, the certificates in
/// the file `cert_file` (`SSL_CERT_FILE`'s value, ignored when empty) and
/// `added`.
fn client_config(
    cert_file: Option<std::ffi::OsString>,
    added: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = cert_file.filter(|path| !path.is_empty()) {
        let path = std::path::PathBuf::from(path);
        let unusable = |reason: String| {
            format!(
                "{CERT_FILE_VAR}={}: {reason} (it names a PEM file of authorities to trust besides the built-in \
                 ones; unset it to trust those only)",
                path.display()
            )
        };
        let pem = std::fs::read(&path).map_err(|e| unusable(format!("cannot read it: {e}")))?;
        roots.add_parsable_certificates(certificates(&pem).map_err(unusable)?);
    }
    roots.add_parsable_certificates(added.iter().cloned());
    #[allow(
        deprecated,
        reason = "ring is the provider the host builds with (wasmtime-wasi-http); one provider for the workspace"
    )]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("no TLS version to use: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A connection to the server: plain TCP, or TLS over it.
pub(crate) enum Stream {
    Plain(TcpStream),
    /// Boxed: a TLS stream is large, a plain one is not.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// A connection to `host:port` (a name or an IP address, IPv6 in
    /// brackets or not), over TLS if `tls`.
    pub(crate) async fn connect(host: &str, port: u16, tls: Option<&Tls>) -> Result<Stream, ConnectError> {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let tcp = TcpStream::connect((bare, port)).await.map_err(ConnectError::Tcp)?;
        // Requests are small and answers awaited: no delay for Nagle.
        let _ = tcp.set_nodelay(true);
        match tls {
            None => Ok(Stream::Plain(tcp)),
            Some(tls) => tls.connect(host, tcp).await.map_err(ConnectError::Tls),
        }
    }
}

/// Why [`Stream::connect`] failed.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// No TCP connection.
    Tcp(io::Error),
    Tls(Failure),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(tcp) => tcp.is_write_vectored(),
            Stream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(tcp) => tcp.connected(),
            Stream::Tls(tls) => tls.get_ref().0.connected(),
        }
    }
}

/// The connector of the HTTP transport's pooled client: hyper's own for
/// the TCP connection (name resolution, both address families), then TLS
/// for an `https://` URL.
#[derive(Clone)]
pub(crate) struct Connector {
    tcp: HttpConnector,
    tls: Tls,
}

impl Connector {
    pub(crate) fn new(tls: Tls) -> Connector {
        let mut tcp = HttpConnector::new();
        // It also connects for https://: TLS is added here.
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        Connector { tcp, tls }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = match uri.scheme_str() {
            Some("https") => Some(self.tls.clone()),
            Some("http") => None,
            _ => {
                let reason = "the URL must start with http:// or https://";
                return Box::pin(std::future::ready(Err(io::Error::new(io::ErrorKind::InvalidInput, reason).into())));
            }
        };
        let host = uri.host().unwrap_or_default().to_owned();
        let tcp = self.tcp.call(uri);
        Box::pin(async move {
            let tcp = tcp.await?.into_inner();
            let stream = match tls {
                Some(tls) => tls.connect(&host, tcp).await?,
                None => Stream::Plain(tcp),
            };
            Ok(TokioIo::new(stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_certificates_must_be_pem_certificates() {
        let err = Tls::default().with_pem(b"not a certificate").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("no `-----BEGIN CERTIFICATE-----` block"), "{err}");
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = Tls::default().with_pem(garbage).unwrap_err();
        assert!(err.to_string().contains("certificate 1 of 1 is not usable"), "{err}");
    }

    #[test]
    fn an_unreadable_cert_file_says_which_and_how_to_do_without() {
        let missing = std::env::temp_dir().join("wasmrpc-client-no-such-ca.pem");
        let err = client_config(Some(missing.clone().into_os_string()), &[]).unwrap_err();
        assert!(err.starts_with(&format!("SSL_CERT_FILE={}: cannot read it", missing.display())), "{err}");
        assert!(err.contains("unset it"), "{err}");
        // Empty is unset.
        assert!(client_config(Some("".into()), &[]).is_ok());
    }
}
