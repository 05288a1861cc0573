//! One session's node side: dial out to the relay, wait for the browser's act 1, run the
//! handshake, then serve the wallet API over the tunnel until the connection ends; again, until
//! the session ends. The first connection, on the phrase's streams, is XX with the phrase's
//! password and carries nothing else; every connection after it, the browser's first included,
//! is KK on the streams of the two static keys.
//!
//! The phrase gets one attempt: an XX handshake that fails after its act 1 (a wrong phrase, a
//! forged act, a browser that never finishes) ends the session for good. A failed KK act 1 is
//! only dropped. When the relay goes away, the node waits (1 s, doubling to 30 s), creates the
//! streams again and waits for a new handshake; a frame that does not decrypt is read as a new
//! act 1 (the browser reconnected), so no frame is ever accepted under a stale key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use micronode_lnc::{Handshake, PublicKey, SecretKey, StreamIds, Transport};
use micronode_relay::client::{create_stream, delete_stream, MailboxReceiver, MailboxSender};
use micronode_relay::{RelayError, StreamId};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::sessions::{SessionRecord, SessionState, SessionStore};
use crate::tunnel::{event_json, TunnelApi, TunnelError};

/// How long the browser has to send act 3 after act 2.
const ACT_THREE_TIMEOUT: Duration = Duration::from_secs(60);
/// Requests one connection may have in flight.
const MAX_IN_FLIGHT: usize = 16;
/// The longest wait between attempts to reach the relay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What one session's task needs.
pub(crate) struct Runner {
    pub store: Arc<SessionStore>,
    pub relay_url: String,
    pub api: TunnelApi,
    pub id: String,
    pub stop: watch::Receiver<bool>,
    pub connected: Arc<Mutex<std::collections::HashSet<String>>>,
}

/// Why serving a connection ended.
enum Ended {
    /// The session is over (revoked, expired, failed, or the node stops).
    Session,
    /// The mailbox connection broke: connect again.
    Connection(String),
    /// A message that may be a new handshake's act 1 arrived on the same streams.
    Rehandshake(Vec<u8>),
}

impl Runner {
    /// Runs the session until it ends.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let Some(record) = self.store.get(&self.id) else {
                return;
            };
            if !record.state.is_live() || *self.stop.borrow() {
                self.delete_streams(&record).await;
                return;
            }
            if record.expires_at <= crate::now_secs() {
                self.end(SessionState::Expired, "the session reached its expiry")
                    .await;
                continue;
            }
            match self.connection(&record).await {
                Ended::Session => continue,
                Ended::Connection(why) => {
                    tracing::debug!(session = %self.id, %why, "relay connection ended");
                    if self.pause(backoff).await {
                        continue;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                // Handled inside a connection; never returned from it.
                Ended::Rehandshake(_) => {}
            }
        }
    }

    /// Sleeps `wait` unless the session stops first; `true` if it stopped.
    async fn pause(&mut self, wait: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = self.stop.changed() => true,
        }
    }

    fn streams(record: &SessionRecord) -> Option<StreamIds> {
        let node = node_key(record)?;
        match record.state {
            SessionState::Waiting => crate::phrase_stream_ids(record),
            _ => {
                let client = client_key(record)?;
                Some(StreamIds::from_static_keys(&node, &client))
            }
        }
    }

    /// Deletes the session's streams on the relay: the current ones and the phrase's.
    async fn delete_streams(&self, record: &SessionRecord) {
        let mut ids = crate::phrase_streams(record);
        if let Some(current) = Self::streams(record) {
            ids.push(StreamId::new(current.server_to_client));
            ids.push(StreamId::new(current.client_to_server));
        }
        for sid in ids {
            let _ = delete_stream(&self.relay_url, &sid).await;
        }
    }

    /// After pairing, the phrase's streams serve nobody: delete them and forget them.
    async fn forget_phrase_streams(&self, record: &SessionRecord) {
        if record.state != SessionState::Paired || record.phrase_stream.is_none() {
            return;
        }
        for sid in crate::phrase_streams(record) {
            let _ = delete_stream(&self.relay_url, &sid).await;
        }
        let store = self.store.clone();
        let id = self.id.clone();
        let _ = tokio::task::spawn_blocking(move || store.update(&id, |r| r.phrase_stream = None))
            .await;
    }

    async fn end(&self, state: SessionState, reason: &str) {
        if let Some(record) = self.store.get(&self.id) {
            self.delete_streams(&record).await;
        }
        let store = self.store.clone();
        let (id, reason) = (self.id.clone(), reason.to_string());
        let saved = tokio::task::spawn_blocking(move || {
            store.update(&id, |r| {
                if r.state.is_live() {
                    r.end(state, &reason)
                }
            })
        })
        .await;
        if !matches!(saved, Ok(Ok(_))) {
            tracing::error!(session = %self.id, "could not record the end of a pairing session");
        }
        tracing::info!(session = %self.id, state = state.as_str(), "pairing session ended");
    }

    /// One mailbox connection: streams, handshakes, serving.
    async fn connection(&mut self, record: &SessionRecord) -> Ended {
        self.forget_phrase_streams(record).await;
        let Some(ids) = Self::streams(record) else {
            self.end(
                SessionState::Failed,
                "the session's stored keys are damaged",
            )
            .await;
            return Ended::Session;
        };
        let (inbound, outbound) = (
            StreamId::new(ids.client_to_server),
            StreamId::new(ids.server_to_client),
        );
        for sid in [&inbound, &outbound] {
            match create_stream(&self.relay_url, sid).await {
                Ok(()) | Err(RelayError::AlreadyExists) => {}
                Err(e) => return Ended::Connection(e.to_string()),
            }
        }
        let mut receiver = match MailboxReceiver::connect(&self.relay_url, &inbound).await {
            Ok(r) => r,
            Err(e) => return Ended::Connection(e.to_string()),
        };
        let mut sender = match MailboxSender::connect(&self.relay_url, &outbound).await {
            Ok(s) => s,
            Err(e) => return Ended::Connection(e.to_string()),
        };
        let mut pending: Option<Vec<u8>> = None;
        loop {
            let act1 = match pending.take() {
                Some(act) => act,
                None => match self.next_message(&mut receiver).await {
                    Ok(act) => act,
                    Err(ended) => return ended,
                },
            };
            let Some(record) = self.store.get(&self.id) else {
                return Ended::Session;
            };
            let transport = match record.state {
                // The pairing connection carries the handshake only: the browser then comes
                // back with KK on the streams of the two static keys.
                SessionState::Waiting => {
                    return match self.pair(&record, &act1, &mut receiver, &mut sender).await {
                        Ok(()) => Ended::Session,
                        Err(ended) => ended,
                    }
                }
                SessionState::Paired => match self.reconnect(&record, &act1, &mut sender).await {
                    Ok(Some(t)) => t,
                    Ok(None) => continue,
                    Err(ended) => return ended,
                },
                _ => return Ended::Session,
            };
            self.seen(true).await;
            let ended = self.serve(transport, &mut receiver, &mut sender).await;
            self.seen(false).await;
            match ended {
                Ended::Rehandshake(act) => pending = Some(act),
                other => return other,
            }
        }
    }

    async fn next_message(&mut self, receiver: &mut MailboxReceiver) -> Result<Vec<u8>, Ended> {
        let expires_at = self.store.get(&self.id).map(|r| r.expires_at).unwrap_or(0);
        let until_expiry = Duration::from_secs(expires_at.saturating_sub(crate::now_secs()));
        tokio::select! {
            message = receiver.recv() => message.map_err(|e| Ended::Connection(e.to_string())),
            _ = self.stop.changed() => Err(Ended::Session),
            _ = tokio::time::sleep(until_expiry) => {
                self.end(SessionState::Expired, "the session reached its expiry").await;
                Err(Ended::Session)
            }
        }
    }

    /// The first connection: XX with the phrase's password. Any failure ends the session.
    async fn pair(
        &mut self,
        record: &SessionRecord,
        act1: &[u8],
        receiver: &mut MailboxReceiver,
        sender: &mut MailboxSender,
    ) -> Result<(), Ended> {
        let outcome = self.run_xx(record, act1, receiver, sender).await;
        match outcome {
            Ok(client) => {
                let store = self.store.clone();
                let id = self.id.clone();
                let client_hex = hex::encode(client.serialize());
                let saved = tokio::task::spawn_blocking(move || {
                    store.update(&id, |r| {
                        r.state = SessionState::Paired;
                        r.client_static = Some(client_hex);
                        r.paired_at = Some(crate::now_secs());
                        r.password = None;
                    })
                })
                .await;
                if !matches!(saved, Ok(Ok(Some(_)))) {
                    tracing::error!(session = %self.id, "could not record a pairing");
                    return Err(Ended::Session);
                }
                tracing::info!(session = %self.id, "browser paired");
                Ok(())
            }
            Err(why) => {
                tracing::warn!(session = %self.id, %why, "pairing handshake failed; the session ends");
                self.end(
                    SessionState::Failed,
                    "a pairing attempt failed (wrong phrase or interrupted); make a new session",
                )
                .await;
                Err(Ended::Session)
            }
        }
    }

    async fn run_xx(
        &mut self,
        record: &SessionRecord,
        act1: &[u8],
        receiver: &mut MailboxReceiver,
        sender: &mut MailboxSender,
    ) -> Result<PublicKey, String> {
        let node = node_key(record).ok_or("damaged node key")?;
        let password = record
            .password
            .as_deref()
            .and_then(|p| hex::decode(p).ok())
            .and_then(|p| <[u8; 32]>::try_from(p).ok())
            .ok_or("damaged password")?;
        let mut handshake = Handshake::xx_responder(
            node,
            micronode_lnc::Password::from_bytes(password),
            Handshake::random_ephemeral(),
            record.auth_data.as_bytes().to_vec(),
        );
        handshake.read_act(act1).map_err(|e| e.to_string())?;
        let act2 = handshake.write_act().map_err(|e| e.to_string())?;
        sender.send(&act2).await.map_err(|e| e.to_string())?;
        let act3 = tokio::time::timeout(ACT_THREE_TIMEOUT, receiver.recv())
            .await
            .map_err(|_| "no act 3 in time".to_string())?
            .map_err(|e| e.to_string())?;
        handshake.read_act(&act3).map_err(|e| e.to_string())?;
        let done = handshake.finish().map_err(|e| e.to_string())?;
        Ok(done.remote_static)
    }

    /// A later connection: KK with the stored keys. A bad act 1 is dropped (`Ok(None)`).
    async fn reconnect(
        &mut self,
        record: &SessionRecord,
        act1: &[u8],
        sender: &mut MailboxSender,
    ) -> Result<Option<Transport>, Ended> {
        let (Some(node), Some(client)) = (node_key(record), client_key(record)) else {
            self.end(
                SessionState::Failed,
                "the session's stored keys are damaged",
            )
            .await;
            return Err(Ended::Session);
        };
        let mut handshake = Handshake::kk_responder(
            node,
            client,
            Handshake::random_ephemeral(),
            record.auth_data.as_bytes().to_vec(),
        );
        if let Err(e) = handshake.read_act(act1) {
            tracing::debug!(session = %self.id, error = %e, "dropped a message that is not a handshake");
            return Ok(None);
        }
        let act2 = handshake
            .write_act()
            .map_err(|e| Ended::Connection(e.to_string()))?;
        sender
            .send(&act2)
            .await
            .map_err(|e| Ended::Connection(e.to_string()))?;
        let done = handshake
            .finish()
            .map_err(|e| Ended::Connection(e.to_string()))?;
        Ok(Some(done.transport))
    }

    async fn seen(&self, connected: bool) {
        {
            let mut set = self.connected.lock().unwrap_or_else(|e| e.into_inner());
            if connected {
                set.insert(self.id.clone());
            } else {
                set.remove(&self.id);
            }
        }
        let store = self.store.clone();
        let id = self.id.clone();
        let _ = tokio::task::spawn_blocking(move || {
            store.update(&id, |r| r.last_seen = Some(crate::now_secs()))
        })
        .await;
    }

    /// Serves requests until the connection ends.
    async fn serve(
        &mut self,
        transport: Transport,
        receiver: &mut MailboxReceiver,
        sender: &mut MailboxSender,
    ) -> Ended {
        let transport = Arc::new(Mutex::new(transport));
        let (out_tx, mut out_rx) = mpsc::channel::<Value>(64);
        let mut tasks = JoinSet::new();
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut subscribed = false;
        let expires_at = self.store.get(&self.id).map(|r| r.expires_at).unwrap_or(0);
        let expiry = tokio::time::sleep(Duration::from_secs(
            expires_at.saturating_sub(crate::now_secs()),
        ));
        tokio::pin!(expiry);
        loop {
            let frame = tokio::select! {
                _ = &mut expiry => {
                    self.end(SessionState::Expired, "the session reached its expiry").await;
                    return Ended::Session;
                }
                frame = receiver.recv() => match frame {
                    Ok(frame) => frame,
                    Err(e) => return Ended::Connection(e.to_string()),
                },
                Some(reply) = out_rx.recv() => {
                    if let Err(ended) = send_json(&transport, sender, &reply).await {
                        return ended;
                    }
                    continue;
                }
                _ = self.stop.changed() => return Ended::Session,
            };
            let opened = transport
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .decrypt(&frame);
            let Ok(plaintext) = opened else {
                // A browser that reconnected starts with a new act 1; anything else that does
                // not decrypt ends this connection, and is then tried as an act 1.
                tasks.abort_all();
                return Ended::Rehandshake(frame);
            };
            let Ok(message) = serde_json::from_slice::<Value>(&plaintext) else {
                let error = TunnelError::bad_request("a request must be a JSON object");
                let _ = out_tx.try_send(error_reply(Value::Null, &error));
                continue;
            };
            let id = message.get("id").cloned().unwrap_or(Value::Null);
            let method = message.get("method").and_then(Value::as_str).unwrap_or("");
            let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
            if method == "subscribe" {
                if !subscribed {
                    subscribed = true;
                    tasks.spawn(forward_events(self.api.clone(), out_tx.clone()));
                }
                let _ = out_tx.send(json!({"id": id, "result": {}})).await;
                continue;
            }
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                let error = TunnelError {
                    code: "RATE_LIMITED".into(),
                    message: format!("at most {MAX_IN_FLIGHT} requests at once"),
                };
                let _ = out_tx.try_send(error_reply(id, &error));
                continue;
            };
            let (api, out, method) = (self.api.clone(), out_tx.clone(), method.to_string());
            tasks.spawn(async move {
                let reply = match api.call(&method, params).await {
                    Ok(result) => json!({"id": id, "result": result}),
                    Err(error) => error_reply(id, &error),
                };
                let _ = out.send(reply).await;
                drop(permit);
            });
        }
    }
}

fn error_reply(id: Value, error: &TunnelError) -> Value {
    json!({"id": id, "error": {"code": error.code, "message": error.message}})
}

async fn send_json(
    transport: &Mutex<Transport>,
    sender: &mut MailboxSender,
    reply: &Value,
) -> Result<(), Ended> {
    let mut bytes = serde_json::to_vec(reply).unwrap_or_default();
    if bytes.len() > micronode_lnc::transport::MAX_MESSAGE {
        let error = TunnelError {
            code: "RESOURCE_EXHAUSTED".into(),
            message: "the answer is too large; ask for fewer items".into(),
        };
        bytes = serde_json::to_vec(&error_reply(reply["id"].clone(), &error)).unwrap_or_default();
    }
    let frame = transport
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .encrypt(&bytes)
        .map_err(|e| Ended::Connection(e.to_string()))?;
    sender
        .send(&frame)
        .await
        .map_err(|e| Ended::Connection(e.to_string()))
}

async fn forward_events(api: TunnelApi, out: mpsc::Sender<Value>) {
    let Ok(request) = api.subscribe_request() else {
        return;
    };
    let Ok(response) = api.client().subscribe_events(request).await else {
        return;
    };
    let mut events = response.into_inner();
    while let Some(Ok(event)) = events.next().await {
        if let Some(json) = event_json(event) {
            if out.send(json!({"event": json})).await.is_err() {
                return;
            }
        }
    }
}

fn node_key(record: &SessionRecord) -> Option<SecretKey> {
    let bytes = hex::decode(&record.node_static).ok()?;
    SecretKey::from_slice(&bytes).ok()
}

fn client_key(record: &SessionRecord) -> Option<PublicKey> {
    let bytes = hex::decode(record.client_static.as_deref()?).ok()?;
    PublicKey::from_slice(&bytes).ok()
}
