//! The app's signed request that comes with a spending call: read from the call's
//! `micronode-app-request` metadata (JSON of a [`SignedAppRequest`]) and handed, with the
//! call's token, to the node, whose tenant signer checks it against the payment. The node
//! itself checks nothing here that the signer does not check again: the operator runs it.

use micronode_signer_protocol::{PaymentAuthorization, SignedAppRequest, APP_REQUEST_METADATA};
use tonic::metadata::MetadataMap;

use crate::auth::Grant;
use crate::error::ApiError;

/// The longest request metadata accepted (a signed request is about 350 bytes).
const MAX_LEN: usize = 2048;

/// The app's authorization for a spending call, if it sent a signed request. A request under
/// a grant with no token (the operator's cookie) is refused: an app's request is only
/// meaningful with the token naming its key.
pub fn authorization_of(
    metadata: &MetadataMap,
    grant: &Grant,
) -> Result<Option<PaymentAuthorization>, ApiError> {
    let Some(value) = metadata.get(APP_REQUEST_METADATA) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::invalid(format!("{APP_REQUEST_METADATA}: not ASCII")))?;
    if text.len() > MAX_LEN {
        return Err(ApiError::invalid(format!(
            "{APP_REQUEST_METADATA}: longer than {MAX_LEN} bytes"
        )));
    }
    let request: SignedAppRequest = serde_json::from_str(text)
        .map_err(|e| ApiError::invalid(format!("{APP_REQUEST_METADATA}: {e}")))?;
    let token = grant
        .token_grant()
        .map(|t| t.token_base64())
        .transpose()?
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "{APP_REQUEST_METADATA} needs the app's token as the call's bearer token"
            ))
        })?;
    Ok(Some(PaymentAuthorization::Client { token, request }))
}
