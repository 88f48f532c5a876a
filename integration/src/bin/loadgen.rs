//! Load for `scripts/bench.sh`, the same for every proxy measured:
//!
//!   loadgen serve ADDR                                  echo server (the backend)
//!   loadgen rate ADDR --concurrency C --seconds S       short connections: connect, 64 B each way, close
//!   loadgen latency ADDR --connections C --seconds S    64 B ping-pong on kept-alive connections: p50, p99
//!   loadgen idle ADDR --count N                         open N connections (one round trip each), hold
//!                                                       them until stdin closes
//!
//! Results are one line of `key=value` pairs on stdout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    Serve {
        address: SocketAddr,
    },
    Rate {
        address: SocketAddr,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    Latency {
        address: SocketAddr,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    Idle {
        address: SocketAddr,
        #[arg(long)]
        count: usize,
    },
}

const MESSAGE: [u8; 64] = [0x42; 64];

#[tokio::main]
async fn main() -> std::io::Result<()> {
    match Args::parse().mode {
        Mode::Serve { address } => serve(address).await,
        Mode::Rate { address, concurrency, seconds } => rate(address, concurrency, Duration::from_secs(seconds)).await,
        Mode::Latency { address, connections, seconds } => latency(address, connections, Duration::from_secs(seconds)).await,
        Mode::Idle { address, count } => idle(address, count).await,
    }
}

async fn serve(address: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(address).await?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
    }
}

async fn round_trip(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(&MESSAGE).await?;
    let mut buf = [0u8; 64];
    stream.read_exact(&mut buf).await?;
    Ok(())
}

async fn rate(address: SocketAddr, concurrency: usize, duration: Duration) -> std::io::Result<()> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (done, failed, stop) = (Arc::clone(&done), Arc::clone(&failed), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            while !stop.load(Relaxed) {
                let ok = async {
                    let mut stream = TcpStream::connect(address).await?;
                    stream.set_nodelay(true)?;
                    round_trip(&mut stream).await
                }
                .await;
                match ok {
                    Ok(()) => done.fetch_add(1, Relaxed),
                    Err(_) => failed.fetch_add(1, Relaxed),
                };
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for w in workers {
        let _ = w.await;
    }
    println!("connections_per_s={:.0} failed={}", done.load(Relaxed) as f64 / elapsed, failed.load(Relaxed));
    Ok(())
}

async fn latency(address: SocketAddr, connections: usize, duration: Duration) -> std::io::Result<()> {
    let deadline = Instant::now() + duration;
    let mut workers = Vec::new();
    for _ in 0..connections {
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let Ok(mut stream) = TcpStream::connect(address).await else { return samples };
            let _ = stream.set_nodelay(true);
            while Instant::now() < deadline {
                let t = Instant::now();
                if round_trip(&mut stream).await.is_err() {
                    break;
                }
                samples.push(t.elapsed().as_micros() as u64);
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap_or_default());
    }
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    println!("requests={} p50_us={} p99_us={}", all.len(), pct(0.50), pct(0.99));
    Ok(())
}

async fn idle(address: SocketAddr, count: usize) -> std::io::Result<()> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect(address).await?;
        round_trip(&mut stream).await?;
        held.push(stream);
    }
    println!("held={}", held.len());
    // Hold until the caller closes our stdin.
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 16];
    while stdin.read(&mut buf).await.unwrap_or(0) > 0 {}
    Ok(())
}
