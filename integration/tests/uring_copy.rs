//! uring-copy, the featureless io_uring relay `scripts/bench.sh --ceiling` measures against,
//! must relay every byte in order and pass each end of stream on: a relay that lost or
//! reordered data would make the ceiling it reports a lie.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An echo server on loopback: every connection gets its bytes back, then a FIN after the
/// client's.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let address = listener.local_addr().expect("echo address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = [0u8; 8192];
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buffer[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    address
}

struct Relay(Child, SocketAddr);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts uring-copy in front of `backend`; None (and why, on stderr) where io_uring is off.
fn relay(backend: SocketAddr, threads: usize) -> Option<Relay> {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut child = Command::new(env!("CARGO_BIN_EXE_uring-copy"))
        .args([listen.to_string(), backend.to_string(), "--threads".into(), threads.to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start uring-copy");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(listen).is_err() {
        if let Ok(Some(_)) = child.try_wait() {
            let mut why = String::new();
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut why));
            assert!(why.contains("io_uring unavailable"), "uring-copy exited: {why}");
            eprintln!("skipped: {why}");
            return None;
        }
        assert!(Instant::now() < deadline, "uring-copy did not listen on {listen}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Relay(child, listen))
}

/// Bytes that never repeat at any period a relay's buffers could have (xorshift), so a
/// swapped, repeated or dropped buffer changes what comes back.
fn pattern(length: usize, seed: u8) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(seed);
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn open_descriptors(relay: &Relay) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", relay.0.id())).map_or(0, Iterator::count)
}

#[test]
fn every_byte_comes_back_in_order_and_the_end_of_stream_is_passed_on() {
    let Some(relay) = relay(echo_server(), 2) else { return };
    let idle = open_descriptors(&relay);
    let clients: Vec<_> = (0..16u8)
        .map(|seed| {
            let address = relay.1;
            std::thread::spawn(move || {
                let sent = pattern(300_000 + usize::from(seed) * 4099, seed);
                let mut stream = TcpStream::connect(address).expect("connect through uring-copy");
                stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
                let writer = {
                    let (mut stream, sent) = (stream.try_clone().expect("clone"), sent.clone());
                    std::thread::spawn(move || {
                        for chunk in sent.chunks(1000 + usize::from(seed) * 37) {
                            stream.write_all(chunk).expect("send");
                        }
                        // Half-close: the relay must pass this FIN on and keep relaying back.
                        stream.shutdown(Shutdown::Write).expect("half-close");
                    })
                };
                let mut received = Vec::new();
                stream.read_to_end(&mut received).expect("read until the relayed end of stream");
                writer.join().expect("writer");
                assert!(received == sent, "client {seed}: {} bytes back of {}, or out of order", received.len(), sent.len());
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client failed");
    }
    // Every pair ended is freed: its two sockets closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_descriptors(&relay) > idle {
        assert!(Instant::now() < deadline, "{} descriptors open, {idle} before the clients", open_descriptors(&relay));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_backend_that_refuses_ends_the_client_instead_of_leaving_it_hanging() {
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let Some(relay) = relay(closed, 1) else { return };
    let mut stream = TcpStream::connect(relay.1).expect("the relay accepts");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut buffer = [0u8; 16];
    match stream.read(&mut buffer) {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the client was not told its backend refused: {other:?}"),
    }
}
