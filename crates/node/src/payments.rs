//! Payment history, persisted in the node's store so a restart keeps every payment's status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use lightning::util::persist::KVStoreSync;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::error::NodeError;
use crate::types::Store;

const PAYMENTS_NAMESPACE: &str = "payments";

/// Which way the money moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentDirection {
    /// We received it.
    Inbound,
    /// We sent it.
    Outbound,
}

/// Where a payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Not settled yet (an open invoice, or a payment in flight).
    Pending,
    /// Settled.
    Succeeded,
    /// Failed for good (or an invoice that expired unpaid).
    Failed,
}

/// What kind of payment it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    /// A BOLT11 invoice payment.
    Bolt11 {
        /// The invoice, as text.
        invoice: String,
    },
    /// A spontaneous (keysend) payment.
    Keysend,
}

/// One payment in the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// The payment id: the payment hash for BOLT11 payments and for received payments.
    pub id: [u8; 32],
    /// The payment hash.
    pub payment_hash: [u8; 32],
    /// The preimage, once known.
    pub preimage: Option<[u8; 32]>,
    /// Which way.
    pub direction: PaymentDirection,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The kind of payment.
    pub kind: PaymentKind,
    /// The amount the recipient gets (msat), when known.
    pub amount_msat: Option<u64>,
    /// Routing fees paid (outbound, msat).
    pub fee_msat: Option<u64>,
    /// The counterparty node (keysend destination), if known.
    pub counterparty: Option<String>,
    /// Why it failed, if it did.
    pub failure_reason: Option<String>,
    /// Unix seconds when it was created.
    pub created_at: u64,
    /// Unix seconds when it last changed.
    pub updated_at: u64,
    /// For invoices we issued: Unix seconds when the invoice expires.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

impl PaymentRecord {
    /// A new pending record.
    pub fn new_pending(
        id: [u8; 32],
        payment_hash: [u8; 32],
        direction: PaymentDirection,
        kind: PaymentKind,
        amount_msat: Option<u64>,
    ) -> Self {
        let now = now_secs();
        Self {
            id,
            payment_hash,
            preimage: None,
            direction,
            status: PaymentStatus::Pending,
            kind,
            amount_msat,
            fee_msat: None,
            counterparty: None,
            failure_reason: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
        }
    }

    fn key(&self) -> String {
        record_key(self.direction, &self.id)
    }
}

fn record_key(direction: PaymentDirection, id: &[u8; 32]) -> String {
    let prefix = match direction {
        PaymentDirection::Inbound => "in",
        PaymentDirection::Outbound => "out",
    };
    format!("{prefix}_{}", hex::encode(id))
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The payment history: in memory, written through to the store on every change.
pub struct PaymentStore {
    records: Mutex<HashMap<String, PaymentRecord>>,
    /// Callers waiting for a payment to resolve, by record key.
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<PaymentRecord>>>>,
    store: Arc<Store>,
}

impl PaymentStore {
    /// Loads every record from the store.
    pub fn load(store: Arc<Store>) -> Result<Self, NodeError> {
        let mut records = HashMap::new();
        for key in store.list(PAYMENTS_NAMESPACE, "")? {
            let bytes = store.read(PAYMENTS_NAMESPACE, "", &key)?;
            let record: PaymentRecord = serde_json::from_slice(&bytes)
                .map_err(|e| NodeError::Internal(format!("corrupt payment record {key}: {e}")))?;
            records.insert(key, record);
        }
        Ok(Self {
            records: Mutex::new(records),
            waiters: Mutex::new(HashMap::new()),
            store,
        })
    }

    fn persist(&self, record: &PaymentRecord) -> Result<(), NodeError> {
        let bytes = serde_json::to_vec(record)
            .map_err(|e| NodeError::Internal(format!("cannot encode payment: {e}")))?;
        self.store
            .write(PAYMENTS_NAMESPACE, "", &record.key(), bytes)?;
        Ok(())
    }

    /// Wakes whoever waits for this record, if it is resolved.
    fn notify(&self, record: &PaymentRecord) {
        if record.status == PaymentStatus::Pending {
            return;
        }
        let waiting = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&record.key());
        for waiter in waiting.into_iter().flatten() {
            let _ = waiter.send(record.clone());
        }
    }

    /// A receiver that gets the record once it is resolved (succeeded or failed). Register
    /// before reading the current state, so a resolution in between is not missed.
    pub fn resolved(
        &self,
        direction: PaymentDirection,
        id: &[u8; 32],
    ) -> oneshot::Receiver<PaymentRecord> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        let list = waiters.entry(record_key(direction, id)).or_default();
        list.retain(|w| !w.is_closed());
        list.push(tx);
        rx
    }

    /// Drops waiters for a record that nobody listens to any more.
    pub fn prune_waiters(&self, direction: PaymentDirection, id: &[u8; 32]) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        let key = record_key(direction, id);
        if let Some(list) = waiters.get_mut(&key) {
            list.retain(|w| !w.is_closed());
            if list.is_empty() {
                waiters.remove(&key);
            }
        }
    }

    /// Inserts a new record; fails if one with the same id and direction exists.
    pub fn insert_new(&self, record: PaymentRecord) -> Result<(), NodeError> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let key = record.key();
        if records.contains_key(&key) {
            return Err(NodeError::DuplicatePayment(hex::encode(record.id)));
        }
        self.persist(&record)?;
        records.insert(key, record.clone());
        drop(records);
        self.notify(&record);
        Ok(())
    }

    /// Inserts or replaces a record.
    pub fn upsert(&self, record: PaymentRecord) -> Result<(), NodeError> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        self.persist(&record)?;
        records.insert(record.key(), record.clone());
        drop(records);
        self.notify(&record);
        Ok(())
    }

    /// Applies `f` to an existing record and persists it. Returns the updated record, or `None`
    /// if there is no such record.
    pub fn update(
        &self,
        direction: PaymentDirection,
        id: &[u8; 32],
        f: impl FnOnce(&mut PaymentRecord),
    ) -> Result<Option<PaymentRecord>, NodeError> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let Some(record) = records.get_mut(&record_key(direction, id)) else {
            return Ok(None);
        };
        f(record);
        record.updated_at = now_secs();
        let updated = record.clone();
        self.persist(&updated)?;
        drop(records);
        self.notify(&updated);
        Ok(Some(updated))
    }

    /// Marks our unpaid invoices that expired before `now` (Unix seconds) as failed; returns how
    /// many. A payment LDK still accepts later turns the record back to succeeded.
    pub fn fail_expired_invoices(&self, now: u64) -> Result<usize, NodeError> {
        let expired: Vec<[u8; 32]> = {
            let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
            records
                .values()
                .filter(|r| {
                    r.direction == PaymentDirection::Inbound
                        && r.status == PaymentStatus::Pending
                        && r.expires_at.is_some_and(|t| t < now)
                })
                .map(|r| r.id)
                .collect()
        };
        for id in &expired {
            self.update(PaymentDirection::Inbound, id, |r| {
                if r.status == PaymentStatus::Pending {
                    r.status = PaymentStatus::Failed;
                    r.failure_reason = Some("invoice expired unpaid".into());
                }
            })?;
        }
        Ok(expired.len())
    }

    /// One record.
    pub fn get(&self, direction: PaymentDirection, id: &[u8; 32]) -> Option<PaymentRecord> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.get(&record_key(direction, id)).cloned()
    }

    /// Every record, oldest first.
    pub fn list(&self) -> Vec<PaymentRecord> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<PaymentRecord> = records.values().cloned().collect();
        all.sort_by_key(|r| (r.created_at, r.id));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (Arc<Store>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mn-payments-{}", rand::random::<u64>()));
        (Arc::new(Store::open(&dir).expect("store")), dir)
    }

    fn invoice(id: u8, expires_at: Option<u64>) -> PaymentRecord {
        let mut r = PaymentRecord::new_pending(
            [id; 32],
            [id; 32],
            PaymentDirection::Inbound,
            PaymentKind::Bolt11 {
                invoice: "lnbcrt...".into(),
            },
            Some(1000),
        );
        r.expires_at = expires_at;
        r
    }

    #[tokio::test]
    async fn expired_invoices_fail_and_waiters_wake() {
        let (store, dir) = temp_store();
        let payments = PaymentStore::load(store.clone()).expect("load");
        payments.insert_new(invoice(1, Some(100))).expect("insert");
        payments
            .insert_new(invoice(2, Some(10_000)))
            .expect("insert");
        payments.insert_new(invoice(3, None)).expect("insert");
        let waiter = payments.resolved(PaymentDirection::Inbound, &[1; 32]);

        assert_eq!(payments.fail_expired_invoices(5_000).expect("expire"), 1);
        let woke = waiter.await.expect("woken");
        assert_eq!(woke.status, PaymentStatus::Failed);
        assert_eq!(
            woke.failure_reason.as_deref(),
            Some("invoice expired unpaid")
        );
        let status = |p: &PaymentStore, id: u8| {
            p.get(PaymentDirection::Inbound, &[id; 32])
                .expect("record")
                .status
        };
        assert_eq!(status(&payments, 2), PaymentStatus::Pending);
        assert_eq!(status(&payments, 3), PaymentStatus::Pending);

        // The change is durable, and a duplicate insert is refused.
        drop(payments);
        let reloaded = PaymentStore::load(store).expect("reload");
        assert_eq!(status(&reloaded, 1), PaymentStatus::Failed);
        assert!(matches!(
            reloaded.insert_new(invoice(2, None)),
            Err(NodeError::DuplicatePayment(_))
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
