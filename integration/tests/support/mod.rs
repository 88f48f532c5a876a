//! Shared by the RabbitMQ tests (`mod support;`).
#![allow(dead_code, clippy::unwrap_used)]

pub mod amqp;
