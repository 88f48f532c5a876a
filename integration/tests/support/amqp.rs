//! What the RabbitMQ tests' AMQP clients share (amqprs).

use amqprs::callbacks::ChannelCallback;
use amqprs::channel::{Channel, QueueDeclareArguments};
use amqprs::error::Error as AmqpError;
use amqprs::{Ack, BasicProperties, Cancel, CloseChannel, FieldTable, FieldValue, Nack, Return};
use tokio::sync::mpsc;

/// Declares `queue` as a durable quorum queue (replicated over the three brokers).
pub async fn declare(channel: &Channel, queue: &str) -> bool {
    let mut arguments = FieldTable::new();
    arguments.insert("x-queue-type".try_into().unwrap(), FieldValue::S("quorum".try_into().unwrap()));
    channel.queue_declare(QueueDeclareArguments::new(queue).durable(true).arguments(arguments).finish()).await.is_ok()
}

/// Publisher confirms, forwarded to the publishing loop as (delivery tag, multiple).
pub struct Confirms(pub mpsc::UnboundedSender<(u64, bool)>);

#[async_trait::async_trait]
impl ChannelCallback for Confirms {
    async fn close(&mut self, _: &Channel, _: CloseChannel) -> Result<(), AmqpError> {
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, _: Cancel) -> Result<(), AmqpError> {
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool, AmqpError> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send((ack.delivery_tag(), ack.mutiple()));
    }
    async fn publish_nack(&mut self, _: &Channel, _: Nack) {}
    async fn publish_return(&mut self, _: &Channel, _: Return, _: BasicProperties, _: Vec<u8>) {}
}
