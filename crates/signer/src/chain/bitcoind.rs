//! [`ChainSource`] over a bitcoind the tenant trusts (JSON-RPC).

use std::path::PathBuf;

use lightning_signer::bitcoin::{
    Amount, Block, BlockHash, Network, OutPoint, ScriptBuf, Transaction, TxOut, Txid,
};
use micronode_chain::{BitcoindRpc, RpcEndpoint};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ChainError, ChainSource, WalletUtxo};

/// Where the tenant's bitcoind is (the `[chain]` table of `signer.toml`). The RPC password is
/// never stored: it comes from `MICRONODE_BITCOIND_RPC_PASSWORD`, or use a cookie file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BitcoindSourceConfig {
    /// `host:port` of its RPC [default: loopback and the network's port].
    pub bitcoind_rpc: Option<String>,
    /// RPC user (the password comes from the environment).
    pub bitcoind_rpc_user: Option<String>,
    /// RPC cookie file, instead of user and password [default: bitcoind's own].
    pub bitcoind_rpc_cookie: Option<PathBuf>,
    /// How often to look for a new block, in milliseconds [default: 2000].
    pub poll_interval_ms: Option<u64>,
}

impl BitcoindSourceConfig {
    /// The configured poll interval.
    pub fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.poll_interval_ms.unwrap_or(2_000).max(50))
    }

    /// Overrides the fields set in `other`.
    pub fn overridden_by(self, other: BitcoindSourceConfig) -> Self {
        Self {
            bitcoind_rpc: other.bitcoind_rpc.or(self.bitcoind_rpc),
            bitcoind_rpc_user: other.bitcoind_rpc_user.or(self.bitcoind_rpc_user),
            bitcoind_rpc_cookie: other.bitcoind_rpc_cookie.or(self.bitcoind_rpc_cookie),
            poll_interval_ms: other.poll_interval_ms.or(self.poll_interval_ms),
        }
    }
}

/// The tenant's bitcoind.
#[derive(Clone, Debug)]
pub struct BitcoindSource {
    rpc: BitcoindRpc,
}

impl BitcoindSource {
    /// A source for `config` on `network`, with `password` for user/password login. Checks
    /// nothing yet: see [`ChainSource::network`].
    pub fn new(
        network: Network,
        config: &BitcoindSourceConfig,
        password: Option<String>,
    ) -> Result<Self, crate::config::ConfigError> {
        let endpoint = RpcEndpoint::resolve(
            network,
            config.bitcoind_rpc.as_deref(),
            config.bitcoind_rpc_user.clone(),
            password,
            config.bitcoind_rpc_cookie.clone(),
        )?;
        let rpc = endpoint
            .client()
            .map_err(|e| crate::config::ConfigError::Invalid(e.to_string()))?;
        Ok(Self { rpc })
    }

    /// A source over an existing client.
    pub fn from_rpc(rpc: BitcoindRpc) -> Self {
        Self { rpc }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: &[Value],
    ) -> Result<T, ChainError> {
        Ok(self.rpc.call(method, params).await?)
    }
}

fn sat(btc: &Value) -> Option<u64> {
    Some((btc.as_f64()? * 1e8).round() as u64)
}

/// The path after the fingerprint in a descriptor's key origin: `wpkh([d34db33f/1/7]02..)`
/// gives `[1, 7]`.
fn origin_path(desc: &str) -> Option<Vec<u32>> {
    let start = desc.find('[')? + 1;
    let end = start + desc[start..].find(']')?;
    desc[start..end]
        .split('/')
        .skip(1)
        .map(|step| step.parse().ok())
        .collect()
}

impl ChainSource for BitcoindSource {
    async fn network(&self) -> Result<Network, ChainError> {
        Ok(self.rpc.network().await?)
    }

    async fn tip_height(&self) -> Result<u32, ChainError> {
        Ok(self.rpc.get_block_count().await?)
    }

    async fn block_hash(&self, height: u32) -> Result<BlockHash, ChainError> {
        Ok(self.rpc.get_block_hash(height).await?)
    }

    async fn block(&self, hash: BlockHash) -> Result<Block, ChainError> {
        Ok(self.rpc.get_block(&hash).await?)
    }

    async fn broadcast(&self, tx: Transaction) -> Result<(), ChainError> {
        self.rpc.send_raw_transaction(&tx).await?;
        Ok(())
    }

    async fn fee_rate_sat_per_vb(&self, blocks: u16) -> Option<u64> {
        match self.rpc.estimate_smart_fee(blocks, "economical").await {
            Ok(Some(btc_per_kvb)) => Some(((btc_per_kvb * 1e8 / 1000.0).ceil() as u64).max(1)),
            _ => None,
        }
    }

    async fn unspent(
        &self,
        outpoint: OutPoint,
        include_mempool: bool,
    ) -> Result<Option<(TxOut, u32)>, ChainError> {
        let value: Option<Value> = self
            .call(
                "gettxout",
                &[
                    json!(outpoint.txid.to_string()),
                    json!(outpoint.vout),
                    json!(include_mempool),
                ],
            )
            .await?;
        let Some(v) = value.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let script = v["scriptPubKey"]["hex"]
            .as_str()
            .and_then(|h| hex::decode(h).ok())
            .unwrap_or_default();
        let output = TxOut {
            value: Amount::from_sat(sat(&v["value"]).unwrap_or(0)),
            script_pubkey: ScriptBuf::from_bytes(script),
        };
        let confirmations = u32::try_from(v["confirmations"].as_u64().unwrap_or(0)).unwrap_or(0);
        Ok(Some((output, confirmations)))
    }

    async fn wallet_coins(
        &self,
        receive_descriptor: String,
        change_descriptor: String,
        range: (u32, u32),
    ) -> Result<Vec<WalletUtxo>, ChainError> {
        tracing::info!(
            receive = range.0,
            change = range.1,
            "scanning the UTXO set for the wallet's coins (minutes on mainnet)"
        );
        let scan: Value = self
            .call(
                "scantxoutset",
                &[
                    json!("start"),
                    json!([
                        {"desc": receive_descriptor, "range": [0, range.0]},
                        {"desc": change_descriptor, "range": [0, range.1]},
                    ]),
                ],
            )
            .await?;
        let mut coins = Vec::new();
        for unspent in scan["unspents"].as_array().cloned().unwrap_or_default() {
            let parsed = (|| {
                let txid: Txid = unspent["txid"].as_str()?.parse().ok()?;
                let vout = u32::try_from(unspent["vout"].as_u64()?).ok()?;
                let script = hex::decode(unspent["scriptPubKey"].as_str()?).ok()?;
                let path = origin_path(unspent["desc"].as_str()?)?;
                Some(WalletUtxo {
                    outpoint: OutPoint::new(txid, vout),
                    output: TxOut {
                        value: Amount::from_sat(sat(&unspent["amount"])?),
                        script_pubkey: ScriptBuf::from_bytes(script),
                    },
                    path,
                })
            })();
            match parsed {
                Some(coin) => coins.push(coin),
                None => tracing::warn!(%unspent, "skipping a coin bitcoind described oddly"),
            }
        }
        Ok(coins)
    }
}

#[cfg(test)]
mod tests {
    use super::origin_path;

    #[test]
    fn origin_paths_are_read_from_descriptors() {
        assert_eq!(
            origin_path("wpkh([d34db33f/1/7]02aa)#abcd"),
            Some(vec![1, 7])
        );
        assert_eq!(origin_path("wpkh(02aa)"), None);
        assert_eq!(origin_path("wpkh([d34db33f/1h/7]02aa)"), None);
    }
}
