//! The control socket (`[global] control_socket`, a unix socket with mode 0600) and the
//! `vrrpd ctl` client. A request is one line, a JSON array of words; the answer is one line,
//! `{"ok": bool, "message": "..."}`, and the daemon closes the connection. Words become a typed
//! [`command::Command`] here, before anything reaches the daemon.

pub mod command;

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::command::{Command, ControlError};

/// Longest request line accepted.
const MAX_REQUEST: usize = 4096;
/// A client gets this long to send its request, and to take its answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval about refused peers.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
}

/// A command on its way to the daemon's main loop, which has everything needed to answer.
pub struct ControlRequest {
    pub command: Command,
    pub reply: oneshot::Sender<Result<String, ControlError>>,
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
    // The socket is born 0600: no window in which another user could connect.
    let previous = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(previous);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Only root and vrrpd's own user may steer it, whatever the socket file's mode says.
fn peer_allowed(stream: &tokio::net::UnixStream) -> Result<(), ControlError> {
    let me = nix::unistd::geteuid().as_raw();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == 0 || cred.uid() == me => Ok(()),
        Ok(cred) => Err(ControlError::NotAllowed(cred.uid())),
        Err(_) => Err(ControlError::NotAllowed(u32::MAX)),
    }
}

/// Accepts clients and forwards their commands to the main loop until `stop`.
pub async fn serve(listener: UnixListener, path: PathBuf, requests: mpsc::Sender<ControlRequest>, stop: CancellationToken) {
    info!(socket = %path.display(), "control socket listening");
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut refusals = Instant::now() - REFUSAL_LOG_INTERVAL;
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = ACCEPT_BACKOFF_MIN;
                stream
            }
            Err(e) => {
                // Out of descriptors (the balancer shares them) or the like: wait, do not spin.
                warn!(socket = %path.display(), error = %e, backoff_ms = backoff.as_millis() as u64, "control socket accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let requests = requests.clone();
        let refused = peer_allowed(&stream);
        if let Err(why) = &refused {
            if refusals.elapsed() >= REFUSAL_LOG_INTERVAL {
                warn!(socket = %path.display(), error = %why, "control connection refused");
                refusals = Instant::now();
            }
        }
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = AsyncBufReader::new(read).take(MAX_REQUEST as u64);
            let answer = match (refused, tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line)).await) {
                (Err(why), _) => Err(why),
                (Ok(()), Ok(Ok(n))) if n > 0 => handle(&line, &requests).await,
                _ => Err(ControlError::NoRequest),
            };
            let reply = match answer {
                Ok(message) => Reply { ok: true, message },
                Err(error) => Reply { ok: false, message: error.to_string() },
            };
            let mut text =
                serde_json::to_string(&reply).unwrap_or_else(|_| "{\"ok\":false,\"message\":\"internal error\"}".into());
            text.push('\n');
            let _ = tokio::time::timeout(IO_TIMEOUT, write.write_all(text.as_bytes())).await;
        });
    }
}

async fn handle(line: &str, requests: &mpsc::Sender<ControlRequest>) -> Result<String, ControlError> {
    let words: Vec<String> = serde_json::from_str(line).map_err(|e| ControlError::Malformed(e.to_string()))?;
    let command = Command::parse(&words).inspect_err(|why| log_refused(&words, why))?;
    let (reply, answer) = oneshot::channel();
    requests.send(ControlRequest { command, reply }).await.map_err(|_| ControlError::Stopping)?;
    answer.await.map_err(|_| ControlError::Stopping)?.inspect_err(|why| log_refused(&words, why))
}

fn log_refused(words: &[String], why: &ControlError) {
    warn!(command = %words.join(" "), error = %why, "control command refused");
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
