//! The AMQP health check's reading of a broker's first bytes: never a panic, and a prefix of
//! an accepted greeting is "need more", not an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::health::amqp::parse_connection_start;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(_)) = parse_connection_start(data) {
        for len in 0..data.len() {
            if let Err(e) = parse_connection_start(&data[..len]) {
                // A shorter prefix may only fail for the same bytes a longer one accepted if
                // it was the protocol-header case; anything else is a bug.
                panic!("prefix of {len} bytes refused ({e}) though the whole was accepted");
            }
        }
    }
});
