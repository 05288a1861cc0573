//! The wallet API served over a paired tunnel (`docs/pairing.md`, "The wallet API over the
//! tunnel"): each JSON request becomes a call of the node's own gRPC API, in process, with the
//! session's token as its credential, so the tunnel can do exactly what that token can do over
//! gRPC and no more. Payment requests carry the browser's signed app request, which the
//! tenant's signer checks.

use std::sync::Arc;

use micronode_api::{bearer, InProcessService};
use micronode_proto::v1::lightning_client::LightningClient;
use micronode_proto::v1::{self, event::Event as E};
use micronode_proto::{AUTHORIZATION_METADATA, ERROR_CODE_METADATA};
use micronode_signer_protocol::{SignedAppRequest, APP_REQUEST_METADATA};
use serde::Deserialize;
use serde_json::{json, Value};
use tonic::metadata::MetadataValue;

use crate::nwc::NwcControl;

/// The longest a `pay_invoice` waits for the outcome before answering `pending`.
pub const PAY_WAIT_SECS: u32 = 60;
/// The most payments one `list_payments` returns.
pub const MAX_PAGE: u32 = 200;

/// How the tenant's signer stands, in the words the browser shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignerState {
    /// Connected: payments can be signed.
    Connected,
    /// Not connected now.
    Offline,
    /// The tenant revoked this node.
    Revoked,
    /// The node holds its own keys (no remote signer).
    Local,
}

impl SignerState {
    fn as_str(self) -> &'static str {
        match self {
            SignerState::Connected => "connected",
            SignerState::Offline => "offline",
            SignerState::Revoked => "revoked",
            SignerState::Local => "local",
        }
    }
}

/// Tells the signer's state.
pub type SignerProbe = Arc<dyn Fn() -> SignerState + Send + Sync>;

/// A failed request, as the browser gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelError {
    /// The node's error code, or `UNKNOWN_METHOD` / `BAD_REQUEST`.
    pub code: String,
    /// Plain words.
    pub message: String,
}

impl TunnelError {
    /// A request the tunnel cannot read.
    pub fn bad_request(message: impl Into<String>) -> TunnelError {
        TunnelError {
            code: "BAD_REQUEST".into(),
            message: message.into(),
        }
    }

    fn from_status(status: tonic::Status) -> TunnelError {
        let code = status
            .metadata()
            .get(ERROR_CODE_METADATA)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("INTERNAL")
            .to_string();
        TunnelError {
            code,
            message: status.message().to_string(),
        }
    }
}

/// The API one session's browser uses.
#[derive(Clone)]
pub struct TunnelApi {
    client: LightningClient<InProcessService>,
    token: String,
    signer: SignerProbe,
    nwc: Option<Arc<dyn NwcControl>>,
}

impl TunnelApi {
    /// The API over `client`, every call made with `token`.
    pub fn new(
        client: LightningClient<InProcessService>,
        token: String,
        signer: SignerProbe,
        nwc: Option<Arc<dyn NwcControl>>,
    ) -> TunnelApi {
        TunnelApi {
            client,
            token,
            signer,
            nwc,
        }
    }

    fn request<T>(&self, message: T) -> Result<tonic::Request<T>, TunnelError> {
        let mut request = tonic::Request::new(message);
        let value = MetadataValue::try_from(bearer(&self.token))
            .map_err(|_| TunnelError::bad_request("the session's token is not ASCII"))?;
        request.metadata_mut().insert(AUTHORIZATION_METADATA, value);
        Ok(request)
    }

    /// A client for one call (clones share the in-process service).
    pub(crate) fn client(&self) -> LightningClient<InProcessService> {
        self.client.clone()
    }

    /// A `SubscribeEvents` request with the session's credential.
    pub(crate) fn subscribe_request(
        &self,
    ) -> Result<tonic::Request<v1::SubscribeEventsRequest>, TunnelError> {
        self.request(v1::SubscribeEventsRequest {})
    }

    /// Answers one request (`method`, `params`).
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, TunnelError> {
        match method {
            "get_info" => self.get_info().await,
            "balance" => self.balance().await,
            "create_invoice" => self.create_invoice(parse(params)?).await,
            "fee_limit" => fee_limit(parse(params)?),
            "pay_invoice" => self.pay_invoice(parse(params)?).await,
            "list_payments" => self.list_payments(parse(params)?).await,
            "nwc_list" | "nwc_create" | "nwc_revoke" => match &self.nwc {
                Some(nwc) => nwc.call(method, params, &self.token).await,
                None => Err(TunnelError {
                    code: "NOT_RUNNING".into(),
                    message: "wallet connections (NWC) are not enabled on this node".into(),
                }),
            },
            other => Err(TunnelError {
                code: "UNKNOWN_METHOD".into(),
                message: format!("there is no method {other:?}"),
            }),
        }
    }

    async fn get_info(&self) -> Result<Value, TunnelError> {
        let info = self
            .client()
            .get_info(self.request(v1::GetInfoRequest {})?)
            .await
            .map_err(TunnelError::from_status)?
            .into_inner();
        Ok(json!({
            "node_id": info.node_id, "alias": info.alias, "network": info.network,
            "block_height": info.block_height, "signer": (self.signer)().as_str(),
            "usable_channels": info.num_usable_channels,
        }))
    }

    async fn balance(&self) -> Result<Value, TunnelError> {
        let mut client = self.client();
        let channels = client
            .list_channels(self.request(v1::ListChannelsRequest {})?)
            .await
            .map_err(TunnelError::from_status)?
            .into_inner()
            .channels;
        let usable = channels.iter().filter(|c| c.is_usable);
        let spendable_msat: u64 = usable.clone().map(|c| c.outbound_capacity_msat).sum();
        let receivable_msat: u64 = usable.map(|c| c.inbound_capacity_msat).sum();
        let onchain = client
            .onchain_balance(self.request(v1::OnchainBalanceRequest {})?)
            .await
            .map_err(TunnelError::from_status)?
            .into_inner();
        let lightning = client
            .lightning_balance(self.request(v1::LightningBalanceRequest {})?)
            .await
            .map_err(TunnelError::from_status)?
            .into_inner();
        Ok(json!({
            "spendable_sat": spendable_msat / 1000,
            "receivable_sat": receivable_msat / 1000,
            "onchain_sat": onchain.confirmed_sat,
            "onchain_pending_sat": onchain.pending_incoming_sat,
            "closing_sat": lightning.pending_on_chain_sat,
        }))
    }

    async fn create_invoice(&self, p: CreateInvoice) -> Result<Value, TunnelError> {
        let amount_msat = p
            .amount_sat
            .checked_mul(1000)
            .filter(|m| *m > 0)
            .ok_or_else(|| TunnelError::bad_request("the amount must be at least 1 sat"))?;
        let expiry = p.expiry_secs.unwrap_or(3600);
        let created = self
            .client()
            .create_invoice(self.request(v1::CreateInvoiceRequest {
                description_hash: None,
                amount_msat: Some(amount_msat),
                description: p.description,
                expiry_secs: Some(expiry),
            })?)
            .await
            .map_err(TunnelError::from_status)?
            .into_inner();
        Ok(json!({
            "invoice": created.invoice, "payment_hash": created.payment_hash,
            "expires_at": crate::now_secs() + u64::from(expiry),
        }))
    }

    async fn pay_invoice(&self, p: PayInvoice) -> Result<Value, TunnelError> {
        let amount_msat = p.app_request.request.amount_msat;
        let mut request = self.request(v1::PayInvoiceRequest {
            invoice: p.invoice,
            amount_msat: None,
            max_fee_msat: Some(max_fee_msat(amount_msat)),
            wait: true,
            timeout_secs: Some(PAY_WAIT_SECS),
        })?;
        let signed = serde_json::to_string(&p.app_request)
            .map_err(|e| TunnelError::bad_request(e.to_string()))?;
        let value = MetadataValue::try_from(signed)
            .map_err(|_| TunnelError::bad_request("the app request is not ASCII JSON"))?;
        request.metadata_mut().insert(APP_REQUEST_METADATA, value);
        let payment = self
            .client()
            .pay_invoice(request)
            .await
            .map_err(TunnelError::from_status)?
            .into_inner();
        Ok(payment_json(&payment))
    }

    async fn list_payments(&self, p: ListPayments) -> Result<Value, TunnelError> {
        let page = self
            .client()
            .list_payments(self.request(v1::ListPaymentsRequest {
                page_size: Some(p.limit.unwrap_or(50).clamp(1, MAX_PAGE)),
                cursor: p.cursor,
            })?)
            .await
            .map_err(TunnelError::from_status)?
            .into_inner();
        let payments: Vec<Value> = page.payments.iter().map(payment_json).collect();
        Ok(json!({"payments": payments, "next_cursor": page.next_cursor}))
    }
}

/// The routing-fee limit of a payment of `amount_msat`: 1 % plus 10 sat, the most the wallet
/// lets the node spend on fees (the tenant's signer may allow less).
pub fn max_fee_msat(amount_msat: u64) -> u64 {
    amount_msat / 100 + 10_000
}

fn fee_limit(p: FeeLimit) -> Result<Value, TunnelError> {
    let msat = p.amount_sat.saturating_mul(1000);
    Ok(json!({"max_fee_sat": max_fee_msat(msat).div_ceil(1000)}))
}

/// A node event as the browser gets it; `None` for events it does not show.
pub fn event_json(event: v1::Event) -> Option<Value> {
    Some(match event.event? {
        E::PaymentReceived(e) => json!({"kind": "payment_received",
            "payment_hash": e.payment_hash, "amount_msat": e.amount_msat}),
        E::PaymentSent(e) => json!({"kind": "payment_sent",
            "payment_hash": e.payment_hash, "fee_msat": e.fee_msat}),
        E::PaymentFailed(e) => json!({"kind": "payment_failed",
            "payment_hash": e.payment_hash, "reason": e.reason}),
        E::ChannelReady(_) => json!({"kind": "channel_ready"}),
        E::ChannelClosed(_) => json!({"kind": "channel_closed"}),
        E::EventsLagged(_) => json!({"kind": "lagged"}),
        _ => return None,
    })
}

fn payment_json(p: &v1::Payment) -> Value {
    let direction = match v1::PaymentDirection::try_from(p.direction) {
        Ok(v1::PaymentDirection::Inbound) => "inbound",
        _ => "outbound",
    };
    let status = match v1::PaymentStatus::try_from(p.status) {
        Ok(v1::PaymentStatus::Succeeded) => "succeeded",
        Ok(v1::PaymentStatus::Failed) => "failed",
        _ => "pending",
    };
    json!({
        "payment_hash": p.payment_hash, "direction": direction, "status": status,
        "amount_msat": p.amount_msat, "fee_msat": p.fee_msat, "description": p.description,
        "invoice": p.invoice, "failure_reason": p.failure_reason,
        "created_at": p.created_at, "updated_at": p.updated_at,
    })
}

fn parse<T: for<'de> Deserialize<'de>>(params: Value) -> Result<T, TunnelError> {
    serde_json::from_value(params).map_err(|e| TunnelError::bad_request(format!("params: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateInvoice {
    amount_sat: u64,
    #[serde(default)]
    description: String,
    expiry_secs: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeeLimit {
    amount_sat: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayInvoice {
    invoice: String,
    app_request: SignedAppRequest,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListPayments {
    limit: Option<u32>,
    cursor: Option<String>,
}
