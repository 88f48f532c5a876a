//! vrrpd: a VRRPv2 speaker (RFC 3768, wire-compatible with keepalived) and an AMQP balancer in one
//! daemon. The protocol itself is the `vrrp-core` crate and the balancer the `proxy` crate; this
//! crate wires them to the host and to each other.
//!
//! - [`daemon`]: runtimes, signals, reload, shutdown; every task under one cancellation tree.
//! - [`vrrp`]: one driver per interface around the core: sockets, VIPs, gratuitous ARP.
//! - [`trackers`]: every tracked object's status (scripts, links, proxies) in one watched map.
//! - [`hooks`]: the operator's programs vrrpd runs (track and notify scripts).
//! - [`control`]: the control socket, its typed commands, and the `vrrpd ctl` client.
//! - [`stats`]: the status board, its renderers and the HTTP server.
//! - [`config`], [`cli`], [`preflight`] (`vrrpd check`), [`import`] (`vrrpd import`),
//!   [`privileges`], [`systemd`].

pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod hooks;
pub mod import;
pub mod preflight;
pub mod privileges;
pub mod stats;
pub mod systemd;
pub mod trackers;
pub mod vrrp;
