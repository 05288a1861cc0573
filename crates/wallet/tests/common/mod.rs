//! The browser's side, in Rust, for the node side's tests: pairing with a phrase (XX),
//! reconnecting with stored keys (KK), and calls over the tunnel, all through a real relay.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use micronode_api::tokens::{attenuate, Caveats};
use micronode_api::{bearer, ServeOptions, TokenAuthority};
use micronode_lnc::{Handshake, Phrase, PublicKey, SecretKey, StreamIds, Transport};
use micronode_proto::v1::lightning_client::LightningClient;
use micronode_proto::v1::{CreatePairingRequest, ListPairingsRequest};
use micronode_relay::client::{MailboxReceiver, MailboxSender};
use micronode_relay::{RelayConfig, RelayError, RelayHandle, StreamId};
use micronode_testenv::nodes::{Env, TestNode};
use micronode_wallet::WalletLink;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Channel;

/// A bound so that a broken side fails a test instead of hanging it. Not a speed check.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `future`, failing the test if it has not finished by [`DEADLINE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: nothing happened within {DEADLINE:?}"),
    }
}

/// One connected browser.
pub struct Browser {
    pub transport: Transport,
    pub tx: MailboxSender,
    pub rx: MailboxReceiver,
    pub local: SecretKey,
    pub node: PublicKey,
    pub auth: Value,
    next_id: u64,
    pub events: Vec<Value>,
}

/// Opens the client's ends of `ids`, waiting up to `wait` while the node has not created them.
async fn open(
    relay: &str,
    ids: &StreamIds,
    wait: Duration,
) -> Result<(MailboxSender, MailboxReceiver), RelayError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let opened = async {
            let tx = MailboxSender::connect(relay, &StreamId::new(ids.client_to_server)).await?;
            let rx = MailboxReceiver::connect(relay, &StreamId::new(ids.server_to_client)).await?;
            Ok::<_, RelayError>((tx, rx))
        }
        .await;
        match opened {
            Err(RelayError::NotFound(_) | RelayError::Busy(_)) | Err(RelayError::Io { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => return other,
        }
    }
}

/// Sends act 1 and reads the node's act 2 (within 10 s).
async fn acts_one_and_two(
    hs: &mut Handshake,
    tx: &mut MailboxSender,
    rx: &mut MailboxReceiver,
) -> Result<(), String> {
    tx.send(&hs.write_act().unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let act2 = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .map_err(|_| "no act 2".to_string())?
        .map_err(|e| e.to_string())?;
    hs.read_act(&act2).map_err(|e| e.to_string())
}

impl Browser {
    /// Pairs with the phrase (XX). `Err` carries the handshake or relay error.
    pub async fn pair(relay: &str, phrase: &Phrase) -> Result<Browser, String> {
        Self::pair_within(relay, phrase, DEADLINE).await
    }

    /// [`Browser::pair`], waiting at most `wait` for the node's streams.
    pub async fn pair_within(
        relay: &str,
        phrase: &Phrase,
        wait: Duration,
    ) -> Result<Browser, String> {
        let (mut tx, mut rx) = open(relay, &StreamIds::from_phrase(phrase), wait)
            .await
            .map_err(|e| e.to_string())?;
        let local = SecretKey::new(&mut rand::thread_rng());
        let stretched = {
            let phrase = phrase.clone();
            tokio::task::spawn_blocking(move || phrase.stretch())
                .await
                .unwrap()
        };
        let mut hs = Handshake::xx_initiator(local, stretched, Handshake::random_ephemeral());
        acts_one_and_two(&mut hs, &mut tx, &mut rx).await?;
        tx.send(&hs.write_act().unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let paired = hs.finish().map_err(|e| e.to_string())?;
        // The pairing connection carries the handshake only: come back with KK.
        tx.close().await;
        rx.close().await;
        Self::reconnect(relay, local, paired.remote_static).await
    }

    /// Reconnects with the stored keys (KK).
    pub async fn reconnect(
        relay: &str,
        local: SecretKey,
        node: PublicKey,
    ) -> Result<Browser, String> {
        let ids = StreamIds::from_static_keys(&local, &node);
        let (mut tx, mut rx) = open(relay, &ids, DEADLINE)
            .await
            .map_err(|e| e.to_string())?;
        let mut hs = Handshake::kk_initiator(local, node, Handshake::random_ephemeral());
        acts_one_and_two(&mut hs, &mut tx, &mut rx).await?;
        Self::finish(hs, tx, rx, local)
    }

    fn finish(
        hs: Handshake,
        tx: MailboxSender,
        rx: MailboxReceiver,
        local: SecretKey,
    ) -> Result<Browser, String> {
        let done = hs.finish().map_err(|e| e.to_string())?;
        let auth = serde_json::from_slice(&done.auth_data).map_err(|e| e.to_string())?;
        Ok(Browser {
            transport: done.transport,
            tx,
            rx,
            local,
            node: done.remote_static,
            auth,
            next_id: 1,
            events: Vec::new(),
        })
    }

    /// Sends one request and returns its whole reply (`result` or `error`).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({"id": id, "method": method, "params": params});
        self.send_raw(&serde_json::to_vec(&request).unwrap()).await;
        loop {
            let message = self.next_message().await;
            if message.get("event").is_some() {
                self.events.push(message["event"].clone());
                continue;
            }
            if message["id"] == json!(id) {
                return message;
            }
        }
    }

    /// Encrypts and sends bytes as one frame; returns the frame.
    pub async fn send_raw(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let frame = self.transport.encrypt(plaintext).unwrap();
        self.tx.send(&frame).await.expect("send a frame");
        frame
    }

    /// The next message from the node.
    pub async fn next_message(&mut self) -> Value {
        let frame = within("a message from the node", self.rx.recv())
            .await
            .expect("the relay delivers");
        let plaintext = self
            .transport
            .decrypt(&frame)
            .expect("a frame from the node");
        serde_json::from_slice(&plaintext).expect("JSON from the node")
    }

    /// Waits for an event of `kind`.
    pub async fn event(&mut self, kind: &str) -> Value {
        if let Some(pos) = self.events.iter().position(|e| e["kind"] == kind) {
            return self.events.remove(pos);
        }
        loop {
            let message = self.next_message().await;
            if message["event"]["kind"] == kind {
                return message["event"].clone();
            }
        }
    }
}

/// A tenant node with tokens, a relay, the node's wallet link and its API.
pub struct World {
    pub _env: Env,
    pub node: Arc<TestNode>,
    pub relay: RelayHandle,
    pub link: Arc<WalletLink>,
    pub tokens: TokenAuthority,
    pub api: String,
    pub admin: String,
    pub _stop: watch::Sender<bool>,
}

pub fn rights(methods: &[&str]) -> Caveats {
    Caveats {
        methods: methods.iter().map(|m| m.to_string()).collect(),
        expires_at: None,
        budgets: Vec::new(),
        max_payment_sat: None,
    }
}

pub async fn start_relay(addr: &str) -> RelayHandle {
    let listener = TcpListener::bind(addr).await.expect("bind the relay");
    RelayHandle::start(listener, RelayConfig::default()).expect("relay")
}

impl World {
    pub async fn new(tag: &str) -> World {
        let env = Env::new(tag).await;
        let node = Arc::new(env.start_node("tenant").await);
        let data_dir = node.config().data_dir.clone();
        let node_id = node.node_id().to_string();
        let admin = TokenAuthority::init_stateless(&data_dir, &node_id).expect("tokens");
        let tokens = TokenAuthority::open(&data_dir, &node_id).expect("open tokens");
        let relay = start_relay("127.0.0.1:0").await;
        let (stop, stop_rx) = watch::channel(false);
        let link = micronode_wallet::start_for_node(
            node.clone(),
            Arc::new(tokens.clone()),
            &relay.url(),
            None,
            stop_rx,
        )
        .await
        .expect("wallet link");
        let options = ServeOptions {
            pairing: Some(link.clone()),
            ..ServeOptions::default()
        };
        let (addr, _task) = micronode_api::serve_with(
            node.clone(),
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(tokens.clone()),
            std::future::pending(),
            options,
        )
        .await
        .expect("serve");
        World {
            _env: env,
            node,
            relay,
            link,
            tokens,
            api: format!("http://{addr}"),
            admin,
            _stop: stop,
        }
    }

    pub async fn client(&self) -> LightningClient<Channel> {
        let channel = Channel::from_shared(self.api.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        LightningClient::new(channel)
    }

    pub fn token(&self, methods: &[&str]) -> String {
        attenuate(&self.admin, &rights(methods)).expect("attenuate")
    }

    pub fn request<T>(message: T, token: &str) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", bearer(token).parse().unwrap());
        request
    }

    /// Registers a session handing out `token`, as its holder; returns the phrase.
    pub async fn create_session(&self, token: &str) -> Phrase {
        let phrase = Phrase::generate();
        let request = create_request(&phrase, token);
        self.client()
            .await
            .create_pairing(Self::request(request, token))
            .await
            .expect("create a pairing session");
        phrase
    }

    pub async fn session_state(&self, token: &str) -> String {
        let list = self
            .client()
            .await
            .list_pairings(Self::request(ListPairingsRequest {}, token))
            .await
            .expect("list")
            .into_inner();
        assert_eq!(list.sessions.len(), 1, "a token sees its own session only");
        list.sessions[0].state.clone()
    }
}

pub fn create_request(phrase: &Phrase, token: &str) -> CreatePairingRequest {
    let auth = json!({"version": 1, "token": token, "label": "phone", "sealed_app_key": null});
    CreatePairingRequest {
        label: "phone".into(),
        expires_at: now() + 3600,
        password: phrase.stretch().as_bytes().to_vec(),
        stream_id: StreamIds::from_phrase(phrase).server_to_client.to_vec(),
        auth_data: serde_json::to_vec(&auth).unwrap(),
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
