//! The Noise handshakes (KK for pinned peers, XXpsk3 for pairing) and key confirmation.

use std::net::SocketAddr;
use std::time::Duration;

use snow::{Builder, HandshakeState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::connector::ConnectMode;
use crate::error::{LinkError, Result};
use crate::identity::{LinkIdentity, KEY_LEN};
use crate::pairing::PairingStore;
use crate::transport::{LinkConnection, KIND_CONFIRM};

/// Noise parameters of a link between pinned peers.
pub(crate) const KK_PARAMS: &str = "Noise_KK_25519_ChaChaPoly_SHA256";
/// Noise parameters of a pairing link.
pub(crate) const PAIRING_PARAMS: &str = "Noise_XXpsk3_25519_ChaChaPoly_SHA256";

/// The link protocol version, sent in the preamble and bound into the Noise prologue.
pub const PROTOCOL_VERSION: u8 = 1;
/// How long a handshake may take, from TCP connect to key confirmation, by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const MAGIC: [u8; 4] = *b"MNLK";
const PREAMBLE_LEN: usize = 6;
const PROLOGUE_LABEL: &[u8] = b"micronode-link/1";
const MODE_PINNED: u8 = 1;
const MODE_PAIRING: u8 = 2;
/// Our handshake messages are under 100 bytes; anything much longer is not ours.
const MAX_HANDSHAKE_MSG: usize = 1024;
const CONFIRM_BODY: &[u8] = b"micronode-link/1 key confirmation";

/// How a link was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// `Noise_KK`: both static keys were pinned beforehand.
    Pinned,
    /// `Noise_XXpsk3` with a one-time pairing code: the peer's key is now pinned (on the
    /// node by the [`PairingStore`]; on the signer the caller must store it).
    Paired,
}

/// Who is on the other end of an established link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's authenticated static public key.
    pub remote_key: [u8; KEY_LEN],
    /// The peer's socket address.
    pub remote_addr: SocketAddr,
    /// Whether this link was a pairing or a pinned connection.
    pub kind: HandshakeKind,
    /// The Noise handshake hash: unique per session, the same on both sides (usable for
    /// channel binding).
    pub handshake_hash: [u8; 32],
}

impl PeerInfo {
    /// The fingerprint of the peer's key (see [`crate::fingerprint`]).
    pub fn fingerprint(&self) -> String {
        crate::fingerprint(&self.remote_key)
    }
}

fn preamble(mode: u8) -> [u8; PREAMBLE_LEN] {
    [
        MAGIC[0],
        MAGIC[1],
        MAGIC[2],
        MAGIC[3],
        PROTOCOL_VERSION,
        mode,
    ]
}

/// The prologue binds the protocol label and the cleartext preamble (version and mode)
/// into the handshake: altering either makes the handshake fail.
fn prologue(preamble: &[u8; PREAMBLE_LEN]) -> Vec<u8> {
    let mut p = PROLOGUE_LABEL.to_vec();
    p.extend_from_slice(preamble);
    p
}

fn eof_is_rejection(e: std::io::Error) -> LinkError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe => LinkError::HandshakeRejected,
        _ => LinkError::Io(e),
    }
}

/// Appends one length-prefixed handshake message to `out`.
fn write_handshake(hs: &mut HandshakeState, out: &mut Vec<u8>) -> Result<()> {
    let mut buf = [0u8; MAX_HANDSHAKE_MSG];
    let n = hs.write_message(&[], &mut buf)?;
    let len = u16::try_from(n).map_err(|_| LinkError::Protocol("handshake message too long"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&buf[..n]);
    Ok(())
}

async fn send_handshake(stream: &mut TcpStream, hs: &mut HandshakeState) -> Result<()> {
    let mut out = Vec::new();
    write_handshake(hs, &mut out)?;
    stream.write_all(&out).await.map_err(eof_is_rejection)
}

/// Reads one length-prefixed handshake message and feeds it to `hs`.
async fn recv_handshake(
    stream: &mut TcpStream,
    hs: &mut HandshakeState,
    on_fail: LinkError,
) -> Result<()> {
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .await
        .map_err(eof_is_rejection)?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > MAX_HANDSHAKE_MSG {
        return Err(LinkError::Protocol("handshake message too long"));
    }
    let mut msg = vec![0u8; len];
    stream
        .read_exact(&mut msg)
        .await
        .map_err(eof_is_rejection)?;
    let mut payload = [0u8; MAX_HANDSHAKE_MSG];
    hs.read_message(&msg, &mut payload).map_err(|_| on_fail)?;
    Ok(())
}

fn finish(
    stream: TcpStream,
    hs: HandshakeState,
    remote_key: [u8; KEY_LEN],
    remote_addr: SocketAddr,
    kind: HandshakeKind,
) -> Result<LinkConnection> {
    let mut handshake_hash = [0u8; 32];
    let h = hs.get_handshake_hash();
    if h.len() != handshake_hash.len() {
        return Err(LinkError::Protocol("unexpected handshake hash length"));
    }
    handshake_hash.copy_from_slice(h);
    let transport = hs.into_stateless_transport_mode()?;
    let peer = PeerInfo {
        remote_key,
        remote_addr,
        kind,
        handshake_hash,
    };
    Ok(LinkConnection::new(stream, transport, peer))
}

fn remote_static(hs: &HandshakeState) -> Result<[u8; KEY_LEN]> {
    let rs = hs
        .get_remote_static()
        .ok_or(LinkError::Protocol("peer sent no static key"))?;
    <[u8; KEY_LEN]>::try_from(rs).map_err(|_| LinkError::Protocol("static key length"))
}

/// Both sides send a key confirmation as their first transport message and check the
/// peer's. The node's proves to a pairing signer that the node knew the code; the signer's
/// proves to the node that the signer holds the ephemeral key of this session, which a
/// replayed first handshake message cannot.
async fn confirm(conn: &mut LinkConnection) -> Result<()> {
    let (reader, writer) = conn.halves();
    writer
        .send_kind(KIND_CONFIRM, CONFIRM_BODY)
        .await
        .map_err(|e| match e {
            LinkError::Io(e) => eof_is_rejection(e),
            other => other,
        })?;
    match reader.recv_kind().await {
        Ok((KIND_CONFIRM, body)) if body == CONFIRM_BODY => Ok(()),
        Ok(_) => Err(LinkError::Protocol("expected a key confirmation")),
        Err(LinkError::Closed) => Err(LinkError::HandshakeRejected),
        Err(LinkError::Io(e)) => Err(eof_is_rejection(e)),
        Err(LinkError::Decrypt) => Err(LinkError::HandshakeFailed(
            "the peer's key confirmation did not authenticate (a replayed handshake?)",
        )),
        Err(e) => Err(e),
    }
}

/// Signer side: runs the handshake on a freshly connected stream.
pub(crate) async fn initiate(
    mut stream: TcpStream,
    identity: &LinkIdentity,
    mode: &ConnectMode,
) -> Result<LinkConnection> {
    let remote_addr = stream.peer_addr()?;
    let _ = stream.set_nodelay(true);
    let (mut conn, kind) = match mode {
        ConnectMode::Pinned { node_key } => {
            let pre = preamble(MODE_PINNED);
            let prologue = prologue(&pre);
            let mut hs = Builder::new(KK_PARAMS.parse()?)
                .local_private_key(identity.private_key())
                .remote_public_key(node_key)
                .prologue(&prologue)
                .build_initiator()?;
            let mut out = pre.to_vec();
            write_handshake(&mut hs, &mut out)?;
            stream.write_all(&out).await.map_err(eof_is_rejection)?;
            let fail = LinkError::HandshakeFailed(
                "the node's handshake did not authenticate (not the pinned node key, or a replay)",
            );
            recv_handshake(&mut stream, &mut hs, fail).await?;
            let conn = finish(stream, hs, *node_key, remote_addr, HandshakeKind::Pinned)?;
            (conn, HandshakeKind::Pinned)
        }
        ConnectMode::Pairing { code } => {
            let pre = preamble(MODE_PAIRING);
            let prologue = prologue(&pre);
            let psk = code.psk();
            let mut hs = Builder::new(PAIRING_PARAMS.parse()?)
                .local_private_key(identity.private_key())
                .psk(3, &psk[..])
                .prologue(&prologue)
                .build_initiator()?;
            let mut out = pre.to_vec();
            write_handshake(&mut hs, &mut out)?;
            stream.write_all(&out).await.map_err(eof_is_rejection)?;
            let fail = LinkError::HandshakeFailed(
                "the node's pairing handshake did not authenticate (a replay or tampering)",
            );
            recv_handshake(&mut stream, &mut hs, fail).await?;
            let node_key = remote_static(&hs)?;
            send_handshake(&mut stream, &mut hs).await?;
            let conn = finish(stream, hs, node_key, remote_addr, HandshakeKind::Paired)?;
            (conn, HandshakeKind::Paired)
        }
    };
    confirm(&mut conn).await?;
    tracing::debug!(node = %conn.peer().fingerprint(), ?kind, "link handshake complete");
    Ok(conn)
}

/// Node side: runs the handshake on a freshly accepted stream.
pub(crate) async fn respond(
    mut stream: TcpStream,
    remote_addr: SocketAddr,
    identity: &LinkIdentity,
    store: &PairingStore,
) -> Result<LinkConnection> {
    let _ = stream.set_nodelay(true);
    let mut pre = [0u8; PREAMBLE_LEN];
    stream
        .read_exact(&mut pre)
        .await
        .map_err(eof_is_rejection)?;
    if pre[..4] != MAGIC {
        return Err(LinkError::Protocol("not a micronode link client"));
    }
    if pre[4] != PROTOCOL_VERSION {
        return Err(LinkError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: pre[4],
        });
    }
    let prologue = prologue(&pre);
    let mut conn = match pre[5] {
        MODE_PINNED => {
            let signer = store.paired_signer().ok_or(LinkError::NotPaired)?;
            let mut hs = Builder::new(KK_PARAMS.parse()?)
                .local_private_key(identity.private_key())
                .remote_public_key(&signer)
                .prologue(&prologue)
                .build_responder()?;
            let fail = LinkError::HandshakeFailed(
                "the signer's handshake did not authenticate (not the paired signer's key, \
                 or it pinned another node key)",
            );
            recv_handshake(&mut stream, &mut hs, fail).await?;
            send_handshake(&mut stream, &mut hs).await?;
            finish(stream, hs, signer, remote_addr, HandshakeKind::Pinned)?
        }
        MODE_PAIRING => {
            let psk = store.pending_psk()?;
            let mut hs = Builder::new(PAIRING_PARAMS.parse()?)
                .local_private_key(identity.private_key())
                .psk(3, &psk[..])
                .prologue(&prologue)
                .build_responder()?;
            let malformed = LinkError::HandshakeFailed("malformed pairing handshake");
            recv_handshake(&mut stream, &mut hs, malformed).await?;
            send_handshake(&mut stream, &mut hs).await?;
            recv_handshake(&mut stream, &mut hs, LinkError::WrongPairingCode).await?;
            let signer = remote_static(&hs)?;
            // The signer proved it knows the code: pin it and consume the code, durably,
            // before confirming to the signer.
            store.complete_pairing(&psk, signer)?;
            tracing::info!(signer = %crate::fingerprint(&signer), "link paired a new signer");
            finish(stream, hs, signer, remote_addr, HandshakeKind::Paired)?
        }
        _ => return Err(LinkError::Protocol("unknown link mode")),
    };
    confirm(&mut conn).await?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, RngCore};

    /// Whatever bytes arrive, the Noise state machines return errors, never panic.
    #[test]
    fn random_handshake_messages_do_not_panic() {
        let node = LinkIdentity::generate().unwrap();
        let signer = LinkIdentity::generate().unwrap();
        let mut rng = rand::thread_rng();
        let prologue = prologue(&preamble(MODE_PINNED));
        for i in 0..2000 {
            let mut msg = vec![0u8; rng.gen_range(0..200)];
            rng.fill_bytes(&mut msg);
            let mut payload = [0u8; MAX_HANDSHAKE_MSG];
            let mut hs = if i % 2 == 0 {
                Builder::new(KK_PARAMS.parse().unwrap())
                    .local_private_key(node.private_key())
                    .remote_public_key(&signer.public_key())
                    .prologue(&prologue)
                    .build_responder()
                    .unwrap()
            } else {
                Builder::new(PAIRING_PARAMS.parse().unwrap())
                    .local_private_key(node.private_key())
                    .psk(3, &[7; 32])
                    .prologue(&prologue)
                    .build_responder()
                    .unwrap()
            };
            assert!(hs.read_message(&msg, &mut payload).is_err());
        }
    }
}
