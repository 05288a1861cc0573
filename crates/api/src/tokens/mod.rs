//! Capability tokens: biscuits signed by the node's root key, which the node can verify but,
//! after a stateless init, never mint.
//!
//! - [`TokenAuthority::init_stateless`] creates the root key pair, keeps only the public key
//!   (in `<data-dir>/tokens/tokens.sqlite`) and returns the admin token once.
//! - [`attenuate`] lets any holder narrow a token offline with [`Caveats`] (methods, expiry,
//!   budgets, per-payment maximum); the CLI then registers it with the node for listing.
//! - [`TokenAuthority`] is an [`Authenticator`]: every call is verified and authorised per
//!   method, and its [`Grant`] carries the token to the payment handlers, which reserve the
//!   payment's cost against every budget of the token's chain before paying.
//!
//! The vocabulary is in [`caveats`]; what is stored, in [`store`] and `docs/tokens.md`.

pub mod caveats;
mod error;
pub mod store;
#[cfg(test)]
mod tests;
pub mod verify;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::Algorithm;
use biscuit_auth::{Biscuit, KeyPair, PublicKey};
use tonic::metadata::MetadataMap;

pub use self::caveats::{
    attenuate, inspect, token_id, Budget, Caveats, MethodGroup, Period, TokenSummary,
};
pub use self::error::TokenError;
use self::store::{Spent, Store, TokenRow, META_ROOT_PUBLIC_KEY, META_TENANT};
use self::verify::{Phase, Verifier};
use crate::auth::{presented_bearer, Authenticator, Grant};

/// The folder of the token store inside a node's data directory. Its existence is what makes
/// a daemon use tokens instead of the cookie.
pub const TOKENS_DIR: &str = "tokens";

/// The token store's folder for a node's data directory.
pub fn tokens_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(TOKENS_DIR)
}

/// Whether the node in `data_dir` was initialised with tokens.
pub fn is_initialised(data_dir: &Path) -> bool {
    tokens_dir(data_dir).join(store::STORE_FILE).is_file()
}

/// The tenant of a node's tokens: its node id (hex), from its keys backend. Lets
/// `node init --stateless` run before the node ever started, without bitcoind.
pub fn tenant_of<K: micronode_node::KeysBackend>(keys: &K) -> Result<String, TokenError> {
    keys.get_node_id(lightning::sign::Recipient::Node)
        .map(|id| id.to_string())
        .map_err(|()| TokenError::Keys("the keys backend gave no node id".into()))
}

/// The tenant (node id) a token says it was made for, read WITHOUT checking its signature:
/// only a routing hint (a host's front door uses it to find the tenant whose authority then
/// verifies the token). `None` for text that is not a token or names no tenant.
pub fn claimed_tenant(text: &str) -> Option<String> {
    let text = text.trim();
    if text.len() > verify::MAX_TOKEN_LEN {
        return None;
    }
    biscuit_auth::UnverifiedBiscuit::from_base64(text)
        .ok()?
        .print_block_source(0)
        .ok()
        .and_then(|source| caveats::tenant_in(&source))
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// How many verified tokens [`TokenAuthority`] remembers, so that a token presented again skips
/// its signature checks (about 3/4 of the cost of a call); the Datalog and the revocation check
/// still run every time. When full, it is emptied.
const VERIFIED_CACHE: usize = 1024;

/// Verifies tokens, keeps the revocation list and the spending ledger of one node. Cheap to
/// clone (shared state).
#[derive(Clone)]
pub struct TokenAuthority {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    verifier: Verifier,
    store: Mutex<Store>,
    /// Revoked revocation ids: read on every call, so kept in memory (written through).
    revoked: RwLock<HashSet<Vec<u8>>>,
    /// Tokens whose signatures verified, by SHA-256 of their text.
    verified: Mutex<HashMap<[u8; 32], Arc<Biscuit>>>,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthority")
            .field("dir", &self.inner.dir)
            .field("tenant", &self.inner.verifier.tenant())
            .finish()
    }
}

/// A registered token as listed: ids, caveats and spending, never the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its ids and blocks.
    pub summary: TokenSummary,
    /// The label given at registration.
    pub label: String,
    /// Whether one of its revocation ids is revoked.
    pub revoked: bool,
    /// When it was registered (Unix seconds).
    pub registered_at: u64,
    /// What was spent through it (its last block) per period, in msat.
    pub spent: Spent,
}

/// The outcome of a revocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The revocation id added to the list (hex).
    pub revocation_id: String,
    /// Registered tokens it disables (the token and its registered descendants).
    pub revoked_ids: Vec<String>,
}

impl TokenAuthority {
    /// Initialises tokens for the node `tenant` (its node id) in `data_dir`, statelessly: makes
    /// a root key pair, stores only its public key, registers the admin token's ids and
    /// caveats, and returns the admin token. The root private key is dropped (and zeroed) on
    /// return and the token is never written: print it once and let the user keep it.
    pub fn init_stateless(data_dir: &Path, tenant: &str) -> Result<String, TokenError> {
        use biscuit_auth::builder::{fact, string};
        let dir = tokens_dir(data_dir);
        if dir.exists() {
            return Err(TokenError::AlreadyInitialised(dir));
        }
        let root = KeyPair::new_with_algorithm(Algorithm::Ed25519);
        let mut lineage = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut lineage);
        let token = Biscuit::builder()
            .fact(fact("tenant", &[string(tenant)]))
            .and_then(|b| b.fact(fact("token_id", &[string(&hex::encode(lineage))])))
            .and_then(|b| b.fact(fact("right", &[string(MethodGroup::Admin.as_str())])))
            .and_then(|b| b.build(&root))
            .map_err(TokenError::biscuit)?;
        let root_public = root.public().to_string();
        drop(root);
        // Written aside and renamed into place, so a half-made store never looks initialised.
        let staging = data_dir.join(format!(".{TOKENS_DIR}.{}", hex::encode(&lineage[..4])));
        let made = (|| {
            let store = Store::create(&staging)?;
            store.set_meta(META_ROOT_PUBLIC_KEY, &root_public)?;
            store.set_meta(META_TENANT, tenant)?;
            store.register(&row_of(&token, "admin (stateless init)")?)?;
            drop(store);
            std::fs::rename(&staging, &dir).map_err(TokenError::io(&dir))
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        made?;
        token.to_base64().map_err(TokenError::biscuit)
    }

    /// Opens the token store of a node whose tokens the tenant's signer mints (its root key
    /// derives from the tenant's seed): creates the store with `root_public` on first use,
    /// and follows the signer's root when the store holds another one (tokens of the old root,
    /// such as a node-side stateless init's, stop verifying). The node never sees a root
    /// private key. Blocking.
    pub fn open_for_signer(
        data_dir: &Path,
        tenant: &str,
        root_public: &str,
    ) -> Result<TokenAuthority, TokenError> {
        let _: PublicKey = root_public
            .parse()
            .map_err(|e| TokenError::Corrupt(format!("the signer's token root: {e}")))?;
        let dir = tokens_dir(data_dir);
        if !is_initialised(data_dir) {
            let staging = data_dir.join(format!(".{TOKENS_DIR}.signer"));
            let _ = std::fs::remove_dir_all(&staging);
            let made = (|| {
                let store = Store::create(&staging)?;
                store.set_meta(META_ROOT_PUBLIC_KEY, root_public)?;
                store.set_meta(META_TENANT, tenant)?;
                drop(store);
                std::fs::rename(&staging, &dir).map_err(TokenError::io(&dir))
            })();
            if made.is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
            made?;
        } else {
            let store = Store::open(&dir)?;
            if store.meta(META_ROOT_PUBLIC_KEY)?.as_deref() != Some(root_public) {
                tracing::warn!(
                    "the token store's root is not the tenant signer's: switching to the signer's \
                     root; tokens of the old root stop working"
                );
                store.set_meta(META_ROOT_PUBLIC_KEY, root_public)?;
            }
        }
        Self::open(data_dir, tenant)
    }

    /// Opens the token store of `data_dir` for the node `tenant`.
    pub fn open(data_dir: &Path, tenant: &str) -> Result<TokenAuthority, TokenError> {
        let dir = tokens_dir(data_dir);
        let store = Store::open(&dir)?;
        let corrupt = |what: &str| TokenError::Corrupt(format!("{what} missing"));
        let stored_tenant = store.meta(META_TENANT)?.ok_or_else(|| corrupt("tenant"))?;
        if stored_tenant != tenant {
            return Err(TokenError::TenantMismatch {
                path: dir,
                stored: stored_tenant,
                node: tenant.to_string(),
            });
        }
        let root: PublicKey = store
            .meta(META_ROOT_PUBLIC_KEY)?
            .ok_or_else(|| corrupt("root public key"))?
            .parse()
            .map_err(|e| TokenError::Corrupt(format!("root public key: {e}")))?;
        let revoked = store.revoked()?;
        Ok(TokenAuthority {
            inner: Arc::new(Inner {
                dir,
                verifier: Verifier::new(root, tenant)?,
                store: Mutex::new(store),
                revoked: RwLock::new(revoked),
                verified: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// [`TokenAuthority::open`] if `data_dir` was initialised with tokens, else `None`.
    pub fn open_if_initialised(
        data_dir: &Path,
        tenant: &str,
    ) -> Result<Option<TokenAuthority>, TokenError> {
        if is_initialised(data_dir) {
            Self::open(data_dir, tenant).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The root public key (`ed25519/<hex>`).
    pub fn root_public_key(&self) -> String {
        self.inner.verifier.root().to_string()
    }

    /// The node the tokens belong to.
    pub fn tenant(&self) -> &str {
        self.inner.verifier.tenant()
    }

    /// The store's folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Verifies `token` and authorises `method` with it. Cheap enough for every call: no disk.
    pub fn check(&self, method: &str, token: &str) -> Result<TokenGrant, TokenError> {
        let biscuit = self.verified(token)?;
        let revocation_ids = biscuit.revocation_identifiers();
        self.ensure_not_revoked(&revocation_ids)?;
        self.inner
            .verifier
            .authorize(&biscuit, method, Phase::Call)?;
        Ok(TokenGrant {
            authority: self.clone(),
            id: revocation_ids
                .last()
                .map(|r| token_id(r))
                .unwrap_or_default(),
            token: biscuit,
            method: method.to_string(),
            revocation_ids,
        })
    }

    /// `token` parsed and its signatures verified, from the cache if it was seen before. The
    /// same text always verifies the same way, so the cache changes no answer.
    fn verified(&self, token: &str) -> Result<Arc<Biscuit>, TokenError> {
        use bitcoin::hashes::{sha256, Hash};
        let key = sha256::Hash::hash(token.trim().as_bytes()).to_byte_array();
        let known = self
            .inner
            .verified
            .lock()
            .map_err(|_| TokenError::Poisoned)?
            .get(&key)
            .cloned();
        if let Some(known) = known {
            return Ok(known);
        }
        let biscuit = Arc::new(self.inner.verifier.verify(token)?);
        let mut cache = self
            .inner
            .verified
            .lock()
            .map_err(|_| TokenError::Poisoned)?;
        if cache.len() >= VERIFIED_CACHE {
            cache.clear();
        }
        cache.insert(key, biscuit.clone());
        Ok(biscuit)
    }

    fn ensure_not_revoked(&self, revocation_ids: &[Vec<u8>]) -> Result<(), TokenError> {
        let revoked = self
            .inner
            .revoked
            .read()
            .map_err(|_| TokenError::Poisoned)?;
        if revocation_ids.iter().any(|r| revoked.contains(r)) {
            return Err(TokenError::Revoked);
        }
        Ok(())
    }

    fn store(&self) -> Result<std::sync::MutexGuard<'_, Store>, TokenError> {
        self.inner.store.lock().map_err(|_| TokenError::Poisoned)
    }

    /// Registers a token of this node (verified, not revoked) under `label`; stores its ids
    /// and caveats only. Blocking (a disk write).
    pub fn register(&self, token: &str, label: &str) -> Result<TokenInfo, TokenError> {
        if label.len() > 64 {
            return Err(TokenError::Caveat("label: at most 64 bytes".into()));
        }
        let biscuit = self.inner.verifier.verify(token)?;
        let claimed = biscuit
            .print_block_source(0)
            .ok()
            .and_then(|s| caveats::tenant_in(&s));
        if claimed.as_deref() != Some(self.tenant()) {
            return Err(TokenError::WrongTenant(
                claimed.unwrap_or_else(|| "no tenant".into()),
            ));
        }
        self.ensure_not_revoked(&biscuit.revocation_identifiers())?;
        let row = row_of(&biscuit, label)?;
        self.store()?.register(&row)?;
        let id = row.id.clone();
        self.list()?
            .into_iter()
            .find(|t| t.summary.id == id)
            .ok_or_else(|| TokenError::Corrupt(format!("token {id} vanished after registering")))
    }

    /// Registered tokens, oldest first. Blocking (disk reads).
    pub fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        let store = self.store()?;
        let revoked = self
            .inner
            .revoked
            .read()
            .map_err(|_| TokenError::Poisoned)?;
        let now = now();
        store
            .tokens()?
            .into_iter()
            .map(|row| {
                let spent = match row.revocation_ids.last() {
                    Some(last) => store.spent(last, now)?,
                    None => Spent::default(),
                };
                Ok(TokenInfo {
                    revoked: row.revocation_ids.iter().any(|r| revoked.contains(r)),
                    summary: TokenSummary::new(&row.revocation_ids, row.blocks),
                    label: row.label,
                    registered_at: row.registered_at,
                    spent,
                })
            })
            .collect()
    }

    /// Revokes by a registered token's id or by a revocation id (hex). Effective for the next
    /// call; every token attenuated from the revoked one is revoked with it. Blocking.
    pub fn revoke(&self, id: &str) -> Result<Revocation, TokenError> {
        let id = id.trim().to_ascii_lowercase();
        let store = self.store()?;
        let tokens = store.tokens()?;
        let revocation_id = match tokens.iter().find(|t| t.id == id) {
            Some(t) => t.revocation_ids.last().cloned(),
            None if id.len() == 128 => hex::decode(&id).ok(),
            None => None,
        }
        .ok_or_else(|| TokenError::UnknownToken(id.clone()))?;
        store.revoke(&revocation_id, now())?;
        self.inner
            .revoked
            .write()
            .map_err(|_| TokenError::Poisoned)?
            .insert(revocation_id.clone());
        let revoked_ids = tokens
            .iter()
            .filter(|t| t.revocation_ids.contains(&revocation_id))
            .map(|t| t.id.clone())
            .collect();
        tracing::info!(revocation_id = %hex::encode(&revocation_id), "token revoked");
        Ok(Revocation {
            revocation_id: hex::encode(revocation_id),
            revoked_ids,
        })
    }

    /// Records that a reserved spend belongs to `payment_id`. Blocking.
    pub(crate) fn attach_spend(
        &self,
        spend: SpendId,
        payment_id: &[u8; 32],
    ) -> Result<(), TokenError> {
        self.store()?.attach(spend.0, payment_id, now())
    }

    /// A reserved spend's payment succeeded at `cost_msat` (`None`: unknown, keep the reserved
    /// cost). Blocking.
    pub(crate) fn settle_spend(
        &self,
        spend: SpendId,
        cost_msat: Option<u64>,
    ) -> Result<(), TokenError> {
        self.store()?.settle(spend.0, cost_msat, now())
    }

    /// A reserved spend's payment failed or never started. Blocking.
    pub(crate) fn release_spend(&self, spend: SpendId) -> Result<(), TokenError> {
        self.store()?.release(spend.0, now())
    }

    /// Spends still reserved (payments in flight, or whose outcome was not seen before a
    /// restart). Blocking.
    pub(crate) fn open_spends(&self) -> Result<Vec<OpenSpend>, TokenError> {
        Ok(self
            .store()?
            .open_spends()?
            .into_iter()
            .map(|(id, payment)| (SpendId(id), payment))
            .collect())
    }
}

impl Authenticator for TokenAuthority {
    fn authorize(&self, method: &str, metadata: &MetadataMap) -> Result<Grant, tonic::Status> {
        let token = presented_bearer(metadata)
            .map_err(|missing| {
                if missing {
                    TokenError::Missing
                } else {
                    TokenError::Invalid("malformed credentials: expected `Bearer <token>`".into())
                }
            })
            .map_err(|e| e.to_status())?;
        self.check(method, token)
            .map(|grant| Grant::token(Arc::new(grant)))
            .map_err(|e| e.to_status())
    }

    fn token_authority(&self) -> Option<TokenAuthority> {
        Some(self.clone())
    }
}

/// The row registering `token`.
fn row_of(token: &Biscuit, label: &str) -> Result<TokenRow, TokenError> {
    let revocation_ids = token.revocation_identifiers();
    let blocks = (0..token.block_count())
        .map(|i| token.print_block_source(i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TokenError::biscuit)?;
    Ok(TokenRow {
        id: revocation_ids
            .last()
            .map(|r| token_id(r))
            .unwrap_or_default(),
        revocation_ids,
        label: label.to_string(),
        blocks,
        registered_at: now(),
    })
}

/// A reserved spend in the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpendId(i64);

/// A spend still reserved, and its payment's id once known.
pub(crate) type OpenSpend = (SpendId, Option<[u8; 32]>);

/// A verified token's permission for one call. Reaches the handlers through the request's
/// extensions (inside a [`Grant`]).
pub struct TokenGrant {
    authority: TokenAuthority,
    token: Arc<Biscuit>,
    id: String,
    method: String,
    revocation_ids: Vec<Vec<u8>>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("TokenGrant")
            .field("id", &self.id)
            .field("method", &self.method)
            .finish()
    }
}

impl TokenGrant {
    /// The token's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The token as presented (base64), for the tenant's signer to verify again.
    pub fn token_base64(&self) -> Result<String, TokenError> {
        self.token.to_base64().map_err(TokenError::biscuit)
    }

    /// The authority that granted it.
    pub fn authority(&self) -> &TokenAuthority {
        &self.authority
    }

    /// Reserves `cost_msat` for a payment: re-checks revocation, then, atomically with the
    /// ledger, evaluates every caveat of the token with what was already spent through each of
    /// its blocks, and records the reservation in the ledger of every block. Blocking.
    pub fn reserve_spend(
        &self,
        cost_msat: u64,
        payment_id: Option<[u8; 32]>,
    ) -> Result<SpendId, TokenError> {
        self.authority.ensure_not_revoked(&self.revocation_ids)?;
        let verifier = &self.authority.inner.verifier;
        let mut store = self.authority.store()?;
        let id = store.reserve(
            &self.revocation_ids,
            cost_msat,
            payment_id,
            now(),
            |spent| {
                verifier.authorize(&self.token, &self.method, Phase::Spend { cost_msat, spent })
            },
        )?;
        Ok(SpendId(id))
    }
}
