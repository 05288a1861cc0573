//! One storage suite, run on both backends: the embedded SQLite file and a tenant's sealed,
//! fenced rows in PostgreSQL. What LDK relies on must hold the same on both.

use std::time::Duration;

use lightning::io::ErrorKind;
use lightning::util::persist::{KVStoreSync, MigratableKVStore};
use micronode_store::testing::TestDatabase;
use micronode_store::{DataKey, NodeStore, PgDatabase, StoreWrite};

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Everything the node asks of its store.
fn suite(store: &NodeStore) {
    // Missing entries are NotFound, for both read and list.
    let err = KVStoreSync::read(store, "monitors", "", "absent").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(KVStoreSync::list(store, "monitors", "").unwrap().is_empty());

    // Write, read back, overwrite.
    KVStoreSync::write(store, "", "", "manager", vec![1, 2, 3]).unwrap();
    assert_eq!(
        KVStoreSync::read(store, "", "", "manager").unwrap(),
        vec![1, 2, 3]
    );
    KVStoreSync::write(store, "", "", "manager", vec![4; 10_000]).unwrap();
    assert_eq!(
        KVStoreSync::read(store, "", "", "manager").unwrap(),
        vec![4; 10_000]
    );
    KVStoreSync::write(store, "empty", "", "value", Vec::new()).unwrap();
    assert!(KVStoreSync::read(store, "empty", "", "value")
        .unwrap()
        .is_empty());

    // Namespaces keep their entries apart, and list gives exactly a namespace's keys.
    KVStoreSync::write(store, "monitors", "", "aa_0", vec![10]).unwrap();
    KVStoreSync::write(store, "monitors", "", "bb_1", vec![11]).unwrap();
    KVStoreSync::write(store, "monitors", "updates", "aa_0", vec![12]).unwrap();
    KVStoreSync::write(store, "payments", "", "aa_0", vec![13]).unwrap();
    assert_eq!(
        sorted(KVStoreSync::list(store, "monitors", "").unwrap()),
        ["aa_0", "bb_1"]
    );
    assert_eq!(
        KVStoreSync::list(store, "monitors", "updates").unwrap(),
        ["aa_0"]
    );
    assert_eq!(
        KVStoreSync::read(store, "payments", "", "aa_0").unwrap(),
        vec![13]
    );
    assert_eq!(
        KVStoreSync::read(store, "monitors", "", "aa_0").unwrap(),
        vec![10]
    );
    let mut monitors = store.read_namespace("monitors", "").unwrap();
    monitors.sort();
    assert_eq!(
        monitors,
        [("aa_0".to_owned(), vec![10]), ("bb_1".to_owned(), vec![11])]
    );
    assert!(store.read_namespace("absent", "").unwrap().is_empty());

    // Remove, twice (the second is not an error).
    KVStoreSync::remove(store, "monitors", "", "bb_1", false).unwrap();
    KVStoreSync::remove(store, "monitors", "", "bb_1", true).unwrap();
    assert_eq!(KVStoreSync::list(store, "monitors", "").unwrap(), ["aa_0"]);

    // A batch is all or nothing: a bad key anywhere writes none of it.
    let err = store
        .write_all(vec![
            StoreWrite::put("batch", "", "one", vec![1]),
            StoreWrite::put("batch", "", "bad key!", vec![2]),
        ])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(KVStoreSync::list(store, "batch", "").unwrap().is_empty());
    store
        .write_all(vec![
            StoreWrite::put("batch", "", "one", vec![1]),
            StoreWrite::put("batch", "", "two", vec![2]),
            StoreWrite::remove("payments", "", "aa_0"),
        ])
        .unwrap();
    assert_eq!(
        sorted(KVStoreSync::list(store, "batch", "").unwrap()),
        ["one", "two"]
    );
    assert_eq!(
        KVStoreSync::read(store, "payments", "", "aa_0")
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    // Names LDK forbids are refused before anything is stored.
    assert!(KVStoreSync::write(store, "", "secondary", "k", vec![1]).is_err());
    assert!(KVStoreSync::write(store, "ns", "", "", vec![1]).is_err());
    assert!(KVStoreSync::read(store, "ns/x", "", "k").is_err());

    // Every key, for migrations.
    let mut all = store.list_all_keys().unwrap();
    all.sort();
    let expect: Vec<(String, String, String)> = [
        ("", "", "manager"),
        ("batch", "", "one"),
        ("batch", "", "two"),
        ("empty", "", "value"),
        ("monitors", "", "aa_0"),
        ("monitors", "updates", "aa_0"),
    ]
    .iter()
    .map(|(p, s, k)| (p.to_string(), s.to_string(), k.to_string()))
    .collect();
    assert_eq!(all, expect);
}

#[test]
fn the_suite_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("micronode-suite-{}", std::process::id()));
    let store = NodeStore::open(&dir).unwrap();
    suite(&store);
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_suite_on_postgresql() {
    let db = TestDatabase::new("suite");
    let fleet = PgDatabase::connect(&db.url, 2).unwrap();
    let lease = fleet
        .acquire_lease("alice", "host-a", Duration::from_secs(30))
        .unwrap();
    let store = NodeStore::from(fleet.tenant_store(&lease, &DataKey::random()));
    suite(&store);

    // Tenants share the tables and nothing else: another tenant sees none of alice's entries.
    let bob_lease = fleet
        .acquire_lease("bob", "host-a", Duration::from_secs(30))
        .unwrap();
    let bob = fleet.tenant_store(&bob_lease, &DataKey::random());
    assert!(bob.list_all_keys().unwrap().is_empty());
    assert_eq!(
        KVStoreSync::read(&bob, "", "", "manager")
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(fleet.entry_count("alice").unwrap(), 6);
}
