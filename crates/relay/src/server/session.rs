//! The websocket sessions: a writer feeding a stream (`send`) and a reader draining one
//! (`receive`), with pings to find dead connections, and an error frame before every close
//! the relay starts.
//!
//! Nothing here logs or formats message bytes: logs carry the stream id's short prefix, the
//! error code and the relay's own message text.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::{SessionGuard, Shared};
use crate::mailbox::{ReaderSlot, WriterSlot};
use crate::status::{Reason, Status};
use crate::stream_id::StreamId;
use crate::wire;

type Ws = WebSocketStream<TokioIo<Upgraded>>;

/// How long the relay keeps reading after its close frame, so the error frame before it is
/// not lost to a TCP reset when the client still had frames in flight.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// How many bytes of an over-long frame the relay reads (and discards) at most while closing.
const DRAIN_MAX: usize = 1024 * 1024;

/// What a frame from the client amounts to.
enum Incoming {
    Text(Utf8Bytes),
    Binary,
    Control,
    TooLarge { size: usize, max: usize },
    End,
}

fn classify(frame: Option<Result<Message, WsError>>) -> Incoming {
    match frame {
        Some(Ok(Message::Text(text))) => Incoming::Text(text),
        Some(Ok(Message::Binary(_))) => Incoming::Binary,
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Control,
        Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
            Incoming::TooLarge {
                size,
                max: max_size,
            }
        }
        Some(Ok(Message::Close(_)) | Err(_)) | None => Incoming::End,
    }
}

fn binary_refused() -> Status {
    Status::invalid("binary frames are not supported: send JSON text frames")
}

fn frame_too_large(size: usize, max: usize) -> Status {
    Status::new(
        Reason::MessageTooLarge,
        format!("a websocket message of {size} bytes is over the limit of {max} bytes"),
    )
}

/// What woke a session up.
enum Event {
    Frame(Option<Result<Message, WsError>>),
    Tick,
    Shutdown,
    Closed(Status),
    Delivered(Result<wire::Payload, Status>),
}

/// One websocket and its liveness.
struct Conn {
    ws: Ws,
    shared: Arc<Shared>,
    ticker: Interval,
    shutdown: watch::Receiver<bool>,
    last_seen: Instant,
    /// The stream, once known (for logs).
    stream: Option<StreamId>,
    /// Counts the session as live until its last frame is written.
    guard: Option<SessionGuard>,
}

impl Conn {
    fn new(ws: Ws, shared: Arc<Shared>, guard: SessionGuard) -> Conn {
        let period = shared.config.ping_interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown = shared.shutdown.subscribe();
        Conn {
            ws,
            shared,
            ticker,
            shutdown,
            last_seen: Instant::now(),
            stream: None,
            guard: Some(guard),
        }
    }

    /// The stream's short id for logs, `-` before it is known.
    fn label(&self) -> String {
        self.stream
            .map_or_else(|| "-".to_string(), |id| id.to_string())
    }

    /// On a tick: `false` if the client has been silent for two intervals (it is gone),
    /// otherwise pings it.
    async fn keepalive(&mut self) -> bool {
        let silent = self.last_seen.elapsed();
        if silent > self.shared.config.ping_interval.saturating_mul(2) {
            tracing::debug!(stream = %self.label(), "hashmail: dropping a silent websocket");
            return false;
        }
        self.write(Message::Ping(Default::default())).await
    }

    /// Writes a frame within the write timeout; `false` if that failed.
    async fn write(&mut self, message: Message) -> bool {
        let timeout = self.shared.config.write_timeout();
        matches!(
            tokio::time::timeout(timeout, self.ws.send(message)).await,
            Ok(Ok(()))
        )
    }

    /// Ends the session: with an error frame and a close if `status` is set, and in any case
    /// by reading until the client closes too (or a while has passed).
    async fn finish(mut self, status: Option<Status>) {
        if let Some(status) = status {
            tracing::debug!(
                stream = %self.label(),
                code = status.code,
                why = %status.message,
                "hashmail: closing a websocket with an error"
            );
            let frame = wire::encode_error_frame(&status);
            if !self.write(Message::text(frame)).await {
                return;
            }
        }
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: Utf8Bytes::from_static(""),
        }));
        if !self.write(close).await {
            return;
        }
        // The last frames are out: a stopping relay need not wait for the linger below.
        self.guard = None;
        let drain_max = DRAIN_MAX.max(self.shared.config.max_frame_bytes());
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            loop {
                match ws.next().await {
                    Some(Ok(_)) => {}
                    // The websocket cannot read past a frame over the limit; read on as bytes,
                    // so that the rest of that frame does not make the close a reset.
                    Some(Err(WsError::Capacity(_))) => {
                        break drain_raw(ws.get_mut(), drain_max).await
                    }
                    Some(Err(_)) | None => break,
                }
            }
        })
        .await;
    }
}

/// Reads and discards up to `max` bytes, until the client closes.
async fn drain_raw(io: &mut TokioIo<Upgraded>, max: usize) {
    let mut buf = [0u8; 8192];
    let mut total = 0usize;
    while total < max {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

/// A `send` websocket: the first frame names the stream and takes its writer slot; every
/// frame's message is queued for the stream's reader.
pub(super) async fn send_session(ws: Ws, shared: Arc<Shared>, guard: SessionGuard) {
    let mut conn = Conn::new(ws, shared, guard);
    let mut writer: Option<WriterSlot> = None;
    let outcome = loop {
        let event = {
            let closed = async {
                match &writer {
                    Some(slot) => slot.mailbox().closed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                frame = conn.ws.next() => Event::Frame(frame),
                _ = conn.ticker.tick() => Event::Tick,
                _ = conn.shutdown.wait_for(|stopped| *stopped) => Event::Shutdown,
                status = closed => Event::Closed(status),
            }
        };
        match event {
            Event::Frame(frame) => {
                conn.last_seen = Instant::now();
                match classify(frame) {
                    Incoming::Text(text) => {
                        if let Err(status) = on_send_frame(&mut conn, &mut writer, &text).await {
                            break Some(status);
                        }
                        // Waiting for a token or for room does not make the client silent.
                        conn.last_seen = Instant::now();
                    }
                    Incoming::Control => {}
                    Incoming::Binary => break Some(binary_refused()),
                    Incoming::TooLarge { size, max } => break Some(frame_too_large(size, max)),
                    Incoming::End => break None,
                }
            }
            Event::Tick => {
                if !conn.keepalive().await {
                    break None;
                }
            }
            Event::Shutdown => {
                break Some(Status::new(Reason::ShuttingDown, "relay shutting down"))
            }
            Event::Closed(status) => break Some(status),
            Event::Delivered(_) => {}
        }
    };
    // Free the writer slot before lingering on the close.
    drop(writer);
    conn.finish(outcome).await;
}

async fn on_send_frame(
    conn: &mut Conn,
    writer: &mut Option<WriterSlot>,
    text: &str,
) -> Result<(), Status> {
    let (id, payload) = wire::parse_cipher_box(text)?;
    let slot = match writer {
        Some(slot) => {
            if id.is_some_and(|id| id != *slot.mailbox().id()) {
                return Err(Status::invalid(
                    "desc.stream_id changed within one send stream",
                ));
            }
            slot
        }
        None => {
            let id = id.ok_or_else(|| {
                Status::invalid("desc.stream_id is required in the first message")
            })?;
            conn.stream = Some(id);
            let slot = conn.shared.registry.get(&id)?.attach_writer()?;
            tracing::debug!(stream = %id, "hashmail: writer attached");
            writer.insert(slot)
        }
    };
    let max = conn.shared.config.max_message_bytes;
    if payload.len() > max {
        return Err(Status::new(
            Reason::MessageTooLarge,
            format!(
                "a message of {} bytes is over the limit of {max} bytes",
                payload.len()
            ),
        ));
    }
    slot.send(payload).await
}

/// A `receive` websocket: the first frame names the stream and takes its reader slot; then
/// each queued message goes out as a result frame.
pub(super) async fn receive_session(ws: Ws, shared: Arc<Shared>, guard: SessionGuard) {
    let mut conn = Conn::new(ws, shared, guard);
    let outcome = match first_request(&mut conn).await {
        Ok(reader) => deliver(&mut conn, reader).await,
        Err(outcome) => outcome,
    };
    conn.finish(outcome).await;
}

/// Waits for the receive request and takes the reader slot. `Err(None)`: the client left.
async fn first_request(conn: &mut Conn) -> Result<ReaderSlot, Option<Status>> {
    loop {
        let event = tokio::select! {
            frame = conn.ws.next() => Event::Frame(frame),
            _ = conn.ticker.tick() => Event::Tick,
            _ = conn.shutdown.wait_for(|stopped| *stopped) => Event::Shutdown,
        };
        match event {
            Event::Frame(frame) => {
                conn.last_seen = Instant::now();
                match classify(frame) {
                    Incoming::Text(text) => {
                        let id = wire::parse_box_desc(&text)?;
                        conn.stream = Some(id);
                        let slot = conn.shared.registry.get(&id)?.attach_reader()?;
                        tracing::debug!(stream = %id, "hashmail: reader attached");
                        return Ok(slot);
                    }
                    Incoming::Control => {}
                    Incoming::Binary => return Err(Some(binary_refused())),
                    Incoming::TooLarge { size, max } => {
                        return Err(Some(frame_too_large(size, max)))
                    }
                    Incoming::End => return Err(None),
                }
            }
            Event::Tick => {
                if !conn.keepalive().await {
                    return Err(None);
                }
            }
            Event::Shutdown => {
                return Err(Some(Status::new(
                    Reason::ShuttingDown,
                    "relay shutting down",
                )))
            }
            Event::Closed(_) | Event::Delivered(_) => {}
        }
    }
}

/// Sends the stream's messages until the stream closes or the client leaves. A message is
/// taken from the queue only to be written, so one that the client never got is gone, while
/// those still queued wait for the next reader.
async fn deliver(conn: &mut Conn, reader: ReaderSlot) -> Option<Status> {
    loop {
        let event = tokio::select! {
            delivered = reader.recv() => Event::Delivered(delivered),
            frame = conn.ws.next() => Event::Frame(frame),
            _ = conn.ticker.tick() => Event::Tick,
        };
        match event {
            Event::Delivered(Ok(payload)) => {
                let frame = wire::encode_result(reader.mailbox().id_b64(), &payload);
                drop(payload);
                if !conn.write(Message::text(frame)).await {
                    return None;
                }
            }
            // Closed (deleted, expired) or the relay is shutting down.
            Event::Delivered(Err(status)) => return Some(status),
            Event::Frame(frame) => {
                conn.last_seen = Instant::now();
                match classify(frame) {
                    // grpc-gateway reads one request for a server-streaming call; later text
                    // frames are ignored.
                    Incoming::Text(_) | Incoming::Control => {}
                    Incoming::Binary => return Some(binary_refused()),
                    Incoming::TooLarge { size, max } => return Some(frame_too_large(size, max)),
                    Incoming::End => return None,
                }
            }
            Event::Tick => {
                if !conn.keepalive().await {
                    return None;
                }
            }
            Event::Shutdown | Event::Closed(_) => {}
        }
    }
}
