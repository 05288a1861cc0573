//! Payment history, persisted in the node's store so a restart keeps every payment's status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use lightning::util::persist::KVStoreSync;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::error::NodeError;
use crate::types::Store;

/// The namespace payment records are stored under.
pub(crate) const PAYMENTS_NAMESPACE: &str = "payments";

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
    /// The creation index: 1 for the node's first payment, then one more for each new payment
    /// (set by the [`PaymentStore`] when the record is first stored). Pages are in this order.
    #[serde(default)]
    pub index: u64,
    /// The BOLT11 invoice's description, when it has one (filled by the [`PaymentStore`]).
    #[serde(default)]
    pub description: Option<String>,
    /// For a JIT invoice: the opening fee the node agreed its LSP may take from the payment,
    /// in msat (a payment skimmed by more is refused).
    #[serde(default)]
    pub lsp_fee_limit_msat: Option<u64>,
}

impl PaymentRecord {
    /// A pending inbound payment for an invoice of ours (its id is the payment hash).
    pub fn for_invoice(
        invoice: &lightning_invoice::Bolt11Invoice,
        amount_msat: Option<u64>,
    ) -> Self {
        use bitcoin::hashes::Hash as _;
        let hash = *invoice.payment_hash().as_byte_array();
        let mut record = Self::new_pending(
            hash,
            hash,
            PaymentDirection::Inbound,
            PaymentKind::Bolt11 {
                invoice: invoice.to_string(),
            },
            amount_msat,
        );
        record.expires_at = invoice.expires_at().map(|t| t.as_secs());
        record
    }

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
            index: 0,
            description: None,
            lsp_fee_limit_msat: None,
        }
    }

    fn key(&self) -> String {
        record_key(self.direction, &self.id)
    }
}

/// The description a BOLT11 invoice carries, if it is a direct one.
fn invoice_description(invoice: &str) -> Option<String> {
    use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescriptionRef};
    let invoice: Bolt11Invoice = invoice.trim().parse().ok()?;
    match invoice.description() {
        Bolt11InvoiceDescriptionRef::Direct(d) => Some(d.as_inner().0.clone()),
        Bolt11InvoiceDescriptionRef::Hash(_) => None,
    }
}

/// One page of the payment history, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentPage {
    /// The payments, newest first.
    pub payments: Vec<PaymentRecord>,
    /// When there are older payments: the creation index to continue before.
    pub next_before: Option<u64>,
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

/// When a change to a record reaches disk.
#[derive(Clone, Copy)]
enum Durability {
    /// Before the call returns.
    Now,
    /// With the next channel-manager write (see [`PaymentStore::update_with_manager`]).
    WithManager,
}

/// The payment history: in memory, written through to the store on every change (changes LDK
/// events report go with the next channel-manager write).
pub struct PaymentStore {
    records: Mutex<HashMap<String, PaymentRecord>>,
    /// The creation index the next new record gets.
    next_index: Mutex<u64>,
    /// Callers waiting for a payment to resolve, by record key.
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<PaymentRecord>>>>,
    /// Records changed by LDK events, waiting to be written with the next channel manager (see
    /// [`PaymentStore::update_with_manager`]), by record key.
    with_manager: Mutex<HashMap<String, PaymentRecord>>,
    /// Asks the channel-manager writer for a write.
    request_manager_write: OnceLock<Box<dyn Fn() + Send + Sync>>,
    store: Arc<Store>,
}

impl PaymentStore {
    /// Loads every record from the store. Records from before creation indexes existed get
    /// theirs now, in creation-time order, and are written back once.
    pub fn load(store: Arc<Store>) -> Result<Self, NodeError> {
        let mut records = HashMap::new();
        for (key, bytes) in store.read_namespace(PAYMENTS_NAMESPACE, "")? {
            let record: PaymentRecord = serde_json::from_slice(&bytes)
                .map_err(|e| NodeError::Internal(format!("corrupt payment record {key}: {e}")))?;
            records.insert(key, record);
        }
        let mut next_index = records.values().map(|r| r.index).max().unwrap_or(0) + 1;
        let mut unindexed: Vec<&mut PaymentRecord> =
            records.values_mut().filter(|r| r.index == 0).collect();
        unindexed.sort_by_key(|r| (r.created_at, r.id));
        let this_store = store.clone();
        for record in unindexed {
            record.index = next_index;
            next_index += 1;
            fill_description(record);
            write_record(&this_store, record)?;
        }
        Ok(Self {
            records: Mutex::new(records),
            next_index: Mutex::new(next_index),
            waiters: Mutex::new(HashMap::new()),
            with_manager: Mutex::new(HashMap::new()),
            request_manager_write: OnceLock::new(),
            store,
        })
    }

    /// Gives a record about to be stored its creation index (kept from `existing`, else the
    /// next one) and its description.
    fn prepare(&self, record: &mut PaymentRecord, existing: Option<&PaymentRecord>) {
        record.index = match existing {
            Some(old) => old.index,
            None => {
                let mut next = self.next_index.lock().unwrap_or_else(|p| p.into_inner());
                let index = *next;
                *next += 1;
                index
            }
        };
        fill_description(record);
    }

    fn persist(&self, record: &PaymentRecord) -> Result<(), NodeError> {
        write_record(&self.store, record)
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
    pub fn insert_new(&self, mut record: PaymentRecord) -> Result<(), NodeError> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let key = record.key();
        if records.contains_key(&key) {
            return Err(NodeError::DuplicatePayment(hex::encode(record.id)));
        }
        self.prepare(&mut record, None);
        self.persist(&record)?;
        records.insert(key, record.clone());
        drop(records);
        self.notify(&record);
        Ok(())
    }

    /// Inserts or replaces a record.
    pub fn upsert(&self, record: PaymentRecord) -> Result<(), NodeError> {
        self.upsert_as(record, Durability::Now)
    }

    fn upsert_as(
        &self,
        mut record: PaymentRecord,
        durability: Durability,
    ) -> Result<(), NodeError> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let key = record.key();
        self.prepare(&mut record, records.get(&key));
        self.store_change(&record, durability)?;
        records.insert(key, record.clone());
        drop(records);
        self.notify(&record);
        Ok(())
    }

    /// Writes `record` now, or queues it for the next channel-manager write.
    fn store_change(
        &self,
        record: &PaymentRecord,
        durability: Durability,
    ) -> Result<(), NodeError> {
        match durability {
            Durability::Now => self.persist(record),
            Durability::WithManager => {
                self.with_manager
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(record.key(), record.clone());
                if let Some(request) = self.request_manager_write.get() {
                    request();
                }
                Ok(())
            }
        }
    }

    /// Sets how a record changed by an LDK event asks for the channel-manager write that
    /// carries it (once; later calls are ignored).
    pub(crate) fn on_manager_write_needed(&self, request: Box<dyn Fn() + Send + Sync>) {
        let _ = self.request_manager_write.set(request);
    }

    /// [`PaymentStore::upsert`] for a change an LDK event reported: see
    /// [`PaymentStore::update_with_manager`].
    pub(crate) fn upsert_with_manager(&self, record: PaymentRecord) {
        // Queuing for the manager write cannot fail.
        let _ = self.upsert_as(record, Durability::WithManager);
    }

    /// [`PaymentStore::update`] for a change an LDK event reported. The record is written in
    /// the same transaction as the next channel manager, which is the write that makes LDK
    /// forget the event: until then a crash replays the event, so nothing is lost, and LDK's
    /// event loop does not wait on a disk write per payment (it also moves the peers'
    /// messages). Readers and waiters see the change at once.
    pub(crate) fn update_with_manager(
        &self,
        direction: PaymentDirection,
        id: &[u8; 32],
        f: impl FnOnce(&mut PaymentRecord),
    ) -> Option<PaymentRecord> {
        // Queuing for the manager write cannot fail.
        self.update_as(direction, id, f, Durability::WithManager)
            .ok()
            .flatten()
    }

    /// The records waiting for the next channel-manager write, as store writes. Taken: a
    /// writer that fails gives them back with [`PaymentStore::put_back_for_manager`].
    pub(crate) fn take_for_manager(&self) -> Result<Vec<(String, Vec<u8>)>, NodeError> {
        let mut waiting = self.with_manager.lock().unwrap_or_else(|p| p.into_inner());
        // Encoded before anything leaves the queue, so an error loses nothing.
        let writes = waiting
            .iter()
            .map(|(key, record)| {
                serde_json::to_vec(record)
                    .map(|bytes| (key.clone(), bytes))
                    .map_err(|e| NodeError::Internal(format!("cannot encode payment: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        waiting.clear();
        Ok(writes)
    }

    /// Queues again the records of a failed channel-manager write (unless a newer version of
    /// one is already queued).
    pub(crate) fn put_back_for_manager(&self, keys: impl IntoIterator<Item = String>) {
        let current = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let mut waiting = self.with_manager.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            if let Some(record) = current.get(&key) {
                waiting.entry(key).or_insert_with(|| record.clone());
            }
        }
    }

    /// Applies `f` to an existing record and persists it. Returns the updated record, or `None`
    /// if there is no such record.
    pub fn update(
        &self,
        direction: PaymentDirection,
        id: &[u8; 32],
        f: impl FnOnce(&mut PaymentRecord),
    ) -> Result<Option<PaymentRecord>, NodeError> {
        self.update_as(direction, id, f, Durability::Now)
    }

    fn update_as(
        &self,
        direction: PaymentDirection,
        id: &[u8; 32],
        f: impl FnOnce(&mut PaymentRecord),
        durability: Durability,
    ) -> Result<Option<PaymentRecord>, NodeError> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let Some(record) = records.get_mut(&record_key(direction, id)) else {
            return Ok(None);
        };
        f(record);
        record.updated_at = now_secs();
        let updated = record.clone();
        self.store_change(&updated, durability)?;
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

    /// Every record, oldest first (by creation index).
    pub fn list(&self) -> Vec<PaymentRecord> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<PaymentRecord> = records.values().cloned().collect();
        all.sort_by_key(|r| r.index);
        all
    }

    /// Up to `size` records created before creation index `before` (all when `None`), newest
    /// first.
    pub fn page(&self, size: usize, before: Option<u64>) -> PaymentPage {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let mut older: Vec<&PaymentRecord> = records
            .values()
            .filter(|r| before.is_none_or(|b| r.index < b))
            .collect();
        older.sort_by_key(|r| std::cmp::Reverse(r.index));
        let more = older.len() > size;
        let payments: Vec<PaymentRecord> = older.into_iter().take(size).cloned().collect();
        let next_before = if more {
            payments.last().map(|r| r.index)
        } else {
            None
        };
        PaymentPage {
            payments,
            next_before,
        }
    }
}

fn fill_description(record: &mut PaymentRecord) {
    if record.description.is_none() {
        if let PaymentKind::Bolt11 { invoice } = &record.kind {
            record.description = invoice_description(invoice);
        }
    }
}

fn write_record(store: &Store, record: &PaymentRecord) -> Result<(), NodeError> {
    let bytes = serde_json::to_vec(record)
        .map_err(|e| NodeError::Internal(format!("cannot encode payment: {e}")))?;
    store.write(PAYMENTS_NAMESPACE, "", &record.key(), bytes)?;
    Ok(())
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

    #[tokio::test]
    async fn event_changes_wait_for_the_manager_write_and_wake_at_once() {
        let (store, dir) = temp_store();
        let payments = PaymentStore::load(store.clone()).expect("load");
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = requests.clone();
        payments.on_manager_write_needed(Box::new(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        payments.insert_new(invoice(1, None)).expect("insert");
        let waiter = payments.resolved(PaymentDirection::Inbound, &[1; 32]);

        let updated = payments
            .update_with_manager(PaymentDirection::Inbound, &[1; 32], |r| {
                r.status = PaymentStatus::Succeeded
            })
            .expect("known record");
        assert_eq!(updated.status, PaymentStatus::Succeeded);
        assert_eq!(
            waiter.await.expect("woken").status,
            PaymentStatus::Succeeded
        );
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(payments
            .update_with_manager(PaymentDirection::Inbound, &[9; 32], |_| {})
            .is_none());

        // Not on disk until the manager writer takes it; a failed write queues it again.
        let status_on_disk = || {
            PaymentStore::load(store.clone())
                .expect("reload")
                .get(PaymentDirection::Inbound, &[1; 32])
                .expect("record")
                .status
        };
        assert_eq!(status_on_disk(), PaymentStatus::Pending);
        let taken = payments.take_for_manager().expect("encode");
        assert_eq!(taken.len(), 1);
        assert!(payments.take_for_manager().expect("encode").is_empty());
        payments.put_back_for_manager(taken.into_iter().map(|(key, _)| key));
        let taken = payments.take_for_manager().expect("encode");
        for (key, bytes) in taken {
            store
                .write(PAYMENTS_NAMESPACE, "", &key, bytes)
                .expect("write");
        }
        assert_eq!(status_on_disk(), PaymentStatus::Succeeded);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn records_from_before_indexes_get_them_in_creation_order() {
        let (store, dir) = temp_store();
        for (id, created_at) in [(1u8, 300u64), (2, 100), (3, 200)] {
            let mut record = invoice(id, None);
            record.created_at = created_at;
            let mut json = serde_json::to_value(&record).expect("json");
            let fields = json.as_object_mut().expect("object");
            fields.remove("index");
            fields.remove("description");
            store
                .write(
                    PAYMENTS_NAMESPACE,
                    "",
                    &record.key(),
                    serde_json::to_vec(&json).expect("bytes"),
                )
                .expect("write");
        }
        let payments = PaymentStore::load(store.clone()).expect("load");
        payments.insert_new(invoice(4, None)).expect("insert");
        let order = |p: &PaymentStore| -> Vec<u8> { p.list().iter().map(|r| r.id[0]).collect() };
        assert_eq!(order(&payments), vec![2, 3, 1, 4]);
        let first = payments.page(3, None);
        let ids: Vec<u8> = first.payments.iter().map(|r| r.id[0]).collect();
        assert_eq!(ids, vec![4, 1, 3]);
        let rest = payments.page(3, first.next_before);
        assert_eq!(rest.payments.len(), 1);
        assert_eq!(rest.payments[0].id[0], 2);
        assert_eq!(rest.next_before, None);
        drop(payments);
        let reloaded = PaymentStore::load(store).expect("reload");
        assert_eq!(order(&reloaded), vec![2, 3, 1, 4]);
        let _ = std::fs::remove_dir_all(dir);
    }
}
