//! The encrypted channel after a handshake: one frame per message, an encrypted 2-byte length
//! (18 bytes) then the encrypted body, each advancing that direction's nonce.

use crate::cipher::{CipherState, MAC_LEN};
use crate::error::{LncError, Result};

/// The encrypted length header's size.
pub const HEADER_LEN: usize = 2 + MAC_LEN;
/// The largest message one frame carries.
pub const MAX_MESSAGE: usize = u16::MAX as usize;

/// Both directions' ciphers of one connection. A frame that fails to decrypt poisons it.
pub struct Transport {
    send: CipherState,
    recv: CipherState,
    broken: bool,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Transport {
    pub(crate) fn new(send: CipherState, recv: CipherState) -> Transport {
        Transport {
            send,
            recv,
            broken: false,
        }
    }

    /// Seals one message into one frame.
    pub fn encrypt(&mut self, message: &[u8]) -> Result<Vec<u8>> {
        if message.len() > MAX_MESSAGE {
            return Err(LncError::TooLong(message.len()));
        }
        let len = (message.len() as u16).to_be_bytes();
        let mut frame = self.send.encrypt(&[], &len)?;
        frame.extend(self.send.encrypt(&[], message)?);
        Ok(frame)
    }

    /// Opens one frame. Any failure (a replayed, reordered, truncated or forged frame) is
    /// final: the nonces no longer agree, so every later frame is refused too.
    pub fn decrypt(&mut self, frame: &[u8]) -> Result<Vec<u8>> {
        if self.broken {
            return Err(LncError::FrameAuth);
        }
        let result = self.open(frame);
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    fn open(&mut self, frame: &[u8]) -> Result<Vec<u8>> {
        if frame.len() < HEADER_LEN + MAC_LEN {
            return Err(LncError::Length {
                what: "a frame",
                got: frame.len(),
                expected: HEADER_LEN + MAC_LEN,
            });
        }
        let len = self
            .recv
            .decrypt(&[], &frame[..HEADER_LEN])
            .ok_or(LncError::FrameAuth)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let body = &frame[HEADER_LEN..];
        if body.len() != len + MAC_LEN {
            return Err(LncError::Length {
                what: "a frame's body",
                got: body.len(),
                expected: len + MAC_LEN,
            });
        }
        self.recv.decrypt(&[], body).ok_or(LncError::FrameAuth)
    }
}
