//! Sends crafted VRRPv2 adverts from inside a lab namespace: a stand-in for a misconfigured or
//! hostile peer. Every field an attacker controls can be set, the TTL included. With
//! `--ipv6-from LINK-LOCAL` it sends VRRPv3 adverts over IPv6 to ff02::12 instead, with
//! `--ttl` as the hop limit.
//!
//!   ip netns exec LAB-client vrrp-inject --priority 254 --password wrong --count 20
//!   ip netns exec LAB-client vrrp-inject --ipv6-from fe80::ff:fe00:31 --ttl 64

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use clap::Parser;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vrrp_core::packet::{encode_ipv4, Advertisement, AdvertisementV3, AuthData, MULTICAST_GROUP, MULTICAST_GROUP_V6};

#[derive(Parser)]
struct Args {
    /// Interface to send on.
    #[arg(long, default_value = "eth0")]
    interface: String,
    /// IP source address written in the header.
    #[arg(long, default_value = "192.0.2.31")]
    source: Ipv4Addr,
    #[arg(long, default_value_t = MULTICAST_GROUP)]
    destination: Ipv4Addr,
    #[arg(long, default_value_t = 51)]
    vrid: u8,
    #[arg(long, default_value_t = 254)]
    priority: u8,
    /// PASS password; none sends auth type 0.
    #[arg(long)]
    password: Option<String>,
    #[arg(long, default_value_t = 1)]
    advert_int: u8,
    #[arg(long, default_value_t = 255)]
    ttl: u8,
    /// Virtual addresses listed in the advert.
    #[arg(long, default_value = "192.0.2.100")]
    vip: Vec<Ipv4Addr>,
    /// Corrupt the VRRP checksum.
    #[arg(long)]
    bad_checksum: bool,
    /// Send only the first N bytes of the VRRP message.
    #[arg(long)]
    truncate: Option<usize>,
    /// Write this version in the header (VRRPv2 is 2).
    #[arg(long)]
    version: Option<u8>,
    /// Write this packet type in the header (ADVERTISEMENT is 1).
    #[arg(long = "type")]
    kind: Option<u8>,
    /// Write this address count, whatever the addresses sent.
    #[arg(long)]
    claim_count: Option<u8>,
    #[arg(long, default_value_t = 10)]
    count: u64,
    /// Send VRRPv3 over IPv6 from this link-local address of the interface.
    #[arg(long)]
    ipv6_from: Option<Ipv6Addr>,
    /// IPv6 virtual addresses listed in a VRRPv3 advert.
    #[arg(long, default_value = "2001:db8::100")]
    vip6: Vec<Ipv6Addr>,
    /// Pause between packets; 0 sends as fast as the socket takes them.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    if let Some(source) = args.ipv6_from {
        return send_ipv6(&args, source);
    }
    let auth = match &args.password {
        Some(p) => {
            let mut data = [0u8; 8];
            let bytes = &p.as_bytes()[..p.len().min(8)];
            data[..bytes.len()].copy_from_slice(bytes);
            AuthData::Pass(data)
        }
        None => AuthData::None,
    };
    let advert = Advertisement {
        vrid: args.vrid,
        priority: args.priority,
        auth,
        advert_int: args.advert_int,
        addresses: args.vip.clone(),
    };
    let mut message = advert.encode();
    if let Some(version) = args.version {
        message[0] = (version << 4) | (message[0] & 0x0f);
    }
    if let Some(kind) = args.kind {
        message[0] = (message[0] & 0xf0) | (kind & 0x0f);
    }
    if let Some(count) = args.claim_count {
        message[3] = count;
    }
    if args.version.is_some() || args.kind.is_some() || args.claim_count.is_some() {
        // A well-formed checksum, so that the field under test is what the receiver rejects.
        let sum = pnet_packet::util::checksum(&message, 3);
        message[6..8].copy_from_slice(&sum.to_be_bytes());
    }
    if args.bad_checksum {
        message[7] ^= 0xff;
    }
    if let Some(len) = args.truncate {
        message.truncate(len);
    }
    let datagram = encode_ipv4(args.source, args.destination, args.ttl, &message);

    // IPPROTO_RAW implies IP_HDRINCL: the kernel sends our header as written.
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(libc_ipproto_raw())))?;
    socket.bind_device(Some(args.interface.as_bytes()))?;
    let destination = SockAddr::from(SocketAddrV4::new(args.destination, 0));
    for n in 0..args.count {
        socket.send_to(&datagram, &destination)?;
        if args.interval_ms > 0 && n + 1 < args.count {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
    }
    Ok(())
}

const fn libc_ipproto_raw() -> i32 {
    255
}

/// VRRPv3 adverts over IPv6: the kernel writes the header, with `--ttl` as the hop limit.
fn send_ipv6(args: &Args, source: Ipv6Addr) -> std::io::Result<()> {
    let index: u32 = std::fs::read_to_string(format!("/sys/class/net/{}/ifindex", args.interface))?
        .trim()
        .parse()
        .map_err(std::io::Error::other)?;
    let advert = AdvertisementV3 {
        vrid: args.vrid,
        priority: args.priority,
        max_advert_int: 10,
        addresses: args.vip6.iter().copied().map(IpAddr::V6).collect(),
    };
    let mut message = advert.encode(source.into(), MULTICAST_GROUP_V6.into());
    if args.bad_checksum {
        message[7] ^= 0xff;
    }
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(112)))?;
    socket.bind_device(Some(args.interface.as_bytes()))?;
    socket.bind(&SockAddr::from(SocketAddrV6::new(source, 0, 0, index)))?;
    socket.set_multicast_if_v6(index)?;
    socket.set_multicast_hops_v6(u32::from(args.ttl))?;
    let destination = SockAddr::from(SocketAddrV6::new(MULTICAST_GROUP_V6, 0, 0, index));
    for n in 0..args.count {
        socket.send_to(&message, &destination)?;
        if args.interval_ms > 0 && n + 1 < args.count {
            std::thread::sleep(Duration::from_millis(args.interval_ms));
        }
    }
    Ok(())
}
