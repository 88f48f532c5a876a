//! Gratuitous ARP: an ARP request for the VIP from the VIP, sent from the interface's MAC to
//! the broadcast address, so neighbours update the entry they already hold for the VIP
//! (Linux does so for gratuitous requests whatever `arp_accept` says) without waiting for it to
//! expire.

use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use pnet_base::MacAddr;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::link::Interface;
use super::NetError;

const ETHERNET_HEADER: usize = 14;
const ARP_IPV4_LEN: usize = 28;
/// The packet socket's protocol only decides what it receives; keepalived's trick of RARP
/// keeps that to (almost) nothing, where ETH_P_ALL would copy every frame of a busy proxy.
const ETH_P_RARP: u16 = 0x8035;
const BROADCAST: [u8; 6] = [0xff; 6];

pub struct GarpSender {
    socket: Socket,
    interface: String,
    index: u32,
    mac: [u8; 6],
}

impl GarpSender {
    pub fn open(interface: &Interface) -> Result<Self, NetError> {
        let socket =
            Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(i32::from(ETH_P_RARP.to_be())))).map_err(|source| {
                NetError::Io {
                    interface: interface.name.clone(),
                    what: "open a packet socket for gratuitous ARP (needs CAP_NET_RAW)",
                    source,
                }
            })?;
        socket.set_nonblocking(true).map_err(|source| NetError::Io {
            interface: interface.name.clone(),
            what: "make the packet socket non-blocking",
            source,
        })?;
        Ok(GarpSender { socket, interface: interface.name.clone(), index: interface.index, mac: interface.mac })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Sends `count` gratuitous ARPs for each of `vips`.
    pub fn send(&self, vips: &[Ipv4Addr], count: u32) -> io::Result<()> {
        for _ in 0..count {
            for &vip in vips {
                self.send_one(vip)?;
            }
        }
        Ok(())
    }

    fn send_one(&self, vip: Ipv4Addr) -> io::Result<()> {
        let frame = gratuitous_arp(self.mac, vip);
        self.socket.send_to(&frame, &link_layer_broadcast(self.index)).map(drop)
    }
}

/// Bursts waiting for the pacer; past this a burst is dropped (with a warning): a flapping
/// instance cannot queue ARPs without bound.
const PACED_BURSTS: usize = 16;

/// keepalived's `garp_interval`: gratuitous ARPs on one interface leave at least `interval`
/// apart, bursts of every instance on it included. A task sends them. Each burst carries its
/// instance's token: once that instance gives its VIPs up, what is left of its bursts is never
/// sent (keepalived drops pending ARPs too: a host that is no longer master must not claim the
/// VIP for its MAC). The task ends when the pacer is dropped (the port closed, the interval
/// changed, the driver stopped), sending nothing more.
pub struct GarpPacer {
    pub interval: Duration,
    sender: Arc<GarpSender>,
    queue: mpsc::Sender<Burst>,
    stop: CancellationToken,
}

/// Addresses, how many times each, and the token that withdraws what is left of it.
type Burst = (Vec<Ipv4Addr>, u32, CancellationToken);

impl Drop for GarpPacer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl GarpPacer {
    pub fn start(sender: Arc<GarpSender>, interval: Duration) -> Self {
        let (queue, mut bursts) = mpsc::channel::<Burst>(PACED_BURSTS);
        let stop = CancellationToken::new();
        let pacer = GarpPacer { interval, sender: Arc::clone(&sender), queue, stop: stop.clone() };
        tokio::spawn(async move {
            let mut next = tokio::time::Instant::now();
            loop {
                let (vips, count, withdrawn) = tokio::select! {
                    () = stop.cancelled() => return,
                    burst = bursts.recv() => match burst {
                        Some(burst) => burst,
                        None => return,
                    },
                };
                'burst: for _ in 0..count {
                    for &vip in &vips {
                        tokio::select! {
                            biased;
                            () = stop.cancelled() => return,
                            () = withdrawn.cancelled() => break 'burst,
                            () = tokio::time::sleep_until(next) => {}
                        }
                        if let Err(e) = sender.send_one(vip) {
                            warn!(interface = %sender.interface, error = %e, "sending gratuitous ARP failed");
                        }
                        next = tokio::time::Instant::now() + interval;
                    }
                }
            }
        });
        pacer
    }

    /// Queues a burst, withdrawn when `withdrawn` is cancelled; false when the queue is full
    /// (the burst is dropped).
    pub fn send(&self, vips: Vec<Ipv4Addr>, count: u32, withdrawn: CancellationToken) -> bool {
        self.queue.try_send((vips, count, withdrawn)).is_ok()
    }

    /// Whether this pacer sends through `sender`.
    pub fn serves(&self, sender: &Arc<GarpSender>) -> bool {
        self.running() && Arc::ptr_eq(&self.sender, sender)
    }

    /// Whether its task still runs (it ends with the runtime).
    pub fn running(&self) -> bool {
        !self.queue.is_closed()
    }
}

/// The Ethernet frame of a gratuitous ARP request for `vip` from `mac`.
pub fn gratuitous_arp(mac: [u8; 6], vip: Ipv4Addr) -> [u8; ETHERNET_HEADER + ARP_IPV4_LEN] {
    let mut frame = [0u8; ETHERNET_HEADER + ARP_IPV4_LEN];
    let source = MacAddr::from(mac);
    {
        // The array is exactly one Ethernet header plus one IPv4 ARP packet long.
        let mut ethernet = MutableEthernetPacket::new(&mut frame).expect("frame holds an Ethernet header");
        ethernet.set_destination(MacAddr::from(BROADCAST));
        ethernet.set_source(source);
        ethernet.set_ethertype(EtherTypes::Arp);
    }
    let mut arp = MutableArpPacket::new(&mut frame[ETHERNET_HEADER..]).expect("frame holds an ARP packet");
    arp.set_hardware_type(ArpHardwareTypes::Ethernet);
    arp.set_protocol_type(EtherTypes::Ipv4);
    arp.set_hw_addr_len(6);
    arp.set_proto_addr_len(4);
    arp.set_operation(ArpOperations::Request);
    arp.set_sender_hw_addr(source);
    arp.set_sender_proto_addr(vip);
    arp.set_target_hw_addr(MacAddr::zero());
    arp.set_target_proto_addr(vip);
    frame
}

/// `sockaddr_ll` for a broadcast ARP frame out of interface `index`.
#[allow(unsafe_code)]
fn link_layer_broadcast(index: u32) -> SockAddr {
    let mut address = [0u8; 8];
    address[..6].copy_from_slice(&BROADCAST);
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: (libc::ETH_P_ARP as u16).to_be(),
        sll_ifindex: index as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: address,
    };
    // SAFETY: socket2 offers no safe constructor for link-layer addresses. The storage is a
    // sockaddr_storage, larger than and aligned for sockaddr_ll; we write one whole, initialised
    // sockaddr_ll at its start and report exactly its length.
    let ((), address) = unsafe {
        SockAddr::try_init(|storage, len| {
            std::ptr::write(storage.cast::<libc::sockaddr_ll>(), sll);
            *len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            Ok(())
        })
    }
    .expect("initialising a sockaddr cannot fail");
    address
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gratuitous_arp_frame_layout() {
        let frame = gratuitous_arp([0x02, 0, 0, 0, 0, 0x11], Ipv4Addr::new(192, 0, 2, 100));
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            concat!(
                "ffffffffffff",
                "020000000011",
                "0806", // Ethernet: broadcast, from us, ARP
                "0001",
                "0800",
                "06",
                "04",
                "0001", // Ethernet/IPv4, request
                "020000000011",
                "c0000264", // sender: our MAC, the VIP
                "000000000000",
                "c0000264", // target: the VIP
            )
        );
    }
}
