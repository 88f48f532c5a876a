//! The ceiling `scripts/bench.sh --ceiling` compares both proxies with: a TCP relay with no
//! features at all (no timeouts, counters, health checks, splice or PROXY protocol), written
//! on io_uring, the cheapest way Linux offers to move small messages between sockets.
//!
//!   uring-copy LISTEN BACKEND [--threads N]
//!
//! Each thread has its own ring and its own SO_REUSEPORT listener: a multishot accept, then
//! per client a connect to BACKEND and two directions that each receive into their own buffer
//! and send it on whole before receiving again. A direction that reads the end of its stream
//! passes the FIN on with `shutdown(2)`; an error in either direction ends the pair. It is a
//! measuring stick for the benchmark, not a proxy to deploy.
//!
//! Memory the kernel writes into (buffers, the backend's address) must outlive every operation
//! queued on it: a pair is freed only once none of its operations is in flight, and ending a
//! pair shuts both sockets down first, which completes their pending receives.

// The io_uring interface hands the kernel raw pointers: every `unsafe` below is a submission
// whose memory is kept alive until its completion arrives (see `Relay::finish`).
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;

use clap::Parser;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};

#[derive(Parser)]
struct Args {
    listen: SocketAddr,
    backend: SocketAddr,
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// A direction's buffer: as large as one read of vrrpd's copy loop.
const BUFFER: usize = 16 * 1024;
const ACCEPT: u64 = u64::MAX;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Connect = 1,
    Recv = 2,
    Send = 3,
}

fn user_data(slot: usize, op: Op, direction: usize) -> u64 {
    ((slot as u64) << 8) | ((op as u64) << 1) | direction as u64
}

fn decode(data: u64) -> (usize, Op, usize) {
    let op = match (data >> 1) & 0x7f {
        1 => Op::Connect,
        2 => Op::Recv,
        _ => Op::Send,
    };
    ((data >> 8) as usize, op, (data & 1) as usize)
}

struct Direction {
    buffer: Box<[u8]>,
    filled: usize,
    sent: usize,
}

/// A client and its backend connection. Direction 0 copies client to backend, 1 the reverse.
struct Pair {
    sockets: [OwnedFd; 2],
    directions: [Direction; 2],
    in_flight: u32,
    open_directions: u8,
    ending: bool,
}

struct Relay {
    ring: IoUring,
    pairs: Vec<Option<Pair>>,
    free: Vec<usize>,
    /// Boxed: connects in flight point at it.
    backend: Box<SockAddr>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let workers: Vec<_> = (0..args.threads.max(1))
        .map(|_| std::thread::spawn(move || Relay::new(args.backend).map(|mut relay| relay.run(args.listen))))
        .collect();
    for worker in workers {
        if let Ok(Err(error)) = worker.join() {
            eprintln!("uring-copy: {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

impl Relay {
    fn new(backend: SocketAddr) -> io::Result<Self> {
        let mut builder = IoUring::builder();
        builder.setup_single_issuer().setup_defer_taskrun();
        let ring = builder.build(4096).or_else(|_| IoUring::new(4096)).map_err(|error| {
            io::Error::new(error.kind(), format!("io_uring unavailable ({error}; see /proc/sys/kernel/io_uring_disabled)"))
        })?;
        Ok(Self { ring, pairs: Vec::new(), free: Vec::new(), backend: Box::new(backend.into()) })
    }

    /// Relays until the process ends. A failure of the ring or the listener ends the whole
    /// process at once, with the ring still open: dropping it with operations in flight would
    /// free memory the kernel may still write into, and a relay that went on with one thread
    /// less would make the benchmark's figures quietly lower.
    fn run(&mut self, listen: SocketAddr) -> ! {
        let error = self.serve(listen).err().unwrap_or_else(|| io::Error::other("stopped"));
        eprintln!("uring-copy: {error}");
        std::process::exit(1)
    }

    fn serve(&mut self, listen: SocketAddr) -> io::Result<()> {
        let listener = Socket::new(Domain::for_address(listen), Type::STREAM, None)?;
        listener.set_reuse_address(true)?;
        listener.set_reuse_port(true)?;
        listener.bind(&listen.into())?;
        listener.listen(1024)?;
        self.push(opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd())).build().user_data(ACCEPT))?;
        let mut completions: Vec<(u64, i32, u32)> = Vec::with_capacity(1024);
        loop {
            match self.ring.submit_and_wait(1) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                result => result?,
            };
            completions.clear();
            completions.extend(self.ring.completion().map(|c| (c.user_data(), c.result(), c.flags())));
            for &(data, result, flags) in &completions {
                if data == ACCEPT {
                    if !cqueue::more(flags) {
                        self.push(opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd())).build().user_data(ACCEPT))?;
                    }
                    if result >= 0 {
                        // SAFETY: a descriptor the kernel just returned from accept, owned by nobody else.
                        let client = unsafe { OwnedFd::from_raw_fd(result) };
                        // A client this relay cannot serve (out of descriptors) is closed; the
                        // others go on.
                        if let Err(error) = self.accepted(client) {
                            eprintln!("uring-copy: a client closed: {error}");
                        }
                    }
                    continue;
                }
                self.completed(data, result)?;
            }
        }
    }

    fn accepted(&mut self, client: OwnedFd) -> io::Result<()> {
        let server = Socket::new(Domain::for_address(self.backend.as_socket().expect("an IP address")), Type::STREAM, None)?;
        SockRef::from(&client).set_tcp_nodelay(true)?;
        server.set_tcp_nodelay(true)?;
        let pair = Pair {
            sockets: [client, server.into()],
            directions: [Direction::new(), Direction::new()],
            in_flight: 1,
            open_directions: 2,
            ending: false,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.pairs[slot] = Some(pair);
                slot
            }
            None => {
                self.pairs.push(Some(pair));
                self.pairs.len() - 1
            }
        };
        let fd = self.pairs[slot].as_ref().map_or(-1, |pair| pair.sockets[1].as_raw_fd());
        let connect = opcode::Connect::new(types::Fd(fd), self.backend.as_ptr().cast(), self.backend.len()).build();
        self.push(connect.user_data(user_data(slot, Op::Connect, 0)))
    }

    fn completed(&mut self, data: u64, result: i32) -> io::Result<()> {
        let (slot, op, direction) = decode(data);
        let Some(pair) = self.pairs.get_mut(slot).and_then(Option::as_mut) else { return Ok(()) };
        pair.in_flight -= 1;
        if pair.ending {
            return self.finish(slot);
        }
        match op {
            Op::Connect => {
                if result < 0 {
                    return self.end(slot);
                }
                self.receive(slot, 0)?;
                self.receive(slot, 1)
            }
            Op::Recv => {
                if result < 0 {
                    return self.end(slot);
                }
                if result == 0 {
                    // The end of this direction's stream: pass the FIN on.
                    let _ = SockRef::from(&pair.sockets[1 - direction]).shutdown(std::net::Shutdown::Write);
                    pair.open_directions -= 1;
                    return if pair.open_directions == 0 { self.end(slot) } else { Ok(()) };
                }
                let d = &mut pair.directions[direction];
                d.filled = result as usize;
                d.sent = 0;
                self.send(slot, direction)
            }
            Op::Send => {
                if result < 0 {
                    return self.end(slot);
                }
                let d = &mut pair.directions[direction];
                d.sent += result as usize;
                if d.sent < d.filled {
                    self.send(slot, direction)
                } else {
                    self.receive(slot, direction)
                }
            }
        }
    }

    fn receive(&mut self, slot: usize, direction: usize) -> io::Result<()> {
        let Some(pair) = self.pairs[slot].as_mut() else { return Ok(()) };
        pair.in_flight += 1;
        let buffer = &mut pair.directions[direction].buffer;
        let recv = opcode::Recv::new(types::Fd(pair.sockets[direction].as_raw_fd()), buffer.as_mut_ptr(), BUFFER as u32);
        self.push(recv.build().user_data(user_data(slot, Op::Recv, direction)))
    }

    fn send(&mut self, slot: usize, direction: usize) -> io::Result<()> {
        let Some(pair) = self.pairs[slot].as_mut() else { return Ok(()) };
        pair.in_flight += 1;
        let d = &pair.directions[direction];
        let unsent = &d.buffer[d.sent..d.filled];
        let send = opcode::Send::new(types::Fd(pair.sockets[1 - direction].as_raw_fd()), unsent.as_ptr(), unsent.len() as u32);
        self.push(send.build().user_data(user_data(slot, Op::Send, direction)))
    }

    /// Ends a pair: both sockets shut down, which completes whatever is still queued on them.
    fn end(&mut self, slot: usize) -> io::Result<()> {
        if let Some(pair) = self.pairs[slot].as_mut() {
            pair.ending = true;
            for socket in &pair.sockets {
                let _ = SockRef::from(socket).shutdown(std::net::Shutdown::Both);
            }
        }
        self.finish(slot)
    }

    /// Frees an ending pair once the kernel holds no pointer into it.
    fn finish(&mut self, slot: usize) -> io::Result<()> {
        if self.pairs[slot].as_ref().is_some_and(|pair| pair.in_flight == 0) {
            self.pairs[slot] = None;
            self.free.push(slot);
        }
        Ok(())
    }

    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry points into a pair's boxed buffers or the boxed backend
            // address, which stay allocated until the entry's completion (see `finish`).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }
}

impl Direction {
    fn new() -> Self {
        Self { buffer: vec![0; BUFFER].into_boxed_slice(), filled: 0, sent: 0 }
    }
}
