//! vrrpd: a VRRPv2 speaker (RFC 3768) wire-compatible with keepalived, built around a protocol
//! core that does no I/O.
//!
//! The core is [`instance::Instance`] (the state machine), [`packet`] (the wire format),
//! [`receive`] (the receive path), [`track`] (priority weights and FAULT) and [`counters`]
//! (dropped packets by reason). [`cli`] and [`check`] serve the binary.

pub mod check;
pub mod cli;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod driver;
pub mod import;
pub mod instance;
pub mod net;
pub mod notify;
pub mod packet;
pub mod privileges;
pub mod receive;
pub mod render;
pub mod scripts;
pub mod stats_http;
pub mod status;
pub mod systemd;
pub mod track;
