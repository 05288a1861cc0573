//! Who may call the API, and what they may do.
//!
//! Every call passes through an [`Authenticator`] before its request is even decoded: it gets
//! the RPC's name and the request metadata, and answers with a [`Grant`] (or a status that is
//! returned to the caller as is). The grant travels to the handler in the request's extensions,
//! so handlers that spend (PayInvoice, Keysend) can enforce a token's budgets.
//!
//! Two authenticators ship: [`CookieAuth`], like bitcoind's `.cookie` (a random token in a
//! file only the node's user can read, sent as `authorization: Bearer <hex>`; it grants
//! everything), and the capability-token [`TokenAuthority`].

mod guard;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use micronode_proto::{ErrorCode, AUTHORIZATION_METADATA};
use rand::RngCore;
use tonic::metadata::MetadataMap;

use crate::error::ApiError;
use crate::tokens::{TokenAuthority, TokenGrant};

pub(crate) use guard::AuthGuard;

/// The length of a cookie token in bytes (its hex text is twice as long).
pub const COOKIE_TOKEN_BYTES: usize = 32;

/// Decides whether a call may proceed, from the RPC's name and the request metadata.
///
/// Implementations MUST be cheap (they run on every call, on the async workers, before the
/// request is decoded) and MUST NOT tell apart, in their answer, a wrong credential from one
/// that is close to right.
pub trait Authenticator: Send + Sync + 'static {
    /// Authorises a call of `method` (the RPC's name as in the request path, e.g.
    /// `PayInvoice`). `Ok` lets the call through with its [`Grant`]; an `Err` status is returned
    /// to the caller as is.
    fn authorize(&self, method: &str, metadata: &MetadataMap) -> Result<Grant, tonic::Status>;

    /// The token authority behind this authenticator, if it is one: the `Tokens` service
    /// manages it, and the server settles budget reservations left open by a restart.
    fn token_authority(&self) -> Option<TokenAuthority> {
        None
    }
}

impl<A: Authenticator + ?Sized> Authenticator for Box<A> {
    fn authorize(&self, method: &str, metadata: &MetadataMap) -> Result<Grant, tonic::Status> {
        (**self).authorize(method, metadata)
    }

    fn token_authority(&self) -> Option<TokenAuthority> {
        (**self).token_authority()
    }
}

/// What an authorised call may do, handed to its handler.
#[derive(Clone, Debug)]
pub struct Grant(GrantKind);

#[derive(Clone, Debug)]
enum GrantKind {
    /// Everything (the cookie).
    Unrestricted,
    /// What a capability token allows, budgets included.
    Token(Arc<TokenGrant>),
}

impl Grant {
    /// A grant of everything, with no budget.
    pub fn unrestricted() -> Grant {
        Grant(GrantKind::Unrestricted)
    }

    /// A grant of what a verified token allows.
    pub fn token(grant: Arc<TokenGrant>) -> Grant {
        Grant(GrantKind::Token(grant))
    }

    /// The token behind this grant, if any.
    pub fn token_grant(&self) -> Option<&Arc<TokenGrant>> {
        match &self.0 {
            GrantKind::Unrestricted => None,
            GrantKind::Token(t) => Some(t),
        }
    }

    /// Whether payments under this grant are metered (reserved against budgets first).
    pub fn is_metered(&self) -> bool {
        self.token_grant().is_some()
    }
}

/// An `UNAUTHENTICATED` status carrying [`ErrorCode::Unauthenticated`].
pub fn unauthenticated(message: &str) -> tonic::Status {
    ErrorCode::Unauthenticated.status(message)
}

/// A cookie file's token, checked in constant time.
pub struct CookieAuth {
    token: String,
    path: PathBuf,
}

impl std::fmt::Debug for CookieAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("CookieAuth")
            .field("path", &self.path)
            .finish()
    }
}

impl CookieAuth {
    /// Makes a fresh random token and writes it, as hex, to `path` with mode 0600 (replacing an
    /// older cookie atomically). Creates the parent folder (mode 0700) if it is missing.
    pub fn create(path: impl AsRef<Path>) -> Result<CookieAuth, ApiError> {
        let path = path.as_ref().to_path_buf();
        let mut bytes = [0u8; COOKIE_TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        write_private(&path, token.as_bytes()).map_err(|source| ApiError::Cookie {
            path: path.clone(),
            source,
        })?;
        Ok(CookieAuth { token, path })
    }

    /// The cookie file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token (hex), for in-process clients. It is a secret.
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Authenticator for CookieAuth {
    fn authorize(&self, _method: &str, metadata: &MetadataMap) -> Result<Grant, tonic::Status> {
        let presented = presented_bearer(metadata).map_err(|missing| {
            unauthenticated(if missing {
                "missing credentials: send `authorization: Bearer <token from the API cookie file>`"
            } else {
                "malformed credentials: expected `Bearer <token>`"
            })
        })?;
        if constant_time_eq(presented.as_bytes(), self.token.as_bytes()) {
            Ok(Grant::unrestricted())
        } else {
            Err(unauthenticated("invalid credentials"))
        }
    }
}

/// The operator's cookie and the tenant's capability tokens, side by side: the node of a
/// remote-signer tenant serves the operator (cookie: everything, though the tenant's signer
/// refuses any payment no app of the tenant signed) and the tenant's apps (tokens the tenant's
/// signer baked).
pub struct CookieOrTokens {
    cookie: CookieAuth,
    tokens: TokenAuthority,
}

impl CookieOrTokens {
    /// Accepts `cookie` or any token of `tokens`.
    pub fn new(cookie: CookieAuth, tokens: TokenAuthority) -> CookieOrTokens {
        CookieOrTokens { cookie, tokens }
    }
}

impl Authenticator for CookieOrTokens {
    fn authorize(&self, method: &str, metadata: &MetadataMap) -> Result<Grant, tonic::Status> {
        match presented_bearer(metadata) {
            Ok(presented)
                if constant_time_eq(presented.as_bytes(), self.cookie.token.as_bytes()) =>
            {
                Ok(Grant::unrestricted())
            }
            _ => self.tokens.authorize(method, metadata),
        }
    }

    fn token_authority(&self) -> Option<TokenAuthority> {
        Some(self.tokens.clone())
    }
}

/// The token of the call's `authorization: Bearer <token>`; `Err(true)` if there is no
/// `authorization` at all, `Err(false)` if it is not a bearer token.
pub(crate) fn presented_bearer(metadata: &MetadataMap) -> Result<&str, bool> {
    let value = metadata.get(AUTHORIZATION_METADATA).ok_or(true)?;
    value.to_str().ok().and_then(bearer_token).ok_or(false)
}

/// Reads the token from a cookie file written by [`CookieAuth::create`], for clients.
pub fn read_cookie(path: impl AsRef<Path>) -> Result<String, ApiError> {
    let path = path.as_ref();
    let cookie_err = |source| ApiError::Cookie {
        path: path.to_path_buf(),
        source,
    };
    let text = fs::read_to_string(path).map_err(cookie_err)?;
    let token = text.trim();
    if token.len() != 2 * COOKIE_TOKEN_BYTES || hex::decode(token).is_err() {
        return Err(cookie_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not a cookie: expected {} hex characters",
                2 * COOKIE_TOKEN_BYTES
            ),
        )));
    }
    Ok(token.to_string())
}

/// The `authorization` metadata value for a token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The token of a `Bearer <token>` value (the scheme is case-insensitive, RFC 6750).
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares two byte strings in time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        // The token's length is public (always 64 hex characters).
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

/// Writes `bytes` to `path` the one way private files are written (`micronode-files`).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    micronode_files::write_private(path, bytes).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(tag: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!(
                "micronode-api-auth-{tag}-{}-{}",
                std::process::id(),
                rand::random::<u32>()
            ))
            .join("api.cookie")
    }

    fn metadata(value: Option<&str>) -> MetadataMap {
        let mut map = MetadataMap::new();
        if let Some(v) = value {
            map.insert(AUTHORIZATION_METADATA, v.parse().expect("ascii"));
        }
        map
    }

    #[test]
    fn cookie_is_private_and_round_trips() {
        let path = temp_path("roundtrip");
        let auth = CookieAuth::create(&path).expect("create");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = fs::metadata(path.parent().expect("parent"))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o077, 0, "parent folder is private");
        }
        let token = read_cookie(&path).expect("read");
        assert_eq!(token, auth.token());
        assert_eq!(token.len(), 64);
        // A new cookie replaces the old one, with a new token.
        let again = CookieAuth::create(&path).expect("recreate");
        assert_ne!(again.token(), auth.token());
        assert_eq!(read_cookie(&path).expect("read"), again.token());
        assert!(!format!("{again:?}").contains(again.token()));
        let _ = fs::remove_dir_all(path.parent().expect("parent"));
    }

    #[test]
    fn checks_the_bearer_token() {
        let path = temp_path("check");
        let auth = CookieAuth::create(&path).expect("create");
        let good = bearer(auth.token());
        assert!(auth.authorize("GetInfo", &metadata(Some(&good))).is_ok());
        assert!(auth
            .authorize(
                "PayInvoice",
                &metadata(Some(&format!("bearer  {} ", auth.token())))
            )
            .is_ok());
        let mut wrong = auth.token().to_string();
        wrong.replace_range(0..1, if wrong.starts_with('0') { "1" } else { "0" });
        for bad in [
            None,
            Some(wrong.as_str()),
            Some(&*format!("Bearer {wrong}")),
            Some("Bearer "),
            Some("Basic abc"),
            Some(&*format!("Bearer {}", &auth.token()[..63])),
        ] {
            let err = auth
                .authorize("GetInfo", &metadata(bad))
                .expect_err("refused");
            assert_eq!(err.code(), tonic::Code::Unauthenticated);
            assert_eq!(ErrorCode::of_status(&err), Some(ErrorCode::Unauthenticated));
        }
        let _ = fs::remove_dir_all(path.parent().expect("parent"));
    }

    #[test]
    fn read_cookie_refuses_what_is_not_a_cookie() {
        let path = temp_path("bad");
        assert!(matches!(read_cookie(&path), Err(ApiError::Cookie { .. })));
        write_private(&path, b"not hex").expect("write");
        assert!(matches!(read_cookie(&path), Err(ApiError::Cookie { .. })));
        let _ = fs::remove_dir_all(path.parent().expect("parent"));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
