//! Unsolicited Neighbour Advertisements, the IPv6 counterpart of gratuitous ARP (RFC 4861
//! section 7.2.6, RFC 5798 section 6.4.2): to all nodes (ff02::1), hop limit 255, the
//! override flag set and the interface's MAC as the target link-layer address, so neighbours
//! replace the entry they hold for the VIP at once. The kernel fills in the ICMPv6 checksum.

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::link::Interface;
use super::NetError;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// The Override flag (RFC 4861 section 4.4), first bit after the ICMPv6 header.
const OVERRIDE: u8 = 0x20;
/// Option type 2: Target Link-Layer Address, 8 bytes long (length 1).
const TARGET_LINK_LAYER_ADDRESS: u8 = 2;

pub struct NaSender {
    socket: Socket,
    index: u32,
    mac: [u8; 6],
}

impl NaSender {
    pub fn open(interface: &Interface) -> Result<Self, NetError> {
        let io = |what| {
            let name = interface.name.clone();
            move |source| NetError::Io { interface: name, what, source }
        };
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
            .map_err(io("open an ICMPv6 socket for neighbour advertisements (needs CAP_NET_RAW)"))?;
        socket.bind_device(Some(interface.name.as_bytes())).map_err(io("bind the ICMPv6 socket to the interface"))?;
        socket.set_multicast_if_v6(interface.index).map_err(io("set the ICMPv6 multicast interface"))?;
        // Receivers drop neighbour discovery with any other hop limit (RFC 4861 section 7.1.2).
        socket.set_multicast_hops_v6(255).map_err(io("set the ICMPv6 hop limit"))?;
        socket.set_multicast_loop_v6(false).map_err(io("turn ICMPv6 multicast loopback off"))?;
        socket.set_nonblocking(true).map_err(io("make the ICMPv6 socket non-blocking"))?;
        // It only sends: an ICMPv6 raw socket would otherwise queue every ICMPv6 packet.
        let _ = socket.set_recv_buffer_size(0);
        Ok(NaSender { socket, index: interface.index, mac: interface.mac })
    }

    /// Sends `count` unsolicited neighbour advertisements for each of `vips`.
    pub fn send(&self, vips: &[Ipv6Addr], count: u32) -> io::Result<()> {
        let destination = SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.index));
        for _ in 0..count {
            for &vip in vips {
                self.socket.send_to(&neighbour_advertisement(vip, self.mac), &destination)?;
            }
        }
        Ok(())
    }
}

/// The ICMPv6 message of an unsolicited NA for `target` at `mac` (checksum left to the kernel).
pub fn neighbour_advertisement(target: Ipv6Addr, mac: [u8; 6]) -> [u8; 32] {
    let mut message = [0u8; 32];
    message[0] = NEIGHBOR_ADVERTISEMENT;
    message[4] = OVERRIDE;
    message[8..24].copy_from_slice(&target.octets());
    message[24] = TARGET_LINK_LAYER_ADDRESS;
    message[25] = 1;
    message[26..32].copy_from_slice(&mac);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsolicited_na_overrides_and_names_the_mac() {
        let na = neighbour_advertisement("2001:db8::100".parse().unwrap(), [2, 0, 0, 0, 0, 0x11]);
        assert_eq!((na[0], na[1], na[4]), (136, 0, 0x20), "type NA, code 0, Override without Solicited");
        assert_eq!(&na[8..24], &"2001:db8::100".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(&na[24..32], &[2, 1, 2, 0, 0, 0, 0, 0x11]);
    }
}
