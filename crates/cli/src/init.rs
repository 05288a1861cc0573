//! `micronode node init --stateless`: capability tokens for a node.
//!
//! For a node whose keys live in the tenant's signer (`--signer remote`), the node id comes
//! from the signer (`micronode signer export-public` gives it) through `--node-id`: nothing
//! here creates or reads a key on the operator's host.
//!
//! Creates the node's token root key pair, stores only what verification and revocation need
//! (the root PUBLIC key, the tenant, and later the revocation list and the spending ledger) in
//! `<data-dir>/tokens/`, and prints the admin token once on stdout. The root private key is
//! never written anywhere, so the node can verify tokens but never mint one: new tokens are
//! baked offline from one a holder has (`micronode cli token bake`). From the next start,
//! `micronode node run` on this data directory authenticates with tokens instead of the cookie.

use std::path::PathBuf;

use anyhow::{bail, Context};
use micronode_api::tokens::{is_initialised, tenant_of, tokens_dir};
use micronode_api::TokenAuthority;
use micronode_node::LocalKeys;

use crate::config::NodeSettings;

/// Options of `micronode node init`.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Keep no key that can mint tokens on the node (the only mode: required).
    #[arg(long)]
    pub stateless: bool,
    /// A TOML file with settings (flags and MICRONODE_* variables override it); only the
    /// network and the data directory matter here.
    #[arg(long, short = 'c', env = "MICRONODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Allow mainnet. Only a flag can allow it, never a file or variable.
    #[arg(long)]
    pub allow_mainnet: bool,
    /// The node id (hex) the keys must have (a check; a remote-signer node is not initialised
    /// here: its signer bakes its tokens).
    #[arg(long)]
    pub node_id: Option<String>,
    /// The node's settings, as for `node run`.
    #[command(flatten)]
    pub settings: NodeSettings,
}

/// Runs `node init`.
pub fn run(args: InitArgs) -> anyhow::Result<()> {
    if !args.stateless {
        bail!(
            "pass --stateless: the node keeps only the token root's public key, so it verifies \
             tokens but can never mint one"
        );
    }
    let base = match args.config {
        Some(path) => NodeSettings::from_file(&path)?,
        None => NodeSettings::default(),
    };
    let resolved = base
        .overridden_by(args.settings)
        .resolve(args.allow_mainnet)?;
    let data_dir = &resolved.node.data_dir;
    if is_initialised(data_dir) {
        bail!(
            "{} already holds a token store; remove it to start afresh (every token of the \
             node stops working)",
            tokens_dir(data_dir).display()
        );
    }
    let tenant = match (resolved.remote_signer, args.node_id) {
        (Some(_), _) => bail!(
            "a remote-signer tenant's tokens are made by its signer, whose root key derives from \
             the tenant's seed: run `micronode signer token bake` on the signer. The node takes \
             the root's public key from the signer when it connects; nothing to initialise here"
        ),
        (None, id) => {
            let keys = LocalKeys::load_or_create(data_dir, resolved.node.network)
                .context("loading the node's keys")?;
            let tenant = tenant_of(&keys).context("the node's id")?;
            if id.is_some_and(|id| id != tenant) {
                bail!("--node-id does not match this node's keys ({tenant})");
            }
            tenant
        }
    };
    let admin =
        TokenAuthority::init_stateless(data_dir, &tenant).context("creating the token store")?;
    eprintln!(
        "Capability tokens initialised for node {tenant} in {}.\n\
         The node keeps only the root public key: it can verify tokens, never mint them.\n\
         This is the admin token, shown once and stored nowhere. Keep it secret and safe;\n\
         bake narrower tokens from it with `micronode cli --token <admin> token bake ...`.",
        tokens_dir(data_dir).display()
    );
    println!("{admin}");
    Ok(())
}
