//! Byte vectors both ways. The keepalived vectors are whole IPv4 datagrams captured from
//! keepalived 2.2.7 (Debian package) by `scripts/capture-keepalived.sh`: VRID 51, priority 101,
//! advert_int 1, `auth_type PASS` / `auth_pass s3cret`, VIPs 192.0.2.100 and 192.0.2.101,
//! sent from 192.0.2.11.

use super::*;

const KEEPALIVED_MASTER: &str = "45c0002c00010000ff701883c000020be0000012213365020101b7e4c0000264c00002657333637265740000";
/// The advert keepalived sends when stopped: priority 0.
const KEEPALIVED_STOP: &str = "45c0002c00030000ff701881c000020be00000122133000201011ce5c0000264c00002657333637265740000";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

fn keepalived_advert(priority: u8) -> Advertisement {
    Advertisement {
        vrid: 51,
        priority,
        auth: AuthData::Pass(*b"s3cret\0\0"),
        advert_int: 1,
        addresses: vec![Ipv4Addr::new(192, 0, 2, 100), Ipv4Addr::new(192, 0, 2, 101)],
    }
}

#[test]
fn decodes_keepalived_master_advert_from_the_wire() {
    let datagram = hex(KEEPALIVED_MASTER);
    let ip = IpDatagram::parse(&datagram).unwrap();
    assert_eq!(ip.source, Ipv4Addr::new(192, 0, 2, 11));
    assert_eq!(ip.destination, MULTICAST_GROUP);
    assert_eq!(ip.ttl, TTL);
    assert_eq!(Advertisement::decode(ip.payload).unwrap(), keepalived_advert(101));
}

#[test]
fn encodes_exactly_what_keepalived_sends() {
    for (vector, priority) in [(KEEPALIVED_MASTER, 101), (KEEPALIVED_STOP, 0)] {
        let datagram = hex(vector);
        let payload = IpDatagram::parse(&datagram).unwrap().payload;
        assert_eq!(keepalived_advert(priority).encode(), payload, "priority {priority}");
    }
}

#[test]
fn decodes_keepalived_priority_zero_advert() {
    let datagram = hex(KEEPALIVED_STOP);
    let advert = Advertisement::decode(IpDatagram::parse(&datagram).unwrap().payload).unwrap();
    assert_eq!(advert.priority, 0);
}

#[test]
fn encodes_auth_none_with_zero_data_and_a_valid_checksum() {
    let advert = Advertisement {
        vrid: 1,
        priority: 100,
        auth: AuthData::None,
        advert_int: 1,
        addresses: vec![Ipv4Addr::new(192, 0, 2, 100)],
    };
    let bytes = advert.encode();
    // 0x21 | vrid 1 | prio 100 | 1 address | auth 0 | int 1 | checksum | 192.0.2.100 | 8 zero bytes
    let mut expected = hex("2101640100010000c0000264");
    expected.extend_from_slice(&[0; 8]);
    // One's complement of the sum of the words with the checksum zeroed.
    let sum: u32 = [0x2101u32, 0x6401, 0x0001, 0xc000, 0x0264].iter().sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    expected[6..8].copy_from_slice(&(!(folded as u16)).to_be_bytes());
    assert_eq!(bytes, expected);
    assert_eq!(Advertisement::decode(&bytes).unwrap(), advert);
}

#[test]
fn round_trips_zero_and_many_addresses() {
    for count in [0usize, 1, 20, 255] {
        let advert = Advertisement {
            vrid: 255,
            priority: 255,
            auth: AuthData::Other { auth_type: 2, data: *b"abcdefgh" },
            advert_int: 255,
            addresses: (0..count).map(|i| Ipv4Addr::from(0xc000_0200 + i as u32)).collect(),
        };
        let bytes = advert.encode();
        assert_eq!(bytes.len(), 16 + 4 * count);
        assert_eq!(Advertisement::decode(&bytes).unwrap(), advert);
    }
}

fn valid_payload() -> Vec<u8> {
    keepalived_advert(101).encode()
}

#[test]
fn rejects_truncated() {
    let bytes = valid_payload();
    for len in 0..MIN_LEN {
        assert_eq!(Advertisement::decode(&bytes[..len]), Err(DecodeError::TooShort { len }));
    }
}

#[test]
fn rejects_wrong_version() {
    let mut bytes = valid_payload();
    bytes[0] = 0x31;
    assert_eq!(Advertisement::decode(&bytes), Err(DecodeError::Version(3)));
}

#[test]
fn rejects_wrong_type() {
    let mut bytes = valid_payload();
    bytes[0] = 0x22;
    assert_eq!(Advertisement::decode(&bytes), Err(DecodeError::Type(2)));
}

#[test]
fn rejects_count_that_does_not_match_length() {
    let mut bytes = valid_payload();
    bytes[3] = 3;
    assert_eq!(Advertisement::decode(&bytes), Err(DecodeError::Length { len: 24, count: 3, expected: 28 }));
    let mut long = valid_payload();
    long.extend_from_slice(&[0, 0, 0, 0]);
    assert!(matches!(Advertisement::decode(&long), Err(DecodeError::Length { .. })));
}

#[test]
fn rejects_bad_checksum() {
    let mut bytes = valid_payload();
    bytes[2] = 102; // priority changed after the checksum was computed
    assert!(matches!(Advertisement::decode(&bytes), Err(DecodeError::Checksum { received: 0xb7e4, .. })));
}

#[test]
fn ip_parse_rejects_what_is_not_one_whole_vrrp_datagram() {
    let good = hex(KEEPALIVED_MASTER);
    assert_eq!(IpDatagram::parse(&good[..19]), Err(DecodeError::IpHeader("shorter than 20 bytes")));

    let mut v6 = good.clone();
    v6[0] = 0x65;
    assert_eq!(IpDatagram::parse(&v6), Err(DecodeError::IpHeader("version is not 4")));

    let mut ihl = good.clone();
    ihl[0] = 0x4f; // 60-byte header in a 44-byte datagram
    assert_eq!(IpDatagram::parse(&ihl), Err(DecodeError::IpHeader("header length out of bounds")));

    let mut total = good.clone();
    total[3] = 0x40;
    assert_eq!(IpDatagram::parse(&total), Err(DecodeError::IpHeader("total length out of bounds")));

    let mut fragment = good.clone();
    fragment[6] = 0x20; // more fragments
    assert_eq!(IpDatagram::parse(&fragment), Err(DecodeError::IpHeader("fragmented")));

    let mut tcp = good.clone();
    tcp[9] = 6;
    assert_eq!(IpDatagram::parse(&tcp), Err(DecodeError::IpProtocol(6)));
}

#[test]
fn ip_parse_drops_link_layer_padding_after_total_length() {
    let mut padded = hex(KEEPALIVED_MASTER);
    padded.extend_from_slice(&[0; 6]);
    let ip = IpDatagram::parse(&padded).unwrap();
    assert_eq!(Advertisement::decode(ip.payload).unwrap(), keepalived_advert(101));
}

/// No input panics the decoders: every length up to 1100 bytes with pseudo-random content, and
/// every single-bit flip of a valid datagram.
#[test]
fn decoding_never_panics() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for len in 0..1100 {
        for _ in 0..4 {
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len > 0 && next() % 2 == 0 {
                bytes[0] = 0x45; // reach deeper into the IP parser
            }
            if let Ok(ip) = IpDatagram::parse(&bytes) {
                let _ = Advertisement::decode(ip.payload);
            }
            let _ = Advertisement::decode(&bytes);
        }
    }
    let good = hex(KEEPALIVED_MASTER);
    for bit in 0..good.len() * 8 {
        let mut flipped = good.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        if let Ok(ip) = IpDatagram::parse(&flipped) {
            let _ = Advertisement::decode(ip.payload);
        }
    }
}

#[test]
fn encode_ipv4_reproduces_keepalived_datagram_but_for_the_id() {
    let datagram = hex(KEEPALIVED_MASTER);
    let built = encode_ipv4(Ipv4Addr::new(192, 0, 2, 11), MULTICAST_GROUP, TTL, &keepalived_advert(101).encode());
    // keepalived's kernel numbered the datagram (IP ID 1); ours carries ID 0, so the header
    // checksum differs by exactly that.
    let mut expected = datagram.clone();
    expected[4..6].copy_from_slice(&[0, 0]);
    expected[10..12].copy_from_slice(&[0x18, 0x84]);
    assert_eq!(built, expected);
    assert_eq!(IpDatagram::parse(&built).unwrap().ttl, 255);
}
