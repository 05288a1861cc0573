//! A node that may run on any of several machines: the signer tries each address in turn,
//! and the node's pairing state can live outside a file (a fleet keeps it in the node's
//! database store), where a second copy of the node finds it.

mod common;

use std::sync::{Arc, Mutex};

use common::{paired_signer, signer_identity, Node, WAIT};
use micronode_link::{
    Backoff, ConnectMode, HandshakeKind, LinkConnector, LinkError, LinkIdentity, LinkListener,
    PairingPersistence, PairingStore, Result, DEFAULT_PAIRING_TTL,
};
use zeroize::Zeroizing;

/// Pairing state in memory, shared by every store made on it (as rows of one database are).
#[derive(Clone, Default)]
struct SharedState(Arc<Mutex<Option<Vec<u8>>>>);

impl PairingPersistence for SharedState {
    fn load(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        Ok(self.0.lock().unwrap().clone().map(Zeroizing::new))
    }
    fn save(&self, state: &[u8]) -> Result<()> {
        *self.0.lock().unwrap() = Some(state.to_vec());
        Ok(())
    }
}

/// Refuses every write, as a fenced store does.
struct Refusing;

impl PairingPersistence for Refusing {
    fn load(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        Ok(None)
    }
    fn save(&self, _: &[u8]) -> Result<()> {
        Err(LinkError::Io(std::io::Error::other("fenced")))
    }
}

fn store_on(state: &SharedState) -> Arc<PairingStore> {
    Arc::new(PairingStore::with_persistence("shared".into(), Box::new(state.clone())).unwrap())
}

#[tokio::test]
async fn a_second_copy_of_the_node_knows_its_signer_and_the_signer_finds_it() {
    let state = SharedState::default();
    let node_key = Arc::new(LinkIdentity::generate().unwrap());
    let private = node_key.clone();

    // Copy A pairs with the signer; the pairing is in the shared state.
    let store_a = store_on(&state);
    let listener_a = LinkListener::bind("127.0.0.1:0", private.clone(), store_a.clone())
        .await
        .unwrap();
    let signer = signer_identity();
    let code = store_a.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();
    let pairing = LinkConnector::new(
        listener_a.local_addr().to_string(),
        signer.clone(),
        ConnectMode::Pairing { code },
    );
    let (signer_side, node_side) = tokio::join!(pairing.connect(), listener_a.accept());
    assert_eq!(signer_side.unwrap().1.kind, HandshakeKind::Paired);
    node_side.unwrap();
    let a_addr = listener_a.local_addr();
    drop(listener_a);

    // Copy B, on another address with the same link key, opens the same state: the signer
    // is paired there too, and no code is pending.
    let store_b = store_on(&state);
    assert_eq!(store_b.paired_signer(), Some(signer.public_key()));
    assert!(store_b.pending_expiry().is_none());
    let listener_b = LinkListener::bind("127.0.0.1:0", private, store_b)
        .await
        .unwrap();

    // The signer, given both addresses with A's first (now gone), reaches B with its pinned
    // key and no code, at once: the back-off (long here) grows per round of addresses.
    let connector = LinkConnector::any_of(
        vec![a_addr.to_string(), listener_b.local_addr().to_string()],
        signer.clone(),
        ConnectMode::Pinned {
            node_key: node_key.public_key(),
        },
    );
    let backoff = Backoff {
        initial: std::time::Duration::from_secs(60),
        max: std::time::Duration::from_secs(60),
        max_attempts: Some(4),
    };
    let within_a_round = std::time::Duration::from_secs(5);
    let (signer_side, node_side) = tokio::join!(
        tokio::time::timeout(
            within_a_round,
            connector.connect_with_backoff(&backoff, std::future::pending())
        ),
        tokio::time::timeout(WAIT, listener_b.accept()),
    );
    let (_, peer) = signer_side.expect("in time").expect("the signer reached B");
    assert_eq!(peer.kind, HandshakeKind::Pinned);
    assert_eq!(peer.remote_key, node_key.public_key());
    let (_, signer_seen) = node_side.expect("in time").expect("B admitted the signer");
    assert_eq!(signer_seen.remote_key, signer.public_key());
}

#[tokio::test]
async fn a_pairing_the_store_cannot_keep_does_not_happen() {
    // A copy whose store refuses writes (it lost the node's lease) cannot even make a code.
    let store = PairingStore::with_persistence("fenced".into(), Box::new(Refusing)).unwrap();
    assert!(matches!(
        store.new_pairing_code(DEFAULT_PAIRING_TTL),
        Err(LinkError::Io(_))
    ));
    assert!(store.pending_expiry().is_none());
    assert!(store.paired_signer().is_none());
}

#[tokio::test]
async fn a_signer_with_no_address_fails_at_once() {
    let node = Node::start().await;
    let signer = paired_signer(&node).await;
    let connector = LinkConnector::any_of(
        Vec::new(),
        signer,
        ConnectMode::Pinned {
            node_key: node.key(),
        },
    );
    let outcome = tokio::time::timeout(
        WAIT,
        connector.connect_with_backoff(&Backoff::default(), std::future::pending()),
    )
    .await
    .expect("no retrying");
    assert!(matches!(outcome, Err(LinkError::Io(_))));
}
