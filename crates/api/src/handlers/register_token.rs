//! `RegisterToken`: record a token made offline so it can be listed and revoked by id.

use micronode_proto::v1::{RegisterTokenRequest, RegisterTokenResponse};

use crate::adapter;
use crate::error::ApiError;
use crate::tokens::{TokenAuthority, TokenError};

/// Handles `RegisterToken`. Verifies the token and stores its ids and caveats (never the
/// token); a disk write, so it runs blocking.
pub async fn handle_register_token(
    tokens: Option<&TokenAuthority>,
    req: RegisterTokenRequest,
) -> Result<RegisterTokenResponse, ApiError> {
    let tokens = tokens.ok_or(TokenError::Disabled)?.clone();
    let token = adapter::required("token", &req.token)?.to_string();
    let label = req.label;
    let info = super::blocking_tokens(move || tokens.register(&token, &label)).await?;
    Ok(RegisterTokenResponse {
        token: Some(adapter::token_info(info)),
    })
}
