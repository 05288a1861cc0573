//! Mailbox stream ids: from the phrase before pairing, from the two static keys after it. The
//! node writes `sid` (server to client) and reads `sid` with byte 63 flipped (client to server).

use hmac::{Hmac, Mac};
use secp256k1::{PublicKey, SecretKey};
use sha2::{Digest, Sha256, Sha512};

use crate::keys::ecdh;
use crate::phrase::Phrase;

/// A stream id's length.
pub const SID_LEN: usize = 64;

/// The two streams of one session.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StreamIds {
    /// The node writes it, the client reads it.
    pub server_to_client: [u8; SID_LEN],
    /// The client writes it, the node reads it.
    pub client_to_server: [u8; SID_LEN],
}

impl std::fmt::Debug for StreamIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StreamIds({})", short(&self.server_to_client))
    }
}

impl StreamIds {
    /// Both streams from the server-to-client id (the other differs in its last bit).
    pub fn from_server_to_client(sid: [u8; SID_LEN]) -> StreamIds {
        let mut client_to_server = sid;
        client_to_server[SID_LEN - 1] ^= 0x01;
        StreamIds {
            server_to_client: sid,
            client_to_server,
        }
    }

    /// Before pairing: `SHA-512(entropy)`.
    pub fn from_phrase(phrase: &Phrase) -> StreamIds {
        StreamIds::from_server_to_client(Sha512::digest(phrase.entropy()).into())
    }

    /// After pairing: `SHA-512(HMAC-SHA256(key = ECDH(local, remote), "mailbox"))`; both sides
    /// get the same ids.
    pub fn from_static_keys(local: &SecretKey, remote: &PublicKey) -> StreamIds {
        let shared = ecdh(remote, local);
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&shared).expect("HMAC takes any key length");
        mac.update(b"mailbox");
        let entropy = mac.finalize().into_bytes();
        StreamIds::from_server_to_client(Sha512::digest(entropy).into())
    }
}

/// The first 8 hex characters of a stream id, for logs.
pub fn short(sid: &[u8]) -> String {
    sid.iter().take(4).map(|b| format!("{b:02x}")).collect()
}
