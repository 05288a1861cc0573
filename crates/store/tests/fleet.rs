//! The fleet database: leases that move between hosts, writes fenced by them, and rows the
//! operator cannot read.

use std::time::Duration;

use lightning::util::persist::{KVStoreSync, MigratableKVStore};
use micronode_store::testing::TestDatabase;
use micronode_store::{
    DataKey, Fenced, LeaseError, LeaseKeeper, PgDatabase, SealError, StoreError, StoreWrite,
};

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);

#[test]
fn a_lease_is_held_by_one_host_and_taken_over_only_when_it_lapses() {
    let db = TestDatabase::new("lease");
    let fleet = PgDatabase::connect(&db.url, 2).unwrap();

    let a = fleet.acquire_lease("alice", "host-a", SHORT).unwrap();
    assert_eq!(a.epoch, 1);
    // Held and not lapsed: host B is told who has it.
    match fleet.acquire_lease("alice", "host-b", LONG) {
        Err(LeaseError::HeldElsewhere { holder, epoch, .. }) => {
            assert_eq!((holder.as_str(), epoch), ("host-a", 1))
        }
        other => panic!("expected HeldElsewhere, got {other:?}"),
    }
    // Renewing keeps it.
    fleet.renew_lease(&a, SHORT).unwrap();

    // A stops renewing; once the lease lapses B takes it, at a new epoch.
    std::thread::sleep(SHORT + Duration::from_millis(200));
    let b = fleet.acquire_lease("alice", "host-b", LONG).unwrap();
    assert_eq!((b.holder.as_str(), b.epoch), ("host-b", 2));
    match fleet.renew_lease(&a, LONG) {
        Err(LeaseError::Lost { epoch, .. }) => assert_eq!(epoch, 1),
        other => panic!("expected Lost, got {other:?}"),
    }
    // A clean hand-over: B releases, A may take it at once.
    fleet.release_lease(&b).unwrap();
    let a2 = fleet.acquire_lease("alice", "host-a", LONG).unwrap();
    assert_eq!(a2.epoch, 3);
    let info = fleet.lease_of("alice").unwrap().expect("lease row");
    assert_eq!((info.holder.as_str(), info.epoch), ("host-a", 3));
    assert!(info.expires_in_ms > 0);
    assert_eq!(fleet.leases().unwrap().len(), 1);
    assert!(fleet.lease_of("nobody").unwrap().is_none());
}

#[test]
fn a_host_that_lost_its_lease_can_never_write_again() {
    let db = TestDatabase::new("fence");
    let key = DataKey::random();
    // Two hosts, each with its own connections, as two processes would be.
    let host_a = PgDatabase::connect(&db.url, 2).unwrap();
    let host_b = PgDatabase::connect(&db.url, 2).unwrap();

    let lease_a = host_a.acquire_lease("alice", "host-a", SHORT).unwrap();
    let store_a = host_a.tenant_store(&lease_a, &key);
    KVStoreSync::write(&store_a, "", "", "manager", b"state 1".to_vec()).unwrap();

    // A is paused past its lease; B takes the tenant over and carries on from A's state.
    std::thread::sleep(SHORT + Duration::from_millis(200));
    let lease_b = host_b.acquire_lease("alice", "host-b", LONG).unwrap();
    let store_b = host_b.tenant_store(&lease_b, &key);
    assert_eq!(
        KVStoreSync::read(&store_b, "", "", "manager").unwrap(),
        b"state 1"
    );
    KVStoreSync::write(&store_b, "", "", "manager", b"state 2 by b".to_vec()).unwrap();

    // A wakes up still believing it runs alice: its write is refused, typed, and changes
    // nothing; so is every later one, batch or single, without asking the database.
    let err = KVStoreSync::write(&store_a, "", "", "manager", b"stale state".to_vec()).unwrap_err();
    let fenced = Fenced::find(&err).expect("a Fenced refusal");
    assert_eq!((fenced.epoch, fenced.current), (1, Some(2)));
    assert!(store_a.is_fenced());
    assert!(Fenced::find(
        &store_a
            .write_all(vec![StoreWrite::remove("", "", "manager")])
            .unwrap_err()
    )
    .is_some());
    assert!(
        Fenced::find(&KVStoreSync::remove(&store_a, "", "", "manager", false).unwrap_err())
            .is_some()
    );
    assert_eq!(
        KVStoreSync::read(&store_b, "", "", "manager").unwrap(),
        b"state 2 by b"
    );
    assert!(!store_b.is_fenced());
}

#[test]
fn no_write_of_the_old_epoch_lands_after_the_takeover_commits() {
    // A writes as fast as it can while B takes over: every write A was told succeeded landed
    // before the takeover; none after. The last value is B's.
    let db = TestDatabase::new("race");
    let key = DataKey::random();
    let host_a = PgDatabase::connect(&db.url, 4).unwrap();
    let host_b = PgDatabase::connect(&db.url, 2).unwrap();
    let lease_a = host_a.acquire_lease("alice", "host-a", SHORT).unwrap();
    let store_a = std::sync::Arc::new(host_a.tenant_store(&lease_a, &key));

    let writer = {
        let store_a = store_a.clone();
        std::thread::spawn(move || {
            let mut acked = 0u32;
            for i in 1..=100_000u32 {
                match KVStoreSync::write(&*store_a, "", "", "counter", i.to_be_bytes().to_vec()) {
                    Ok(()) => acked = i,
                    Err(e) => {
                        assert!(Fenced::find(&e).is_some(), "{e}");
                        return acked;
                    }
                }
            }
            panic!("the writer was never fenced");
        })
    };
    std::thread::sleep(SHORT + Duration::from_millis(200));
    let lease_b = host_b.acquire_lease("alice", "host-b", LONG).unwrap();
    let store_b = host_b.tenant_store(&lease_b, &key);
    let seen_by_b = KVStoreSync::read(&store_b, "", "", "counter").unwrap();
    KVStoreSync::write(&store_b, "", "", "counter", b"b".to_vec()).unwrap();
    let acked = writer.join().expect("writer");
    assert!(acked > 0, "A wrote before the takeover");
    // What B read at takeover is A's last acknowledged write: nothing A was told landed was lost,
    // and nothing A wrote afterwards landed.
    assert_eq!(seen_by_b, acked.to_be_bytes());
    assert_eq!(
        KVStoreSync::read(&store_b, "", "", "counter").unwrap(),
        b"b"
    );
}

#[test]
fn a_tenants_rows_open_only_under_its_data_key() {
    let db = TestDatabase::new("sealed");
    let fleet = PgDatabase::connect(&db.url, 2).unwrap();
    let lease = fleet.acquire_lease("alice", "host-a", LONG).unwrap();
    let store = fleet.tenant_store(&lease, &DataKey::from_bytes([1; 32]));
    KVStoreSync::write(&store, "payments", "", "abcd", b"record".to_vec()).unwrap();

    // The same rows under another key: a clear error, no value, and no key names.
    let wrong = fleet.tenant_store(&lease, &DataKey::from_bytes([2; 32]));
    assert_eq!(
        KVStoreSync::read(&wrong, "payments", "", "abcd")
            .unwrap_err()
            .kind(),
        lightning::io::ErrorKind::NotFound,
        "under another key the entry's row id differs: it is simply not there"
    );
    assert!(KVStoreSync::list(&wrong, "payments", "")
        .unwrap()
        .is_empty());
    let err = wrong.list_all_keys().unwrap_err();
    assert!(
        matches!(
            err.get_ref().and_then(|e| e.downcast_ref::<SealError>()),
            Some(SealError::Tampered)
        ),
        "{err}"
    );
}

#[test]
fn a_database_dump_shows_no_balance_payment_hash_or_channel_id() {
    let db = TestDatabase::new("dump");
    let fleet = PgDatabase::connect(&db.url, 2).unwrap();
    let lease = fleet.acquire_lease("alice", "host-a", LONG).unwrap();
    let store = fleet.tenant_store(&lease, &DataKey::derive(&[5; 32], "alice"));

    let channel_id = "5f3c1e9a7b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e";
    let payment_hash = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d5e4f30211203f4e5d6c7b8a9";
    let balance = 123_456_789u64;
    KVStoreSync::write(
        &store,
        "monitors",
        "",
        &format!("{channel_id}_1"),
        channel_id.as_bytes().to_vec(),
    )
    .unwrap();
    KVStoreSync::write(
        &store,
        "payments",
        "",
        payment_hash,
        format!("{{\"amount_msat\":{balance}}}").into_bytes(),
    )
    .unwrap();
    KVStoreSync::write(&store, "", "", "balance", balance.to_be_bytes().to_vec()).unwrap();

    let dump = db.dump().to_lowercase();
    assert!(dump.contains("alice"), "the dump holds alice's rows");
    // pg_dump writes BYTEA as hex, so each needle is looked for as text and as hex.
    let needles: Vec<String> = [
        channel_id.to_owned(),
        payment_hash.to_owned(),
        balance.to_string(),
        hex(&balance.to_be_bytes()),
        "monitors".to_owned(),
        "payments".to_owned(),
    ]
    .into_iter()
    .flat_map(|n| [hex(n.as_bytes()), n])
    .collect();
    for needle in needles {
        assert!(!dump.contains(&needle), "the dump shows {needle}");
    }
}

#[test]
fn a_database_of_a_newer_schema_is_refused() {
    let db = TestDatabase::new("schema");
    PgDatabase::connect(&db.url, 1).unwrap();
    // Connecting again is a no-op migration.
    PgDatabase::connect(&db.url, 1).unwrap();
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .batch_execute("UPDATE micronode_schema SET version = 99")
        .unwrap();
    match PgDatabase::connect(&db.url, 1) {
        Err(StoreError::UnsupportedSchemaVersion { found: 99, .. }) => {}
        other => panic!("expected UnsupportedSchemaVersion, got {other:?}"),
    }
    assert!(matches!(
        PgDatabase::connect("postgres://[bad", 1),
        Err(StoreError::PgConfig { .. })
    ));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_kept_lease_stays_until_its_keeper_stops_and_a_taken_one_is_reported_lost() {
    let db = TestDatabase::new("keeper");
    let host_a = PgDatabase::connect(&db.url, 2).unwrap();
    let host_b = PgDatabase::connect(&db.url, 2).unwrap();

    // Kept for three times its time to live: nobody else can take it.
    let lease = host_a.acquire_lease("alice", "host-a", SHORT).unwrap();
    let keeper = LeaseKeeper::start(host_a.clone(), lease, SHORT, |_| {}).unwrap();
    std::thread::sleep(SHORT * 3);
    assert!(matches!(
        host_b.acquire_lease("alice", "host-b", LONG),
        Err(LeaseError::HeldElsewhere { .. })
    ));
    assert!(!keeper.is_lost());
    // A clean stop releases it: B takes it at once.
    keeper.release().unwrap();
    let lease_b = host_b.acquire_lease("alice", "host-b", SHORT).unwrap();

    // B's keeper, when the lease is taken from under it, reports it lost, once.
    let (tx, rx) = std::sync::mpsc::channel();
    let keeper_b = LeaseKeeper::start(host_b.clone(), lease_b.clone(), SHORT, move |e| {
        let _ = tx.send(e.to_string());
    })
    .unwrap();
    host_b.release_lease(&lease_b).unwrap();
    host_a.acquire_lease("alice", "host-a", LONG).unwrap();
    let why = rx.recv_timeout(SHORT * 3).expect("on_lost called");
    assert!(why.contains("lost"), "{why}");
    assert!(keeper_b.is_lost());
    assert!(rx.recv_timeout(SHORT).is_err(), "called once");
    // Dropping a keeper (a crash) does not release: the lease lapses on its own.
    let lease_c = host_a.acquire_lease("carol", "host-a", SHORT).unwrap();
    drop(LeaseKeeper::start(host_a.clone(), lease_c, SHORT, |_| {}).unwrap());
    assert!(host_b.acquire_lease("carol", "host-b", LONG).is_err());
    std::thread::sleep(SHORT + Duration::from_millis(200));
    assert_eq!(
        host_b.acquire_lease("carol", "host-b", LONG).unwrap().epoch,
        2
    );
}
