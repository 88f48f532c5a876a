//! The AMQP-aware TCP balancer embedded in vrrpd: listeners, health checks, server selection,
//! session copying. Its configuration model lives in `ha_common::config::Proxy`; the balancer
//! itself is the subject of the next milestone and nothing here runs yet.
