//! Streams that expire or go idle, and a relay that restarts.

mod common;

use std::time::Duration;

use common::{sid, start, within};
use micronode_relay::client::{create_stream, MailboxReceiver, MailboxSender};
use micronode_relay::{RelayConfig, RelayError, RelayHandle};
use tokio::net::TcpListener;

#[tokio::test]
async fn an_expired_stream_is_deleted_and_its_reader_closed() {
    let config = RelayConfig {
        stream_ttl: Duration::from_secs(1),
        ..RelayConfig::default()
    };
    let relay = start(config).await;
    let url = relay.url();
    let id = sid(20);
    create_stream(&url, &id).await.unwrap();
    let mut rx = MailboxReceiver::connect(&url, &id).await.unwrap();
    // The reader is waiting when the stream expires: it is closed with NOT_FOUND.
    match within("the expiry", rx.recv()).await {
        Err(RelayError::NotFound(message)) => assert!(message.contains("expired"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(rx.recv().await, Err(RelayError::Closed)));
    assert_eq!(relay.relay().stream_count(), 0);
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    assert!(matches!(tx.send(b"x").await, Err(RelayError::NotFound(_))));
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_stream_is_deleted_but_one_in_use_is_not() {
    let config = RelayConfig {
        idle_timeout: Duration::from_secs(1),
        ..RelayConfig::default()
    };
    let relay = start(config).await;
    let url = relay.url();
    let idle = sid(21);
    let busy = sid(22);
    create_stream(&url, &idle).await.unwrap();
    create_stream(&url, &busy).await.unwrap();
    let mut rx = MailboxReceiver::connect(&url, &busy).await.unwrap();

    // Poll until the idle stream is gone (no duration is asserted).
    within("the idle stream's removal", async {
        while relay.relay().stream_count() == 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // The sweep that removed the idle stream kept the one with a reader.
    assert_eq!(relay.relay().stream_count(), 1);
    let mut tx = MailboxSender::connect(&url, &busy).await.unwrap();
    tx.send(b"still here").await.unwrap();
    assert_eq!(within("recv", rx.recv()).await.unwrap(), b"still here");
    assert!(matches!(
        MailboxReceiver::connect(&url, &idle).await,
        Err(RelayError::NotFound(_))
    ));
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn after_a_restart_old_clients_see_closed_and_recreated_streams_work() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = RelayHandle::start(listener, RelayConfig::default()).unwrap();
    let url = relay.url();
    let id = sid(23);
    create_stream(&url, &id).await.unwrap();
    let mut rx = MailboxReceiver::connect(&url, &id).await.unwrap();
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    tx.send(b"before").await.unwrap();
    assert_eq!(within("recv", rx.recv()).await.unwrap(), b"before");

    within("the shutdown", relay.shutdown()).await.unwrap();
    assert!(matches!(
        within("recv", rx.recv()).await,
        Err(RelayError::Closed)
    ));
    assert!(matches!(
        within("send", tx.send(b"lost")).await,
        Err(RelayError::Closed)
    ));

    // A new relay on the same port knows nothing of the old streams.
    let listener = TcpListener::bind(addr).await.unwrap();
    let relay = RelayHandle::start(listener, RelayConfig::default()).unwrap();
    assert_eq!(relay.url(), url);
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    assert!(matches!(tx.send(b"x").await, Err(RelayError::NotFound(_))));

    create_stream(&url, &id).await.unwrap();
    let mut rx = MailboxReceiver::connect(&url, &id).await.unwrap();
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    tx.send(b"after").await.unwrap();
    assert_eq!(within("recv", rx.recv()).await.unwrap(), b"after");
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stopped_relay_refuses_connections() {
    let relay = start(RelayConfig::default()).await;
    let url = relay.url();
    relay.shutdown().await.unwrap();
    assert!(matches!(
        create_stream(&url, &sid(24)).await,
        Err(RelayError::Io { .. })
    ));
    assert!(matches!(
        MailboxReceiver::connect(&url, &sid(24)).await,
        Err(RelayError::Io { .. })
    ));
}
