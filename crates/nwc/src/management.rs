//! NIP-98 (HTTP Auth) for management calls: only the tenant's Nostr key may create, list or
//! revoke connections through an operator-facing API.
//!
//! <https://github.com/nostr-protocol/nips/blob/master/98.md>
//!
//! A request carries a kind-27235 event signed by the tenant, with a `u` tag (the absolute
//! URL), a `method` tag (the HTTP method, or the management operation name for non-HTTP
//! transports) and, for requests with a body, a `payload` tag (SHA-256 of the body, hex). The
//! event must be at most 60 s old and at most 30 s in the future.

use nostr_sdk::hashes::sha256::Hash as Sha256Hash;
use nostr_sdk::hashes::Hash;
use nostr_sdk::{Event, JsonUtil, Kind, PublicKey, TagKind};

use crate::error::ManagementAuthError;

/// The NIP-98 event kind.
pub const KIND_HTTP_AUTH: u16 = 27235;
const MAX_AGE_SECS: u64 = 60;
const MAX_FUTURE_SECS: u64 = 30;
const MAX_EVENT_BYTES: usize = 64 * 1024;

fn tag_value<'a>(event: &'a Event, name: &str) -> Option<&'a str> {
    event
        .tags
        .find(TagKind::custom(name))
        .and_then(|t| t.content())
}

/// Verifies that `event` authorises `method` on `url` for the tenant `tenant`, at `now`
/// (unix seconds). `body` is the request body, if it has one; its hash must then match the
/// event's `payload` tag.
///
/// URLs are compared exactly (after trimming one trailing slash) and methods
/// case-insensitively.
pub fn verify_management_request(
    event: &Event,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    tenant: Option<&PublicKey>,
    now: u64,
) -> Result<(), ManagementAuthError> {
    let tenant = tenant.ok_or(ManagementAuthError::NoTenant)?;
    if event.kind != Kind::from(KIND_HTTP_AUTH) {
        return Err(ManagementAuthError::WrongKind(event.kind.as_u16()));
    }
    let created = event.created_at.as_secs();
    if created.saturating_add(MAX_AGE_SECS) < now || created > now.saturating_add(MAX_FUTURE_SECS) {
        return Err(ManagementAuthError::Stale {
            created_at: created,
            now,
        });
    }
    let signed_url = tag_value(event, "u").ok_or(ManagementAuthError::MissingTag("u"))?;
    let signed_method =
        tag_value(event, "method").ok_or(ManagementAuthError::MissingTag("method"))?;
    let norm = |u: &str| u.strip_suffix('/').unwrap_or(u).to_string();
    if norm(signed_url) != norm(url) || !signed_method.eq_ignore_ascii_case(method) {
        return Err(ManagementAuthError::Mismatch {
            signed: format!("{signed_method} {signed_url}"),
            requested: format!("{method} {url}"),
        });
    }
    if let Some(body) = body {
        let expected = Sha256Hash::hash(body).to_string();
        match tag_value(event, "payload") {
            Some(p) if p.eq_ignore_ascii_case(&expected) => {}
            Some(_) => return Err(ManagementAuthError::PayloadMismatch),
            None => return Err(ManagementAuthError::MissingTag("payload")),
        }
    }
    event
        .verify()
        .map_err(|_| ManagementAuthError::BadSignature)?;
    if &event.pubkey != tenant {
        return Err(ManagementAuthError::NotTenant(event.pubkey.to_hex()));
    }
    Ok(())
}

/// Verifies an HTTP `Authorization: Nostr <base64(event JSON)>` header; see
/// [`verify_management_request`].
pub fn verify_authorization_header(
    header: &str,
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    tenant: Option<&PublicKey>,
    now: u64,
) -> Result<(), ManagementAuthError> {
    use nostr_sdk::base64::engine::general_purpose::STANDARD;
    use nostr_sdk::base64::Engine;
    let encoded = header
        .strip_prefix("Nostr ")
        .ok_or_else(|| ManagementAuthError::Malformed("expected \"Nostr <base64>\"".into()))?
        .trim();
    if encoded.len() > MAX_EVENT_BYTES * 4 / 3 + 4 {
        return Err(ManagementAuthError::Malformed("too large".into()));
    }
    let json = STANDARD
        .decode(encoded)
        .map_err(|e| ManagementAuthError::Malformed(format!("base64: {e}")))?;
    let event = Event::from_json(&json)
        .map_err(|e| ManagementAuthError::Malformed(format!("event: {e}")))?;
    verify_management_request(&event, method, url, body, tenant, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr_sdk::{EventBuilder, Keys, Tag, Timestamp};

    const URL: &str = "https://operator.example/nwc/connections";

    fn auth(keys: &Keys, method: &str, url: &str, at: u64, payload: Option<&[u8]>) -> Event {
        let mut tags = vec![
            Tag::custom(TagKind::custom("u"), [url]),
            Tag::custom(TagKind::custom("method"), [method]),
        ];
        if let Some(p) = payload {
            tags.push(Tag::custom(
                TagKind::custom("payload"),
                [Sha256Hash::hash(p).to_string()],
            ));
        }
        EventBuilder::new(Kind::from(KIND_HTTP_AUTH), "")
            .tags(tags)
            .custom_created_at(Timestamp::from(at))
            .sign_with_keys(keys)
            .unwrap()
    }

    #[test]
    fn accepts_only_the_tenants_fresh_matching_event() {
        let tenant = Keys::generate();
        let pk = tenant.public_key();
        let now = 1_700_000_000;
        let body = br#"{"name":"app"}"#;
        let ok = auth(&tenant, "POST", URL, now - 5, Some(body));
        verify_management_request(&ok, "post", URL, Some(body), Some(&pk), now).unwrap();
        // A trailing slash does not matter.
        verify_management_request(&ok, "POST", &format!("{URL}/"), Some(body), Some(&pk), now)
            .unwrap();

        let e = |ev: &Event, m: &str, u: &str, b: Option<&[u8]>, t: Option<&PublicKey>, n| {
            verify_management_request(ev, m, u, b, t, n).unwrap_err()
        };
        assert_eq!(
            e(&ok, "POST", URL, Some(body), None, now),
            ManagementAuthError::NoTenant
        );
        let other = Keys::generate();
        let forged = auth(&other, "POST", URL, now, Some(body));
        assert!(matches!(
            e(&forged, "POST", URL, Some(body), Some(&pk), now),
            ManagementAuthError::NotTenant(_)
        ));
        assert!(matches!(
            e(&ok, "DELETE", URL, Some(body), Some(&pk), now),
            ManagementAuthError::Mismatch { .. }
        ));
        assert!(matches!(
            e(
                &ok,
                "POST",
                "https://evil.example/",
                Some(body),
                Some(&pk),
                now
            ),
            ManagementAuthError::Mismatch { .. }
        ));
        assert_eq!(
            e(&ok, "POST", URL, Some(b"other"), Some(&pk), now),
            ManagementAuthError::PayloadMismatch
        );
        assert!(matches!(
            e(&ok, "POST", URL, Some(body), Some(&pk), now + 120),
            ManagementAuthError::Stale { .. }
        ));
        let future = auth(&tenant, "POST", URL, now + 120, Some(body));
        assert!(matches!(
            e(&future, "POST", URL, Some(body), Some(&pk), now),
            ManagementAuthError::Stale { .. }
        ));
        let no_payload = auth(&tenant, "POST", URL, now, None);
        assert_eq!(
            e(&no_payload, "POST", URL, Some(body), Some(&pk), now),
            ManagementAuthError::MissingTag("payload")
        );
        // A tampered event (content changed after signing) fails the signature check.
        let mut tampered = ok.clone();
        tampered.content = "x".into();
        assert_eq!(
            e(&tampered, "POST", URL, Some(body), Some(&pk), now),
            ManagementAuthError::BadSignature
        );
        let wrong_kind = EventBuilder::new(Kind::TextNote, "")
            .sign_with_keys(&tenant)
            .unwrap();
        assert!(matches!(
            e(&wrong_kind, "POST", URL, None, Some(&pk), now),
            ManagementAuthError::WrongKind(1)
        ));
    }

    #[test]
    fn verifies_authorization_headers() {
        use nostr_sdk::base64::engine::general_purpose::STANDARD;
        use nostr_sdk::base64::Engine;
        let tenant = Keys::generate();
        let now = Timestamp::now().as_secs();
        let ev = auth(&tenant, "GET", URL, now, None);
        let header = format!("Nostr {}", STANDARD.encode(ev.as_json()));
        verify_authorization_header(&header, "GET", URL, None, Some(&tenant.public_key()), now)
            .unwrap();
        for bad in ["", "Bearer x", "Nostr !!!", "Nostr e30="] {
            assert!(matches!(
                verify_authorization_header(bad, "GET", URL, None, Some(&tenant.public_key()), now),
                Err(ManagementAuthError::Malformed(_))
            ));
        }
    }
}
