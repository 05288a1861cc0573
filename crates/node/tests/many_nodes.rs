//! Fifty nodes in one process share one chain feed: bitcoind serves each new block once.

use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_nodes_share_one_feed() {
    let env = Env::new("many").await;
    let mut nodes = Vec::new();
    for i in 0..50 {
        let mut config = env.node_config(&format!("n{i}"));
        config.listen_addr = None;
        nodes.push(env.start_node_with(config).await);
    }
    let getblock_before = env.bitcoind.count_rpc_calls("getblock").expect("debug.log");
    let blocks = 5;
    let mined = env.bitcoind.mine(blocks).await.expect("mine");
    let tip = *mined.last().expect("mined");
    wait_until("every node at the new tip", TIMEOUT, || async {
        nodes.iter().all(|n| n.info().block_hash == tip.to_string())
    })
    .await
    .expect("all nodes synced");
    let getblock_after = env.bitcoind.count_rpc_calls("getblock").expect("debug.log");
    assert_eq!(
        getblock_after - getblock_before,
        blocks as usize,
        "bitcoind must serve each block once, not once per node"
    );
    // Every wallet followed too.
    for n in &nodes {
        assert_eq!(n.onchain_balance().total_sat, 0);
    }
    for n in &nodes {
        n.stop().await.expect("stop");
    }
}
