//! Tests of [`SqliteStore`] against real database files in a temporary directory.

mod crash;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use lightning::io::ErrorKind;
use lightning::util::async_poll::AsyncResult;
use lightning::util::persist::{KVStoreSync, MigratableKVStore};

use crate::{SqliteStore, StoreError, DEFAULT_DB_FILE_NAME};

/// A uniquely named directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "micronode-store-{tag}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &TempDir) -> SqliteStore {
    SqliteStore::open(dir.path()).unwrap()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn write_read_round_trip_and_overwrite() {
    let dir = TempDir::new("roundtrip");
    let store = open(&dir);
    store.write("", "", "manager", vec![1, 2, 3]).unwrap();
    assert_eq!(
        KVStoreSync::read(&store, "", "", "manager").unwrap(),
        vec![1, 2, 3]
    );

    store.write("", "", "manager", vec![9; 5]).unwrap();
    assert_eq!(
        KVStoreSync::read(&store, "", "", "manager").unwrap(),
        vec![9; 5]
    );

    // Empty values and large values are stored faithfully.
    store.write("ns", "", "empty", Vec::new()).unwrap();
    assert_eq!(
        KVStoreSync::read(&store, "ns", "", "empty").unwrap(),
        Vec::<u8>::new()
    );
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    store.write("monitors", "", "big", big.clone()).unwrap();
    assert_eq!(
        KVStoreSync::read(&store, "monitors", "", "big").unwrap(),
        big
    );
}

#[test]
fn durability_pragmas_are_set() {
    let dir = TempDir::new("pragmas");
    let store = open(&dir);
    assert_eq!(store.pragma("journal_mode"), "wal");
    assert_eq!(
        store.pragma("synchronous"),
        "2",
        "synchronous must be FULL (2)"
    );
    assert_eq!(store.pragma("busy_timeout"), "10000");
    assert_eq!(
        store.pragma("user_version"),
        crate::SCHEMA_VERSION.to_string()
    );
}

#[test]
fn read_missing_is_not_found() {
    let dir = TempDir::new("notfound");
    let store = open(&dir);
    let err = KVStoreSync::read(&store, "ns", "sub", "missing").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    store.write("ns", "sub", "present", vec![1]).unwrap();
    // Same key in another namespace is still missing.
    let err = KVStoreSync::read(&store, "ns", "", "present").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn remove_is_idempotent() {
    let dir = TempDir::new("remove");
    let store = open(&dir);
    store.write("ns", "", "k", vec![1]).unwrap();
    store.write("ns", "", "other", vec![2]).unwrap();
    KVStoreSync::remove(&store, "ns", "", "k", false).unwrap();
    assert_eq!(
        KVStoreSync::read(&store, "ns", "", "k").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    KVStoreSync::remove(&store, "ns", "", "k", false).unwrap();
    KVStoreSync::remove(&store, "ns", "", "k", true).unwrap();
    KVStoreSync::remove(&store, "never", "", "existed", true).unwrap();
    assert_eq!(
        KVStoreSync::list(&store, "ns", "").unwrap(),
        vec!["other".to_owned()]
    );
    // Writing after a removal resurrects the key.
    store.write("ns", "", "k", vec![3]).unwrap();
    assert_eq!(KVStoreSync::read(&store, "ns", "", "k").unwrap(), vec![3]);
}

#[test]
fn list_is_per_namespace() {
    let dir = TempDir::new("list");
    let store = open(&dir);
    assert!(KVStoreSync::list(&store, "ns", "").unwrap().is_empty());
    store.write("", "", "manager", vec![0]).unwrap();
    store.write("ns", "", "a", vec![1]).unwrap();
    store.write("ns", "", "b", vec![2]).unwrap();
    store.write("ns", "sub", "c", vec![3]).unwrap();
    store.write("ns", "sub2", "a", vec![4]).unwrap();
    store.write("ns2", "", "a", vec![5]).unwrap();
    // Overwriting does not duplicate list entries.
    store.write("ns", "", "a", vec![6]).unwrap();

    assert_eq!(
        KVStoreSync::list(&store, "", "").unwrap(),
        vec!["manager".to_owned()]
    );
    assert_eq!(
        sorted(KVStoreSync::list(&store, "ns", "").unwrap()),
        vec!["a", "b"]
    );
    assert_eq!(KVStoreSync::list(&store, "ns", "sub").unwrap(), vec!["c"]);
    assert_eq!(KVStoreSync::list(&store, "ns", "sub2").unwrap(), vec!["a"]);
    assert_eq!(KVStoreSync::list(&store, "ns2", "").unwrap(), vec!["a"]);
    assert!(KVStoreSync::list(&store, "ns2", "sub").unwrap().is_empty());

    // Same key, different namespaces: independent values.
    assert_eq!(KVStoreSync::read(&store, "ns", "", "a").unwrap(), vec![6]);
    assert_eq!(
        KVStoreSync::read(&store, "ns", "sub2", "a").unwrap(),
        vec![4]
    );
    assert_eq!(KVStoreSync::read(&store, "ns2", "", "a").unwrap(), vec![5]);
    KVStoreSync::remove(&store, "ns2", "", "a", false).unwrap();
    assert_eq!(KVStoreSync::read(&store, "ns", "", "a").unwrap(), vec![6]);
}

#[test]
fn invalid_keys_and_namespaces_are_rejected() {
    let dir = TempDir::new("invalid");
    let store = open(&dir);
    let too_long = "k".repeat(lightning::util::persist::KVSTORE_NAMESPACE_KEY_MAX_LEN + 1);
    let bad: [(&str, &str, &str); 6] = [
        ("ns", "", ""),
        ("", "sub", "key"),
        ("ns", "", "../etc"),
        ("n s", "", "key"),
        ("ns", "s\u{e4}", "key"),
        ("ns", "", &too_long),
    ];
    for (p, s, k) in bad {
        let kind = |r: Result<(), lightning::io::Error>| r.unwrap_err().kind();
        assert_eq!(
            kind(store.write(p, s, k, vec![1])),
            ErrorKind::InvalidInput,
            "{p}/{s}/{k}"
        );
        let err = KVStoreSync::read(&store, p, s, k).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{p}/{s}/{k}");
        let removed = KVStoreSync::remove(&store, p, s, k, false);
        assert_eq!(kind(removed), ErrorKind::InvalidInput, "{p}/{s}/{k}");
    }
    let err = KVStoreSync::list(&store, "", "sub").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("empty primary namespace"), "{err}");
    let err = KVStoreSync::list(&store, "a.b", "").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(store.list_all_keys().unwrap().is_empty());
}

#[test]
fn reopen_keeps_data() {
    let dir = TempDir::new("reopen");
    {
        let store = open(&dir);
        store.write("", "", "manager", vec![42; 100]).unwrap();
        store.write("monitors", "", "m1", vec![7]).unwrap();
        KVStoreSync::remove(&store, "monitors", "", "m1", true).unwrap();
        store.write("monitors", "", "m2", vec![8]).unwrap();
    }
    let store = open(&dir);
    assert_eq!(
        KVStoreSync::read(&store, "", "", "manager").unwrap(),
        vec![42; 100]
    );
    assert_eq!(
        KVStoreSync::list(&store, "monitors", "").unwrap(),
        vec!["m2"]
    );
    assert_eq!(store.path(), dir.path().join(DEFAULT_DB_FILE_NAME));
}

#[test]
fn list_all_keys_returns_everything() {
    let dir = TempDir::new("listall");
    let store = open(&dir);
    let entries = [
        ("", "", "manager"),
        ("monitors", "", "m"),
        ("updates", "m", "1"),
        ("updates", "m", "2"),
    ];
    for (p, s, k) in entries {
        store.write(p, s, k, k.as_bytes().to_vec()).unwrap();
    }
    let mut all = store.list_all_keys().unwrap();
    all.sort();
    let mut expected: Vec<_> = entries
        .iter()
        .map(|(p, s, k)| (p.to_string(), s.to_string(), k.to_string()))
        .collect();
    expected.sort();
    assert_eq!(all, expected);

    // Migration into a second store via LDK's helper.
    let dir2 = TempDir::new("listall-target");
    let mut target = SqliteStore::open_with_file_name(dir2.path(), "target.db").unwrap();
    let mut source = store;
    lightning::util::persist::migrate_kv_store_data(&mut source, &mut target).unwrap();
    let mut migrated = target.list_all_keys().unwrap();
    migrated.sort();
    assert_eq!(migrated, expected);
    assert_eq!(
        KVStoreSync::read(&target, "updates", "m", "2").unwrap(),
        b"2".to_vec()
    );
}

#[test]
fn async_trait_matches_sync_behaviour() {
    // Only imported here: with both traits in scope, `store.read(..)` is ambiguous.
    use lightning::util::persist::KVStore;
    let dir = TempDir::new("async");
    let store = Arc::new(open(&dir));
    ready(KVStore::write(&*store, "ns", "", "k", vec![5])).unwrap();
    assert_eq!(
        ready(KVStore::read(&*store, "ns", "", "k")).unwrap(),
        vec![5]
    );
    assert_eq!(ready(KVStore::list(&*store, "ns", "")).unwrap(), vec!["k"]);
    ready(KVStore::remove(&*store, "ns", "", "k", false)).unwrap();
    let err = ready(KVStore::read(&*store, "ns", "", "k")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = ready(KVStore::write(&*store, "", "sub", "k", vec![])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// Polls a future that is expected to be complete already.
fn ready<T>(
    mut fut: AsyncResult<'static, T, lightning::io::Error>,
) -> Result<T, lightning::io::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(res) => res,
        Poll::Pending => panic!("SqliteStore futures must be ready immediately"),
    }
}

#[test]
fn store_is_send_sync_and_usable_as_ldk_persister() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_persist<
        T: lightning::chain::chainmonitor::Persist<lightning::sign::InMemorySigner>,
    >() {
    }
    assert_send_sync::<SqliteStore>();
    assert_persist::<SqliteStore>();
}

#[cfg(unix)]
#[test]
fn files_have_private_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let parent = TempDir::new("perms");
    let dir = parent.path().join("nested").join("data");
    let store = SqliteStore::open(&dir).unwrap();
    store.write("ns", "", "k", vec![1]).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(DEFAULT_DB_FILE_NAME)), 0o600);
    assert_eq!(
        mode(&dir.join(format!("{DEFAULT_DB_FILE_NAME}-wal"))),
        0o600
    );
    drop(store);

    // A pre-existing world-readable database file is tightened on open.
    let db = dir.join(DEFAULT_DB_FILE_NAME);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = SqliteStore::open(&dir).unwrap();
    assert_eq!(mode(&db), 0o600);
    assert_eq!(KVStoreSync::read(&store, "ns", "", "k").unwrap(), vec![1]);
}

#[test]
fn invalid_file_name_is_rejected() {
    let dir = TempDir::new("badname");
    for name in ["", "..", "a/b"] {
        let err = SqliteStore::open_with_file_name(dir.path(), name).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidFileName(_)),
            "{name}: {err}"
        );
        let io_err: std::io::Error = err.into();
        assert_eq!(io_err.kind(), std::io::ErrorKind::InvalidInput);
    }
}

#[test]
fn open_errors_keep_their_source() {
    let dir = TempDir::new("openerr");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteStore::open(&file.join("sub")).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");
    assert!(std::error::Error::source(&err).is_some());

    // A file that is not a SQLite database fails to configure, with the SQLite cause attached.
    std::fs::write(dir.path().join("garbage.db"), vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open_with_file_name(dir.path(), "garbage.db").unwrap_err();
    assert!(std::error::Error::source(&err).is_some(), "{err}");
}

#[test]
fn newer_schema_version_is_refused() {
    let dir = TempDir::new("schema");
    drop(open(&dir));
    let conn = rusqlite::Connection::open(dir.path().join(DEFAULT_DB_FILE_NAME)).unwrap();
    conn.pragma_update(None, "user_version", crate::SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::UnsupportedSchemaVersion { .. }),
        "{err}"
    );
}

#[test]
fn write_all_applies_a_batch_in_order_or_nothing() {
    use crate::StoreWrite;
    let dir = TempDir::new("batch");
    let store = open(&dir);
    store.write("monitor_updates", "m", "1", vec![1]).unwrap();
    store.write("monitor_updates", "m", "2", vec![2]).unwrap();

    store
        .write_all(vec![
            StoreWrite::put("", "", "manager", vec![7]),
            StoreWrite::put("monitors", "", "m", vec![0xFF, 0xFF, 3]),
            StoreWrite::remove("monitor_updates", "m", "1"),
            StoreWrite::remove("monitor_updates", "m", "2"),
            StoreWrite::put("monitor_updates", "m", "4", vec![4]),
            // Later entries for the same key win, as in sequential writes.
            StoreWrite::put("", "", "manager", vec![8]),
            // Removing what is not there is not an error.
            StoreWrite::remove("monitor_updates", "m", "3"),
        ])
        .unwrap();
    assert_eq!(
        KVStoreSync::read(&store, "", "", "manager").unwrap(),
        vec![8]
    );
    assert_eq!(
        KVStoreSync::list(&store, "monitor_updates", "m").unwrap(),
        vec!["4".to_string()]
    );

    // One invalid key: the batch is refused before anything is written.
    let err = store
        .write_all(vec![
            StoreWrite::put("", "", "manager", vec![9]),
            StoreWrite::put("bad/namespace", "", "k", vec![1]),
        ])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        KVStoreSync::read(&store, "", "", "manager").unwrap(),
        vec![8]
    );

    // What a batch wrote survives reopening the database.
    drop(store);
    let store = open(&dir);
    assert_eq!(
        KVStoreSync::read(&store, "monitors", "", "m").unwrap(),
        vec![0xFF, 0xFF, 3]
    );
}
