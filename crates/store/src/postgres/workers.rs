//! The threads that talk to PostgreSQL.
//!
//! Hand-written rather than a pool crate (r2d2, deadpool) on purpose: rust-postgres's
//! synchronous `Client` blocks on a runtime of its own and panics when called from a thread
//! that is inside a tokio runtime, and LDK persists from such threads (the chain feed's
//! current-thread runtime, API handlers). A pool crate would still run the query on the
//! caller's thread. Here every query runs on one of a fixed set of plain threads, each owning
//! one connection (made again after it breaks); callers block on a channel, as they would on
//! SQLite's fsync.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use postgres::{Client, Config, NoTls};

/// A failure talking to PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// No connection could be made.
    #[error("could not connect to PostgreSQL")]
    Connect(#[source] postgres::Error),
    /// A query or transaction failed.
    #[error("PostgreSQL failed to {step}")]
    Query {
        /// What was being done.
        step: &'static str,
        /// The driver's error.
        #[source]
        source: postgres::Error,
    },
    /// The worker threads are gone (the database handle was closed).
    #[error("the PostgreSQL workers have stopped")]
    Stopped,
    /// A worker thread could not be started.
    #[error("could not start a PostgreSQL worker thread")]
    Spawn(#[source] std::io::Error),
}

type Job = Box<dyn FnOnce(&mut Option<Client>, &Config) + Send>;

/// How long the server lets a session sit in an open transaction, or wait for a lock, before
/// it gives up: a host paused (SIGSTOP) in the middle of a transaction must not hold a tenant's
/// lease row, and so its takeover, hostage.
const SESSION_LIMITS: &str =
    "SET idle_in_transaction_session_timeout = '5s'; SET lock_timeout = '5s'";

fn connect(config: &Config) -> Result<Client, postgres::Error> {
    let mut client = config.connect(NoTls)?;
    client.batch_execute(SESSION_LIMITS)?;
    Ok(client)
}

/// A fixed set of threads, each with one connection, running queries for any caller.
pub(crate) struct Workers {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Workers {
    /// Starts `count` workers that connect with `config` (lazily, on their first job).
    pub(crate) fn start(config: Config, count: usize) -> Result<Workers, PgError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..count.max(1) {
            let rx = rx.clone();
            let config = config.clone();
            let handle = std::thread::Builder::new()
                .name(format!("postgres-{i}"))
                .spawn(move || {
                    let mut client: Option<Client> = None;
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut client, &config),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(PgError::Spawn)?;
            threads.push(handle);
        }
        Ok(Workers {
            jobs: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        })
    }

    /// Runs `f` on a worker's connection and waits for its answer. A connection that broke is
    /// dropped and made again for the next job.
    pub(crate) fn run<R, F>(&self, step: &'static str, f: F) -> Result<R, PgError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
    {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |slot, config| {
            let result = match slot {
                Some(client) if !client.is_closed() => Ok(client),
                _ => connect(config).map(|c| slot.insert(c)),
            };
            let answer = match result {
                Err(e) => Err(PgError::Connect(e)),
                Ok(client) => {
                    let answer = f(client).map_err(|source| PgError::Query { step, source });
                    if client.is_closed() {
                        *slot = None;
                    }
                    answer
                }
            };
            let _ = reply_tx.send(answer);
        });
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.as_ref().map(|tx| tx.send(job).is_ok()),
            Err(_) => None,
        };
        if sent != Some(true) {
            return Err(PgError::Stopped);
        }
        reply_rx.recv().map_err(|_| PgError::Stopped)?
    }

    /// Stops taking jobs and waits for the workers to finish the ones they have.
    pub(crate) fn stop(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        let threads = match self.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return,
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}
