//! Settings of one node.

use std::net::SocketAddr;
use std::path::PathBuf;

use bitcoin::Network;
use serde::{Deserialize, Serialize};

/// How the node runs its channels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelSettings {
    /// Confirmations a channel's funding needs before the channel is used.
    pub min_confirmations: u32,
    /// Announce new channels to the network (so others can route through them).
    pub announce_channels: bool,
    /// HTLCs the counterparty may have in flight to us at once (the protocol allows 483; LDK's
    /// default of 50 caps throughput).
    pub max_accepted_htlcs: u16,
    /// Base fee for forwarding, in msat.
    pub forwarding_fee_base_msat: u32,
    /// Proportional fee for forwarding, in millionths.
    pub forwarding_fee_proportional_millionths: u32,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            min_confirmations: 3,
            announce_channels: true,
            max_accepted_htlcs: 483,
            forwarding_fee_base_msat: 1000,
            forwarding_fee_proportional_millionths: 100,
        }
    }
}

/// Settings of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// Where the node keeps its database (one SQLite file) and secrets.
    pub data_dir: PathBuf,
    /// The Bitcoin network.
    pub network: Network,
    /// Where to accept Lightning peers; `None` accepts none (outbound only).
    pub listen_addr: Option<SocketAddr>,
    /// A short human name used in logs and the node announcement.
    pub alias: String,
    /// Channel settings.
    pub channels: ChannelSettings,
    /// How long a payment keeps retrying other routes, in seconds.
    pub payment_retry_secs: u64,
    /// Process received and forwarded HTLCs at this fixed cadence instead of LDK's randomized
    /// batching delay (log-normal, tens to hundreds of ms). `None` keeps LDK's delay, which hides
    /// payment timing from observers; a short interval lowers latency at that privacy cost.
    pub htlc_processing_interval: Option<std::time::Duration>,
}

impl NodeConfig {
    /// A config with defaults for the given directory and network.
    pub fn new(data_dir: impl Into<PathBuf>, network: Network) -> Self {
        Self {
            data_dir: data_dir.into(),
            network,
            listen_addr: None,
            alias: "micronode".into(),
            channels: ChannelSettings::default(),
            payment_retry_secs: 30,
            htlc_processing_interval: None,
        }
    }
}
