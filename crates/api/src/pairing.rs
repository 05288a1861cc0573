//! The browser-wallet pairing RPCs (`CreatePairing`, `ListPairings`, `RevokePairing`), served
//! by whatever runs the sessions (a [`PairingBackend`], `micronode-wallet`'s `WalletLink`).
//!
//! Who may do what: the operator's cookie and `admin` tokens everything; any other token only
//! its own session: it may register a session that hands out that very token (so a session
//! never grants more than its creator holds), and see and end that session.

use std::sync::Arc;

use micronode_proto::v1;
use micronode_proto::ErrorCode;

use crate::auth::Grant;
use crate::error::ApiError;
use crate::tokens::TokenAuthority;

/// Who calls, as the pairing backend needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairingCaller {
    /// The operator's cookie or an `admin` token: every session.
    Admin,
    /// A token: only the session whose token has this id.
    Token(String),
}

impl PairingCaller {
    /// Whether this caller may see or end the session handing out the token `token_id`.
    pub fn may_use(&self, token_id: &str) -> bool {
        match self {
            PairingCaller::Admin => true,
            PairingCaller::Token(id) => id == token_id,
        }
    }
}

/// A pairing session to start, checked by the API.
#[derive(Clone)]
pub struct NewPairing {
    /// The request as sent.
    pub request: v1::CreatePairingRequest,
    /// The id of the token the session hands out.
    pub token_id: String,
}

/// Runs a node's pairing sessions.
#[tonic::async_trait]
pub trait PairingBackend: Send + Sync + 'static {
    /// Registers and starts a session.
    async fn create(&self, pairing: NewPairing) -> Result<v1::PairingSession, ApiError>;
    /// The sessions `caller` may see, newest first.
    async fn list(&self, caller: PairingCaller) -> Result<Vec<v1::PairingSession>, ApiError>;
    /// Ends the session `id`, if `caller` may.
    async fn revoke(&self, id: &str, caller: PairingCaller)
        -> Result<v1::PairingSession, ApiError>;
}

/// What the pairing handlers need besides the call.
#[derive(Clone)]
pub(crate) struct PairingContext {
    pub backend: Arc<dyn PairingBackend>,
    pub tokens: Option<TokenAuthority>,
}

/// The refusal a backend gives when a caller may not touch a session (or it does not exist:
/// the two are not told apart).
pub fn unknown_session() -> ApiError {
    ApiError::refused(ErrorCode::InvalidInput, "no pairing session has this id")
}

fn caller_of(grant: &Grant) -> Result<PairingCaller, ApiError> {
    let Some(token) = grant.token_grant() else {
        return Ok(PairingCaller::Admin);
    };
    let text = token.token_base64()?;
    // An admin token passes the admin-only RPCs' check.
    if token.authority().check("ListTokens", &text).is_ok() {
        return Ok(PairingCaller::Admin);
    }
    Ok(PairingCaller::Token(token.id().to_string()))
}

/// Just the token of an auth data blob; the rest is the browser's business.
#[derive(serde::Deserialize)]
struct AuthDataToken {
    token: String,
}

/// `CreatePairing`.
pub(crate) async fn handle_create(
    context: Option<&PairingContext>,
    grant: &Grant,
    request: v1::CreatePairingRequest,
) -> Result<v1::PairingSession, ApiError> {
    let context = context.ok_or_else(disabled)?;
    let tokens = context.tokens.as_ref().ok_or_else(|| {
        ApiError::refused(
            ErrorCode::TokensDisabled,
            "pairing hands the browser a capability token; this node has none",
        )
    })?;
    let auth: AuthDataToken = serde_json::from_slice(&request.auth_data)
        .map_err(|e| ApiError::invalid(format!("auth_data is not the pairing JSON: {e}")))?;
    let session_token = tokens
        .check("GetInfo", &auth.token)
        .map_err(|e| ApiError::invalid(format!("the token in auth_data is not valid here: {e}")))?;
    let token_id = session_token.id().to_string();
    if let PairingCaller::Token(caller) = caller_of(grant)? {
        if caller != token_id {
            return Err(ApiError::refused(
                ErrorCode::MethodNotAllowed,
                "a token may only register a session that hands out that same token",
            ));
        }
    }
    context
        .backend
        .create(NewPairing { request, token_id })
        .await
}

/// `ListPairings`.
pub(crate) async fn handle_list(
    context: Option<&PairingContext>,
    grant: &Grant,
) -> Result<v1::ListPairingsResponse, ApiError> {
    let context = context.ok_or_else(disabled)?;
    let sessions = context.backend.list(caller_of(grant)?).await?;
    Ok(v1::ListPairingsResponse { sessions })
}

/// `RevokePairing`.
pub(crate) async fn handle_revoke(
    context: Option<&PairingContext>,
    grant: &Grant,
    request: v1::RevokePairingRequest,
) -> Result<v1::PairingSession, ApiError> {
    let context = context.ok_or_else(disabled)?;
    let id = crate::adapter::required("id", &request.id)?;
    context.backend.revoke(id, caller_of(grant)?).await
}

fn disabled() -> ApiError {
    ApiError::refused(
        ErrorCode::NotRunning,
        "browser pairing is not enabled on this node (it has no relay)",
    )
}
