//! Pairing with a one-time code, then pinned (KK) reconnection.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{pinned, signer_identity, Node};
use micronode_link::{
    ConnectMode, HandshakeKind, LinkConnector, LinkError, LinkListener, PairingCode, PairingStore,
    DEFAULT_PAIRING_TTL,
};

#[tokio::test]
async fn pairing_then_pinned_reconnect() {
    let node = Node::start().await;
    let signer = signer_identity();

    // The tenant carries the code's human form to the signer.
    let code = node.store.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();
    let typed: PairingCode = code.reveal().to_lowercase().parse().unwrap();
    let connector = LinkConnector::new(
        node.addr().to_string(),
        signer.clone(),
        ConnectMode::Pairing { code: typed },
    );
    let (s, n) = node.dial(connector).await;
    let (mut s_conn, s_peer) = s.unwrap();
    let (mut n_conn, n_peer) = n.unwrap();
    assert_eq!(s_peer.remote_key, node.key());
    assert_eq!(n_peer.remote_key, signer.public_key());
    assert_eq!(s_peer.kind, HandshakeKind::Paired);
    assert_eq!(n_peer.kind, HandshakeKind::Paired);
    assert_eq!(s_peer.handshake_hash, n_peer.handshake_hash);
    assert_eq!(node.store.paired_signer(), Some(signer.public_key()));
    assert!(
        node.store.pending_expiry().is_none(),
        "the code is consumed"
    );

    n_conn.send(b"hello signer").await.unwrap();
    assert_eq!(s_conn.recv().await.unwrap(), b"hello signer");
    s_conn.send(b"hello node").await.unwrap();
    assert_eq!(n_conn.recv().await.unwrap(), b"hello node");
    drop((s_conn, n_conn));

    // The signer pins what it learned and reconnects with KK.
    let (s, n) = node
        .dial(pinned(node.addr(), &signer, s_peer.remote_key))
        .await;
    let (mut s_conn, s_peer2) = s.unwrap();
    let (mut n_conn, n_peer2) = n.unwrap();
    assert_eq!(s_peer2.kind, HandshakeKind::Pinned);
    assert_eq!(n_peer2.kind, HandshakeKind::Pinned);
    assert_eq!(s_peer2.remote_key, node.key());
    assert_eq!(n_peer2.remote_key, signer.public_key());
    assert_eq!(s_peer2.handshake_hash, n_peer2.handshake_hash);
    assert_ne!(s_peer2.handshake_hash, s_peer.handshake_hash);
    s_conn.send(b"ping").await.unwrap();
    assert_eq!(n_conn.recv().await.unwrap(), b"ping");
    n_conn.send(b"pong").await.unwrap();
    assert_eq!(s_conn.recv().await.unwrap(), b"pong");
    s_conn.shutdown().await.unwrap();
    assert!(matches!(n_conn.recv().await, Err(LinkError::Closed)));
}

#[tokio::test]
async fn pairing_survives_a_node_restart() {
    let node = Node::start().await;
    let signer = signer_identity();
    let ((_, s_peer), _) = node.pair(&signer).await;

    // A new process: identity and pairing state come back from disk.
    let Node { dir, listener, .. } = node;
    drop(listener);
    let identity =
        Arc::new(micronode_link::LinkIdentity::load(&dir.path().join("id.json")).unwrap());
    let store = Arc::new(PairingStore::open(dir.path()).unwrap());
    assert_eq!(store.paired_signer(), Some(signer.public_key()));
    let listener = LinkListener::bind("127.0.0.1:0", identity, store)
        .await
        .unwrap();
    let connector = pinned(listener.local_addr(), &signer, s_peer.remote_key);
    let (s, n) = tokio::join!(connector.connect(), listener.accept());
    assert_eq!(s.unwrap().1.kind, HandshakeKind::Pinned);
    assert_eq!(n.unwrap().1.remote_key, signer.public_key());
}

#[tokio::test]
async fn pairing_code_works_only_once() {
    let node = Node::start().await;
    let first = signer_identity();
    let code = node.store.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();
    let same_code = PairingCode::parse(&code.reveal()).unwrap();
    let connect = |signer, code| {
        LinkConnector::new(
            node.addr().to_string(),
            signer,
            ConnectMode::Pairing { code },
        )
    };
    let (s, n) = node.dial(connect(first.clone(), code)).await;
    s.unwrap();
    n.unwrap();

    // Someone else (or the same signer again) tries the used code.
    let second = signer_identity();
    let (s, n) = node.dial(connect(second, same_code.clone())).await;
    assert!(matches!(s, Err(LinkError::HandshakeRejected)), "{s:?}");
    assert!(matches!(n, Err(LinkError::NoPendingPairing)), "{n:?}");
    let (s, n) = node.dial(connect(first.clone(), same_code)).await;
    assert!(matches!(s, Err(LinkError::HandshakeRejected)), "{s:?}");
    assert!(matches!(n, Err(LinkError::NoPendingPairing)), "{n:?}");
    assert_eq!(node.store.paired_signer(), Some(first.public_key()));
}

#[tokio::test]
async fn wrong_pairing_code_is_rejected_on_both_sides() {
    let node = Node::start().await;
    let code = node.store.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();
    let signer = signer_identity();
    let wrong = LinkConnector::new(
        node.addr().to_string(),
        signer.clone(),
        ConnectMode::Pairing {
            code: PairingCode::generate(),
        },
    );
    let (s, n) = node.dial(wrong).await;
    assert!(matches!(s, Err(LinkError::HandshakeRejected)), "{s:?}");
    assert!(matches!(n, Err(LinkError::WrongPairingCode)), "{n:?}");
    assert_eq!(node.store.paired_signer(), None);

    // The right code still works afterwards.
    let right = LinkConnector::new(
        node.addr().to_string(),
        signer.clone(),
        ConnectMode::Pairing { code },
    );
    let (s, n) = node.dial(right).await;
    assert_eq!(s.unwrap().1.remote_key, node.key());
    assert_eq!(n.unwrap().1.remote_key, signer.public_key());
}

#[tokio::test]
async fn expired_or_cancelled_codes_are_rejected() {
    let node = Node::start().await;
    let signer = signer_identity();
    let code = node.store.new_pairing_code(Duration::from_secs(1)).unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let c = LinkConnector::new(
        node.addr().to_string(),
        signer.clone(),
        ConnectMode::Pairing { code },
    );
    let (s, n) = node.dial(c).await;
    assert!(matches!(s, Err(LinkError::HandshakeRejected)), "{s:?}");
    assert!(matches!(n, Err(LinkError::PairingCodeExpired)), "{n:?}");

    let code = node.store.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();
    node.store.cancel_pairing().unwrap();
    let c = LinkConnector::new(
        node.addr().to_string(),
        signer,
        ConnectMode::Pairing { code },
    );
    let (s, n) = node.dial(c).await;
    assert!(matches!(s, Err(LinkError::HandshakeRejected)), "{s:?}");
    assert!(matches!(n, Err(LinkError::NoPendingPairing)), "{n:?}");
    assert_eq!(node.store.paired_signer(), None);
}

#[tokio::test]
async fn re_pairing_replaces_the_pinned_signer() {
    let node = Node::start().await;
    let old = signer_identity();
    let _ = node.pair(&old).await;
    let new = signer_identity();
    let _ = node.pair(&new).await;
    assert_eq!(node.store.paired_signer(), Some(new.public_key()));
    let (s, n) = node.dial(pinned(node.addr(), &old, node.key())).await;
    assert!(matches!(s, Err(LinkError::HandshakeRejected)), "{s:?}");
    assert!(matches!(n, Err(LinkError::HandshakeFailed(_))), "{n:?}");
}
