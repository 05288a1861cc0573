//! Stream ids: 64 bytes, shown in logs and `Debug` output only as a short prefix.

use std::fmt;

use crate::error::RelayError;

/// A mailbox stream id: exactly 64 bytes (LNC derives it with SHA-512).
///
/// Whoever knows a stream id can read the stream, so `Debug` and `Display` show only the
/// first 4 bytes in hex (8 characters), which is also all the relay logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId([u8; StreamId::LEN]);

impl StreamId {
    /// The length of a stream id in bytes.
    pub const LEN: usize = 64;

    /// A stream id from its bytes.
    pub const fn new(bytes: [u8; StreamId::LEN]) -> StreamId {
        StreamId(bytes)
    }

    /// A stream id from a slice, which must be exactly [`StreamId::LEN`] bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<StreamId, RelayError> {
        <[u8; StreamId::LEN]>::try_from(bytes)
            .map(StreamId)
            .map_err(|_| {
                RelayError::InvalidArgument(format!(
                    "a stream id is {} bytes, not {}",
                    StreamId::LEN,
                    bytes.len()
                ))
            })
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; StreamId::LEN] {
        &self.0
    }

    /// The first 4 bytes in hex: what logs show.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl From<[u8; StreamId::LEN]> for StreamId {
    fn from(bytes: [u8; StreamId::LEN]) -> StreamId {
        StreamId(bytes)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({}…)", self.short())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_prefix_is_shown() {
        let mut bytes = [0xabu8; 64];
        bytes[0] = 0x01;
        let id = StreamId::new(bytes);
        assert_eq!(format!("{id}"), "01ababab…");
        assert_eq!(format!("{id:?}"), "StreamId(01ababab…)");
        assert!(StreamId::from_slice(&[0u8; 63]).is_err());
        assert_eq!(StreamId::from_slice(&bytes).ok(), Some(id));
    }
}
