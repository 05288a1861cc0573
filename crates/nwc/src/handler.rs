//! One request event, from arrival to signed response: filtering, replay protection,
//! decryption, authorisation, rate limiting, dispatch.
//!
//! Order matters:
//! 1. Cheap checks that need no key: kind, `expiration` tag, age, the `p` tag. Failures are
//!    ignored silently (the spec says to ignore expired requests; old or misaddressed ones
//!    are not ours to answer).
//! 2. The signature, then the connection owning the addressed wallet key.
//! 3. The request id is **claimed** in SQLite before anything runs. A duplicate (a replay,
//!    the same event from a second relay, or a catch-up after reconnecting) never runs
//!    again: it gets the stored response re-published, or nothing if still in flight.
//! 4. Decryption in the request's scheme, parsing, authorisation, rate limit, the method.

use micronode_signer_protocol::PaymentAuthorization;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nostr_sdk::{Event, EventBuilder, EventId, JsonUtil, Keys, Kind, PublicKey, Tag};

use crate::backend::WalletBackend;
use crate::config::RateLimit;
use crate::connections::{Connection, ConnectionStatus};
use crate::crypto::{self, Declared, Scheme};
use crate::error::{ErrorCode, Nip47Error, NwcError};
use crate::protocol::{self, Method, Response, KIND_REQUEST, KIND_RESPONSE};
use crate::service::{db, Inner};
use crate::store::Claim;
use crate::util::now_secs;

/// What to do with a request event.
pub(crate) enum Outcome {
    /// Nothing (not ours, expired, too old, bad signature, in flight).
    Ignore(&'static str),
    /// Publish this stored response again (a duplicate of an answered request).
    Replay(Box<Event>),
    /// Publish this new response.
    Respond(Box<Event>),
}

/// Per-connection token buckets.
pub(crate) struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `connection_id`, if one is left.
    pub(crate) fn allow(&self, connection_id: i64) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let burst = f64::from(self.limit.burst);
        let (tokens, last) = buckets.entry(connection_id).or_insert((burst, now));
        let refill = now.duration_since(*last).as_secs_f64() * self.limit.per_second;
        *tokens = (*tokens + refill).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Handles one request event end to end and publishes the answer, if any.
pub(crate) async fn handle_event<B: WalletBackend>(inner: Arc<Inner<B>>, event: Event) {
    let id = event.id;
    let outcome = match process(&inner, &event).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(request = %id, error = %e, "NWC request failed");
            return;
        }
    };
    let reply = match outcome {
        Outcome::Ignore(why) => {
            tracing::debug!(request = %id, why, "NWC request ignored");
            return;
        }
        Outcome::Replay(ev) => {
            tracing::debug!(request = %id, "NWC duplicate request; re-publishing the answer");
            ev
        }
        Outcome::Respond(ev) => ev,
    };
    if let Err(e) = inner.pool.send_event(&reply).await {
        tracing::warn!(request = %id, error = %e, "could not publish NWC response");
    }
}

pub(crate) async fn process<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    event: &Event,
) -> Result<Outcome, NwcError> {
    if event.kind != Kind::from(KIND_REQUEST) {
        return Ok(Outcome::Ignore("not a request"));
    }
    let now = now_secs();
    if event.tags.expiration().is_some_and(|e| e.as_secs() <= now) {
        return Ok(Outcome::Ignore("expired"));
    }
    let created = event.created_at.as_secs();
    if created.saturating_add(inner.config.max_request_age.as_secs()) < now {
        return Ok(Outcome::Ignore("too old"));
    }
    if created > now.saturating_add(inner.config.max_clock_skew.as_secs()) {
        return Ok(Outcome::Ignore("dated in the future"));
    }
    let Some(wallet_pubkey) = event.tags.public_keys().next().copied() else {
        return Ok(Outcome::Ignore("no p tag"));
    };
    if event.verify().is_err() {
        return Ok(Outcome::Ignore("bad id or signature"));
    }
    let found = db(&inner.store, move |s| {
        s.connection_by_wallet_pubkey(&wallet_pubkey)
    })
    .await?;
    let Some((connection, keys)) = found else {
        return Ok(Outcome::Ignore("not addressed to a connection of ours"));
    };
    let event_id = event.id.to_hex();
    let claim = {
        let event_id = event_id.clone();
        db(&inner.store, move |s| {
            s.claim_request(&event_id, &wallet_pubkey.to_hex(), created, now)
        })
        .await?
    };
    match claim {
        Claim::New => {}
        Claim::InFlight => return Ok(Outcome::Ignore("duplicate, still being handled")),
        Claim::Done(None) => return Ok(Outcome::Ignore("duplicate of an unanswered request")),
        Claim::Done(Some(json)) => {
            return match Event::from_json(&json) {
                Ok(ev) => Ok(Outcome::Replay(Box::new(ev))),
                Err(e) => Err(NwcError::Corrupt(format!("stored response: {e}"))),
            }
        }
    }

    let (scheme, response) = answer(inner, event, &connection, &keys).await;
    let reply = sign_response(&keys, &event.pubkey, event.id, scheme, &response)?;
    let json = reply.as_json();
    let method = response.result_type.clone();
    let connection_id = connection.id;
    db(&inner.store, move |s| {
        s.finish_request(&event_id, Some(connection_id), Some(&method), Some(&json))
    })
    .await?;
    Ok(Outcome::Respond(Box::new(reply)))
}

/// Works out the response to a claimed request. Never fails: every problem is a NIP-47 error.
async fn answer<B: WalletBackend>(
    inner: &Arc<Inner<B>>,
    event: &Event,
    connection: &Connection,
    keys: &Keys,
) -> (Scheme, Response) {
    let scheme = match crypto::detect_scheme(event) {
        Declared::Scheme(s) => s,
        // We cannot answer in a scheme we do not know; NIP-44 is the current one.
        Declared::Unsupported(name) => {
            return (
                Scheme::Nip44V2,
                Response::err(
                    "",
                    Nip47Error::new(
                        ErrorCode::UnsupportedEncryption,
                        format!(
                            "encryption {name:?} is not supported; use one of: {}",
                            crypto::SUPPORTED_SCHEMES
                        ),
                    ),
                ),
            )
        }
    };
    let fail = |method: &str, code, msg: String| {
        (scheme, Response::err(method, Nip47Error::new(code, msg)))
    };
    let size = event.content.len();
    if size > inner.config.max_request_bytes {
        return fail(
            "",
            ErrorCode::Other,
            format!(
                "request too large: {size} bytes (at most {})",
                inner.config.max_request_bytes
            ),
        );
    }
    let plaintext = match crypto::decrypt(scheme, keys.secret_key(), &event.pubkey, &event.content)
    {
        Ok(p) => p,
        Err(e) => return fail("", ErrorCode::UnsupportedEncryption, e.to_string()),
    };
    let raw = match protocol::parse_request(&plaintext) {
        Ok(r) => r,
        Err(e) => return (scheme, Response::err("", e)),
    };
    let name = raw.method.clone();
    if event.pubkey != connection.app_pubkey {
        return fail(
            &name,
            ErrorCode::Unauthorized,
            "no wallet connection for this key".into(),
        );
    }
    match connection.status(now_secs()) {
        ConnectionStatus::Active => {}
        ConnectionStatus::Revoked => {
            return fail(
                &name,
                ErrorCode::Unauthorized,
                "this connection was revoked".into(),
            )
        }
        ConnectionStatus::Expired => {
            return fail(
                &name,
                ErrorCode::Unauthorized,
                "this connection has expired".into(),
            )
        }
    }
    if inner.tenancy.is_paused() {
        return fail(
            &name,
            ErrorCode::Restricted,
            "this wallet is suspended by its host".into(),
        );
    }
    if !inner.limiter.allow(connection.id) || !inner.tenancy.allow() {
        return fail(
            &name,
            ErrorCode::RateLimited,
            "too many requests; retry in a few seconds".into(),
        );
    }
    let method = match name.parse::<Method>() {
        Ok(m) => m,
        Err(_) => {
            return fail(
                &name,
                ErrorCode::NotImplemented,
                format!("unknown method {name:?}"),
            )
        }
    };
    if !method.is_supported() {
        let why = match method {
            Method::MakeHoldInvoice | Method::CancelHoldInvoice | Method::SettleHoldInvoice => {
                "hold invoices are not supported by this node"
            }
            _ => "this method is not implemented; send one request per payment",
        };
        return fail(&name, ErrorCode::NotImplemented, why.into());
    }
    if !connection.allows(method) {
        return fail(
            &name,
            ErrorCode::Restricted,
            format!("this connection may not use {method}"),
        );
    }
    let _permit = inner.permits.acquire().await;
    // The app's event and the key to read it, for the tenant's signer to check the payment
    // against what the app asked; with the delegation of the tenant's app (its browser wallet)
    // that made the connection, if one did, which the signer checks too.
    let authorization = PaymentAuthorization::Nwc {
        event: event.as_json(),
        service_key: micronode_signer_protocol::Hex(keys.secret_key().secret_bytes().to_vec()),
        delegation: connection.delegation.clone(),
    };
    let result = crate::methods::dispatch(
        inner,
        connection,
        &event.id.to_hex(),
        method,
        &raw,
        authorization,
    )
    .await;
    (
        scheme,
        match result {
            Ok(value) => Response::ok(&name, value),
            Err(e) => Response::err(&name, e),
        },
    )
}

/// Encrypts and signs a response with the connection's wallet-service key. A response too
/// large for its scheme is replaced by an `INTERNAL` error.
pub(crate) fn sign_response(
    keys: &Keys,
    app: &PublicKey,
    request: EventId,
    scheme: Scheme,
    response: &Response,
) -> Result<Event, NwcError> {
    let content = match crypto::encrypt(scheme, keys.secret_key(), app, &response.to_json()) {
        Ok(c) => c,
        Err(e) => {
            let fallback = Response::err(
                &response.result_type,
                Nip47Error::new(ErrorCode::Internal, format!("response too large: {e}")),
            );
            crypto::encrypt(scheme, keys.secret_key(), app, &fallback.to_json())
                .map_err(|e| NwcError::Nostr(e.to_string()))?
        }
    };
    EventBuilder::new(Kind::from(KIND_RESPONSE), content)
        .tags([Tag::public_key(*app), Tag::event(request)])
        .sign_with_keys(keys)
        .map_err(|e| NwcError::Nostr(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{
        BackendError, BackendErrorKind, PaymentEvent, Transaction, TransactionQuery, WalletInfo,
    };
    use crate::config::NwcConfig;
    use crate::connections::ConnectionSpec;
    use crate::store::tests::Tmp;
    use crate::store::NwcStore;
    use futures::stream::BoxStream;
    use futures::StreamExt;
    use nostr_sdk::prelude::{RelayPool, RelayUrl, Timestamp};
    use std::time::Duration;
    use tokio::sync::Semaphore;

    /// A wallet that pays nothing, and keeps the authorisations the payments came with.
    #[derive(Default)]
    struct Fake {
        seen: Mutex<Vec<Option<PaymentAuthorization>>>,
    }
    fn nope<T>() -> Result<T, BackendError> {
        Err(BackendError::new(BackendErrorKind::Internal, "fake"))
    }
    impl WalletBackend for Fake {
        async fn get_info(&self) -> Result<WalletInfo, BackendError> {
            Ok(WalletInfo {
                alias: "fake".into(),
                pubkey: "02".repeat(33),
                network: "regtest".into(),
                block_height: 1,
                block_hash: "00".repeat(32),
            })
        }
        async fn get_balance(&self) -> Result<u64, BackendError> {
            Ok(42)
        }
        async fn make_invoice(
            &self,
            _: Option<u64>,
            _: micronode_node::InvoiceDescription,
            _: u32,
        ) -> Result<Transaction, BackendError> {
            nope()
        }
        async fn pay_invoice(
            &self,
            _: &str,
            _: Option<u64>,
            _: Option<u64>,
            _: Option<PaymentAuthorization>,
        ) -> Result<[u8; 32], BackendError> {
            nope()
        }
        async fn pay_keysend(
            &self,
            _: &str,
            _: u64,
            _: Option<u64>,
            _: Option<[u8; 32]>,
            authorization: Option<PaymentAuthorization>,
        ) -> Result<[u8; 32], BackendError> {
            self.seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(authorization);
            nope()
        }
        async fn wait_payment(
            &self,
            _: [u8; 32],
            _: Duration,
        ) -> Result<Transaction, BackendError> {
            nope()
        }
        async fn lookup_payment(&self, _: [u8; 32]) -> Result<Option<Transaction>, BackendError> {
            Ok(None)
        }
        async fn list_transactions(
            &self,
            _: &TransactionQuery,
        ) -> Result<Vec<Transaction>, BackendError> {
            Ok(vec![])
        }
        fn payment_events(&self) -> BoxStream<'static, PaymentEvent> {
            futures::stream::empty().boxed()
        }
    }

    fn inner(dir: &Tmp, burst: u32) -> Arc<Inner<Fake>> {
        let mut config = NwcConfig::new(&dir.0, vec!["ws://127.0.0.1:1".into()]);
        config.rate_limit = RateLimit {
            burst,
            per_second: 0.001,
        };
        Arc::new(Inner {
            store: Arc::new(NwcStore::open(&dir.0).unwrap()),
            backend: Arc::new(Fake::default()),
            pool: RelayPool::default(),
            limiter: RateLimiter::new(config.rate_limit),
            permits: Semaphore::new(4),
            config,
            tenancy: Default::default(),
        })
    }

    fn request(
        app: &Keys,
        wallet: &PublicKey,
        body: &str,
        tags: Vec<Tag>,
        at: Option<u64>,
    ) -> Event {
        let content = crypto::encrypt(Scheme::Nip44V2, app.secret_key(), wallet, body).unwrap();
        let mut all = vec![
            Tag::public_key(*wallet),
            Tag::custom(nostr_sdk::TagKind::custom("encryption"), ["nip44_v2"]),
        ];
        all.extend(tags);
        let mut b = EventBuilder::new(Kind::from(KIND_REQUEST), content).tags(all);
        if let Some(t) = at {
            b = b.custom_created_at(Timestamp::from(t));
        }
        b.sign_with_keys(app).unwrap()
    }

    fn opened(app: &Keys, wallet: &PublicKey, o: Outcome) -> serde_json::Value {
        let Outcome::Respond(ev) = o else {
            panic!("expected a response")
        };
        let plain =
            crypto::decrypt(Scheme::Nip44V2, app.secret_key(), wallet, &ev.content).unwrap();
        serde_json::from_str(&plain).unwrap()
    }

    #[tokio::test]
    async fn filters_dedupes_and_authorises() {
        let dir = Tmp::new("handler");
        let inner = inner(&dir, 3);
        let relays = [RelayUrl::parse("ws://127.0.0.1:1").unwrap()];
        let new = inner
            .store
            .create_connection(&ConnectionSpec::full("a"), &relays)
            .unwrap();
        let app = Keys::new(new.nwc_uri().secret.clone());
        let wallet = new.connection.wallet_pubkey;
        let body = r#"{"method":"get_balance"}"#;

        let ev = request(&app, &wallet, body, vec![], None);
        let first = process(&inner, &ev).await.unwrap();
        let Outcome::Respond(answer) = first else {
            panic!("expected a response")
        };
        assert!(answer.tags.event_ids().any(|id| *id == ev.id));
        let v = opened(&app, &wallet, Outcome::Respond(answer.clone()));
        assert_eq!(v["result"]["balance"], 42);
        // A duplicate is answered from the store, not executed again.
        match process(&inner, &ev).await.unwrap() {
            Outcome::Replay(again) => assert_eq!(again.id, answer.id),
            _ => panic!("expected a replay"),
        }

        let ignored = |o: Outcome| match o {
            Outcome::Ignore(why) => why,
            _ => panic!("expected the request to be ignored"),
        };
        let now = now_secs();
        let expired = request(
            &app,
            &wallet,
            body,
            vec![Tag::expiration(Timestamp::from(now - 1))],
            None,
        );
        assert_eq!(ignored(process(&inner, &expired).await.unwrap()), "expired");
        let old = request(&app, &wallet, body, vec![], Some(now - 3600));
        assert_eq!(ignored(process(&inner, &old).await.unwrap()), "too old");
        let future = request(&app, &wallet, body, vec![], Some(now + 3600));
        assert_eq!(
            ignored(process(&inner, &future).await.unwrap()),
            "dated in the future"
        );
        let stranger = request(&app, &Keys::generate().public_key(), body, vec![], None);
        assert_eq!(
            ignored(process(&inner, &stranger).await.unwrap()),
            "not addressed to a connection of ours"
        );
        let mut forged = request(&app, &wallet, body, vec![], None);
        forged.content = crypto::encrypt(Scheme::Nip44V2, app.secret_key(), &wallet, "{}").unwrap();
        assert_eq!(
            ignored(process(&inner, &forged).await.unwrap()),
            "bad id or signature"
        );

        // Another key writing to this connection's wallet key is not authorised.
        let intruder = Keys::generate();
        let ev = request(&intruder, &wallet, body, vec![], None);
        let v = opened(&intruder, &wallet, process(&inner, &ev).await.unwrap());
        assert_eq!(v["error"]["code"], "UNAUTHORIZED");
        assert_eq!(v["result_type"], "get_balance");

        // The burst of 3 is used up by now (1 answered + the intruder does not count).
        let ev = request(&app, &wallet, body, vec![], None);
        assert_eq!(
            opened(&app, &wallet, process(&inner, &ev).await.unwrap())["result"]["balance"],
            42
        );
        let ev = request(&app, &wallet, r#"{"method":"get_info"}"#, vec![], None);
        assert_eq!(
            opened(&app, &wallet, process(&inner, &ev).await.unwrap())["result"]["alias"],
            "fake"
        );
        let ev = request(&app, &wallet, body, vec![], None);
        assert_eq!(
            opened(&app, &wallet, process(&inner, &ev).await.unwrap())["error"]["code"],
            "RATE_LIMITED"
        );

        inner.store.revoke_connection(new.connection.id).unwrap();
        let ev = request(&app, &wallet, body, vec![], None);
        let v = opened(&app, &wallet, process(&inner, &ev).await.unwrap());
        assert_eq!(v["error"]["code"], "UNAUTHORIZED");
    }

    #[tokio::test]
    async fn a_payment_carries_the_connections_delegation() {
        use micronode_signer_protocol::app_request::{delegation_target, Delegation};
        use micronode_signer_protocol::{AppMethod, AppRequest};
        let dir = Tmp::new("delegated");
        let inner = inner(&dir, 10);
        let relays = [RelayUrl::parse("ws://127.0.0.1:1").unwrap()];
        let browser_key = micronode_signer_protocol::app_request::new_client_key();
        let app = Keys::generate();
        let delegation = Delegation {
            token: "the browser's token".into(),
            request: AppRequest::new(
                AppMethod::DelegateNwc,
                delegation_target(&app.public_key().to_hex(), 86_400, None),
                5_000_000,
            )
            .sign(&browser_key),
        };
        let spec = ConnectionSpec::full("browser app");
        let delegated = inner
            .store
            .create_connection_for_app_with(
                &spec,
                &relays,
                app.public_key(),
                Some(delegation.clone()),
            )
            .unwrap();
        let plain = Keys::generate();
        let undelegated = inner
            .store
            .create_connection_for_app_with(&spec, &relays, plain.public_key(), None)
            .unwrap();
        let body = serde_json::json!({"method": "pay_keysend",
            "params": {"pubkey": "02".repeat(33), "amount": 1_000}})
        .to_string();
        for (keys, wallet) in [
            (&app, delegated.wallet_pubkey),
            (&plain, undelegated.wallet_pubkey),
        ] {
            let ev = request(keys, &wallet, &body, vec![], None);
            let v = opened(keys, &wallet, process(&inner, &ev).await.unwrap());
            assert_eq!(v["result_type"], "pay_keysend");
        }
        let seen = inner.backend.seen.lock().unwrap().clone();
        let delegations: Vec<Option<Delegation>> = seen
            .into_iter()
            .map(|a| match a {
                Some(PaymentAuthorization::Nwc { delegation, .. }) => delegation,
                other => panic!("not an NWC authorisation: {other:?}"),
            })
            .collect();
        assert_eq!(delegations, [Some(delegation), None]);
    }

    #[test]
    fn token_bucket_limits_bursts() {
        let limiter = RateLimiter::new(RateLimit {
            burst: 3,
            per_second: 0.001,
        });
        assert!(limiter.allow(1) && limiter.allow(1) && limiter.allow(1));
        assert!(!limiter.allow(1));
        assert!(limiter.allow(2), "buckets are per connection");
    }

    #[test]
    fn responses_are_encrypted_to_the_app_in_its_scheme() {
        let wallet = Keys::generate();
        let app = Keys::generate();
        let request = EventId::all_zeros();
        for scheme in [Scheme::Nip44V2, Scheme::Nip04] {
            let r = Response::ok("get_balance", serde_json::json!({"balance": 1}));
            let ev = sign_response(&wallet, &app.public_key(), request, scheme, &r).unwrap();
            assert_eq!(ev.kind, Kind::from(KIND_RESPONSE));
            assert!(ev.verify().is_ok());
            let plain =
                crypto::decrypt(scheme, app.secret_key(), &wallet.public_key(), &ev.content)
                    .unwrap();
            assert!(plain.contains("\"balance\":1"));
        }
        // Too large for NIP-44: replaced by an INTERNAL error, not a panic.
        let huge = Response::ok(
            "list_transactions",
            serde_json::json!({"x": "y".repeat(70_000)}),
        );
        let ev =
            sign_response(&wallet, &app.public_key(), request, Scheme::Nip44V2, &huge).unwrap();
        let plain = crypto::decrypt(
            Scheme::Nip44V2,
            app.secret_key(),
            &wallet.public_key(),
            &ev.content,
        )
        .unwrap();
        assert!(plain.contains("INTERNAL"));
    }
}
