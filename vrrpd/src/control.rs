//! The control socket (`[global] control_socket`, a unix socket with mode 0600) and the
//! `vrrpd ctl` client. A request is one line, a JSON array of words; the answer is one line,
//! `{"ok": bool, "message": "..."}`, and the daemon closes the connection.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// The commands, as `vrrpd ctl --help` and an unknown command show them.
pub const USAGE: &str = "commands:
  status [--json]                              instances, proxies and servers
  server drain PROXY/SERVER                    no new sessions; existing ones stay
  server disable PROXY/SERVER                  maintenance: no new sessions, existing ones closed
  server enable PROXY/SERVER                   back in service
  server weight PROXY/SERVER N                 set the weight (0..=256)
  shutdown-sessions PROXY/SERVER               close the server's sessions now
  resign INSTANCE                              hand the VIPs to the peer and stay BACKUP
  resume INSTANCE                              take part in elections again
  reload                                       re-read the configuration (as SIGHUP)";

/// Longest request line accepted.
const MAX_REQUEST: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

/// A request on its way to the daemon's main loop, which has everything needed to answer.
pub struct ControlRequest {
    pub words: Vec<String>,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// Binds the socket: creates its directory, replaces a stale socket file, mode 0600.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if StdUnixStream::connect(path).is_ok() {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{} is in use by a running vrrpd", path.display())));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists and is not a socket", path.display())))
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Accepts clients and forwards their requests to the main loop.
pub async fn serve(listener: UnixListener, path: PathBuf, requests: mpsc::Sender<ControlRequest>) {
    info!(socket = %path.display(), "control socket listening");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let requests = requests.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = AsyncBufReader::new(read).take(MAX_REQUEST as u64);
            let answer = match tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await {
                Ok(Ok(n)) if n > 0 => handle(&line, &requests).await,
                _ => Err("no request received".to_owned()),
            };
            let reply = match answer {
                Ok(message) => Reply { ok: true, message },
                Err(message) => Reply { ok: false, message },
            };
            let mut text =
                serde_json::to_string(&reply).unwrap_or_else(|_| "{\"ok\":false,\"message\":\"internal error\"}".into());
            text.push('\n');
            let _ = write.write_all(text.as_bytes()).await;
        });
    }
}

async fn handle(line: &str, requests: &mpsc::Sender<ControlRequest>) -> Result<String, String> {
    let words: Vec<String> =
        serde_json::from_str(line).map_err(|e| format!("malformed request ({e}); send a JSON array of words"))?;
    let (reply, answer) = oneshot::channel();
    requests.send(ControlRequest { words, reply }).await.map_err(|_| "vrrpd is stopping".to_owned())?;
    answer.await.map_err(|_| "vrrpd is stopping".to_owned())?
}

/// `PROXY/SERVER` split in two.
pub fn proxy_server(word: &str) -> Result<(&str, &str), String> {
    word.split_once('/')
        .filter(|(p, s)| !p.is_empty() && !s.is_empty())
        .ok_or_else(|| format!("{word:?} is not PROXY/SERVER (for example amqp/rabbit1)"))
}

/// The client side: sends `words`, returns the daemon's reply.
pub fn request(socket: &Path, words: &[String]) -> Result<Reply, String> {
    let mut stream = StdUnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach vrrpd at {}: {e} (is it running? does control_socket in its configuration say so?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(words).map_err(|e| e.to_string())?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(|e| format!("sending to {}: {e}", socket.display()))?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(|e| format!("reading from {}: {e}", socket.display()))?;
    serde_json::from_str(&answer).map_err(|e| format!("unreadable answer from vrrpd ({e}): {answer:?}"))
}

pub fn log_refused(words: &[String], why: &str) {
    warn!(command = %words.join(" "), error = why, "control command refused");
}
