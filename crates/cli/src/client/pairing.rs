//! `micronode cli pairing list|revoke`: the node's browser-wallet pairing sessions
//! (docs/pairing.md). Sessions are made at the tenant's signer (`micronode signer pair`).

use micronode_proto::v1;
use serde_json::{json, Value};

use super::render::{kv, Render};
use super::{call, request, Client, Printer};

/// Pairing commands.
#[derive(clap::Subcommand, Debug)]
pub enum PairingCommand {
    /// The sessions the credential may see: all of them for the operator's cookie or an admin
    /// token, its own for a session's token.
    List,
    /// End a session for good: the node stops serving it and forgets its keys.
    Revoke {
        /// The session's id (from `pairing list`).
        id: String,
    },
}

/// Runs a pairing command.
pub(crate) async fn run(
    client: &mut Client,
    json: bool,
    command: PairingCommand,
    out: &mut Printer,
) -> anyhow::Result<()> {
    match command {
        PairingCommand::List => {
            let list = call(client.list_pairings(request(v1::ListPairingsRequest {}))).await?;
            out.result(json, &list);
        }
        PairingCommand::Revoke { id } => {
            let session =
                call(client.revoke_pairing(request(v1::RevokePairingRequest { id }))).await?;
            out.result(json, &session);
        }
    }
    Ok(())
}

impl Render for v1::PairingSession {
    fn text(&self) -> String {
        let when = |t: Option<u64>| t.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
        kv(&[
            ("id", self.id.clone()),
            ("label", self.label.clone()),
            ("state", self.state.clone()),
            (
                "connected",
                if self.connected { "yes" } else { "no" }.into(),
            ),
            ("created_at", self.created_at.to_string()),
            ("expires_at", self.expires_at.to_string()),
            ("paired_at", when(self.paired_at)),
            ("last_seen", when(self.last_seen)),
            (
                "ended",
                self.ended_reason.clone().unwrap_or_else(|| "-".into()),
            ),
        ])
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id, "label": self.label, "state": self.state,
            "connected": self.connected, "created_at": self.created_at,
            "expires_at": self.expires_at, "paired_at": self.paired_at,
            "last_seen": self.last_seen, "ended_reason": self.ended_reason,
        })
    }
}

impl Render for v1::ListPairingsResponse {
    fn text(&self) -> String {
        if self.sessions.is_empty() {
            return "no pairing sessions".into();
        }
        let texts: Vec<String> = self.sessions.iter().map(Render::text).collect();
        texts.join("\n\n")
    }

    fn json(&self) -> Value {
        json!({"sessions": self.sessions.iter().map(Render::json).collect::<Vec<_>>()})
    }
}
