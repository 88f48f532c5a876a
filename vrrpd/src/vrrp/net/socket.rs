//! Raw IPPROTO 112 sockets for adverts, one pair per interface (as keepalived does): a receive
//! socket joined to 224.0.0.18 that sees whole datagrams, IP header included, so the TTL check
//! is real; and a send socket bound to the source address, TTL 255, multicast loopback off.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;

use super::link::Interface;
use super::NetError;
use vrrp_core::packet::{IP_PROTOCOL, MULTICAST_GROUP, TTL};

/// DSCP CS6 (network control), the TOS keepalived uses for adverts.
const TOS_NETWORK_CONTROL: u32 = 0xc0;
/// Room for a burst of adverts (or a flood) while the loop is busy.
const RECEIVE_BUFFER: usize = 1 << 20;

pub struct AdvertSocket {
    /// A raw socket behind tokio's UdpSocket: recv and send_to are the same system calls, and
    /// this registers the descriptor with the reactor without unsafe code.
    receive: UdpSocket,
    send: Socket,
    interface: String,
}

impl AdvertSocket {
    /// Opens both sockets on `interface`, sending from `source`.
    pub fn open(interface: &Interface, source: Ipv4Addr) -> Result<Self, NetError> {
        let io = |what| {
            let name = interface.name.clone();
            move |source| NetError::Io { interface: name, what, source }
        };
        let raw = || Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(i32::from(IP_PROTOCOL))));

        let receive = raw().map_err(io("open a raw VRRP socket (needs CAP_NET_RAW)"))?;
        receive.bind_device(Some(interface.name.as_bytes())).map_err(io("bind the receive socket to the interface"))?;
        receive
            .join_multicast_v4_n(&MULTICAST_GROUP, &InterfaceIndexOrAddress::Index(interface.index))
            .map_err(io("join 224.0.0.18"))?;
        // Best effort: a smaller buffer only means more drops under a flood.
        let _ = receive.set_recv_buffer_size(RECEIVE_BUFFER);
        receive.set_nonblocking(true).map_err(io("make the receive socket non-blocking"))?;

        let send = raw().map_err(io("open a raw VRRP socket (needs CAP_NET_RAW)"))?;
        send.bind_device(Some(interface.name.as_bytes())).map_err(io("bind the send socket to the interface"))?;
        send.bind(&SockAddr::from(SocketAddrV4::new(source, 0))).map_err(io("bind the send socket to the source address"))?;
        send.set_multicast_if_v4(&source).map_err(io("set the multicast interface"))?;
        send.set_multicast_ttl_v4(u32::from(TTL)).map_err(io("set the multicast TTL"))?;
        send.set_ttl_v4(u32::from(TTL)).map_err(io("set the TTL"))?;
        send.set_multicast_loop_v4(false).map_err(io("turn multicast loopback off"))?;
        send.set_tos_v4(TOS_NETWORK_CONTROL).map_err(io("set the TOS"))?;
        send.set_nonblocking(true).map_err(io("make the send socket non-blocking"))?;
        // The send socket would also queue unicast adverts; it never reads, so keep that small.
        let _ = send.set_recv_buffer_size(0);

        let receive = UdpSocket::from_std(receive.into()).map_err(io("register the receive socket"))?;
        Ok(AdvertSocket { receive, send, interface: interface.name.clone() })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Receives one datagram, IP header included.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.receive.recv(buf).await
    }

    /// Sends one VRRP message to `destination` (the group, or a unicast peer).
    pub fn send(&self, message: &[u8], destination: Ipv4Addr) -> io::Result<()> {
        let sent = self.send.send_to(message, &SockAddr::from(SocketAddrV4::new(destination, 0)))?;
        if sent == message.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, format!("sent {sent} of {} bytes", message.len())))
        }
    }
}
