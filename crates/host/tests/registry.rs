//! The host registry's one suite, run on a host's own SQLite file and on the fleet database.

use micronode_host::registry::{Registry, StoredState};
use micronode_host::HostError;
use micronode_store::testing::TestDatabase;
use micronode_store::{DataKey, PgDatabase, StoreWrite};

/// What every registry must do, whatever it is stored in. `open` opens the same registry
/// again (a host restart).
fn records_tenants_and_refuses_a_taken_name(open: &dyn Fn() -> Registry) {
    let registry = open();
    let a = registry.insert("alice", 4001).expect("alice");
    let b = registry.insert("bob", 4002).expect("bob");
    assert!(matches!(
        registry.insert("alice", 4003),
        Err(HostError::NameTaken(name)) if name == "alice"
    ));
    assert!(matches!(
        registry.insert("no spaces", 4003),
        Err(HostError::InvalidName(_))
    ));
    registry
        .set_state(&a.id, StoredState::Suspended)
        .expect("suspend");
    registry.set_node_id(&b.id, "02ab").expect("node id");
    drop(registry);

    let registry = open();
    let all = registry.all().expect("all");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        (all[0].name.as_str(), all[0].id.as_str()),
        ("alice", a.id.as_str())
    );
    assert_eq!(all[0].state, StoredState::Suspended);
    assert_eq!(all[0].signer_port, 4001);
    assert_eq!(all[0].node_id, None);
    assert_eq!(all[0].created_at, a.created_at);
    assert_eq!(all[1].node_id.as_deref(), Some("02ab"));
    assert_eq!(all[1].state, StoredState::Active);
    registry.remove(&a.id).expect("remove");
    assert_eq!(registry.get(&a.id).expect("get"), None);
    assert_eq!(registry.get(&b.id).expect("get").expect("bob").name, "bob");
    // A forgotten tenant's name can be given again.
    registry.insert("alice", 4004).expect("alice again");
}

#[test]
fn the_sqlite_registry_passes_the_suite() {
    let dir = tempfile::tempdir().expect("dir");
    records_tenants_and_refuses_a_taken_name(&|| Registry::open(dir.path()).expect("open"));
}

#[test]
fn the_fleet_registry_passes_the_suite() {
    let db = TestDatabase::new("registry");
    records_tenants_and_refuses_a_taken_name(&|| {
        Registry::fleet(PgDatabase::connect(&db.url, 1).expect("connect"))
    });
}

#[test]
fn hosts_of_a_fleet_share_one_registry_and_forgetting_a_tenant_drops_its_state() {
    let db = TestDatabase::new("registry_shared");
    let fleet_a = PgDatabase::connect(&db.url, 1).expect("host a");
    let fleet_b = PgDatabase::connect(&db.url, 1).expect("host b");
    let host_a = Registry::fleet(fleet_a.clone());
    let host_b = Registry::fleet(fleet_b.clone());

    // A tenant one host records, the other sees; names are unique across the fleet.
    let alice = host_a.insert("alice", 4001).expect("alice on a");
    let seen = host_b.get(&alice.id).expect("get").expect("b sees alice");
    assert_eq!(seen, alice);
    assert!(matches!(
        host_b.insert("alice", 4002),
        Err(HostError::NameTaken(_))
    ));
    let bob = host_b.insert("bob", 4002).expect("bob on b");
    host_b.set_node_id(&bob.id, "03cd").expect("node id");
    let names: Vec<String> = host_a
        .all()
        .expect("all")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    // Forgetting alice drops her lease and stored entries, and leaves bob's alone.
    let key = DataKey::random();
    for tenant in [&alice.id, &bob.id] {
        let lease = fleet_a
            .acquire_lease(tenant, "host-a", std::time::Duration::from_secs(60))
            .expect("lease");
        fleet_a
            .tenant_store(&lease, &key)
            .write_all(vec![StoreWrite::put("", "", "manager", vec![7; 40])])
            .expect("write");
    }
    host_b.remove(&alice.id).expect("forget alice");
    assert_eq!(fleet_a.entry_count(&alice.id).expect("count"), 0);
    assert!(fleet_a.lease_of(&alice.id).expect("lease").is_none());
    assert_eq!(fleet_a.entry_count(&bob.id).expect("count"), 1);
    assert!(fleet_a.lease_of(&bob.id).expect("lease").is_some());
    assert_eq!(
        host_a
            .get(&bob.id)
            .expect("get")
            .expect("bob")
            .node_id
            .as_deref(),
        Some("03cd")
    );
}
