//! Settings of `micronode node run`, layered: a TOML file, then `MICRONODE_*` environment
//! variables, then command-line flags (each overrides the one before), then built-in defaults.
//!
//! One struct serves as the TOML schema and the clap arguments, so a setting is declared once.

use micronode_node::edge::IpAllowList;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcoin::Network;
use micronode_chain::RpcAuth;
use micronode_node::{ChannelSettings, NodeConfig};
use serde::Deserialize;

/// Errors in the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is invalid or a required one is missing.
    #[error("{0}")]
    Invalid(String),
    /// The bitcoind RPC settings are unusable.
    #[error(transparent)]
    Endpoint(#[from] micronode_chain::EndpointError),
    /// Mainnet without the explicit flag.
    #[error(
        "refusing to run on mainnet: micronode is young; pass --allow-mainnet if you accept the risk"
    )]
    MainnetRefused,
}

/// Parses a network name; accepts `mainnet` for Bitcoin's main network.
pub fn parse_network(s: &str) -> Result<Network, String> {
    match s.to_ascii_lowercase().as_str() {
        "mainnet" | "bitcoin" | "main" => Ok(Network::Bitcoin),
        "testnet" | "testnet3" => Ok(Network::Testnet),
        "testnet4" => Ok(Network::Testnet4),
        "signet" => Ok(Network::Signet),
        "regtest" => Ok(Network::Regtest),
        other => Err(format!(
            "unknown network {other:?} (regtest, signet, testnet, mainnet)"
        )),
    }
}

fn de_network<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Network>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    s.map(|s| parse_network(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// Every setting of a node daemon. All optional here; [`NodeSettings::resolve`] fills defaults.
#[derive(clap::Args, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSettings {
    /// Bitcoin network: regtest, signet, testnet or mainnet [default: regtest].
    #[arg(long, env = "MICRONODE_NETWORK", value_parser = parse_network)]
    #[serde(deserialize_with = "de_network")]
    pub network: Option<Network>,
    /// Where the node keeps its data [default: $MICRONODE_HOME/<network>/node].
    #[arg(long, env = "MICRONODE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The node's alias [default: micronode].
    #[arg(long, env = "MICRONODE_ALIAS")]
    pub alias: Option<String>,
    /// Address for Lightning peers [default: 127.0.0.1:9735]; port 0 picks a free port.
    #[arg(long, env = "MICRONODE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the gRPC API [default: 127.0.0.1:10010]; keep it on loopback.
    #[arg(long, env = "MICRONODE_API_LISTEN")]
    pub api_listen: Option<SocketAddr>,
    /// Where to write the API cookie (mode 0600) [default: <data-dir>/api.cookie].
    #[arg(long, env = "MICRONODE_API_COOKIE")]
    pub api_cookie: Option<PathBuf>,
    /// bitcoind RPC address host:port [default: 127.0.0.1 and the network's RPC port].
    #[arg(long, env = "MICRONODE_BITCOIND_RPC")]
    pub bitcoind_rpc: Option<String>,
    /// bitcoind RPC user (with --bitcoind-rpc-password).
    #[arg(long, env = "MICRONODE_BITCOIND_RPC_USER")]
    pub bitcoind_rpc_user: Option<String>,
    /// bitcoind RPC password. Prefer the environment variable: flags show up in `ps`.
    #[arg(long, env = "MICRONODE_BITCOIND_RPC_PASSWORD", hide_env_values = true)]
    pub bitcoind_rpc_password: Option<String>,
    /// bitcoind cookie file (instead of user and password).
    #[arg(long, env = "MICRONODE_BITCOIND_RPC_COOKIE")]
    pub bitcoind_rpc_cookie: Option<PathBuf>,
    /// How often to poll bitcoind for new blocks, in milliseconds [default: 500].
    #[arg(long, env = "MICRONODE_POLL_INTERVAL_MS")]
    pub poll_interval_ms: Option<u64>,
    /// How long to wait for bitcoind's answer to one RPC call before treating bitcoind as
    /// unavailable, in seconds, 1 to 600 [default: 30]. Bounds the start-up and an on-chain
    /// send when bitcoind accepts connections but does not answer.
    #[arg(long, env = "MICRONODE_BITCOIND_RPC_TIMEOUT_SECS")]
    pub bitcoind_rpc_timeout_secs: Option<u64>,
    /// Confirmations before a new channel is used, whatever its size [default: 3; on mainnet 6
    /// for channels of 0.01 BTC or more, on testnet 6].
    #[arg(long, env = "MICRONODE_MIN_CONFIRMATIONS")]
    pub min_confirmations: Option<u32>,
    /// Announce channels to the network [default: true].
    #[arg(long, env = "MICRONODE_ANNOUNCE_CHANNELS")]
    pub announce_channels: Option<bool>,
    /// On-chain sat kept per anchor channel for fee bumps; a channel that would leave less is
    /// refused [default: 25000]. See docs/anchors.md.
    #[arg(long, env = "MICRONODE_ANCHOR_RESERVE_SAT")]
    pub anchor_reserve_sat: Option<u64>,
    /// Nostr relays for the node's Nostr Wallet Connect service (repeat the flag, or separate
    /// with commas); none runs no NWC service. Connections live in `<data-dir>/nwc` (manage
    /// them with `micronode nwc --data-dir <data-dir>/nwc`).
    #[arg(
        long = "nwc-relay",
        env = "MICRONODE_NWC_RELAYS",
        value_delimiter = ','
    )]
    pub nwc_relays: Option<Vec<String>>,
    /// The mailbox relay (`http://host:port`, see `micronode relay`) the node dials for
    /// browser-wallet pairing sessions (docs/pairing.md); none: no pairing.
    #[arg(long, env = "MICRONODE_WALLET_RELAY")]
    pub wallet_relay: Option<String>,
    /// Dial Lightning peers through this SOCKS5 proxy (Tor's is 127.0.0.1:9050) instead of
    /// directly.
    #[arg(long, env = "MICRONODE_SOCKS5_PROXY")]
    pub socks5_proxy: Option<SocketAddr>,
    /// Accept Lightning peers only from these addresses or networks (repeat the flag, or
    /// separate with commas; e.g. 10.0.0.0/8) [default: any].
    #[arg(long = "p2p-allow", env = "MICRONODE_P2P_ALLOW", value_delimiter = ',')]
    pub p2p_allow: Option<Vec<String>>,
    /// Serve the gRPC API only to these addresses or networks (repeat, or separate with
    /// commas) [default: any; the API listens on loopback unless told otherwise].
    #[arg(long = "api-allow", env = "MICRONODE_API_ALLOW", value_delimiter = ',')]
    pub api_allow: Option<Vec<String>>,
    /// Where the keys live: `local` (in-process, in the data directory) or `remote` (the
    /// tenant's `micronode signer` dials in; the node holds no private key) [default: local].
    #[arg(long, env = "MICRONODE_SIGNER", value_parser = ["local", "remote"])]
    pub signer: Option<String>,
    /// Accept a remote signer's connections only from these addresses or networks (repeat,
    /// or separate with commas) [default: any; the pairing and the pinned keys still decide
    /// which signer is served].
    #[arg(
        long = "signer-allow",
        env = "MICRONODE_SIGNER_ALLOW",
        value_delimiter = ','
    )]
    pub signer_allow: Option<Vec<String>>,
    /// Address where a remote signer dials in [default: 127.0.0.1:9736]; port 0 picks one.
    #[arg(long, env = "MICRONODE_SIGNER_LISTEN")]
    pub signer_listen: Option<SocketAddr>,
    /// The LSP (`node_id@host:port`) this node buys JIT channels from when an invoice needs
    /// more inbound capacity than its channels have. See docs/liquidity.md.
    #[arg(long, env = "MICRONODE_LSP")]
    pub lsp: Option<String>,
    /// Serve JIT channels (LSPS2) to clients, with the default fees and limits [default:
    /// false]. See docs/liquidity.md.
    #[arg(long, env = "MICRONODE_LSPS2_SERVICE")]
    pub lsps2_service: Option<bool>,
    /// The JIT channels' fees and limits (a `[lsps2]` table of the config file only; setting it
    /// serves JIT channels unless `lsps2_service = false`). See docs/liquidity.md.
    #[arg(skip)]
    pub lsps2: Option<micronode_node::Lsps2ServiceSettings>,
    /// Keep the node's state in a fleet's PostgreSQL database (a `postgres://` URL or a
    /// `key=value` string) instead of its SQLite file, under a lease: one process at a time runs
    /// the node, and one that lost the lease can never write its state again. See
    /// docs/fleet.md. Prefer the environment variable when the string holds a password.
    #[arg(long, env = "MICRONODE_FLEET_DATABASE")]
    pub fleet_database: Option<String>,
    /// The node's name in the fleet database [default: the alias].
    #[arg(long, env = "MICRONODE_FLEET_TENANT")]
    pub fleet_tenant: Option<String>,
    /// This process's name on the leases it holds [default: host name and process id].
    #[arg(long, env = "MICRONODE_FLEET_HOLDER")]
    pub fleet_holder: Option<String>,
    /// The operator's master key file (64 hex digits): the node's state is sealed under a key
    /// derived from it. Required with --fleet-database.
    #[arg(long, env = "MICRONODE_FLEET_KEY_FILE")]
    pub fleet_key_file: Option<PathBuf>,
    /// How long a lease lasts without renewal, in milliseconds [default: 5000]: another
    /// process takes the node over this long after this one stops renewing.
    #[arg(long, env = "MICRONODE_FLEET_LEASE_MS")]
    pub fleet_lease_ms: Option<u64>,
}

impl NodeSettings {
    /// Reads settings from a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// Overrides every setting of `self` that `over` sets.
    pub fn overridden_by(self, over: NodeSettings) -> NodeSettings {
        NodeSettings {
            network: over.network.or(self.network),
            data_dir: over.data_dir.or(self.data_dir),
            alias: over.alias.or(self.alias),
            listen: over.listen.or(self.listen),
            api_listen: over.api_listen.or(self.api_listen),
            api_cookie: over.api_cookie.or(self.api_cookie),
            bitcoind_rpc: over.bitcoind_rpc.or(self.bitcoind_rpc),
            bitcoind_rpc_user: over.bitcoind_rpc_user.or(self.bitcoind_rpc_user),
            bitcoind_rpc_password: over.bitcoind_rpc_password.or(self.bitcoind_rpc_password),
            bitcoind_rpc_cookie: over.bitcoind_rpc_cookie.or(self.bitcoind_rpc_cookie),
            poll_interval_ms: over.poll_interval_ms.or(self.poll_interval_ms),
            bitcoind_rpc_timeout_secs: over
                .bitcoind_rpc_timeout_secs
                .or(self.bitcoind_rpc_timeout_secs),
            min_confirmations: over.min_confirmations.or(self.min_confirmations),
            announce_channels: over.announce_channels.or(self.announce_channels),
            anchor_reserve_sat: over.anchor_reserve_sat.or(self.anchor_reserve_sat),
            nwc_relays: over.nwc_relays.or(self.nwc_relays),
            wallet_relay: over.wallet_relay.or(self.wallet_relay),
            socks5_proxy: over.socks5_proxy.or(self.socks5_proxy),
            p2p_allow: over.p2p_allow.or(self.p2p_allow),
            api_allow: over.api_allow.or(self.api_allow),
            signer: over.signer.or(self.signer),
            signer_listen: over.signer_listen.or(self.signer_listen),
            signer_allow: over.signer_allow.or(self.signer_allow),
            lsp: over.lsp.or(self.lsp),
            lsps2_service: over.lsps2_service.or(self.lsps2_service),
            lsps2: over.lsps2.or(self.lsps2),
            fleet_database: over.fleet_database.or(self.fleet_database),
            fleet_tenant: over.fleet_tenant.or(self.fleet_tenant),
            fleet_holder: over.fleet_holder.or(self.fleet_holder),
            fleet_key_file: over.fleet_key_file.or(self.fleet_key_file),
            fleet_lease_ms: over.fleet_lease_ms.or(self.fleet_lease_ms),
        }
    }

    /// Fills defaults and checks the result.
    pub fn resolve(self, allow_mainnet: bool) -> Result<ResolvedSettings, ConfigError> {
        let network = self.network.unwrap_or(Network::Regtest);
        if network == Network::Bitcoin && !allow_mainnet {
            return Err(ConfigError::MainnetRefused);
        }
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| micronode_home().join(network_dir(network)).join("node"));
        let micronode_chain::RpcEndpoint { host, port, auth } =
            micronode_chain::RpcEndpoint::resolve(
                network,
                self.bitcoind_rpc.as_deref(),
                self.bitcoind_rpc_user,
                self.bitcoind_rpc_password,
                self.bitcoind_rpc_cookie,
            )?;
        let mut node = NodeConfig::new(&data_dir, network);
        node.alias = self.alias.unwrap_or_else(|| "micronode".into());
        if node.alias.len() > 32 {
            return Err(ConfigError::Invalid(
                "alias must be at most 32 bytes".into(),
            ));
        }
        node.listen_addr = Some(self.listen.unwrap_or_else(|| ([127, 0, 0, 1], 9735).into()));
        node.peer_network.socks5_proxy = self.socks5_proxy;
        node.peer_network.inbound_allow = allow_list(self.p2p_allow.as_deref())?;
        node.channels = ChannelSettings {
            announce_channels: self.announce_channels.unwrap_or(true),
            anchor_reserve_sat: self
                .anchor_reserve_sat
                .unwrap_or(micronode_node::config::DEFAULT_ANCHOR_RESERVE_SAT),
            ..ChannelSettings::for_network(network)
        };
        if let Some(n) = self.min_confirmations {
            node.channels.set_min_confirmations(n);
        }
        if let Some(lsp) = self.lsp.as_deref() {
            node.liquidity.lsp = Some(parse_lsp(lsp)?);
        }
        node.liquidity.lsps2_service = match (self.lsps2_service, self.lsps2) {
            (Some(false), _) | (None, None) => None,
            (_, settings) => Some(settings.unwrap_or_default()),
        };
        let poll = self.poll_interval_ms.unwrap_or(500);
        if !(10..=60_000).contains(&poll) {
            return Err(ConfigError::Invalid(
                "poll interval must be 10 to 60000 ms".into(),
            ));
        }
        let rpc_timeout = self
            .bitcoind_rpc_timeout_secs
            .unwrap_or(DEFAULT_BITCOIND_RPC_TIMEOUT_SECS);
        if !(1..=600).contains(&rpc_timeout) {
            return Err(ConfigError::Invalid(
                "bitcoind RPC timeout must be 1 to 600 s".into(),
            ));
        }
        let fleet = match self.fleet_database {
            None => None,
            Some(database) => Some(FleetSettings {
                tenant: self.fleet_tenant.unwrap_or_else(|| node.alias.clone()),
                holder: self.fleet_holder.unwrap_or_else(default_holder),
                key_file: self.fleet_key_file.ok_or_else(|| {
                    ConfigError::Invalid("--fleet-database needs --fleet-key-file".into())
                })?,
                lease: Duration::from_millis(match self.fleet_lease_ms.unwrap_or(5000) {
                    ms @ 300..=600_000 => ms,
                    _ => {
                        return Err(ConfigError::Invalid(
                            "fleet lease must be 300 to 600000 ms".into(),
                        ))
                    }
                }),
                database,
            }),
        };
        Ok(ResolvedSettings {
            fleet,
            bitcoind_rpc_timeout: Duration::from_secs(rpc_timeout),
            api_listen: self
                .api_listen
                .unwrap_or_else(|| ([127, 0, 0, 1], 10010).into()),
            api_cookie: self
                .api_cookie
                .unwrap_or_else(|| data_dir.join("api.cookie")),
            bitcoind_host: host,
            bitcoind_port: port,
            bitcoind_auth: auth,
            poll_interval: Duration::from_millis(poll),
            nwc_relays: self.nwc_relays.unwrap_or_default(),
            wallet_relay: self.wallet_relay,
            api_allow: allow_list(self.api_allow.as_deref())?,
            signer_allow: allow_list(self.signer_allow.as_deref())?,
            remote_signer: match self.signer.as_deref() {
                None | Some("local") => None,
                Some("remote") => Some(
                    self.signer_listen
                        .unwrap_or_else(|| ([127, 0, 0, 1], 9736).into()),
                ),
                Some(other) => {
                    return Err(ConfigError::Invalid(format!(
                        "signer must be local or remote, not {other}"
                    )))
                }
            },
            node,
        })
    }
}

/// Parses an allow-list (none: every address).
fn allow_list(entries: Option<&[String]>) -> Result<IpAllowList, ConfigError> {
    IpAllowList::parse(entries.unwrap_or_default()).map_err(|e| ConfigError::Invalid(e.to_string()))
}

/// Parses an LSP as `node_id@host:port`.
fn parse_lsp(text: &str) -> Result<micronode_node::LspSettings, ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid(format!("lsp {text:?}: {why}"));
    let (id, addr) = text
        .split_once('@')
        .ok_or_else(|| invalid("expected node_id@host:port"))?;
    let node_id = id
        .parse()
        .map_err(|_| invalid("the node id is not a public key"))?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| invalid("the address is not host:port"))?;
    Ok(micronode_node::LspSettings::new(node_id, addr))
}

/// Default bound on one bitcoind RPC call of a node daemon, in seconds.
pub const DEFAULT_BITCOIND_RPC_TIMEOUT_SECS: u64 = 30;

/// Settings with every default filled in.
#[derive(Debug, Clone)]
pub struct ResolvedSettings {
    /// The node's own settings.
    pub node: NodeConfig,
    /// gRPC API address.
    pub api_listen: SocketAddr,
    /// API cookie file.
    pub api_cookie: PathBuf,
    /// bitcoind RPC host.
    pub bitcoind_host: String,
    /// bitcoind RPC port.
    pub bitcoind_port: u16,
    /// bitcoind RPC credentials.
    pub bitcoind_auth: RpcAuth,
    /// Chain poll interval.
    pub poll_interval: Duration,
    /// The bound on one bitcoind RPC call.
    pub bitcoind_rpc_timeout: Duration,
    /// Relays of the node's NWC service (empty: no service).
    pub nwc_relays: Vec<String>,
    /// The relay for browser-wallet pairing (none: no pairing).
    pub wallet_relay: Option<String>,
    /// Who may call the gRPC API.
    pub api_allow: IpAllowList,
    /// Where a remote signer may dial in from.
    pub signer_allow: IpAllowList,
    /// `Some(listen address)` when the keys live in a remote signer.
    pub remote_signer: Option<SocketAddr>,
    /// `Some` when the node's state lives in a fleet's PostgreSQL database.
    pub fleet: Option<FleetSettings>,
}

/// A node whose state lives in a fleet's PostgreSQL database (see docs/fleet.md).
#[derive(Clone)]
pub struct FleetSettings {
    /// The connection string (may hold a password: never printed).
    pub database: String,
    /// The node's name in the database.
    pub tenant: String,
    /// This process's name on its leases.
    pub holder: String,
    /// The operator's master key file.
    pub key_file: PathBuf,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
}

impl std::fmt::Debug for FleetSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetSettings")
            .field("tenant", &self.tenant)
            .field("holder", &self.holder)
            .field("key_file", &self.key_file)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// `<host name>-<process id>`.
fn default_holder() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}", std::process::id())
}

/// `$MICRONODE_HOME`, or `~/.micronode`.
pub fn micronode_home() -> PathBuf {
    if let Some(home) = std::env::var_os("MICRONODE_HOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".micronode")
}

/// The per-network folder name.
pub fn network_dir(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "mainnet",
        Network::Testnet => "testnet",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        _ => "regtest",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn jit_channel_settings_come_from_flags_and_the_file() {
        let file: NodeSettings = toml::from_str(
            "lsp = \"02c21b65dbcf59d27d8109e07afe7c353f815f373359a604a68a5689689492fdb7@127.0.0.1:9735\"\n\
             [lsps2]\nmin_fee_msat = 1000000\nchannel_extra_sat = 50000\n",
        )
        .expect("parses");
        let resolved = file.clone().resolve(false).expect("resolves");
        let service = resolved.node.liquidity.lsps2_service.expect("served");
        assert_eq!(service.min_fee_msat, 1_000_000);
        assert_eq!(service.channel_extra_sat, 50_000);
        assert_eq!(
            service.proportional_millionths, 10_000,
            "defaults fill the rest"
        );
        let lsp = resolved.node.liquidity.lsp.expect("an LSP");
        assert_eq!(lsp.addr.port(), 9735);
        let off = file
            .overridden_by(NodeSettings {
                lsps2_service: Some(false),
                ..Default::default()
            })
            .resolve(false)
            .expect("resolves");
        assert!(off.node.liquidity.lsps2_service.is_none());
        let bad = NodeSettings {
            lsp: Some("not-a-key@127.0.0.1:1".into()),
            ..Default::default()
        };
        let err = bad.resolve(false).unwrap_err().to_string();
        assert!(err.contains("not a public key"), "{err}");
        assert!(toml::from_str::<NodeSettings>("[lsps2]\nmin_fee = 1\n").is_err());
    }

    use super::*;

    #[test]
    fn flags_override_env_override_file() {
        let file: NodeSettings = toml::from_str(
            "network = \"signet\"\nalias = \"from-file\"\nmin_confirmations = 6\nbitcoind_rpc = \"10.0.0.1:1\"\nbitcoind_rpc_user = \"u\"\nbitcoind_rpc_password = \"p\"\n",
        )
        .expect("toml");
        let cli = NodeSettings {
            alias: Some("from-flag".into()),
            ..Default::default()
        };
        let resolved = file.overridden_by(cli).resolve(false).expect("resolve");
        assert_eq!(resolved.node.network, Network::Signet);
        assert_eq!(resolved.node.alias, "from-flag");
        assert_eq!(resolved.node.channels.min_confirmations, 6);
        assert_eq!(resolved.bitcoind_port, 1);
    }

    #[test]
    fn bitcoind_rpc_timeout_has_a_default_and_bounds() {
        let resolved = NodeSettings::default().resolve(false).expect("resolve");
        assert_eq!(resolved.bitcoind_rpc_timeout, Duration::from_secs(30));
        let file: NodeSettings = toml::from_str("bitcoind_rpc_timeout_secs = 5").expect("toml");
        let resolved = file.resolve(false).expect("resolve");
        assert_eq!(resolved.bitcoind_rpc_timeout, Duration::from_secs(5));
        for bad in [0, 601] {
            let s = NodeSettings {
                bitcoind_rpc_timeout_secs: Some(bad),
                ..Default::default()
            };
            assert!(matches!(s.resolve(false), Err(ConfigError::Invalid(_))));
        }
    }

    #[test]
    fn mainnet_needs_the_flag() {
        let s = NodeSettings {
            network: Some(Network::Bitcoin),
            ..Default::default()
        };
        assert!(matches!(
            s.clone().resolve(false),
            Err(ConfigError::MainnetRefused)
        ));
        assert!(s.resolve(true).is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(toml::from_str::<NodeSettings>("netwrk = \"regtest\"").is_err());
        assert!(toml::from_str::<NodeSettings>("network = \"moonnet\"").is_err());
        let half_auth = NodeSettings {
            bitcoind_rpc_user: Some("u".into()),
            ..Default::default()
        };
        assert!(matches!(
            half_auth.resolve(false),
            Err(ConfigError::Endpoint(
                micronode_chain::EndpointError::Credentials
            ))
        ));
    }

    #[test]
    fn env_is_read_by_clap_and_flags_win() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            settings: NodeSettings,
        }
        // Only this test sets this variable.
        std::env::set_var("MICRONODE_MIN_CONFIRMATIONS", "9");
        let from_env = Cli::parse_from(["x"]).settings;
        assert_eq!(from_env.min_confirmations, Some(9));
        let from_flag = Cli::parse_from(["x", "--min-confirmations", "2"]).settings;
        assert_eq!(from_flag.min_confirmations, Some(2));
        std::env::remove_var("MICRONODE_MIN_CONFIRMATIONS");
    }
}
