//! A token bucket per tenant: a host's front door refuses a tenant's calls beyond its rate,
//! so one tenant's flood of calls cannot starve the others.
//!
//! Hand-written: a bucket is a few lines, and the crates that do this (governor) bring a clock
//! abstraction and keyed stores this does not need.

use std::time::Instant;

/// Calls allowed per tenant: `per_second` on average, up to `burst` at once. `per_second` 0
/// means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Calls per second, on average.
    pub per_second: u32,
    /// Calls at once after a quiet time.
    pub burst: u32,
}

impl RateLimit {
    /// No limit.
    pub const UNLIMITED: RateLimit = RateLimit {
        per_second: 0,
        burst: 0,
    };

    /// `per_second` on average, twice that at once.
    pub fn per_second(per_second: u32) -> RateLimit {
        RateLimit {
            per_second,
            burst: per_second.saturating_mul(2),
        }
    }
}

impl Default for RateLimit {
    /// 100 calls a second, 200 at once.
    fn default() -> Self {
        RateLimit::per_second(100)
    }
}

/// One tenant's bucket.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(limit: RateLimit) -> Bucket {
        Bucket {
            tokens: f64::from(limit.burst.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes one call's token at `now`; `false` when the bucket is empty.
    pub(crate) fn take(&mut self, limit: RateLimit, now: Instant) -> bool {
        if limit.per_second == 0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let cap = f64::from(limit.burst.max(1));
        self.tokens = (self.tokens + elapsed * f64::from(limit.per_second)).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let limit = RateLimit {
            per_second: 10,
            burst: 3,
        };
        let start = Instant::now();
        let mut bucket = Bucket::new(limit);
        assert!((0..3).all(|_| bucket.take(limit, start)));
        assert!(!bucket.take(limit, start), "the burst is spent");
        // A tenth of a second refills one call, no more.
        let later = start + Duration::from_millis(100);
        assert!(bucket.take(limit, later));
        assert!(!bucket.take(limit, later));
        // A long quiet time refills the burst only.
        let much_later = later + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.take(limit, much_later)));
        assert!(!bucket.take(limit, much_later));
    }

    #[test]
    fn no_limit_is_no_limit() {
        let mut bucket = Bucket::new(RateLimit::UNLIMITED);
        let now = Instant::now();
        assert!((0..10_000).all(|_| bucket.take(RateLimit::UNLIMITED, now)));
    }
}
