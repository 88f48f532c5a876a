//! The VRRP protocol core: no sockets, no netlink, no clock, no configuration file.
//!
//! [`instance::Instance`] is the RFC 3768 section 6 state machine: every input takes `now`,
//! outputs are polled ([`instance::Instance::poll_action`], [`instance::Instance::poll_timeout`]).
//! [`packet`] is the wire format, [`receive`] the receive path shared by the instances of one
//! interface, [`track`] the priority arithmetic of tracked objects, [`counters`] the drops by
//! reason. The daemon owns everything that touches the host and converts its configuration into
//! [`instance::InstanceConfig`].

pub mod counters;
pub mod instance;
pub mod packet;
pub mod receive;
pub mod track;
