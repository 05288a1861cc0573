//! A typed client of one tenant node's gRPC API, for the services built on top of it (the
//! LndHub accounts of `micronode-hub`, the L402 paywall of `micronode-wall`).
//!
//! The client holds either a plain bearer token (or the operator's cookie, hex) or an **app
//! credential** baked by the tenant's signer (`micronode signer token bake`): then its token is
//! the bearer and every payment carries a request signed with the credential's client key,
//! which the tenant's signer checks against the payment and charges to the app's budget
//! (`docs/apps.md`). Behind a host's front door, the tenant header picks the tenant.

use std::str::FromStr;
use std::time::Duration;

use micronode_proto::v1;
use micronode_proto::v1::lightning_client::LightningClient;
use micronode_proto::{ErrorCode, TENANT_METADATA};
use micronode_signer_protocol::{AppCredential, AppMethod, SignedAppRequest, APP_REQUEST_METADATA};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// How long connecting to the node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to the node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not a valid URL.
    #[error("invalid node endpoint {endpoint:?}")]
    Endpoint {
        /// The endpoint given.
        endpoint: String,
        /// Why it is invalid.
        #[source]
        source: tonic::transport::Error,
    },
    /// The node could not be reached.
    #[error("cannot reach the node at {endpoint}")]
    Connect {
        /// The endpoint dialled.
        endpoint: String,
        /// The transport's error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The token, credential or tenant name cannot be sent as gRPC metadata, or the
    /// credential is malformed.
    #[error("bad credential: {0}")]
    Credential(String),
    /// The input cannot be turned into a request (an invalid invoice, node id or hash).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The node answered with an error. `code` is its typed code when it sent one.
    #[error("the node refused: {}", .status.message())]
    Api {
        /// The node's typed error code, if any.
        code: Option<ErrorCode>,
        /// The full status.
        #[source]
        status: tonic::Status,
    },
}

impl ClientError {
    /// The node's typed error code, if this is an answer of the node that carried one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// Whether the node's answer says the signer refused the payment by policy (an app's
    /// budget spent, a velocity limit, ...).
    pub fn is_policy_refusal(&self) -> bool {
        self.code() == Some(ErrorCode::SignerPolicyRefused)
    }

    fn api(status: tonic::Status) -> ClientError {
        ClientError::Api {
            code: ErrorCode::of_status(&status),
            status,
        }
    }
}

/// What an invoice describes: text shown to the payer, or the SHA-256 of a description kept
/// elsewhere (LNURL-pay's metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceDescription {
    /// The description itself (at most 639 bytes).
    Text(String),
    /// The SHA-256 of the description.
    Hash([u8; 32]),
}

/// Adds the bearer token and, behind a front door, the tenant to every call.
#[derive(Clone)]
pub struct Credentials {
    authorization: MetadataValue<Ascii>,
    tenant: Option<MetadataValue<Ascii>>,
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut()
            .insert("authorization", self.authorization.clone());
        if let Some(tenant) = &self.tenant {
            req.metadata_mut().insert(TENANT_METADATA, tenant.clone());
        }
        Ok(req)
    }
}

/// The generated gRPC client with [`Credentials`] on every call.
pub type RawClient = LightningClient<InterceptedService<Channel, Credentials>>;

/// A client of one tenant node's API. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct NodeClient {
    inner: RawClient,
    credential: Option<AppCredential>,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("app_credential", &self.credential.is_some())
            .finish_non_exhaustive()
    }
}

impl NodeClient {
    /// Connects to the node's API at `endpoint` (`http://host:port`) with `secret`: an app
    /// credential (`micronode-app:v1:...`), a capability token, or the cookie's hex. `tenant`
    /// names the tenant behind a host's front door.
    pub async fn connect(
        endpoint: &str,
        secret: &str,
        tenant: Option<&str>,
    ) -> Result<NodeClient, ClientError> {
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|source| ClientError::Endpoint {
                endpoint: endpoint.to_string(),
                source,
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                endpoint: endpoint.to_string(),
                source,
            })?;
        NodeClient::with_channel(channel, secret, tenant)
    }

    /// A client over an existing channel (see [`NodeClient::connect`]).
    pub fn with_channel(
        channel: Channel,
        secret: &str,
        tenant: Option<&str>,
    ) -> Result<NodeClient, ClientError> {
        let secret = secret.trim();
        let (bearer, credential) = if AppCredential::is_credential(secret) {
            let credential = AppCredential::parse(secret).map_err(ClientError::Credential)?;
            (credential.token.clone(), Some(credential))
        } else {
            (secret.to_string(), None)
        };
        let authorization = format!("Bearer {bearer}")
            .parse()
            .map_err(|_| ClientError::Credential("the token is not valid metadata".into()))?;
        let tenant = tenant
            .map(|t| {
                t.parse()
                    .map_err(|_| ClientError::Credential("the tenant is not valid metadata".into()))
            })
            .transpose()?;
        let credentials = Credentials {
            authorization,
            tenant,
        };
        Ok(NodeClient {
            inner: LightningClient::with_interceptor(channel, credentials),
            credential,
        })
    }

    /// Whether payments are signed by an app credential.
    pub fn has_app_credential(&self) -> bool {
        self.credential.is_some()
    }

    /// The generated client, for calls this type does not wrap.
    pub fn raw(&self) -> RawClient {
        self.inner.clone()
    }

    /// The node's id, alias, network and chain state.
    pub async fn get_info(&self) -> Result<v1::GetInfoResponse, ClientError> {
        self.inner
            .clone()
            .get_info(v1::GetInfoRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(ClientError::api)
    }

    /// Makes an invoice for `amount_msat` (`None`: any amount) that expires after
    /// `expiry_secs` (`None`: the node's default, an hour).
    pub async fn create_invoice(
        &self,
        amount_msat: Option<u64>,
        description: InvoiceDescription,
        expiry_secs: Option<u32>,
    ) -> Result<v1::CreateInvoiceResponse, ClientError> {
        let (description, description_hash) = match description {
            InvoiceDescription::Text(text) => (text, None),
            InvoiceDescription::Hash(hash) => (String::new(), Some(hex::encode(hash))),
        };
        self.inner
            .clone()
            .create_invoice(v1::CreateInvoiceRequest {
                amount_msat,
                description,
                expiry_secs,
                description_hash,
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(ClientError::api)
    }

    /// Pays `invoice` (`amount_msat` for an any-amount invoice) with at most `max_fee_msat` in
    /// routing fees. With `wait_secs`, waits that long for the outcome (a timeout is an error
    /// with code `TIMEOUT`, and the payment goes on); without, returns the pending record.
    /// With an app credential, the payment carries the app's signed request.
    pub async fn pay_invoice(
        &self,
        invoice: &str,
        amount_msat: Option<u64>,
        max_fee_msat: Option<u64>,
        wait_secs: Option<u32>,
    ) -> Result<v1::Payment, ClientError> {
        let mut request = tonic::Request::new(v1::PayInvoiceRequest {
            invoice: invoice.trim().to_string(),
            amount_msat,
            max_fee_msat,
            wait: wait_secs.is_some(),
            timeout_secs: wait_secs,
        });
        if let Some(credential) = &self.credential {
            let (hash, amount) = invoice_terms(invoice, amount_msat)?;
            attach(
                &mut request,
                credential.sign(AppMethod::PayInvoice, hash, amount),
            )?;
        }
        self.inner
            .clone()
            .pay_invoice(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(ClientError::api)
    }

    /// Sends `amount_msat` to `node_id` without an invoice (keysend); `wait_secs` as in
    /// [`NodeClient::pay_invoice`]. With `preimage`, the payment's hash and id are its
    /// SHA-256 (the caller can record them first); without, the node draws one.
    pub async fn keysend(
        &self,
        node_id: &str,
        amount_msat: u64,
        max_fee_msat: Option<u64>,
        preimage: Option<[u8; 32]>,
        wait_secs: Option<u32>,
    ) -> Result<v1::Payment, ClientError> {
        let payee = bitcoin::secp256k1::PublicKey::from_str(node_id.trim())
            .map_err(|e| ClientError::InvalidInput(format!("invalid node id: {e}")))?;
        let mut request = tonic::Request::new(v1::KeysendRequest {
            node_id: payee.to_string(),
            amount_msat,
            max_fee_msat,
            wait: wait_secs.is_some(),
            timeout_secs: wait_secs,
            preimage: preimage.map(hex::encode),
        });
        if let Some(credential) = &self.credential {
            attach(
                &mut request,
                credential.sign(AppMethod::Keysend, payee.to_string(), amount_msat),
            )?;
        }
        self.inner
            .clone()
            .keysend(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(ClientError::api)
    }

    /// The payment `id` (a payment hash, or the id a send returned) looking `direction` way
    /// (`None`: outbound first, then inbound); `Ok(None)` when the node has no such payment.
    pub async fn get_payment(
        &self,
        id: &str,
        direction: Option<v1::PaymentDirection>,
    ) -> Result<Option<v1::Payment>, ClientError> {
        match self
            .inner
            .clone()
            .get_payment(v1::GetPaymentRequest {
                id: id.to_string(),
                direction: direction.map(|d| d as i32),
            })
            .await
        {
            Ok(response) => Ok(Some(response.into_inner())),
            Err(status) if ErrorCode::of_status(&status) == Some(ErrorCode::UnknownPayment) => {
                Ok(None)
            }
            Err(status) => Err(ClientError::api(status)),
        }
    }

    /// The node's events from now on (payments received, sent, failed, channels, ...).
    pub async fn subscribe_events(&self) -> Result<tonic::Streaming<v1::Event>, ClientError> {
        self.inner
            .clone()
            .subscribe_events(v1::SubscribeEventsRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(ClientError::api)
    }
}

/// The payment hash (hex) and the amount an app request for paying `invoice` names:
/// `amount_msat` when given, else the invoice's.
pub fn invoice_terms(
    invoice: &str,
    amount_msat: Option<u64>,
) -> Result<(String, u64), ClientError> {
    let parsed = lightning_invoice::Bolt11Invoice::from_str(invoice.trim())
        .map_err(|e| ClientError::InvalidInput(format!("invalid invoice: {e}")))?;
    let amount = amount_msat
        .or(parsed.amount_milli_satoshis())
        .ok_or_else(|| {
            ClientError::InvalidInput("the invoice has no amount; give one to pay".into())
        })?;
    let hash: &[u8] = parsed.payment_hash().as_ref();
    Ok((hex::encode(hash), amount))
}

fn attach<T>(request: &mut tonic::Request<T>, signed: SignedAppRequest) -> Result<(), ClientError> {
    let value: MetadataValue<Ascii> = serde_json::to_string(&signed)
        .map_err(|e| ClientError::Credential(format!("cannot encode the signed request: {e}")))?
        .parse()
        .map_err(|_| ClientError::Credential("the signed request is not valid metadata".into()))?;
    request.metadata_mut().insert(APP_REQUEST_METADATA, value);
    Ok(())
}
