//! Pieces shared by the VRRP speaker and the AMQP balancer: the configuration model with its
//! validation, and the logging setup.

pub mod config;
pub mod duration;
pub mod file_safety;
pub mod logging;
pub mod rise_fall;

pub use config::{Config, ConfigError};
