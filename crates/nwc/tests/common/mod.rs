//! Shared test helpers: an in-process relay that can be restarted on its port, a raw NWC app
//! built from nostr-sdk primitives (for NIP-44 and malformed requests the `nwc` client cannot
//! send), and waiting helpers.
#![allow(dead_code)]

use std::time::Duration;

use micronode_nwc::crypto::{self, Scheme};
use micronode_nwc::embedded_relay::EmbeddedRelay;
use micronode_nwc::protocol::{KIND_INFO, KIND_REQUEST, KIND_RESPONSE};
use micronode_nwc::{NewConnection, NwcConfig};
use nostr_sdk::prelude::{
    Event, EventBuilder, Filter, Keys, Kind, PublicKey, RelayOptions, RelayPool, ReqExitPolicy,
    Tag, TagKind, Timestamp,
};
use serde_json::Value;

/// A relay on 127.0.0.1 that tests can stop and start again on the same port (the embedded
/// relay, whose sockets set TCP_NODELAY).
pub struct TestRelay {
    relay: Option<EmbeddedRelay>,
    pub port: u16,
    pub url: String,
}

impl TestRelay {
    pub async fn start() -> TestRelay {
        let relay = EmbeddedRelay::start(([127, 0, 0, 1], 0).into())
            .await
            .expect("relay runs");
        TestRelay {
            port: relay.addr().port(),
            url: relay.url().to_string(),
            relay: Some(relay),
        }
    }

    /// Stops the relay: every connection drops and it forgets all events.
    pub fn stop(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.stop();
        }
    }

    /// Starts a new relay on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match EmbeddedRelay::start(([127, 0, 0, 1], self.port).into()).await {
                Ok(relay) => {
                    self.relay = Some(relay);
                    return;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("relay restart: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot restart the relay: {e}"),
            }
        }
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Quick-reacting service settings for tests.
pub fn test_config(dir: &std::path::Path, relay: &str) -> NwcConfig {
    let mut c = NwcConfig::new(dir, vec![relay.to_string()]);
    c.reconnect_interval = Duration::from_millis(300);
    c.supervise_interval = Duration::from_millis(100);
    c.payment_timeout = Duration::from_secs(30);
    c.rate_limit.burst = 10_000;
    c.rate_limit.per_second = 10_000.0;
    c
}

/// A pool that reconnects quickly.
pub async fn pool(relay: &str) -> RelayPool {
    let pool = micronode_nwc::transport::relay_pool();
    pool.add_relay(
        relay,
        RelayOptions::new()
            .retry_interval(Duration::from_millis(300))
            .adjust_retry_interval(false),
    )
    .await
    .expect("add relay");
    pool.connect().await;
    pool.wait_for_connection(Duration::from_secs(5)).await;
    pool
}

/// Waits until the relay holds the info event of `wallet` (so the service is subscribed:
/// it publishes info events right after subscribing).
pub async fn wait_for_info(pool: &RelayPool, wallet: PublicKey) -> Event {
    wait_for_info_after(pool, wallet, Timestamp::from(0)).await
}

/// Like [`wait_for_info`], for an info event newer than `after`.
pub async fn wait_for_info_after(pool: &RelayPool, wallet: PublicKey, after: Timestamp) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let filter = Filter::new().kind(Kind::from(KIND_INFO)).author(wallet);
        if let Ok(events) = pool
            .fetch_events(filter, Duration::from_secs(1), ReqExitPolicy::ExitOnEOSE)
            .await
        {
            if let Some(ev) = events.into_iter().find(|e| e.created_at > after) {
                return ev;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the service did not publish its info event"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An app that speaks NWC with hand-made events.
pub struct RawApp {
    pub pool: RelayPool,
    pub app: Keys,
    pub wallet: PublicKey,
}

/// How to build a raw request.
#[derive(Clone, Debug)]
pub struct RawOpts {
    /// The `encryption` tag value (None: no tag).
    pub tag: Option<String>,
    /// The scheme actually used to encrypt.
    pub scheme: Scheme,
    /// An `expiration` tag.
    pub expiration: Option<u64>,
    /// Content to send as is instead of encrypting the plaintext.
    pub raw_content: Option<String>,
}

impl RawOpts {
    pub fn nip44() -> Self {
        Self {
            tag: Some("nip44_v2".into()),
            scheme: Scheme::Nip44V2,
            expiration: None,
            raw_content: None,
        }
    }
    pub fn nip04() -> Self {
        Self {
            tag: Some("nip04".into()),
            scheme: Scheme::Nip04,
            expiration: None,
            raw_content: None,
        }
    }
}

impl RawApp {
    pub async fn new(relay: &str, conn: &NewConnection) -> RawApp {
        let uri = conn.nwc_uri();
        RawApp {
            pool: pool(relay).await,
            app: Keys::new(uri.secret.clone()),
            wallet: uri.public_key,
        }
    }

    /// Builds a signed request event.
    pub fn event(&self, plaintext: &str, opts: &RawOpts) -> Event {
        let content = match &opts.raw_content {
            Some(c) => c.clone(),
            None => crypto::encrypt(opts.scheme, self.app.secret_key(), &self.wallet, plaintext)
                .expect("encrypt"),
        };
        let mut tags = vec![Tag::public_key(self.wallet)];
        if let Some(t) = &opts.tag {
            tags.push(Tag::custom(TagKind::custom("encryption"), [t.clone()]));
        }
        if let Some(exp) = opts.expiration {
            tags.push(Tag::expiration(Timestamp::from(exp)));
        }
        EventBuilder::new(Kind::from(KIND_REQUEST), content)
            .tags(tags)
            .sign_with_keys(&self.app)
            .expect("sign")
    }

    /// Publishes `event` and waits up to `timeout` for its response event.
    pub async fn send(&self, event: &Event, timeout: Duration) -> Option<Event> {
        let filter = Filter::new()
            .kind(Kind::from(KIND_RESPONSE))
            .author(self.wallet)
            .event(event.id);
        let mut stream = self
            .pool
            .stream_events(filter, timeout, ReqExitPolicy::WaitForEvents(1))
            .await
            .expect("stream");
        self.pool.send_event(event).await.expect("publish request");
        use futures::StreamExt;
        stream.next().await
    }

    /// Decrypts a response in `scheme` into JSON.
    pub fn open(&self, response: &Event, scheme: Scheme) -> Value {
        let plain = crypto::decrypt(
            scheme,
            self.app.secret_key(),
            &self.wallet,
            &response.content,
        )
        .expect("decrypt response");
        serde_json::from_str(&plain).expect("response JSON")
    }

    /// Sends a request and returns the decrypted response (in the request's scheme).
    pub async fn call(&self, plaintext: &str, opts: &RawOpts) -> Value {
        let event = self.event(plaintext, opts);
        let response = self
            .send(&event, Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no response to {plaintext:.80}"));
        self.open(&response, opts.scheme)
    }
}

/// The error code of a response, if any.
pub fn code(v: &Value) -> Option<&str> {
    v["error"]["code"].as_str()
}
