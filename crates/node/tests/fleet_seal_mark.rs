//! A fleet node's store opens only under the key its state was sealed with: a node whose state
//! is under another key (another `--fleet-data-key` mode, fleet key or signer) is refused,
//! never started fresh beside its channels.

use std::time::Duration;

use lightning::util::persist::KVStoreSync;
use micronode_node::fleet::{FleetKey, FleetLease};
use micronode_node::store::testing::TestDatabase;
use micronode_node::store::{DataKey, PgDatabase};

const TTL: Duration = Duration::from_secs(30);

fn fleet_key(dir: &std::path::Path, hex_byte: &str) -> FleetKey {
    let path = dir.join(format!("fleet-{hex_byte}.key"));
    std::fs::write(&path, hex_byte.repeat(32)).expect("key file");
    FleetKey::read(&path).expect("key")
}

#[test]
fn state_opens_only_under_the_key_it_was_sealed_with() {
    let db = TestDatabase::new("seal_mark");
    let pg = PgDatabase::connect(&db.url, 2).expect("connect");
    let dir = tempfile::tempdir().expect("dir");
    let key = fleet_key(dir.path(), "31");
    let signer_key = DataKey::from_bytes([7; 32]);

    // A new node opens under the signer's key and stores its state.
    let lease = pg.acquire_lease("t-1", "host-a", TTL).expect("lease");
    let kept = FleetLease::keep(pg.clone(), lease, TTL, &key).expect("keep");
    let store = kept
        .open_node_store(Some(&signer_key))
        .expect("a new node opens");
    KVStoreSync::write(&*store, "", "", "manager", b"state".to_vec()).expect("write");
    // Opened again under the same key: its state is there.
    let again = kept.open_node_store(Some(&signer_key)).expect("reopens");
    assert_eq!(
        KVStoreSync::read(&*again, "", "", "manager").expect("read"),
        b"state"
    );

    // Under the operator's key, or another signer's, it is refused with a clear error.
    for wrong in [None, Some(DataKey::from_bytes([8; 32]))] {
        let refused = kept
            .open_node_store(wrong.as_ref())
            .expect_err("refused under another key");
        assert!(
            refused
                .to_string()
                .contains("does not open under this data key"),
            "{refused}"
        );
    }
    // Another fleet key is refused as well.
    let other_fleet = fleet_key(dir.path(), "32");
    kept.release().expect("release");
    let lease = pg.acquire_lease("t-1", "host-b", TTL).expect("lease");
    let elsewhere = FleetLease::keep(pg.clone(), lease, TTL, &other_fleet).expect("keep");
    assert!(elsewhere.open_node_store(None).is_err());
    assert!(elsewhere.open_node_store(Some(&signer_key)).is_ok());
}
