//! `ListTokens`: the registered tokens, ids and caveats only.

use micronode_proto::v1::{ListTokensRequest, ListTokensResponse};

use crate::adapter;
use crate::error::ApiError;
use crate::tokens::{TokenAuthority, TokenError};

/// Handles `ListTokens`. Reads the token store (and sums the ledger), so it runs blocking.
pub async fn handle_list_tokens(
    tokens: Option<&TokenAuthority>,
    _req: ListTokensRequest,
) -> Result<ListTokensResponse, ApiError> {
    let tokens = tokens.ok_or(TokenError::Disabled)?.clone();
    let list = super::blocking_tokens(move || tokens.list()).await?;
    Ok(ListTokensResponse {
        tokens: list.into_iter().map(adapter::token_info).collect(),
    })
}
