//! Crash-safe ordering of channel-manager and channel-monitor writes.
//!
//! LDK force-closes a channel on start-up when the stored `ChannelManager` is older than the
//! stored `ChannelMonitor` (it cannot tell what the counterparty has seen). With plain
//! synchronous monitor persistence, a `kill -9` between a monitor write and the next manager
//! write leaves exactly that state. So monitor updates are written this way instead:
//!
//! 1. LDK hands us an update; we capture the monitor's bytes and answer `InProgress`, which
//!    makes the manager record the update as in flight and hold the channel until it completes.
//! 2. The writer serializes the `ChannelManager` (now recording those updates as in flight) and
//!    writes it together with the captured monitors in one SQLite transaction,
//! 3. then tells LDK the updates completed.
//!
//! The transaction makes the manager and its monitors reach disk together or not at all, so a
//! crash at any point leaves a manager at least as new as every stored monitor (on restart LDK
//! replays in-flight updates the monitors lack).
//!
//! The background processor's own manager writes are requests to this writer, not writes: they
//! return at once and are coalesced with the next batch (group commit). Serializing the manager
//! is the largest CPU cost of a payment (it carries every recent outbound payment), and the
//! processor also moves messages between peers, so it must not wait on it. One writer, holding
//! its lock for the whole batch, means the stored manager never moves backwards. A crash can
//! lose manager changes that came with no monitor update (a payment not yet committed to a
//! channel, say); LDK is built to resume from such a manager, and the payment store marks a
//! payment LDK no longer knows as failed on start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use lightning::chain::chainmonitor::Persist;
use lightning::chain::channelmonitor::{ChannelMonitor, ChannelMonitorUpdate};
use lightning::chain::ChannelMonitorUpdateStatus;
use lightning::sign::ecdsa::EcdsaChannelSigner;
use lightning::util::persist::{
    KVStoreSync, MonitorName, CHANNEL_MANAGER_PERSISTENCE_KEY,
    CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE, CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning::util::ser::Writeable;

use micronode_store::StoreWrite;

mod monitor_writes;

pub use monitor_writes::read_monitors;
use monitor_writes::{store_writes, PendingWrite};

use crate::keys::KeysBackend;
use crate::payments::{PaymentStore, PAYMENTS_NAMESPACE};
use crate::types::{ChainMonitor, ChannelManager, Store};

/// Queues monitor updates until the manager that knows of them is on disk.
pub struct OrderedMonitorPersister {
    store: Arc<Store>,
    queue: Mutex<Vec<PendingWrite>>,
    /// The background processor asked for a manager write that has not happened yet.
    manager_due: AtomicBool,
    /// Wakes the writer when something is queued.
    pub(crate) wake: tokio::sync::Notify,
}

impl OrderedMonitorPersister {
    /// A persister writing to `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            queue: Mutex::new(Vec::new()),
            manager_due: AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Asks the writer for a manager write (coalesced with the next batch).
    pub(crate) fn request_manager_write(&self) {
        self.manager_due.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn queue_write(&self, write: PendingWrite) -> ChannelMonitorUpdateStatus {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(write);
        self.wake.notify_one();
        ChannelMonitorUpdateStatus::InProgress
    }

    fn take(&self) -> Vec<PendingWrite> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn put_back(&self, mut batch: Vec<PendingWrite>) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        batch.append(&mut queue);
        *queue = batch;
    }
}

impl<S: EcdsaChannelSigner> Persist<S> for OrderedMonitorPersister {
    fn persist_new_channel(
        &self,
        monitor_name: MonitorName,
        monitor: &ChannelMonitor<S>,
    ) -> ChannelMonitorUpdateStatus {
        // LDK forbids mixing `Completed` and `InProgress`, so a new monitor is queued too. If the
        // manager reaches disk and the monitor does not, LDK discards the channel on restart: its
        // funding was never broadcast, because that waits for this write to complete.
        let completes = Some((monitor.channel_id(), monitor.get_latest_update_id()));
        self.queue_write(PendingWrite::full(monitor_name, monitor, completes))
    }

    fn update_persisted_channel(
        &self,
        monitor_name: MonitorName,
        update: Option<&ChannelMonitorUpdate>,
        monitor: &ChannelMonitor<S>,
    ) -> ChannelMonitorUpdateStatus {
        self.queue_write(PendingWrite::for_update(monitor_name, update, monitor))
    }

    fn archive_persisted_channel(&self, monitor_name: MonitorName) {
        if let Err(e) = monitor_writes::archive(&self.store, monitor_name) {
            // The monitor stays where it is, as if it had not been resolved yet.
            tracing::warn!(error = %e, "cannot archive a resolved channel monitor");
        }
    }
}

/// The one writer of the channel manager.
pub struct ManagerWriter<K: KeysBackend> {
    store: Arc<Store>,
    manager: OnceLock<Weak<ChannelManager<K>>>,
    lock: Mutex<()>,
}

impl<K: KeysBackend> ManagerWriter<K> {
    /// A writer for `store`; call [`ManagerWriter::attach`] once the manager exists.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            manager: OnceLock::new(),
            lock: Mutex::new(()),
        }
    }

    /// Tells the writer which manager to serialize.
    pub fn attach(&self, manager: &Arc<ChannelManager<K>>) {
        let _ = self.manager.set(Arc::downgrade(manager));
    }

    /// Writes the manager together with the queued monitors in one transaction, then completes
    /// their updates. Does nothing when neither a monitor update nor a manager write is due. On
    /// a write error nothing completes and everything is due again.
    pub fn flush(
        &self,
        persister: &OrderedMonitorPersister,
        chain_monitor: &ChainMonitor<K>,
        payments: &PaymentStore,
    ) {
        // Held for the whole batch: a later batch's manager never reaches disk before this one's.
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let manager_due = persister.manager_due.swap(false, Ordering::SeqCst);
        let batch = persister.take();
        if batch.is_empty() && !manager_due {
            return;
        }
        match self.write_batch(&batch, payments) {
            Ok(()) => {
                for (channel_id, update_id) in batch.iter().filter_map(|w| w.completes) {
                    if let Err(e) = chain_monitor.channel_monitor_updated(channel_id, update_id) {
                        tracing::error!(%channel_id, update_id, error = ?e, "cannot complete a monitor update");
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot persist channel state; will retry");
                persister.put_back(batch);
                // The manager is serialized again on the retry; payment records wait for it.
                if manager_due {
                    persister.manager_due.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    /// The manager, serialized now, the payment records waiting for it and the queued monitor
    /// writes, in one transaction.
    fn write_batch(
        &self,
        batch: &[PendingWrite],
        payments: &PaymentStore,
    ) -> Result<(), lightning::io::Error> {
        let mut writes = Vec::with_capacity(batch.len() + 1);
        if let Some(manager) = self.manager.get().and_then(Weak::upgrade) {
            writes.push(StoreWrite::put(
                CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
                CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
                CHANNEL_MANAGER_PERSISTENCE_KEY,
                manager.encode(),
            ));
        }
        // Taken after the manager was serialized: a record whose event the serialized manager
        // no longer holds was queued before, so it is in this transaction.
        let records = payments.take_for_manager().map_err(|e| {
            lightning::io::Error::new(lightning::io::ErrorKind::Other, e.to_string())
        })?;
        for (key, bytes) in &records {
            writes.push(StoreWrite::put(PAYMENTS_NAMESPACE, "", key, bytes.clone()));
        }
        writes.extend(store_writes(&self.store, batch)?);
        let written = self.store.write_all(writes);
        if written.is_err() {
            payments.put_back_for_manager(records.into_iter().map(|(key, _)| key));
        }
        written
    }
}

/// The store the background processor sees: a write of the manager becomes a request to the
/// [`ManagerWriter`] (which re-serializes the manager when it writes its next batch) instead of
/// a write of the processor's possibly older bytes.
pub struct ProcessorStore {
    store: Arc<Store>,
    persister: Arc<OrderedMonitorPersister>,
}

impl ProcessorStore {
    /// Wraps the node's store.
    pub fn new(store: Arc<Store>, persister: Arc<OrderedMonitorPersister>) -> Self {
        Self { store, persister }
    }
}

impl KVStoreSync for ProcessorStore {
    fn read(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
    ) -> Result<Vec<u8>, lightning::io::Error> {
        self.store.read(primary, secondary, key)
    }
    fn write(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
        buf: Vec<u8>,
    ) -> Result<(), lightning::io::Error> {
        if primary == CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE
            && secondary == CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE
            && key == CHANNEL_MANAGER_PERSISTENCE_KEY
        {
            self.persister.request_manager_write();
            return Ok(());
        }
        self.store.write(primary, secondary, key, buf)
    }
    fn remove(
        &self,
        primary: &str,
        secondary: &str,
        key: &str,
        lazy: bool,
    ) -> Result<(), lightning::io::Error> {
        self.store.remove(primary, secondary, key, lazy)
    }
    fn list(&self, primary: &str, secondary: &str) -> Result<Vec<String>, lightning::io::Error> {
        self.store.list(primary, secondary)
    }
}
