//! Settings of one node.

use std::net::SocketAddr;
use std::path::PathBuf;

use bitcoin::Network;
use serde::{Deserialize, Serialize};

/// The default on-chain reserve per anchor channel: enough to bump a commitment and a few
/// HTLC claims by CPFP at about 50 sat/vB.
pub const DEFAULT_ANCHOR_RESERVE_SAT: u64 = 25_000;

/// How the node runs its channels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelSettings {
    /// Confirmations a channel's funding needs before the channel is used (channels below
    /// [`LARGE_CHANNEL_SAT`]).
    pub min_confirmations: u32,
    /// Confirmations required of a peer-funded channel of [`LARGE_CHANNEL_SAT`] or more. LDK
    /// force-closes a channel whose funding a reorg takes out of the chain (see
    /// `docs/reorgs.md`), so larger channels wait deeper.
    pub large_channel_min_confirmations: u32,
    /// Announce new channels to the network (so others can route through them).
    pub announce_channels: bool,
    /// HTLCs the counterparty may have in flight to us at once (the protocol allows 483; LDK's
    /// default of 50 caps throughput).
    pub max_accepted_htlcs: u16,
    /// Base fee for forwarding, in msat.
    pub forwarding_fee_base_msat: u32,
    /// Proportional fee for forwarding, in millionths.
    pub forwarding_fee_proportional_millionths: u32,
    /// On-chain funds kept per anchor channel to pay for fee bumps (CPFP of a commitment,
    /// HTLC claims), in sat. A channel that would leave the wallet below this amount times the
    /// number of anchor channels is refused, opened or accepted. See `docs/anchors.md`.
    pub anchor_reserve_sat: u64,
    /// The most channels the node has at once, in any state; one more is refused, opened or
    /// accepted (0: no cap). A host caps each tenant.
    pub max_channels: u32,
    /// The most peers the node connects to at once (0: no cap).
    pub max_peers: u32,
}

/// The channel size from which [`ChannelSettings::large_channel_min_confirmations`] applies.
pub const LARGE_CHANNEL_SAT: u64 = 1_000_000;

impl ChannelSettings {
    /// The defaults for a network: on mainnet 3 confirmations, 6 from [`LARGE_CHANNEL_SAT`];
    /// on testnet (deep reorgs are common there) 6; elsewhere 3.
    pub fn for_network(network: Network) -> Self {
        let (small, large) = match network {
            Network::Bitcoin => (3, 6),
            Network::Testnet | Network::Testnet4 => (6, 6),
            _ => (3, 3),
        };
        Self {
            min_confirmations: small,
            large_channel_min_confirmations: large,
            ..Self::default()
        }
    }

    /// The confirmations a channel of `channel_sat` needs.
    pub fn min_confirmations_for(&self, channel_sat: u64) -> u32 {
        if channel_sat >= LARGE_CHANNEL_SAT {
            self.large_channel_min_confirmations
                .max(self.min_confirmations)
        } else {
            self.min_confirmations
        }
        .max(1)
    }

    /// Requires `n` confirmations of every channel, whatever its size.
    pub fn set_min_confirmations(&mut self, n: u32) {
        self.min_confirmations = n;
        self.large_channel_min_confirmations = n;
    }
}

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            min_confirmations: 3,
            large_channel_min_confirmations: 3,
            announce_channels: true,
            max_accepted_htlcs: 483,
            forwarding_fee_base_msat: 1000,
            forwarding_fee_proportional_millionths: 100,
            anchor_reserve_sat: DEFAULT_ANCHOR_RESERVE_SAT,
            max_channels: 0,
            max_peers: 0,
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
    /// Inbound liquidity: JIT channels served (a gateway) or bought (a tenant).
    pub liquidity: LiquiditySettings,
    /// How peers are reached (directly or through SOCKS5) and which may connect.
    pub peer_network: crate::peer_net::PeerNetwork,
    /// Where the node's state (LDK's, payments, wallet) is stored.
    pub store: StoreChoice,
}

/// Where a node stores its state.
#[derive(Clone, Debug, Default)]
pub enum StoreChoice {
    /// The embedded default: one SQLite file in the node's data directory.
    #[default]
    SqliteInDataDir,
    /// A store opened by the caller: a fleet tenant's sealed rows in PostgreSQL, fenced by the
    /// lease the host holds.
    Given(std::sync::Arc<crate::types::Store>),
}

impl PartialEq for StoreChoice {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StoreChoice::SqliteInDataDir, StoreChoice::SqliteInDataDir) => true,
            (StoreChoice::Given(a), StoreChoice::Given(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for StoreChoice {}

impl NodeConfig {
    /// A config with defaults for the given directory and network.
    pub fn new(data_dir: impl Into<PathBuf>, network: Network) -> Self {
        Self {
            data_dir: data_dir.into(),
            network,
            listen_addr: None,
            alias: "micronode".into(),
            channels: ChannelSettings::for_network(network),
            payment_retry_secs: 30,
            htlc_processing_interval: None,
            liquidity: LiquiditySettings::default(),
            peer_network: Default::default(),
            store: StoreChoice::default(),
        }
    }
}

/// JIT channels (LSPS2): a gateway serves them, a tenant buys them from its LSP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiquiditySettings {
    /// Serve LSPS2: open a channel to a client just in time for its first payment.
    pub lsps2_service: Option<Lsps2ServiceSettings>,
    /// The LSP this node buys JIT channels from when an invoice needs more inbound capacity
    /// than its channels have.
    pub lsp: Option<LspSettings>,
}

/// What a gateway charges for a JIT channel and the limits it serves (host configuration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lsps2ServiceSettings {
    /// The smallest opening fee, in msat.
    pub min_fee_msat: u64,
    /// The opening fee in millionths of the payment (the larger of the two is charged).
    pub proportional_millionths: u32,
    /// The smallest payment that buys a channel, in msat.
    pub min_payment_msat: u64,
    /// The largest payment that buys a channel, in msat.
    pub max_payment_msat: u64,
    /// What a JIT channel holds beyond the payment it carries (less the fee), in sat: inbound
    /// capacity for the client's next payments, and room for the gateway's reserve.
    pub channel_extra_sat: u64,
    /// Blocks the gateway promises to keep the channel open.
    pub min_lifetime_blocks: u32,
    /// The longest `to_self_delay` the client may ask of the gateway.
    pub max_client_to_self_delay: u32,
}

impl Default for Lsps2ServiceSettings {
    fn default() -> Self {
        Self {
            min_fee_msat: 2_000_000,
            proportional_millionths: 10_000,
            min_payment_msat: 10_000_000,
            max_payment_msat: 1_000_000_000,
            channel_extra_sat: 100_000,
            min_lifetime_blocks: 1008,
            max_client_to_self_delay: 2016,
        }
    }
}

/// The LSP a tenant buys JIT channels from, and the most it pays for one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LspSettings {
    /// The LSP's node id.
    pub node_id: bitcoin::secp256k1::PublicKey,
    /// Where the LSP accepts Lightning peers.
    pub addr: SocketAddr,
    /// The most the node agrees to pay for a channel, in msat (an offer above it is refused).
    pub max_fee_msat: u64,
    /// The most the node agrees to pay in millionths of the payment.
    pub max_proportional_millionths: u32,
}

impl LspSettings {
    /// An LSP at `node_id@addr` with the default fee limits (5,000 sat, 2 %).
    pub fn new(node_id: bitcoin::secp256k1::PublicKey, addr: SocketAddr) -> Self {
        Self {
            node_id,
            addr,
            max_fee_msat: 5_000_000,
            max_proportional_millionths: 20_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_follow_the_network_and_the_channel_size() {
        let mainnet = ChannelSettings::for_network(Network::Bitcoin);
        assert_eq!(mainnet.min_confirmations_for(LARGE_CHANNEL_SAT - 1), 3);
        assert_eq!(mainnet.min_confirmations_for(LARGE_CHANNEL_SAT), 6);
        let testnet = ChannelSettings::for_network(Network::Testnet);
        assert_eq!(testnet.min_confirmations_for(1_000), 6);
        let mut regtest = ChannelSettings::for_network(Network::Regtest);
        assert_eq!(regtest.min_confirmations_for(10 * LARGE_CHANNEL_SAT), 3);
        regtest.set_min_confirmations(1);
        assert_eq!(regtest.min_confirmations_for(10 * LARGE_CHANNEL_SAT), 1);
        regtest.set_min_confirmations(0);
        assert_eq!(
            regtest.min_confirmations_for(1),
            1,
            "never zero-conf by accident"
        );
    }
}
