//! Sockets opened inside a lab namespace by this process: a short-lived thread enters the
//! namespace, opens the socket, and leaves; the socket stays in the namespace it was made in.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

/// Connects to `to` from namespace `ns` (a name under /run/netns).
pub fn connect_from(ns: &str, to: SocketAddr) -> io::Result<TcpStream> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let namespace = std::fs::File::open(&path)?;
        // Only this thread moves; it ends right after, so nothing else runs in the namespace.
        setns(&namespace, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        TcpStream::connect_timeout(&to, Duration::from_secs(3))
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?
}

/// An HTTP response as a test looks at it.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// `GET path` on `to`, from namespace `ns`, with basic auth when given (HTTP/1.1, one request).
pub fn http_get(ns: &str, to: SocketAddr, path: &str, auth: Option<(&str, &str)>) -> io::Result<HttpResponse> {
    use std::io::{Read, Write};
    let mut stream = connect_from(ns, to)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let authorization = auth.map_or(String::new(), |(user, password)| {
        use base64::Engine;
        format!("Authorization: Basic {}\r\n", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
    });
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {to}\r\n{authorization}Connection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(HttpResponse { status, headers: head.to_owned(), body: body.to_owned() })
}

/// Runs `work` on a new thread that has entered namespace `ns`, on a single-threaded tokio
/// runtime of its own: every socket it opens lives in that namespace. Returns its handle.
pub fn spawn_in<F, Fut, T>(ns: &str, work: F) -> std::thread::JoinHandle<io::Result<T>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let namespace = std::fs::File::open(&path)?;
        setns(&namespace, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(runtime.block_on(work()))
    })
}

/// Raises this process's open-file limit (children inherit it) to `wanted`: the hard limit
/// too when allowed (root), else up to the hard limit. Returns the soft limit now in force.
pub fn raise_nofile(wanted: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted).is_err() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
        let _ = setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard);
    }
    getrlimit(Resource::RLIMIT_NOFILE).map(|(soft, _)| soft).unwrap_or(1024)
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}
