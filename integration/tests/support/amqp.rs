//! What the RabbitMQ tests' AMQP clients share (amqprs).

use amqprs::channel::{Channel, QueueDeclareArguments};
use amqprs::{FieldTable, FieldValue};

/// Declares `queue` as a durable quorum queue (replicated over the three brokers).
pub async fn declare(channel: &Channel, queue: &str) -> bool {
    let mut arguments = FieldTable::new();
    arguments.insert("x-queue-type".try_into().unwrap(), FieldValue::S("quorum".try_into().unwrap()));
    channel.queue_declare(QueueDeclareArguments::new(queue).durable(true).arguments(arguments).finish()).await.is_ok()
}

/// Publisher confirms come through loadgen's callback: one implementation for both.
pub use integration::confirms::{Confirm, ConfirmCallback};
