//! Message framing: large messages, limits, split halves, cancellation.

mod common;

use std::time::Duration;

use common::{paired_signer, pinned, Node};
use micronode_link::{LinkConnection, LinkError, MAX_MESSAGE_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn linked(node: &Node) -> (LinkConnection, LinkConnection) {
    linked_via(node, node.addr()).await
}

async fn linked_via(node: &Node, addr: std::net::SocketAddr) -> (LinkConnection, LinkConnection) {
    let signer = paired_signer(node).await;
    let (s, n) = node.dial(pinned(addr, &signer, node.key())).await;
    (s.unwrap().0, n.unwrap().0)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn one_mebibyte_round_trip() {
    let node = Node::start().await;
    let (mut s, mut n) = linked(&node).await;
    let big = pattern(1024 * 1024, 7);
    let (sent, got) = tokio::join!(s.send(&big), n.recv());
    sent.unwrap();
    assert_eq!(got.unwrap(), big);
    let reply = pattern(1024 * 1024 + 3, 9);
    let (sent, got) = tokio::join!(n.send(&reply), s.recv());
    sent.unwrap();
    assert_eq!(got.unwrap(), reply);
}

#[tokio::test]
async fn sizes_around_chunk_boundaries_and_the_limit() {
    let node = Node::start().await;
    let (mut s, mut n) = linked(&node).await;
    let chunk = 65535 - 16;
    let sizes = [
        0,
        1,
        chunk - 6,
        chunk - 5,
        chunk - 4,
        chunk,
        chunk + 1,
        2 * chunk - 5,
        2 * chunk - 4,
        MAX_MESSAGE_LEN,
    ];
    for (i, len) in sizes.into_iter().enumerate() {
        let msg = pattern(len, i as u8);
        let (sent, got) = tokio::join!(s.send(&msg), n.recv());
        sent.unwrap();
        assert_eq!(got.unwrap(), msg, "size {len}");
    }
}

#[tokio::test]
async fn oversize_messages_are_refused() {
    let node = Node::start().await;
    let (mut s, mut n) = linked(&node).await;

    // Refused before anything is written; the link stays usable.
    let too_big = vec![0u8; MAX_MESSAGE_LEN + 1];
    let e = s.send(&too_big).await.unwrap_err();
    assert!(
        matches!(e, LinkError::MessageTooLarge { len, max } if len == MAX_MESSAGE_LEN + 1 && max == MAX_MESSAGE_LEN),
        "{e:?}"
    );
    s.send(b"still fine").await.unwrap();
    assert_eq!(n.recv().await.unwrap(), b"still fine");

    // A receiver with a lower limit rejects a larger announced message and closes.
    n.set_max_message_len(1024);
    let (sent, got) = tokio::join!(s.send(&[1u8; 2048]), n.recv());
    sent.unwrap();
    assert!(
        matches!(
            got,
            Err(LinkError::MessageTooLarge {
                len: 2048,
                max: 1024
            })
        ),
        "{got:?}"
    );
    let r = tokio::time::timeout(common::WAIT, s.recv()).await.unwrap();
    assert!(matches!(r, Err(LinkError::Closed)), "{r:?}");
}

#[tokio::test]
async fn split_halves_work_from_separate_tasks() {
    let node = Node::start().await;
    let (s, n) = linked(&node).await;
    let (mut s_read, mut s_write) = s.into_split();
    let (mut n_read, mut n_write) = n.into_split();
    const COUNT: usize = 200;
    let node_sender = tokio::spawn(async move {
        for i in 0..COUNT {
            n_write.send(&pattern(i * 97, i as u8)).await.unwrap();
        }
    });
    let signer_sender = tokio::spawn(async move {
        for i in 0..COUNT {
            s_write.send(&pattern(i * 89, i as u8)).await.unwrap();
        }
    });
    let signer_reader = tokio::spawn(async move {
        for i in 0..COUNT {
            assert_eq!(s_read.recv().await.unwrap(), pattern(i * 97, i as u8));
        }
    });
    for i in 0..COUNT {
        assert_eq!(n_read.recv().await.unwrap(), pattern(i * 89, i as u8));
    }
    node_sender.await.unwrap();
    signer_sender.await.unwrap();
    signer_reader.await.unwrap();
}

/// A proxy that forwards the node->signer direction in small pieces with pauses, so the
/// signer's `recv` is often mid-frame when its timeout cancels it.
async fn trickle_proxy(target: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
        });
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            for piece in buf[..n].chunks(4096) {
                if cw.write_all(piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let node = Node::start().await;
    let paddr = trickle_proxy(node.addr()).await;
    let (mut s, mut n) = linked_via(&node, paddr).await;
    let messages: Vec<Vec<u8>> = (0..4).map(|i| pattern(150_000 + i, i as u8)).collect();
    let to_send = messages.clone();
    let sender = tokio::spawn(async move {
        for m in &to_send {
            n.send(m).await.unwrap();
        }
        n
    });
    let mut cancelled = 0;
    for expected in &messages {
        loop {
            match tokio::time::timeout(Duration::from_millis(3), s.recv()).await {
                Ok(got) => {
                    assert_eq!(&got.unwrap(), expected);
                    break;
                }
                Err(_) => cancelled += 1,
            }
        }
    }
    assert!(cancelled > 0, "the test never cancelled a recv");
    let _n = sender.await.unwrap();
}
