//! How a channel monitor is laid out in the store: a full copy now and then, and each update on
//! its own in between.
//!
//! A full `ChannelMonitor` grows with the channel's history (it keeps the HTLCs of every revoked
//! commitment, to punish a cheat), so writing it whole on every update makes each payment cost
//! more than the one before. Instead each update is stored on its own, and a full copy is written
//! on every [`MAX_PENDING_UPDATES`]th update (and whenever LDK persists without an update, as on
//! a new block), after which the updates it contains are removed.
//!
//! The layout is exactly LDK's `MonitorUpdatingPersister`'s (the full copy prefixed with its
//! sentinel, updates under `monitor_updates/<monitor>/<update id>`), so the node reads it back
//! with LDK's own reader ([`read_monitors`]) and a monitor stored whole by an older version reads
//! the same way. We do not use that persister for writing because its writes complete on their
//! own; ours must wait for the manager (see the parent module).

use std::collections::HashMap;
use std::ops::Deref;

use bitcoin::BlockHash;
use lightning::chain::chaininterface::{BroadcasterInterface, FeeEstimator};
use lightning::chain::channelmonitor::{ChannelMonitor, ChannelMonitorUpdate};
use lightning::ln::types::ChannelId;
use lightning::sign::ecdsa::EcdsaChannelSigner;
use lightning::sign::{EntropySource, SignerProvider};
use lightning::util::logger::Logger;
use lightning::util::persist::{
    KVStoreSync, MonitorName, MonitorUpdatingPersister,
    ARCHIVED_CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
    ARCHIVED_CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
    CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE, CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
    CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
    MONITOR_UPDATING_PERSISTER_PREPEND_SENTINEL,
};
use lightning::util::ser::Writeable;
use micronode_store::StoreWrite;

use crate::types::Store;

/// A full monitor is written on every this-many-th update; at most this many updates are replayed
/// on start-up.
pub(crate) const MAX_PENDING_UPDATES: u64 = 100;

/// Where the updates of an archived monitor are moved (beside LDK's `archived_monitors`).
pub(crate) const ARCHIVED_MONITOR_UPDATES_NAMESPACE: &str = "archived_monitor_updates";

/// LDK's update id of a closed channel's legacy update, after which no update follows.
const LEGACY_CLOSED_CHANNEL_UPDATE_ID: u64 = u64::MAX;

/// What one monitor write stores.
enum Content {
    /// The whole monitor (sentinel-prefixed), which contains every update up to `latest_update_id`.
    Full {
        bytes: Vec<u8>,
        latest_update_id: u64,
    },
    /// One update.
    Update { update_id: u64, bytes: Vec<u8> },
}

/// A monitor write waiting for the next manager write.
pub(super) struct PendingWrite {
    monitor_key: String,
    content: Content,
    /// The update LDK is told completed once this is on disk.
    pub(super) completes: Option<(ChannelId, u64)>,
}

impl PendingWrite {
    /// The whole monitor, as for a new channel.
    pub(super) fn full<S: EcdsaChannelSigner>(
        name: MonitorName,
        monitor: &ChannelMonitor<S>,
        completes: Option<(ChannelId, u64)>,
    ) -> PendingWrite {
        let mut bytes = Vec::with_capacity(
            MONITOR_UPDATING_PERSISTER_PREPEND_SENTINEL.len() + monitor.serialized_length(),
        );
        bytes.extend_from_slice(MONITOR_UPDATING_PERSISTER_PREPEND_SENTINEL);
        // Writing to a Vec cannot fail.
        let _ = monitor.write(&mut bytes);
        PendingWrite {
            monitor_key: name.to_string(),
            content: Content::Full {
                bytes,
                latest_update_id: monitor.get_latest_update_id(),
            },
            completes,
        }
    }

    /// What `update` (already applied to `monitor`) needs stored: the update alone, or the
    /// whole monitor on every [`MAX_PENDING_UPDATES`]th update and without an update.
    pub(super) fn for_update<S: EcdsaChannelSigner>(
        name: MonitorName,
        update: Option<&ChannelMonitorUpdate>,
        monitor: &ChannelMonitor<S>,
    ) -> PendingWrite {
        let completes = update.map(|u| (monitor.channel_id(), u.update_id));
        match update {
            Some(u)
                if u.update_id != LEGACY_CLOSED_CHANNEL_UPDATE_ID
                    && u.update_id % MAX_PENDING_UPDATES != 0 =>
            {
                PendingWrite {
                    monitor_key: name.to_string(),
                    content: Content::Update {
                        update_id: u.update_id,
                        bytes: u.encode(),
                    },
                    completes,
                }
            }
            _ => PendingWrite::full(name, monitor, completes),
        }
    }
}

/// The store writes for `batch` (in queue order): per monitor, its latest full copy, the updates
/// after it, and the removal of the stored updates that copy contains.
pub(super) fn store_writes(
    store: &Store,
    batch: &[PendingWrite],
) -> Result<Vec<StoreWrite>, lightning::io::Error> {
    let mut latest_full: HashMap<&str, (&[u8], u64)> = HashMap::new();
    for write in batch {
        if let Content::Full {
            bytes,
            latest_update_id,
        } = &write.content
        {
            latest_full.insert(&write.monitor_key, (bytes, *latest_update_id));
        }
    }
    let mut writes = Vec::new();
    for (key, (bytes, latest_update_id)) in &latest_full {
        writes.push(StoreWrite::put(
            CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
            CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
            key,
            bytes.to_vec(),
        ));
        for stored in stored_update_ids(store, key)? {
            if stored <= *latest_update_id {
                writes.push(StoreWrite::remove(
                    CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
                    key,
                    &stored.to_string(),
                ));
            }
        }
    }
    for write in batch {
        if let Content::Update { update_id, bytes } = &write.content {
            let contained = latest_full
                .get(write.monitor_key.as_str())
                .is_some_and(|(_, latest)| update_id <= latest);
            if !contained {
                writes.push(StoreWrite::put(
                    CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
                    &write.monitor_key,
                    &update_id.to_string(),
                    bytes.clone(),
                ));
            }
        }
    }
    Ok(writes)
}

/// The ids of the updates stored for the monitor under `key`.
fn stored_update_ids(store: &Store, key: &str) -> Result<Vec<u64>, lightning::io::Error> {
    Ok(KVStoreSync::list(
        store,
        CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
        key,
    )?
    .iter()
    .filter_map(|id| id.parse().ok())
    .collect())
}

/// Moves a monitor and its updates to the archive, in one transaction. LDK archives a monitor
/// only once the channel is closed and every output of it is resolved; nothing reads it back.
pub(super) fn archive(store: &Store, name: MonitorName) -> Result<(), lightning::io::Error> {
    let key = name.to_string();
    let monitor = KVStoreSync::read(
        store,
        CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
        CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
        &key,
    )?;
    let mut writes = vec![
        StoreWrite::put(
            ARCHIVED_CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
            ARCHIVED_CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
            &key,
            monitor,
        ),
        StoreWrite::remove(
            CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
            CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
            &key,
        ),
    ];
    for id in stored_update_ids(store, &key)? {
        let id = id.to_string();
        let update = KVStoreSync::read(
            store,
            CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
            &key,
            &id,
        )?;
        writes.push(StoreWrite::put(
            ARCHIVED_MONITOR_UPDATES_NAMESPACE,
            &key,
            &id,
            update,
        ));
        writes.push(StoreWrite::remove(
            CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
            &key,
            &id,
        ));
    }
    store.write_all(writes)
}

/// Stored monitors, each with the block it was last synced to.
pub type StoredMonitors<S> = Vec<(BlockHash, ChannelMonitor<S>)>;

/// Every stored monitor with its updates applied, by LDK's reader for this layout.
pub fn read_monitors<L, ES, SP, BI, FE>(
    store: std::sync::Arc<Store>,
    logger: L,
    entropy_source: ES,
    signer_provider: SP,
    broadcaster: BI,
    fee_estimator: FE,
) -> Result<StoredMonitors<<SP::Target as SignerProvider>::EcdsaSigner>, lightning::io::Error>
where
    L: Deref,
    L::Target: Logger,
    ES: Deref,
    ES::Target: EntropySource + Sized,
    SP: Deref,
    SP::Target: SignerProvider + Sized,
    BI: Deref,
    BI::Target: BroadcasterInterface,
    FE: Deref,
    FE::Target: FeeEstimator,
{
    MonitorUpdatingPersister::new(
        store,
        logger,
        MAX_PENDING_UPDATES,
        entropy_source,
        signer_provider,
        broadcaster,
        fee_estimator,
    )
    .read_all_channel_monitors_with_updates()
}
