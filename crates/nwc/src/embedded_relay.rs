//! An in-process Nostr relay for `micronode up` and local development (feature
//! `embedded-relay`). It keeps ephemeral NWC events in memory only and forgets everything on
//! restart; production deployments should use a real relay that does not drop idle
//! connections.

use std::net::SocketAddr;

use nostr_relay_builder::prelude::{LocalRelay, RateLimit, RelayBuilder};

use crate::error::NwcError;

/// A running in-process relay; stopped on drop.
pub struct EmbeddedRelay {
    relay: LocalRelay,
    url: String,
}

impl EmbeddedRelay {
    /// Starts a relay on `addr` (port 0 picks a free port).
    pub async fn start(addr: SocketAddr) -> Result<Self, NwcError> {
        let mut builder = RelayBuilder::default()
            .addr(addr.ip())
            .rate_limit(RateLimit {
                max_reqs: 500,
                notes_per_minute: 100_000,
            });
        if addr.port() != 0 {
            builder = builder.port(addr.port());
        }
        let relay = LocalRelay::new(builder);
        relay
            .run()
            .await
            .map_err(|e| NwcError::Relay(format!("cannot start the embedded relay: {e}")))?;
        let url = relay.url().await.to_string();
        Ok(Self { relay, url })
    }

    /// The relay's `ws://` URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the relay.
    pub fn stop(&self) {
        self.relay.shutdown();
    }
}

impl Drop for EmbeddedRelay {
    fn drop(&mut self) {
        self.relay.shutdown();
    }
}
