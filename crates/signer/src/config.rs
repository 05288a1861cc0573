//! `signer.toml`: the signer's network, the tenant's policy and its chain source; and opening
//! a signer directory.
//!
//! ```toml
//! network = "regtest"
//! [policy]            # see `PolicyConfig`
//! max_sat_per_day = 25000
//! [chain]             # the tenant's own bitcoind; the password comes from the environment
//! bitcoind_rpc = "127.0.0.1:18443"
//! bitcoind_rpc_user = "tenant"
//! ```

use std::path::{Path, PathBuf};

use lightning_signer::bitcoin::Network;
use serde::{Deserialize, Serialize};

use crate::chain::BitcoindSourceConfig;
use crate::policy::PolicyConfig;
use crate::vault::{Passphrase, SeedVault, VaultError};
use crate::{EngineError, SignerEngine};

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `signer.toml` could not be read.
    #[error("reading {} (run `micronode signer init` first): {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `signer.toml` is not valid.
    #[error("invalid {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The chain source's RPC settings are unusable.
    #[error(transparent)]
    Endpoint(#[from] micronode_chain::EndpointError),
    /// Writing the config failed.
    #[error(transparent)]
    File(#[from] micronode_files::FileError),
}

/// `signer.toml` in the signer's directory.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    /// The network of the keys.
    pub network: String,
    /// The tenant's policy.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Where the signer reads the chain (the tenant's own bitcoind).
    #[serde(default)]
    pub chain: BitcoindSourceConfig,
}

/// Parses a network name as `signer.toml` stores it.
pub fn parse_network(s: &str) -> Result<Network, ConfigError> {
    match s {
        "mainnet" | "bitcoin" => Ok(Network::Bitcoin),
        other => Network::from_core_arg(other)
            .map_err(|_| ConfigError::Invalid(format!("unknown network {other}"))),
    }
}

impl SignerConfig {
    /// Where the config lives in a signer directory.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("signer.toml")
    }

    /// Reads `signer.toml`.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path,
            message: e.to_string(),
        })
    }

    /// The network of the keys.
    pub fn network(&self) -> Result<Network, ConfigError> {
        parse_network(&self.network)
    }

    /// Writes a default `signer.toml` for `network`, unless one exists: a restore keeps the
    /// tenant's policy (and refuses a config for another network).
    pub fn write_default_if_missing(dir: &Path, network: Network) -> Result<(), ConfigError> {
        let path = Self::path(dir);
        if path.exists() {
            let existing = Self::load(dir)?;
            if existing.network()? != network {
                return Err(ConfigError::Invalid(format!(
                    "{} is for {}, not {network}",
                    path.display(),
                    existing.network
                )));
            }
            return Ok(());
        }
        let config = SignerConfig {
            network: network.to_core_arg().to_string(),
            ..Default::default()
        };
        let text = toml::to_string_pretty(&config)
            .map_err(|e| ConfigError::Invalid(format!("cannot write the config: {e}")))?;
        micronode_files::write_private(&path, text.as_bytes())?;
        Ok(())
    }
}

/// Why a signer directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The config is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The vault could not be unlocked.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The validating signer could not start.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Unlocks the vault in `dir` with `passphrase` and opens the validating signer on the state
/// beside it. Returns it with its config.
pub fn open_signer(
    dir: &Path,
    passphrase: &Passphrase,
) -> Result<(SignerEngine, SignerConfig), OpenError> {
    let config = SignerConfig::load(dir)?;
    let network = config.network()?;
    let vault = SeedVault::open(dir.join("seed.vault"))?;
    let seed = vault.unlock(passphrase)?;
    let engine = SignerEngine::open(
        &dir.join("state"),
        seed.signer_seed(),
        network,
        config.policy.clone(),
    )?;
    Ok((engine, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        SignerConfig::write_default_if_missing(dir.path(), Network::Regtest).unwrap();
        let config = SignerConfig::load(dir.path()).unwrap();
        assert_eq!(config.network().unwrap(), Network::Regtest);
        assert_eq!(config.policy, PolicyConfig::default());
        // A restore for another network is refused; the same network keeps the file.
        assert!(SignerConfig::write_default_if_missing(dir.path(), Network::Signet).is_err());
        std::fs::write(
            SignerConfig::path(dir.path()),
            "network = \"regtest\"\n[chain]\nbitcoind_rpc = \"127.0.0.1:1\"\nrpc_pasword = \"x\"\n",
        )
        .unwrap();
        let err = SignerConfig::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("rpc_pasword"), "{err}");
    }
}
