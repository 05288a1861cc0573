//! What a public listener lets in: an IP allow-list ([`IpAllowList`]) and token buckets
//! ([`RateLimit`], [`Bucket`], per address in [`PerIpLimiter`]). A host's front door limits
//! each tenant and each address; the Lightning P2P listener and the signer-link listeners
//! refuse addresses outside their allow-lists and addresses that connect too often.
//!
//! Hand-written buckets: a bucket is a few lines, and the crates that do this (governor) bring
//! a clock abstraction and keyed stores this does not need. Networks are `ipnet`'s.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;

/// Events allowed: `per_second` on average, up to `burst` at once. `per_second` 0 means no
/// limit.
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

/// One key's bucket (a tenant's, an address's).
#[derive(Debug)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> Bucket {
        Bucket {
            tokens: f64::from(limit.burst.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes one call's token at `now`; `false` when the bucket is empty.
    pub fn take(&mut self, limit: RateLimit, now: Instant) -> bool {
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

/// The addresses a listener accepts: any, or those in its networks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpAllowList {
    networks: Vec<IpNet>,
}

/// An allow-list entry that is neither an address nor a network (`10.0.0.0/8`).
#[derive(Debug, thiserror::Error)]
#[error("{entry:?} is not an IP address or network (like 10.0.0.0/8 or fd00::/8)")]
pub struct BadAllowEntry {
    /// The entry.
    pub entry: String,
}

impl IpAllowList {
    /// Accepts every address.
    pub fn any() -> Self {
        Self::default()
    }

    /// Accepts the addresses in `entries`: networks (`10.0.0.0/8`) or single addresses.
    /// No entries accepts every address.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, BadAllowEntry> {
        let networks = entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map_err(|_| BadAllowEntry {
                        entry: entry.chars().take(80).collect(),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    /// Whether `ip` may connect. IPv4 addresses mapped into IPv6 count as IPv4.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.networks.is_empty() {
            return true;
        }
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// Whether it accepts every address.
    pub fn is_any(&self) -> bool {
        self.networks.is_empty()
    }
}

/// How many addresses' buckets a [`PerIpLimiter`] keeps before it forgets the idle ones.
const MAX_TRACKED_ADDRESSES: usize = 65_536;

/// A token bucket per remote address. The default limits nothing.
#[derive(Debug)]
pub struct PerIpLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl Default for PerIpLimiter {
    fn default() -> Self {
        Self::new(RateLimit::UNLIMITED)
    }
}

impl PerIpLimiter {
    /// Each address gets `limit`.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::default(),
        }
    }

    /// Takes one event of `ip` from its bucket; `false` when it is over its rate.
    pub fn admit(&self, ip: IpAddr) -> bool {
        if self.limit.per_second == 0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED_ADDRESSES && !buckets.contains_key(&ip) {
            // A flood from many addresses: forget those quiet long enough to be full again.
            let refill = Duration::from_secs_f64(
                f64::from(self.limit.burst.max(1)) / f64::from(self.limit.per_second),
            );
            buckets.retain(|_, b| now.saturating_duration_since(b.last) < refill);
        }
        let limit = self.limit;
        buckets
            .entry(ip.to_canonical())
            .or_insert_with(|| Bucket::new(limit))
            .take(limit, now)
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

    #[test]
    fn allow_lists_take_networks_and_addresses() {
        let list = IpAllowList::parse(&["10.0.0.0/8", "192.168.1.7", "fd00::/8"]).expect("parse");
        for ok in ["10.1.2.3", "192.168.1.7", "fd12::1", "::ffff:10.9.9.9"] {
            assert!(list.allows(ok.parse().unwrap()), "{ok}");
        }
        for refused in ["11.0.0.1", "192.168.1.8", "fe80::1", "127.0.0.1"] {
            assert!(!list.allows(refused.parse().unwrap()), "{refused}");
        }
        assert!(IpAllowList::any().allows("8.8.8.8".parse().unwrap()));
        let bad = IpAllowList::parse(&["10.0.0.0/33"]).expect_err("a bad prefix");
        assert!(bad.to_string().contains("10.0.0.0/33"), "{bad}");
        assert!(IpAllowList::parse(&["example.com"]).is_err());
    }

    #[test]
    fn each_address_has_its_own_bucket() {
        let limiter = PerIpLimiter::new(RateLimit {
            per_second: 1,
            burst: 2,
        });
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(limiter.admit(a) && limiter.admit(a));
        assert!(!limiter.admit(a), "a's burst is spent");
        assert!(limiter.admit(b), "b is not a");
    }
}
