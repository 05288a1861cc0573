//! The host's admin API (`micronode.v1.Admin`): the operator provisions and manages tenants.
//!
//! Every call needs the host's admin cookie (`<host dir>/admin.cookie`, mode 0600). The
//! service has no method that reads a tenant's funds, balances or payments, and the cookie
//! is not a credential of any tenant's API.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use micronode_api::{Authenticator, CookieAuth};
use micronode_proto::v1;
use micronode_proto::v1::admin_server::{Admin, AdminServer};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::error::HostError;
use crate::host::{Deletion, Host, TenantStatus, TenantView};

/// The admin cookie's file name in the host directory.
pub const ADMIN_COOKIE_FILE: &str = "admin.cookie";
/// The file in the host directory that records where the admin API listens (not a secret), for
/// `micronode host tenant ...`.
pub const ADMIN_ADDRESS_FILE: &str = "admin.address";

/// The admin service over a host.
pub struct AdminService {
    host: Arc<Host>,
}

impl AdminService {
    /// The service of `host`.
    pub fn new(host: Arc<Host>) -> Self {
        Self { host }
    }

    fn enrolment(&self, view: TenantView) -> v1::Enrolment {
        let pairing_code = view.pairing_code.clone().unwrap_or_default();
        let signer_command = format!(
            "micronode signer --dir <your signer's directory> run --node {}{}",
            view.signer_address,
            if pairing_code.is_empty() {
                String::new()
            } else {
                format!(" --pair {pairing_code}")
            }
        );
        v1::Enrolment {
            node_link_key: view.node_link_key.clone().unwrap_or_default(),
            network: self.host_network(),
            signer_command,
            pairing_code,
            tenant: Some(tenant_message(view)),
        }
    }

    fn host_network(&self) -> String {
        self.host.network().to_string()
    }
}

/// The admin API's message of a tenant.
pub fn tenant_message(view: TenantView) -> v1::Tenant {
    let (state, failure) = match view.status {
        TenantStatus::WaitingForSigner => (v1::TenantState::WaitingForSigner, String::new()),
        TenantStatus::Active => (v1::TenantState::Active, String::new()),
        TenantStatus::Suspended => (v1::TenantState::Suspended, String::new()),
        TenantStatus::Deleting => (v1::TenantState::Deleting, String::new()),
        TenantStatus::Failed(why) => (v1::TenantState::Failed, why),
    };
    v1::Tenant {
        id: view.record.id,
        name: view.record.name,
        state: state as i32,
        node_id: view.record.node_id.unwrap_or_default(),
        signer_address: view.signer_address.to_string(),
        signer_connected: view.signer_connected,
        failure,
        created_at: view.record.created_at,
        channels: u32::try_from(view.channels).unwrap_or(u32::MAX),
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_tenant(
        &self,
        request: Request<v1::CreateTenantRequest>,
    ) -> Result<Response<v1::Enrolment>, Status> {
        let view = self.host.create_tenant(&request.into_inner().name).await?;
        Ok(Response::new(self.enrolment(view)))
    }

    async fn list_tenants(
        &self,
        _request: Request<v1::ListTenantsRequest>,
    ) -> Result<Response<v1::ListTenantsResponse>, Status> {
        let tenants = self
            .host
            .list_tenants()
            .into_iter()
            .map(tenant_message)
            .collect();
        Ok(Response::new(v1::ListTenantsResponse { tenants }))
    }

    async fn get_tenant(
        &self,
        request: Request<v1::TenantRef>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let view = self.host.tenant(&request.into_inner().tenant)?;
        Ok(Response::new(tenant_message(view)))
    }

    async fn suspend_tenant(
        &self,
        request: Request<v1::TenantRef>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let view = self
            .host
            .suspend_tenant(&request.into_inner().tenant)
            .await?;
        Ok(Response::new(tenant_message(view)))
    }

    async fn resume_tenant(
        &self,
        request: Request<v1::TenantRef>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let view = self
            .host
            .resume_tenant(&request.into_inner().tenant)
            .await?;
        Ok(Response::new(tenant_message(view)))
    }

    async fn delete_tenant(
        &self,
        request: Request<v1::DeleteTenantRequest>,
    ) -> Result<Response<v1::DeleteTenantResponse>, Status> {
        let request = request.into_inner();
        let done = self
            .host
            .delete_tenant(&request.tenant, request.close_channels)
            .await?;
        Ok(Response::new(match done {
            Deletion::Deleted => v1::DeleteTenantResponse {
                deleted: true,
                closing_channels: 0,
            },
            Deletion::Closing(n) => v1::DeleteTenantResponse {
                deleted: false,
                closing_channels: u32::try_from(n).unwrap_or(u32::MAX),
            },
        }))
    }

    async fn new_pairing_code(
        &self,
        request: Request<v1::TenantRef>,
    ) -> Result<Response<v1::Enrolment>, Status> {
        let view = self.host.new_pairing_code(&request.into_inner().tenant)?;
        Ok(Response::new(self.enrolment(view)))
    }
}

/// Serves the admin API of `host` on `addr` (port 0 picks one) until `shutdown` resolves,
/// writing a fresh admin cookie and the address file into the host directory.
pub async fn serve_admin(
    host: Arc<Host>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<()>), HostError> {
    let cookie = Arc::new(CookieAuth::create(host.dir().join(ADMIN_COOKIE_FILE))?);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(HostError::io(format!("binding the admin API on {addr}")))?;
    let bound = listener
        .local_addr()
        .map_err(HostError::io("reading the admin API's address"))?;
    micronode_files::write_private(
        &host.dir().join(ADMIN_ADDRESS_FILE),
        bound.to_string().as_bytes(),
    )?;
    let check = move |request: Request<()>| -> Result<Request<()>, Status> {
        cookie.authorize("", request.metadata())?;
        Ok(request)
    };
    let service = tonic::service::interceptor::InterceptedService::new(
        AdminServer::new(AdminService::new(host))
            .max_decoding_message_size(micronode_api::MAX_DECODING_MESSAGE_SIZE),
        check,
    );
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let task = tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the admin API stopped");
        }
    });
    tracing::info!(addr = %bound, "admin API listening");
    Ok((bound, task))
}
