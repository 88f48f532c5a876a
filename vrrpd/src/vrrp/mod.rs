//! VRRP on the host. One [`driver::Driver`] per interface runs the `vrrp-core` instances
//! configured on it and carries out what they decide; [`net`] is its contact with the kernel;
//! [`convert`] turns the validated configuration into the core's types; [`vip`] is the seam to
//! the balancer, which VRRP tells about addresses it claims and releases without ever waiting
//! on it.

pub mod announce;
pub mod convert;
pub mod driver;
pub mod group;
pub mod net;
pub mod placement;
pub mod port;
pub mod vip;
