//! On-chain wallet operations and balances.

use bitcoin::{FeeRate, Txid};
use lightning::chain::chaininterface::{ConfirmationTarget, FeeEstimator};
use micronode_chain::RpcError;
use serde::Serialize;

use crate::error::NodeError;
use crate::keys::KeysBackend;
use crate::node::Node;
use crate::wallet::SendAmount;

/// The on-chain balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OnchainBalance {
    /// Confirmed and spendable (sat).
    pub confirmed_sat: u64,
    /// Unconfirmed (sat): our own change and incoming transactions; the sum of the two below.
    pub unconfirmed_sat: u64,
    /// Unconfirmed incoming (sat): payments to the wallet seen in bitcoind's mempool. Not
    /// spendable until confirmed: the sender could still replace them.
    pub pending_incoming_sat: u64,
    /// Unconfirmed change of our own transactions (sat).
    pub pending_change_sat: u64,
    /// Coinbase outputs not yet mature (sat).
    pub immature_sat: u64,
    /// Everything (sat).
    pub total_sat: u64,
}

/// Lightning balances, as the channel monitors see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LightningBalance {
    /// What we would get if every channel closed now, before on-chain fees of the claims (sat).
    pub claimable_sat: u64,
    /// Of that, what is in open channels (sat).
    pub in_channels_sat: u64,
    /// Of that, what is not settled: HTLCs in flight, and funds waiting on chain after closes
    /// (timelocks, confirmations) (sat).
    pub pending_on_chain_sat: u64,
}

impl<K: KeysBackend> Node<K> {
    /// A fresh receive address.
    pub fn new_address(&self) -> Result<String, NodeError> {
        Ok(self.inner.wallet.new_address()?.to_string())
    }

    /// The on-chain balance.
    pub fn onchain_balance(&self) -> OnchainBalance {
        let b = self.inner.wallet.balance();
        OnchainBalance {
            confirmed_sat: b.confirmed.to_sat(),
            unconfirmed_sat: (b.trusted_pending + b.untrusted_pending).to_sat(),
            pending_incoming_sat: b.untrusted_pending.to_sat(),
            pending_change_sat: b.trusted_pending.to_sat(),
            immature_sat: b.immature.to_sat(),
            total_sat: b.total().to_sat(),
        }
    }

    /// Lightning balances from the channel monitors.
    pub fn lightning_balance(&self) -> LightningBalance {
        let mut in_channels = 0;
        let mut pending = 0;
        // The argument lists channels to leave out; we want them all.
        for balance in self.inner.chain_monitor.get_claimable_balances(&[]) {
            match balance {
                lightning::chain::channelmonitor::Balance::ClaimableOnChannelClose { .. } => {
                    in_channels += balance.claimable_amount_satoshis()
                }
                _ => pending += balance.claimable_amount_satoshis(),
            }
        }
        LightningBalance {
            claimable_sat: in_channels + pending,
            in_channels_sat: in_channels,
            pending_on_chain_sat: pending,
        }
    }

    /// Sends on chain to `address`. `sat_per_vb` of `None` uses the node's fee estimate.
    ///
    /// The signed transaction is recorded in the wallet and kept in the node's outbox before it
    /// is broadcast. If bitcoind refuses it, the record is undone and nothing was sent. If
    /// bitcoind does not answer (down, or no answer within the RPC timeout), the call fails with
    /// [`NodeError::BroadcastDeferred`] naming the txid: the transaction stays kept and is broadcast when
    /// bitcoind answers again, so it must not be sent a second time.
    pub async fn send_onchain(
        &self,
        address: &str,
        amount: SendAmount,
        sat_per_vb: Option<u64>,
    ) -> Result<Txid, NodeError> {
        self.send_onchain_for_app(address, amount, sat_per_vb, None)
            .await
    }

    /// [`Node::send_onchain`] with the app's signed request, which a validating signer needs
    /// to let the output pay outside the wallet and the allow-list.
    pub async fn send_onchain_for_app(
        &self,
        address: &str,
        amount: SendAmount,
        sat_per_vb: Option<u64>,
        authorization: Option<micronode_signer_protocol::PaymentAuthorization>,
    ) -> Result<Txid, NodeError> {
        self.ensure_running()?;
        let address = self.inner.wallet.parse_address(address)?;
        if amount == SendAmount::Sats(0) {
            return Err(NodeError::InvalidInput("amount must be positive".into()));
        }
        let fee_rate = match sat_per_vb {
            Some(0) => return Err(NodeError::InvalidInput("fee rate must be positive".into())),
            Some(r) => FeeRate::from_sat_per_vb(r).ok_or_else(|| {
                NodeError::InvalidInput(format!("fee rate {r} sat/vB is too high"))
            })?,
            None => FeeRate::from_sat_per_kwu(u64::from(
                self.inner
                    .chain
                    .fees
                    .get_est_sat_per_1000_weight(ConfirmationTarget::NonAnchorChannelFee),
            )),
        };
        let wallet = self.inner.wallet.clone();
        let script = address.script_pubkey();
        let tx = tokio::task::spawn_blocking(move || {
            wallet.build_signed(script, amount, fee_rate, authorization)
        })
        .await
        .map_err(|e| NodeError::Internal(format!("wallet task failed: {e}")))??;
        let txid = tx.compute_txid();
        match self.inner.chain.broadcaster.broadcast_now(&tx).await {
            Ok(txid) => Ok(txid),
            Err(e @ (RpcError::Rpc { .. } | RpcError::Decode { .. })) if !e.is_warming_up() => {
                let wallet = self.inner.wallet.clone();
                tokio::task::spawn_blocking(move || wallet.forget_refused(&tx))
                    .await
                    .map_err(|e| NodeError::Internal(format!("wallet task failed: {e}")))??;
                Err(NodeError::Chain(format!(
                    "bitcoind refused the transaction, nothing was sent: {e}"
                )))
            }
            Err(source) => Err(NodeError::BroadcastDeferred {
                txid: txid.to_string(),
                source,
            }),
        }
    }
}
