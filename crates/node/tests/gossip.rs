//! Gossip is verified against the chain: a channel announcement enters the (shared) graph only
//! when its short channel id names an unspent 2-of-2 output of the announced funding keys.
//!
//! A bare LDK peer (routing messages only) connects to one of our nodes and announces two
//! channels with correct signatures: one whose short channel id points at a real P2WSH
//! 2-of-2 output of its funding keys, one whose short channel id points at an output that is
//! not (the coinbase of the same block). Only the first is taken.

use std::sync::{Arc, Mutex};

use bitcoin::hashes::{sha256d, Hash};
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1, SecretKey};
use bitcoin::{Address, Network};
use lightning::ln::chan_utils::make_funding_redeemscript;
use lightning::ln::msgs::{
    BaseMessageHandler, ChannelAnnouncement, ChannelUpdate, Init, LightningError, MessageSendEvent,
    NodeAnnouncement, QueryChannelRange, QueryShortChannelIds, ReplyChannelRange,
    ReplyShortChannelIdsEnd, RoutingMessageHandler, UnsignedChannelAnnouncement,
};
use lightning::ln::peer_handler::PeerManager;
use lightning::routing::gossip::NodeId;
use lightning::sign::{KeysManager, NodeSigner, Recipient};
use lightning::types::features::{ChannelFeatures, InitFeatures, NodeFeatures};
use lightning::util::logger::{Logger, Record};
use lightning::util::ser::Writeable;
use micronode_testenv::nodes::{Env, TIMEOUT};
use micronode_testenv::wait_until;

/// A routing-only peer that sends the announcements it is given and ignores everything else.
#[derive(Default)]
struct Announcer {
    outbox: Mutex<Vec<MessageSendEvent>>,
}

impl BaseMessageHandler for Announcer {
    fn get_and_clear_pending_msg_events(&self) -> Vec<MessageSendEvent> {
        std::mem::take(&mut *self.outbox.lock().expect("outbox"))
    }
    fn peer_disconnected(&self, _: PublicKey) {}
    fn provided_node_features(&self) -> NodeFeatures {
        NodeFeatures::empty()
    }
    fn provided_init_features(&self, _: PublicKey) -> InitFeatures {
        // Gossip queries: a node that supports them asks for gossip with a timestamp filter,
        // and a peer forwards announcements only to peers that asked.
        let mut features =
            lightning::ln::channelmanager::provided_init_features(&Default::default());
        features.set_gossip_queries_optional();
        features
    }
    fn peer_connected(&self, _: PublicKey, _: &Init, _: bool) -> Result<(), ()> {
        Ok(())
    }
}

impl RoutingMessageHandler for Announcer {
    fn handle_node_announcement(
        &self,
        _: Option<PublicKey>,
        _: &NodeAnnouncement,
    ) -> Result<bool, LightningError> {
        Ok(false)
    }
    fn handle_channel_announcement(
        &self,
        _: Option<PublicKey>,
        _: &ChannelAnnouncement,
    ) -> Result<bool, LightningError> {
        Ok(false)
    }
    fn handle_channel_update(
        &self,
        _: Option<PublicKey>,
        _: &ChannelUpdate,
    ) -> Result<bool, LightningError> {
        Ok(false)
    }
    fn get_next_channel_announcement(
        &self,
        _: u64,
    ) -> Option<(
        ChannelAnnouncement,
        Option<ChannelUpdate>,
        Option<ChannelUpdate>,
    )> {
        None
    }
    fn get_next_node_announcement(&self, _: Option<&NodeId>) -> Option<NodeAnnouncement> {
        None
    }
    fn handle_reply_channel_range(
        &self,
        _: PublicKey,
        _: ReplyChannelRange,
    ) -> Result<(), LightningError> {
        Ok(())
    }
    fn handle_reply_short_channel_ids_end(
        &self,
        _: PublicKey,
        _: ReplyShortChannelIdsEnd,
    ) -> Result<(), LightningError> {
        Ok(())
    }
    fn handle_query_channel_range(
        &self,
        _: PublicKey,
        _: QueryChannelRange,
    ) -> Result<(), LightningError> {
        Ok(())
    }
    fn handle_query_short_channel_ids(
        &self,
        _: PublicKey,
        _: QueryShortChannelIds,
    ) -> Result<(), LightningError> {
        Ok(())
    }
    fn processing_queue_high(&self) -> bool {
        false
    }
}

struct Quiet;
impl Logger for Quiet {
    fn log(&self, _: Record) {}
}

type BarePeer = PeerManager<
    lightning_net_tokio::SocketDescriptor,
    lightning::ln::peer_handler::ErroringMessageHandler,
    Arc<Announcer>,
    lightning::ln::peer_handler::IgnoringMessageHandler,
    Arc<Quiet>,
    lightning::ln::peer_handler::IgnoringMessageHandler,
    Arc<KeysManager>,
    lightning::ln::peer_handler::IgnoringMessageHandler,
>;

/// A channel announcement between two fresh nodes with fresh funding keys, signed by all four.
fn announcement(
    scid: u64,
    node_keys: [&SecretKey; 2],
    funding_keys: [&SecretKey; 2],
) -> ChannelAnnouncement {
    let secp = Secp256k1::new();
    let mut nodes = node_keys;
    nodes.sort_by_key(|k| PublicKey::from_secret_key(&secp, k).serialize());
    let contents = UnsignedChannelAnnouncement {
        features: ChannelFeatures::empty(),
        chain_hash: bitcoin::constants::ChainHash::using_genesis_block(Network::Regtest),
        short_channel_id: scid,
        node_id_1: NodeId::from_pubkey(&PublicKey::from_secret_key(&secp, nodes[0])),
        node_id_2: NodeId::from_pubkey(&PublicKey::from_secret_key(&secp, nodes[1])),
        bitcoin_key_1: NodeId::from_pubkey(&PublicKey::from_secret_key(&secp, funding_keys[0])),
        bitcoin_key_2: NodeId::from_pubkey(&PublicKey::from_secret_key(&secp, funding_keys[1])),
        excess_data: Vec::new(),
    };
    let digest = Message::from_digest(sha256d::Hash::hash(&contents.encode()).to_byte_array());
    let sign = |key: &SecretKey| secp.sign_ecdsa(&digest, key);
    ChannelAnnouncement {
        node_signature_1: sign(nodes[0]),
        node_signature_2: sign(nodes[1]),
        bitcoin_signature_1: sign(funding_keys[0]),
        bitcoin_signature_2: sign(funding_keys[1]),
        contents,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_announcements_of_real_channel_outputs_enter_the_graph() {
    let env = Env::new("gossip").await;
    let node = env.start_node("n").await;
    let secp = Secp256k1::new();
    let key = || SecretKey::new(&mut rand::thread_rng());
    let (n1, n2, f1, f2) = (key(), key(), key(), key());

    // The channel's funding output, on chain: P2WSH 2-of-2 of the two funding keys.
    let script = make_funding_redeemscript(
        &PublicKey::from_secret_key(&secp, &f1),
        &PublicKey::from_secret_key(&secp, &f2),
    );
    let address = Address::p2wsh(&script, Network::Regtest);
    let txid = env
        .bitcoind
        .fund_address(&address, 500_000)
        .await
        .expect("fund");
    env.mine(6).await;
    let tx = env.transaction(&txid).await;
    let vout = tx
        .output
        .iter()
        .position(|o| o.script_pubkey == address.script_pubkey())
        .expect("the funding output");
    let real_scid = env
        .short_channel_id(&bitcoin::OutPoint::new(txid, vout as u32))
        .await;
    let height = real_scid >> 40;
    // The same block's coinbase: a real output, but not a channel's.
    let forged_scid = height << 40;

    // A bare peer connects and announces both.
    let announcer = Arc::new(Announcer::default());
    let seed: [u8; 32] = rand::random();
    let keys = Arc::new(KeysManager::new(&seed, 1, 1, true));
    let peer: Arc<BarePeer> = Arc::new(PeerManager::new_routing_only(
        announcer.clone(),
        1,
        &rand::random(),
        Arc::new(Quiet),
        keys.clone(),
    ));
    let connection = lightning_net_tokio::connect_outbound(
        peer.clone(),
        node.node_id(),
        node.listen_addr().expect("listening"),
    )
    .await
    .expect("connect");
    tokio::spawn(connection);
    let peer_id = keys.get_node_id(Recipient::Node).expect("id");
    wait_until("connected", TIMEOUT, || async {
        node.list_peers()
            .iter()
            .any(|p| p.node_id == peer_id.to_string())
    })
    .await
    .expect("peer");
    let graph = env.chain.graph.clone();
    for scid in [forged_scid, real_scid] {
        announcer.outbox.lock().expect("outbox").push(
            MessageSendEvent::BroadcastChannelAnnouncement {
                msg: announcement(scid, [&n1, &n2], [&f1, &f2]),
                update_msg: None,
            },
        );
        peer.process_events();
    }
    wait_until("the real channel is in the graph", TIMEOUT, || async {
        graph.read_only().channel(real_scid).is_some()
    })
    .await
    .expect("verified announcement taken");
    assert!(
        graph.read_only().channel(forged_scid).is_none(),
        "an announcement whose output is not the channel's entered the graph"
    );
    node.stop().await.expect("stop");
}
