//! Daily and hourly limits on outgoing payments, checked when the node asks to pay.
//!
//! VLS keeps one velocity window (we give it the hourly limit); this layer keeps both windows
//! over a durable log of approved payments so a signer restart does not reset the budget.
//! Each payment counts its amount plus its routing-fee allowance: what it may cost at most.
//!
//! The limit fails closed: a log that exists but cannot be read or parsed refuses every
//! approval (with [`VelocityError::Unreadable`]) until the tenant repairs or removes it;
//! a missing log is an empty one. Written by hand because it is a few lines over a
//! timestamped list; no crate does this with durable state.

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
    /// The log exists but cannot be read: nothing is approved until it is repaired.
    #[error("the velocity log {path} is unreadable ({reason}); no payment is approved until it is repaired or removed")]
    Unreadable {
        /// The log file.
        path: PathBuf,
        /// Why.
        reason: String,
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
    /// `Err` when the log on disk could not be read: the limiter then refuses everything.
    log: Mutex<Result<Log, String>>,
}

fn read_log(path: &std::path::Path) -> Result<Log, String> {
    match micronode_files::read_private(path) {
        Ok(None) => Ok(Log::default()),
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).map_err(|e| format!("not a log: {e}")),
        Err(e) => Err(e.to_string()),
    }
}

impl VelocityLimiter {
    /// Opens (or starts) the log at `path`. A limit of 0 means unlimited.
    pub fn open(path: PathBuf, max_sat_per_hour: u64, max_sat_per_day: u64) -> Self {
        let log = read_log(&path);
        if let Err(reason) = &log {
            tracing::error!(path = %path.display(), %reason, "the velocity log is unreadable: every payment will be refused until it is repaired or removed");
        }
        Self {
            path,
            hourly_msat: max_sat_per_hour.saturating_mul(1000),
            daily_msat: max_sat_per_day.saturating_mul(1000),
            log: Mutex::new(log),
        }
    }

    /// Approves a payment costing at most `cost_msat` for `payment_hash` if both windows allow
    /// it, and records it durably before answering. The same payment hash approved twice
    /// counts once.
    pub fn approve(&self, payment_hash: &str, cost_msat: u64) -> Result<(), VelocityError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut guard = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let log = guard.as_mut().map_err(|reason| VelocityError::Unreadable {
            path: self.path.clone(),
            reason: reason.clone(),
        })?;
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
        if self.hourly_msat > 0 && hour.saturating_add(cost_msat) > self.hourly_msat {
            return Err(VelocityError::Hourly {
                spent_msat: hour,
                amount_msat: cost_msat,
                limit_msat: self.hourly_msat,
            });
        }
        if self.daily_msat > 0 && day.saturating_add(cost_msat) > self.daily_msat {
            return Err(VelocityError::Daily {
                spent_msat: day,
                amount_msat: cost_msat,
                limit_msat: self.daily_msat,
            });
        }
        log.entries.push((now, cost_msat, payment_hash.to_string()));
        let bytes = serde_json::to_vec(&*log).map_err(|e| VelocityError::Storage(e.to_string()))?;
        micronode_files::write_private(&self.path, &bytes).map_err(|e| {
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

    #[test]
    fn an_unreadable_log_refuses_every_payment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("velocity.json");
        std::fs::write(&path, b"{ this is not the log").unwrap();
        let limiter = VelocityLimiter::open(path.clone(), 0, 0);
        let err = limiter.approve("a", 1).unwrap_err();
        assert!(matches!(err, VelocityError::Unreadable { .. }), "{err}");
        // The damaged log is kept for the tenant to inspect, not overwritten.
        assert_eq!(std::fs::read(&path).unwrap(), b"{ this is not the log");
        // A directory where the log should be cannot be read either.
        let dir_path = dir.path().join("dir-log");
        std::fs::create_dir(&dir_path).unwrap();
        let limiter = VelocityLimiter::open(dir_path, 0, 0);
        assert!(matches!(
            limiter.approve("a", 1),
            Err(VelocityError::Unreadable { .. })
        ));
    }
}
