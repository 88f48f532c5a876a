//! vrrpd: a VRRPv2 speaker (RFC 3768) wire-compatible with keepalived, built around a protocol
//! core that does no I/O.

pub mod packet;
