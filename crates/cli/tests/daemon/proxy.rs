//! A compromised operator, played in the test: it sits between the node and the tenant's
//! signer (the operator controls the node's host, so it sees every request the node makes),
//! records the traffic, can rewrite the node's next request of a kind, and can cut the node
//! off and send its own requests to the signer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use micronode_link::{
    ConnectMode, LinkConnector, LinkIdentity, LinkListener, PairingCode, PairingStore,
};
use micronode_node::remote::protocol::{
    RequestEnvelope, ResponseEnvelope, SignerRequest, SignerResponse,
};
use tokio::sync::{mpsc, oneshot};

/// Ids of the operator's own requests start here, far from the node's.
const INJECTED_IDS: u64 = 1 << 62;

type Pending = Arc<Mutex<Vec<(u64, oneshot::Sender<SignerResponse>)>>>;

/// Rewrites a node request in flight; returns `true` when it did (and is then done).
pub type Tamper = Box<dyn FnMut(&mut SignerRequest) -> bool + Send>;

/// A rewrite waiting for its request, and where to report the signer's answer to it.
type Tampering = Arc<Mutex<Option<(Tamper, oneshot::Sender<SignerResponse>)>>>;

/// Applies a pending rewrite to `envelope`; the new bytes if it applied.
fn rewrite(
    tamper: &Tampering,
    rewritten: &Pending,
    mut envelope: RequestEnvelope,
) -> Option<Vec<u8>> {
    let mut slot = tamper.lock().expect("lock");
    let (f, _) = slot.as_mut()?;
    if !f(&mut envelope.request) {
        return None;
    }
    let (_, report) = slot.take().expect("tamper");
    rewritten.lock().expect("lock").push((envelope.id, report));
    Some(serde_json::to_vec(&envelope).expect("encode"))
}

/// The man in the middle.
pub struct SignerProxy {
    /// Where the signer dials.
    pub listen: String,
    /// The pairing code the signer must be given.
    pub code: String,
    recorded: Arc<Mutex<Vec<SignerRequest>>>,
    cut_off: Arc<AtomicBool>,
    tampering: Tampering,
    inject: mpsc::UnboundedSender<(u64, SignerRequest, oneshot::Sender<SignerResponse>)>,
    next_id: AtomicU64,
    _dir: tempfile::TempDir,
}

impl SignerProxy {
    /// Listens for the signer; once it is connected, pairs with the node at `node_listen`
    /// using the node's `node_code`, and relays.
    pub async fn start(node_listen: String, node_code: String) -> SignerProxy {
        let dir = tempfile::tempdir().expect("proxy dir");
        let identity = Arc::new(LinkIdentity::generate().expect("identity"));
        let pairing = Arc::new(PairingStore::open(dir.path()).expect("pairing store"));
        let code = pairing
            .new_pairing_code(std::time::Duration::from_secs(600))
            .expect("code");
        let listener = LinkListener::bind("127.0.0.1:0", identity.clone(), pairing)
            .await
            .expect("bind");
        let listen = listener.local_addr().to_string();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let cut_off = Arc::new(AtomicBool::new(false));
        let (inject, mut injected) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let tampering: Tampering = Arc::default();
        let (rec, cut, tamper) = (recorded.clone(), cut_off.clone(), tampering.clone());
        // Answers to rewritten requests, by id: reported to the test and passed on to the node.
        let rewritten: Pending = Arc::default();
        tokio::spawn(async move {
            let (signer, _) = listener.accept().await.expect("signer connects");
            let code = PairingCode::parse(&node_code).expect("node code");
            let (node, _) =
                LinkConnector::new(node_listen, identity, ConnectMode::Pairing { code })
                    .connect()
                    .await
                    .expect("pair with the node");
            let (mut node_rx, mut node_tx) = node.into_split();
            let (mut signer_rx, mut signer_tx) = signer.into_split();
            loop {
                tokio::select! {
                    from_node = node_rx.recv() => {
                        let Ok(bytes) = from_node else { break };
                        if cut.load(Ordering::SeqCst) {
                            continue; // the node is cut off: its requests go unanswered
                        }
                        let bytes = match serde_json::from_slice::<RequestEnvelope>(&bytes) {
                            Ok(envelope) => {
                                rec.lock().expect("lock").push(envelope.request.clone());
                                rewrite(&tamper, &rewritten, envelope).unwrap_or(bytes)
                            }
                            Err(_) => bytes,
                        };
                        if signer_tx.send(&bytes).await.is_err() { break }
                    }
                    from_signer = signer_rx.recv() => {
                        let Ok(bytes) = from_signer else { break };
                        let envelope: ResponseEnvelope =
                            serde_json::from_slice(&bytes).expect("signer response");
                        if envelope.id >= INJECTED_IDS {
                            let mut waiting = pending.lock().expect("lock");
                            if let Some(at) = waiting.iter().position(|(id, _)| *id == envelope.id) {
                                let (_, tx) = waiting.remove(at);
                                let _ = tx.send(envelope.response);
                            }
                        } else {
                            {
                                let mut waiting = rewritten.lock().expect("lock");
                                if let Some(at) = waiting.iter().position(|(id, _)| *id == envelope.id) {
                                    let (_, tx) = waiting.remove(at);
                                    let _ = tx.send(envelope.response.clone());
                                }
                            }
                            if !cut.load(Ordering::SeqCst) && node_tx.send(&bytes).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some((id, request, reply)) = injected.recv() => {
                        pending.lock().expect("lock").push((id, reply));
                        let bytes = serde_json::to_vec(&RequestEnvelope { id, request })
                            .expect("encode");
                        if signer_tx.send(&bytes).await.is_err() { break }
                    }
                }
            }
        });
        SignerProxy {
            listen,
            code: code.reveal(),
            recorded,
            cut_off,
            tampering,
            inject,
            next_id: AtomicU64::new(0),
            _dir: dir,
        }
    }

    /// Every request the node made so far, in order.
    pub fn recorded(&self) -> Vec<SignerRequest> {
        self.recorded.lock().expect("lock").clone()
    }

    /// Rewrites the node's next request for which `f` returns `true` (after changing it);
    /// the signer's answer to the rewritten request comes back on the returned channel (and
    /// goes on to the node, which sees the refusal).
    pub fn tamper_next(
        &self,
        f: impl FnMut(&mut SignerRequest) -> bool + Send + 'static,
    ) -> oneshot::Receiver<SignerResponse> {
        let (tx, rx) = oneshot::channel();
        *self.tampering.lock().expect("lock") = Some((Box::new(f), tx));
        rx
    }

    /// Stops relaying the node's requests (and the signer's answers to them), or resumes.
    pub fn cut_off_node(&self, cut: bool) {
        self.cut_off.store(cut, Ordering::SeqCst);
    }

    /// Sends the operator's own request to the signer and returns its answer.
    pub async fn call(&self, request: SignerRequest) -> SignerResponse {
        let id = INJECTED_IDS + self.next_id.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.inject.send((id, request, tx)).expect("proxy running");
        tokio::time::timeout(std::time::Duration::from_secs(30), rx)
            .await
            .expect("signer answered in time")
            .expect("answer")
    }
}
