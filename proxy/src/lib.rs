//! The AMQP-aware TCP balancer embedded in vrrpd: listeners, health checks, server selection,
//! session copying. It knows nothing of VRRP: the daemon tells it which addresses this host
//! claims and releases ([`Balancer::claim_addresses`], [`Balancer::release_addresses`]) and
//! reads each proxy's availability ([`Balancer::availability`]). Its configuration model lives
//! in `ha_common::config::Proxy`.

pub mod balancer;
pub mod fence;
pub mod health;
pub mod http_client;
pub mod listener;
pub mod proxy_protocol;
pub mod rebalance;
pub mod registry;
pub mod select;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod tls;

pub use balancer::Balancer;
