//! The L402 protocol: the token identifier, the headers, and minting and verifying tokens
//! without a database.
//!
//! A token is a macaroon whose identifier names the invoice it is bought with, plus the
//! preimage that proves the invoice was paid. Its root key is never stored: it is
//! `HMAC-SHA256(wall secret, identifier)`, so the wall re-derives it from the identifier the
//! client presents, checks the macaroon's signature chain, checks that the preimage hashes to
//! the identifier's payment hash, and checks the caveats. No lookup, no state per token.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::macaroon::{DecodeError, Macaroon};

/// The macaroon location aperture and lnd give L402 macaroons.
pub const MACAROON_LOCATION: &str = "lsat";

/// The identifier version this wall issues and accepts.
pub const IDENTIFIER_VERSION: u16 = 0;

/// The length of a version 0 identifier: version, payment hash, token id.
pub const IDENTIFIER_LEN: usize = 2 + 32 + 32;

/// The data a token's macaroon identifier carries, as aperture's `l402/identifier.go`
/// encodes it: `version: u16 BE (0) || payment_hash[32] || token_id[32]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identifier {
    /// The hash of the invoice the token is bought with.
    pub payment_hash: [u8; 32],
    /// A random id that makes each token unique.
    pub token_id: [u8; 32],
}

/// Why an identifier cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// Not [`IDENTIFIER_LEN`] bytes.
    #[error("the token identifier is {0} bytes, not {IDENTIFIER_LEN}")]
    Length(usize),
    /// A version other than 0.
    #[error("unknown token identifier version {0}")]
    Version(u16),
}

impl Identifier {
    /// The encoded identifier.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(IDENTIFIER_LEN);
        out.extend_from_slice(&IDENTIFIER_VERSION.to_be_bytes());
        out.extend_from_slice(&self.payment_hash);
        out.extend_from_slice(&self.token_id);
        out
    }

    /// Decodes an identifier.
    pub fn decode(bytes: &[u8]) -> Result<Identifier, IdentifierError> {
        if bytes.len() < 2 {
            return Err(IdentifierError::Length(bytes.len()));
        }
        let version = u16::from_be_bytes([bytes[0], bytes[1]]);
        if version != IDENTIFIER_VERSION {
            return Err(IdentifierError::Version(version));
        }
        if bytes.len() != IDENTIFIER_LEN {
            return Err(IdentifierError::Length(bytes.len()));
        }
        let mut payment_hash = [0u8; 32];
        payment_hash.copy_from_slice(&bytes[2..34]);
        let mut token_id = [0u8; 32];
        token_id.copy_from_slice(&bytes[34..66]);
        Ok(Identifier {
            payment_hash,
            token_id,
        })
    }
}

/// A credential from an `Authorization: L402 <macaroon>:<preimage>` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The macaroon.
    pub macaroon: Macaroon,
    /// The preimage of the invoice the identifier names.
    pub preimage: [u8; 32],
}

/// Why an `Authorization` header with the L402 (or LSAT) scheme is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Not `<macaroon>:<preimage>` after the scheme.
    #[error("the L402 credential is not <macaroon>:<preimage>")]
    Shape,
    /// The preimage is not 64 hex digits.
    #[error("the preimage is not 32 bytes of hex")]
    Preimage,
    /// The macaroon cannot be decoded.
    #[error("{0}")]
    Macaroon(#[source] DecodeError),
    /// More than one macaroon (a comma-separated list); the wall issues and takes one.
    #[error("more than one macaroon is not supported")]
    MultipleMacaroons,
}

/// Reads `Authorization` header values: the first with the `L402` or `LSAT` scheme (any
/// case). `Ok(None)` when there is none (no header, or only other schemes such as `Bearer`).
pub fn parse_authorization<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<Credential>, HeaderError> {
    for value in values {
        // A header that is not text cannot be ours.
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        let value = value.trim();
        let (scheme, rest) = value
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("L402") || scheme.eq_ignore_ascii_case("LSAT") {
            return parse_credential(rest.trim()).map(Some);
        }
    }
    Ok(None)
}

/// Parses `<base64 macaroon>:<hex preimage>`.
pub fn parse_credential(text: &str) -> Result<Credential, HeaderError> {
    let (macaroon, preimage) = text.rsplit_once(':').ok_or(HeaderError::Shape)?;
    if macaroon.is_empty() || macaroon.contains(char::is_whitespace) {
        return Err(HeaderError::Shape);
    }
    if macaroon.contains(',') {
        return Err(HeaderError::MultipleMacaroons);
    }
    let preimage = preimage.trim();
    if preimage.len() != 64 {
        return Err(HeaderError::Preimage);
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(preimage, &mut bytes).map_err(|_| HeaderError::Preimage)?;
    let macaroon = Macaroon::from_base64(macaroon).map_err(HeaderError::Macaroon)?;
    Ok(Credential {
        macaroon,
        preimage: bytes,
    })
}

/// The `WWW-Authenticate` values of a challenge, in the order aperture sends them: the older
/// `LSAT` form first, then `L402`.
pub fn challenge_headers(macaroon: &Macaroon, invoice: &str) -> [String; 2] {
    let macaroon = macaroon.to_base64();
    [
        format!("LSAT macaroon=\"{macaroon}\", invoice=\"{invoice}\""),
        format!("L402 macaroon=\"{macaroon}\", invoice=\"{invoice}\""),
    ]
}

/// The caveat condition that restricts a token to services (`services=<name>:<tier>,...`).
pub const SERVICES_CONDITION: &str = "services";

/// The condition of a service's expiry caveat: `<service>_valid_until`, in Unix seconds.
pub fn valid_until_condition(service: &str) -> String {
    format!("{service}_valid_until")
}

/// The condition of a service's route caveat: `<service>_route`, a path prefix.
pub fn route_condition(service: &str) -> String {
    format!("{service}_route")
}

/// What a token grants: the service, the priced route (path prefix) and, optionally, until
/// when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The service name.
    pub service: String,
    /// The route's path prefix.
    pub route: String,
    /// Unix seconds after which the token no longer works; `None`: it does not expire.
    pub valid_until: Option<u64>,
}

/// The root key of the macaroon with `identifier`: `HMAC-SHA256(secret, identifier)`. Never
/// stored: recomputed from the secret whenever a token is checked.
fn root_key(secret: &[u8; 32], identifier: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts a 32-byte key");
    mac.update(identifier);
    mac.finalize().into_bytes().into()
}

/// Mints the macaroon of a token bought with the invoice of `payment_hash`:
/// caveats `services=<service>:0`, `<service>_route=<route>` and, with an expiry,
/// `<service>_valid_until=<unix secs>`.
pub fn mint(secret: &[u8; 32], payment_hash: [u8; 32], grant: &Grant) -> Macaroon {
    let identifier = Identifier {
        payment_hash,
        token_id: rand::random(),
    }
    .encode();
    let key = root_key(secret, &identifier);
    let mut macaroon = Macaroon::new(&key, identifier, Some(MACAROON_LOCATION.into()));
    macaroon.add_first_party_caveat(&format!("{SERVICES_CONDITION}={}:0", grant.service));
    macaroon.add_first_party_caveat(&format!(
        "{}={}",
        route_condition(&grant.service),
        grant.route
    ));
    if let Some(valid_until) = grant.valid_until {
        macaroon.add_first_party_caveat(&format!(
            "{}={valid_until}",
            valid_until_condition(&grant.service)
        ));
    }
    macaroon
}

/// Why a presented token is refused (the wall answers 401 with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The `Authorization` header is malformed.
    #[error("malformed L402 credential: {0}")]
    Malformed(#[source] HeaderError),
    /// The macaroon's identifier is not one this wall issues.
    #[error("unknown token identifier: {0}")]
    Identifier(#[source] IdentifierError),
    /// The signature does not match: the macaroon was not issued by this wall, or was changed.
    #[error("invalid macaroon signature")]
    Signature,
    /// The preimage does not hash to the identifier's payment hash.
    #[error("the preimage does not match the token's payment hash")]
    Preimage,
    /// No `services` caveat names this service.
    #[error("the token is not for this service")]
    Service,
    /// The token is for another route.
    #[error("the token is not for this route")]
    Route,
    /// The token expired.
    #[error("the token expired")]
    Expired,
    /// A caveat this wall does not know, or a malformed one (refused rather than ignored).
    #[error("unsupported caveat {0:?}")]
    Caveat(String),
}

/// Whether `path` lies under the route `prefix`: equal to it, or below it at a `/` boundary
/// (`/api` covers `/api` and `/api/x`, not `/apix`; `/` covers everything).
pub fn path_under(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
    }
}

/// Checks a presented token for a request to `path`, which the wall maps to the priced
/// route `route` of `service`, at Unix time `now`: the signature under the root key derived
/// from the identifier, the preimage against the identifier's payment hash, then every caveat
/// (each must hold): `services` names `service`, each route caveat covers `path` and one is
/// exactly `route`, each expiry is in the future.
pub fn verify(
    secret: &[u8; 32],
    credential: &Credential,
    service: &str,
    route: &str,
    path: &str,
    now: u64,
) -> Result<Identifier, Refusal> {
    let macaroon = &credential.macaroon;
    let identifier = Identifier::decode(&macaroon.identifier).map_err(Refusal::Identifier)?;
    if !macaroon.verify_signature(&root_key(secret, &macaroon.identifier)) {
        return Err(Refusal::Signature);
    }
    let hash: [u8; 32] = Sha256::digest(credential.preimage).into();
    if hash != identifier.payment_hash {
        return Err(Refusal::Preimage);
    }
    let route_condition = route_condition(service);
    let valid_until_condition = valid_until_condition(service);
    let (mut service_named, mut route_named) = (false, false);
    for caveat in macaroon.first_party_caveats() {
        let Some((condition, value)) = caveat.split_once('=') else {
            return Err(Refusal::Caveat(caveat));
        };
        let (condition, value) = (condition.trim(), value.trim());
        if condition == SERVICES_CONDITION {
            // Each services caveat must name this service (caveats only ever narrow).
            let named = value
                .split(',')
                .filter_map(|s| s.trim().split_once(':'))
                .any(|(name, _tier)| name == service);
            if !named {
                return Err(Refusal::Service);
            }
            service_named = true;
        } else if condition == route_condition {
            if !path_under(value, path) {
                return Err(Refusal::Route);
            }
            route_named |= value == route;
        } else if condition == valid_until_condition {
            let until: u64 = value.parse().map_err(|_| Refusal::Caveat(caveat.clone()))?;
            if now >= until {
                return Err(Refusal::Expired);
            }
        } else if condition.ends_with("_valid_until") || condition.ends_with("_route") {
            // Another service's caveat (aperture skips those): it restricts nothing here.
            continue;
        } else {
            return Err(Refusal::Caveat(caveat));
        }
    }
    if !service_named {
        return Err(Refusal::Service);
    }
    if !route_named {
        return Err(Refusal::Route);
    }
    Ok(identifier)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_prefixes_respect_segments() {
        assert!(path_under("/api", "/api"));
        assert!(path_under("/api", "/api/x"));
        assert!(!path_under("/api", "/apix"));
        assert!(path_under("/api/", "/api/x"));
        assert!(path_under("/", "/anything"));
        assert!(!path_under("/api/x", "/api"));
    }
}
