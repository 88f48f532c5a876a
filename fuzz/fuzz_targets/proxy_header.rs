//! A client's PROXY header as `accept_proxy` reads it: never a panic, never more than the
//! bounds asked for, and every prefix of an accepted header is "need more", not an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::proxy_protocol::{decode, V2_MAX};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(Some(header)) => {
            assert!(header.length <= data.len() && header.length <= V2_MAX);
            for len in 0..header.length {
                assert_eq!(decode(&data[..len]), Ok(None), "prefix of {len} bytes of an accepted header");
            }
        }
        Ok(None) => assert!(data.len() < V2_MAX, "asked for more beyond the bound"),
        Err(_) => {}
    }
});
