//! App connections: one per app, each with its own key pairs, permissions, budget and expiry.
//!
//! Each connection has two key pairs:
//! - the **app key**: its secret goes into the connection URI and is never stored here (NIP-47:
//!   the wallet service "SHOULD NOT store the secret it generates for the client"), so the URI
//!   can be shown once only;
//! - its own **wallet-service key**: the URI's `<wallet-pubkey>`. Requests are routed by the
//!   `p` tag to exactly one connection, revoking one connection touches no other, and two apps
//!   cannot tell they talk to the same wallet. These secrets are NWC keys only: they sign
//!   responses and decrypt requests, and can move no money by themselves.

use std::collections::BTreeSet;

use micronode_signer_protocol::app_request::Delegation;
use nostr_sdk::nips::nip47::NostrWalletConnectURI;
use nostr_sdk::{Keys, PublicKey, RelayUrl, SecretKey};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::budget::{Budget, BudgetRenewal};
use crate::error::NwcError;
use crate::protocol::Method;
use crate::store::{to_i64, to_u64, NwcStore};
use crate::util::now_secs;

/// What a new connection may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSpec {
    /// A name for humans (e.g. the app's name). Names need not be unique.
    pub name: String,
    /// Allowed methods (`get_info` is always allowed).
    pub methods: BTreeSet<Method>,
    /// Whether the app gets `payment_received` / `payment_sent` notifications.
    pub notifications: bool,
    /// A spending budget; `None` means no limit beyond the wallet's balance.
    pub budget: Option<Budget>,
    /// Unix seconds after which the connection stops working.
    pub expires_at: Option<u64>,
}

impl ConnectionSpec {
    /// Every supported method, notifications, no budget, no expiry.
    pub fn full(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            methods: Method::SUPPORTED.into_iter().collect(),
            notifications: true,
            budget: None,
            expires_at: None,
        }
    }

    /// Read-only: info, balance, lookups, listing; notifications.
    pub fn read_only(name: impl Into<String>) -> Self {
        Self {
            methods: [
                Method::GetInfo,
                Method::GetBalance,
                Method::LookupInvoice,
                Method::ListTransactions,
            ]
            .into_iter()
            .collect(),
            ..Self::full(name)
        }
    }

    /// Sets the allowed methods.
    pub fn with_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// Sets a budget.
    pub fn with_budget(mut self, amount_msat: u64, renewal: BudgetRenewal) -> Self {
        self.budget = Some(Budget {
            amount_msat,
            renewal,
        });
        self
    }

    /// Sets an expiry (unix seconds).
    pub fn with_expiry(mut self, expires_at: u64) -> Self {
        self.expires_at = Some(expires_at);
        self
    }
}

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Usable.
    Active,
    /// Revoked by the tenant.
    Revoked,
    /// Past its expiry.
    Expired,
}

/// A stored connection (without any secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Connection {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The app's public key: requests must be signed by it.
    pub app_pubkey: PublicKey,
    /// This connection's wallet-service public key (the URI's host part).
    pub wallet_pubkey: PublicKey,
    /// Allowed methods.
    pub methods: BTreeSet<Method>,
    /// Whether notifications are sent.
    pub notifications: bool,
    /// The budget, if any.
    pub budget: Option<Budget>,
    /// Expiry (unix seconds), if any.
    pub expires_at: Option<u64>,
    /// Created (unix seconds).
    pub created_at: u64,
    /// Revoked (unix seconds), if it was.
    pub revoked_at: Option<u64>,
    /// The delegation of the tenant's app (its browser wallet) that made this connection for
    /// an app key it made, attached to every payment for the tenant's signer to check; `None`
    /// for a connection whose app key the signer or this service made. Not serialised: it
    /// carries the delegating app's token.
    #[serde(skip_serializing)]
    pub delegation: Option<Delegation>,
}

impl Connection {
    /// Where it stands at `now`.
    pub fn status(&self, now: u64) -> ConnectionStatus {
        if self.revoked_at.is_some() {
            ConnectionStatus::Revoked
        } else if self.expires_at.is_some_and(|e| now >= e) {
            ConnectionStatus::Expired
        } else {
            ConnectionStatus::Active
        }
    }

    /// Whether it may call `method` (supported, and granted or always allowed).
    pub fn allows(&self, method: Method) -> bool {
        method.is_supported() && (method == Method::GetInfo || self.methods.contains(&method))
    }

    /// The methods it may call, as `get_info` and the info event list them.
    pub fn allowed_methods(&self) -> Vec<Method> {
        Method::SUPPORTED
            .into_iter()
            .filter(|m| self.allows(*m))
            .collect()
    }
}

/// A connection just created, with the URI that carries its app secret. The secret exists
/// only here: show the URI (and its QR code) now; it cannot be shown again.
pub struct NewConnection {
    /// The stored connection.
    pub connection: Connection,
    uri: NostrWalletConnectURI,
}

impl NewConnection {
    /// `nostr+walletconnect://<wallet-pubkey>?relay=<url>&secret=<hex>`.
    pub fn uri(&self) -> String {
        self.uri.to_string()
    }

    /// The parsed URI (for clients in tests).
    pub fn nwc_uri(&self) -> &NostrWalletConnectURI {
        &self.uri
    }
}

impl std::fmt::Debug for NewConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConnection")
            .field("connection", &self.connection)
            .field("uri", &"<secret>")
            .finish()
    }
}

const COLUMNS: &str = "id, name, app_pubkey, service_pubkey, methods, notifications, budget_msat,
    budget_renewal, expires_at, created_at, revoked_at, delegation";

/// The column after [`COLUMNS`], where the service key is selected with them.
const SERVICE_SECRET: usize = 12;

fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("bad {what}").into(),
    )
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Connection> {
    let pk = |i: usize, what: &str| -> rusqlite::Result<PublicKey> {
        PublicKey::from_hex(&row.get::<_, String>(i)?).map_err(|_| corrupt(what))
    };
    let methods: String = row.get(4)?;
    let budget_msat: Option<i64> = row.get(6)?;
    let renewal: String = row.get(7)?;
    let renewal = renewal
        .parse::<BudgetRenewal>()
        .map_err(|_| corrupt("budget renewal"))?;
    Ok(Connection {
        id: row.get(0)?,
        name: row.get(1)?,
        app_pubkey: pk(2, "app pubkey")?,
        wallet_pubkey: pk(3, "service pubkey")?,
        methods: methods
            .split_whitespace()
            .filter_map(|m| m.parse().ok())
            .collect(),
        notifications: row.get::<_, i64>(5)? != 0,
        budget: budget_msat.map(|b| Budget {
            amount_msat: to_u64(b),
            renewal,
        }),
        expires_at: row.get::<_, Option<i64>>(8)?.map(to_u64),
        created_at: to_u64(row.get(9)?),
        revoked_at: row.get::<_, Option<i64>>(10)?.map(to_u64),
        delegation: row
            .get::<_, Option<String>>(11)?
            .map(|json| serde_json::from_str(&json).map_err(|_| corrupt("delegation")))
            .transpose()?,
    })
}

/// Inserts a connection for the app key `app_pubkey`, or for a new app key made here when it is
/// `None` (the URI then carries its secret), with the delegation that made it, if any.
fn insert(
    tx: &rusqlite::Transaction<'_>,
    spec: &ConnectionSpec,
    relays: &[RelayUrl],
    app_pubkey: Option<PublicKey>,
    delegation: Option<&Delegation>,
) -> Result<NewConnection, NwcError> {
    if relays.is_empty() {
        return Err(NwcError::Config(
            "a connection needs at least one relay".into(),
        ));
    }
    // An app key made elsewhere (by the tenant's signer or browser wallet) has its secret there
    // only; the URI built here then carries a throwaway secret and is not shown.
    let app = Keys::generate();
    let app_public = app_pubkey.unwrap_or_else(|| app.public_key());
    let service = Keys::generate();
    let methods: Vec<&str> = spec.methods.iter().map(|m| m.as_str()).collect();
    let delegation = delegation
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| NwcError::Internal(format!("cannot write the delegation: {e}")))?;
    let now = now_secs();
    tx.execute(
        "INSERT INTO connections (name, app_pubkey, service_secret, service_pubkey, methods,
             notifications, budget_msat, budget_renewal, expires_at, created_at, delegation)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            spec.name,
            app_public.to_hex(),
            service.secret_key().to_secret_hex(),
            service.public_key().to_hex(),
            methods.join(" "),
            i64::from(spec.notifications),
            spec.budget.map(|b| to_i64(b.amount_msat)),
            spec.budget
                .map(|b| b.renewal)
                .unwrap_or(BudgetRenewal::Never)
                .as_str(),
            spec.expires_at.map(to_i64),
            to_i64(now),
            delegation,
        ],
    )?;
    let id = tx.last_insert_rowid();
    let connection = tx.query_row(
        &format!("SELECT {COLUMNS} FROM connections WHERE id = ?1"),
        [id],
        from_row,
    )?;
    let uri = NostrWalletConnectURI::new(
        service.public_key(),
        relays.to_vec(),
        app.secret_key().clone(),
        None,
    );
    Ok(NewConnection { connection, uri })
}

impl NwcStore {
    /// Creates a connection reachable over `relays`.
    pub fn create_connection(
        &self,
        spec: &ConnectionSpec,
        relays: &[RelayUrl],
    ) -> Result<NewConnection, NwcError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let new = insert(&tx, spec, relays, None, None)?;
        tx.commit()?;
        Ok(new)
    }

    /// Revokes every active connection named `spec.name` and creates a new one, atomically:
    /// for `app_pubkey` when given (an app whose key the tenant's signer made, `micronode
    /// signer token nwc`, so the operator can never sign as the app; the URI is then made by
    /// whoever holds the app's secret, with [`Connection::wallet_pubkey`]), else for a new app
    /// key made here. `micronode up` shows a fresh connection on every run this way.
    pub fn replace_connection(
        &self,
        spec: &ConnectionSpec,
        relays: &[RelayUrl],
        app_pubkey: Option<PublicKey>,
    ) -> Result<NewConnection, NwcError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE connections SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            params![spec.name, to_i64(now_secs())],
        )?;
        let new = insert(&tx, spec, relays, app_pubkey, None)?;
        tx.commit()?;
        Ok(new)
    }

    /// A connection for an app whose key the tenant's signer made: see
    /// [`NwcStore::replace_connection`].
    pub fn create_connection_for_app(
        &self,
        spec: &ConnectionSpec,
        relays: &[RelayUrl],
        app_pubkey: PublicKey,
    ) -> Result<Connection, NwcError> {
        self.replace_connection(spec, relays, Some(app_pubkey))
            .map(|new| new.connection)
    }

    /// A connection for `app_pubkey`, a key made elsewhere (its secret is there only), with
    /// the `delegation` that made it (the tenant's browser wallet's, [`Delegation`]), attached
    /// to every payment of the connection. Unlike [`NwcStore::create_connection_for_app`] it
    /// revokes no other connection, whatever its name. An app key may have one connection only.
    pub fn create_connection_for_app_with(
        &self,
        spec: &ConnectionSpec,
        relays: &[RelayUrl],
        app_pubkey: PublicKey,
        delegation: Option<Delegation>,
    ) -> Result<Connection, NwcError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let taken: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM connections WHERE app_pubkey = ?1)",
            [app_pubkey.to_hex()],
            |r| r.get(0),
        )?;
        if taken {
            return Err(NwcError::Config(
                "this app key has a connection already; make a new key".into(),
            ));
        }
        let new = insert(&tx, spec, relays, Some(app_pubkey), delegation.as_ref())?;
        tx.commit()?;
        Ok(new.connection)
    }

    /// Every connection, oldest first (revoked and expired ones included).
    pub fn list_connections(&self) -> Result<Vec<Connection>, NwcError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM connections ORDER BY id"))?;
        let rows = stmt
            .query_map([], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// One connection by id.
    pub fn connection(&self, id: i64) -> Result<Option<Connection>, NwcError> {
        Ok(self
            .lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM connections WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// Finds connections by id (a number) or by name.
    pub fn find_connections(&self, id_or_name: &str) -> Result<Vec<Connection>, NwcError> {
        if let Ok(id) = id_or_name.parse::<i64>() {
            return Ok(self.connection(id)?.into_iter().collect());
        }
        Ok(self
            .list_connections()?
            .into_iter()
            .filter(|c| c.name == id_or_name)
            .collect())
    }

    /// Revokes a connection; its next request gets `UNAUTHORIZED`. Returns whether it was
    /// not revoked before.
    pub fn revoke_connection(&self, id: i64) -> Result<bool, NwcError> {
        let changed = self.lock().execute(
            "UPDATE connections SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, to_i64(now_secs())],
        )?;
        if changed == 0 && self.connection(id)?.is_none() {
            return Err(NwcError::UnknownConnection(id.to_string()));
        }
        Ok(changed > 0)
    }

    /// The connection whose wallet-service key is `wallet_pubkey`, with that key.
    pub(crate) fn connection_by_wallet_pubkey(
        &self,
        wallet_pubkey: &PublicKey,
    ) -> Result<Option<(Connection, Keys)>, NwcError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS}, service_secret FROM connections WHERE service_pubkey = ?1"
                ),
                [wallet_pubkey.to_hex()],
                |row| Ok((from_row(row)?, row.get::<_, String>(SERVICE_SECRET)?)),
            )
            .optional()?;
        match row {
            None => Ok(None),
            Some((c, secret)) => {
                let secret = SecretKey::from_hex(&secret).map_err(|_| {
                    NwcError::Corrupt(format!("service key of connection {}", c.id))
                })?;
                Ok(Some((c, Keys::new(secret))))
            }
        }
    }

    /// Every connection with its wallet-service key (for the info events, notifications
    /// and the subscription).
    pub(crate) fn connections_with_keys(&self) -> Result<Vec<(Connection, Keys)>, NwcError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS}, service_secret FROM connections ORDER BY id"
        ))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((from_row(row)?, row.get::<_, String>(SERVICE_SECRET)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(c, secret)| {
                let secret = SecretKey::from_hex(&secret).map_err(|_| {
                    NwcError::Corrupt(format!("service key of connection {}", c.id))
                })?;
                Ok((c, Keys::new(secret)))
            })
            .collect()
    }

    /// Records the tenant's Nostr public key: the only key allowed to manage connections
    /// remotely (see [`crate::management`]).
    pub fn set_tenant_pubkey(&self, tenant: &PublicKey) -> Result<(), NwcError> {
        self.set_meta("tenant_pubkey", &tenant.to_hex())
    }

    /// The tenant's Nostr public key, if recorded.
    pub fn tenant_pubkey(&self) -> Result<Option<PublicKey>, NwcError> {
        match self.meta("tenant_pubkey")? {
            None => Ok(None),
            Some(hex) => PublicKey::from_hex(&hex)
                .map(Some)
                .map_err(|_| NwcError::Corrupt("tenant_pubkey".into())),
        }
    }

    /// Records the relays the service uses (so the CLI builds URIs for them).
    pub fn set_relays(&self, relays: &[RelayUrl]) -> Result<(), NwcError> {
        let list: Vec<&str> = relays.iter().map(|r| r.as_str()).collect();
        self.set_meta("relays", &list.join(" "))
    }

    /// The relays the service last ran with.
    pub fn relays(&self) -> Result<Vec<RelayUrl>, NwcError> {
        Ok(self
            .meta("relays")?
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|u| RelayUrl::parse(u).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::Tmp;

    fn relays() -> Vec<RelayUrl> {
        vec![RelayUrl::parse("ws://127.0.0.1:7777").unwrap()]
    }

    #[test]
    fn create_list_revoke_and_uri() {
        let dir = Tmp::new("conns");
        let store = NwcStore::open(&dir.0).unwrap();
        let spec = ConnectionSpec::full("app")
            .with_budget(10_000_000, BudgetRenewal::Daily)
            .with_expiry(now_secs() + 3600);
        let new = store.create_connection(&spec, &relays()).unwrap();
        let uri = NostrWalletConnectURI::parse(new.uri()).unwrap();
        assert_eq!(uri.public_key, new.connection.wallet_pubkey);
        assert_eq!(
            Keys::new(uri.secret.clone()).public_key(),
            new.connection.app_pubkey
        );
        assert!(new.uri().starts_with("nostr+walletconnect://"));
        assert!(!format!("{new:?}").contains(&uri.secret_hex_for_test()));
        // The app secret is stored nowhere.
        let secret_hex = uri.secret_hex_for_test();
        for suffix in ["", "-wal"] {
            let mut p = store.path().as_os_str().to_owned();
            p.push(suffix);
            let bytes = std::fs::read(&p).unwrap_or_default();
            assert!(!String::from_utf8_lossy(&bytes).contains(&secret_hex));
        }

        let (found, keys) = store
            .connection_by_wallet_pubkey(&new.connection.wallet_pubkey)
            .unwrap()
            .unwrap();
        assert_eq!(found, new.connection);
        assert_eq!(keys.public_key(), found.wallet_pubkey);
        assert_eq!(found.status(now_secs()), ConnectionStatus::Active);
        assert_eq!(found.status(now_secs() + 7200), ConnectionStatus::Expired);
        assert!(found.allows(Method::PayInvoice));
        assert!(!found.allows(Method::MakeHoldInvoice));

        assert!(store.revoke_connection(found.id).unwrap());
        assert!(!store.revoke_connection(found.id).unwrap());
        assert!(store.revoke_connection(999).is_err());
        let listed = store.list_connections().unwrap();
        assert_eq!(listed[0].status(now_secs()), ConnectionStatus::Revoked);

        let ro = ConnectionSpec::read_only("ro");
        let a = store.create_connection(&ro, &relays()).unwrap();
        let b = store.replace_connection(&ro, &relays(), None).unwrap();
        assert_ne!(a.connection.wallet_pubkey, b.connection.wallet_pubkey);
        let by_name = store.find_connections("ro").unwrap();
        assert_eq!(by_name.len(), 2);
        assert_eq!(by_name[0].status(now_secs()), ConnectionStatus::Revoked);
        assert_eq!(by_name[1].status(now_secs()), ConnectionStatus::Active);
        assert!(!by_name[1].allows(Method::PayInvoice));
        assert!(by_name[1].allows(Method::GetInfo));
        assert!(store.create_connection(&ro, &[]).is_err());
    }

    #[test]
    fn a_connection_keeps_the_delegation_that_made_it() {
        use micronode_signer_protocol::app_request::{delegation_target, Delegation};
        use micronode_signer_protocol::{AppMethod, AppRequest};
        let dir = Tmp::new("delegation");
        let store = NwcStore::open(&dir.0).unwrap();
        let app = Keys::generate().public_key();
        let delegation = Delegation {
            token: "token".into(),
            request: AppRequest::new(
                AppMethod::DelegateNwc,
                delegation_target(&app.to_hex(), 0, Some(2_000_000_000)),
                1_000,
            )
            .sign(&micronode_signer_protocol::app_request::new_client_key()),
        };
        let spec = ConnectionSpec::full("shop").with_budget(1_000, BudgetRenewal::Never);
        // Another connection of the same name stays: a delegated one replaces nothing.
        let other = store.create_connection(&spec, &relays()).unwrap();
        let made = store
            .create_connection_for_app_with(&spec, &relays(), app, Some(delegation.clone()))
            .unwrap();
        assert_eq!(made.delegation.as_ref(), Some(&delegation));
        assert_eq!(made.app_pubkey, app);
        let listed = store.list_connections().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].id, other.connection.id);
        assert_eq!(listed[0].status(now_secs()), ConnectionStatus::Active);
        assert_eq!(listed[0].delegation, None);
        let (found, _) = store
            .connection_by_wallet_pubkey(&made.wallet_pubkey)
            .unwrap()
            .unwrap();
        assert_eq!(found, made);
        // One connection per app key.
        assert!(store
            .create_connection_for_app_with(&spec, &relays(), app, None)
            .is_err());
        // The token is not in its JSON.
        assert!(!serde_json::to_string(&made).unwrap().contains("token"));
    }

    #[test]
    fn a_store_made_before_delegations_is_migrated() {
        let dir = Tmp::new("v1");
        std::fs::create_dir_all(&dir.0).unwrap();
        {
            // Version 1's connections table, with one connection.
            let conn = rusqlite::Connection::open(dir.0.join(crate::store::DB_FILE_NAME)).unwrap();
            conn.execute_batch(&format!(
                "CREATE TABLE connections (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
                    app_pubkey TEXT NOT NULL UNIQUE, service_secret TEXT NOT NULL,
                    service_pubkey TEXT NOT NULL UNIQUE, methods TEXT NOT NULL,
                    notifications INTEGER NOT NULL, budget_msat INTEGER,
                    budget_renewal TEXT NOT NULL, expires_at INTEGER,
                    created_at INTEGER NOT NULL, revoked_at INTEGER);
                 INSERT INTO connections (name, app_pubkey, service_secret, service_pubkey,
                    methods, notifications, budget_renewal, created_at)
                 VALUES ('old', '{}', '{}', '{}', 'pay_invoice', 1, 'never', 1);
                 PRAGMA user_version = 1;",
                Keys::generate().public_key().to_hex(),
                Keys::generate().secret_key().to_secret_hex(),
                Keys::generate().public_key().to_hex(),
            ))
            .unwrap();
        }
        let store = NwcStore::open(&dir.0).unwrap();
        let old = store.list_connections().unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(
            (old[0].name.as_str(), old[0].delegation.as_ref()),
            ("old", None)
        );
        store
            .create_connection(&ConnectionSpec::full("new"), &relays())
            .unwrap();
        drop(store);
        let store = NwcStore::open(&dir.0).unwrap();
        assert_eq!(store.list_connections().unwrap().len(), 2);
        let version: i64 = store
            .lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);
    }

    #[test]
    fn tenant_and_relays_persist() {
        let dir = Tmp::new("tenant");
        let store = NwcStore::open(&dir.0).unwrap();
        assert_eq!(store.tenant_pubkey().unwrap(), None);
        let tenant = Keys::generate().public_key();
        store.set_tenant_pubkey(&tenant).unwrap();
        store.set_relays(&relays()).unwrap();
        drop(store);
        let store = NwcStore::open(&dir.0).unwrap();
        assert_eq!(store.tenant_pubkey().unwrap(), Some(tenant));
        assert_eq!(store.relays().unwrap(), relays());
    }

    trait SecretHex {
        fn secret_hex_for_test(&self) -> String;
    }
    impl SecretHex for NostrWalletConnectURI {
        fn secret_hex_for_test(&self) -> String {
            self.secret.to_secret_hex()
        }
    }
}
