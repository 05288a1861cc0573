//! The pairing sessions of one tenant, kept in `<data_dir>/wallet/sessions.json`: owner-only,
//! rewritten whole and atomically on every change (`micronode-files`). A handful of sessions
//! per tenant, so one small file is enough.
//!
//! What is kept is the operator's to keep: the node's static key for each session, the
//! stretched password and stream id until the browser pairs (then dropped), the browser's
//! static key after, and the auth data the browser gets (the session's token and the app key
//! sealed for the phrase, which the node cannot open).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Result, WalletError};

/// The file's name inside the wallet directory.
pub const SESSIONS_FILE: &str = "sessions.json";

/// Where a session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Waiting for the browser that knows the phrase.
    Waiting,
    /// Paired: the browser reconnects with its static key (KK).
    Paired,
    /// A handshake with the phrase failed: the phrase had its one attempt.
    Failed,
    /// Ended by the tenant or the operator.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl SessionState {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Waiting => "waiting",
            SessionState::Paired => "paired",
            SessionState::Failed => "failed",
            SessionState::Revoked => "revoked",
            SessionState::Expired => "expired",
        }
    }

    /// Whether the session still serves a browser.
    pub fn is_live(self) -> bool {
        matches!(self, SessionState::Waiting | SessionState::Paired)
    }
}

/// One session. Its `Debug` shows no key.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Its id (hex).
    pub id: String,
    /// The tenant's name for it.
    pub label: String,
    /// When it was made (Unix seconds).
    pub created_at: u64,
    /// When it ends.
    pub expires_at: u64,
    /// Where it stands.
    pub state: SessionState,
    /// The id of the token it hands out.
    pub token_id: String,
    /// The node's static key for this session (hex secret).
    pub node_static: String,
    /// The stretched password (hex), until pairing.
    pub password: Option<String>,
    /// The server-to-client stream id before pairing (hex), until pairing.
    pub phrase_stream: Option<String>,
    /// The browser's static key (hex, compressed), once paired.
    pub client_static: Option<String>,
    /// What the browser gets in act 2 (JSON).
    pub auth_data: String,
    /// When the browser paired.
    pub paired_at: Option<u64>,
    /// When a browser was last connected.
    pub last_seen: Option<u64>,
    /// Why it ended.
    pub ended_reason: Option<String>,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SessionRecord {
    /// Ends the session with `state` and `reason`, dropping what could start a handshake.
    pub fn end(&mut self, state: SessionState, reason: &str) {
        self.state = state;
        self.ended_reason = Some(reason.to_string());
        self.password = None;
        self.phrase_stream = None;
    }
}

#[derive(Serialize, Deserialize)]
struct SessionsFile {
    version: u32,
    sessions: Vec<SessionRecord>,
}

/// The sessions file and its contents in memory. Its methods write to disk: call them from
/// blocking tasks.
pub struct SessionStore {
    path: PathBuf,
    sessions: Mutex<Vec<SessionRecord>>,
}

impl SessionStore {
    /// Opens (or starts) the store in `dir`, created owner-only.
    pub fn open(dir: &Path) -> Result<SessionStore> {
        micronode_files::create_private_dir(dir).map_err(WalletError::Store)?;
        let path = dir.join(SESSIONS_FILE);
        let sessions = match micronode_files::read_private(&path).map_err(WalletError::Store)? {
            Some(bytes) => {
                let file: SessionsFile =
                    serde_json::from_slice(&bytes).map_err(WalletError::Corrupt)?;
                file.sessions
            }
            None => Vec::new(),
        };
        Ok(SessionStore {
            path,
            sessions: Mutex::new(sessions),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SessionRecord>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, sessions: &[SessionRecord]) -> Result<()> {
        let file = SessionsFile {
            version: 1,
            sessions: sessions.to_vec(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(WalletError::Corrupt)?;
        micronode_files::write_private(&self.path, &bytes).map_err(WalletError::Store)
    }

    /// Every session, newest first.
    pub fn list(&self) -> Vec<SessionRecord> {
        let mut all = self.lock().clone();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        all
    }

    /// One session.
    pub fn get(&self, id: &str) -> Option<SessionRecord> {
        self.lock().iter().find(|s| s.id == id).cloned()
    }

    /// Adds a session (and writes the file), refusing more than `max_live` live ones.
    pub fn add(&self, record: SessionRecord, max_live: usize) -> Result<()> {
        let mut sessions = self.lock();
        if sessions.iter().filter(|s| s.state.is_live()).count() >= max_live {
            return Err(WalletError::Invalid(format!(
                "this node has {max_live} live pairing sessions already; revoke one first"
            )));
        }
        let mut next = sessions.clone();
        next.push(record);
        self.save(&next)?;
        *sessions = next;
        Ok(())
    }

    /// Changes one session with `change` (and writes the file); the session after, if any.
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut SessionRecord),
    ) -> Result<Option<SessionRecord>> {
        let mut sessions = self.lock();
        let mut next = sessions.clone();
        let Some(record) = next.iter_mut().find(|s| s.id == id) else {
            return Ok(None);
        };
        change(record);
        let changed = record.clone();
        self.save(&next)?;
        *sessions = next;
        Ok(Some(changed))
    }
}
