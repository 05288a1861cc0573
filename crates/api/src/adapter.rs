//! Conversions between the node's types and the API's protobuf types, and the checks that turn
//! raw request fields into values the node accepts. Every malformed field becomes
//! [`ApiError::InvalidRequest`], never a panic.

use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use micronode_node::{
    ChannelInfo, LightningBalance, NodeEvent, NodeInfo, OnchainBalance, PaymentDirection,
    PaymentKind, PaymentRecord, PaymentStatus, PeerInfo,
};
use micronode_proto::v1;

use crate::error::ApiError;

/// All the bitcoin there will ever be, in satoshis: no amount can be larger.
pub const MAX_SAT: u64 = 21_000_000 * 100_000_000;
/// [`MAX_SAT`] in millisatoshis.
pub const MAX_MSAT: u64 = MAX_SAT * 1000;
/// The highest on-chain fee rate accepted (sat/vB); bitcoind's default `-maxfeerate`.
pub const MAX_SAT_PER_VBYTE: u64 = 10_000;
/// The longest invoice expiry accepted (a year, in seconds).
pub const MAX_INVOICE_EXPIRY_SECS: u32 = 365 * 24 * 3600;
/// The invoice expiry when the request gives none.
pub const DEFAULT_INVOICE_EXPIRY_SECS: u32 = 3600;
/// How long a payment call waits by default.
pub const DEFAULT_PAYMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a payment call may wait.
pub const MAX_PAYMENT_TIMEOUT_SECS: u32 = 3600;
/// The longest text field the API echoes back in an error message.
const ECHO_LIMIT: usize = 80;

// ---------------------------------------------------------------------------------------------
// Request fields

/// A short, safe rendering of a caller's value for an error message.
fn echo(value: &str) -> String {
    if value.chars().count() <= ECHO_LIMIT {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(ECHO_LIMIT).collect();
        format!("{head:?}... ({} bytes)", value.len())
    }
}

/// A required text field: present and not blank.
pub fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        Err(ApiError::invalid(format!("{field} is required")))
    } else {
        Ok(value)
    }
}

/// A node id: a 33-byte compressed public key in hex.
pub fn node_id(field: &str, value: &str) -> Result<PublicKey, ApiError> {
    let value = required(field, value)?;
    value.parse::<PublicKey>().map_err(|_| {
        ApiError::invalid(format!(
            "{field}: {} is not a public key (66 hex characters)",
            echo(value)
        ))
    })
}

/// A 32-byte id or hash in hex.
pub fn id32(field: &str, value: &str) -> Result<[u8; 32], ApiError> {
    let value = required(field, value)?;
    hex::decode(value)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "{field}: {} is not 32 bytes in hex (64 hex characters)",
                echo(value)
            ))
        })
}

/// A channel id in hex, in the form the node takes it.
pub fn channel_id(field: &str, value: &str) -> Result<String, ApiError> {
    id32(field, value).map(hex::encode)
}

/// An amount in satoshis, above zero and at most [`MAX_SAT`].
pub fn sat(field: &str, value: u64) -> Result<u64, ApiError> {
    if value == 0 {
        Err(ApiError::invalid(format!("{field} must be more than 0")))
    } else if value > MAX_SAT {
        Err(ApiError::invalid(format!(
            "{field}: {value} sat is more bitcoin than exists"
        )))
    } else {
        Ok(value)
    }
}

/// An amount in millisatoshis, at most [`MAX_MSAT`]; zero only if `allow_zero`.
pub fn msat(field: &str, value: u64, allow_zero: bool) -> Result<u64, ApiError> {
    if value == 0 && !allow_zero {
        Err(ApiError::invalid(format!("{field} must be more than 0")))
    } else if value > MAX_MSAT {
        Err(ApiError::invalid(format!(
            "{field}: {value} msat is more bitcoin than exists"
        )))
    } else {
        Ok(value)
    }
}

/// An on-chain fee rate in sat/vB, between 1 and [`MAX_SAT_PER_VBYTE`].
pub fn sat_per_vbyte(value: Option<u64>) -> Result<Option<u64>, ApiError> {
    match value {
        None => Ok(None),
        Some(r) if (1..=MAX_SAT_PER_VBYTE).contains(&r) => Ok(Some(r)),
        Some(r) => Err(ApiError::invalid(format!(
            "sat_per_vbyte: {r} is not between 1 and {MAX_SAT_PER_VBYTE}"
        ))),
    }
}

/// An invoice expiry in seconds: [`DEFAULT_INVOICE_EXPIRY_SECS`] if absent.
pub fn invoice_expiry(value: Option<u32>) -> Result<u32, ApiError> {
    match value {
        None => Ok(DEFAULT_INVOICE_EXPIRY_SECS),
        Some(s) if (1..=MAX_INVOICE_EXPIRY_SECS).contains(&s) => Ok(s),
        Some(s) => Err(ApiError::invalid(format!(
            "expiry_secs: {s} is not between 1 and {MAX_INVOICE_EXPIRY_SECS}"
        ))),
    }
}

/// How long a payment call waits: [`DEFAULT_PAYMENT_TIMEOUT`] if absent.
pub fn payment_timeout(value: Option<u32>) -> Result<Duration, ApiError> {
    match value {
        None => Ok(DEFAULT_PAYMENT_TIMEOUT),
        Some(s) if (1..=MAX_PAYMENT_TIMEOUT_SECS).contains(&s) => {
            Ok(Duration::from_secs(u64::from(s)))
        }
        Some(s) => Err(ApiError::invalid(format!(
            "timeout_secs: {s} is not between 1 and {MAX_PAYMENT_TIMEOUT_SECS}"
        ))),
    }
}

/// A payment direction filter: `None` for absent or unspecified.
pub fn direction_filter(value: Option<i32>) -> Result<Option<PaymentDirection>, ApiError> {
    let Some(raw) = value else {
        return Ok(None);
    };
    match v1::PaymentDirection::try_from(raw) {
        Ok(v1::PaymentDirection::Unspecified) => Ok(None),
        Ok(v1::PaymentDirection::Inbound) => Ok(Some(PaymentDirection::Inbound)),
        Ok(v1::PaymentDirection::Outbound) => Ok(Some(PaymentDirection::Outbound)),
        Err(_) => Err(ApiError::invalid(format!(
            "direction: {raw} is not a payment direction"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Responses

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The node's summary.
pub fn info(info: NodeInfo) -> v1::GetInfoResponse {
    v1::GetInfoResponse {
        node_id: info.node_id,
        alias: info.alias,
        network: info.network,
        block_height: info.block_height,
        block_hash: info.block_hash,
        num_peers: count(info.num_peers),
        num_channels: count(info.num_channels),
        num_usable_channels: count(info.num_usable_channels),
        listen_addr: info.listen_addr,
        graph_channels: count(info.graph_channels),
        graph_nodes: count(info.graph_nodes),
        bitcoind_reachable: info.bitcoind_reachable,
        unconfirmed_broadcasts: count(info.broadcasts.unconfirmed),
        failing_broadcasts: info
            .broadcasts
            .failing
            .into_iter()
            .map(|f| v1::FailingBroadcast {
                txid: f.txid,
                attempts: f.attempts,
                last_error: f.last_error,
                since: f.since,
            })
            .collect(),
    }
}

/// The on-chain balance.
pub fn onchain_balance(b: OnchainBalance) -> v1::OnchainBalanceResponse {
    v1::OnchainBalanceResponse {
        confirmed_sat: b.confirmed_sat,
        unconfirmed_sat: b.unconfirmed_sat,
        immature_sat: b.immature_sat,
        total_sat: b.total_sat,
        pending_incoming_sat: b.pending_incoming_sat,
        pending_change_sat: b.pending_change_sat,
    }
}

/// The Lightning balance.
pub fn lightning_balance(b: LightningBalance) -> v1::LightningBalanceResponse {
    v1::LightningBalanceResponse {
        claimable_sat: b.claimable_sat,
        in_channels_sat: b.in_channels_sat,
        pending_on_chain_sat: b.pending_on_chain_sat,
    }
}

/// A connected peer.
pub fn peer(p: PeerInfo) -> v1::Peer {
    v1::Peer {
        node_id: p.node_id,
        address: p.address,
        inbound: p.inbound,
    }
}

/// A channel.
pub fn channel(c: ChannelInfo) -> v1::Channel {
    v1::Channel {
        channel_id: c.channel_id,
        counterparty: c.counterparty,
        funding_txo: c.funding_txo,
        short_channel_id: c.short_channel_id,
        capacity_sat: c.capacity_sat,
        balance_sat: c.balance_sat,
        outbound_capacity_msat: c.outbound_capacity_msat,
        inbound_capacity_msat: c.inbound_capacity_msat,
        pending_htlcs: u32::try_from(c.pending_htlcs).unwrap_or(u32::MAX),
        confirmations: c.confirmations,
        confirmations_required: c.confirmations_required,
        is_outbound: c.is_outbound,
        is_ready: c.is_ready,
        is_usable: c.is_usable,
        is_announced: c.is_announced,
    }
}

/// A payment record.
pub fn payment(r: PaymentRecord) -> v1::Payment {
    let direction = match r.direction {
        PaymentDirection::Inbound => v1::PaymentDirection::Inbound,
        PaymentDirection::Outbound => v1::PaymentDirection::Outbound,
    };
    let status = match r.status {
        PaymentStatus::Pending => v1::PaymentStatus::Pending,
        PaymentStatus::Succeeded => v1::PaymentStatus::Succeeded,
        PaymentStatus::Failed => v1::PaymentStatus::Failed,
    };
    let (kind, invoice) = match r.kind {
        PaymentKind::Bolt11 { invoice } => (v1::PaymentKind::Bolt11, Some(invoice)),
        PaymentKind::Keysend => (v1::PaymentKind::Keysend, None),
    };
    v1::Payment {
        id: hex::encode(r.id),
        payment_hash: hex::encode(r.payment_hash),
        preimage: r.preimage.map(hex::encode),
        direction: direction.into(),
        status: status.into(),
        kind: kind.into(),
        invoice,
        amount_msat: r.amount_msat,
        fee_msat: r.fee_msat,
        counterparty: r.counterparty,
        failure_reason: r.failure_reason,
        created_at: r.created_at,
        updated_at: r.updated_at,
        description: r.description,
    }
}

/// A registered token: ids, caveats and spending, never the token.
pub fn token_info(t: crate::tokens::TokenInfo) -> v1::TokenInfo {
    let msat = |v: i64| u64::try_from(v).unwrap_or_default();
    v1::TokenInfo {
        id: t.summary.id,
        parent_id: t.summary.parent_id,
        label: t.label,
        revocation_ids: t.summary.revocation_ids,
        blocks: t.summary.blocks,
        revoked: t.revoked,
        registered_at: t.registered_at,
        spent_day_msat: msat(t.spent.day),
        spent_week_msat: msat(t.spent.week),
        spent_month_msat: msat(t.spent.month),
        spent_total_msat: msat(t.spent.total),
    }
}

/// A node event.
pub fn event(e: NodeEvent) -> v1::Event {
    use v1::event::Event as E;
    let inner = match e {
        NodeEvent::ChannelPending {
            channel_id,
            counterparty,
            funding_txo,
        } => E::ChannelPending(v1::ChannelPending {
            channel_id,
            counterparty,
            funding_txo,
        }),
        NodeEvent::ChannelReady {
            channel_id,
            counterparty,
        } => E::ChannelReady(v1::ChannelReady {
            channel_id,
            counterparty,
        }),
        NodeEvent::ChannelClosed {
            channel_id,
            counterparty,
            reason,
        } => E::ChannelClosed(v1::ChannelClosed {
            channel_id,
            counterparty,
            reason,
        }),
        NodeEvent::PaymentReceived {
            payment_hash,
            amount_msat,
        } => E::PaymentReceived(v1::PaymentReceived {
            payment_hash,
            amount_msat,
        }),
        NodeEvent::PaymentSent {
            payment_id,
            payment_hash,
            fee_msat,
        } => E::PaymentSent(v1::PaymentSent {
            payment_id,
            payment_hash,
            fee_msat,
        }),
        NodeEvent::PaymentFailed {
            payment_id,
            payment_hash,
            reason,
        } => E::PaymentFailed(v1::PaymentFailed {
            payment_id,
            payment_hash,
            reason,
        }),
        NodeEvent::PaymentForwarded {
            fee_msat,
            amount_msat,
        } => E::PaymentForwarded(v1::PaymentForwarded {
            fee_msat,
            amount_msat,
        }),
        NodeEvent::OutputsTracked { count: n } => {
            E::OutputsTracked(v1::OutputsTracked { count: count(n) })
        }
    };
    v1::Event { event: Some(inner) }
}

/// The notice a subscriber gets after missing `missed` events.
pub fn events_lagged(missed: u64) -> v1::Event {
    v1::Event {
        event: Some(v1::event::Event::EventsLagged(v1::EventsLagged { missed })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_fields_are_invalid_input() {
        for bad in ["", "  ", "zz", "02", &"0".repeat(66), &"x".repeat(10_000)] {
            let err = node_id("node_id", bad).expect_err(bad);
            assert!(matches!(err, ApiError::InvalidRequest(_)));
            assert!(err.to_string().len() < 300, "echo is bounded: {err}");
        }
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(66)] {
            assert!(id32("id", bad).is_err(), "{bad}");
        }
        assert_eq!(id32("id", &"ab".repeat(32)).expect("ok"), [0xab; 32]);
        assert!(sat("amount_sat", 0).is_err());
        assert!(sat("amount_sat", MAX_SAT + 1).is_err());
        assert_eq!(sat("amount_sat", MAX_SAT).expect("ok"), MAX_SAT);
        assert!(msat("amount_msat", 0, false).is_err());
        assert_eq!(msat("push_msat", 0, true).expect("ok"), 0);
        assert!(msat("amount_msat", u64::MAX, true).is_err());
        assert!(sat_per_vbyte(Some(0)).is_err());
        assert!(sat_per_vbyte(Some(MAX_SAT_PER_VBYTE + 1)).is_err());
        assert_eq!(sat_per_vbyte(None).expect("ok"), None);
        assert_eq!(invoice_expiry(None).expect("ok"), 3600);
        assert!(invoice_expiry(Some(0)).is_err());
        assert!(invoice_expiry(Some(u32::MAX)).is_err());
        assert_eq!(payment_timeout(None).expect("ok"), DEFAULT_PAYMENT_TIMEOUT);
        assert!(payment_timeout(Some(0)).is_err());
        assert!(direction_filter(Some(99)).is_err());
        assert_eq!(direction_filter(Some(0)).expect("ok"), None);
        assert_eq!(
            direction_filter(Some(2)).expect("ok"),
            Some(PaymentDirection::Outbound)
        );
    }

    #[test]
    fn payment_records_convert() {
        let mut record = PaymentRecord::new_pending(
            [1; 32],
            [2; 32],
            PaymentDirection::Outbound,
            PaymentKind::Bolt11 {
                invoice: "lnbcrt1...".into(),
            },
            Some(5_000),
        );
        record.status = PaymentStatus::Succeeded;
        record.preimage = Some([3; 32]);
        record.fee_msat = Some(7);
        let p = payment(record);
        assert_eq!(p.id, "01".repeat(32));
        assert_eq!(p.payment_hash, "02".repeat(32));
        assert_eq!(p.preimage.as_deref(), Some(&*"03".repeat(32)));
        assert_eq!(p.direction(), v1::PaymentDirection::Outbound);
        assert_eq!(p.status(), v1::PaymentStatus::Succeeded);
        assert_eq!(p.kind(), v1::PaymentKind::Bolt11);
        assert_eq!(p.invoice.as_deref(), Some("lnbcrt1..."));
        assert_eq!(p.amount_msat, Some(5_000));
        assert_eq!(p.fee_msat, Some(7));
    }

    #[test]
    fn events_convert() {
        let e = event(NodeEvent::PaymentReceived {
            payment_hash: "ab".into(),
            amount_msat: 9,
        });
        assert_eq!(
            e.event,
            Some(v1::event::Event::PaymentReceived(v1::PaymentReceived {
                payment_hash: "ab".into(),
                amount_msat: 9
            }))
        );
        assert!(matches!(
            events_lagged(3).event,
            Some(v1::event::Event::EventsLagged(v1::EventsLagged {
                missed: 3
            }))
        ));
    }
}
