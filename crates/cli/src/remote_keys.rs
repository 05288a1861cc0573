//! The node's side of a remote signer at start-up: listen for the signer, show the pairing
//! code if none is paired yet, wait for it, and greet it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use micronode_link::{LinkIdentity, PairingStore, DEFAULT_PAIRING_TTL};
use micronode_node::remote::LinkSignerTransport;
use micronode_node::RemoteKeys;

/// How long one signing call may take before the signer counts as offline.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts the signer link and returns the keys backend once the signer has answered.
pub async fn connect(data_dir: &Path, listen: SocketAddr) -> anyhow::Result<RemoteKeys> {
    let link_dir = data_dir.join("signer_link");
    micronode_node::secret_file::create_private_dir(&link_dir)?;
    let identity = Arc::new(
        LinkIdentity::load_or_generate(&link_dir.join("identity.json"))
            .context("loading the node's link identity")?,
    );
    let pairing = Arc::new(PairingStore::open(&link_dir).context("opening the pairing store")?);
    let code = match pairing.paired_signer() {
        Some(_) => None,
        None => Some(
            pairing
                .new_pairing_code(DEFAULT_PAIRING_TTL)
                .context("creating a pairing code")?,
        ),
    };
    let transport = Arc::new(LinkSignerTransport::start(
        listen,
        identity.clone(),
        pairing,
        CALL_TIMEOUT,
    )?);
    // One line for the operator (and scripts): where the signer dials, and the one-time code
    // to type into `micronode signer run --pair` when none is paired yet.
    let line = serde_json::json!({
        "event": "waiting_for_signer",
        "signer_listen": transport.local_addr().to_string(),
        "node_link_key": identity.fingerprint(),
        "pairing_code": code.as_ref().map(|c| c.reveal()),
    });
    println!("{line}");
    tracing::info!(listen = %transport.local_addr(), "waiting for the tenant's signer");
    let waiting = async {
        let mut ticker = tokio::time::interval(Duration::from_secs(10));
        ticker.tick().await;
        loop {
            ticker.tick().await;
            tracing::info!("still waiting for the tenant's signer");
        }
    };
    tokio::select! {
        _ = transport.wait_online() => {}
        _ = waiting => {}
    }
    let cache = data_dir.join("remote_channel_keys.json");
    let keys = tokio::task::spawn_blocking(move || RemoteKeys::connect(transport, cache))
        .await
        .context("greeting the signer")??;
    tracing::info!(node_id = %keys.node_id(), "signer connected; node keys are remote");
    Ok(keys)
}
