//! Fencing a silent master's broker sessions through RabbitMQ's management API: list the
//! cluster's connections (`GET /api/connections`), pick those whose peer is the host to fence,
//! close them (`DELETE /api/connections/{name}`, which requeues their channels' unacknowledged
//! messages at once). A host whose link was cut cannot close its own sessions; its peer, which
//! took the VIPs over, does it for it.
//!
//! Any node answers for the whole cluster: a request goes to the node that last answered, and
//! to the next URL when one fails. Every request is bounded in time and in size, and a whole
//! fencing run by [`FENCE_DEADLINE`]. Credentials go in the Authorization header only: never
//! in an error, a log line or `Debug`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ha_common::config::{RabbitmqApi, Secret};
use hyper::Method;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::http_client::{Call, Endpoint, HttpError};

/// One API request, connect to last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Rounds over every URL before a request is given up.
const ROUNDS: u32 = 3;
const ROUND_PAUSE: Duration = Duration::from_millis(200);
/// A whole fencing run: listing and closing.
pub const FENCE_DEADLINE: Duration = Duration::from_secs(15);
/// The connection list, five short columns a connection: about 200 bytes each, so some 80,000
/// connections.
const LIST_LIMIT: usize = 16 << 20;
/// What a DELETE may answer.
const CLOSE_LIMIT: usize = 64 << 10;
/// Connections closed at the same time.
const CLOSING_AT_ONCE: usize = 8;
/// The broker truncates longer reasons; ours are short.
const REASON_MAX: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{url}: HTTP {status}{hint}")]
    Status { url: String, status: u16, hint: &'static str },
    #[error("{url}: the connection list is not what RabbitMQ sends: {why}")]
    Unreadable { url: String, why: String },
    #[error("{last} (every URL tried {rounds} times)")]
    Exhausted { rounds: u32, last: Box<ApiError> },
    #[error("the fencing run took longer than {0:?}")]
    Deadline(Duration),
}

/// A connection as the management API lists it: `peer` is the client as the broker sees it
/// (the proxy host that connected), `local` the broker's own end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConnection {
    pub name: String,
    pub peer: SocketAddr,
    pub local: Option<SocketAddr>,
}

/// What a fencing run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FenceOutcome {
    /// Connections of the cluster, and how many had a fenced peer.
    pub listed: usize,
    pub matched: usize,
    pub closed: usize,
    /// Already gone when the DELETE came (404).
    pub gone: usize,
    /// Kept: the peer is fenced, but the connection is one of this host's own sessions.
    pub kept: usize,
    /// Connections that could not be closed, with why.
    pub failed: Vec<String>,
}

impl FenceOutcome {
    pub fn describe(&self) -> String {
        let mut text = format!("closed {} of {} matching connections ({} listed)", self.closed, self.matched, self.listed);
        if self.gone > 0 {
            text.push_str(&format!(", {} already gone", self.gone));
        }
        if self.kept > 0 {
            text.push_str(&format!(", {} of this host's own kept", self.kept));
        }
        if let Some(first) = self.failed.first() {
            text.push_str(&format!(", {} failed (first: {first})", self.failed.len()));
        }
        text
    }
}

/// A client of one cluster's management API.
pub struct ManagementApi {
    endpoints: Vec<Endpoint>,
    user: String,
    password: Secret,
    /// The endpoint that answered last: tried first next time.
    preferred: AtomicUsize,
}

impl std::fmt::Debug for ManagementApi {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let urls: Vec<String> = self.endpoints.iter().map(Endpoint::display).collect();
        f.debug_struct("ManagementApi").field("urls", &urls).field("user", &self.user).field("password", &self.password).finish()
    }
}

impl ManagementApi {
    /// Checks every URL and loads the CA file (for https).
    pub fn new(config: &RabbitmqApi) -> Result<ManagementApi, ApiError> {
        let endpoints =
            config.urls.iter().map(|url| Endpoint::parse(url, config.ca_file.as_deref())).collect::<Result<Vec<_>, _>>()?;
        Ok(ManagementApi {
            endpoints,
            user: config.user.clone(),
            password: config.password.clone(),
            preferred: AtomicUsize::new(0),
        })
    }

    /// `http://host:port`, for logs.
    pub fn describe(&self) -> String {
        self.endpoints.iter().map(Endpoint::display).collect::<Vec<_>>().join(", ")
    }

    /// Sends one request to the node that answered last, then to each other one in turn, for
    /// [`ROUNDS`] rounds. `accept` says which statuses are an answer (others try the next node).
    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&'static str, String)],
        max_body: usize,
        accept: fn(u16) -> bool,
    ) -> Result<(u16, bytes::Bytes), ApiError> {
        let count = self.endpoints.len().max(1);
        let mut last = None;
        for round in 0..ROUNDS {
            if round > 0 {
                tokio::time::sleep(ROUND_PAUSE).await;
            }
            let first = self.preferred.load(Relaxed);
            for step in 0..count {
                let index = (first + step) % count;
                let Some(endpoint) = self.endpoints.get(index) else { break };
                let call = Call {
                    method: method.clone(),
                    path,
                    basic_auth: Some((&self.user, self.password.expose())),
                    headers,
                    timeout: REQUEST_TIMEOUT,
                    max_body,
                };
                match endpoint.send(call).await {
                    Ok(response) if accept(response.status) => {
                        self.preferred.store(index, Relaxed);
                        return Ok((response.status, response.body));
                    }
                    Ok(response) => {
                        let hint = match response.status {
                            401 => ": the user and password were refused",
                            403 => ": the user may not do this (it needs the management or administrator tag)",
                            _ => "",
                        };
                        last = Some(ApiError::Status { url: endpoint.display(), status: response.status, hint });
                    }
                    Err(e) => last = Some(ApiError::Http(e)),
                }
            }
        }
        let last = last.unwrap_or(ApiError::Deadline(Duration::ZERO));
        Err(ApiError::Exhausted { rounds: ROUNDS, last: Box::new(last) })
    }

    /// Every connection of the cluster.
    pub async fn connections(&self) -> Result<Vec<BrokerConnection>, ApiError> {
        let path = "/api/connections?columns=name,peer_host,peer_port,host,port";
        let (_, body) = self.request(Method::GET, path, &[], LIST_LIMIT, |s| s == 200).await?;
        let url = self.endpoints.get(self.preferred.load(Relaxed)).map(Endpoint::display).unwrap_or_default();
        parse_connections(&body).map_err(|why| ApiError::Unreadable { url, why })
    }

    /// Closes one connection; `Ok(false)` when it was already gone.
    pub async fn close(&self, name: &str, reason: &str) -> Result<bool, ApiError> {
        let path = format!("/api/connections/{}", percent_encode(name));
        let reason: String = reason.chars().filter(|c| !c.is_control()).take(REASON_MAX).collect();
        let headers = [("x-reason", reason)];
        let (status, _) =
            self.request(Method::DELETE, &path, &headers, CLOSE_LIMIT, |s| (200..300).contains(&s) || s == 404).await?;
        Ok(status != 404)
    }

    /// Closes every connection whose peer is one of `peers`, except those `own` names (this
    /// host's sessions: the broker's `peer` is their local end). Bounded by [`FENCE_DEADLINE`].
    pub async fn fence(
        self: &Arc<Self>,
        peers: &[IpAddr],
        own: &HashSet<SocketAddr>,
        reason: &str,
    ) -> Result<FenceOutcome, ApiError> {
        match tokio::time::timeout(FENCE_DEADLINE, self.fence_inner(peers, own, reason)).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::Deadline(FENCE_DEADLINE)),
        }
    }

    async fn fence_inner(
        self: &Arc<Self>,
        peers: &[IpAddr],
        own: &HashSet<SocketAddr>,
        reason: &str,
    ) -> Result<FenceOutcome, ApiError> {
        let listed = self.connections().await?;
        let mut outcome = FenceOutcome { listed: listed.len(), ..FenceOutcome::default() };
        let mut doomed = Vec::new();
        for connection in listed.into_iter().filter(|c| peers.contains(&c.peer.ip())) {
            outcome.matched += 1;
            if own.contains(&connection.peer) {
                outcome.kept += 1;
            } else {
                doomed.push(connection.name);
            }
        }
        let mut closing = JoinSet::new();
        let mut names = doomed.into_iter();
        loop {
            while closing.len() < CLOSING_AT_ONCE {
                let Some(name) = names.next() else { break };
                let (api, reason) = (Arc::clone(self), reason.to_owned());
                closing.spawn(async move {
                    let result = api.close(&name, &reason).await;
                    (name, result)
                });
            }
            let Some(joined) = closing.join_next().await else { break };
            match joined {
                Ok((_, Ok(true))) => outcome.closed += 1,
                Ok((_, Ok(false))) => outcome.gone += 1,
                Ok((name, Err(e))) => outcome.failed.push(format!("{name}: {e}")),
                Err(e) => outcome.failed.push(format!("a close task ended: {e}")),
            }
        }
        Ok(outcome)
    }
}

/// The addresses this host connects to `servers` from, by route lookup: a UDP socket
/// "connected" to each asks the kernel for the route and sends nothing. They are what the
/// brokers list as the peer of this host's connections.
pub fn source_addresses(servers: impl Iterator<Item = SocketAddr>) -> HashSet<IpAddr> {
    servers
        .filter_map(|server| {
            let any: SocketAddr =
                if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
            let socket = std::net::UdpSocket::bind(any).ok()?;
            socket.connect(server).ok()?;
            Some(socket.local_addr().ok()?.ip().to_canonical())
        })
        .collect()
}

/// The columns asked for; anything else in an item is ignored.
#[derive(Deserialize)]
struct Listed {
    name: String,
    peer_host: Option<serde_json::Value>,
    peer_port: Option<serde_json::Value>,
    host: Option<serde_json::Value>,
    port: Option<serde_json::Value>,
}

fn address(host: Option<&serde_json::Value>, port: Option<&serde_json::Value>) -> Option<SocketAddr> {
    let ip: IpAddr = host?.as_str()?.trim_matches(['[', ']']).parse().ok()?;
    let port = u16::try_from(port?.as_u64()?).ok()?;
    // RabbitMQ listening on IPv6 sees IPv4 peers as ::ffff:a.b.c.d.
    Some(SocketAddr::new(ip.to_canonical(), port))
}

/// The list `GET /api/connections` answers. Items without a usable peer (a direct Erlang
/// client, a connection still starting) are skipped: they cannot be a proxy's.
pub fn parse_connections(body: &[u8]) -> Result<Vec<BrokerConnection>, String> {
    let items: Vec<Listed> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let peer = address(item.peer_host.as_ref(), item.peer_port.as_ref())?;
            Some(BrokerConnection { local: address(item.host.as_ref(), item.port.as_ref()), peer, name: item.name })
        })
        .collect())
}

/// RFC 3986 percent-encoding of a path segment: everything but the unreserved characters.
/// RabbitMQ's names ("192.0.2.11:40000 -> 192.0.2.21:5672") hold spaces, '>' and ':'.
pub fn percent_encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() * 3);
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A proxy's fencing so far, for the stats page, `/metrics` and `vrrpd ctl status`. Kept
/// across reloads with the proxy's other counters.
#[derive(Debug, Default)]
pub struct FenceStats {
    pub runs: AtomicU64,
    pub failed_runs: AtomicU64,
    pub closed: AtomicU64,
    /// Connections that matched but could not be closed.
    pub close_failures: AtomicU64,
    last: Mutex<Option<LastFence>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LastFence {
    /// Unix time, seconds.
    pub at_unix_s: u64,
    pub hosts: Vec<String>,
    pub ok: bool,
    pub result: String,
    pub duration_ms: u64,
}

impl FenceStats {
    /// Counts a finished run and remembers it as the last one.
    pub fn record(&self, hosts: &[IpAddr], started: Instant, result: &Result<FenceOutcome, ApiError>) {
        self.runs.fetch_add(1, Relaxed);
        let (ok, text) = match result {
            Ok(outcome) => {
                self.closed.fetch_add(outcome.closed as u64, Relaxed);
                self.close_failures.fetch_add(outcome.failed.len() as u64, Relaxed);
                if !outcome.failed.is_empty() {
                    self.failed_runs.fetch_add(1, Relaxed);
                }
                (outcome.failed.is_empty(), outcome.describe())
            }
            Err(e) => {
                self.failed_runs.fetch_add(1, Relaxed);
                (false, format!("failed: {e}"))
            }
        };
        let last = LastFence {
            at_unix_s: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            hosts: hosts.iter().map(ToString::to_string).collect(),
            ok,
            result: text,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(last);
    }

    pub fn last(&self) -> Option<LastFence> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A stand-in for a management API node: answers each request with `answer(request line)`,
    /// and keeps every request it received.
    async fn node(answer: fn(&str) -> String) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let mut received = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => received.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let request = String::from_utf8_lossy(&received).into_owned();
                    let first = request.lines().next().unwrap_or_default().to_owned();
                    log.lock().unwrap().push(request);
                    let _ = socket.write_all(answer(&first).as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        (url, seen)
    }

    fn reply(status: &str, body: &str) -> String {
        format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    }

    const LIST: &str = r#"[
        {"name":"192.0.2.11:40000 -> 192.0.2.21:5672","peer_host":"192.0.2.11","peer_port":40000,"host":"192.0.2.21","port":5672},
        {"name":"192.0.2.12:40001 -> 192.0.2.22:5672","peer_host":"192.0.2.12","peer_port":40001,"host":"192.0.2.22","port":5672},
        {"name":"::ffff:192.0.2.11:40002 -> 192.0.2.23:5672","peer_host":"::ffff:192.0.2.11","peer_port":40002,"host":"192.0.2.23","port":5672},
        {"name":"<rabbit@x.1.2.3>","peer_host":"unknown","peer_port":"unknown"}
    ]"#;

    fn cluster_node(line: &str) -> String {
        if line.starts_with("GET /api/connections?columns=") {
            reply("200 OK", LIST)
        } else if line.starts_with("DELETE /api/connections/192.0.2.11%3A40000%20-%3E%20192.0.2.21%3A5672 ") {
            reply("204 No Content", "")
        } else if line.starts_with("DELETE ") {
            reply("404 Not Found", r#"{"error":"Object Not Found","reason":"Not Found"}"#)
        } else {
            reply("400 Bad Request", "")
        }
    }

    fn api(urls: Vec<String>) -> Arc<ManagementApi> {
        let config = RabbitmqApi {
            urls,
            user: "fence".into(),
            password: Secret::new("hunter2".into()),
            ca_file: None,
            fence_addresses: Default::default(),
        };
        Arc::new(ManagementApi::new(&config).unwrap())
    }

    #[test]
    fn the_source_address_is_the_routes() {
        let sources = source_addresses(["127.0.0.1:5672".parse().unwrap()].into_iter());
        assert_eq!(sources, ["127.0.0.1".parse().unwrap()].into());
    }

    #[test]
    fn names_are_percent_encoded_as_one_segment() {
        assert_eq!(percent_encode("192.0.2.11:40000 -> 192.0.2.21:5672"), "192.0.2.11%3A40000%20-%3E%20192.0.2.21%3A5672");
        assert_eq!(percent_encode("a/b?c#d%é"), "a%2Fb%3Fc%23d%25%C3%A9");
    }

    #[test]
    fn the_list_is_parsed_and_peers_canonicalised() {
        let listed = parse_connections(LIST.as_bytes()).unwrap();
        assert_eq!(listed.len(), 3, "the direct connection without a peer address is skipped");
        assert_eq!(listed[2].peer, "192.0.2.11:40002".parse().unwrap());
        assert_eq!(listed[0].local, Some("192.0.2.21:5672".parse().unwrap()));
        for garbage in ["", "{}", "[1,2]", "[{\"peer_host\":\"192.0.2.11\"}]", "null"] {
            assert!(parse_connections(garbage.as_bytes()).is_err(), "{garbage:?}");
        }
    }

    #[tokio::test]
    async fn fencing_closes_the_peers_connections_and_keeps_its_own() {
        let (url, seen) = node(cluster_node).await;
        let api = api(vec![url]);
        let peers = ["192.0.2.11".parse().unwrap()];
        let own: HashSet<SocketAddr> = ["192.0.2.11:40002".parse().unwrap()].into();
        let outcome = api.fence(&peers, &own, "fenced by proxy-b: 192.0.2.11 fell silent").await.unwrap();
        assert_eq!(outcome, FenceOutcome { listed: 3, matched: 2, closed: 1, kept: 1, ..FenceOutcome::default() });
        let requests = seen.lock().unwrap().join("\n");
        assert!(requests.contains("x-reason: fenced by proxy-b: 192.0.2.11 fell silent\r\n"), "{requests}");
        assert!(requests.contains("authorization: Basic ZmVuY2U6aHVudGVyMg==\r\n"), "{requests}");
        assert!(!requests.contains("192.0.2.12%3A40001"), "another host's connection is left alone: {requests}");
        // Already gone: counted as such, not as a failure.
        let peers = ["192.0.2.12".parse().unwrap()];
        let outcome = api.fence(&peers, &HashSet::new(), "r").await.unwrap();
        assert_eq!((outcome.closed, outcome.gone, outcome.failed.len()), (0, 1, 0));
    }

    #[tokio::test]
    async fn a_failing_node_is_skipped_and_the_next_answers() {
        // Nothing listens on the first URL; the second is a node answering 503; the third works.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let (busy, _) = node(|_| reply("503 Service Unavailable", "")).await;
        let (good, seen) = node(cluster_node).await;
        let api = api(vec![dead, busy, good]);
        assert_eq!(api.connections().await.unwrap().len(), 3);
        assert_eq!(seen.lock().unwrap().len(), 1);
        // The node that answered is asked first next time.
        assert_eq!(api.connections().await.unwrap().len(), 3);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn errors_and_debug_never_show_the_password() {
        let (refusing, _) = node(|_| reply("401 Unauthorized", "")).await;
        let api = api(vec![refusing]);
        let error = api.connections().await.unwrap_err();
        let text = format!("{error} {error:?} {api:?}");
        assert!(text.contains("were refused"), "{text}");
        assert!(!text.contains("hunter2") && !text.contains("ZmVuY2U6aHVudGVyMg"), "{text}");
        let (garbage, _) = node(|_| reply("200 OK", "<html>not json</html>")).await;
        let error = api_with(garbage).connections().await.unwrap_err();
        assert!(matches!(error, ApiError::Unreadable { .. }), "{error}");
    }

    fn api_with(url: String) -> Arc<ManagementApi> {
        api(vec![url])
    }

    #[tokio::test]
    async fn a_silent_node_costs_a_bounded_time() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let started = Instant::now();
        let error = api(vec![url]).connections().await.unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(&error, ApiError::Exhausted { last, .. } if matches!(**last, ApiError::Http(HttpError::Timeout(..)))),
            "{error}"
        );
        let most = ROUNDS * REQUEST_TIMEOUT + ROUNDS * ROUND_PAUSE + Duration::from_secs(1);
        assert!(took < most, "{took:?}");
        eprintln!("a silent API node: given up after {took:?}");
    }
}
