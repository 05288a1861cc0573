//! Daily and hourly limits on outgoing payments, checked when the node asks to pay.
//!
//! VLS keeps one velocity window (we give it the hourly limit); this layer keeps both windows
//! over a durable log of approved payments so a signer restart does not reset the budget.
//! Written by hand because it is a few lines over a timestamped list; no crate does this
//! with durable state.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

/// Why a payment is over the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VelocityError {
    /// The rolling hour's budget would be exceeded.
    #[error("hourly limit: {spent_msat} msat spent + {amount_msat} msat > {limit_msat} msat")]
    Hourly {
        /// Already approved in the last hour.
        spent_msat: u64,
        /// This payment.
        amount_msat: u64,
        /// The limit.
        limit_msat: u64,
    },
    /// The rolling day's budget would be exceeded.
    #[error("daily limit: {spent_msat} msat spent + {amount_msat} msat > {limit_msat} msat")]
    Daily {
        /// Already approved in the last day.
        spent_msat: u64,
        /// This payment.
        amount_msat: u64,
        /// The limit.
        limit_msat: u64,
    },
    /// The log could not be written; nothing was approved.
    #[error("cannot record the approval: {0}")]
    Storage(String),
}

#[derive(Default, Serialize, Deserialize)]
struct Log {
    /// (unix seconds, msat, payment hash hex)
    entries: Vec<(u64, u64, String)>,
}

/// Rolling hourly and daily payment limits with a durable log.
pub struct VelocityLimiter {
    path: PathBuf,
    hourly_msat: u64,
    daily_msat: u64,
    log: Mutex<Log>,
}

impl VelocityLimiter {
    /// Opens (or starts) the log at `path`. A limit of 0 means unlimited.
    pub fn open(path: PathBuf, max_sat_per_hour: u64, max_sat_per_day: u64) -> Self {
        let log = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            path,
            hourly_msat: max_sat_per_hour.saturating_mul(1000),
            daily_msat: max_sat_per_day.saturating_mul(1000),
            log: Mutex::new(log),
        }
    }

    /// Approves `amount_msat` for `payment_hash` if both windows allow it, and records it. The
    /// same payment hash approved twice counts once.
    pub fn approve(&self, payment_hash: &str, amount_msat: u64) -> Result<(), VelocityError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.entries.retain(|(t, _, _)| now.saturating_sub(*t) < DAY);
        if log.entries.iter().any(|(_, _, h)| h == payment_hash) {
            return Ok(());
        }
        let spent = |window: u64| -> u64 {
            log.entries
                .iter()
                .filter(|(t, _, _)| now.saturating_sub(*t) < window)
                .map(|(_, a, _)| *a)
                .sum()
        };
        let (hour, day) = (spent(HOUR), spent(DAY));
        if self.hourly_msat > 0 && hour.saturating_add(amount_msat) > self.hourly_msat {
            return Err(VelocityError::Hourly {
                spent_msat: hour,
                amount_msat,
                limit_msat: self.hourly_msat,
            });
        }
        if self.daily_msat > 0 && day.saturating_add(amount_msat) > self.daily_msat {
            return Err(VelocityError::Daily {
                spent_msat: day,
                amount_msat,
                limit_msat: self.daily_msat,
            });
        }
        log.entries
            .push((now, amount_msat, payment_hash.to_string()));
        let bytes = serde_json::to_vec(&*log).map_err(|e| VelocityError::Storage(e.to_string()))?;
        crate::files::write_private(&self.path, &bytes).map_err(|e| {
            log.entries.pop();
            VelocityError::Storage(e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_across_restarts_and_repeats_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("velocity.json");
        let limiter = VelocityLimiter::open(path.clone(), 10, 15);
        limiter.approve("a", 6_000).unwrap();
        limiter.approve("a", 6_000).unwrap();
        let err = limiter.approve("b", 5_000).unwrap_err();
        assert!(matches!(
            err,
            VelocityError::Hourly {
                spent_msat: 6_000,
                ..
            }
        ));
        let reopened = VelocityLimiter::open(path, 100, 10);
        let err = reopened.approve("c", 5_000).unwrap_err();
        assert!(matches!(
            err,
            VelocityError::Daily {
                spent_msat: 6_000,
                ..
            }
        ));
        reopened.approve("d", 4_000).unwrap();
    }
}
