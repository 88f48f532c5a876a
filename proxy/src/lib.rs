//! The AMQP-aware TCP balancer embedded in vrrpd: listeners, health checks, server selection,
//! session copying. Its configuration model lives in `ha_common::config::Proxy`; the entry
//! point is [`Balancer`].

pub mod amqp;
pub mod balance;
pub mod balancer;
pub mod check;
pub mod health;
pub mod listener;
pub mod proxy_protocol;
pub mod server;
pub mod session;
pub mod sessions;
pub mod stats;

pub use balancer::Balancer;
