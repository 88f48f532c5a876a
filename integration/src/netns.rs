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
