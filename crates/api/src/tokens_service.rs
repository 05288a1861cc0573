//! The `Tokens` gRPC service: registering, listing and revoking capability tokens. Each RPC
//! goes to its handler in [`crate::handlers`].

use micronode_proto::v1;
use micronode_proto::v1::tokens_server::Tokens;
use tonic::{Request, Response, Status};

use crate::handlers;
use crate::tokens::TokenAuthority;

/// The token management service of one node. Without a [`TokenAuthority`] (a node that
/// authenticates with its cookie) every call fails with `TOKENS_DISABLED`.
#[derive(Clone, Debug)]
pub struct TokensService {
    tokens: Option<TokenAuthority>,
}

impl TokensService {
    /// A service managing `tokens`.
    pub fn new(tokens: Option<TokenAuthority>) -> Self {
        Self { tokens }
    }
}

/// The response of a handler's result.
fn respond<T>(result: Result<T, crate::ApiError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl Tokens for TokensService {
    async fn register_token(
        &self,
        request: Request<v1::RegisterTokenRequest>,
    ) -> Result<Response<v1::RegisterTokenResponse>, Status> {
        respond(handlers::handle_register_token(self.tokens.as_ref(), request.into_inner()).await)
    }

    async fn list_tokens(
        &self,
        request: Request<v1::ListTokensRequest>,
    ) -> Result<Response<v1::ListTokensResponse>, Status> {
        respond(handlers::handle_list_tokens(self.tokens.as_ref(), request.into_inner()).await)
    }

    async fn revoke_token(
        &self,
        request: Request<v1::RevokeTokenRequest>,
    ) -> Result<Response<v1::RevokeTokenResponse>, Status> {
        respond(handlers::handle_revoke_token(self.tokens.as_ref(), request.into_inner()).await)
    }
}
