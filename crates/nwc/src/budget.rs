//! Spending budgets per connection, enforced before any payment starts.
//!
//! A payment first **reserves** its amount plus a fee allowance in one SQLite transaction that
//! also checks the period's total, so concurrent requests can never together exceed the
//! budget. The reservation is then **settled** at what the payment really cost, or
//! **released** if it failed. Reservations survive restarts; one whose payment outcome is
//! unknown keeps counting until the wallet says how it ended (never overspend).
//!
//! Periods are calendar periods in UTC, per NIP-47's `budget_renewal`: `daily`, `weekly`
//! (from Monday), `monthly`, `yearly`, or `never` (a total budget).

use std::fmt;
use std::str::FromStr;

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::NwcError;
use crate::store::{to_i64, to_u64, NwcStore};
use crate::util;

/// When a budget starts afresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetRenewal {
    /// Every UTC day.
    Daily,
    /// Every ISO week (Monday, UTC).
    Weekly,
    /// Every calendar month (UTC).
    Monthly,
    /// Every calendar year (UTC).
    Yearly,
    /// Never: a total budget for the connection's life.
    Never,
}

impl BudgetRenewal {
    /// The NIP-47 name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
            Self::Yearly => "yearly",
            Self::Never => "never",
        }
    }

    /// Start of the period containing `now`.
    pub fn period_start(&self, now: u64) -> u64 {
        match self {
            Self::Daily => util::start_of_day(now),
            Self::Weekly => util::start_of_week(now),
            Self::Monthly => util::start_of_month(now),
            Self::Yearly => util::start_of_year(now),
            Self::Never => 0,
        }
    }

    /// When the period containing `now` ends, if it does.
    pub fn renews_at(&self, now: u64) -> Option<u64> {
        match self {
            Self::Daily => Some(util::start_of_day(now) + 86_400),
            Self::Weekly => Some(util::start_of_week(now) + 7 * 86_400),
            Self::Monthly => Some(util::start_of_next_month(now)),
            Self::Yearly => Some(util::start_of_next_year(now)),
            Self::Never => None,
        }
    }
}

impl fmt::Display for BudgetRenewal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown renewal period.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown budget renewal {0:?}; use daily, weekly, monthly, yearly or never (total)")]
pub struct UnknownRenewal(pub String);

impl FromStr for BudgetRenewal {
    type Err = UnknownRenewal;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "daily" => Self::Daily,
            "weekly" => Self::Weekly,
            "monthly" => Self::Monthly,
            "yearly" => Self::Yearly,
            "never" | "total" => Self::Never,
            other => return Err(UnknownRenewal(other.to_string())),
        })
    }
}

/// A spending limit per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Budget {
    /// The most a period may spend, fees included (msat).
    pub amount_msat: u64,
    /// The period.
    pub renewal: BudgetRenewal,
}

/// A budget and what is used of it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetStatus {
    /// The budget.
    pub budget: Budget,
    /// Spent or reserved in the current period (msat).
    pub used_msat: u64,
    /// When the period renews, if it does.
    pub renews_at: Option<u64>,
}

/// A reservation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("budget exceeded: {used_msat} of {budget_msat} msat used this period, {requested_msat} msat more requested")]
pub struct BudgetExceeded {
    /// The period's budget.
    pub budget_msat: u64,
    /// Already spent or reserved.
    pub used_msat: u64,
    /// What this payment would need (amount plus fee allowance).
    pub requested_msat: u64,
}

/// A reserved spend still waiting for its payment's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSpend {
    /// Its id.
    pub id: i64,
    /// The payment hash, once the payment started.
    pub payment_hash: Option<[u8; 32]>,
}

fn used_in_period(
    conn: &rusqlite::Connection,
    connection_id: i64,
    since: u64,
) -> rusqlite::Result<u64> {
    let used: i64 = conn.query_row(
        "SELECT COALESCE(SUM(amount_msat), 0) FROM spends
         WHERE connection_id = ?1 AND state IN ('reserved', 'settled') AND created_at >= ?2",
        params![connection_id, to_i64(since)],
        |r| r.get(0),
    )?;
    Ok(to_u64(used))
}

fn budget_of(conn: &rusqlite::Connection, connection_id: i64) -> Result<Option<Budget>, NwcError> {
    let row: Option<(Option<i64>, String)> = conn
        .query_row(
            "SELECT budget_msat, budget_renewal FROM connections WHERE id = ?1",
            [connection_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((amount, renewal)) = row else {
        return Err(NwcError::UnknownConnection(connection_id.to_string()));
    };
    let renewal = renewal
        .parse::<BudgetRenewal>()
        .map_err(|e| NwcError::Corrupt(e.to_string()))?;
    Ok(amount.map(|a| Budget {
        amount_msat: to_u64(a),
        renewal,
    }))
}

impl NwcStore {
    /// Reserves `amount_msat` for a payment of a connection, if its budget allows. Returns
    /// the spend's id. Connections without a budget always succeed (the spend is still
    /// recorded).
    pub fn reserve(
        &self,
        connection_id: i64,
        request_id: &str,
        payment_hash: Option<[u8; 32]>,
        amount_msat: u64,
        now: u64,
    ) -> Result<Result<i64, BudgetExceeded>, NwcError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if let Some(budget) = budget_of(&tx, connection_id)? {
            let used = used_in_period(&tx, connection_id, budget.renewal.period_start(now))?;
            if used.saturating_add(amount_msat) > budget.amount_msat {
                return Ok(Err(BudgetExceeded {
                    budget_msat: budget.amount_msat,
                    used_msat: used,
                    requested_msat: amount_msat,
                }));
            }
        }
        tx.execute(
            "INSERT INTO spends (connection_id, request_id, payment_hash, amount_msat, state,
                 created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'reserved', ?5, ?5)",
            params![
                connection_id,
                request_id,
                payment_hash.map(hex::encode),
                to_i64(amount_msat),
                to_i64(now)
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Ok(id))
    }

    /// Records the payment hash of a reserved spend (keysend learns it only once started).
    pub fn set_spend_hash(&self, spend_id: i64, payment_hash: [u8; 32]) -> Result<(), NwcError> {
        self.lock().execute(
            "UPDATE spends SET payment_hash = ?2 WHERE id = ?1",
            params![spend_id, hex::encode(payment_hash)],
        )?;
        Ok(())
    }

    /// Settles a reserved spend at what the payment cost (amount plus fees). Idempotent.
    pub fn settle_spend(&self, spend_id: i64, cost_msat: u64, now: u64) -> Result<(), NwcError> {
        self.lock().execute(
            "UPDATE spends SET state = 'settled', amount_msat = ?2, updated_at = ?3
             WHERE id = ?1 AND state = 'reserved'",
            params![spend_id, to_i64(cost_msat), to_i64(now)],
        )?;
        Ok(())
    }

    /// Releases a reserved spend whose payment failed or never started. Idempotent.
    pub fn release_spend(&self, spend_id: i64, now: u64) -> Result<(), NwcError> {
        self.lock().execute(
            "UPDATE spends SET state = 'released', updated_at = ?2
             WHERE id = ?1 AND state = 'reserved'",
            params![spend_id, to_i64(now)],
        )?;
        Ok(())
    }

    /// Reserved spends of a payment hash.
    pub fn spends_for_hash(&self, payment_hash: &[u8; 32]) -> Result<Vec<i64>, NwcError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id FROM spends WHERE payment_hash = ?1 AND state = 'reserved' ORDER BY id",
        )?;
        let ids = stmt
            .query_map([hex::encode(payment_hash)], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// Every reserved spend (to reconcile with the wallet after a restart or missed events).
    pub fn pending_spends(&self) -> Result<Vec<PendingSpend>, NwcError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT id, payment_hash FROM spends WHERE state = 'reserved'")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .map(|(id, hash)| PendingSpend {
                id,
                payment_hash: hash
                    .and_then(|h| hex::decode(h).ok())
                    .and_then(|b| <[u8; 32]>::try_from(b).ok()),
            })
            .collect())
    }

    /// A connection's budget and its use at `now`; `None` if it has no budget.
    pub fn budget_status(
        &self,
        connection_id: i64,
        now: u64,
    ) -> Result<Option<BudgetStatus>, NwcError> {
        let conn = self.lock();
        let Some(budget) = budget_of(&conn, connection_id)? else {
            return Ok(None);
        };
        let used_msat = used_in_period(&conn, connection_id, budget.renewal.period_start(now))?;
        Ok(Some(BudgetStatus {
            budget,
            used_msat,
            renews_at: budget.renewal.renews_at(now),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::ConnectionSpec;
    use crate::store::tests::Tmp;
    use nostr_sdk::RelayUrl;

    #[test]
    fn reserve_settle_release_and_periods() {
        let dir = Tmp::new("budget");
        let store = NwcStore::open(&dir.0).unwrap();
        let relays = [RelayUrl::parse("ws://127.0.0.1:1").unwrap()];
        let spec = ConnectionSpec::full("b").with_budget(10_000_000, BudgetRenewal::Daily);
        let c = store.create_connection(&spec, &relays).unwrap().connection;
        let t = 1_710_506_096; // a Friday, midday UTC
        let a = store
            .reserve(c.id, "r1", None, 6_000_000, t)
            .unwrap()
            .unwrap();
        let refused = store
            .reserve(c.id, "r2", None, 6_000_000, t)
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.used_msat, 6_000_000);
        // Settling at a lower cost frees the difference.
        store.settle_spend(a, 5_000_000, t).unwrap();
        store.settle_spend(a, 1, t).unwrap(); // idempotent: already settled
        let b = store
            .reserve(c.id, "r3", None, 5_000_000, t)
            .unwrap()
            .unwrap();
        assert!(store.reserve(c.id, "r4", None, 1, t).unwrap().is_err());
        store.release_spend(b, t).unwrap();
        let status = store.budget_status(c.id, t).unwrap().unwrap();
        assert_eq!(status.used_msat, 5_000_000);
        assert_eq!(status.renews_at, Some(1_710_547_200));
        // The next day starts afresh.
        let tomorrow = t + 86_400;
        assert!(store
            .reserve(c.id, "r5", None, 10_000_000, tomorrow)
            .unwrap()
            .is_ok());
        // Hash bookkeeping.
        let d = store
            .reserve(c.id, "r6", None, 0, tomorrow)
            .unwrap()
            .unwrap();
        store.set_spend_hash(d, [7; 32]).unwrap();
        assert_eq!(store.spends_for_hash(&[7; 32]).unwrap(), vec![d]);
        assert_eq!(store.pending_spends().unwrap().len(), 2);
        // No budget: always allowed.
        let free = store
            .create_connection(&ConnectionSpec::full("free"), &relays)
            .unwrap()
            .connection;
        assert!(store
            .reserve(free.id, "r7", None, u64::MAX / 2, t)
            .unwrap()
            .is_ok());
        assert_eq!(store.budget_status(free.id, t).unwrap(), None);
    }

    #[test]
    fn renewal_names() {
        for r in [
            BudgetRenewal::Daily,
            BudgetRenewal::Weekly,
            BudgetRenewal::Monthly,
            BudgetRenewal::Yearly,
            BudgetRenewal::Never,
        ] {
            assert_eq!(r.as_str().parse::<BudgetRenewal>(), Ok(r));
        }
        assert_eq!("total".parse::<BudgetRenewal>(), Ok(BudgetRenewal::Never));
        assert!("hourly".parse::<BudgetRenewal>().is_err());
        assert_eq!(BudgetRenewal::Never.renews_at(5), None);
        assert_eq!(
            BudgetRenewal::Weekly.period_start(1_710_506_096),
            1_710_115_200
        );
    }
}
