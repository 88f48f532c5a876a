//! Why received packets were dropped, counted per reason (RFC 3768 section 7.1 and the decoder).

use std::fmt;

use crate::packet::DecodeError;

/// A reason to discard a received packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The IPv4 header is malformed, fragmented, or not VRRP.
    IpHeader,
    /// IP TTL is not 255: the sender is not on this link (section 7.1).
    Ttl,
    /// Shorter than a VRRP header.
    TooShort,
    Version,
    Type,
    /// Address count does not match the length.
    Length,
    Checksum,
    /// No instance with this VRID on the receiving interface.
    UnknownVrid,
    /// Authentication type differs from ours.
    AuthType,
    /// PASS password differs from ours.
    AuthPassword,
    /// Advertisement interval differs from ours.
    AdvertInterval,
    /// Virtual address list differs from ours (and the sender is not the owner).
    AddressList,
    /// The packet carries one of our own addresses as its source.
    OwnAddress,
}

impl DropReason {
    pub const ALL: [DropReason; 13] = [
        DropReason::IpHeader,
        DropReason::Ttl,
        DropReason::TooShort,
        DropReason::Version,
        DropReason::Type,
        DropReason::Length,
        DropReason::Checksum,
        DropReason::UnknownVrid,
        DropReason::AuthType,
        DropReason::AuthPassword,
        DropReason::AdvertInterval,
        DropReason::AddressList,
        DropReason::OwnAddress,
    ];

    /// Short stable name used in logs, JSON and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::IpHeader => "ip_header",
            DropReason::Ttl => "ttl",
            DropReason::TooShort => "too_short",
            DropReason::Version => "version",
            DropReason::Type => "type",
            DropReason::Length => "length",
            DropReason::Checksum => "checksum",
            DropReason::UnknownVrid => "unknown_vrid",
            DropReason::AuthType => "auth_type",
            DropReason::AuthPassword => "auth_password",
            DropReason::AdvertInterval => "advert_interval",
            DropReason::AddressList => "address_list",
            DropReason::OwnAddress => "own_address",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&DecodeError> for DropReason {
    fn from(error: &DecodeError) -> Self {
        match error {
            DecodeError::TooShort { .. } => DropReason::TooShort,
            DecodeError::Version(_) => DropReason::Version,
            DecodeError::Type(_) => DropReason::Type,
            DecodeError::Length { .. } => DropReason::Length,
            DecodeError::Checksum { .. } => DropReason::Checksum,
            DecodeError::IpHeader(_) | DecodeError::IpProtocol(_) => DropReason::IpHeader,
        }
    }
}

/// One counter per [`DropReason`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    pub fn record(&mut self, reason: DropReason) {
        self.0[reason.index()] += 1;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Reasons with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.into_iter().map(|r| (r, self.get(r))).filter(|&(_, n)| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_in_index_order() {
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
    }

    #[test]
    fn counts_per_reason() {
        let mut c = DropCounters::default();
        c.record(DropReason::Ttl);
        c.record(DropReason::Ttl);
        c.record(DropReason::Checksum);
        assert_eq!((c.get(DropReason::Ttl), c.get(DropReason::Checksum), c.total()), (2, 1, 3));
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![(DropReason::Ttl, 2), (DropReason::Checksum, 1)]);
    }
}
