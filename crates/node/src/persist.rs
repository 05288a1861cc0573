//! Crash-safe ordering of channel-manager and channel-monitor writes.
//!
//! LDK force-closes a channel on start-up when the stored `ChannelManager` is older than the
//! stored `ChannelMonitor` (it cannot tell what the counterparty has seen). With plain
//! synchronous monitor persistence, a `kill -9` between a monitor write and the next manager
//! write leaves exactly that state. So monitor updates are written in this order instead:
//!
//! 1. LDK hands us an update; we capture the monitor's bytes and answer `InProgress`, which
//!    makes the manager record the update as in flight and hold the channel until it completes.
//! 2. The writer persists the `ChannelManager` (now recording those updates as in flight),
//! 3. then writes the captured monitors, 4. then tells LDK the updates completed.
//!
//! A crash at any point leaves a manager that is at least as new as every stored monitor (on
//! restart LDK replays in-flight updates the monitors lack). All manager writes, including the
//! background processor's, go through one writer that serializes the manager under a lock, so
//! the stored manager never moves backwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use lightning::chain::chainmonitor::Persist;
use lightning::chain::channelmonitor::{ChannelMonitor, ChannelMonitorUpdate};
use lightning::chain::ChannelMonitorUpdateStatus;
use lightning::ln::types::ChannelId;
use lightning::sign::ecdsa::EcdsaChannelSigner;
use lightning::util::persist::{
    KVStoreSync, MonitorName, CHANNEL_MANAGER_PERSISTENCE_KEY,
    CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE, CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
    CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE, CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning::util::ser::Writeable;

use crate::keys::KeysBackend;
use crate::types::{ChainMonitor, ChannelManager, Store};

/// A monitor write waiting for the next manager write.
struct PendingWrite {
    key: String,
    bytes: Vec<u8>,
    completes: Option<(ChannelId, u64)>,
}

/// Queues monitor updates until the manager that knows of them is on disk.
pub struct OrderedMonitorPersister {
    store: Arc<Store>,
    queue: Mutex<Vec<PendingWrite>>,
    /// Wakes the writer when something is queued.
    pub(crate) wake: tokio::sync::Notify,
}

impl OrderedMonitorPersister {
    /// A persister writing to `store`.
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            queue: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
        }
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
        let write = PendingWrite {
            key: monitor_name.to_string(),
            bytes: monitor.encode(),
            completes: Some((monitor.channel_id(), monitor.get_latest_update_id())),
        };
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(write);
        self.wake.notify_one();
        ChannelMonitorUpdateStatus::InProgress
    }

    fn update_persisted_channel(
        &self,
        monitor_name: MonitorName,
        update: Option<&ChannelMonitorUpdate>,
        monitor: &ChannelMonitor<S>,
    ) -> ChannelMonitorUpdateStatus {
        let write = PendingWrite {
            key: monitor_name.to_string(),
            bytes: monitor.encode(),
            completes: update.map(|u| (monitor.channel_id(), u.update_id)),
        };
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(write);
        self.wake.notify_one();
        ChannelMonitorUpdateStatus::InProgress
    }

    fn archive_persisted_channel(&self, monitor_name: MonitorName) {
        Persist::<S>::archive_persisted_channel(&*self.store, monitor_name)
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

    /// Serializes the manager *now*, under the writer's lock, and writes it.
    pub fn persist_now(&self) -> Result<(), lightning::io::Error> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(manager) = self.manager.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        self.store.write(
            CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
            CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
            CHANNEL_MANAGER_PERSISTENCE_KEY,
            manager.encode(),
        )
    }

    /// Writes the manager, then the queued monitors, then completes their updates. On a write
    /// error nothing completes and the batch is queued again.
    pub fn flush(&self, persister: &OrderedMonitorPersister, chain_monitor: &ChainMonitor<K>) {
        let batch = persister.take();
        if batch.is_empty() {
            return;
        }
        let written = self.persist_now().and_then(|()| {
            let mut latest: HashMap<&str, &[u8]> = HashMap::new();
            for write in &batch {
                latest.insert(&write.key, &write.bytes);
            }
            for (key, bytes) in latest {
                self.store.write(
                    CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
                    CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
                    key,
                    bytes.to_vec(),
                )?;
            }
            Ok(())
        });
        match written {
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
            }
        }
    }
}

/// The store the background processor sees: every write of the manager goes through the
/// [`ManagerWriter`] (which re-serializes it under its lock) instead of using the processor's
/// possibly older bytes.
pub struct ProcessorStore<K: KeysBackend> {
    store: Arc<Store>,
    writer: Arc<ManagerWriter<K>>,
}

impl<K: KeysBackend> ProcessorStore<K> {
    /// Wraps the node's store.
    pub fn new(store: Arc<Store>, writer: Arc<ManagerWriter<K>>) -> Self {
        Self { store, writer }
    }
}

impl<K: KeysBackend> KVStoreSync for ProcessorStore<K> {
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
            return self.writer.persist_now();
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
