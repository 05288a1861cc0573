//! `micronode signer pair`: a browser-wallet pairing session, made at the tenant's signer (the
//! browser becomes an app with its own budget; `docs/pairing.md`) and registered at the node,
//! which then waits at its relay for the browser that knows the phrase.

use std::path::Path;

use anyhow::{bail, Context};
use micronode_api::bearer;
use micronode_proto::v1::lightning_client::LightningClient;
use micronode_proto::v1::CreatePairingRequest;
use micronode_signer::apps::pairing::{offer, PairingTerms};
use micronode_signer::apps::store::AppStore;
use micronode_signer::apps::{now, APPS_FILE};
use micronode_signer::config::SignerConfig;

use crate::signer_apps::{add_app_for_tenant, rights_of, AppArgs};

/// Days a session lasts unless the tenant says otherwise.
const DEFAULT_SESSION_DAYS: u64 = 30;

/// `micronode signer pair ...`.
#[derive(clap::Args, Debug)]
pub struct PairArgs {
    /// The tenant node's gRPC API, `http://host:port` (a host's front door works too).
    #[arg(long)]
    endpoint: String,
    /// What the browser may do at the node, comma-separated: read, invoice, pay. `read` is
    /// always included (the wallet shows the balance).
    #[arg(long, default_value = "read,invoice,pay")]
    rights: String,
    /// The browser's app: its name, budget, period and days until the session ends
    /// [default: 30].
    #[command(flatten)]
    app: AppArgs,
    /// The web wallet's address, printed with the phrase.
    #[arg(long)]
    wallet_url: Option<String>,
}

/// Makes the session; prints the phrase once (JSON on stdout, words on stderr).
pub async fn run(dir: &Path, mut args: PairArgs) -> anyhow::Result<()> {
    let mut rights = rights_of(&args.rights)?;
    if rights.iter().any(|r| r == "admin") {
        bail!("a browser wallet gets read, invoice and pay at most, never admin");
    }
    if !rights.iter().any(|r| r == "read") {
        rights.insert(0, "read".into());
    }
    let days = *args.app.expires_in_days.get_or_insert(DEFAULT_SESSION_DAYS);
    let expires_at = now().saturating_add(days.saturating_mul(86_400));
    let network = SignerConfig::load(dir)
        .context("reading the signer's configuration")?
        .network;
    let (app_dir, app_args, app_rights) = (dir.to_path_buf(), args.app, rights.clone());
    let (app, offer) = tokio::task::spawn_blocking(move || {
        let (app, tenant) = add_app_for_tenant(&app_dir, &app_args, &app_rights)?;
        let terms = PairingTerms {
            label: &app_args.name,
            node_id: &tenant,
            network: &network,
            expires_at,
            rights: &app_rights,
        };
        let offer = offer(&app, &terms);
        anyhow::Ok((app, offer))
    })
    .await??;
    let request = CreatePairingRequest {
        label: app.record.name.clone(),
        expires_at,
        password: offer.password.to_vec(),
        stream_id: offer.stream_id.to_vec(),
        auth_data: offer.auth_data.clone(),
    };
    let registered = register(&args.endpoint, &app.credential.token, request).await;
    let session = match registered {
        Ok(session) => session,
        Err(e) => {
            // Leave no credential behind that nobody holds.
            let store = AppStore::open(&dir.join("state").join(APPS_FILE))?;
            store.revoke(&app.record.id, now())?;
            return Err(e.context("the node did not take the pairing session"));
        }
    };
    let words = offer.phrase.to_words_string();
    eprintln!(
        "pairing session {} for {} ({} sat per {}): open the wallet{} and type these 10 words \
         (shown once; one attempt):\n\n    {words}\n",
        session.id,
        app.record.name,
        app.record.budget_msat / 1000,
        if app.record.period_secs == 0 {
            "its life".to_string()
        } else {
            format!("{} s", app.record.period_secs)
        },
        args.wallet_url
            .as_deref()
            .map(|u| format!(" at {u}"))
            .unwrap_or_default(),
    );
    let line = serde_json::json!({
        "session_id": session.id,
        "app_id": app.record.id,
        "phrase": words,
        "expires_at": expires_at,
        "wallet_url": args.wallet_url.take(),
    });
    println!("{line}");
    Ok(())
}

async fn register(
    endpoint: &str,
    token: &str,
    request: CreatePairingRequest,
) -> anyhow::Result<micronode_proto::v1::PairingSession> {
    let mut client = LightningClient::connect(endpoint.to_string())
        .await
        .with_context(|| format!("connecting to the node at {endpoint}"))?;
    let mut request = tonic::Request::new(request);
    request
        .metadata_mut()
        .insert("authorization", bearer(token).parse()?);
    let session = client
        .create_pairing(request)
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    Ok(session.into_inner())
}
