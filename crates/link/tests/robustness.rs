//! Misbehaving clients do not hurt the listener; the signer reconnects with backoff.

mod common;

use std::time::Duration;

use common::{paired_signer, pinned, send_raw, Node, WAIT};
use micronode_link::{
    Admission, Backoff, ConnectMode, LinkConnector, LinkError, LinkIdentity, LinkListener,
    ListenerConfig, PairingStore, DEFAULT_PAIRING_TTL,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn garbage_clients_do_not_break_the_listener() {
    let node = Node::start().await;
    let signer = paired_signer(&node).await;
    let _code = node.store.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();

    let random: Vec<u8> = (0..4096).map(|_| rand::random::<u8>()).collect();
    let mut pinned_junk = b"MNLK\x01\x01".to_vec();
    pinned_junk.extend_from_slice(&random);
    let mut pairing_junk = b"MNLK\x01\x02".to_vec();
    pairing_junk.extend_from_slice(&random);
    let mut huge_len = b"MNLK\x01\x01\xff\xff".to_vec();
    huge_len.extend_from_slice(&[0u8; 100]);
    let mut short_msg = b"MNLK\x01\x02\x00\x01".to_vec();
    short_msg.push(0);
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", random.clone()),
        ("http", b"GET / HTTP/1.1\r\nHost: node\r\n\r\n".to_vec()),
        ("bad mode", b"MNLK\x01\x07".to_vec()),
        ("pinned then junk", pinned_junk),
        ("pairing then junk", pairing_junk),
        ("oversized handshake message", huge_len),
        ("one-byte handshake message", short_msg),
        ("empty", Vec::new()),
        ("truncated preamble", b"MNL".to_vec()),
    ];
    for (what, bytes) in garbage {
        let _ = send_raw(node.addr(), &bytes).await;
        let e = node.next_rejection().await;
        assert!(
            matches!(
                e,
                LinkError::Protocol(_)
                    | LinkError::HandshakeFailed(_)
                    | LinkError::HandshakeRejected
                    | LinkError::VersionMismatch { .. }
            ),
            "{what}: {e:?}"
        );
    }
    assert!(node.store.pending_expiry().is_some());
    assert_eq!(node.store.paired_signer(), Some(signer.public_key()));

    // Good clients still get through.
    for _ in 0..3 {
        let (s, n) = node.dial(pinned(node.addr(), &signer, node.key())).await;
        let (mut s, _) = s.unwrap();
        let (mut n, _) = n.unwrap();
        s.send(b"ok").await.unwrap();
        assert_eq!(n.recv().await.unwrap(), b"ok");
    }
}

#[tokio::test]
async fn a_silent_client_times_out_without_blocking_others() {
    let node = Node::start_with(ListenerConfig {
        handshake_timeout: Duration::from_secs(2),
        ..ListenerConfig::default()
    })
    .await;
    let signer = paired_signer(&node).await;

    let mut silent = TcpStream::connect(node.addr()).await.unwrap();
    silent.write_all(b"MN").await.unwrap();
    // A good client connects after the silent one and is accepted before the timeout.
    let started = tokio::time::Instant::now();
    let (s, n) = node.dial(pinned(node.addr(), &signer, node.key())).await;
    s.unwrap();
    n.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let e = node.next_rejection().await;
    assert!(matches!(e, LinkError::HandshakeTimeout), "{e:?}");
    drop(silent);
}

/// Anyone who can reach the node's signer port can open connections and never finish a
/// handshake. A flood of them must not lock the real signer out: the listener drops the oldest
/// pending handshake to make room, so the signer's gets through long before any of the
/// flood's would time out.
#[tokio::test]
async fn a_flood_of_idle_connections_does_not_lock_the_signer_out() {
    let node = Node::start_with(ListenerConfig {
        handshake_timeout: Duration::from_secs(60),
        max_pending_handshakes: 8,
        ..Default::default()
    })
    .await;
    let signer = paired_signer(&node).await;
    let mut flood = Vec::new();
    for _ in 0..64 {
        let mut idle = TcpStream::connect(node.addr()).await.unwrap();
        idle.write_all(b"MN").await.unwrap();
        flood.push(idle);
    }
    // The signer dials with its own 10 s handshake timeout, far below the flood's 60 s.
    let accepted = tokio::time::timeout(WAIT, async {
        loop {
            let (s, n) = node.dial(pinned(node.addr(), &signer, node.key())).await;
            if let (Ok(s), Ok(n)) = (s, n) {
                return (s, n);
            }
        }
    })
    .await
    .expect("the signer got through the flood");
    let ((mut s, _), (mut n, _)) = accepted;
    s.send(b"through").await.unwrap();
    assert_eq!(n.recv().await.unwrap(), b"through");
    drop(flood);
}

/// A listener with an allow-list closes a connection from elsewhere before any handshake,
/// even the paired signer's.
#[tokio::test]
async fn an_address_outside_the_allow_list_is_closed_at_once() {
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let node = Node::start_with(ListenerConfig {
        admit: Admission::only(move |ip| ip != loopback),
        ..Default::default()
    })
    .await;
    // A valid pairing code, which would pair from an allowed address.
    let code = node.store.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();
    let mut connector = LinkConnector::new(
        node.addr().to_string(),
        common::signer_identity(),
        ConnectMode::Pairing { code },
    );
    connector.handshake_timeout = Duration::from_secs(20);
    let r = connector.connect().await;
    assert!(
        !matches!(r, Ok(_) | Err(LinkError::HandshakeTimeout)),
        "closed, not answered nor left waiting: {r:?}"
    );
    node.assert_nothing_accepted(Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn a_signer_times_out_on_a_silent_node() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let conn = silent.accept().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(conn);
    });
    let mut connector = pinned(addr, &common::signer_identity(), [1; 32]);
    connector.handshake_timeout = Duration::from_millis(300);
    let r = connector.connect().await;
    assert!(matches!(r, Err(LinkError::HandshakeTimeout)), "{r:?}");
    holder.abort();
}

#[tokio::test]
async fn connect_with_backoff_waits_for_a_late_listener() {
    // Pair once, then take the node down and learn a free port to bring it back on.
    let node = Node::start().await;
    let signer = paired_signer(&node).await;
    let node_key = node.key();
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let connector = pinned(addr, &signer, node_key);
    let backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        max_attempts: None,
    };
    let dial = tokio::spawn(async move {
        connector
            .connect_with_backoff(&backoff, std::future::pending())
            .await
    });

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!dial.is_finished());
    let common::Node { dir, identity, .. } = node;
    let store = std::sync::Arc::new(PairingStore::open(dir.path()).unwrap());
    let listener = LinkListener::bind(addr, identity, store).await.unwrap();
    let (n_conn, n_peer) = tokio::time::timeout(WAIT, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let (mut s_conn, s_peer) = tokio::time::timeout(WAIT, dial)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(s_peer.remote_key, node_key);
    assert_eq!(n_peer.remote_key, signer.public_key());
    let mut n_conn = n_conn;
    s_conn.send(b"back").await.unwrap();
    assert_eq!(n_conn.recv().await.unwrap(), b"back");
}

#[tokio::test]
async fn connect_with_backoff_can_be_cancelled_or_give_up() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let signer = std::sync::Arc::new(LinkIdentity::generate().unwrap());
    let connector = pinned(addr, &signer, [2; 32]);
    let backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(50),
        max_attempts: None,
    };
    let started = tokio::time::Instant::now();
    let r = connector
        .connect_with_backoff(&backoff, tokio::time::sleep(Duration::from_millis(300)))
        .await;
    assert!(matches!(r, Err(LinkError::Cancelled)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let limited = Backoff {
        max_attempts: Some(3),
        ..backoff
    };
    let r = connector
        .connect_with_backoff(&limited, std::future::pending())
        .await;
    assert!(matches!(r, Err(LinkError::Io(_))), "{r:?}");
}

#[tokio::test]
async fn dropping_the_listener_frees_the_port_and_ends_handshakes() {
    let node = Node::start().await;
    let addr = node.addr();
    let mut pending = TcpStream::connect(addr).await.unwrap();
    pending.write_all(b"MNLK").await.unwrap();
    drop(node);
    // The in-progress handshake is dropped with the listener, closing the connection.
    let mut buf = [0u8; 1];
    let r = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut pending, &mut buf))
        .await
        .unwrap();
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
}
