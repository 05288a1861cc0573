//! Replayed handshakes and replayed, reordered or tampered transport frames are rejected.

mod common;

use std::time::Duration;

use common::{paired_signer, pinned, proxy, recording_proxy, send_raw, Node, WAIT};
use micronode_link::LinkError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Frame index of the first application message from the signer: 0 is the KK handshake
/// message, 1 the key confirmation.
const FIRST_DATA_FRAME: usize = 2;

#[tokio::test]
async fn replayed_signer_handshake_is_rejected_by_the_node() {
    let node = Node::start().await;
    let signer = paired_signer(&node).await;

    // A real session through a recording proxy.
    let (paddr, rec) = recording_proxy(node.addr()).await;
    let (s, n) = node.dial(pinned(paddr, &signer, node.key())).await;
    let (mut s_conn, _) = s.unwrap();
    let (mut n_conn, _) = n.unwrap();
    s_conn.send(b"sign this").await.unwrap();
    assert_eq!(n_conn.recv().await.unwrap(), b"sign this");
    drop((s_conn, n_conn));

    // Everything the signer sent, replayed raw on a new connection.
    let captured = rec.to_node();
    assert!(captured.len() > 6 + 2 + 48);
    let _ = send_raw(node.addr(), &captured).await;
    let e = node.next_rejection().await;
    assert!(matches!(e, LinkError::HandshakeFailed(_)), "{e:?}");
    node.assert_nothing_accepted(Duration::from_millis(500))
        .await;

    // Only the first handshake message, then silence: the node still never yields.
    let first = captured[..6 + 2 + 48].to_vec();
    let mut stream = tokio::net::TcpStream::connect(node.addr()).await.unwrap();
    stream.write_all(&first).await.unwrap();
    node.assert_nothing_accepted(Duration::from_millis(500))
        .await;
    drop(stream);
    let e = node.next_rejection().await;
    assert!(matches!(e, LinkError::HandshakeRejected), "{e:?}");
}

#[tokio::test]
async fn replayed_node_handshake_is_rejected_by_the_signer() {
    let node = Node::start().await;
    let signer = paired_signer(&node).await;
    let (paddr, rec) = recording_proxy(node.addr()).await;
    let (s, n) = node.dial(pinned(paddr, &signer, node.key())).await;
    let (mut s_conn, _) = s.unwrap();
    let (mut n_conn, _) = n.unwrap();
    n_conn.send(b"request").await.unwrap();
    assert_eq!(s_conn.recv().await.unwrap(), b"request");
    drop((s_conn, n_conn));
    let captured = rec.to_signer();

    // A fake node answers a new attempt with the recorded answer.
    let fake = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_addr = fake.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = fake.accept().await.unwrap();
        let mut hello = [0u8; 6 + 2 + 48];
        stream.read_exact(&mut hello).await.unwrap();
        stream.write_all(&captured).await.unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    });
    let s = tokio::time::timeout(WAIT, pinned(fake_addr, &signer, node.key()).connect())
        .await
        .unwrap();
    assert!(matches!(s, Err(LinkError::HandshakeFailed(_))), "{s:?}");
}

#[tokio::test]
async fn replayed_transport_frame_fails_and_closes_the_link() {
    let node = Node::start().await;
    let signer = paired_signer(&node).await;
    let edit = Box::new(|i, frame: Vec<u8>| {
        if i == FIRST_DATA_FRAME {
            vec![frame.clone(), frame]
        } else {
            vec![frame]
        }
    });
    let (paddr, _) = proxy(node.addr(), edit).await;
    let (s, n) = node.dial(pinned(paddr, &signer, node.key())).await;
    let (mut s_conn, _) = s.unwrap();
    let (mut n_conn, _) = n.unwrap();
    s_conn.send(b"pay 1000 sat").await.unwrap();
    assert_eq!(n_conn.recv().await.unwrap(), b"pay 1000 sat");
    assert!(matches!(n_conn.recv().await, Err(LinkError::Decrypt)));
    assert!(matches!(n_conn.recv().await, Err(LinkError::Broken)));
    assert!(matches!(n_conn.send(b"x").await, Err(LinkError::Broken)));
    // The node closed its side: the signer sees the link end.
    let r = tokio::time::timeout(WAIT, s_conn.recv()).await.unwrap();
    assert!(matches!(r, Err(LinkError::Closed)), "{r:?}");
}

#[tokio::test]
async fn reordered_transport_frames_fail() {
    let node = Node::start().await;
    let signer = paired_signer(&node).await;
    let mut held: Option<Vec<u8>> = None;
    let edit = Box::new(move |i, frame: Vec<u8>| {
        if i == FIRST_DATA_FRAME {
            held = Some(frame);
            vec![]
        } else if i == FIRST_DATA_FRAME + 1 {
            vec![frame, held.take().unwrap_or_default()]
        } else {
            vec![frame]
        }
    });
    let (paddr, _) = proxy(node.addr(), edit).await;
    let (s, n) = node.dial(pinned(paddr, &signer, node.key())).await;
    let (mut s_conn, _) = s.unwrap();
    let (mut n_conn, _) = n.unwrap();
    s_conn.send(b"first").await.unwrap();
    s_conn.send(b"second").await.unwrap();
    assert!(matches!(n_conn.recv().await, Err(LinkError::Decrypt)));
}

#[tokio::test]
async fn tampered_or_dropped_transport_frames_fail() {
    let node = Node::start().await;
    let signer = paired_signer(&node).await;
    for drop_frame in [false, true] {
        let edit = Box::new(move |i, mut frame: Vec<u8>| {
            if i != FIRST_DATA_FRAME {
                vec![frame]
            } else if drop_frame {
                vec![]
            } else {
                let last = frame.len() - 1;
                frame[last] ^= 1;
                vec![frame]
            }
        });
        let (paddr, _) = proxy(node.addr(), edit).await;
        let (s, n) = node.dial(pinned(paddr, &signer, node.key())).await;
        let (mut s_conn, _) = s.unwrap();
        let (mut n_conn, _) = n.unwrap();
        s_conn.send(b"one").await.unwrap();
        s_conn.send(b"two").await.unwrap();
        assert!(matches!(n_conn.recv().await, Err(LinkError::Decrypt)));
    }
}
