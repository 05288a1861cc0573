//! Shared fixtures for the link's integration tests: nodes, signers, and TCP proxies that
//! record or tamper with the bytes in between.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use micronode_link::{
    ConnectMode, LinkConnection, LinkConnector, LinkError, LinkIdentity, LinkListener,
    ListenerConfig, PairingStore, PeerInfo, DEFAULT_PAIRING_TTL,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const WAIT: Duration = Duration::from_secs(10);

pub struct Node {
    pub dir: tempfile::TempDir,
    pub identity: Arc<LinkIdentity>,
    pub store: Arc<PairingStore>,
    pub listener: LinkListener,
}

impl Node {
    pub async fn start() -> Node {
        Self::start_with(ListenerConfig::default()).await
    }

    pub async fn start_with(config: ListenerConfig) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let identity =
            Arc::new(LinkIdentity::load_or_generate(&dir.path().join("id.json")).unwrap());
        let store = Arc::new(PairingStore::open(dir.path()).unwrap());
        let listener =
            LinkListener::bind_with_config("127.0.0.1:0", identity.clone(), store.clone(), config)
                .await
                .unwrap();
        Node {
            dir,
            identity,
            store,
            listener,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    pub fn key(&self) -> [u8; 32] {
        self.identity.public_key()
    }

    /// The next accept outcome, failing the test if none comes in time.
    pub async fn next(&self) -> Result<(LinkConnection, PeerInfo), LinkError> {
        tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the listener produced no outcome in time")
    }

    /// The next accept outcome, which must be a rejection.
    pub async fn next_rejection(&self) -> LinkError {
        match self.next().await {
            Ok((_, peer)) => panic!("the node accepted {peer:?}"),
            Err(e) => e,
        }
    }

    /// Asserts that no connection is yielded within `dur`.
    pub async fn assert_nothing_accepted(&self, dur: Duration) {
        if let Ok(Ok((_, peer))) = tokio::time::timeout(dur, self.listener.accept()).await {
            panic!("the node unexpectedly accepted {peer:?}");
        }
    }

    /// Connects with `connector` while accepting; returns (signer side, node side).
    pub async fn dial(
        &self,
        connector: LinkConnector,
    ) -> (
        Result<(LinkConnection, PeerInfo), LinkError>,
        Result<(LinkConnection, PeerInfo), LinkError>,
    ) {
        tokio::join!(connector.connect(), self.next())
    }

    /// Pairs `signer` with this node; returns the signer's view and the node's view.
    pub async fn pair(
        &self,
        signer: &Arc<LinkIdentity>,
    ) -> ((LinkConnection, PeerInfo), (LinkConnection, PeerInfo)) {
        let code = self.store.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();
        let connector = LinkConnector::new(
            self.addr().to_string(),
            signer.clone(),
            ConnectMode::Pairing { code },
        );
        let (signer_side, node_side) = tokio::join!(connector.connect(), self.next());
        (signer_side.unwrap(), node_side.unwrap())
    }
}

pub fn signer_identity() -> Arc<LinkIdentity> {
    Arc::new(LinkIdentity::generate().unwrap())
}

pub fn pinned(addr: SocketAddr, signer: &Arc<LinkIdentity>, node_key: [u8; 32]) -> LinkConnector {
    LinkConnector::new(
        addr.to_string(),
        signer.clone(),
        ConnectMode::Pinned { node_key },
    )
}

/// Pairs a fresh signer with `node`, closes the pairing connection, and returns the
/// signer's identity.
pub async fn paired_signer(node: &Node) -> Arc<LinkIdentity> {
    let signer = signer_identity();
    let _ = node.pair(&signer).await;
    signer
}

/// Bytes that went through a proxy, by direction.
#[derive(Clone, Default)]
pub struct Recording {
    pub to_node: Arc<Mutex<Vec<u8>>>,
    pub to_signer: Arc<Mutex<Vec<u8>>>,
}

impl Recording {
    pub fn to_node(&self) -> Vec<u8> {
        self.to_node.lock().unwrap().clone()
    }
    pub fn to_signer(&self) -> Vec<u8> {
        self.to_signer.lock().unwrap().clone()
    }
}

/// A transformation of the signer->node frame stream: given the frame index and the frame
/// (length prefix included), returns the frames to forward.
pub type FrameEdit = Box<dyn FnMut(usize, Vec<u8>) -> Vec<Vec<u8>> + Send>;

/// A one-connection proxy in front of `target` that records both directions and passes the
/// signer's frames through `edit`.
pub async fn proxy(target: SocketAddr, mut edit: FrameEdit) -> (SocketAddr, Recording) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = Recording::default();
    let rec2 = rec.clone();
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(server) = TcpStream::connect(target).await else {
            return;
        };
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let to_signer = rec2.to_signer.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        to_signer.lock().unwrap().extend_from_slice(&buf[..n]);
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = cw.shutdown().await;
        });
        let mut preamble = [0u8; 6];
        if cr.read_exact(&mut preamble).await.is_err() {
            return;
        }
        rec2.to_node.lock().unwrap().extend_from_slice(&preamble);
        if sw.write_all(&preamble).await.is_err() {
            return;
        }
        let mut index = 0;
        loop {
            let mut len = [0u8; 2];
            if cr.read_exact(&mut len).await.is_err() {
                break;
            }
            let n = usize::from(u16::from_be_bytes(len));
            let mut frame = len.to_vec();
            frame.resize(2 + n, 0);
            if cr.read_exact(&mut frame[2..]).await.is_err() {
                break;
            }
            rec2.to_node.lock().unwrap().extend_from_slice(&frame);
            for out in edit(index, frame) {
                if sw.write_all(&out).await.is_err() {
                    return;
                }
            }
            index += 1;
        }
        let _ = sw.shutdown().await;
    });
    (addr, rec)
}

/// A proxy that forwards everything unchanged.
pub async fn recording_proxy(target: SocketAddr) -> (SocketAddr, Recording) {
    proxy(target, Box::new(|_, frame| vec![frame])).await
}

/// Opens a raw TCP connection, writes `bytes`, closes its sending side, and reads until the peer closes (or `WAIT`).
pub async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut reply)).await;
    reply
}
