//! Signer side: dial out to the node, with reconnection backoff.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::net::TcpStream;

use crate::code::PairingCode;
use crate::error::{LinkError, Result};
use crate::handshake::{initiate, PeerInfo, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::identity::{LinkIdentity, KEY_LEN};
use crate::transport::LinkConnection;

/// How the signer authenticates the node.
#[derive(Debug, Clone)]
pub enum ConnectMode {
    /// The node's static key was pinned at pairing (`Noise_KK`).
    Pinned {
        /// The node's static public key.
        node_key: [u8; KEY_LEN],
    },
    /// First contact: pair with a one-time code (`Noise_XXpsk3`). On success,
    /// [`PeerInfo::remote_key`] is the node's key: store it and use
    /// [`ConnectMode::Pinned`] from then on (the code will not work again).
    Pairing {
        /// The code the node showed.
        code: PairingCode,
    },
}

/// Exponential backoff with jitter between connection attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The delay after the first failure (before jitter).
    pub initial: Duration,
    /// The largest delay (before jitter).
    pub max: Duration,
    /// Give up after this many failed attempts (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    /// 200 ms doubling up to 30 s, retrying forever.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// The delay after failed attempt number `failures` (1-based): `initial * 2^(failures-1)`
    /// capped at `max`, then drawn uniformly from its upper half ("equal jitter"), so
    /// signers that lost the node at the same moment do not reconnect in lockstep.
    pub fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(31);
        let base = self
            .initial
            .saturating_mul(1u32 << shift)
            .min(self.max.max(self.initial));
        let half = base / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if jitter_nanos == 0 {
            0
        } else {
            rand::thread_rng().gen_range(0..=jitter_nanos)
        };
        half + Duration::from_nanos(jitter)
    }
}

/// Dials the node and runs the handshake.
#[derive(Debug, Clone)]
pub struct LinkConnector {
    /// The node's link addresses, `host:port` (resolved on each attempt). Attempts go to each
    /// in turn: a node of a fleet listens on whichever host runs it now.
    pub addrs: Vec<String>,
    /// The signer's static key.
    pub identity: Arc<LinkIdentity>,
    /// Pinned node key or pairing code.
    pub mode: ConnectMode,
    /// Limit on one attempt: TCP connect, handshake and key confirmation.
    pub handshake_timeout: Duration,
}

impl LinkConnector {
    /// A connector with the default handshake timeout.
    pub fn new(addr: impl Into<String>, identity: Arc<LinkIdentity>, mode: ConnectMode) -> Self {
        Self::any_of(vec![addr.into()], identity, mode)
    }

    /// A connector that tries each of `addrs` in turn (the hosts a fleet may run the node on).
    pub fn any_of(addrs: Vec<String>, identity: Arc<LinkIdentity>, mode: ConnectMode) -> Self {
        Self {
            addrs,
            identity,
            mode,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// The address attempt `n` (from 0) goes to.
    fn addr_for(&self, attempt: u32) -> &str {
        match self.addrs.len() {
            0 => "",
            len => &self.addrs[attempt as usize % len],
        }
    }

    /// One attempt, to the first address: connect, handshake, confirm keys.
    pub async fn connect(&self) -> Result<(LinkConnection, PeerInfo)> {
        self.connect_to(self.addr_for(0)).await
    }

    async fn connect_to(&self, addr: &str) -> Result<(LinkConnection, PeerInfo)> {
        if addr.is_empty() {
            return Err(LinkError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no node address to dial",
            )));
        }
        let attempt = async {
            let stream = TcpStream::connect(addr).await?;
            initiate(stream, &self.identity, &self.mode).await
        };
        let conn = tokio::time::timeout(self.handshake_timeout, attempt)
            .await
            .map_err(|_| LinkError::HandshakeTimeout)??;
        let peer = conn.peer().clone();
        Ok((conn, peer))
    }

    /// Connects, retrying failures after [`Backoff::delay`] (with several addresses: after
    /// each round of them, the next address at once within a round) until it succeeds, `backoff`
    /// runs out of attempts (the last error is returned), an error that retrying cannot fix
    /// occurs (see [`LinkError::is_retryable`]), or `cancel` completes
    /// ([`LinkError::Cancelled`]). Pass `std::future::pending()` to never cancel; dropping
    /// the returned future cancels as well.
    ///
    /// The node does not tell a signer why it was refused, so refusals
    /// ([`LinkError::HandshakeRejected`]) are retried too: with [`ConnectMode::Pairing`],
    /// set [`Backoff::max_attempts`], since a used or expired code will never work.
    pub async fn connect_with_backoff<C>(
        &self,
        backoff: &Backoff,
        cancel: C,
    ) -> Result<(LinkConnection, PeerInfo)>
    where
        C: Future<Output = ()>,
    {
        tokio::pin!(cancel);
        if self.addrs.is_empty() {
            return self.connect().await;
        }
        let mut failures: u32 = 0;
        loop {
            let addr = self.addr_for(failures);
            let result = tokio::select! {
                biased;
                _ = &mut cancel => return Err(LinkError::Cancelled),
                r = self.connect_to(addr) => r,
            };
            let error = match result {
                Ok(connected) => {
                    tracing::info!(
                        addr = %addr,
                        node = %connected.1.fingerprint(),
                        attempts = failures + 1,
                        "link connected"
                    );
                    return Ok(connected);
                }
                Err(e) => e,
            };
            failures = failures.saturating_add(1);
            if !error.is_retryable() || backoff.max_attempts.is_some_and(|m| failures >= m) {
                tracing::warn!(addr = %addr, attempts = failures, error = %error, "link connect failed; giving up");
                return Err(error);
            }
            // With several addresses, a round tries each at once; the back-off grows per
            // round, so the host that took the node over is found as soon as it listens.
            let len = u32::try_from(self.addrs.len()).unwrap_or(u32::MAX).max(1);
            let delay = if !failures.is_multiple_of(len) {
                Duration::ZERO
            } else {
                backoff.delay(failures / len)
            };
            tracing::warn!(
                addr = %addr,
                attempt = failures,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "link connect failed; retrying"
            );
            tokio::select! {
                biased;
                _ = &mut cancel => return Err(LinkError::Cancelled),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let b = Backoff::default();
        for _ in 0..100 {
            let d1 = b.delay(1);
            assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(200));
            let d3 = b.delay(3);
            assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800));
            let d50 = b.delay(50);
            assert!(d50 >= Duration::from_secs(15) && d50 <= Duration::from_secs(30));
        }
        assert!(b.delay(u32::MAX) <= Duration::from_secs(30));
        let zero = Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            max_attempts: Some(1),
        };
        assert_eq!(zero.delay(5), Duration::ZERO);
    }
}
