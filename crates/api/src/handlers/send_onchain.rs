//! `SendOnchain`: an on-chain payment from the node's wallet.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node, SendAmount};
use micronode_proto::v1::send_onchain_request::Amount;
use micronode_proto::v1::{SendOnchainRequest, SendOnchainResponse};

use micronode_signer_protocol::PaymentAuthorization;

use crate::adapter;
use crate::error::ApiError;

/// The longest address text accepted (bech32 addresses have at most 90 characters).
const MAX_ADDRESS_LEN: usize = 128;

/// Handles `SendOnchain`. The node's method is async and signs on the blocking pool itself.
/// `app` is the app's signed request, which a remote signer needs to let the output pay
/// outside the wallet and the allow-list.
pub async fn handle_send_onchain<K: KeysBackend>(
    node: &Arc<Node<K>>,
    app: Option<PaymentAuthorization>,
    req: SendOnchainRequest,
) -> Result<SendOnchainResponse, ApiError> {
    let address = adapter::required("address", &req.address)?;
    if address.len() > MAX_ADDRESS_LEN {
        return Err(ApiError::invalid(format!(
            "address: {} characters is too long for an address",
            address.len()
        )));
    }
    let amount = match req.amount {
        Some(Amount::AmountSat(sat)) => SendAmount::Sats(adapter::sat("amount_sat", sat)?),
        Some(Amount::SendAll(true)) => SendAmount::All,
        Some(Amount::SendAll(false)) => {
            return Err(ApiError::invalid(
                "send_all must be true when set; give amount_sat instead",
            ))
        }
        None => return Err(ApiError::invalid("amount_sat or send_all is required")),
    };
    let fee_rate = adapter::sat_per_vbyte(req.sat_per_vbyte)?;
    let txid = node
        .send_onchain_for_app(address, amount, fee_rate, app)
        .await?;
    Ok(SendOnchainResponse {
        txid: txid.to_string(),
    })
}
