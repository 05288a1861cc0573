//! Where challenge invoices come from: the tenant's node, behind a small trait.

use std::future::Future;
use std::pin::Pin;

use micronode_client::{ClientError, InvoiceDescription, NodeClient};

/// A boxed future, for the object-safe [`InvoiceSource`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An invoice to put in a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The BOLT11 text.
    pub bolt11: String,
    /// Its payment hash, which the token's identifier carries.
    pub payment_hash: [u8; 32],
}

/// Why no invoice could be had.
#[derive(Debug, thiserror::Error)]
pub enum InvoiceError {
    /// The node refused or could not be reached.
    #[error("the node could not make an invoice")]
    Node(#[source] ClientError),
    /// The node's answer is not what was asked for.
    #[error("the node's invoice is unusable: {0}")]
    Unusable(String),
}

/// Makes the invoices tokens are bought with.
pub trait InvoiceSource: Send + Sync {
    /// An invoice for `amount_msat`, described by `description`, payable for `expiry_secs`.
    fn create_invoice<'a>(
        &'a self,
        amount_msat: u64,
        description: String,
        expiry_secs: u32,
    ) -> BoxFuture<'a, Result<Invoice, InvoiceError>>;
}

/// Invoices from a tenant's node through its gRPC API (`micronode-client`).
#[derive(Debug, Clone)]
pub struct NodeInvoices {
    client: NodeClient,
}

impl NodeInvoices {
    /// Invoices from the node `client` talks to.
    pub fn new(client: NodeClient) -> NodeInvoices {
        NodeInvoices { client }
    }

    /// Connects to the node's API at `endpoint` with `secret` (a token, an app credential or
    /// the cookie's hex; see [`NodeClient::connect`]); `tenant` behind a host's front door.
    pub async fn connect(
        endpoint: &str,
        secret: &str,
        tenant: Option<&str>,
    ) -> Result<NodeInvoices, InvoiceError> {
        NodeClient::connect(endpoint, secret, tenant)
            .await
            .map(NodeInvoices::new)
            .map_err(InvoiceError::Node)
    }
}

impl InvoiceSource for NodeInvoices {
    fn create_invoice<'a>(
        &'a self,
        amount_msat: u64,
        description: String,
        expiry_secs: u32,
    ) -> BoxFuture<'a, Result<Invoice, InvoiceError>> {
        Box::pin(async move {
            let created = self
                .client
                .create_invoice(
                    Some(amount_msat),
                    InvoiceDescription::Text(description),
                    Some(expiry_secs),
                )
                .await
                .map_err(InvoiceError::Node)?;
            let mut payment_hash = [0u8; 32];
            hex::decode_to_slice(&created.payment_hash, &mut payment_hash).map_err(|_| {
                InvoiceError::Unusable("the payment hash is not 32 bytes of hex".into())
            })?;
            // The token is bound to the hash: make sure it is the invoice's, for the price.
            let (hash, amount) = micronode_client::invoice_terms(&created.invoice, None)
                .map_err(|e| InvoiceError::Unusable(e.to_string()))?;
            if hash != created.payment_hash.to_ascii_lowercase() || amount != amount_msat {
                return Err(InvoiceError::Unusable(
                    "the invoice's hash or amount differs from what was asked".into(),
                ));
            }
            Ok(Invoice {
                bolt11: created.invoice,
                payment_hash,
            })
        })
    }
}
