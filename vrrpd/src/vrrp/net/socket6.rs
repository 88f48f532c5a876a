//! The IPv6 advert socket of an interface (RFC 5798 section 5.1.2): raw IPv6 protocol 112,
//! joined to ff02::12, sending from the interface's link-local address with hop limit 255.
//! IPv6 raw sockets deliver the payload alone: the source, the destination (for the checksum's
//! pseudo-header) and the hop limit (which must be 255) come as ancillary data, read here
//! with `recvmsg`.

use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn6};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::link::Interface;
use super::NetError;
use vrrp_core::packet::{IP_PROTOCOL, MULTICAST_GROUP_V6, TTL};

/// Traffic class CS6 (network control), as keepalived marks IPv6 adverts.
const TCLASS_NETWORK_CONTROL: u32 = 0xc0;
const RECEIVE_BUFFER: usize = 1 << 20;

/// One received message with what the IPv6 header said.
#[derive(Clone, Copy, Debug)]
pub struct Received6 {
    pub len: usize,
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub hop_limit: u8,
}

pub struct AdvertSocket6 {
    /// A raw socket behind tokio's UdpSocket (readiness only; reads go through recvmsg).
    receive: UdpSocket,
    send: Socket,
    index: u32,
}

impl AdvertSocket6 {
    /// Opens both sockets on `interface`, sending from its link-local address `source`.
    pub fn open(interface: &Interface, source: Ipv6Addr) -> Result<Self, NetError> {
        let io = |what| {
            let name = interface.name.clone();
            move |source| NetError::Io { interface: name, what, source }
        };
        let raw = || Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(i32::from(IP_PROTOCOL))));

        let receive = raw().map_err(io("open a raw IPv6 VRRP socket (needs CAP_NET_RAW)"))?;
        receive.bind_device(Some(interface.name.as_bytes())).map_err(io("bind the IPv6 receive socket to the interface"))?;
        receive.join_multicast_v6(&MULTICAST_GROUP_V6, interface.index).map_err(io("join ff02::12"))?;
        setsockopt(&receive, sockopt::Ipv6RecvHopLimit, &true)
            .map_err(|e| io("ask for the hop limit of received adverts")(io::Error::from(e)))?;
        setsockopt(&receive, sockopt::Ipv6RecvPacketInfo, &true)
            .map_err(|e| io("ask for the destination of received adverts")(io::Error::from(e)))?;
        let _ = receive.set_recv_buffer_size(RECEIVE_BUFFER);
        receive.set_nonblocking(true).map_err(io("make the IPv6 receive socket non-blocking"))?;

        let send = raw().map_err(io("open a raw IPv6 VRRP socket (needs CAP_NET_RAW)"))?;
        send.bind_device(Some(interface.name.as_bytes())).map_err(io("bind the IPv6 send socket to the interface"))?;
        send.bind(&SockAddr::from(SocketAddrV6::new(source, 0, 0, interface.index)))
            .map_err(io("bind the IPv6 send socket to the link-local address"))?;
        send.set_multicast_if_v6(interface.index).map_err(io("set the IPv6 multicast interface"))?;
        send.set_multicast_hops_v6(u32::from(TTL)).map_err(io("set the multicast hop limit"))?;
        send.set_unicast_hops_v6(u32::from(TTL)).map_err(io("set the unicast hop limit"))?;
        send.set_multicast_loop_v6(false).map_err(io("turn IPv6 multicast loopback off"))?;
        let _ = send.set_tclass_v6(TCLASS_NETWORK_CONTROL);
        send.set_nonblocking(true).map_err(io("make the IPv6 send socket non-blocking"))?;
        let _ = send.set_recv_buffer_size(0);

        let receive = UdpSocket::from_std(std::net::UdpSocket::from(std::os::fd::OwnedFd::from(receive)))
            .map_err(io("register the IPv6 receive socket"))?;
        Ok(AdvertSocket6 { receive, send, index: interface.index })
    }

    /// Receives one VRRP message (the IPv6 payload). A message without the hop limit or the
    /// destination (which the kernel always attaches once asked) reads as hop limit 0, and is
    /// dropped as such.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received6> {
        self.receive
            .async_io(Interest::READABLE, || {
                let mut iov = [IoSliceMut::new(buf)];
                let mut control = nix::cmsg_space!(libc::in6_pktinfo, libc::c_int);
                let message =
                    recvmsg::<SockaddrIn6>(self.receive.as_raw_fd(), &mut iov, Some(&mut control), MsgFlags::MSG_DONTWAIT)
                        .map_err(io::Error::from)?;
                let mut hop_limit = 0u8;
                let mut destination = Ipv6Addr::UNSPECIFIED;
                for cmsg in message.cmsgs().map_err(io::Error::from)? {
                    match cmsg {
                        ControlMessageOwned::Ipv6HopLimit(limit) => hop_limit = u8::try_from(limit).unwrap_or(0),
                        ControlMessageOwned::Ipv6PacketInfo(info) => destination = Ipv6Addr::from(info.ipi6_addr.s6_addr),
                        _ => {}
                    }
                }
                let source = message.address.map_or(Ipv6Addr::UNSPECIFIED, |a| a.ip());
                Ok(Received6 { len: message.bytes, source, destination, hop_limit })
            })
            .await
    }

    /// Sends one VRRP message to `destination` (ff02::12) on this interface.
    pub fn send(&self, message: &[u8], destination: Ipv6Addr) -> io::Result<()> {
        let sent = self.send.send_to(message, &SockAddr::from(SocketAddrV6::new(destination, 0, 0, self.index)))?;
        if sent == message.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, format!("sent {sent} of {} bytes", message.len())))
        }
    }
}
