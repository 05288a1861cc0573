//! The relay's limits.

use std::time::Duration;

use crate::error::RelayError;

/// The relay's limits. [`RelayConfig::default`] documents each default.
#[derive(Clone, Debug, PartialEq)]
pub struct RelayConfig {
    /// Messages per second a stream's writer may keep up, the refill rate of the stream's
    /// token bucket. Default 50.
    ///
    /// aperture allows 2 a second (one per 500 ms, burst 10). Here each mailbox message is one
    /// handshake act or one whole transport frame, and a wallet UI opening a page sends (and
    /// is answered with) a few dozen calls at once: at 2 a second that page would take tens
    /// of seconds. 50 a second with a burst of 200 lets a page load at once while still
    /// bounding what one stream costs the relay.
    pub rate_per_sec: f64,
    /// The token bucket's size: how many messages may be sent at once after a quiet spell.
    /// Default 200.
    pub burst: u32,
    /// A writer over the rate waits for its next token, as aperture's does, when that token
    /// comes within this long; otherwise the relay answers `RESOURCE_EXHAUSTED`
    /// (`RATE_LIMITED`) and closes the connection. Default 1 s: at the default rate a writer
    /// is only ever slowed down, never cut off.
    pub rate_limit_max_wait: Duration,
    /// The largest message, in bytes (decoded, not base64). Default 64 KiB + 256 B: one
    /// transport frame of the pairing protocol (at most 65,535 + 34 bytes) or one handshake act
    /// with its auth data fits.
    pub max_message_bytes: usize,
    /// How long a stream lives after it is created, in use or not; when it expires it is
    /// deleted and its reader and writer are closed. Default 24 h.
    pub stream_ttl: Duration,
    /// A stream with neither reader nor writer attached for this long is deleted (aperture's
    /// stale timeout). Default 1 h.
    pub idle_timeout: Duration,
    /// How many streams the relay holds at most; creating one more answers
    /// `RESOURCE_EXHAUSTED` (`TOO_MANY_STREAMS`). Default 100,000.
    pub max_streams: usize,
    /// How many messages wait, per stream, for a reader; a writer beyond waits (backpressure).
    /// Default 1,024.
    pub max_queued_messages: usize,
    /// How many bytes of messages wait, per stream, for a reader; a writer beyond waits. One
    /// message is always accepted into an empty queue. Default 1 MiB.
    pub max_queued_bytes: usize,
    /// How many bytes of messages wait for readers across all streams; a writer whose message
    /// would go beyond is answered `RESOURCE_EXHAUSTED` (`BUFFER_FULL`). Default 512 MiB.
    pub max_total_queued_bytes: usize,
    /// How often the relay pings each websocket. A connection that answers nothing for two
    /// intervals is dropped, which frees its stream's reader or writer slot for a new
    /// connection; a websocket write that stalls that long is dropped too. Default 30 s.
    pub ping_interval: Duration,
    /// How often expired and idle streams are looked for (at most; it is shortened to a quarter
    /// of the TTL or idle timeout when those are shorter). Default 30 s.
    pub sweep_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            rate_per_sec: 50.0,
            burst: 200,
            rate_limit_max_wait: Duration::from_secs(1),
            max_message_bytes: 64 * 1024 + 256,
            stream_ttl: Duration::from_secs(24 * 3600),
            idle_timeout: Duration::from_secs(3600),
            max_streams: 100_000,
            max_queued_messages: 1024,
            max_queued_bytes: 1024 * 1024,
            max_total_queued_bytes: 512 * 1024 * 1024,
            ping_interval: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(30),
        }
    }
}

/// The longest ping interval, sweep interval and rate-limit wait accepted.
const MAX_TIMER: Duration = Duration::from_secs(24 * 3600);

/// The largest `max_message_bytes` accepted (16 MiB): websocket frames carry it in base64.
const MAX_MESSAGE_BYTES_LIMIT: usize = 16 * 1024 * 1024;

impl RelayConfig {
    /// Checks that every limit makes sense.
    pub fn validate(&self) -> Result<(), RelayError> {
        let fail = |what: &str| Err(RelayError::Config(what.to_string()));
        if !(self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0) {
            return fail("rate_per_sec must be a positive number");
        }
        if self.burst == 0 {
            return fail("burst must be at least 1");
        }
        if self.max_message_bytes == 0 || self.max_message_bytes > MAX_MESSAGE_BYTES_LIMIT {
            return fail("max_message_bytes must be between 1 and 16 MiB");
        }
        if self.max_streams == 0 || self.max_queued_messages == 0 {
            return fail("max_streams and max_queued_messages must be at least 1");
        }
        if self.max_total_queued_bytes < self.max_message_bytes {
            return fail("max_total_queued_bytes must hold at least one message");
        }
        let durations = [
            self.stream_ttl,
            self.idle_timeout,
            self.ping_interval,
            self.sweep_interval,
        ];
        if durations.iter().any(Duration::is_zero) {
            return fail("stream_ttl, idle_timeout, ping_interval and sweep_interval must be > 0");
        }
        let timers = [
            self.ping_interval,
            self.sweep_interval,
            self.rate_limit_max_wait,
        ];
        if timers.iter().any(|d| *d > MAX_TIMER) {
            return fail("ping_interval, sweep_interval and rate_limit_max_wait must be <= 1 day");
        }
        Ok(())
    }

    /// How often the sweeper runs: `sweep_interval`, or a quarter of the TTL or idle timeout
    /// when that is shorter, but not under 10 ms.
    pub(crate) fn effective_sweep_interval(&self) -> Duration {
        self.sweep_interval
            .min(self.stream_ttl / 4)
            .min(self.idle_timeout / 4)
            .max(Duration::from_millis(10))
    }

    /// The largest websocket message accepted: a send frame carrying a message of
    /// `max_message_bytes` in base64, with room for the JSON around it. Larger frames are
    /// refused before they are read.
    pub(crate) fn max_frame_bytes(&self) -> usize {
        self.max_message_bytes.div_ceil(3) * 4 + 4096
    }

    /// How long one websocket write may take.
    pub(crate) fn write_timeout(&self) -> Duration {
        self.ping_interval.saturating_mul(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(RelayConfig::default().validate().is_ok());
        let bad = RelayConfig {
            rate_per_sec: f64::NAN,
            ..RelayConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = RelayConfig {
            burst: 0,
            ..RelayConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = RelayConfig {
            ping_interval: Duration::MAX,
            ..RelayConfig::default()
        };
        assert!(bad.validate().is_err());
        // A TTL beyond what an Instant holds means "never".
        let forever = RelayConfig {
            stream_ttl: Duration::MAX,
            idle_timeout: Duration::MAX,
            ..RelayConfig::default()
        };
        assert!(forever.validate().is_ok());
    }

    #[test]
    fn sweep_follows_short_ttls() {
        let config = RelayConfig {
            stream_ttl: Duration::from_secs(1),
            ..RelayConfig::default()
        };
        assert_eq!(
            config.effective_sweep_interval(),
            Duration::from_millis(250)
        );
        assert_eq!(
            RelayConfig::default().effective_sweep_interval(),
            Duration::from_secs(30)
        );
    }
}
