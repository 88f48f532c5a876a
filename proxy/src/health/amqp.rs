//! Just enough AMQP 0-9-1 for a health check: send the protocol header, require the broker's
//! Connection.Start method frame announcing version 0-9 (AMQP 0-9-1 section 4.2.3).

use std::fmt;

/// "AMQP" 0 0 9 1: the protocol header a 0-9-1 client opens with.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";
const FRAME_METHOD: u8 = 1;
const FRAME_END: u8 = 0xce;
/// type (1), channel (2), size (4).
const FRAME_HEADER_LEN: usize = 7;
const CLASS_CONNECTION: u16 = 10;
const METHOD_START: u16 = 10;
/// A Connection.Start is a few hundred bytes; anything past this is not a broker talking.
pub const MAX_START_FRAME: usize = 64 * 1024;

/// What the broker announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionStart {
    pub version_major: u8,
    pub version_minor: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmqpCheckError {
    #[error("the server answered with protocol header {0:?}: it does not speak AMQP 0-9-1")]
    ProtocolRejected(String),
    #[error("frame type {0} is not a method frame")]
    NotMethodFrame(u8),
    #[error("method frame on channel {0}, expected channel 0")]
    WrongChannel(u16),
    #[error("frame of {0} bytes is too large for a Connection.Start")]
    FrameTooLarge(usize),
    #[error("method {class}.{method} is not Connection.Start (10.10)")]
    NotConnectionStart { class: u16, method: u16 },
    #[error("Connection.Start announces version {major}-{minor}, expected 0-9")]
    WrongVersion { major: u8, minor: u8 },
    #[error("frame end byte {0:#04x} is not 0xCE")]
    BadFrameEnd(u8),
    #[error("the method frame is too short to hold Connection.Start")]
    Truncated,
}

/// Parses the broker's first bytes. `Ok(None)`: more bytes are needed.
pub fn parse_connection_start(buf: &[u8]) -> Result<Option<ConnectionStart>, AmqpCheckError> {
    if buf.starts_with(b"AMQP") {
        // A broker that does not support our version answers with its own header and closes.
        return if buf.len() < PROTOCOL_HEADER.len() {
            Ok(None)
        } else {
            Err(AmqpCheckError::ProtocolRejected(printable(&buf[..PROTOCOL_HEADER.len()])))
        };
    }
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    if buf[0] != FRAME_METHOD {
        return Err(AmqpCheckError::NotMethodFrame(buf[0]));
    }
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    if channel != 0 {
        return Err(AmqpCheckError::WrongChannel(channel));
    }
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]) as usize;
    if size > MAX_START_FRAME {
        return Err(AmqpCheckError::FrameTooLarge(size));
    }
    // class (2) method (2) version-major (1) version-minor (1) at least.
    if size < 6 {
        return Err(AmqpCheckError::Truncated);
    }
    let payload = &buf[FRAME_HEADER_LEN..];
    if payload.len() < 6 {
        return Ok(None);
    }
    let class = u16::from_be_bytes([payload[0], payload[1]]);
    let method = u16::from_be_bytes([payload[2], payload[3]]);
    if (class, method) != (CLASS_CONNECTION, METHOD_START) {
        return Err(AmqpCheckError::NotConnectionStart { class, method });
    }
    let (major, minor) = (payload[4], payload[5]);
    if (major, minor) != (0, 9) {
        return Err(AmqpCheckError::WrongVersion { major, minor });
    }
    if payload.len() < size + 1 {
        return Ok(None);
    }
    if payload[size] != FRAME_END {
        return Err(AmqpCheckError::BadFrameEnd(payload[size]));
    }
    Ok(Some(ConnectionStart { version_major: major, version_minor: minor }))
}

fn printable(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| if b.is_ascii_graphic() { char::from(b).to_string() } else { format!("\\x{b:02x}") }).collect()
}

/// An AMQP frame's type, for logs.
pub struct FrameType(pub u8);

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            1 => f.write_str("method"),
            2 => f.write_str("header"),
            3 => f.write_str("body"),
            8 => f.write_str("heartbeat"),
            other => write!(f, "unknown ({other})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Connection.Start as RabbitMQ sends it, with its server-properties table cut to a
    /// stub (the check never reads it), mechanisms "PLAIN" and locales "en_US".
    fn connection_start() -> Vec<u8> {
        let mut payload = vec![0x00, 0x0a, 0x00, 0x0a, 0x00, 0x09];
        payload.extend_from_slice(&0u32.to_be_bytes()); // server-properties: empty table
        payload.extend_from_slice(&5u32.to_be_bytes());
        payload.extend_from_slice(b"PLAIN");
        payload.extend_from_slice(&5u32.to_be_bytes());
        payload.extend_from_slice(b"en_US");
        let mut frame = vec![0x01, 0x00, 0x00];
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&payload);
        frame.push(0xce);
        frame
    }

    #[test]
    fn accepts_connection_start_0_9() {
        let frame = connection_start();
        assert_eq!(parse_connection_start(&frame), Ok(Some(ConnectionStart { version_major: 0, version_minor: 9 })));
    }

    #[test]
    fn asks_for_more_on_every_prefix() {
        let frame = connection_start();
        for len in 0..frame.len() {
            assert_eq!(parse_connection_start(&frame[..len]), Ok(None), "prefix of {len} bytes");
        }
    }

    #[test]
    fn rejects_what_is_not_a_broker_greeting() {
        let mut heartbeat = connection_start();
        heartbeat[0] = 8;
        assert_eq!(parse_connection_start(&heartbeat), Err(AmqpCheckError::NotMethodFrame(8)));
        let mut channel = connection_start();
        channel[2] = 1;
        assert_eq!(parse_connection_start(&channel), Err(AmqpCheckError::WrongChannel(1)));
        let mut tune = connection_start();
        tune[10] = 30; // Connection.Tune
        assert!(matches!(parse_connection_start(&tune), Err(AmqpCheckError::NotConnectionStart { class: 10, method: 30 })));
        let mut version = connection_start();
        version[12] = 8;
        assert_eq!(parse_connection_start(&version), Err(AmqpCheckError::WrongVersion { major: 0, minor: 8 }));
        let mut end = connection_start();
        let last = end.len() - 1;
        end[last] = 0;
        assert_eq!(parse_connection_start(&end), Err(AmqpCheckError::BadFrameEnd(0)));
        assert!(matches!(parse_connection_start(b"AMQP\x01\x01\x00\x0a"), Err(AmqpCheckError::ProtocolRejected(_))));
        assert!(matches!(parse_connection_start(b"HTTP/1.1 400 Bad Request\r\n"), Err(AmqpCheckError::NotMethodFrame(b'H'))));
        let huge = [1, 0, 0, 0x7f, 0xff, 0xff, 0xff];
        assert!(matches!(parse_connection_start(&huge), Err(AmqpCheckError::FrameTooLarge(_))));
    }

    #[test]
    fn never_panics_on_any_short_input() {
        for a in 0..=255u8 {
            for len in 0..12 {
                let buf: Vec<u8> = (0..len).map(|i| a.wrapping_mul(i as u8 + 7)).collect();
                let _ = parse_connection_start(&buf);
            }
        }
    }
}
