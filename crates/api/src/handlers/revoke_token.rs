//! `RevokeToken`: revoke a token, and with it every token attenuated from it.

use micronode_proto::v1::{RevokeTokenRequest, RevokeTokenResponse};

use crate::adapter;
use crate::error::ApiError;
use crate::tokens::{TokenAuthority, TokenError};

/// Handles `RevokeToken`. The revocation is on disk and in force for the next call when this
/// returns; a disk write, so it runs blocking.
pub async fn handle_revoke_token(
    tokens: Option<&TokenAuthority>,
    req: RevokeTokenRequest,
) -> Result<RevokeTokenResponse, ApiError> {
    let tokens = tokens.ok_or(TokenError::Disabled)?.clone();
    let id = adapter::required("id", &req.id)?.to_string();
    let revoked = super::blocking_tokens(move || tokens.revoke(&id)).await?;
    Ok(RevokeTokenResponse {
        revocation_id: revoked.revocation_id,
        revoked_ids: revoked.revoked_ids,
    })
}
