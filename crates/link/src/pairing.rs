//! The node's durable pairing state: the pending one-time code and the paired signer's key.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::code::PairingCode;
use crate::error::{LinkError, Result};
use crate::fsutil;
use crate::identity::KEY_LEN;

/// Name of the state file inside the store's directory.
pub const PAIRING_FILE_NAME: &str = "link-pairing.json";

/// How long a pairing code stays valid unless the caller says otherwise.
pub const DEFAULT_PAIRING_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Clone)]
struct Pending {
    /// The Noise PSK derived from the code (a hash of it, but secret-equivalent until used).
    psk: Zeroizing<[u8; 32]>,
    expires_at: u64,
}

#[derive(Clone, Default)]
struct State {
    paired_signer: Option<[u8; KEY_LEN]>,
    paired_at: Option<u64>,
    pending: Option<Pending>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct StateFile {
    version: u32,
    paired_signer: Option<String>,
    paired_at: Option<u64>,
    pending: Option<PendingFile>,
}

#[derive(Serialize, Deserialize, Zeroize)]
struct PendingFile {
    psk: String,
    expires_at: u64,
}

/// The node side's pairing state, kept in `link-pairing.json` (mode 0600) in a directory, or
/// wherever a [`PairingPersistence`] keeps it (a fleet node: its database store).
///
/// At most one pairing code is pending at a time, and at most one signer is paired. A
/// successful pairing pins the new signer (replacing any earlier one) and consumes the
/// code in one atomic, durable step, so a code works exactly once. The file holds the
/// pending code's PSK, never the code itself; the PSK is deleted when the code is used,
/// cancelled or replaced. Share one store (in an `Arc`) between the listener and whatever
/// creates codes.
pub struct PairingStore {
    path: PathBuf,
    persistence: Box<dyn PairingPersistence>,
    state: Mutex<State>,
}

/// Where a [`PairingStore`] keeps its state, when not in a file of its own: a node whose
/// state is in a fleet's database keeps it there, so whichever host runs the node knows
/// which signer is paired with it.
pub trait PairingPersistence: Send + Sync {
    /// The stored state, if any (it holds the pending code's key: keep it private).
    fn load(&self) -> Result<Option<Zeroizing<Vec<u8>>>>;
    /// Replaces the stored state, durably, before returning.
    fn save(&self, state: &[u8]) -> Result<()>;
}

/// The pairing state in a private file.
struct PairingFile(PathBuf);

impl PairingPersistence for PairingFile {
    fn load(&self) -> Result<Option<Zeroizing<Vec<u8>>>> {
        Ok(fsutil::read_private(&self.0)?.map(Zeroizing::new))
    }
    fn save(&self, state: &[u8]) -> Result<()> {
        fsutil::write_private_atomic(&self.0, state)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl PairingStore {
    /// Opens (or starts) the pairing state in `dir`, creating the directory (mode 0700) if
    /// needed.
    pub fn open(dir: &Path) -> Result<Self> {
        fsutil::ensure_private_dir(dir)?;
        let path = dir.join(PAIRING_FILE_NAME);
        Self::with_persistence(path.clone(), Box::new(PairingFile(path)))
    }

    /// Opens (or starts) the pairing state kept by `persistence`; `name` says where it is in
    /// messages (the store's [`path`](Self::path)).
    pub fn with_persistence(
        name: PathBuf,
        persistence: Box<dyn PairingPersistence>,
    ) -> Result<Self> {
        let state = match persistence.load()? {
            Some(bytes) => parse_state(&name, &bytes)?,
            None => State::default(),
        };
        Ok(Self {
            path: name,
            persistence,
            state: Mutex::new(state),
        })
    }

    /// The state file's path (or the name given to [`with_persistence`](Self::with_persistence)).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` to a copy of the state, writes it, and only then makes it current.
    fn update<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.lock();
        let mut next = guard.clone();
        let out = change(&mut next)?;
        self.persistence.save(&encode_state(&self.path, &next)?)?;
        *guard = next;
        Ok(out)
    }

    /// Creates a new one-time pairing code valid for `ttl`, replacing any pending one. Show
    /// [`PairingCode::reveal`] to the tenant.
    pub fn new_pairing_code(&self, ttl: Duration) -> Result<PairingCode> {
        let code = PairingCode::generate();
        let psk = code.psk();
        let expires_at = now_secs().saturating_add(ttl.as_secs().max(1));
        self.update(|s| {
            s.pending = Some(Pending { psk, expires_at });
            Ok(())
        })?;
        Ok(code)
    }

    /// Withdraws the pending pairing code, if any.
    pub fn cancel_pairing(&self) -> Result<()> {
        self.update(|s| {
            s.pending = None;
            Ok(())
        })
    }

    /// When the pending pairing code expires, if one is pending and still valid.
    pub fn pending_expiry(&self) -> Option<SystemTime> {
        let state = self.lock();
        let pending = state.pending.as_ref()?;
        (pending.expires_at > now_secs())
            .then(|| UNIX_EPOCH + Duration::from_secs(pending.expires_at))
    }

    /// The paired signer's static public key, if a signer is paired.
    pub fn paired_signer(&self) -> Option<[u8; KEY_LEN]> {
        self.lock().paired_signer
    }

    /// When the current signer was paired (or pinned).
    pub fn paired_at(&self) -> Option<SystemTime> {
        self.lock()
            .paired_at
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
    }

    /// Pins a signer key directly, without a pairing code (e.g. when migrating a node).
    pub fn pin_signer(&self, signer_key: [u8; KEY_LEN]) -> Result<()> {
        self.update(|s| {
            s.paired_signer = Some(signer_key);
            s.paired_at = Some(now_secs());
            Ok(())
        })
    }

    /// Forgets the paired signer: it can no longer connect until it pairs again.
    pub fn unpair(&self) -> Result<()> {
        self.update(|s| {
            s.paired_signer = None;
            s.paired_at = None;
            Ok(())
        })
    }

    /// The PSK of the pending code, for a pairing handshake.
    pub(crate) fn pending_psk(&self) -> Result<Zeroizing<[u8; 32]>> {
        let state = self.lock();
        let pending = state.pending.as_ref().ok_or(LinkError::NoPendingPairing)?;
        if pending.expires_at <= now_secs() {
            return Err(LinkError::PairingCodeExpired);
        }
        Ok(pending.psk.clone())
    }

    /// Consumes the pending code (which must still be the one with `psk`) and pins `signer`.
    pub(crate) fn complete_pairing(&self, psk: &[u8; 32], signer: [u8; KEY_LEN]) -> Result<()> {
        self.update(|s| {
            let pending = s.pending.as_ref().ok_or(LinkError::PairingCodeUsed)?;
            if *pending.psk != *psk {
                return Err(LinkError::PairingCodeUsed);
            }
            if pending.expires_at <= now_secs() {
                return Err(LinkError::PairingCodeExpired);
            }
            s.pending = None;
            s.paired_signer = Some(signer);
            s.paired_at = Some(now_secs());
            Ok(())
        })
    }
}

impl std::fmt::Debug for PairingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("PairingStore")
            .field("path", &self.path)
            .field(
                "paired_signer",
                &state.paired_signer.as_ref().map(crate::fingerprint),
            )
            .field("pairing_pending", &state.pending.is_some())
            .finish()
    }
}

fn parse_state(path: &Path, bytes: &[u8]) -> Result<State> {
    let corrupt = |reason: &str| LinkError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let file: StateFile =
        serde_json::from_slice(bytes).map_err(|_| corrupt("not a link pairing file"))?;
    if file.version != 1 {
        return Err(corrupt("unsupported pairing file version"));
    }
    let paired_signer = match &file.paired_signer {
        Some(hex_key) => {
            let mut key = [0u8; KEY_LEN];
            hex::decode_to_slice(hex_key, &mut key)
                .map_err(|_| corrupt("paired signer key is not 32 bytes of hex"))?;
            Some(key)
        }
        None => None,
    };
    let pending = match &file.pending {
        Some(p) => {
            let mut psk = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(&p.psk, &mut psk[..])
                .map_err(|_| corrupt("pending pairing key is not 32 bytes of hex"))?;
            Some(Pending {
                psk,
                expires_at: p.expires_at,
            })
        }
        None => None,
    };
    Ok(State {
        paired_signer,
        paired_at: file.paired_at,
        pending,
    })
}

fn encode_state(path: &Path, state: &State) -> Result<Zeroizing<Vec<u8>>> {
    let file = StateFile {
        version: 1,
        paired_signer: state.paired_signer.map(hex::encode),
        paired_at: state.paired_at,
        pending: state.pending.as_ref().map(|p| PendingFile {
            psk: hex::encode(*p.psk),
            expires_at: p.expires_at,
        }),
    };
    Ok(Zeroizing::new(serde_json::to_vec_pretty(&file).map_err(
        |e| LinkError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_consumed_once_and_state_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = PairingStore::open(dir.path()).unwrap();
        assert!(matches!(
            store.pending_psk(),
            Err(LinkError::NoPendingPairing)
        ));
        let code = store.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();
        assert!(store.pending_expiry().is_some());

        // A restart keeps the pending code.
        let store = PairingStore::open(dir.path()).unwrap();
        let psk = store.pending_psk().unwrap();
        assert_eq!(*psk, *code.psk());
        let file = std::fs::read_to_string(store.path()).unwrap();
        assert!(!file.contains(&code.reveal()));

        store.complete_pairing(&psk, [9; 32]).unwrap();
        assert!(matches!(
            store.complete_pairing(&psk, [8; 32]),
            Err(LinkError::PairingCodeUsed)
        ));
        assert!(matches!(
            store.pending_psk(),
            Err(LinkError::NoPendingPairing)
        ));

        let store = PairingStore::open(dir.path()).unwrap();
        assert_eq!(store.paired_signer(), Some([9; 32]));
        assert!(store.paired_at().is_some());
        let file = std::fs::read_to_string(store.path()).unwrap();
        assert!(!file.contains(&hex::encode(*psk)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.unpair().unwrap();
        assert_eq!(
            PairingStore::open(dir.path()).unwrap().paired_signer(),
            None
        );
    }

    #[test]
    fn replaced_and_cancelled_codes_cannot_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = PairingStore::open(dir.path()).unwrap();
        let first = store.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();
        let _second = store.new_pairing_code(DEFAULT_PAIRING_TTL).unwrap();
        assert!(matches!(
            store.complete_pairing(&first.psk(), [1; 32]),
            Err(LinkError::PairingCodeUsed)
        ));
        store.cancel_pairing().unwrap();
        assert!(store.pending_expiry().is_none());
        assert_eq!(store.paired_signer(), None);
    }

    #[test]
    fn expired_codes_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = PairingStore::open(dir.path()).unwrap();
        let code = store.new_pairing_code(Duration::from_secs(1)).unwrap();
        {
            let mut state = store.lock();
            if let Some(p) = state.pending.as_mut() {
                p.expires_at = now_secs() - 1;
            }
        }
        assert!(matches!(
            store.pending_psk(),
            Err(LinkError::PairingCodeExpired)
        ));
        assert!(matches!(
            store.complete_pairing(&code.psk(), [1; 32]),
            Err(LinkError::PairingCodeExpired)
        ));
        assert!(store.pending_expiry().is_none());
    }

    #[test]
    fn corrupt_state_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PAIRING_FILE_NAME), b"[]").unwrap();
        assert!(matches!(
            PairingStore::open(dir.path()),
            Err(LinkError::Corrupt { .. })
        ));
    }
}
