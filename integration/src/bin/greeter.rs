//! A TCP backend for namespace tests: on each address given, greets every connection with
//! `<name>\n`, echoes what it receives, and prints one line when a connection ends, so a test
//! can see that the proxy released the backend side.
//!
//!   greeter rabbit1=192.0.2.21:5672 rabbit2=192.0.2.22:5672

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

fn main() {
    let mut handles = Vec::new();
    for arg in std::env::args().skip(1) {
        let Some((name, address)) = arg.split_once('=') else {
            eprintln!("greeter: arguments are NAME=ADDRESS:PORT");
            std::process::exit(2);
        };
        let address: SocketAddr = address.parse().unwrap_or_else(|e| {
            eprintln!("greeter: {address}: {e}");
            std::process::exit(2)
        });
        let listener = TcpListener::bind(address).unwrap_or_else(|e| {
            eprintln!("greeter: bind {address}: {e}");
            std::process::exit(1)
        });
        let name = name.to_owned();
        handles.push(std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let name = name.clone();
                std::thread::spawn(move || serve(&name, stream));
            }
        }));
    }
    println!("ready");
    for handle in handles {
        let _ = handle.join();
    }
}

fn serve(name: &str, mut stream: TcpStream) {
    let peer = stream.peer_addr().map(|p| p.to_string()).unwrap_or_default();
    let _ = writeln!(stream, "{name}");
    let Ok(reader) = stream.try_clone() else { return };
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { break };
        if writeln!(stream, "{line}").is_err() {
            break;
        }
    }
    println!("closed {name} {peer}");
    let _ = std::io::stdout().flush();
}
