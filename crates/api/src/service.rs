//! The `Lightning` gRPC service over one node: each RPC goes to its handler in
//! [`crate::handlers`], and each [`ApiError`](crate::ApiError) becomes a status there.

use std::sync::Arc;

use micronode_node::{KeysBackend, Node};
use micronode_proto::v1;
use micronode_proto::v1::lightning_server::Lightning;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::auth::Grant;
use crate::handlers::{self, EventStream, ShutdownSignal};
use crate::pairing::{self, PairingContext};

/// The gRPC service of one node. Wrap it in
/// [`LightningServer`](micronode_proto::v1::lightning_server::LightningServer), or let
/// [`serve`](crate::serve) do it with authentication and limits.
///
/// Each call's [`Grant`] comes from the request's extensions, where [`serve`](crate::serve)'s
/// authentication puts it. A service made with [`LightningService::new`] or
/// [`LightningService::with_shutdown`] has no authentication of its own and treats a call
/// without a grant as unrestricted; under `serve`, a call without one is refused.
pub struct LightningService<K: KeysBackend> {
    node: Arc<Node<K>>,
    stop: ShutdownSignal,
    require_grant: bool,
    pairing: Option<PairingContext>,
}

impl<K: KeysBackend> LightningService<K> {
    /// A service over `node` whose long calls (payment waits, event streams) never end for a
    /// shutdown; [`serve`](crate::serve) uses [`LightningService::with_shutdown`] instead.
    pub fn new(node: Arc<Node<K>>) -> Self {
        // The sender is dropped at once: nobody can signal a shutdown.
        let (_, stop) = watch::channel(false);
        Self::with_shutdown(node, stop)
    }

    /// A service over `node` whose long calls end once `stop` becomes `true`.
    pub fn with_shutdown(node: Arc<Node<K>>, stop: ShutdownSignal) -> Self {
        Self {
            node,
            stop,
            require_grant: false,
            pairing: None,
        }
    }

    /// Serves the pairing RPCs with this backend.
    pub(crate) fn with_pairing(mut self, pairing: PairingContext) -> Self {
        self.pairing = Some(pairing);
        self
    }

    /// Refuses calls that carry no [`Grant`] (set by [`serve`](crate::serve), whose
    /// authentication always adds one: a missing grant is a bug, and fails closed).
    pub(crate) fn requiring_grants(mut self) -> Self {
        self.require_grant = true;
        self
    }

    /// The grant of a call.
    fn grant<T>(&self, request: &Request<T>) -> Result<Grant, Status> {
        match request.extensions().get::<Grant>() {
            Some(grant) => Ok(grant.clone()),
            None if !self.require_grant => Ok(Grant::unrestricted()),
            None => {
                tracing::error!("a call reached the service without a grant");
                Err(crate::ErrorCode::Internal.status(crate::error::INTERNAL_MESSAGE))
            }
        }
    }

    /// The node served.
    pub fn node(&self) -> &Arc<Node<K>> {
        &self.node
    }
}

/// The response of a handler's result.
fn respond<T>(result: Result<T, crate::ApiError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl<K: KeysBackend> Lightning for LightningService<K> {
    async fn get_info(
        &self,
        request: Request<v1::GetInfoRequest>,
    ) -> Result<Response<v1::GetInfoResponse>, Status> {
        respond(handlers::handle_get_info(&self.node, request.into_inner()).await)
    }

    async fn new_address(
        &self,
        request: Request<v1::NewAddressRequest>,
    ) -> Result<Response<v1::NewAddressResponse>, Status> {
        respond(handlers::handle_new_address(&self.node, request.into_inner()).await)
    }

    async fn onchain_balance(
        &self,
        request: Request<v1::OnchainBalanceRequest>,
    ) -> Result<Response<v1::OnchainBalanceResponse>, Status> {
        respond(handlers::handle_onchain_balance(&self.node, request.into_inner()).await)
    }

    async fn lightning_balance(
        &self,
        request: Request<v1::LightningBalanceRequest>,
    ) -> Result<Response<v1::LightningBalanceResponse>, Status> {
        respond(handlers::handle_lightning_balance(&self.node, request.into_inner()).await)
    }

    async fn send_onchain(
        &self,
        request: Request<v1::SendOnchainRequest>,
    ) -> Result<Response<v1::SendOnchainResponse>, Status> {
        let grant = self.grant(&request)?;
        let app = crate::app_request::authorization_of(request.metadata(), &grant)
            .map_err(|e| e.to_status())?;
        respond(handlers::handle_send_onchain(&self.node, app, request.into_inner()).await)
    }

    async fn connect_peer(
        &self,
        request: Request<v1::ConnectPeerRequest>,
    ) -> Result<Response<v1::ConnectPeerResponse>, Status> {
        respond(handlers::handle_connect_peer(&self.node, request.into_inner()).await)
    }

    async fn list_peers(
        &self,
        request: Request<v1::ListPeersRequest>,
    ) -> Result<Response<v1::ListPeersResponse>, Status> {
        respond(handlers::handle_list_peers(&self.node, request.into_inner()).await)
    }

    async fn open_channel(
        &self,
        request: Request<v1::OpenChannelRequest>,
    ) -> Result<Response<v1::OpenChannelResponse>, Status> {
        respond(handlers::handle_open_channel(&self.node, request.into_inner()).await)
    }

    async fn list_channels(
        &self,
        request: Request<v1::ListChannelsRequest>,
    ) -> Result<Response<v1::ListChannelsResponse>, Status> {
        respond(handlers::handle_list_channels(&self.node, request.into_inner()).await)
    }

    async fn close_channel(
        &self,
        request: Request<v1::CloseChannelRequest>,
    ) -> Result<Response<v1::CloseChannelResponse>, Status> {
        respond(handlers::handle_close_channel(&self.node, request.into_inner()).await)
    }

    async fn create_invoice(
        &self,
        request: Request<v1::CreateInvoiceRequest>,
    ) -> Result<Response<v1::CreateInvoiceResponse>, Status> {
        respond(handlers::handle_create_invoice(&self.node, request.into_inner()).await)
    }

    async fn pay_invoice(
        &self,
        request: Request<v1::PayInvoiceRequest>,
    ) -> Result<Response<v1::Payment>, Status> {
        let grant = self.grant(&request)?;
        let app = crate::app_request::authorization_of(request.metadata(), &grant)
            .map_err(|e| e.to_status())?;
        respond(
            handlers::handle_pay_invoice(
                &self.node,
                self.stop.clone(),
                &grant,
                app,
                request.into_inner(),
            )
            .await,
        )
    }

    async fn keysend(
        &self,
        request: Request<v1::KeysendRequest>,
    ) -> Result<Response<v1::Payment>, Status> {
        let grant = self.grant(&request)?;
        let app = crate::app_request::authorization_of(request.metadata(), &grant)
            .map_err(|e| e.to_status())?;
        respond(
            handlers::handle_keysend(
                &self.node,
                self.stop.clone(),
                &grant,
                app,
                request.into_inner(),
            )
            .await,
        )
    }

    async fn get_payment(
        &self,
        request: Request<v1::GetPaymentRequest>,
    ) -> Result<Response<v1::Payment>, Status> {
        respond(handlers::handle_get_payment(&self.node, request.into_inner()).await)
    }

    async fn list_payments(
        &self,
        request: Request<v1::ListPaymentsRequest>,
    ) -> Result<Response<v1::ListPaymentsResponse>, Status> {
        respond(handlers::handle_list_payments(&self.node, request.into_inner()).await)
    }

    type SubscribeEventsStream = EventStream;

    async fn subscribe_events(
        &self,
        request: Request<v1::SubscribeEventsRequest>,
    ) -> Result<Response<Self::SubscribeEventsStream>, Status> {
        respond(
            handlers::handle_subscribe_events(&self.node, self.stop.clone(), request.into_inner())
                .await,
        )
    }

    async fn create_pairing(
        &self,
        request: Request<v1::CreatePairingRequest>,
    ) -> Result<Response<v1::PairingSession>, Status> {
        let grant = self.grant(&request)?;
        respond(pairing::handle_create(self.pairing.as_ref(), &grant, request.into_inner()).await)
    }

    async fn list_pairings(
        &self,
        request: Request<v1::ListPairingsRequest>,
    ) -> Result<Response<v1::ListPairingsResponse>, Status> {
        let grant = self.grant(&request)?;
        respond(pairing::handle_list(self.pairing.as_ref(), &grant).await)
    }

    async fn revoke_pairing(
        &self,
        request: Request<v1::RevokePairingRequest>,
    ) -> Result<Response<v1::PairingSession>, Status> {
        let grant = self.grant(&request)?;
        respond(pairing::handle_revoke(self.pairing.as_ref(), &grant, request.into_inner()).await)
    }
}
