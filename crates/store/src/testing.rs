//! For tests: a throwaway PostgreSQL database per test, on the server `scripts/test.sh`
//! provides (or names with `MICRONODE_TEST_DATABASE_URL`).

use std::sync::atomic::{AtomicUsize, Ordering};

/// The server's admin connection string: `MICRONODE_TEST_DATABASE_URL` (set by
/// `scripts/test.sh`), or the local server on 127.0.0.1:5432 when run by hand.
pub fn admin_url() -> String {
    std::env::var("MICRONODE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=postgres".to_owned())
}

/// A database of its own, dropped (with its connections) at the end of the test.
pub struct TestDatabase {
    /// The database's name.
    pub name: String,
    /// A connection string for it.
    pub url: String,
}

impl TestDatabase {
    /// Creates a fresh database named after `tag` and this process. Panics, with what to do,
    /// when there is no server: tests that need one must not pass without it.
    pub fn new(tag: &str) -> TestDatabase {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "micronode_{tag}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        admin(format!("CREATE DATABASE {name}")).unwrap_or_else(|e| {
            panic!(
                "cannot create a test database on {} ({e}): run the tests with \
                 scripts/test.sh, or set MICRONODE_TEST_DATABASE_URL",
                admin_url()
            )
        });
        let mut config: postgres::Config = admin_url().parse().expect("admin url parses");
        config.dbname(&name);
        let url = to_url(&config);
        TestDatabase { name, url }
    }

    /// `pg_dump --data-only` of the database, with the cluster's own `pg_dump` when
    /// `scripts/test.sh` made the cluster (`MICRONODE_PG_BIN`).
    pub fn dump(&self) -> String {
        let pg_dump = std::env::var("MICRONODE_PG_BIN")
            .map(|bin| format!("{bin}/pg_dump"))
            .unwrap_or_else(|_| "pg_dump".to_owned());
        let output = std::process::Command::new(pg_dump)
            .arg("--data-only")
            .arg(&self.url)
            .output()
            .expect("pg_dump runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// A `key=value` connection string for `config`.
fn to_url(config: &postgres::Config) -> String {
    let mut parts = Vec::new();
    if let Some(postgres::config::Host::Tcp(h)) = config.get_hosts().first() {
        parts.push(format!("host={h}"));
    }
    if let Some(postgres::config::Host::Unix(p)) = config.get_hosts().first() {
        parts.push(format!("host={}", p.display()));
    }
    if let Some(port) = config.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={user}"));
    }
    if let Some(pw) = config.get_password() {
        parts.push(format!("password={}", String::from_utf8_lossy(pw)));
    }
    if let Some(db) = config.get_dbname() {
        parts.push(format!("dbname={db}"));
    }
    parts.join(" ")
}

/// Runs one statement on the admin connection, on a thread of its own: the synchronous client
/// cannot run on a thread of a tokio runtime (async tests).
fn admin(statement: String) -> Result<(), postgres::Error> {
    std::thread::spawn(move || {
        postgres::Client::connect(&admin_url(), postgres::NoTls)?.batch_execute(&statement)
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = admin(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
