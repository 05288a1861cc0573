//! Funding outbound channels.
//!
//! With in-process keys the funding transaction is signed at once and handed to LDK, which
//! broadcasts it when safe. A validating signer only signs a funding output that belongs to a
//! channel it has set up and whose first commitment the counterparty signed, so for it the
//! node hands LDK the funding *outpoint* first, keeps the unsigned transaction (durably), and
//! signs and broadcasts it on [`Event::FundingTxBroadcastSafe`].
//!
//! [`Event::FundingTxBroadcastSafe`]: lightning::events::Event::FundingTxBroadcastSafe

use bitcoin::secp256k1::PublicKey;
use bitcoin::{FeeRate, OutPoint, Psbt, ScriptBuf};
use lightning::chain::chaininterface::{ConfirmationTarget, FeeEstimator};
use lightning::events::ReplayEvent;
use lightning::ln::types::ChannelId;
use lightning::util::persist::KVStoreSync;

use crate::error::NodeError;
use crate::keys::KeysBackend;
use crate::node::NodeInner;
use crate::wallet::SendAmount;

const PENDING_FUNDING_NAMESPACE: &str = "pending_funding";

impl<K: KeysBackend> NodeInner<K> {
    /// Answers `FundingGenerationReady`.
    pub(crate) fn fund_channel(
        &self,
        temporary_channel_id: ChannelId,
        counterparty: PublicKey,
        value_sat: u64,
        output_script: ScriptBuf,
    ) {
        let sat_per_kw = self
            .chain
            .fees
            .get_est_sat_per_1000_weight(ConfirmationTarget::NonAnchorChannelFee);
        let fee_rate = FeeRate::from_sat_per_kwu(u64::from(sat_per_kw));
        let result = if let Err(e) = self.check_outbound_anchors(&temporary_channel_id) {
            Err(e)
        } else if self.keys.signs_funding_after_setup() {
            self.fund_with_deferred_signing(
                temporary_channel_id,
                counterparty,
                value_sat,
                output_script,
                fee_rate,
            )
        } else {
            self.fund_signed_now(
                temporary_channel_id,
                counterparty,
                value_sat,
                output_script,
                fee_rate,
            )
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot fund channel; abandoning it");
            let _ = self.channel_manager.force_close_broadcasting_latest_txn(
                &temporary_channel_id,
                &counterparty,
                format!("funding failed: {e}"),
            );
        }
    }

    fn fund_signed_now(
        &self,
        temporary_channel_id: ChannelId,
        counterparty: PublicKey,
        value_sat: u64,
        output_script: ScriptBuf,
        fee_rate: FeeRate,
    ) -> Result<(), NodeError> {
        let tx =
            self.wallet
                .build_signed(output_script, SendAmount::Sats(value_sat), fee_rate, None)?;
        self.channel_manager
            .funding_transaction_generated(temporary_channel_id, counterparty, tx.clone())
            .map_err(NodeError::from_channel_api)?;
        if let Err(e) = self.wallet.apply_unconfirmed(&tx) {
            tracing::warn!(error = %e, "wallet did not record funding tx");
        }
        Ok(())
    }

    fn fund_with_deferred_signing(
        &self,
        temporary_channel_id: ChannelId,
        counterparty: PublicKey,
        value_sat: u64,
        output_script: ScriptBuf,
        fee_rate: FeeRate,
    ) -> Result<(), NodeError> {
        let psbt = self.wallet.build_unsigned(
            output_script.clone(),
            SendAmount::Sats(value_sat),
            fee_rate,
        )?;
        let txid = psbt.unsigned_tx.compute_txid();
        let vout = psbt
            .unsigned_tx
            .output
            .iter()
            .position(|o| o.script_pubkey == output_script)
            .ok_or_else(|| NodeError::Internal("funding output missing".into()))?;
        let outpoint = OutPoint {
            txid,
            vout: u32::try_from(vout).map_err(|_| NodeError::Internal("vout".into()))?,
        };
        // Durable before LDK learns the outpoint: a restart must still be able to sign it.
        self.store.write(
            PENDING_FUNDING_NAMESPACE,
            "",
            &txid.to_string(),
            psbt.serialize(),
        )?;
        self.channel_manager
            .unsafe_manual_funding_transaction_generated(
                temporary_channel_id,
                counterparty,
                lightning::chain::transaction::OutPoint {
                    txid,
                    index: outpoint.vout as u16,
                },
            )
            .map_err(NodeError::from_channel_api)?;
        Ok(())
    }

    /// Answers `FundingTxBroadcastSafe`: sign the kept transaction and broadcast it. `Err`
    /// (signer offline) makes LDK replay the event later.
    pub(crate) async fn broadcast_deferred_funding(
        &self,
        funding_txid: bitcoin::Txid,
    ) -> Result<(), ReplayEvent> {
        let key = funding_txid.to_string();
        let bytes = match self.store.read(PENDING_FUNDING_NAMESPACE, "", &key) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, txid = %key, "no kept funding transaction");
                return Ok(());
            }
        };
        let psbt = match Psbt::deserialize(&bytes) {
            Ok(psbt) => psbt,
            Err(e) => {
                tracing::error!(error = %e, "kept funding transaction is corrupt");
                return Ok(());
            }
        };
        let tx = match self.wallet.sign_and_extract(psbt) {
            Ok(tx) => tx,
            Err(NodeError::SignerOffline) => {
                tracing::info!(txid = %key, "signer offline; funding broadcast waits");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                return Err(ReplayEvent());
            }
            Err(e) => {
                tracing::error!(error = %e, txid = %key, "signer refused the funding transaction");
                return Ok(());
            }
        };
        if let Err(e) = self.chain.broadcaster.broadcast_now(&tx).await {
            tracing::warn!(error = %e, "funding broadcast failed; LDK's rebroadcast will retry");
        }
        if let Err(e) = self.wallet.apply_unconfirmed(&tx) {
            tracing::warn!(error = %e, "wallet did not record funding tx");
        }
        if let Err(e) = self
            .store
            .remove(PENDING_FUNDING_NAMESPACE, "", &key, false)
        {
            tracing::warn!(error = %e, "could not drop the kept funding transaction");
        }
        Ok(())
    }
}
