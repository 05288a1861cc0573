//! Typed errors: unknown and duplicate streams, size and rate limits, too many streams.

mod common;

use common::{sid, start, within};
use micronode_relay::client::{create_stream, delete_stream, MailboxReceiver, MailboxSender};
use micronode_relay::{RelayConfig, RelayError};

#[tokio::test]
async fn unknown_streams_are_not_found() {
    let relay = start(RelayConfig::default()).await;
    let url = relay.url();
    let id = sid(10);
    match MailboxReceiver::connect(&url, &id).await {
        Err(RelayError::NotFound(message)) => assert!(message.contains("stream not found")),
        other => panic!("receive: {other:?}"),
    }
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    assert!(matches!(tx.send(b"x").await, Err(RelayError::NotFound(_))));
    assert!(matches!(
        delete_stream(&url, &id).await,
        Err(RelayError::NotFound(_))
    ));
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn creating_a_stream_twice_is_already_exists() {
    let relay = start(RelayConfig::default()).await;
    let url = relay.url();
    let id = sid(11);
    create_stream(&url, &id).await.unwrap();
    assert!(matches!(
        create_stream(&url, &id).await,
        Err(RelayError::AlreadyExists)
    ));
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn deleting_a_stream_ends_its_users_and_later_sends_are_not_found() {
    let relay = start(RelayConfig::default()).await;
    let url = relay.url();
    let id = sid(12);
    create_stream(&url, &id).await.unwrap();
    let mut rx = MailboxReceiver::connect(&url, &id).await.unwrap();
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    tx.send(b"before").await.unwrap();
    assert_eq!(within("recv", rx.recv()).await.unwrap(), b"before");

    delete_stream(&url, &id).await.unwrap();
    // The attached reader and writer are told the stream is gone.
    assert!(matches!(
        within("recv", rx.recv()).await,
        Err(RelayError::NotFound(_))
    ));
    assert!(matches!(
        within("send", tx.send(b"after")).await,
        Err(RelayError::NotFound(_) | RelayError::Closed)
    ));
    // A new writer is refused outright.
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    assert!(matches!(
        tx.send(b"after").await,
        Err(RelayError::NotFound(_))
    ));
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversize_messages_are_too_large() {
    let config = RelayConfig {
        max_message_bytes: 1024,
        ..RelayConfig::default()
    };
    let relay = start(config).await;
    let url = relay.url();
    let id = sid(13);
    create_stream(&url, &id).await.unwrap();
    let mut rx = MailboxReceiver::connect(&url, &id).await.unwrap();

    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    tx.send(&[1; 1024]).await.unwrap();
    // Just over: refused after decoding.
    match tx.send(&[2; 1025]).await {
        Err(RelayError::TooLarge(message)) => assert!(message.contains("1025")),
        other => panic!("{other:?}"),
    }
    // Far over: refused by the websocket frame limit before it is read.
    let mut tx = within("a new writer", async {
        loop {
            let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
            match tx.send(&[3; 10]).await {
                Ok(()) => break tx,
                Err(RelayError::Busy(_)) => tokio::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert!(matches!(
        tx.send(&vec![4; 256 * 1024]).await,
        Err(RelayError::TooLarge(_))
    ));

    // Only the messages within the limit arrived.
    assert_eq!(within("recv", rx.recv()).await.unwrap(), vec![1; 1024]);
    assert_eq!(within("recv", rx.recv()).await.unwrap(), vec![3; 10]);
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_burst_beyond_the_rate_limit_is_rate_limited() {
    // Three tokens, and the next one a thousand seconds away: far beyond the one second a
    // writer may wait for a token.
    let config = RelayConfig {
        burst: 3,
        rate_per_sec: 0.001,
        ..RelayConfig::default()
    };
    let relay = start(config).await;
    let url = relay.url();
    let id = sid(14);
    create_stream(&url, &id).await.unwrap();
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    for _ in 0..3 {
        tx.send(b"ok").await.unwrap();
    }
    assert!(matches!(
        tx.send(b"one too many").await,
        Err(RelayError::RateLimited(_))
    ));
    // The limit is the stream's: a new connection does not reset it.
    let refused = within("a new writer", async {
        loop {
            let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
            match tx.send(b"again").await {
                Err(RelayError::Busy(_)) => tokio::task::yield_now().await,
                other => break other,
            }
        }
    })
    .await;
    assert!(matches!(refused, Err(RelayError::RateLimited(_))));
    // Other streams have their own bucket.
    let other = sid(15);
    create_stream(&url, &other).await.unwrap();
    let mut tx = MailboxSender::connect(&url, &other).await.unwrap();
    tx.send(b"fine").await.unwrap();
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn too_many_streams_is_exhausted() {
    let config = RelayConfig {
        max_streams: 2,
        ..RelayConfig::default()
    };
    let relay = start(config).await;
    let url = relay.url();
    create_stream(&url, &sid(16)).await.unwrap();
    create_stream(&url, &sid(17)).await.unwrap();
    assert!(matches!(
        create_stream(&url, &sid(18)).await,
        Err(RelayError::Exhausted(_))
    ));
    delete_stream(&url, &sid(16)).await.unwrap();
    create_stream(&url, &sid(18)).await.unwrap();
    relay.shutdown().await.unwrap();
}
