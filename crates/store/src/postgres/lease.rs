//! Leases: exactly one host runs a tenant at a time.
//!
//! A tenant's lease row names its holder, an epoch and when it lapses (by the database's
//! clock, so hosts' clocks do not matter). Taking a lease over — from nobody, from a holder
//! whose lease lapsed, or by the holder itself after a restart — increments the epoch. Every
//! write of the tenant's entries checks the epoch in the same transaction, with a share lock
//! on the lease row that a takeover's update must wait for (see `tenant.rs`): once another
//! host took the lease, a write of the old epoch is refused, whatever the old host believes.

use std::time::Duration;

use super::workers::PgError;
use super::PgDatabase;

/// Proof that a host took a tenant's lease at an epoch. A write made with it succeeds only
/// while the lease row still carries this epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The tenant.
    pub tenant: String,
    /// The host that holds it.
    pub holder: String,
    /// The epoch it was taken at.
    pub epoch: i64,
}

/// A lease row as the database has it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The tenant.
    pub tenant: String,
    /// Its current holder.
    pub holder: String,
    /// Its current epoch.
    pub epoch: i64,
    /// Milliseconds until it lapses; zero or negative when it has.
    pub expires_in_ms: i64,
}

/// Why a lease could not be taken or kept.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another host holds the lease and it has not lapsed.
    #[error("tenant {tenant} is run by {holder} (epoch {epoch}) until its lease lapses")]
    HeldElsewhere {
        /// The tenant.
        tenant: String,
        /// The host that holds it.
        holder: String,
        /// Its epoch.
        epoch: i64,
    },
    /// The lease was taken over (or released): this host must stop running the tenant.
    #[error("the lease of tenant {tenant} at epoch {epoch} was lost to another host")]
    Lost {
        /// The tenant.
        tenant: String,
        /// The epoch this host held.
        epoch: i64,
    },
    /// The database could not be asked.
    #[error(transparent)]
    Database(#[from] PgError),
}

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

impl PgDatabase {
    /// Takes `tenant`'s lease for `holder` for `ttl`: a new lease, one that lapsed, or one
    /// `holder` already holds. The epoch grows every time.
    pub fn acquire_lease(
        &self,
        tenant: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Lease, LeaseError> {
        let (t, h, ms) = (tenant.to_owned(), holder.to_owned(), millis(ttl));
        let taken = self.workers().run("take a lease", move |c| {
            c.query_opt(
                "INSERT INTO tenant_leases (tenant, epoch, holder, expires_at)
                 VALUES ($1, 1, $2, now() + $3 * interval '1 millisecond')
                 ON CONFLICT (tenant) DO UPDATE
                   SET epoch = tenant_leases.epoch + 1, holder = excluded.holder,
                       expires_at = excluded.expires_at
                   WHERE tenant_leases.expires_at <= now()
                      OR tenant_leases.holder = excluded.holder
                 RETURNING epoch",
                &[&t, &h, &(ms as f64)],
            )
            .and_then(|row| row.map(|r| r.try_get::<_, i64>(0)).transpose())
        })?;
        match taken {
            Some(epoch) => Ok(Lease {
                tenant: tenant.to_owned(),
                holder: holder.to_owned(),
                epoch,
            }),
            None => {
                let now = self.lease_of(tenant)?;
                Err(LeaseError::HeldElsewhere {
                    tenant: tenant.to_owned(),
                    holder: now.as_ref().map(|l| l.holder.clone()).unwrap_or_default(),
                    epoch: now.map(|l| l.epoch).unwrap_or_default(),
                })
            }
        }
    }

    /// Extends a held lease by `ttl` from now; [`LeaseError::Lost`] once another host took it.
    pub fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<(), LeaseError> {
        let (t, e, ms) = (lease.tenant.clone(), lease.epoch, millis(ttl));
        let renewed = self.workers().run("renew a lease", move |c| {
            c.execute(
                "UPDATE tenant_leases SET expires_at = now() + $3 * interval '1 millisecond'
                 WHERE tenant = $1 AND epoch = $2",
                &[&t, &e, &(ms as f64)],
            )
        })?;
        if renewed == 1 {
            Ok(())
        } else {
            Err(LeaseError::Lost {
                tenant: lease.tenant.clone(),
                epoch: lease.epoch,
            })
        }
    }

    /// Lets a held lease lapse now, so another host may take the tenant at once (a clean
    /// shutdown or a hand-over). Releasing a lease already lost is not an error.
    pub fn release_lease(&self, lease: &Lease) -> Result<(), LeaseError> {
        let (t, e) = (lease.tenant.clone(), lease.epoch);
        self.workers().run("release a lease", move |c| {
            c.execute(
                "UPDATE tenant_leases SET expires_at = now() WHERE tenant = $1 AND epoch = $2",
                &[&t, &e],
            )
        })?;
        Ok(())
    }

    /// The lease of `tenant`, if it ever had one.
    pub fn lease_of(&self, tenant: &str) -> Result<Option<LeaseInfo>, PgError> {
        let t = tenant.to_owned();
        let rows = self.workers().run("read a lease", move |c| {
            c.query(
                "SELECT tenant, holder, epoch,
                        (EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::BIGINT
                 FROM tenant_leases WHERE tenant = $1",
                &[&t],
            )?
            .iter()
            .map(lease_info)
            .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(rows.into_iter().next())
    }

    /// Every tenant's lease, by tenant.
    pub fn leases(&self) -> Result<Vec<LeaseInfo>, PgError> {
        let rows = self.workers().run("list leases", move |c| {
            c.query(
                "SELECT tenant, holder, epoch,
                        (EXTRACT(EPOCH FROM (expires_at - now())) * 1000)::BIGINT
                 FROM tenant_leases ORDER BY tenant",
                &[],
            )?
            .iter()
            .map(lease_info)
            .collect()
        })?;
        Ok(rows)
    }
}

fn lease_info(row: &postgres::Row) -> Result<LeaseInfo, postgres::Error> {
    Ok(LeaseInfo {
        tenant: row.try_get(0)?,
        holder: row.try_get(1)?,
        epoch: row.try_get(2)?,
        expires_in_ms: row.try_get(3)?,
    })
}
