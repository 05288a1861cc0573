//! The fleet database's schema and its versioned migrations.
//!
//! Migrations run in order, each in its own transaction, under a transaction-scoped advisory
//! lock, so hosts starting together against a new database apply each exactly once. A database
//! newer than this build is refused rather than written.

use postgres::Client;

/// The schema version this build writes.
pub const PG_SCHEMA_VERSION: i32 = 2;

/// The advisory lock key that serialises migrations ("micronod" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d69_6372_6f6e_6f64;

/// Migration `n` (1-based) moves the schema from version `n - 1` to `n`.
const MIGRATIONS: [&str; 2] = [
    // 1: leases and sealed entries.
    "CREATE TABLE tenant_leases (
        tenant      TEXT PRIMARY KEY,
        epoch       BIGINT NOT NULL,
        holder      TEXT NOT NULL,
        expires_at  TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE tenant_entries (
        tenant      TEXT NOT NULL,
        entry       BYTEA NOT NULL,
        namespace   BYTEA NOT NULL,
        sealed      BYTEA NOT NULL,
        PRIMARY KEY (tenant, entry)
    );
    CREATE INDEX tenant_entries_by_namespace ON tenant_entries (tenant, namespace);",
    // 2: the fleet's tenant registry (what every host needs to run a tenant it takes over).
    "CREATE TABLE fleet_tenants (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        state       TEXT NOT NULL,
        node_id     TEXT UNIQUE,
        signer_port INTEGER NOT NULL,
        created_at  BIGINT NOT NULL,
        recorded    BIGINT GENERATED ALWAYS AS IDENTITY
    );",
];

/// What migrating found.
pub(crate) enum Migrated {
    /// The schema is at this build's version.
    Current,
    /// The database was written by a newer build.
    TooNew(i32),
}

/// Creates or upgrades the schema.
pub(crate) fn migrate(client: &mut Client) -> Result<Migrated, postgres::Error> {
    loop {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS micronode_schema (
                only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
                version  INTEGER NOT NULL
            )",
        )?;
        let version: i32 = tx
            .query_opt("SELECT version FROM micronode_schema", &[])?
            .map(|row| row.get(0))
            .unwrap_or(0);
        if version > PG_SCHEMA_VERSION {
            return Ok(Migrated::TooNew(version));
        }
        if version == PG_SCHEMA_VERSION {
            tx.commit()?;
            return Ok(Migrated::Current);
        }
        // `version` is in 0..PG_SCHEMA_VERSION here, so the index is in bounds.
        if let Some(step) = MIGRATIONS.get(version as usize) {
            tx.batch_execute(step)?;
        }
        tx.execute(
            "INSERT INTO micronode_schema (version) VALUES ($1)
             ON CONFLICT (only_row) DO UPDATE SET version = excluded.version",
            &[&(version + 1)],
        )?;
        tx.commit()?;
        tracing::info!(version = version + 1, "migrated the fleet database");
    }
}
