//! Keeping a lease: renewed in the background, and given up when it cannot be.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::lease::{Lease, LeaseError};
use super::PgDatabase;

/// Renews a held lease every third of its time to live, on a thread of its own.
///
/// The lease counts as lost — [`LeaseKeeper::is_lost`], and `on_lost` called once — when
/// another host took it, or when no renewal got through for the whole time to live (the
/// database unreachable: another host may have taken the tenant by now). Losing it is not
/// what keeps the tenant's state safe (fencing does that, in the database); it is how the host
/// learns to stop the tenant rather than discover it at its next write.
pub struct LeaseKeeper {
    db: PgDatabase,
    lease: Lease,
    lost: Arc<AtomicBool>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaseKeeper {
    /// Starts renewing `lease` for `ttl` at a time.
    pub fn start(
        db: PgDatabase,
        lease: Lease,
        ttl: Duration,
        on_lost: impl Fn(&LeaseError) + Send + 'static,
    ) -> Result<LeaseKeeper, std::io::Error> {
        let lost = Arc::new(AtomicBool::new(false));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let thread = {
            let (db, lease, lost, stop) = (db.clone(), lease.clone(), lost.clone(), stop.clone());
            std::thread::Builder::new()
                .name("lease-keeper".into())
                .spawn(move || keep(&db, &lease, ttl, &lost, &stop, on_lost))?
        };
        Ok(LeaseKeeper {
            db,
            lease,
            lost,
            stop,
            thread: Some(thread),
        })
    }

    /// The lease kept.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Whether the lease was lost.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    fn halt(&mut self) {
        let (flag, wake) = &*self.stop;
        if let Ok(mut stop) = flag.lock() {
            *stop = true;
        }
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops renewing and lets the lease lapse now, so another host may take the tenant at
    /// once (a clean shutdown).
    pub fn release(mut self) -> Result<(), LeaseError> {
        self.halt();
        if self.is_lost() {
            return Ok(());
        }
        self.db.release_lease(&self.lease)
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.halt();
    }
}

fn keep(
    db: &PgDatabase,
    lease: &Lease,
    ttl: Duration,
    lost: &AtomicBool,
    stop: &(Mutex<bool>, Condvar),
    on_lost: impl Fn(&LeaseError),
) {
    let every = ttl / 3;
    // The lease was taken (or last renewed) before the keeper started.
    let mut renewed = Instant::now();
    loop {
        let (flag, wake) = stop;
        let Ok(guard) = flag.lock() else { return };
        let Ok((guard, _)) = wake.wait_timeout_while(guard, every, |stop| !*stop) else {
            return;
        };
        if *guard {
            return;
        }
        drop(guard);
        // Taken before the call: the database's new expiry is at least this plus `ttl`, so
        // giving up `ttl` after it is never later than another host could take over.
        let asked = Instant::now();
        let error = match db.renew_lease(lease, ttl) {
            Ok(()) => {
                renewed = asked;
                continue;
            }
            Err(e @ LeaseError::Lost { .. }) => e,
            Err(e) if renewed.elapsed() >= ttl => {
                tracing::warn!(tenant = %lease.tenant, error = %e, "no renewal got through for the lease's whole time");
                LeaseError::Lost {
                    tenant: lease.tenant.clone(),
                    epoch: lease.epoch,
                }
            }
            Err(e) => {
                tracing::warn!(tenant = %lease.tenant, error = %e, "could not renew the lease; trying again");
                continue;
            }
        };
        lost.store(true, Ordering::SeqCst);
        tracing::warn!(tenant = %lease.tenant, epoch = lease.epoch, "lease lost");
        on_lost(&error);
        return;
    }
}
