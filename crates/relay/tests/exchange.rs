//! Messages through the relay: order, both directions, queueing, one reader and one writer.

mod common;

use common::{pair, sid, start, within};
use micronode_relay::client::{create_stream, delete_stream, MailboxReceiver, MailboxSender};
use micronode_relay::{RelayConfig, RelayError};

#[tokio::test]
async fn two_clients_exchange_messages_in_order_both_ways() {
    let relay = start(RelayConfig::default()).await;
    let url = relay.url();
    // The node creates both boxes: it writes `to_client` and reads `to_node`.
    let (to_client, to_node) = pair(1);
    create_stream(&url, &to_client).await.unwrap();
    create_stream(&url, &to_node).await.unwrap();

    let mut node_rx = MailboxReceiver::connect(&url, &to_node).await.unwrap();
    let mut node_tx = MailboxSender::connect(&url, &to_client).await.unwrap();
    let mut client_rx = MailboxReceiver::connect(&url, &to_client).await.unwrap();
    let mut client_tx = MailboxSender::connect(&url, &to_node).await.unwrap();

    for i in 0..50u32 {
        let request = format!("request {i}").into_bytes();
        client_tx.send(&request).await.unwrap();
        assert_eq!(within("node recv", node_rx.recv()).await.unwrap(), request);
        let response = format!("response {i}").into_bytes();
        node_tx.send(&response).await.unwrap();
        assert_eq!(
            within("client recv", client_rx.recv()).await.unwrap(),
            response
        );
    }

    // A burst in one direction arrives in order, including empty and large messages.
    let burst: Vec<Vec<u8>> = (0..100u32)
        .map(|i| match i {
            0 => Vec::new(),
            1 => vec![0xa5; 64 * 1024],
            _ => i.to_be_bytes().to_vec(),
        })
        .collect();
    for msg in &burst {
        node_tx.send(msg).await.unwrap();
    }
    for msg in &burst {
        assert_eq!(&within("burst recv", client_rx.recv()).await.unwrap(), msg);
    }

    delete_stream(&url, &to_client).await.unwrap();
    delete_stream(&url, &to_node).await.unwrap();
    assert_eq!(relay.relay().stream_count(), 0);
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn messages_sent_before_the_reader_connects_are_delivered() {
    let relay = start(RelayConfig::default()).await;
    let url = relay.url();
    let id = sid(2);
    create_stream(&url, &id).await.unwrap();
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    for i in 0..20u8 {
        tx.send(&[i; 3]).await.unwrap();
    }
    tx.close().await;

    let mut rx = MailboxReceiver::connect(&url, &id).await.unwrap();
    for i in 0..20u8 {
        assert_eq!(within("queued recv", rx.recv()).await.unwrap(), vec![i; 3]);
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_full_queue_holds_the_writer_back_until_the_reader_reads() {
    let config = RelayConfig {
        max_queued_messages: 2,
        ..RelayConfig::default()
    };
    let relay = start(config).await;
    let url = relay.url();
    let id = sid(3);
    create_stream(&url, &id).await.unwrap();
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    tx.send(b"one").await.unwrap();
    tx.send(b"two").await.unwrap();
    // The third waits for room; nothing is dropped.
    let writer = tokio::spawn(async move {
        tx.send(b"three").await.unwrap();
        tx.send(b"four").await.unwrap();
        tx
    });
    let mut rx = MailboxReceiver::connect(&url, &id).await.unwrap();
    for expected in [&b"one"[..], b"two", b"three", b"four"] {
        assert_eq!(within("recv", rx.recv()).await.unwrap(), expected);
    }
    within("the writer", writer).await.unwrap();
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn unread_messages_wait_for_the_next_reader() {
    let relay = start(RelayConfig::default()).await;
    let url = relay.url();
    let id = sid(4);
    create_stream(&url, &id).await.unwrap();
    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    let mut rx = MailboxReceiver::connect(&url, &id).await.unwrap();
    tx.send(b"first").await.unwrap();
    assert_eq!(within("recv", rx.recv()).await.unwrap(), b"first");
    rx.close().await;
    tx.send(b"second").await.unwrap();
    tx.send(b"third").await.unwrap();

    // The next reader gets what the first did not read, once the relay has let the first go.
    let mut rx = within("a new reader", async {
        loop {
            match MailboxReceiver::connect(&url, &id).await {
                Ok(rx) => break rx,
                Err(RelayError::Busy(_)) => tokio::task::yield_now().await,
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await;
    assert_eq!(within("recv", rx.recv()).await.unwrap(), b"second");
    assert_eq!(within("recv", rx.recv()).await.unwrap(), b"third");
    relay.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_second_reader_or_writer_is_refused_while_the_first_keeps_working() {
    let relay = start(RelayConfig::default()).await;
    let url = relay.url();
    let id = sid(5);
    create_stream(&url, &id).await.unwrap();

    let mut rx = MailboxReceiver::connect(&url, &id).await.unwrap();
    match MailboxReceiver::connect(&url, &id).await {
        Err(RelayError::Busy(message)) => assert!(message.contains("read stream occupied")),
        other => panic!("a second reader: {other:?}"),
    }

    let mut tx = MailboxSender::connect(&url, &id).await.unwrap();
    tx.send(b"from the first writer").await.unwrap();
    let mut second = MailboxSender::connect(&url, &id).await.unwrap();
    match second.send(b"from the second writer").await {
        Err(RelayError::Busy(message)) => assert!(message.contains("write stream occupied")),
        other => panic!("a second writer: {other:?}"),
    }
    // The refused writer is done.
    assert!(matches!(
        second.send(b"again").await,
        Err(RelayError::Closed)
    ));

    tx.send(b"still working").await.unwrap();
    assert_eq!(
        within("recv", rx.recv()).await.unwrap(),
        b"from the first writer"
    );
    assert_eq!(within("recv", rx.recv()).await.unwrap(), b"still working");
    relay.shutdown().await.unwrap();
}
