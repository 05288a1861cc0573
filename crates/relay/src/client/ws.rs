//! The websocket halves of a stream: [`MailboxSender`] writes, [`MailboxReceiver`] reads.
//!
//! HashMail acknowledges nothing on a send stream, so each [`MailboxSender::send`] follows its
//! frame with a websocket ping and waits for the pong: the relay handles frames in order, so
//! the pong means the message was queued, and an error frame instead says why not. The relay
//! answers pings on its own; no HashMail message is added. [`MailboxReceiver::connect`] does
//! the same after its request, so a missing or occupied stream is reported there.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::{connect_async_with_config, MaybeTlsStream, WebSocketStream};

use super::{AbortOnDrop, RelayUrl};
use crate::error::RelayError;
use crate::stream_id::StreamId;
use crate::wire::{self, ServerFrame};
use crate::{RECEIVE_PATH, SEND_PATH};

type ClientWs = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The largest websocket message accepted from a relay (1 MiB; a 64 KiB message is about
/// 88 KiB of JSON).
const MAX_INCOMING_BYTES: usize = 1024 * 1024;

/// How many messages [`MailboxReceiver::connect`] keeps that arrive before the relay's pong.
const MAX_EARLY_MESSAGES: usize = 4096;

/// How long a sender waits for the relay to say why it closed, after a failed write.
const REASON_WAIT: Duration = Duration::from_secs(5);

async fn open(base_url: &str, route: &str) -> Result<ClientWs, RelayError> {
    let url = RelayUrl::parse(base_url)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_INCOMING_BYTES))
        .max_frame_size(Some(MAX_INCOMING_BYTES));
    match connect_async_with_config(url.websocket(route), Some(config), true).await {
        Ok((ws, _response)) => Ok(ws),
        // The relay refused the upgrade; its body may say why.
        Err(WsError::Http(response)) => {
            let status = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
                .as_ref()
                .and_then(wire::decode_status);
            Err(match status {
                Some(status) => RelayError::from_status(status),
                None => RelayError::Protocol(format!(
                    "the relay refused the websocket with HTTP {}",
                    response.status()
                )),
            })
        }
        Err(e) => Err(RelayError::websocket("connecting to the relay", e)),
    }
}

/// What the task reading a send stream's socket reports.
enum SenderEvent {
    Pong(Bytes),
    Failed(RelayError),
}

/// The writing end of a stream: a websocket to the relay's `send` route.
pub struct MailboxSender {
    sink: SplitSink<ClientWs, Message>,
    events: mpsc::Receiver<SenderEvent>,
    _reader: AbortOnDrop,
    id: StreamId,
    pings: u64,
    done: bool,
}

impl fmt::Debug for MailboxSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailboxSender")
            .field("id", &self.id)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl MailboxSender {
    /// Opens a websocket to write the stream `id` on the relay at `base_url`. The relay learns
    /// the stream with the first message, so a missing or occupied stream is reported by the
    /// first [`send`](Self::send).
    pub async fn connect(base_url: &str, id: &StreamId) -> Result<MailboxSender, RelayError> {
        let ws = open(base_url, SEND_PATH).await?;
        let (sink, stream) = ws.split();
        let (events_tx, events) = mpsc::channel(16);
        let reader = AbortOnDrop(tokio::spawn(watch_send_stream(stream, events_tx)));
        Ok(MailboxSender {
            sink,
            events,
            _reader: reader,
            id: *id,
            pings: 0,
            done: false,
        })
    }

    /// The stream written.
    pub fn stream_id(&self) -> &StreamId {
        &self.id
    }

    /// Sends one message and waits until the relay has queued it for the stream's reader
    /// (which makes a full queue or the rate limit slow this down).
    ///
    /// Errors: [`RelayError::NotFound`] (no such stream, or it was deleted or expired),
    /// [`RelayError::Busy`] (another writer), [`RelayError::TooLarge`],
    /// [`RelayError::RateLimited`], [`RelayError::Closed`] (the connection ended). After an
    /// error the sender is done: every later call answers [`RelayError::Closed`].
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), RelayError> {
        if self.done {
            return Err(RelayError::Closed);
        }
        // Anything the relay said since the last call.
        loop {
            match self.events.try_recv() {
                Ok(SenderEvent::Pong(_)) => {}
                Ok(SenderEvent::Failed(e)) => return self.fail(e),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    return self.fail(RelayError::Closed)
                }
            }
        }
        self.pings += 1;
        let token = Bytes::copy_from_slice(&self.pings.to_be_bytes());
        let frame = wire::encode_cipher_box(&self.id, msg);
        let written = async {
            self.sink.feed(Message::text(frame)).await?;
            self.sink.feed(Message::Ping(token.clone())).await?;
            self.sink.flush().await
        }
        .await;
        if let Err(e) = written {
            let why = self.reason_after_write_error(e).await;
            return self.fail(why);
        }
        loop {
            match self.events.recv().await {
                Some(SenderEvent::Pong(pong)) if pong == token => return Ok(()),
                Some(SenderEvent::Pong(_)) => {}
                Some(SenderEvent::Failed(e)) => return self.fail(e),
                None => return self.fail(RelayError::Closed),
            }
        }
    }

    /// Closes the websocket (the stream stays on the relay for another writer).
    pub async fn close(mut self) {
        self.done = true;
        let _ = self.sink.send(Message::Close(None)).await;
        let _ = self.sink.close().await;
    }

    fn fail(&mut self, error: RelayError) -> Result<(), RelayError> {
        self.done = true;
        Err(error)
    }

    /// After a write failed: the relay's error frame, if it sent one before closing.
    async fn reason_after_write_error(&mut self, error: WsError) -> RelayError {
        let reason = tokio::time::timeout(REASON_WAIT, async {
            loop {
                match self.events.recv().await {
                    Some(SenderEvent::Pong(_)) => {}
                    Some(SenderEvent::Failed(e)) => return Some(e),
                    None => return None,
                }
            }
        })
        .await;
        match reason {
            Ok(Some(reason)) => reason,
            _ => RelayError::websocket("writing to the relay", error),
        }
    }
}

/// Reads a send stream's socket: pongs, and the relay's error before it closes. Reading also
/// answers the relay's pings, which keeps the connection alive between messages.
async fn watch_send_stream(mut stream: SplitStream<ClientWs>, events: mpsc::Sender<SenderEvent>) {
    let failure = loop {
        match stream.next().await {
            Some(Ok(Message::Pong(pong))) => {
                if events.send(SenderEvent::Pong(pong)).await.is_err() {
                    return;
                }
            }
            Some(Ok(Message::Text(text))) => {
                break match wire::decode_server_frame(&text) {
                    Ok(ServerFrame::Error(status)) => RelayError::from_status(status),
                    Ok(ServerFrame::Message(..)) => {
                        RelayError::Protocol("the relay sent a message on a send stream".into())
                    }
                    Err(e) => RelayError::Protocol(e),
                }
            }
            Some(Ok(Message::Binary(_))) => {
                break RelayError::Protocol("the relay sent a binary frame".into())
            }
            Some(Ok(Message::Ping(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(_))) | None => break RelayError::Closed,
            Some(Err(e)) => break RelayError::websocket("reading from the relay", e),
        }
    };
    let _ = events.send(SenderEvent::Failed(failure)).await;
    // Read on, so that the relay's close is answered.
    while let Some(Ok(_)) = stream.next().await {}
}

/// The reading end of a stream: a websocket to the relay's `receive` route.
pub struct MailboxReceiver {
    ws: ClientWs,
    id: StreamId,
    early: VecDeque<Vec<u8>>,
    done: bool,
}

impl fmt::Debug for MailboxReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailboxReceiver")
            .field("id", &self.id)
            .field("buffered", &self.early.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl MailboxReceiver {
    /// Opens a websocket to read the stream `id` on the relay at `base_url`, and waits until
    /// the relay has made it the stream's reader.
    ///
    /// Errors: [`RelayError::NotFound`], [`RelayError::Busy`] (another reader),
    /// [`RelayError::Closed`].
    pub async fn connect(base_url: &str, id: &StreamId) -> Result<MailboxReceiver, RelayError> {
        let mut ws = open(base_url, RECEIVE_PATH).await?;
        let token = Bytes::from_static(b"micronode-relay-receive");
        let sent = async {
            ws.feed(Message::text(wire::encode_box_desc(id))).await?;
            ws.feed(Message::Ping(token.clone())).await?;
            ws.flush().await
        }
        .await;
        sent.map_err(|e| RelayError::websocket("sending the receive request", e))?;
        let mut receiver = MailboxReceiver {
            ws,
            id: *id,
            early: VecDeque::new(),
            done: false,
        };
        loop {
            match receiver.next_frame().await? {
                Frame::Pong(pong) if pong == token => return Ok(receiver),
                Frame::Pong(_) => {}
                Frame::Message(msg) => {
                    if receiver.early.len() >= MAX_EARLY_MESSAGES {
                        return Err(RelayError::Protocol(
                            "the relay never answered the receive request".into(),
                        ));
                    }
                    receiver.early.push_back(msg);
                }
            }
        }
    }

    /// The stream read.
    pub fn stream_id(&self) -> &StreamId {
        &self.id
    }

    /// The next message, waiting for one. Cancel-safe.
    ///
    /// Errors: [`RelayError::NotFound`] when the stream is deleted or expires,
    /// [`RelayError::Closed`] when the connection ends (the relay shut down or restarted).
    /// After an error every later call answers [`RelayError::Closed`].
    pub async fn recv(&mut self) -> Result<Vec<u8>, RelayError> {
        if let Some(msg) = self.early.pop_front() {
            return Ok(msg);
        }
        loop {
            if let Frame::Message(msg) = self.next_frame().await? {
                return Ok(msg);
            }
        }
    }

    /// Closes the websocket (the stream stays on the relay for another reader).
    pub async fn close(mut self) {
        self.done = true;
        let _ = self.ws.close(None).await;
    }

    async fn next_frame(&mut self) -> Result<Frame, RelayError> {
        if self.done {
            return Err(RelayError::Closed);
        }
        let result = self.read_frame().await;
        if result.is_err() {
            self.done = true;
        }
        result
    }

    async fn read_frame(&mut self) -> Result<Frame, RelayError> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return match wire::decode_server_frame(&text) {
                        Ok(ServerFrame::Message(id, msg)) => {
                            if id.is_some_and(|id| id != self.id) {
                                return Err(RelayError::Protocol(
                                    "the relay sent a message of another stream".into(),
                                ));
                            }
                            Ok(Frame::Message(msg.into_bytes()))
                        }
                        Ok(ServerFrame::Error(status)) => Err(RelayError::from_status(status)),
                        Err(e) => Err(RelayError::Protocol(e)),
                    };
                }
                Some(Ok(Message::Pong(pong))) => return Ok(Frame::Pong(pong)),
                Some(Ok(Message::Binary(_))) => {
                    return Err(RelayError::Protocol("the relay sent a binary frame".into()))
                }
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_))) | None => return Err(RelayError::Closed),
                Some(Err(e)) => return Err(RelayError::websocket("reading from the relay", e)),
            }
        }
    }
}

enum Frame {
    Pong(Bytes),
    Message(Vec<u8>),
}
