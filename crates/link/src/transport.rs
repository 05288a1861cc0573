//! The encrypted, framed duplex connection after the handshake.
//!
//! Every Noise transport message goes on the wire as a `u16` big-endian length followed by
//! that many bytes of ciphertext (at most 65535). An application message is split into
//! chunks, one Noise message each; the first chunk's plaintext starts with a 5-byte header
//! (`kind: u8`, `total_len: u32` big-endian), the following chunks carry only payload. The
//! nonce of each direction is an implicit counter starting at 0, so a replayed, dropped or
//! reordered frame fails to decrypt.

use std::sync::Arc;

use snow::StatelessTransportState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::error::{LinkError, Result};
use crate::handshake::PeerInfo;

/// The largest application message [`LinkConnection::send`] accepts and `recv` returns
/// (4 MiB), unless lowered with `set_max_message_len`.
pub const MAX_MESSAGE_LEN: usize = 4 * 1024 * 1024;

/// The largest Noise message.
pub(crate) const MAX_NOISE_MSG: usize = 65535;
const TAG_LEN: usize = 16;
const MAX_CHUNK_PLAINTEXT: usize = MAX_NOISE_MSG - TAG_LEN;
const HEADER_LEN: usize = 5;
const READ_CHUNK: usize = 64 * 1024;

/// Frame kind of an application message.
pub(crate) const KIND_DATA: u8 = 1;
/// Frame kind of the key confirmation both sides send first.
pub(crate) const KIND_CONFIRM: u8 = 2;

/// An established link: send and receive whole messages.
///
/// Neither side's messages are ordered with respect to the other's; each direction is an
/// ordered, reliable stream of messages. Use [`LinkConnection::into_split`] to read and
/// write from two tasks.
#[derive(Debug)]
pub struct LinkConnection {
    reader: LinkReader,
    writer: LinkWriter,
    peer: PeerInfo,
}

/// The receiving half of a [`LinkConnection`].
///
/// Unlike [`LinkConnection::recv`], an error here cannot shut down the other half: drop
/// both halves (or call [`LinkWriter::shutdown`]) to close the link after an error.
pub struct LinkReader {
    stream: OwnedReadHalf,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    broken: bool,
    max_message_len: usize,
    /// Bytes read from the socket but not yet decrypted.
    buf: Vec<u8>,
    /// A message whose first chunks have arrived.
    partial: Option<Partial>,
}

struct Partial {
    kind: u8,
    total: usize,
    data: Vec<u8>,
}

/// The sending half of a [`LinkConnection`].
pub struct LinkWriter {
    stream: OwnedWriteHalf,
    transport: Arc<StatelessTransportState>,
    nonce: u64,
    broken: bool,
    max_message_len: usize,
}

impl LinkConnection {
    pub(crate) fn new(
        stream: TcpStream,
        transport: StatelessTransportState,
        peer: PeerInfo,
    ) -> Self {
        let transport = Arc::new(transport);
        let (read, write) = stream.into_split();
        Self {
            reader: LinkReader {
                stream: read,
                transport: transport.clone(),
                nonce: 0,
                broken: false,
                max_message_len: MAX_MESSAGE_LEN,
                buf: Vec::new(),
                partial: None,
            },
            writer: LinkWriter {
                stream: write,
                transport,
                nonce: 0,
                broken: false,
                max_message_len: MAX_MESSAGE_LEN,
            },
            peer,
        }
    }

    /// Who is on the other end.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// Sends one message (at most the configured limit, [`MAX_MESSAGE_LEN`] by default).
    ///
    /// Not cancel-safe: if the future is dropped part-way, the connection is broken.
    pub async fn send(&mut self, message: &[u8]) -> Result<()> {
        self.writer.send(message).await
    }

    /// Receives the next message. Cancel-safe: a dropped call loses nothing.
    ///
    /// A frame that fails to decrypt (tampered, replayed or reordered) or breaks the framing
    /// ends the connection: the error is returned, our side of the TCP connection is shut
    /// down, and later calls return [`LinkError::Broken`].
    pub async fn recv(&mut self) -> Result<Vec<u8>> {
        match self.reader.recv().await {
            Ok(message) => Ok(message),
            Err(e) => {
                if !matches!(e, LinkError::Broken) {
                    let _ = self.writer.shutdown().await;
                    self.writer.broken = true;
                }
                Err(e)
            }
        }
    }

    /// Lowers (or restores) the message size limit for both directions; values above
    /// [`MAX_MESSAGE_LEN`] are capped.
    pub fn set_max_message_len(&mut self, len: usize) {
        self.reader.set_max_message_len(len);
        self.writer.set_max_message_len(len);
    }

    /// Closes the sending direction; the peer's `recv` returns [`LinkError::Closed`].
    pub async fn shutdown(&mut self) -> Result<()> {
        self.writer.shutdown().await
    }

    /// Splits into halves that can be used from two tasks. Each half keeps its own nonce.
    pub fn into_split(self) -> (LinkReader, LinkWriter) {
        (self.reader, self.writer)
    }

    pub(crate) fn halves(&mut self) -> (&mut LinkReader, &mut LinkWriter) {
        (&mut self.reader, &mut self.writer)
    }
}

impl LinkWriter {
    /// Sends one message. See [`LinkConnection::send`].
    pub async fn send(&mut self, message: &[u8]) -> Result<()> {
        self.send_kind(KIND_DATA, message).await
    }

    /// Lowers (or restores) the size limit for messages sent; capped at [`MAX_MESSAGE_LEN`].
    pub fn set_max_message_len(&mut self, len: usize) {
        self.max_message_len = len.min(MAX_MESSAGE_LEN);
    }

    /// Closes the sending direction.
    pub async fn shutdown(&mut self) -> Result<()> {
        self.broken = true;
        self.stream.shutdown().await?;
        Ok(())
    }

    pub(crate) async fn send_kind(&mut self, kind: u8, message: &[u8]) -> Result<()> {
        if self.broken {
            return Err(LinkError::Broken);
        }
        if message.len() > self.max_message_len {
            return Err(LinkError::MessageTooLarge {
                len: message.len(),
                max: self.max_message_len,
            });
        }
        // Until the whole message is on the wire, the connection counts as broken: a send
        // that fails or is cancelled part-way leaves the peer mid-message.
        self.broken = true;
        let wire = self.seal(kind, message)?;
        self.stream.write_all(&wire).await?;
        self.broken = false;
        Ok(())
    }

    /// Encrypts `message` into wire frames, advancing the nonce once per chunk.
    fn seal(&mut self, kind: u8, message: &[u8]) -> Result<Vec<u8>> {
        let total = u32::try_from(message.len()).map_err(|_| LinkError::MessageTooLarge {
            len: message.len(),
            max: self.max_message_len,
        })?;
        let chunks = (message.len() + HEADER_LEN)
            .div_ceil(MAX_CHUNK_PLAINTEXT)
            .max(1);
        let mut wire = Vec::with_capacity(message.len() + HEADER_LEN + chunks * (2 + TAG_LEN));
        let mut plain = Vec::with_capacity(MAX_CHUNK_PLAINTEXT.min(message.len() + HEADER_LEN));
        let mut rest = message;
        let mut first = true;
        while first || !rest.is_empty() {
            plain.clear();
            if first {
                plain.push(kind);
                plain.extend_from_slice(&total.to_be_bytes());
            }
            let take = rest.len().min(MAX_CHUNK_PLAINTEXT - plain.len());
            plain.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            first = false;

            let start = wire.len();
            let frame_len = plain.len() + TAG_LEN;
            let len16 =
                u16::try_from(frame_len).map_err(|_| LinkError::Protocol("frame too long"))?;
            wire.extend_from_slice(&len16.to_be_bytes());
            wire.resize(start + 2 + frame_len, 0);
            let written =
                self.transport
                    .write_message(self.nonce, &plain, &mut wire[start + 2..])?;
            if written != frame_len {
                return Err(LinkError::Protocol("unexpected ciphertext length"));
            }
            self.nonce = self.nonce.checked_add(1).ok_or(LinkError::Broken)?;
        }
        Ok(wire)
    }
}

impl LinkReader {
    /// Receives the next message. See [`LinkConnection::recv`].
    pub async fn recv(&mut self) -> Result<Vec<u8>> {
        match self.recv_kind().await? {
            (KIND_DATA, message) => Ok(message),
            _ => {
                self.broken = true;
                Err(LinkError::Protocol("unexpected frame kind"))
            }
        }
    }

    /// Lowers (or restores) the size limit for messages received; capped at
    /// [`MAX_MESSAGE_LEN`].
    pub fn set_max_message_len(&mut self, len: usize) {
        self.max_message_len = len.min(MAX_MESSAGE_LEN);
    }

    pub(crate) async fn recv_kind(&mut self) -> Result<(u8, Vec<u8>)> {
        if self.broken {
            return Err(LinkError::Broken);
        }
        let result = self.recv_inner().await;
        if result.is_err() {
            self.broken = true;
            self.buf = Vec::new();
            self.partial = None;
        }
        result
    }

    /// Cancel-safe: the only await point is `read_buf`, which either appends to `self.buf`
    /// or does nothing; all other state changes happen synchronously.
    async fn recv_inner(&mut self) -> Result<(u8, Vec<u8>)> {
        loop {
            while let Some(frame_len) = self.buffered_frame_len() {
                let mut plain = vec![0u8; frame_len];
                let n = self
                    .transport
                    .read_message(self.nonce, &self.buf[2..2 + frame_len], &mut plain)
                    .map_err(|_| LinkError::Decrypt)?;
                self.nonce = self.nonce.checked_add(1).ok_or(LinkError::Broken)?;
                self.buf.drain(..2 + frame_len);
                plain.truncate(n);
                if let Some(message) = self.absorb(plain)? {
                    return Ok(message);
                }
            }
            self.buf.reserve(READ_CHUNK);
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(if self.buf.is_empty() && self.partial.is_none() {
                    LinkError::Closed
                } else {
                    LinkError::Protocol("connection closed in the middle of a message")
                });
            }
        }
    }

    /// The length of the first frame if it is completely buffered.
    fn buffered_frame_len(&self) -> Option<usize> {
        let len = usize::from(u16::from_be_bytes([*self.buf.first()?, *self.buf.get(1)?]));
        (self.buf.len() >= 2 + len).then_some(len)
    }

    /// Adds one decrypted chunk; returns the message once it is complete.
    fn absorb(&mut self, plain: Vec<u8>) -> Result<Option<(u8, Vec<u8>)>> {
        let Some(mut partial) = self.partial.take() else {
            let header = plain
                .get(..HEADER_LEN)
                .ok_or(LinkError::Protocol("frame shorter than its header"))?;
            let kind = header[0];
            let total = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            let total = usize::try_from(total).map_err(|_| LinkError::Protocol("length"))?;
            if total > self.max_message_len {
                return Err(LinkError::MessageTooLarge {
                    len: total,
                    max: self.max_message_len,
                });
            }
            let body = &plain[HEADER_LEN..];
            if body.len() > total {
                return Err(LinkError::Protocol("frame longer than its message"));
            }
            if body.len() == total {
                return Ok(Some((kind, body.to_vec())));
            }
            let mut data = Vec::with_capacity(total);
            data.extend_from_slice(body);
            self.partial = Some(Partial { kind, total, data });
            return Ok(None);
        };
        if plain.is_empty() || partial.data.len() + plain.len() > partial.total {
            return Err(LinkError::Protocol("continuation frame of the wrong size"));
        }
        partial.data.extend_from_slice(&plain);
        if partial.data.len() == partial.total {
            return Ok(Some((partial.kind, partial.data)));
        }
        self.partial = Some(partial);
        Ok(None)
    }
}

impl std::fmt::Debug for LinkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkReader")
            .field("nonce", &self.nonce)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LinkWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWriter")
            .field("nonce", &self.nonce)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}
