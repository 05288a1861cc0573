//! One function per command: ldk-node calls in, protocol types out.

use std::str::FromStr;
use std::time::{Duration, Instant};

use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::bitcoin::{Address, FeeRate};
use ldk_node::lightning::events::ClosureReason;
use ldk_node::lightning::ln::channelmanager::PaymentId;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use ldk_node::lightning_types::payment::{PaymentHash, PaymentPreimage};
use ldk_node::payment::{PaymentDirection, PaymentKind, PaymentStatus};
use ldk_node::{LightningBalance, Node, NodeError, PendingSweepBalance, UserChannelId};
use serde::Serialize;
use serde_json::{json, Value};

use crate::protocol::{self, Command};

/// What every handler needs.
pub struct Ctx<'a> {
    pub node: &'a Node,
    pub anchor_reserve_sat: u64,
}

type Reply = Result<Value, String>;

/// Runs one command. `Stop` only answers here; the caller stops the node.
pub fn handle(ctx: &Ctx<'_>, command: Command) -> Reply {
    let node = ctx.node;
    match command {
        Command::Info {} => to_value(info(ctx)),
        Command::Sync {} => node.sync_wallets().map(|()| Value::Null).map_err(node_err),
        Command::NewAddress {} => {
            let address = node.onchain_payment().new_address().map_err(node_err)?;
            Ok(json!({ "address": address.to_string() }))
        }
        Command::Balances {} => to_value(balances(node)),
        Command::Connect { node_id, addr } => {
            node.connect(pubkey(&node_id)?, socket_address(&addr)?, true)
                .map_err(node_err)?;
            Ok(Value::Null)
        }
        Command::Peers {} => to_value(
            node.list_peers()
                .into_iter()
                .map(|p| protocol::Peer {
                    node_id: p.node_id.to_string(),
                    address: p.address.to_string(),
                    is_connected: p.is_connected,
                    is_persisted: p.is_persisted,
                })
                .collect::<Vec<_>>(),
        ),
        Command::OpenChannel {
            node_id,
            addr,
            sat,
            push_msat,
            announce,
        } => {
            let (node_id, addr) = (pubkey(&node_id)?, socket_address(&addr)?);
            let push = (push_msat > 0).then_some(push_msat);
            let id = if announce {
                node.open_announced_channel(node_id, addr, sat, push, None)
            } else {
                node.open_channel(node_id, addr, sat, push, None)
            }
            .map_err(node_err)?;
            Ok(json!({ "user_channel_id": id.0.to_string() }))
        }
        Command::Channels {} => to_value(channels(ctx)),
        Command::Invoice {
            amount_msat,
            description,
            expiry_secs,
        } => {
            let description =
                Description::new(description).map_err(|e| format!("invalid description: {e}"))?;
            let invoice = node
                .bolt11_payment()
                .receive(
                    amount_msat,
                    &Bolt11InvoiceDescription::Direct(description),
                    expiry_secs,
                )
                .map_err(node_err)?;
            Ok(json!({
                "bolt11": invoice.to_string(),
                "payment_hash": invoice.payment_hash().to_string(),
            }))
        }
        Command::HoldInvoice {
            amount_msat,
            payment_hash,
            description,
            expiry_secs,
        } => {
            let description =
                Description::new(description).map_err(|e| format!("invalid description: {e}"))?;
            let hash = PaymentHash(bytes32("payment hash", &payment_hash)?);
            let invoice = node
                .bolt11_payment()
                .receive_for_hash(
                    amount_msat,
                    &Bolt11InvoiceDescription::Direct(description),
                    expiry_secs,
                    hash,
                )
                .map_err(node_err)?;
            Ok(json!({
                "bolt11": invoice.to_string(),
                "payment_hash": invoice.payment_hash().to_string(),
            }))
        }
        Command::ClaimForHash {
            payment_hash,
            claimable_amount_msat,
            preimage,
        } => {
            let hash = PaymentHash(bytes32("payment hash", &payment_hash)?);
            let preimage = PaymentPreimage(bytes32("preimage", &preimage)?);
            node.bolt11_payment()
                .claim_for_hash(hash, claimable_amount_msat, preimage)
                .map_err(node_err)?;
            Ok(Value::Null)
        }
        Command::FailForHash { payment_hash } => {
            let hash = PaymentHash(bytes32("payment hash", &payment_hash)?);
            node.bolt11_payment()
                .fail_for_hash(hash)
                .map_err(node_err)?;
            Ok(Value::Null)
        }
        Command::Pay { bolt11 } => {
            let invoice = Bolt11Invoice::from_str(bolt11.trim())
                .map_err(|e| format!("invalid invoice: {e}"))?;
            let id = node
                .bolt11_payment()
                .send(&invoice, None)
                .map_err(node_err)?;
            Ok(json!({ "payment_id": id.to_string() }))
        }
        Command::Keysend {
            node_id,
            amount_msat,
        } => {
            let id = node
                .spontaneous_payment()
                .send(amount_msat, pubkey(&node_id)?, None)
                .map_err(node_err)?;
            Ok(json!({ "payment_id": id.to_string() }))
        }
        Command::Payment { payment_id } => {
            let id = payment_id_from_hex(&payment_id)?;
            match node.payment(&id) {
                Some(details) => to_value(payment(details)),
                None => Err(format!("UnknownPayment: no payment {payment_id}")),
            }
        }
        Command::SendOnchain {
            address,
            sat,
            sat_per_vb,
        } => {
            let address = Address::from_str(&address)
                .map_err(|e| format!("invalid address: {e}"))?
                .require_network(ldk_node::bitcoin::Network::Regtest)
                .map_err(|e| format!("invalid address: {e}"))?;
            let fee_rate = match sat_per_vb {
                Some(r) => Some(
                    FeeRate::from_sat_per_vb(r).ok_or_else(|| format!("fee rate {r} too high"))?,
                ),
                None => None,
            };
            let txid = node
                .onchain_payment()
                .send_to_address(&address, sat, fee_rate)
                .map_err(node_err)?;
            Ok(json!({ "txid": txid.to_string() }))
        }
        Command::Close {
            user_channel_id,
            counterparty,
        } => {
            let (id, peer) = channel_ref(ctx, &user_channel_id, &counterparty)?;
            node.close_channel(&id, peer).map_err(node_err)?;
            Ok(Value::Null)
        }
        Command::ForceClose {
            user_channel_id,
            counterparty,
            reason,
        } => {
            let (id, peer) = channel_ref(ctx, &user_channel_id, &counterparty)?;
            node.force_close_channel(&id, peer, reason)
                .map_err(node_err)?;
            Ok(Value::Null)
        }
        Command::NextEvent {} => to_value(node.next_event().map(event)),
        Command::WaitEvent { timeout_ms } => {
            let deadline = Instant::now() + Duration::from_millis(timeout_ms);
            loop {
                if let Some(e) = node.next_event() {
                    return to_value(Some(event(e)));
                }
                if Instant::now() >= deadline {
                    return Ok(Value::Null);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Command::EventHandled {} => node.event_handled().map(|()| Value::Null).map_err(node_err),
        Command::Stop {} => Ok(Value::Null),
    }
}

fn to_value(v: impl Serialize) -> Reply {
    serde_json::to_value(v).map_err(|e| format!("cannot encode the answer: {e}"))
}

/// `Variant: message`, so a test can match on ldk-node's error variant.
fn node_err(e: NodeError) -> String {
    format!("{e:?}: {e}")
}

fn pubkey(s: &str) -> Result<PublicKey, String> {
    PublicKey::from_str(s.trim()).map_err(|e| format!("invalid node id {s:?}: {e}"))
}

fn socket_address(s: &str) -> Result<SocketAddress, String> {
    SocketAddress::from_str(s.trim()).map_err(|e| format!("invalid address {s:?}: {e:?}"))
}

fn payment_id_from_hex(s: &str) -> Result<PaymentId, String> {
    bytes32("payment id", s).map(PaymentId)
}

/// 32 bytes from 64 hex digits.
fn bytes32(what: &str, s: &str) -> Result<[u8; 32], String> {
    let bytes = decode_hex(s).ok_or_else(|| format!("{what} {s:?} is not hex"))?;
    bytes
        .try_into()
        .map_err(|_| format!("{what} {s:?} is not 32 bytes"))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The channel named by a user channel id and counterparty; an error if there is none
/// (ldk-node's close calls silently do nothing for an unknown channel).
fn channel_ref(
    ctx: &Ctx<'_>,
    user_channel_id: &str,
    counterparty: &str,
) -> Result<(UserChannelId, PublicKey), String> {
    let id = user_channel_id
        .trim()
        .parse::<u128>()
        .map_err(|e| format!("invalid user_channel_id {user_channel_id:?}: {e}"))?;
    let peer = pubkey(counterparty)?;
    let known = ctx
        .node
        .list_channels()
        .iter()
        .any(|c| c.user_channel_id.0 == id && c.counterparty_node_id == peer);
    if !known {
        return Err(format!(
            "UnknownChannel: no channel {id} with {counterparty}"
        ));
    }
    Ok((UserChannelId(id), peer))
}

fn info(ctx: &Ctx<'_>) -> protocol::Info {
    let node = ctx.node;
    let status = node.status();
    protocol::Info {
        node_id: node.node_id().to_string(),
        listening_addresses: node
            .listening_addresses()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect(),
        alias: node.node_alias().map(|a| a.to_string()),
        is_running: status.is_running,
        best_block_height: status.current_best_block.height,
        best_block_hash: status.current_best_block.block_hash.to_string(),
        anchor_reserve_per_channel_sat: ctx.anchor_reserve_sat,
        latest_onchain_wallet_sync_timestamp: status.latest_onchain_wallet_sync_timestamp,
        latest_lightning_wallet_sync_timestamp: status.latest_lightning_wallet_sync_timestamp,
        latest_fee_rate_cache_update_timestamp: status.latest_fee_rate_cache_update_timestamp,
    }
}

fn balances(node: &Node) -> protocol::Balances {
    let b = node.list_balances();
    protocol::Balances {
        total_onchain_sat: b.total_onchain_balance_sats,
        spendable_onchain_sat: b.spendable_onchain_balance_sats,
        total_anchor_channels_reserve_sat: b.total_anchor_channels_reserve_sats,
        total_lightning_sat: b.total_lightning_balance_sats,
        lightning_balances: b
            .lightning_balances
            .into_iter()
            .map(lightning_balance)
            .collect(),
        pending_sweep_balances: b
            .pending_balances_from_channel_closures
            .into_iter()
            .map(pending_sweep)
            .collect(),
    }
}

fn lightning_balance(b: LightningBalance) -> protocol::LightningBalance {
    use protocol::LightningBalance as Out;
    match b {
        LightningBalance::ClaimableOnChannelClose {
            channel_id,
            counterparty_node_id,
            amount_satoshis,
            transaction_fee_satoshis,
            outbound_payment_htlc_rounded_msat,
            outbound_forwarded_htlc_rounded_msat,
            inbound_claiming_htlc_rounded_msat,
            inbound_htlc_rounded_msat,
        } => Out {
            kind: "ClaimableOnChannelClose",
            channel_id: channel_id.to_string(),
            counterparty_node_id: counterparty_node_id.to_string(),
            amount_sat: amount_satoshis,
            transaction_fee_sat: Some(transaction_fee_satoshis),
            outbound_payment_htlc_rounded_msat: Some(outbound_payment_htlc_rounded_msat),
            outbound_forwarded_htlc_rounded_msat: Some(outbound_forwarded_htlc_rounded_msat),
            inbound_claiming_htlc_rounded_msat: Some(inbound_claiming_htlc_rounded_msat),
            inbound_htlc_rounded_msat: Some(inbound_htlc_rounded_msat),
            ..Out::default()
        },
        LightningBalance::ClaimableAwaitingConfirmations {
            channel_id,
            counterparty_node_id,
            amount_satoshis,
            confirmation_height,
            source,
        } => Out {
            kind: "ClaimableAwaitingConfirmations",
            channel_id: channel_id.to_string(),
            counterparty_node_id: counterparty_node_id.to_string(),
            amount_sat: amount_satoshis,
            confirmation_height: Some(confirmation_height),
            source: Some(format!("{source:?}")),
            ..Out::default()
        },
        LightningBalance::ContentiousClaimable {
            channel_id,
            counterparty_node_id,
            amount_satoshis,
            timeout_height,
            payment_hash,
            ..
        } => Out {
            kind: "ContentiousClaimable",
            channel_id: channel_id.to_string(),
            counterparty_node_id: counterparty_node_id.to_string(),
            amount_sat: amount_satoshis,
            timeout_height: Some(timeout_height),
            payment_hash: Some(payment_hash.to_string()),
            ..Out::default()
        },
        LightningBalance::MaybeTimeoutClaimableHTLC {
            channel_id,
            counterparty_node_id,
            amount_satoshis,
            claimable_height,
            payment_hash,
            outbound_payment,
        } => Out {
            kind: "MaybeTimeoutClaimableHTLC",
            channel_id: channel_id.to_string(),
            counterparty_node_id: counterparty_node_id.to_string(),
            amount_sat: amount_satoshis,
            claimable_height: Some(claimable_height),
            payment_hash: Some(payment_hash.to_string()),
            outbound_payment: Some(outbound_payment),
            ..Out::default()
        },
        LightningBalance::MaybePreimageClaimableHTLC {
            channel_id,
            counterparty_node_id,
            amount_satoshis,
            expiry_height,
            payment_hash,
        } => Out {
            kind: "MaybePreimageClaimableHTLC",
            channel_id: channel_id.to_string(),
            counterparty_node_id: counterparty_node_id.to_string(),
            amount_sat: amount_satoshis,
            expiry_height: Some(expiry_height),
            payment_hash: Some(payment_hash.to_string()),
            ..Out::default()
        },
        LightningBalance::CounterpartyRevokedOutputClaimable {
            channel_id,
            counterparty_node_id,
            amount_satoshis,
        } => Out {
            kind: "CounterpartyRevokedOutputClaimable",
            channel_id: channel_id.to_string(),
            counterparty_node_id: counterparty_node_id.to_string(),
            amount_sat: amount_satoshis,
            ..Out::default()
        },
    }
}

fn pending_sweep(b: PendingSweepBalance) -> protocol::PendingSweep {
    use protocol::PendingSweep as Out;
    match b {
        PendingSweepBalance::PendingBroadcast {
            channel_id,
            amount_satoshis,
        } => Out {
            kind: "PendingBroadcast",
            channel_id: channel_id.map(|c| c.to_string()),
            amount_sat: amount_satoshis,
            ..Out::default()
        },
        PendingSweepBalance::BroadcastAwaitingConfirmation {
            channel_id,
            latest_broadcast_height,
            latest_spending_txid,
            amount_satoshis,
        } => Out {
            kind: "BroadcastAwaitingConfirmation",
            channel_id: channel_id.map(|c| c.to_string()),
            amount_sat: amount_satoshis,
            latest_spending_txid: Some(latest_spending_txid.to_string()),
            latest_broadcast_height: Some(latest_broadcast_height),
            ..Out::default()
        },
        PendingSweepBalance::AwaitingThresholdConfirmations {
            channel_id,
            latest_spending_txid,
            confirmation_height,
            amount_satoshis,
            ..
        } => Out {
            kind: "AwaitingThresholdConfirmations",
            channel_id: channel_id.map(|c| c.to_string()),
            amount_sat: amount_satoshis,
            latest_spending_txid: Some(latest_spending_txid.to_string()),
            confirmation_height: Some(confirmation_height),
            ..Out::default()
        },
    }
}

/// Every channel, with `anchors` inferred from the anchor reserve.
///
/// ldk-node 0.7.1 drops LDK's `channel_type` from its `ChannelDetails`, but its reserve
/// (`BalanceDetails::total_anchor_channels_reserve_sats`) is `per_channel_reserve_sats` times
/// the number of open anchor channels, capped at the on-chain total. When that number is 0 or
/// equals the number of channels, every channel has the same answer; otherwise it is unknown.
fn channels(ctx: &Ctx<'_>) -> Vec<protocol::Channel> {
    let node = ctx.node;
    let list = node.list_channels();
    let b = node.list_balances();
    let n = list.len() as u64;
    let reserve = ctx.anchor_reserve_sat;
    let reported = b.total_anchor_channels_reserve_sats;
    let anchors = if reserve == 0 || n == 0 {
        None
    } else if reported == n * reserve {
        Some(true)
    } else if reported == 0 && b.total_onchain_balance_sats > 0 {
        Some(false)
    } else {
        None
    };
    list.into_iter()
        .map(|c| protocol::Channel {
            channel_id: c.channel_id.to_string(),
            user_channel_id: c.user_channel_id.0.to_string(),
            counterparty_node_id: c.counterparty_node_id.to_string(),
            value_sat: c.channel_value_sats,
            outbound_capacity_msat: c.outbound_capacity_msat,
            inbound_capacity_msat: c.inbound_capacity_msat,
            funding_txo: c.funding_txo.map(|o| o.to_string()),
            short_channel_id: c.short_channel_id,
            is_outbound: c.is_outbound,
            is_channel_ready: c.is_channel_ready,
            is_usable: c.is_usable,
            is_announced: c.is_announced,
            confirmations: c.confirmations,
            feerate_sat_per_kw: c.feerate_sat_per_1000_weight,
            unspendable_punishment_reserve_sat: c.unspendable_punishment_reserve,
            anchors,
        })
        .collect()
}

fn payment(p: ldk_node::payment::PaymentDetails) -> protocol::Payment {
    let (kind, payment_hash, preimage, txid) = match &p.kind {
        PaymentKind::Onchain { txid, .. } => ("onchain", None, None, Some(txid.to_string())),
        PaymentKind::Bolt11 { hash, preimage, .. } => ("bolt11", Some(*hash), *preimage, None),
        PaymentKind::Bolt11Jit { hash, preimage, .. } => {
            ("bolt11_jit", Some(*hash), *preimage, None)
        }
        PaymentKind::Bolt12Offer { hash, preimage, .. } => ("bolt12_offer", *hash, *preimage, None),
        PaymentKind::Bolt12Refund { hash, preimage, .. } => {
            ("bolt12_refund", *hash, *preimage, None)
        }
        PaymentKind::Spontaneous { hash, preimage } => {
            ("spontaneous", Some(*hash), *preimage, None)
        }
    };
    protocol::Payment {
        payment_id: p.id.to_string(),
        direction: match p.direction {
            PaymentDirection::Inbound => "inbound",
            PaymentDirection::Outbound => "outbound",
        },
        status: match p.status {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
        },
        kind,
        amount_msat: p.amount_msat,
        fee_paid_msat: p.fee_paid_msat,
        payment_hash: payment_hash.map(|h| h.to_string()),
        preimage: preimage.map(|p| p.to_string()),
        txid,
    }
}

/// The variant name of a `ClosureReason` (its `Debug` up to the first field).
fn reason_kind(reason: &ClosureReason) -> String {
    let debug = format!("{reason:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

fn event(e: ldk_node::Event) -> protocol::Event {
    use ldk_node::Event as E;
    use protocol::Event as Out;
    let s = |v: &dyn ToString| v.to_string();
    match e {
        E::ChannelPending {
            channel_id,
            user_channel_id,
            former_temporary_channel_id,
            counterparty_node_id,
            funding_txo,
        } => Out::ChannelPending {
            channel_id: s(&channel_id),
            user_channel_id: user_channel_id.0.to_string(),
            former_temporary_channel_id: s(&former_temporary_channel_id),
            counterparty_node_id: s(&counterparty_node_id),
            funding_txo: s(&funding_txo),
        },
        E::ChannelReady {
            channel_id,
            user_channel_id,
            counterparty_node_id,
            funding_txo,
        } => Out::ChannelReady {
            channel_id: s(&channel_id),
            user_channel_id: user_channel_id.0.to_string(),
            counterparty_node_id: counterparty_node_id.map(|n| n.to_string()),
            funding_txo: funding_txo.map(|o| o.to_string()),
        },
        E::ChannelClosed {
            channel_id,
            user_channel_id,
            counterparty_node_id,
            reason,
        } => Out::ChannelClosed {
            channel_id: s(&channel_id),
            user_channel_id: user_channel_id.0.to_string(),
            counterparty_node_id: counterparty_node_id.map(|n| n.to_string()),
            reason_kind: reason.as_ref().map(reason_kind),
            reason: reason.map(|r| r.to_string()),
        },
        E::PaymentSuccessful {
            payment_id,
            payment_hash,
            payment_preimage,
            fee_paid_msat,
        } => Out::PaymentSuccessful {
            payment_id: payment_id.map(|p| p.to_string()),
            payment_hash: s(&payment_hash),
            payment_preimage: payment_preimage.map(|p| p.to_string()),
            fee_paid_msat,
        },
        E::PaymentFailed {
            payment_id,
            payment_hash,
            reason,
        } => Out::PaymentFailed {
            payment_id: payment_id.map(|p| p.to_string()),
            payment_hash: payment_hash.map(|h| h.to_string()),
            reason: reason.map(|r| format!("{r:?}")),
        },
        E::PaymentReceived {
            payment_id,
            payment_hash,
            amount_msat,
            ..
        } => Out::PaymentReceived {
            payment_id: payment_id.map(|p| p.to_string()),
            payment_hash: s(&payment_hash),
            amount_msat,
        },
        E::PaymentClaimable {
            payment_id,
            payment_hash,
            claimable_amount_msat,
            ..
        } => Out::PaymentClaimable {
            payment_id: s(&payment_id),
            payment_hash: s(&payment_hash),
            claimable_amount_msat,
        },
        E::PaymentForwarded {
            prev_channel_id,
            next_channel_id,
            total_fee_earned_msat,
            outbound_amount_forwarded_msat,
            ..
        } => Out::PaymentForwarded {
            prev_channel_id: s(&prev_channel_id),
            next_channel_id: s(&next_channel_id),
            total_fee_earned_msat,
            outbound_amount_forwarded_msat,
        },
        E::SplicePending {
            channel_id,
            user_channel_id,
            counterparty_node_id,
            new_funding_txo,
        } => Out::SplicePending {
            channel_id: s(&channel_id),
            user_channel_id: user_channel_id.0.to_string(),
            counterparty_node_id: s(&counterparty_node_id),
            new_funding_txo: s(&new_funding_txo),
        },
        E::SpliceFailed {
            channel_id,
            user_channel_id,
            counterparty_node_id,
            ..
        } => Out::SpliceFailed {
            channel_id: s(&channel_id),
            user_channel_id: user_channel_id.0.to_string(),
            counterparty_node_id: s(&counterparty_node_id),
        },
    }
}
