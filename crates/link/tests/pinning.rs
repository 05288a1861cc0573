//! Pinned (KK) links refuse any other key, on both sides, and cannot be downgraded.

mod common;

use common::{paired_signer, pinned, proxy, send_raw, signer_identity, Node};
use micronode_link::{LinkError, DEFAULT_PAIRING_TTL, PROTOCOL_VERSION};

#[tokio::test]
async fn signer_with_another_key_is_rejected_on_both_sides() {
    let node = Node::start().await;
    let _paired = paired_signer(&node).await;
    let stranger = signer_identity();
    let (s, n) = node.dial(pinned(node.addr(), &stranger, node.key())).await;
    assert!(matches!(s, Err(LinkError::HandshakeRejected)), "{s:?}");
    assert!(matches!(n, Err(LinkError::HandshakeFailed(_))), "{n:?}");
}

#[tokio::test]
async fn node_with_another_key_is_rejected_on_both_sides() {
    let node = Node::start().await;
    let signer = paired_signer(&node).await;

    // An impostor node with its own key, which even knows (pins) the signer's public key.
    let impostor = Node::start().await;
    impostor.store.pin_signer(signer.public_key()).unwrap();
    let (s, n) = impostor
        .dial(pinned(impostor.addr(), &signer, node.key()))
        .await;
    assert!(matches!(s, Err(LinkError::HandshakeRejected)), "{s:?}");
    assert!(matches!(n, Err(LinkError::HandshakeFailed(_))), "{n:?}");

    // The real node, but the signer pinned some other node key.
    let (s, n) = node
        .dial(pinned(node.addr(), &signer, impostor.key()))
        .await;
    assert!(matches!(s, Err(LinkError::HandshakeRejected)), "{s:?}");
    assert!(matches!(n, Err(LinkError::HandshakeFailed(_))), "{n:?}");

    // And the right pins still work.
    let (s, n) = node.dial(pinned(node.addr(), &signer, node.key())).await;
    s.unwrap();
    n.unwrap();
}

#[tokio::test]
async fn pinned_attempt_before_pairing_is_rejected() {
    let node = Node::start().await;
    let signer = signer_identity();
    let (s, n) = node.dial(pinned(node.addr(), &signer, node.key())).await;
    assert!(matches!(s, Err(LinkError::HandshakeRejected)), "{s:?}");
    assert!(matches!(n, Err(LinkError::NotPaired)), "{n:?}");
}

/// Flipping the cleartext mode byte of a pinned attempt to "pairing" (while a code is
/// pending) does not get an unauthenticated pairing: the mode is bound into the prologue.
#[tokio::test]
async fn tampering_with_the_mode_byte_fails_the_handshake() {
    let node = Node::start().await;
    let signer = paired_signer(&node).await;
    let _code = node.store.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();

    // The proxy forwards frames; rewrite the preamble by replaying the connection raw.
    let (paddr, rec) = proxy(node.addr(), Box::new(|_, f| vec![f])).await;
    let (s, n) = node.dial(pinned(paddr, &signer, node.key())).await;
    s.unwrap();
    n.unwrap();
    let mut bytes = rec.to_node();
    assert_eq!(&bytes[..4], b"MNLK");
    bytes[5] = 2; // pinned -> pairing
    let _ = send_raw(node.addr(), &bytes).await;
    let e = node.next_rejection().await;
    assert!(matches!(e, LinkError::HandshakeFailed(_)), "{e:?}");
    assert!(
        node.store.pending_expiry().is_some(),
        "the code was not consumed"
    );
    assert_eq!(node.store.paired_signer(), Some(signer.public_key()));
}

#[tokio::test]
async fn other_protocol_versions_are_refused() {
    let node = Node::start().await;
    let mut preamble = b"MNLK".to_vec();
    preamble.push(PROTOCOL_VERSION + 1);
    preamble.push(1);
    let _ = send_raw(node.addr(), &preamble).await;
    let e = node.next_rejection().await;
    assert!(
        matches!(e, LinkError::VersionMismatch { ours: PROTOCOL_VERSION, theirs } if theirs == PROTOCOL_VERSION + 1),
        "{e:?}"
    );
}
