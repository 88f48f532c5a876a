//! Load for `scripts/bench.sh`, the same for every proxy measured:
//!
//!   loadgen serve ADDR                                  echo server (the backend)
//!   loadgen rate ADDR --concurrency C --seconds S       short connections: connect, 64 B each way, close
//!   loadgen latency ADDR --connections C --seconds S    64 B ping-pong on kept-alive connections: p50, p99
//!   loadgen idle ADDR --count N                         open N connections (one round trip each), hold
//!                                                       them until stdin closes
//!   loadgen frames ADDR --connections N --size B --seconds S [--cpu-of PID]
//!                                                       AMQP's shape: N kept-alive connections, each
//!                                                       sending a B-byte frame and waiting for its echo,
//!                                                       over and over; messages/s, p50, p99, and PID's
//!                                                       CPU per message over the same window
//!   loadgen confirms ADDR[,ADDR...] --connections N --channels C --size B --seconds S [--cpu-of PID]
//!                                                       RabbitMQ publishing with publisher confirms
//!                                                       (persistent messages, quorum queues, acking
//!                                                       consumers): confirmed and consumed
//!                                                       messages/s, confirm latency, messages lost,
//!                                                       errors (`integration::confirms`)
//!
//! Results are one line of `key=value` pairs on stdout.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use integration::confirms;
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
    Frames {
        address: SocketAddr,
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Bytes per frame, each way.
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// A process (the proxy) whose CPU time over the measured window is reported per message.
        #[arg(long)]
        cpu_of: Option<u32>,
    },
    Confirms {
        /// AMQP addresses, comma-separated; connections are spread over them in turn.
        #[arg(value_delimiter = ',', required = true)]
        addresses: Vec<SocketAddr>,
        /// Publishing connections.
        #[arg(long, default_value_t = 10)]
        connections: usize,
        /// Publishers (channels with confirms) per connection.
        #[arg(long, default_value_t = 1)]
        channels: usize,
        /// Bytes per message body (8 to 65536).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// The measured window, after the warm-up.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        #[arg(long, default_value_t = 2)]
        warmup: u64,
        /// Unconfirmed messages per publisher.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Quorum queues, each with one consumer on its own connection.
        #[arg(long, default_value_t = 3)]
        queues: usize,
        /// Unacked deliveries per consumer.
        #[arg(long, default_value_t = 256)]
        prefetch: u16,
        /// Seconds allowed for each AMQP operation (connect, publish, a confirm, an ack).
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        #[arg(long, default_value = "guest")]
        user: String,
        #[arg(long, default_value = "guest")]
        password: String,
        /// A process (the proxy) whose CPU time over the measured window is reported per
        /// confirmed message.
        #[arg(long)]
        cpu_of: Option<u32>,
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
        Mode::Frames { address, connections, size, seconds, cpu_of } => {
            frames(address, connections, size, Duration::from_secs(seconds), cpu_of).await
        }
        Mode::Confirms {
            addresses,
            connections,
            channels,
            size,
            seconds,
            warmup,
            window,
            queues,
            prefetch,
            timeout,
            user,
            password,
            cpu_of,
        } => {
            let settings = confirms::Settings {
                addresses,
                connections,
                channels,
                size,
                warmup: Duration::from_secs(warmup),
                measured: Duration::from_secs(seconds),
                window,
                queues,
                prefetch,
                timeout: Duration::from_secs(timeout),
                user,
                password,
            };
            confirms_load(settings, cpu_of).await
        }
    }
}

/// Runs `integration::confirms` and prints its report, with the proxy's CPU per confirmed
/// message when watching one. Exits 1 when the run could not start.
async fn confirms_load(settings: confirms::Settings, cpu_of: Option<u32>) -> std::io::Result<()> {
    let sample = cpu_of.map(|pid| move || cpu_ticks(pid));
    let report = match confirms::run(settings, sample.as_ref().map(|f| f as &dyn Fn() -> std::io::Result<u64>)).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("loadgen confirms: {e}");
            std::process::exit(1);
        }
    };
    print!("{report}");
    if let Some(ticks) = report.cpu_ticks {
        let cpu_us = ticks as f64 * 1e6 / USER_HZ as f64;
        let confirmed = report.confirmed_in_window;
        print!(" cpu_us_per_message={:.2}", if confirmed > 0 { cpu_us / confirmed as f64 } else { 0.0 });
    }
    println!();
    if let Some(first) = &report.first_error {
        eprintln!("loadgen confirms: first error: {first}");
    }
    Ok(())
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
    exchange(stream, &MESSAGE, &mut [0u8; 64]).await
}

/// Sends `frame` and waits for as many bytes back (the echo).
async fn exchange(stream: &mut TcpStream, frame: &[u8], echo: &mut [u8]) -> std::io::Result<()> {
    stream.write_all(frame).await?;
    stream.read_exact(echo).await?;
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
    let done = done.load(Relaxed);
    println!("connections_per_s={:.0} failed={} connections={done}", done as f64 / elapsed, failed.load(Relaxed));
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
    println!("requests={} p50_us={} p99_us={}", all.len(), percentile(&all, 0.50), percentile(&all, 0.99));
    Ok(())
}

/// The sample at fraction `p` of sorted `samples` (0 when there are none).
fn percentile(samples: &[u64], p: f64) -> u64 {
    samples.get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1))).copied().unwrap_or(0)
}

/// All connections are open and have made one round trip (so the proxy has connected its
/// server side) before the clock starts; then every connection exchanges frames until the
/// deadline. A message is one frame out and its echo back; only those completed within the
/// window count, so set-up and teardown fall outside both the rate and the CPU figure.
async fn frames(
    address: SocketAddr,
    connections: usize,
    size: usize,
    duration: Duration,
    cpu_of: Option<u32>,
) -> std::io::Result<()> {
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        exchange(&mut stream, &vec![0x42; size], &mut vec![0; size]).await?;
        streams.push(stream);
    }
    let cpu_before = cpu_of.map(cpu_ticks).transpose()?;
    let deadline = Instant::now() + duration;
    let workers: Vec<_> = streams.into_iter().map(|stream| tokio::spawn(exchange_until(stream, size, deadline))).collect();
    tokio::time::sleep_until(deadline.into()).await;
    let cpu_after = cpu_of.map(cpu_ticks).transpose()?;
    let (mut all, mut failed) = (Vec::new(), 0);
    for w in workers {
        let (samples, ok) = w.await.unwrap_or_default();
        all.extend(samples);
        failed += usize::from(!ok);
    }
    all.sort_unstable();
    let messages = all.len();
    print!(
        "connections={connections} size={size} messages={messages} messages_per_s={:.0} p50_us={} p99_us={} failed={failed}",
        messages as f64 / duration.as_secs_f64(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let cpu_us = (after - before) as f64 * 1e6 / USER_HZ as f64;
        print!(" cpu_us_per_message={:.2}", if messages > 0 { cpu_us / messages as f64 } else { 0.0 });
    }
    println!();
    Ok(())
}

/// One connection's round trips until `deadline`: their times in microseconds, and whether the
/// connection stayed up.
async fn exchange_until(mut stream: TcpStream, size: usize, deadline: Instant) -> (Vec<u64>, bool) {
    let (frame, mut echo) = (vec![0x42; size], vec![0; size]);
    let mut samples = Vec::new();
    loop {
        let sent = Instant::now();
        if sent >= deadline {
            return (samples, true);
        }
        if exchange(&mut stream, &frame, &mut echo).await.is_err() {
            return (samples, false);
        }
        let received = Instant::now();
        if received > deadline {
            return (samples, true);
        }
        samples.push((received - sent).as_micros() as u64);
    }
}

/// /proc reports CPU times in these units on Linux whatever the kernel's HZ.
const USER_HZ: u64 = 100;

/// User plus system CPU time of a process (all its threads), in USER_HZ ticks.
fn cpu_ticks(pid: u32) -> std::io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // the first of them, utime (field 14) the twelfth, stime the thirteenth.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (field(11), field(12)) {
        (Some(utime), Some(stime)) => Ok(utime + stime),
        _ => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("/proc/{pid}/stat: no utime and stime"))),
    }
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
