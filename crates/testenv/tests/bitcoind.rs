//! The harness against a real bitcoind.

use std::time::Duration;

use bitcoin::consensus::encode;
use bitcoin::Transaction;
use lightning_block_sync::BlockSource;
use micronode_testenv::{
    free_port, process_alive, wait_until, Bitcoind, BitcoindRpc, RpcAuth, RpcError, TestEnvError,
    WALLET_NAME,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// Mines, funds, counts `getblock` calls in debug.log, stops; then checks the cleanup.
async fn exercise(mut bitcoind: Bitcoind) -> Result<(), TestEnvError> {
    let rpc = bitcoind.rpc().clone();
    let hashes = bitcoind.mine(101).await?;
    assert_eq!(hashes.len(), 101);
    let info = rpc.get_blockchain_info().await?;
    assert_eq!((info.chain.as_str(), info.blocks), ("regtest", 101));
    assert_eq!(info.best_block_hash, hashes[100]);

    let address = bitcoind.wallet_rpc().get_new_address().await?;
    let txid = bitcoind.fund_address(&address, 123_456).await?;
    bitcoind.wait_for_mempool_tx(&txid, WAIT).await?;

    // `getblockhash` and `getblockchaininfo` must not count as `getblock`.
    assert_eq!(bitcoind.count_rpc_calls("getblock")?, 0);
    for height in [1, 50, 101] {
        let hash = rpc.get_block_hash(height).await?;
        let block = rpc.get_block(&hash).await?;
        assert_eq!(block.block_hash(), hash);
    }
    assert_eq!(bitcoind.count_rpc_calls("getblock")?, 3);
    assert_eq!(bitcoind.count_rpc_calls("getblockhash")?, 3);
    assert_eq!(rpc.call_count("getblock"), 3);
    assert_eq!(rpc.call_count("getblockhash"), 3);

    let (pid, datadir) = (bitcoind.pid(), bitcoind.datadir().to_path_buf());
    assert!(process_alive(pid));
    bitcoind.stop().await?;
    assert!(
        !process_alive(pid),
        "bitcoind {pid} still running after stop"
    );
    assert!(datadir.exists(), "the datadir stays until drop");
    drop(bitcoind);
    assert!(
        !datadir.exists(),
        "{} not removed on drop",
        datadir.display()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bitcoinds_in_parallel() {
    let (a, b) = tokio::join!(Bitcoind::start(), Bitcoind::start());
    let (a, b) = (a.expect("start a"), b.expect("start b"));
    assert_ne!(a.rpc_port(), b.rpc_port());
    assert_ne!(a.p2p_port(), b.p2p_port());
    assert_ne!(a.datadir(), b.datadir());
    assert_ne!(a.pid(), b.pid());
    let (ra, rb) = tokio::join!(tokio::spawn(exercise(a)), tokio::spawn(exercise(b)));
    ra.expect("task a").expect("bitcoind a");
    rb.expect("task b").expect("bitcoind b");
}

#[tokio::test]
async fn drop_kills_and_cleans_up() {
    let bitcoind = Bitcoind::start().await.expect("start");
    let (pid, datadir) = (bitcoind.pid(), bitcoind.datadir().to_path_buf());
    assert!(process_alive(pid));
    assert!(bitcoind.debug_log_path().exists());
    drop(bitcoind);
    assert!(
        !process_alive(pid),
        "bitcoind {pid} still running after drop"
    );
    assert!(
        !datadir.exists(),
        "{} not removed on drop",
        datadir.display()
    );
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let port = free_port();
    let auth = RpcAuth::UserPass {
        user: "u".into(),
        pass: "p".into(),
    };
    let rpc = BitcoindRpc::new("127.0.0.1", port, auth).expect("client");
    match rpc.get_blockchain_info().await {
        Err(e @ RpcError::Unreachable { .. }) => {
            let text = e.to_string();
            assert!(text.contains("not reachable"), "{text}");
            assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    // The LDK block source path fails too, without panicking.
    assert!(rpc.get_best_block().await.is_err());
    assert_eq!(rpc.call_count("getblockchaininfo"), 2);
}

#[tokio::test]
async fn rpc_client_against_bitcoind() {
    let bitcoind = Bitcoind::start().await.expect("start");
    let rpc = bitcoind.rpc();

    // Wrong credentials are an Auth error, not a decode error.
    let wrong = RpcAuth::UserPass {
        user: bitcoind.rpc_user().into(),
        pass: "wrong".into(),
    };
    let bad = BitcoindRpc::new(bitcoind.rpc_host(), bitcoind.rpc_port(), wrong).expect("client");
    let err = bad.get_block_count().await.expect_err("wrong password");
    assert!(matches!(err, RpcError::Auth), "{err:?}");

    // JSON-RPC errors keep bitcoind's code.
    let err = rpc
        .call::<Value>("nosuchmethod", &[])
        .await
        .expect_err("unknown method");
    assert!(matches!(err, RpcError::Rpc { code: -32601, .. }), "{err:?}");
    // LDK's HTTP client resends a request once when bitcoind answers with an HTTP error
    // status, so bitcoind sees a failed call twice.
    assert_eq!(rpc.call_count("nosuchmethod"), 1);
    assert_eq!(bitcoind.count_rpc_calls("nosuchmethod").expect("log"), 2);
    let err = rpc.get_block_hash(1_000).await.expect_err("no such height");
    assert!(matches!(err, RpcError::Rpc { code: -8, .. }), "{err:?}");

    // create_wallet is idempotent.
    rpc.create_wallet(WALLET_NAME).await.expect("create again");

    // BlockSource delegates and counts under bitcoind's own method names.
    // (The wallet client shares `rpc`'s counters, and mining asks for the chain once.)
    let hashes = bitcoind.mine(3).await.expect("mine");
    let infos = rpc.call_count("getblockchaininfo");
    let (best, height) = rpc.get_best_block().await.expect("best block");
    assert_eq!((best, height), (hashes[2], Some(3)));
    let header = BlockSource::get_header(rpc, &best, height)
        .await
        .expect("header");
    assert_eq!(header.height, 3);
    let (typed_header, typed_height) = rpc.get_block_header(&best).await.expect("typed header");
    assert_eq!((typed_header, typed_height), (header.header, 3));
    assert_eq!(rpc.call_count("getblockchaininfo"), infos + 1);
    assert_eq!(rpc.call_count("getblockheader"), 2);
    assert_eq!(bitcoind.count_rpc_calls("getblockheader").expect("log"), 2);

    // Fee estimates: none on a fresh regtest chain, but no error either.
    assert_eq!(
        rpc.estimate_smart_fee(6, "economical")
            .await
            .expect("estimate"),
        None
    );
    assert!(rpc.get_mempool_min_fee().await.expect("minfee") > 0.0);

    // Rebroadcasting a transaction bitcoind already has is a success, in the mempool and
    // once mined.
    let wallet = bitcoind.wallet_rpc();
    let address = wallet.get_new_address().await.expect("address");
    let txid = bitcoind.fund_address(&address, 50_000).await.expect("fund");
    let tx: Value = wallet
        .call("gettransaction", &[json!(txid.to_string())])
        .await
        .expect("tx");
    let hex = tx["hex"].as_str().expect("hex");
    let tx: Transaction = encode::deserialize_hex(hex).expect("decode tx");
    assert_eq!(
        rpc.send_raw_transaction(&tx).await.expect("in mempool"),
        txid
    );
    assert!(rpc
        .get_raw_mempool()
        .await
        .expect("mempool")
        .contains(&txid));
    bitcoind.mine(1).await.expect("mine");
    assert_eq!(rpc.send_raw_transaction(&tx).await.expect("in chain"), txid);
    assert!(wallet.get_balance().await.expect("balance").to_sat() > 0);

    // wait_until times out with the name of what it waited for.
    let err = wait_until("never", Duration::from_millis(120), || async { false }).await;
    assert!(
        matches!(err, Err(TestEnvError::Timeout { ref what }) if what == "never"),
        "{err:?}"
    );
}
