//! A node with caps on its channels and peers (a host caps each tenant): one channel more is
//! refused whether the node opens it or a peer does, and one peer more is refused.

use micronode_node::NodeError;
use micronode_testenv::nodes::{open_channel, Env, TIMEOUT};
use micronode_testenv::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn channels_and_peers_beyond_the_caps_are_refused() {
    let env = Env::new("caps").await;
    let mut config = env.node_config("capped");
    config.channels.max_channels = 1;
    config.channels.max_peers = 1;
    let capped = env.start_node_with(config).await;
    let peer = env.start_node("peer").await;
    let other = env.start_node("other").await;
    env.fund(&capped, 1_000_000).await;
    env.fund(&peer, 1_000_000).await;
    open_channel(&env, &capped, &peer, 200_000).await;

    // The node opens one more: refused before anything is signed.
    let refused = capped
        .open_channel(peer.node_id(), 100_000, 0, Some(false))
        .expect_err("a second channel is over the cap");
    assert!(
        matches!(refused, NodeError::Channel(ref why) if why.contains("cap is 1")),
        "{refused:?}"
    );

    // A second peer: refused.
    let refused = capped
        .connect_peer(other.node_id(), other.listen_addr().expect("listens"))
        .await
        .expect_err("a second peer is over the cap");
    assert!(
        matches!(refused, NodeError::Connection(ref why) if why.contains("cap is 1")),
        "{refused:?}"
    );
    assert_eq!(capped.list_peers().len(), 1);

    // The peer opens one more to the node: the node rejects it, and the peer forgets it.
    peer.open_channel(capped.node_id(), 100_000, 0, Some(false))
        .expect("the peer asks");
    wait_until("the peer's second channel is rejected", TIMEOUT, || async {
        peer.list_channels().len() == 1 && capped.list_channels().len() == 1
    })
    .await
    .expect("rejected");
    assert!(env.mempool().await.is_empty(), "no funding was broadcast");
}
