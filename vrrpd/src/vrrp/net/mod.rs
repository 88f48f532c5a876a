//! The driver's contact with the kernel: rtnetlink for addresses and link state, raw IP sockets
//! for adverts, a packet socket for gratuitous ARP.

pub mod arp;
pub mod link;
pub mod nd;
pub mod socket;
pub mod socket6;

/// Everything that can fail talking to the kernel, with the object it was about.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("interface {0:?} does not exist")]
    NoInterface(String),
    #[error("interface {0} has no IPv4 address to send adverts from (or set unicast_src_ip)")]
    NoIpv4Address(String),
    #[error("interface {0} has no IPv6 link-local address to send VRRPv3 adverts from")]
    NoLinkLocal(String),
    #[error("interface {interface}: {what}: {source}")]
    Io { interface: String, what: &'static str, source: std::io::Error },
    #[error("netlink: {what}: {source}")]
    Netlink { what: String, source: rtnetlink::Error },
}
