//! The fleet's store: every tenant's entries in one PostgreSQL database, sealed under the
//! tenant's data key and fenced by its lease.
//!
//! A host opens one [`PgDatabase`] (a fixed set of connections, see `workers.rs`) and, for
//! each tenant it takes the lease of, a [`PgTenantStore`] that LDK and the node use like the
//! embedded SQLite store. Decisions: `docs/adr/0006-fleet-store-on-postgresql.md`.

mod keeper;
mod lease;
mod registry;
mod schema;
mod tenant;
mod transfer;
mod workers;

use std::str::FromStr;
use std::sync::Arc;

pub use keeper::LeaseKeeper;
pub use lease::{Lease, LeaseError, LeaseInfo};
pub use registry::{RegistryInsert, RegistryRow};
pub use schema::PG_SCHEMA_VERSION;
pub use tenant::{Fenced, PgTenantStore};
pub use transfer::{SealedEntry, TenantRows};
pub use workers::PgError;

use crate::error::StoreError;
use crate::sealing::{DataKey, Sealer};
use workers::Workers;

/// Connections a host opens when not told otherwise.
pub const DEFAULT_CONNECTIONS: usize = 4;

/// A host's handle on the fleet database. Cloning shares the connections.
#[derive(Clone)]
pub struct PgDatabase {
    workers: Arc<Workers>,
    /// The connection string without its password, for messages.
    shown: String,
}

impl std::fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatabase")
            .field("database", &self.shown)
            .finish_non_exhaustive()
    }
}

impl PgDatabase {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value` string) with
    /// `connections` connections, and creates or upgrades its schema.
    pub fn connect(url: &str, connections: usize) -> Result<PgDatabase, StoreError> {
        let mut config =
            postgres::Config::from_str(url).map_err(|source| StoreError::PgConfig { source })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        let shown = describe(&config);
        let workers = Workers::start(config, connections).map_err(StoreError::Pg)?;
        let db = PgDatabase {
            workers: Arc::new(workers),
            shown,
        };
        match db.workers.run("migrate the schema", schema::migrate) {
            Ok(schema::Migrated::Current) => {}
            Ok(schema::Migrated::TooNew(found)) => {
                return Err(StoreError::UnsupportedSchemaVersion {
                    found: i64::from(found),
                    supported: i64::from(PG_SCHEMA_VERSION),
                })
            }
            Err(e) => return Err(StoreError::Pg(e)),
        }
        tracing::debug!(database = %db.shown, "opened the fleet database");
        Ok(db)
    }

    pub(crate) fn workers(&self) -> &Workers {
        &self.workers
    }

    /// The store of a tenant whose lease this host holds. Its entries are sealed under `key`,
    /// and every write is refused once `lease` is no longer the tenant's current one.
    pub fn tenant_store(&self, lease: &Lease, key: &DataKey) -> PgTenantStore {
        PgTenantStore::new(
            self.workers.clone(),
            lease.clone(),
            Arc::new(Sealer::new(&lease.tenant, key)),
        )
    }

    /// How many entries `tenant` has stored (their content stays sealed).
    pub fn entry_count(&self, tenant: &str) -> Result<i64, PgError> {
        let t = tenant.to_owned();
        self.workers.run("count entries", move |c| {
            c.query_one(
                "SELECT count(*) FROM tenant_entries WHERE tenant = $1",
                &[&t],
            )?
            .try_get(0)
        })
    }
}

/// `user@host:port/dbname`, never the password.
fn describe(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}
