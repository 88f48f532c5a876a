//! The receive path's decoders on any datagram: never a panic, and what decodes re-encodes
//! to something that decodes to the same advert.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vrrp_core::packet::{Advertisement, IpDatagram};

fuzz_target!(|data: &[u8]| {
    let payloads = [IpDatagram::parse(data).ok().map(|ip| ip.payload), Some(data)];
    for payload in payloads.into_iter().flatten() {
        if let Ok(advert) = Advertisement::decode(payload) {
            let again = Advertisement::decode(&advert.encode()).expect("an encoded advert decodes");
            assert_eq!(again, advert);
        }
    }
});
