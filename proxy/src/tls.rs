//! TLS on the client side, for what the balancer itself connects to: health checks that complete
//! a handshake (AMQPS) and HTTPS APIs (RabbitMQ's management API). Certificates are verified
//! against the CA file the configuration names, or the system's roots when it names none; there
//! is no "verify nothing" mode.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("no usable root certificate in the system's store")]
    NoSystemRoots,
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// A client configuration, shared by every connection of one check or API client.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

impl TlsClient {
    /// Trusts the certificates in `ca_file` (PEM), or the system's roots without one.
    pub fn new(ca_file: Option<&Path>) -> Result<TlsClient, TlsError> {
        let roots = match ca_file {
            Some(path) => roots_from_file(path)?,
            None => system_roots()?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClient { connector: TlsConnector::from(Arc::new(config)) })
    }

    /// Completes a handshake over `tcp`, verifying the certificate for `server_name` (a DNS name,
    /// sent as SNI, or an IP address, checked against the certificate's IP addresses).
    pub async fn connect(&self, tcp: TcpStream, server_name: &str) -> io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{server_name:?} is not a server name")))?;
        self.connector.connect(name, tcp).await
    }
}

/// Largest CA file read: a bundle of a few hundred certificates.
const CA_FILE_LIMIT: u64 = 4 << 20;

fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let fail = |reason: String| TlsError::CaFile { path: path.display().to_string(), reason };
    let size = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?.len();
    if size > CA_FILE_LIMIT {
        return Err(fail(format!("{size} bytes, more than the {CA_FILE_LIMIT} a CA file may have")));
    }
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| fail(format!("not PEM: {e}")))?;
        roots.add(cert).map_err(|e| fail(format!("a certificate rustls refuses: {e}")))?;
    }
    if roots.is_empty() {
        return Err(fail("no certificate in it".into()));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(roots)
}
