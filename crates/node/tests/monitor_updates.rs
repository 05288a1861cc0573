//! A channel monitor is stored as a full copy plus the updates since it, and a restarted node
//! rebuilds it from both: the channel comes back with the same balances to the msat and keeps
//! working.

use lightning::util::persist::KVStoreSync;
use micronode_node::PaymentStatus;
use micronode_store::SqliteStore;
use micronode_testenv::nodes::{open_channel, Env, TestNode, TIMEOUT};

/// A full monitor is written every this-many updates (the node's setting).
const MAX_PENDING_UPDATES: usize = 100;
const CHANNEL_SAT: u64 = 1_000_000;
/// The two anchor outputs the funder pays for, outside both balances.
const ANCHORS_SAT: u64 = 660;

async fn pay(from: &TestNode, to: &TestNode, msat: u64) {
    let invoice = to
        .create_invoice(Some(msat), "monitor", 600)
        .expect("invoice");
    let id = from.pay_invoice(&invoice.invoice, None, None).expect("pay");
    let record = from.wait_payment(&id, TIMEOUT).await.expect("settled");
    assert_eq!(record.status, PaymentStatus::Succeeded, "{record:?}");
}

/// (monitor keys, update ids stored for the first monitor, whether its full copy carries the
/// incremental layout's sentinel) in the store at `dir`.
fn stored_layout(dir: &std::path::Path) -> (Vec<String>, Vec<u64>, bool) {
    let store = SqliteStore::open(dir).expect("open the stopped node's store");
    let monitors = KVStoreSync::list(&store, "monitors", "").expect("list monitors");
    let key = monitors.first().expect("one monitor").clone();
    let mut updates: Vec<u64> = KVStoreSync::list(&store, "monitor_updates", &key)
        .expect("list updates")
        .iter()
        .map(|id| id.parse().expect("numeric update id"))
        .collect();
    updates.sort();
    let full = KVStoreSync::read(&store, "monitors", "", &key).expect("read monitor");
    (monitors, updates, full.starts_with(&[0xFF, 0xFF]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn monitor_is_rebuilt_from_full_copy_and_updates() {
    let env = Env::new("monitor-updates").await;
    let a = env.start_node("a").await;
    let b = env.start_node("b").await;
    env.fund(&a, 2_000_000).await;
    open_channel(&env, &a, &b, CHANNEL_SAT).await;

    // About seven monitor updates per payment on each side: well past the first full copies.
    let mut paid_msat = 0;
    for _ in 0..40 {
        pay(&a, &b, 1_000_000).await;
        paid_msat += 1_000_000;
    }
    let a_config = {
        let mut config = a.config().clone();
        config.listen_addr = a.listen_addr();
        config
    };
    let before = a.list_channels();
    assert_eq!(before.len(), 1);
    a.stop().await.expect("stop a");
    drop(a);

    let (monitors, mut updates, sentinel) = stored_layout(&a_config.data_dir);
    if updates.is_empty() {
        // The last update happened to be a full copy; one more payment stores updates again.
        let a = env.start_node_with(a_config.clone()).await;
        pay(&a, &b, 1_000_000).await;
        paid_msat += 1_000_000;
        a.stop().await.expect("stop a");
        updates = stored_layout(&a_config.data_dir).1;
    }
    assert_eq!(monitors.len(), 1, "one channel, one monitor");
    assert!(sentinel, "the full copy is in the incremental layout");
    assert!(
        !updates.is_empty(),
        "updates since the full copy are stored on their own"
    );
    assert!(
        updates.len() < MAX_PENDING_UPDATES,
        "a full copy is written at least every {MAX_PENDING_UPDATES} updates: {updates:?}"
    );
    assert!(
        updates.windows(2).all(|w| w[1] == w[0] + 1),
        "the stored updates follow each other: {updates:?}"
    );

    // The restarted node reads the full copy and replays the updates.
    let a = env.start_node_with(a_config).await;
    let channels = a.list_channels();
    assert_eq!(channels.len(), 1, "the channel survives the restart");
    assert_eq!(
        channels[0].balance_sat, before[0].balance_sat,
        "A's balance is what it was before the restart"
    );
    assert_eq!(
        channels[0].balance_sat,
        CHANNEL_SAT - ANCHORS_SAT - paid_msat / 1000,
        "A's balance is its funding, less the anchors and what it paid"
    );
    assert_eq!(b.list_channels()[0].balance_sat, paid_msat / 1000);
    micronode_testenv::wait_until("the channel usable again", TIMEOUT, || async {
        a.list_channels().iter().all(|c| c.is_usable)
    })
    .await
    .expect("reconnected");

    // Both directions still settle, to the sat.
    pay(&a, &b, 5_000_000).await;
    pay(&b, &a, 2_000_000).await;
    let b_balance = b.list_channels()[0].balance_sat;
    assert_eq!(b_balance, (paid_msat + 3_000_000) / 1000);
    assert_eq!(
        a.list_channels()[0].balance_sat,
        CHANNEL_SAT - ANCHORS_SAT - b_balance
    );
    a.stop().await.expect("stop a");
    b.stop().await.expect("stop b");
}
