//! The AMQP-aware TCP balancer embedded in vrrpd: listeners, health checks, server selection,
//! session copying. Its configuration model lives in `ha_common::config::Proxy`.

pub mod amqp;
pub mod balance;
pub mod health;
pub mod proxy_protocol;
