//! How `micronode cli` shows results: aligned `key: value` lines and simple tables for people,
//! JSON for programs. Amounts always carry their unit (`sat` or `msat`); enums are lower-case
//! words; ids are full hex, so they can be pasted into the next command.

use micronode_proto::v1;
use serde_json::{json, Value};

/// A result `micronode cli` can print.
pub trait Render {
    /// For people.
    fn text(&self) -> String;
    /// For programs.
    fn json(&self) -> Value;
}

/// Both balances, from two calls.
pub struct Balance {
    /// The on-chain wallet's balance.
    pub onchain: v1::OnchainBalanceResponse,
    /// The Lightning balance.
    pub lightning: v1::LightningBalanceResponse,
}

/// A call that answers nothing but success.
pub struct Done {
    text: String,
    json: Value,
}

impl Done {
    /// Connected to a peer.
    pub fn connected(node_id: String, address: String) -> Self {
        Done {
            text: format!("connected to {node_id}@{address}"),
            json: json!({ "connected": true, "node_id": node_id, "address": address }),
        }
    }

    /// A channel close started.
    pub fn closing(channel_id: String, force: bool) -> Self {
        let how = if force { "force-closing" } else { "closing" };
        Done {
            text: format!("{how} channel {channel_id}; a channel_closed event follows"),
            json: json!({ "closing": true, "channel_id": channel_id, "force": force }),
        }
    }
}

impl Render for Done {
    fn text(&self) -> String {
        self.text.clone()
    }
    fn json(&self) -> Value {
        self.json.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Formatting helpers

/// `n sat`.
pub fn sat(n: u64) -> String {
    format!("{n} sat")
}

/// `n msat`, with the whole satoshis alongside when there are any.
pub fn msat(n: u64) -> String {
    if n >= 1000 && n.checked_rem(1000) == Some(0) {
        format!("{n} msat ({} sat)", n / 1000)
    } else {
        format!("{n} msat")
    }
}

fn opt(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".into())
}

/// Lines of `key: value`, the values aligned.
pub fn kv(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(k, v)| format!("{:<width$} {v}", format!("{k}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A table with a header row, columns separated by two spaces; `empty` if there are no rows.
pub fn table(header: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return empty.to_string();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    let mut lines = vec![line(header.iter().map(|h| h.to_string()).collect())];
    lines.extend(rows.iter().map(|r| line(r.clone())));
    lines.join("\n")
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX / 2);
    let secs = unix % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Text from elsewhere (an invoice's description) without control characters.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// At most `max` characters, with an ellipsis when cut.
fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn failing_broadcasts(failing: &[v1::FailingBroadcast]) -> String {
    if failing.is_empty() {
        return "none".into();
    }
    failing
        .iter()
        .map(|f| format!("{} ({} attempts: {})", f.txid, f.attempts, f.last_error))
        .collect::<Vec<_>>()
        .join("; ")
}

fn direction(p: &v1::Payment) -> &'static str {
    match p.direction() {
        v1::PaymentDirection::Inbound => "inbound",
        v1::PaymentDirection::Outbound => "outbound",
        v1::PaymentDirection::Unspecified => "unknown",
    }
}

fn status(p: &v1::Payment) -> &'static str {
    match p.status() {
        v1::PaymentStatus::Pending => "pending",
        v1::PaymentStatus::Succeeded => "succeeded",
        v1::PaymentStatus::Failed => "failed",
        v1::PaymentStatus::Unspecified => "unknown",
    }
}

fn kind(p: &v1::Payment) -> &'static str {
    match p.kind() {
        v1::PaymentKind::Bolt11 => "bolt11",
        v1::PaymentKind::Keysend => "keysend",
        v1::PaymentKind::Unspecified => "unknown",
    }
}

fn channel_state(c: &v1::Channel) -> String {
    if c.is_usable {
        "usable".into()
    } else if c.is_ready {
        "ready (peer offline)".into()
    } else {
        match (c.confirmations, c.confirmations_required) {
            (Some(have), Some(need)) => format!("pending ({have}/{need} conf)"),
            (None, Some(need)) => format!("pending (0/{need} conf)"),
            _ => "opening".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Results

impl Render for v1::GetInfoResponse {
    fn text(&self) -> String {
        kv(&[
            ("node_id", self.node_id.clone()),
            ("alias", self.alias.clone()),
            ("network", self.network.clone()),
            ("block_height", self.block_height.to_string()),
            ("block_hash", self.block_hash.clone()),
            ("peers", self.num_peers.to_string()),
            (
                "channels",
                format!(
                    "{} ({} usable)",
                    self.num_channels, self.num_usable_channels
                ),
            ),
            ("listen_addr", opt(self.listen_addr.clone())),
            (
                "network_graph",
                format!(
                    "{} channels, {} nodes",
                    self.graph_channels, self.graph_nodes
                ),
            ),
            (
                "bitcoind",
                if self.bitcoind_reachable {
                    "reachable".into()
                } else {
                    "NOT REACHABLE".into()
                },
            ),
            (
                "broadcasts",
                format!(
                    "{} unconfirmed; failing: {}",
                    self.unconfirmed_broadcasts,
                    failing_broadcasts(&self.failing_broadcasts)
                ),
            ),
        ])
    }

    fn json(&self) -> Value {
        json!({
            "node_id": self.node_id,
            "alias": self.alias,
            "network": self.network,
            "block_height": self.block_height,
            "block_hash": self.block_hash,
            "num_peers": self.num_peers,
            "num_channels": self.num_channels,
            "num_usable_channels": self.num_usable_channels,
            "listen_addr": self.listen_addr,
            "graph_channels": self.graph_channels,
            "graph_nodes": self.graph_nodes,
            "bitcoind_reachable": self.bitcoind_reachable,
            "unconfirmed_broadcasts": self.unconfirmed_broadcasts,
            "failing_broadcasts": self.failing_broadcasts.iter().map(|f| json!({
                "txid": f.txid,
                "attempts": f.attempts,
                "last_error": f.last_error,
                "since": f.since,
            })).collect::<Vec<_>>(),
        })
    }
}

impl Render for v1::NewAddressResponse {
    fn text(&self) -> String {
        self.address.clone()
    }
    fn json(&self) -> Value {
        json!({ "address": self.address })
    }
}

impl Render for Balance {
    fn text(&self) -> String {
        let (o, l) = (&self.onchain, &self.lightning);
        kv(&[
            ("onchain_confirmed", sat(o.confirmed_sat)),
            ("onchain_unconfirmed", sat(o.unconfirmed_sat)),
            ("onchain_pending_incoming", sat(o.pending_incoming_sat)),
            ("onchain_pending_change", sat(o.pending_change_sat)),
            ("onchain_immature", sat(o.immature_sat)),
            ("onchain_total", sat(o.total_sat)),
            ("lightning_in_channels", sat(l.in_channels_sat)),
            ("lightning_pending_on_chain", sat(l.pending_on_chain_sat)),
            ("lightning_claimable", sat(l.claimable_sat)),
        ])
    }

    fn json(&self) -> Value {
        let (o, l) = (&self.onchain, &self.lightning);
        json!({
            "onchain": {
                "confirmed_sat": o.confirmed_sat,
                "unconfirmed_sat": o.unconfirmed_sat,
                "pending_incoming_sat": o.pending_incoming_sat,
                "pending_change_sat": o.pending_change_sat,
                "immature_sat": o.immature_sat,
                "total_sat": o.total_sat,
            },
            "lightning": {
                "claimable_sat": l.claimable_sat,
                "in_channels_sat": l.in_channels_sat,
                "pending_on_chain_sat": l.pending_on_chain_sat,
            },
        })
    }
}

impl Render for v1::SendOnchainResponse {
    fn text(&self) -> String {
        kv(&[("txid", self.txid.clone())])
    }
    fn json(&self) -> Value {
        json!({ "txid": self.txid })
    }
}

impl Render for v1::ListPeersResponse {
    fn text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .peers
            .iter()
            .map(|p| {
                vec![
                    p.node_id.clone(),
                    opt(p.address.clone()),
                    if p.inbound { "inbound" } else { "outbound" }.into(),
                ]
            })
            .collect();
        table(&["NODE_ID", "ADDRESS", "DIRECTION"], &rows, "no peers")
    }

    fn json(&self) -> Value {
        json!({
            "peers": self.peers.iter().map(|p| json!({
                "node_id": p.node_id,
                "address": p.address,
                "inbound": p.inbound,
            })).collect::<Vec<_>>()
        })
    }
}

impl Render for v1::OpenChannelResponse {
    fn text(&self) -> String {
        kv(&[
            ("temporary_channel_id", self.temporary_channel_id.clone()),
            (
                "next",
                "the final id comes with the channel_pending event (see `channels`)".into(),
            ),
        ])
    }
    fn json(&self) -> Value {
        json!({ "temporary_channel_id": self.temporary_channel_id })
    }
}

impl Render for v1::ListChannelsResponse {
    fn text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .channels
            .iter()
            .map(|c| {
                vec![
                    c.channel_id.clone(),
                    c.counterparty.clone(),
                    sat(c.capacity_sat),
                    sat(c.balance_sat),
                    msat(c.outbound_capacity_msat),
                    msat(c.inbound_capacity_msat),
                    channel_state(c),
                    if c.is_announced { "public" } else { "private" }.into(),
                ]
            })
            .collect();
        table(
            &[
                "CHANNEL_ID",
                "PEER",
                "CAPACITY",
                "BALANCE",
                "CAN_SEND",
                "CAN_RECEIVE",
                "STATE",
                "VISIBILITY",
            ],
            &rows,
            "no channels",
        )
    }

    fn json(&self) -> Value {
        json!({
            "channels": self.channels.iter().map(|c| json!({
                "channel_id": c.channel_id,
                "counterparty": c.counterparty,
                "funding_txo": c.funding_txo,
                "short_channel_id": c.short_channel_id,
                "capacity_sat": c.capacity_sat,
                "balance_sat": c.balance_sat,
                "outbound_capacity_msat": c.outbound_capacity_msat,
                "inbound_capacity_msat": c.inbound_capacity_msat,
                "pending_htlcs": c.pending_htlcs,
                "confirmations": c.confirmations,
                "confirmations_required": c.confirmations_required,
                "is_outbound": c.is_outbound,
                "is_ready": c.is_ready,
                "is_usable": c.is_usable,
                "is_announced": c.is_announced,
            })).collect::<Vec<_>>()
        })
    }
}

impl Render for v1::CreateInvoiceResponse {
    fn text(&self) -> String {
        kv(&[
            ("invoice", self.invoice.clone()),
            ("payment_hash", self.payment_hash.clone()),
        ])
    }
    fn json(&self) -> Value {
        json!({ "invoice": self.invoice, "payment_hash": self.payment_hash })
    }
}

impl Render for v1::Payment {
    fn text(&self) -> String {
        let mut rows = vec![
            ("id", self.id.clone()),
            ("payment_hash", self.payment_hash.clone()),
            ("direction", direction(self).into()),
            ("kind", kind(self).into()),
            ("status", status(self).into()),
            ("amount", opt(self.amount_msat.map(msat))),
            ("fee", opt(self.fee_msat.map(msat))),
            ("counterparty", opt(self.counterparty.clone())),
            ("preimage", opt(self.preimage.clone())),
        ];
        if let Some(reason) = &self.failure_reason {
            rows.push(("failure_reason", reason.clone()));
        }
        if let Some(description) = &self.description {
            rows.push(("description", printable(description)));
        }
        if let Some(invoice) = &self.invoice {
            rows.push(("invoice", invoice.clone()));
        }
        rows.push(("created_at", time(self.created_at)));
        rows.push(("updated_at", time(self.updated_at)));
        kv(&rows)
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "payment_hash": self.payment_hash,
            "preimage": self.preimage,
            "direction": direction(self),
            "status": status(self),
            "kind": kind(self),
            "invoice": self.invoice,
            "amount_msat": self.amount_msat,
            "fee_msat": self.fee_msat,
            "counterparty": self.counterparty,
            "failure_reason": self.failure_reason,
            "description": self.description,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

impl Render for v1::ListPaymentsResponse {
    fn text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .payments
            .iter()
            .map(|p| {
                vec![
                    p.id.clone(),
                    direction(p).into(),
                    kind(p).into(),
                    status(p).into(),
                    opt(p.amount_msat.map(msat)),
                    opt(p.fee_msat.map(msat)),
                    time(p.created_at),
                    opt(p.description.as_deref().map(|d| short(&printable(d), 40))),
                ]
            })
            .collect();
        let mut text = table(
            &[
                "ID",
                "DIRECTION",
                "KIND",
                "STATUS",
                "AMOUNT",
                "FEE",
                "CREATED",
                "DESCRIPTION",
            ],
            &rows,
            "no payments",
        );
        if let Some(cursor) = &self.next_cursor {
            text.push_str(&format!("\nmore: --cursor {cursor}"));
        }
        text
    }

    fn json(&self) -> Value {
        json!({
            "payments": self.payments.iter().map(Render::json).collect::<Vec<_>>(),
            "next_cursor": self.next_cursor,
        })
    }
}

impl Render for v1::Event {
    fn text(&self) -> String {
        use v1::event::Event as E;
        match &self.event {
            Some(E::ChannelPending(e)) => format!(
                "channel_pending   channel_id={} counterparty={} funding_txo={}",
                e.channel_id, e.counterparty, e.funding_txo
            ),
            Some(E::ChannelReady(e)) => format!(
                "channel_ready     channel_id={} counterparty={}",
                e.channel_id, e.counterparty
            ),
            Some(E::ChannelClosed(e)) => format!(
                "channel_closed    channel_id={} counterparty={} reason={:?}",
                e.channel_id,
                opt(e.counterparty.clone()),
                e.reason
            ),
            Some(E::PaymentReceived(e)) => format!(
                "payment_received  payment_hash={} amount={}",
                e.payment_hash,
                msat(e.amount_msat)
            ),
            Some(E::PaymentSent(e)) => format!(
                "payment_sent      payment_id={} payment_hash={} fee={}",
                e.payment_id,
                e.payment_hash,
                opt(e.fee_msat.map(msat))
            ),
            Some(E::PaymentFailed(e)) => format!(
                "payment_failed    payment_id={} payment_hash={} reason={:?}",
                e.payment_id,
                opt(e.payment_hash.clone()),
                e.reason
            ),
            Some(E::PaymentForwarded(e)) => format!(
                "payment_forwarded amount={} fee={}",
                opt(e.amount_msat.map(msat)),
                opt(e.fee_msat.map(msat))
            ),
            Some(E::OutputsTracked(e)) => format!("outputs_tracked   count={}", e.count),
            Some(E::EventsLagged(e)) => format!(
                "events_lagged     missed={} (use the list commands to catch up)",
                e.missed
            ),
            None => "unknown event (a newer server?)".into(),
        }
    }

    fn json(&self) -> Value {
        use v1::event::Event as E;
        match &self.event {
            Some(E::ChannelPending(e)) => json!({
                "type": "channel_pending",
                "channel_id": e.channel_id,
                "counterparty": e.counterparty,
                "funding_txo": e.funding_txo,
            }),
            Some(E::ChannelReady(e)) => json!({
                "type": "channel_ready",
                "channel_id": e.channel_id,
                "counterparty": e.counterparty,
            }),
            Some(E::ChannelClosed(e)) => json!({
                "type": "channel_closed",
                "channel_id": e.channel_id,
                "counterparty": e.counterparty,
                "reason": e.reason,
            }),
            Some(E::PaymentReceived(e)) => json!({
                "type": "payment_received",
                "payment_hash": e.payment_hash,
                "amount_msat": e.amount_msat,
            }),
            Some(E::PaymentSent(e)) => json!({
                "type": "payment_sent",
                "payment_id": e.payment_id,
                "payment_hash": e.payment_hash,
                "fee_msat": e.fee_msat,
            }),
            Some(E::PaymentFailed(e)) => json!({
                "type": "payment_failed",
                "payment_id": e.payment_id,
                "payment_hash": e.payment_hash,
                "reason": e.reason,
            }),
            Some(E::PaymentForwarded(e)) => json!({
                "type": "payment_forwarded",
                "fee_msat": e.fee_msat,
                "amount_msat": e.amount_msat,
            }),
            Some(E::OutputsTracked(e)) => json!({
                "type": "outputs_tracked",
                "count": e.count,
            }),
            Some(E::EventsLagged(e)) => json!({
                "type": "events_lagged",
                "missed": e.missed,
            }),
            None => json!({ "type": "unknown" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(time(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn amounts_carry_units() {
        assert_eq!(sat(5), "5 sat");
        assert_eq!(msat(999), "999 msat");
        assert_eq!(msat(50_000_000), "50000000 msat (50000 sat)");
        assert_eq!(msat(1_500), "1500 msat");
    }

    #[test]
    fn key_values_and_tables_align() {
        assert_eq!(
            kv(&[("a", "1".into()), ("long_key", "2".into())]),
            "a:        1\nlong_key: 2"
        );
        assert_eq!(
            table(&["ID", "X"], &[vec!["abc".into(), "1".into()]], "none"),
            "ID   X\nabc  1"
        );
        assert_eq!(table(&["ID"], &[], "none"), "none");
    }

    #[test]
    fn payments_render_both_ways() {
        let p = v1::Payment {
            id: "ab".repeat(32),
            payment_hash: "ab".repeat(32),
            direction: v1::PaymentDirection::Outbound.into(),
            status: v1::PaymentStatus::Failed.into(),
            kind: v1::PaymentKind::Keysend.into(),
            amount_msat: Some(1_000),
            failure_reason: Some("no route".into()),
            ..Default::default()
        };
        let text = p.text();
        assert!(text.contains("status:         failed"), "{text}");
        assert!(text.contains("1000 msat (1 sat)"), "{text}");
        let json = p.json();
        assert_eq!(json["status"], "failed");
        assert_eq!(json["kind"], "keysend");
        assert_eq!(json["fee_msat"], Value::Null);
        let event = v1::Event {
            event: Some(v1::event::Event::PaymentReceived(v1::PaymentReceived {
                payment_hash: "cd".into(),
                amount_msat: 7,
            })),
        };
        assert_eq!(event.json()["type"], "payment_received");
        assert!(event.text().starts_with("payment_received"));
    }
}
