//! One HTTP/1.1 exchange at a time, over TCP or TLS, bounded in time and in size: what the
//! balancer needs to ask a broker's management API (health checks, fencing). A connection per
//! request: these are rare, and nothing is left open between them.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{AUTHORIZATION, HOST, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::tls::{TlsClient, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0:?} is not an http:// or https:// URL with a host")]
    BadUrl(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("TLS handshake with {0}: {1}")]
    Handshake(String, std::io::Error),
    #[error("{0}: no answer within {1:?}")]
    Timeout(String, Duration),
    #[error("{0}: {1}")]
    Protocol(String, hyper::Error),
    #[error("{0}: the answer is larger than {1} bytes")]
    TooLarge(String, usize),
    #[error("{0}: {1}")]
    Body(String, String),
}

/// Where requests go: scheme, host and port, and the path prefix every request is under.
#[derive(Clone, Debug)]
pub struct Endpoint {
    host: String,
    port: u16,
    base: String,
    tls: Option<TlsClient>,
    /// The name TLS sends as SNI and verifies, when it is not the host connected to.
    server_name: Option<String>,
}

/// What came back. The body is whole (never more than the request's limit).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// What to send: the path is appended to the endpoint's base path.
pub struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub basic_auth: Option<(&'a str, &'a str)>,
    pub headers: &'a [(&'static str, String)],
    /// For the whole exchange: connect, handshake, request, and the last byte of the body.
    pub timeout: Duration,
    pub max_body: usize,
}

impl Endpoint {
    /// `http://host:port/base` or `https://...`; https verifies against `ca_file`, or the
    /// system's roots without one.
    pub fn parse(url: &str, ca_file: Option<&Path>) -> Result<Endpoint, HttpError> {
        let bad = || HttpError::BadUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let tls = match uri.scheme_str() {
            Some("http") => None,
            Some("https") => Some(TlsClient::new(ca_file)?),
            _ => return Err(bad()),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
        let base = uri.path().trim_end_matches('/').to_owned();
        Ok(Endpoint { host, port, base, tls, server_name: None })
    }

    /// The same scheme and verification, towards another host and port (a health check that
    /// asks each server on its own port).
    pub fn plain(host: String, port: u16, tls: Option<TlsClient>) -> Endpoint {
        Endpoint { host, port, base: String::new(), tls, server_name: None }
    }

    /// Verifies the certificate for `name` (and sends it as SNI) instead of the host: a check
    /// that connects to an IP address of a server whose certificate names it.
    pub fn with_server_name(mut self, name: String) -> Endpoint {
        self.server_name = Some(name);
        self
    }

    /// `scheme://host:port`, for logs: never carries credentials.
    pub fn display(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}{}", self.host, self.port, self.base)
        } else {
            format!("{scheme}://{}:{}{}", self.host, self.port, self.base)
        }
    }

    pub async fn send(&self, call: Call<'_>) -> Result<Response, HttpError> {
        let timeout = call.timeout;
        match tokio::time::timeout(timeout, self.exchange(call)).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout(self.display(), timeout)),
        }
    }

    async fn exchange(&self, call: Call<'_>) -> Result<Response, HttpError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| HttpError::Connect(self.display(), e))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.over(tcp, call).await,
            Some(tls) => {
                let name = self.server_name.as_deref().unwrap_or(&self.host);
                let stream = tls.connect(tcp, name).await.map_err(|e| HttpError::Handshake(self.display(), e))?;
                self.over(stream, call).await
            }
        }
    }

    async fn over<S>(&self, stream: S, call: Call<'_>) -> Result<Response, HttpError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let protocol = |e| HttpError::Protocol(self.display(), e);
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await.map_err(protocol)?;
        let host = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut request = Request::builder()
            .method(call.method)
            .uri(format!("{}{}", self.base, call.path))
            .header(HOST, host)
            .header(USER_AGENT, concat!("vrrpd/", env!("CARGO_PKG_VERSION")));
        if let Some((user, password)) = call.basic_auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request = request.header(AUTHORIZATION, format!("Basic {token}"));
        }
        for (name, value) in call.headers {
            request = request.header(*name, value);
        }
        let request = request.body(Empty::new()).map_err(|e| HttpError::Body(self.display(), e.to_string()))?;
        let max_body = call.max_body;
        let exchange = async {
            let response = sender.send_request(request).await.map_err(protocol)?;
            let status = response.status().as_u16();
            let declared =
                response.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|length| length > max_body as u64) {
                return Err(HttpError::TooLarge(self.display(), max_body));
            }
            let body = Limited::new(response.into_body(), max_body).collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    HttpError::TooLarge(self.display(), max_body)
                } else {
                    HttpError::Body(self.display(), e.to_string())
                }
            })?;
            Ok(Response { status, body: body.to_bytes() })
        };
        tokio::pin!(exchange, connection);
        tokio::select! {
            result = &mut exchange => result,
            ended = &mut connection => {
                // The connection may end (the server closed after the body) before the
                // exchange has read what it left: what it read is still there.
                ended.map_err(protocol)?;
                exchange.await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers one request with `answer` and hands back what it received.
    async fn serve_once(answer: &'static [u8]) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut received = Vec::new();
            let mut buffer = [0u8; 4096];
            while !received.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buffer).await.expect("read");
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&buffer[..n]);
            }
            socket.write_all(answer).await.expect("write");
            let _ = socket.shutdown().await;
            String::from_utf8_lossy(&received).into_owned()
        });
        (port, task)
    }

    fn call(path: &str) -> Call<'_> {
        Call {
            method: Method::GET,
            path,
            basic_auth: Some(("guest", "secret")),
            headers: &[],
            timeout: Duration::from_secs(5),
            max_body: 1024,
        }
    }

    #[tokio::test]
    async fn sends_auth_and_reads_the_whole_body() {
        let (port, server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}").await;
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}/base/"), None).expect("url");
        let response = endpoint.send(call("/api/health")).await.expect("response");
        assert_eq!(response.status, 200);
        assert_eq!(&response.body[..], b"{\"status\":\"ok\"}");
        let request = server.await.expect("server");
        assert!(request.starts_with("GET /base/api/health HTTP/1.1\r\n"), "{request}");
        // guest:secret
        assert!(request.contains("authorization: Basic Z3Vlc3Q6c2VjcmV0\r\n"), "{request}");
    }

    #[tokio::test]
    async fn a_body_without_length_ends_with_the_connection() {
        let (port, _server) = serve_once(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nalarm").await;
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}"), None).expect("url");
        let response = endpoint.send(call("/")).await.expect("response");
        assert_eq!((response.status, &response.body[..]), (503, &b"alarm"[..]));
    }

    #[tokio::test]
    async fn a_large_body_is_refused() {
        // Announced: refused before reading it.
        let (port, _server) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n").await;
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}"), None).expect("url");
        let error = endpoint.send(call("/")).await.expect_err("too large");
        assert!(matches!(error, HttpError::TooLarge(_, 1024)), "{error}");
        // Not announced: refused once it passes the limit.
        let mut answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        answer.resize(answer.len() + 5000, b'x');
        let (port, _server) = serve_once(answer.leak()).await;
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}"), None).expect("url");
        let error = endpoint.send(call("/")).await.expect_err("too large");
        assert!(matches!(error, HttpError::TooLarge(_, 1024)), "{error}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let _hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}"), None).expect("url");
        let mut quick = call("/");
        quick.timeout = Duration::from_millis(200);
        let error = endpoint.send(quick).await.expect_err("timeout");
        assert!(matches!(error, HttpError::Timeout(..)), "{error}");
    }

    #[test]
    fn urls_are_checked() {
        for bad in ["ftp://host/", "host:15672", "http://", "not a url"] {
            assert!(Endpoint::parse(bad, None).is_err(), "{bad}");
        }
        let endpoint = Endpoint::parse("http://[2001:db8::21]:15672", None).expect("v6");
        assert_eq!(endpoint.display(), "http://[2001:db8::21]:15672");
    }

    #[tokio::test]
    async fn https_verifies_against_the_ca_file() {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let server_key = KeyPair::generate().expect("key");
        let server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_cert = server_params.signed_by(&server_key, &issuer).expect("cert");

        let dir = std::env::temp_dir().join(format!("vrrpd-http-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write ca");

        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(socket).await {
                        let mut buffer = [0u8; 4096];
                        let _ = tls.read(&mut buffer).await;
                        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });

        let url = format!("https://127.0.0.1:{port}");
        let trusted = Endpoint::parse(&url, Some(&ca_file)).expect("url");
        let response = trusted.send(call("/")).await.expect("verified exchange");
        assert_eq!((response.status, &response.body[..]), (200, &b"ok"[..]));

        // Another CA: the handshake fails, nothing is sent.
        let other_key = KeyPair::generate().expect("key");
        let mut other_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        other_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other = other_params.self_signed(&other_key).expect("other ca");
        let other_file = dir.join("other.pem");
        std::fs::write(&other_file, other.pem()).expect("write other");
        let untrusted = Endpoint::parse(&url, Some(&other_file)).expect("url");
        let error = untrusted.send(call("/")).await.expect_err("unverified");
        assert!(matches!(error, HttpError::Handshake(..)), "{error}");

        std::fs::write(&other_file, "garbage").expect("write garbage");
        assert!(matches!(Endpoint::parse(&url, Some(&other_file)), Err(HttpError::Tls(TlsError::CaFile { .. }))));
        let _ = std::fs::remove_dir_all(dir);
    }
}
