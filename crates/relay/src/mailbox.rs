//! Streams ("cipher boxes") and the registry that holds them: a bounded queue per stream,
//! one reader slot and one writer slot, the rate limit, and expiry.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use crate::config::RelayConfig;
use crate::rate::TokenBucket;
use crate::status::{Reason, Status};
use crate::stream_id::StreamId;
use crate::wire::{encode_base64, Payload};

/// Locks a mutex; a panic elsewhere while it was held does not make every later user panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The limits a mailbox enforces (copied from [`RelayConfig`]).
#[derive(Clone, Copy, Debug)]
struct Limits {
    rate_per_sec: f64,
    burst: u32,
    rate_limit_max_wait: Duration,
    max_queued_messages: usize,
    max_queued_bytes: usize,
    max_total_queued_bytes: usize,
}

struct State {
    queue: VecDeque<Payload>,
    queued_bytes: usize,
    reader: bool,
    writer: bool,
    last_activity: Instant,
    bucket: TokenBucket,
    closed: Option<Status>,
}

/// One stream: messages from its writer wait here, in order, for its reader.
pub(crate) struct Mailbox {
    id: StreamId,
    id_b64: String,
    /// `None`: a TTL beyond what an `Instant` can hold, that is never.
    expires_at: Option<Instant>,
    limits: Limits,
    state: Mutex<State>,
    /// Wakes the reader: a message was queued, or the mailbox closed.
    data_ready: Notify,
    /// Wakes the writer: a message left the queue, or the mailbox closed.
    space_ready: Notify,
    /// `Some(why)` once the mailbox is closed.
    closed: watch::Sender<Option<Status>>,
    /// Bytes queued in all mailboxes of the relay.
    total_queued: Arc<AtomicUsize>,
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Mailbox")
            .field("id", &self.id)
            .field("queued_messages", &state.queue.len())
            .field("queued_bytes", &state.queued_bytes)
            .field("reader", &state.reader)
            .field("writer", &state.writer)
            .field("closed", &state.closed.is_some())
            .finish()
    }
}

impl Mailbox {
    fn new(id: StreamId, config: &RelayConfig, total_queued: Arc<AtomicUsize>) -> Mailbox {
        let now = Instant::now();
        Mailbox {
            id,
            id_b64: encode_base64(id.as_bytes()),
            expires_at: now.checked_add(config.stream_ttl),
            limits: Limits {
                rate_per_sec: config.rate_per_sec,
                burst: config.burst,
                rate_limit_max_wait: config.rate_limit_max_wait,
                max_queued_messages: config.max_queued_messages,
                max_queued_bytes: config.max_queued_bytes,
                max_total_queued_bytes: config.max_total_queued_bytes,
            },
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued_bytes: 0,
                reader: false,
                writer: false,
                last_activity: now,
                bucket: TokenBucket::new(config.rate_per_sec, config.burst, now),
                closed: None,
            }),
            data_ready: Notify::new(),
            space_ready: Notify::new(),
            closed: watch::Sender::new(None),
            total_queued,
        }
    }

    /// The stream id.
    pub(crate) fn id(&self) -> &StreamId {
        &self.id
    }

    /// The stream id in base64, as result frames carry it.
    pub(crate) fn id_b64(&self) -> &str {
        &self.id_b64
    }

    /// Closes the mailbox: queued messages are dropped and the reader and writer are told
    /// `status`. Closing twice keeps the first status.
    pub(crate) fn close(&self, status: Status) {
        {
            let mut state = lock(&self.state);
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(status.clone());
            state.queue.clear();
            self.total_queued
                .fetch_sub(state.queued_bytes, Ordering::SeqCst);
            state.queued_bytes = 0;
        }
        self.closed.send_replace(Some(status));
        self.data_ready.notify_one();
        self.space_ready.notify_one();
    }

    /// Resolves when the mailbox closes, with why.
    pub(crate) async fn closed(&self) -> Status {
        let mut receiver = self.closed.subscribe();
        let status = match receiver.wait_for(Option::is_some).await {
            Ok(status) => status.clone(),
            Err(_) => None,
        };
        status.unwrap_or_else(Status::not_found)
    }

    /// Takes the reader slot.
    pub(crate) fn attach_reader(self: &Arc<Self>) -> Result<ReaderSlot, Status> {
        self.attach(true)?;
        Ok(ReaderSlot {
            mailbox: self.clone(),
        })
    }

    /// Takes the writer slot.
    pub(crate) fn attach_writer(self: &Arc<Self>) -> Result<WriterSlot, Status> {
        self.attach(false)?;
        Ok(WriterSlot {
            mailbox: self.clone(),
        })
    }

    fn attach(&self, reader: bool) -> Result<(), Status> {
        let mut state = lock(&self.state);
        if let Some(status) = &state.closed {
            return Err(status.clone());
        }
        let slot = if reader {
            &mut state.reader
        } else {
            &mut state.writer
        };
        if *slot {
            let side = if reader { "read" } else { "write" };
            return Err(Status::new(
                Reason::StreamOccupied,
                format!("{side} stream occupied"),
            ));
        }
        *slot = true;
        state.last_activity = Instant::now();
        Ok(())
    }

    fn detach(&self, reader: bool) {
        let mut state = lock(&self.state);
        if reader {
            state.reader = false;
        } else {
            state.writer = false;
        }
        state.last_activity = Instant::now();
    }

    /// Whether the mailbox should go: past its TTL, or idle too long.
    fn expiry(&self, now: Instant, idle_timeout: Duration) -> Option<Status> {
        if self.expires_at.is_some_and(|expires_at| now >= expires_at) {
            return Some(Status::new(
                Reason::StreamExpired,
                "stream not found: it expired",
            ));
        }
        let state = lock(&self.state);
        let idle = !state.reader
            && !state.writer
            && now.saturating_duration_since(state.last_activity) >= idle_timeout;
        idle.then(|| Status::new(Reason::StreamExpired, "stream not found: it was idle"))
    }
}

/// The reader slot of a mailbox; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct ReaderSlot {
    mailbox: Arc<Mailbox>,
}

impl ReaderSlot {
    /// The mailbox.
    pub(crate) fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }

    /// The next message, waiting for one; an error once the mailbox is closed. Cancel-safe:
    /// a message is taken from the queue only when this returns it.
    pub(crate) async fn recv(&self) -> Result<Payload, Status> {
        let mailbox = &self.mailbox;
        loop {
            {
                let mut state = lock(&mailbox.state);
                if let Some(status) = &state.closed {
                    return Err(status.clone());
                }
                if let Some(payload) = state.queue.pop_front() {
                    state.queued_bytes -= payload.len();
                    state.last_activity = Instant::now();
                    mailbox
                        .total_queued
                        .fetch_sub(payload.len(), Ordering::SeqCst);
                    drop(state);
                    mailbox.space_ready.notify_one();
                    return Ok(payload);
                }
            }
            // `notify_one` keeps a permit when nobody waits, so a message queued between the
            // check above and this line is not missed.
            mailbox.data_ready.notified().await;
        }
    }
}

impl Drop for ReaderSlot {
    fn drop(&mut self) {
        self.mailbox.detach(true);
    }
}

/// The writer slot of a mailbox; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct WriterSlot {
    mailbox: Arc<Mailbox>,
}

impl WriterSlot {
    /// The mailbox.
    pub(crate) fn mailbox(&self) -> &Arc<Mailbox> {
        &self.mailbox
    }

    /// Queues a message: waits for a rate-limit token (up to the configured wait), then for
    /// room in the queue.
    pub(crate) async fn send(&self, payload: Payload) -> Result<(), Status> {
        self.take_token().await?;
        let mailbox = &self.mailbox;
        let limits = mailbox.limits;
        let len = payload.len();
        loop {
            {
                let mut state = lock(&mailbox.state);
                if let Some(status) = &state.closed {
                    return Err(status.clone());
                }
                let fits = state.queue.is_empty()
                    || (state.queue.len() < limits.max_queued_messages
                        && state.queued_bytes.saturating_add(len) <= limits.max_queued_bytes);
                if fits {
                    let reserved = mailbox.total_queued.fetch_update(
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                        |total| {
                            total
                                .checked_add(len)
                                .filter(|t| *t <= limits.max_total_queued_bytes)
                        },
                    );
                    if reserved.is_err() {
                        return Err(Status::new(
                            Reason::BufferFull,
                            "the relay's message buffers are full",
                        ));
                    }
                    state.queue.push_back(payload);
                    state.queued_bytes += len;
                    state.last_activity = Instant::now();
                    drop(state);
                    mailbox.data_ready.notify_one();
                    return Ok(());
                }
            }
            mailbox.space_ready.notified().await;
        }
    }

    async fn take_token(&self) -> Result<(), Status> {
        let limits = self.mailbox.limits;
        loop {
            let wait = {
                let mut state = lock(&self.mailbox.state);
                if let Some(status) = &state.closed {
                    return Err(status.clone());
                }
                match state.bucket.try_take(Instant::now()) {
                    Ok(()) => return Ok(()),
                    Err(wait) => wait,
                }
            };
            if wait > limits.rate_limit_max_wait {
                return Err(Status::new(
                    Reason::RateLimited,
                    format!(
                        "rate limit exceeded: {} messages a second, burst {}",
                        limits.rate_per_sec, limits.burst
                    ),
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                status = self.mailbox.closed() => return Err(status),
            }
        }
    }
}

impl Drop for WriterSlot {
    fn drop(&mut self) {
        self.mailbox.detach(false);
    }
}

struct Streams {
    map: HashMap<StreamId, Arc<Mailbox>>,
    shut: bool,
}

/// All streams of a relay.
pub(crate) struct Registry {
    config: RelayConfig,
    streams: Mutex<Streams>,
    total_queued: Arc<AtomicUsize>,
}

impl Registry {
    /// An empty registry.
    pub(crate) fn new(config: RelayConfig) -> Registry {
        Registry {
            config,
            streams: Mutex::new(Streams {
                map: HashMap::new(),
                shut: false,
            }),
            total_queued: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn shutting_down() -> Status {
        Status::new(Reason::ShuttingDown, "relay shutting down")
    }

    /// Creates a stream.
    pub(crate) fn create(&self, id: StreamId) -> Result<(), Status> {
        let mut streams = lock(&self.streams);
        if streams.shut {
            return Err(Registry::shutting_down());
        }
        if streams.map.contains_key(&id) {
            return Err(Status::new(Reason::StreamExists, "stream already active"));
        }
        if streams.map.len() >= self.config.max_streams {
            return Err(Status::new(
                Reason::TooManyStreams,
                format!(
                    "the relay holds its maximum of {} streams",
                    self.config.max_streams
                ),
            ));
        }
        let mailbox = Mailbox::new(id, &self.config, self.total_queued.clone());
        streams.map.insert(id, Arc::new(mailbox));
        Ok(())
    }

    /// Deletes a stream; its reader and writer are closed.
    pub(crate) fn delete(&self, id: &StreamId) -> Result<(), Status> {
        let removed = {
            let mut streams = lock(&self.streams);
            if streams.shut {
                return Err(Registry::shutting_down());
            }
            streams.map.remove(id)
        };
        let mailbox = removed.ok_or_else(Status::not_found)?;
        mailbox.close(Status::new(
            Reason::StreamDeleted,
            "stream not found: it was deleted",
        ));
        Ok(())
    }

    /// Looks a stream up.
    pub(crate) fn get(&self, id: &StreamId) -> Result<Arc<Mailbox>, Status> {
        let streams = lock(&self.streams);
        if streams.shut {
            return Err(Registry::shutting_down());
        }
        streams.map.get(id).cloned().ok_or_else(Status::not_found)
    }

    /// How many streams there are.
    pub(crate) fn len(&self) -> usize {
        lock(&self.streams).map.len()
    }

    /// Bytes queued across all streams.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.total_queued.load(Ordering::SeqCst)
    }

    /// Deletes expired and idle streams; returns how many.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let mut gone = Vec::new();
        {
            let mut streams = lock(&self.streams);
            streams.map.retain(
                |_, mailbox| match mailbox.expiry(now, self.config.idle_timeout) {
                    Some(status) => {
                        gone.push((mailbox.clone(), status));
                        false
                    }
                    None => true,
                },
            );
        }
        for (mailbox, status) in &gone {
            tracing::debug!(stream = %mailbox.id(), why = %status.message, "hashmail: stream removed");
            mailbox.close(status.clone());
        }
        gone.len()
    }

    /// Closes every stream and refuses new ones.
    pub(crate) fn shutdown(&self) {
        let all: Vec<_> = {
            let mut streams = lock(&self.streams);
            streams.shut = true;
            streams.map.drain().map(|(_, mailbox)| mailbox).collect()
        };
        for mailbox in all {
            mailbox.close(Registry::shutting_down());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(byte: u8) -> StreamId {
        StreamId::new([byte; 64])
    }

    fn registry(config: RelayConfig) -> Registry {
        Registry::new(config)
    }

    #[tokio::test]
    async fn queue_is_ordered_and_slots_are_exclusive() {
        let registry = registry(RelayConfig::default());
        registry.create(id(1)).unwrap();
        let mailbox = registry.get(&id(1)).unwrap();
        let writer = mailbox.attach_writer().unwrap();
        assert_eq!(
            mailbox.attach_writer().unwrap_err().reason,
            Some(Reason::StreamOccupied)
        );
        for i in 0..5u8 {
            writer.send(Payload::new(vec![i])).await.unwrap();
        }
        let reader = mailbox.attach_reader().unwrap();
        assert!(mailbox.attach_reader().is_err());
        for i in 0..5u8 {
            assert_eq!(reader.recv().await.unwrap().as_bytes(), &[i]);
        }
        drop(reader);
        assert!(mailbox.attach_reader().is_ok());
        assert_eq!(registry.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn a_full_queue_makes_the_writer_wait() {
        let config = RelayConfig {
            max_queued_messages: 2,
            ..RelayConfig::default()
        };
        let registry = registry(config);
        registry.create(id(2)).unwrap();
        let mailbox = registry.get(&id(2)).unwrap();
        let writer = mailbox.attach_writer().unwrap();
        writer.send(Payload::new(vec![1])).await.unwrap();
        writer.send(Payload::new(vec![2])).await.unwrap();
        let third = writer.send(Payload::new(vec![3]));
        tokio::pin!(third);
        // The third message does not fit until the reader takes one.
        assert!(futures::FutureExt::now_or_never(third.as_mut()).is_none());
        let reader = mailbox.attach_reader().unwrap();
        assert_eq!(reader.recv().await.unwrap().as_bytes(), &[1]);
        third.await.unwrap();
        assert_eq!(reader.recv().await.unwrap().as_bytes(), &[2]);
        assert_eq!(reader.recv().await.unwrap().as_bytes(), &[3]);
    }

    #[tokio::test]
    async fn closing_wakes_both_sides_and_frees_the_buffer() {
        let registry = registry(RelayConfig::default());
        registry.create(id(3)).unwrap();
        let mailbox = registry.get(&id(3)).unwrap();
        let writer = mailbox.attach_writer().unwrap();
        writer.send(Payload::new(vec![0; 100])).await.unwrap();
        assert_eq!(registry.queued_bytes(), 100);
        registry.delete(&id(3)).unwrap();
        assert_eq!(registry.queued_bytes(), 0);
        let err = writer.send(Payload::new(vec![1])).await.unwrap_err();
        assert_eq!(err.reason, Some(Reason::StreamDeleted));
        assert!(mailbox.attach_reader().is_err());
        assert_eq!(registry.get(&id(3)).unwrap_err().code, 5);
        assert_eq!(mailbox.closed().await.reason, Some(Reason::StreamDeleted));
    }

    #[tokio::test]
    async fn limits() {
        let config = RelayConfig {
            max_streams: 1,
            burst: 2,
            rate_per_sec: 0.001,
            ..RelayConfig::default()
        };
        let registry = registry(config);
        registry.create(id(4)).unwrap();
        assert_eq!(
            registry.create(id(4)).unwrap_err().reason,
            Some(Reason::StreamExists)
        );
        assert_eq!(
            registry.create(id(5)).unwrap_err().reason,
            Some(Reason::TooManyStreams)
        );
        let writer = registry.get(&id(4)).unwrap().attach_writer().unwrap();
        writer.send(Payload::default()).await.unwrap();
        writer.send(Payload::default()).await.unwrap();
        let err = writer.send(Payload::default()).await.unwrap_err();
        assert_eq!(err.reason, Some(Reason::RateLimited));
    }

    #[test]
    fn sweep_removes_expired_and_idle_streams() {
        let config = RelayConfig {
            stream_ttl: Duration::from_secs(100),
            idle_timeout: Duration::from_secs(10),
            ..RelayConfig::default()
        };
        let registry = registry(config);
        registry.create(id(6)).unwrap();
        registry.create(id(7)).unwrap();
        let busy = registry.get(&id(7)).unwrap().attach_reader().unwrap();
        let now = Instant::now();
        assert_eq!(registry.sweep(now), 0);
        // Idle: only the stream nobody is attached to.
        assert_eq!(registry.sweep(now + Duration::from_secs(11)), 1);
        assert!(registry.get(&id(6)).is_err());
        // Expired: attached or not.
        assert_eq!(registry.sweep(now + Duration::from_secs(101)), 1);
        assert_eq!(registry.len(), 0);
        drop(busy);
    }

    #[test]
    fn a_ttl_beyond_an_instant_never_expires() {
        let config = RelayConfig {
            stream_ttl: Duration::MAX,
            ..RelayConfig::default()
        };
        let registry = registry(config);
        registry.create(id(9)).unwrap();
        let _reader = registry.get(&id(9)).unwrap().attach_reader().unwrap();
        assert_eq!(
            registry.sweep(Instant::now() + Duration::from_secs(1_000_000)),
            0
        );
    }

    #[test]
    fn debug_shows_no_message_bytes() {
        let registry = registry(RelayConfig::default());
        registry.create(id(8)).unwrap();
        let mailbox = registry.get(&id(8)).unwrap();
        let writer = mailbox.attach_writer().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(writer.send(Payload::new(b"TOP-SECRET-PLAINTEXT".to_vec())))
            .unwrap();
        let shown = format!("{mailbox:?} {writer:?}");
        assert!(!shown.contains("TOP-SECRET"), "{shown}");
        assert!(!shown.contains(&encode_base64(b"TOP-SECRET-PLAINTEXT")));
        assert!(shown.contains("queued_bytes: 20"), "{shown}");
    }
}
