//! The signer's own durable state beside VLS's: what it has seen on chain for its channels,
//! what the watchtower needs to punish an old state, the wallet's high-water marks and the
//! payment credits of the balance accounting.
//!
//! One SQLite file (`state/signer.sqlite`, WAL, `synchronous=FULL`, owner-only). VLS keeps
//! its own state in redb; nothing here is a secret, but it reveals the tenant's channels, so
//! it is private.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use lightning_signer::bitcoin::consensus::{deserialize, serialize};
use lightning_signer::bitcoin::{OutPoint, Transaction, TxOut, Txid};
use lightning_signer::lightning::ln::chan_utils::HTLCOutputInCommitment;
use lightning_signer::lightning::util::ser::{Readable, Writeable};
use rusqlite::{params, Connection, OptionalExtension};

/// Why the signer's store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("signer store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store's directory or file could not be made private.
    #[error("signer store: {0}")]
    File(#[from] micronode_files::FileError),
    /// A stored value does not decode.
    #[error("signer store holds a corrupt {0}")]
    Corrupt(&'static str),
}

/// A transaction this signer recorded because it touches one of its channels.
#[derive(Clone, Debug)]
pub struct ChainTx {
    /// The transaction.
    pub tx: Transaction,
    /// The height of the block that confirmed it.
    pub height: u32,
}

/// A sweep or justice transaction the watchtower (or recovery) made, kept until it confirms.
#[derive(Clone, Debug)]
pub struct OwnSweep {
    /// The transaction.
    pub tx: Transaction,
    /// The channel (hex of the signer's channel id).
    pub channel: String,
    /// `justice` or `to_remote`.
    pub kind: String,
    /// The amount it pays the tenant.
    pub amount_sat: u64,
}

/// The signer's SQLite store.
pub struct SignerStore {
    conn: Mutex<Connection>,
    /// Recorded transactions by txid, with their depth (1: spends a funding output, 2: spends
    /// an output of a depth-1 one), so a block's descendants are found without a query per
    /// input.
    recorded: Mutex<HashMap<Txid, u8>>,
    /// Each channel's dust in flight on each of its two commitments (holder, counterparty),
    /// mirrored in memory: it is read on every state, and written only when it changes.
    dust: Mutex<HashMap<(String, u8), u64>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS funding (
    outpoint TEXT PRIMARY KEY, height INTEGER NOT NULL, tx_index INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chain_tx (
    txid TEXT PRIMARY KEY, height INTEGER NOT NULL, raw BLOB NOT NULL,
    depth INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS counterparty_htlcs (
    channel TEXT NOT NULL, number INTEGER NOT NULL, htlcs BLOB NOT NULL,
    PRIMARY KEY (channel, number));
CREATE TABLE IF NOT EXISTS sweeps (
    txid TEXT PRIMARY KEY, channel TEXT NOT NULL, kind TEXT NOT NULL, raw BLOB NOT NULL,
    amount_sat INTEGER NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS wallet_index (chain INTEGER PRIMARY KEY, high INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS credits (
    hash TEXT PRIMARY KEY, sat INTEGER NOT NULL, created INTEGER NOT NULL,
    seen INTEGER NOT NULL DEFAULT 0, withdrawn INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS credits_live ON credits (withdrawn, created);
CREATE TABLE IF NOT EXISTS channel_dust (
    channel TEXT NOT NULL, side INTEGER NOT NULL, sat INTEGER NOT NULL,
    PRIMARY KEY (channel, side));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS settled_payments (
    hash TEXT PRIMARY KEY, refuse_until INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS settled_payments_until ON settled_payments (refuse_until);
";

fn sql_u32(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt("number"))
}

fn sql_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt("number"))
}

fn load_recorded(conn: &Connection) -> Result<HashMap<Txid, u8>, StoreError> {
    let mut stmt = conn.prepare("SELECT txid, depth FROM chain_tx")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut map = HashMap::new();
    for row in rows {
        let (txid, depth) = row?;
        map.insert(
            txid.parse().map_err(|_| StoreError::Corrupt("txid"))?,
            u8::try_from(depth).map_err(|_| StoreError::Corrupt("depth"))?,
        );
    }
    Ok(map)
}

/// Each HTLC as a 4-byte length and its LDK encoding.
fn encode_htlcs(htlcs: &[HTLCOutputInCommitment]) -> Vec<u8> {
    let mut out = Vec::new();
    for htlc in htlcs {
        let bytes = htlc.encode();
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn decode_htlcs(mut bytes: &[u8]) -> Option<Vec<HTLCOutputInCommitment>> {
    let mut htlcs = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at_checked(4)?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let (item, rest) = rest.split_at_checked(len)?;
        htlcs.push(HTLCOutputInCommitment::read(&mut &item[..]).ok()?);
        bytes = rest;
    }
    Some(htlcs)
}

impl SignerStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            micronode_files::create_private_dir(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        for suffix in ["", "-wal", "-shm"] {
            let file = path.with_file_name(format!(
                "{}{suffix}",
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("signer.sqlite")
            ));
            if file.exists() {
                micronode_files::restrict_to_owner(&file)?;
            }
        }
        let recorded = load_recorded(&conn)?;
        let dust = {
            let mut stmt = conn.prepare("SELECT channel, side, sat FROM channel_dust")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            let mut map = HashMap::new();
            for row in rows {
                let (channel, side, sat) = row?;
                let side = u8::try_from(side).map_err(|_| StoreError::Corrupt("side"))?;
                map.insert((channel, side), sql_u64(sat)?);
            }
            map
        };
        Ok(Self {
            conn: Mutex::new(conn),
            recorded: Mutex::new(recorded),
            dust: Mutex::new(dust),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records where a funding transaction confirmed.
    pub fn record_funding(
        &self,
        outpoint: &OutPoint,
        height: u32,
        tx_index: u32,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO funding (outpoint, height, tx_index) VALUES (?1, ?2, ?3)",
            params![outpoint.to_string(), height, tx_index],
        )?;
        Ok(())
    }

    /// Where a funding transaction confirmed: (block height, index in the block).
    pub fn funding_position(&self, outpoint: &OutPoint) -> Result<Option<(u32, u32)>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT height, tx_index FROM funding WHERE outpoint = ?1",
                params![outpoint.to_string()],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()?;
        row.map(|(h, i)| Ok((sql_u32(h)?, sql_u32(i)?))).transpose()
    }

    /// Deepest a recorded transaction may be: commitments and closes (1), and what spends
    /// their outputs, HTLC transactions and sweeps (2). Beyond that a transaction is the
    /// counterparty's business, and recording it would follow its wallet forever.
    pub const MAX_DEPTH: u8 = 2;

    /// Records a transaction that touches a channel: it spends a funding output (`depth` 1)
    /// or an output of a recorded transaction (its depth plus one, at most [`Self::MAX_DEPTH`]).
    pub fn record_tx(&self, tx: &Transaction, height: u32, depth: u8) -> Result<(), StoreError> {
        let txid = tx.compute_txid();
        self.conn().execute(
            "INSERT OR REPLACE INTO chain_tx (txid, height, raw, depth) VALUES (?1, ?2, ?3, ?4)",
            params![txid.to_string(), height, serialize(tx), depth],
        )?;
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(txid, depth);
        Ok(())
    }

    /// The depth of a recorded transaction.
    pub fn recorded_depth(&self, txid: &Txid) -> Option<u8> {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(txid)
            .copied()
    }

    /// A recorded transaction.
    pub fn tx(&self, txid: &Txid) -> Result<Option<ChainTx>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT raw, height FROM chain_tx WHERE txid = ?1",
                params![txid.to_string()],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()?;
        row.map(|(raw, height)| {
            Ok(ChainTx {
                tx: deserialize(&raw).map_err(|_| StoreError::Corrupt("transaction"))?,
                height: sql_u32(height)?,
            })
        })
        .transpose()
    }

    /// The output at `outpoint`, if it belongs to a recorded transaction.
    pub fn prevout(&self, outpoint: &OutPoint) -> Result<Option<TxOut>, StoreError> {
        Ok(self
            .tx(&outpoint.txid)?
            .and_then(|t| t.tx.output.get(outpoint.vout as usize).cloned()))
    }

    /// The recorded transaction spending `outpoint`, if any.
    pub fn spender_of(&self, outpoint: &OutPoint) -> Result<Option<ChainTx>, StoreError> {
        // Recorded transactions are few (those of the tenant's channels): scan them.
        let rows: Vec<(Vec<u8>, i64)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT raw, height FROM chain_tx")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            rows
        };
        for (raw, height) in rows {
            let tx: Transaction =
                deserialize(&raw).map_err(|_| StoreError::Corrupt("transaction"))?;
            if tx.input.iter().any(|i| i.previous_output == *outpoint) {
                return Ok(Some(ChainTx {
                    tx,
                    height: sql_u32(height)?,
                }));
            }
        }
        Ok(None)
    }

    /// Forgets everything seen at `height` and above (a reorganisation).
    pub fn disconnect_from(&self, height: u32) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.execute("DELETE FROM funding WHERE height >= ?1", params![height])?;
        conn.execute("DELETE FROM chain_tx WHERE height >= ?1", params![height])?;
        *self.recorded.lock().unwrap_or_else(|p| p.into_inner()) = load_recorded(&conn)?;
        Ok(())
    }

    /// Keeps the non-dust HTLCs of a counterparty commitment this signer signed, for the
    /// watchtower: if that state is ever broadcast after being revoked, its HTLC outputs are
    /// claimed with the revocation key. States without HTLCs store nothing.
    pub fn record_counterparty_htlcs(
        &self,
        channel: &str,
        number: u64,
        htlcs: &[HTLCOutputInCommitment],
    ) -> Result<(), StoreError> {
        if htlcs.is_empty() {
            return Ok(());
        }
        let number = i64::try_from(number).map_err(|_| StoreError::Corrupt("number"))?;
        self.conn().execute(
            "INSERT OR REPLACE INTO counterparty_htlcs (channel, number, htlcs) VALUES (?1, ?2, ?3)",
            params![channel, number, encode_htlcs(htlcs)],
        )?;
        Ok(())
    }

    /// The non-dust HTLCs of counterparty commitment `number` (VLS numbering).
    pub fn counterparty_htlcs(
        &self,
        channel: &str,
        number: u64,
    ) -> Result<Vec<HTLCOutputInCommitment>, StoreError> {
        let number = i64::try_from(number).map_err(|_| StoreError::Corrupt("number"))?;
        let blob: Option<Vec<u8>> = self
            .conn()
            .query_row(
                "SELECT htlcs FROM counterparty_htlcs WHERE channel = ?1 AND number = ?2",
                params![channel, number],
                |r| r.get(0),
            )
            .optional()?;
        match blob {
            None => Ok(Vec::new()),
            Some(b) => decode_htlcs(&b).ok_or(StoreError::Corrupt("HTLC list")),
        }
    }

    /// Records a sweep or justice transaction of ours.
    pub fn record_sweep(&self, sweep: &OwnSweep) -> Result<(), StoreError> {
        let amount = i64::try_from(sweep.amount_sat).map_err(|_| StoreError::Corrupt("amount"))?;
        self.conn().execute(
            "INSERT OR IGNORE INTO sweeps (txid, channel, kind, raw, amount_sat) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                sweep.tx.compute_txid().to_string(),
                sweep.channel,
                sweep.kind,
                serialize(&sweep.tx),
                amount
            ],
        )?;
        Ok(())
    }

    /// Whether a sweep of ours already spends `outpoint`.
    pub fn swept(&self, outpoint: &OutPoint) -> Result<bool, StoreError> {
        Ok(self
            .sweeps(true)?
            .iter()
            .any(|s| s.tx.input.iter().any(|i| i.previous_output == *outpoint)))
    }

    /// Our sweeps; with `all`, also the confirmed ones.
    pub fn sweeps(&self, all: bool) -> Result<Vec<OwnSweep>, StoreError> {
        let conn = self.conn();
        let sql = if all {
            "SELECT raw, channel, kind, amount_sat FROM sweeps"
        } else {
            "SELECT raw, channel, kind, amount_sat FROM sweeps WHERE confirmed = 0"
        };
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (raw, channel, kind, amount) = row?;
            out.push(OwnSweep {
                tx: deserialize(&raw).map_err(|_| StoreError::Corrupt("sweep"))?,
                channel,
                kind,
                amount_sat: sql_u64(amount)?,
            });
        }
        Ok(out)
    }

    /// Marks a sweep confirmed (it is no longer rebroadcast).
    pub fn sweep_confirmed(&self, txid: &Txid) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE sweeps SET confirmed = 1 WHERE txid = ?1",
            params![txid.to_string()],
        )?;
        Ok(())
    }

    /// Raises the high-water mark of wallet `chain` to at least `index`.
    pub fn note_wallet_index(&self, chain: u32, index: u32) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO wallet_index (chain, high) VALUES (?1, ?2) \
             ON CONFLICT(chain) DO UPDATE SET high = MAX(high, excluded.high)",
            params![chain, index],
        )?;
        Ok(())
    }

    /// The highest index of wallet `chain` the signer has signed for or seen paid (0 if none).
    pub fn wallet_high(&self, chain: u32) -> Result<u32, StoreError> {
        let high: Option<i64> = self
            .conn()
            .query_row(
                "SELECT high FROM wallet_index WHERE chain = ?1",
                params![chain],
                |r| r.get(0),
            )
            .optional()?;
        high.map(sql_u32).transpose().map(|h| h.unwrap_or(0))
    }

    /// Grants a payment credit; `false` if this payment hash already has one.
    pub fn grant_credit(&self, hash: &[u8; 32], sat: u64, now: u64) -> Result<bool, StoreError> {
        let sat = i64::try_from(sat).map_err(|_| StoreError::Corrupt("amount"))?;
        let now = i64::try_from(now).map_err(|_| StoreError::Corrupt("time"))?;
        let inserted = self.conn().execute(
            "INSERT OR IGNORE INTO credits (hash, sat, created) VALUES (?1, ?2, ?3)",
            params![hex::encode(hash), sat, now],
        )?;
        Ok(inserted == 1)
    }

    /// The credit of `hash` not yet withdrawn, if any.
    pub fn live_credit(&self, hash: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        let sat: Option<i64> = self
            .conn()
            .query_row(
                "SELECT sat FROM credits WHERE hash = ?1 AND withdrawn = 0",
                params![hex::encode(hash)],
                |r| r.get(0),
            )
            .optional()?;
        sat.map(sql_u64).transpose()
    }

    /// Notes that the payment `hash` was seen as a non-dust HTLC on one commitment (`side`:
    /// 1 holder, 2 counterparty); returns the sides seen so far.
    pub fn credit_seen(&self, hash: &[u8; 32], side: u8) -> Result<u8, StoreError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE credits SET seen = seen | ?2 WHERE hash = ?1",
            params![hex::encode(hash), side],
        )?;
        let seen: Option<i64> = conn
            .query_row(
                "SELECT seen FROM credits WHERE hash = ?1",
                params![hex::encode(hash)],
                |r| r.get(0),
            )
            .optional()?;
        Ok(seen.and_then(|s| u8::try_from(s).ok()).unwrap_or(0))
    }

    /// Marks the credit of `hash` withdrawn.
    pub fn withdraw_credit(&self, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE credits SET withdrawn = 1 WHERE hash = ?1",
            params![hex::encode(hash)],
        )?;
        Ok(())
    }

    /// The sum of credits granted since `since` (unix seconds) and not withdrawn.
    pub fn live_credits_since(&self, since: u64) -> Result<u64, StoreError> {
        let since = i64::try_from(since).map_err(|_| StoreError::Corrupt("time"))?;
        let sum: i64 = self.conn().query_row(
            "SELECT COALESCE(SUM(sat), 0) FROM credits WHERE withdrawn = 0 AND created >= ?1",
            params![since],
            |r| r.get(0),
        )?;
        sql_u64(sum)
    }

    /// Forgets credits granted before `before`.
    pub fn prune_credits(&self, before: u64) -> Result<(), StoreError> {
        let before = i64::try_from(before).map_err(|_| StoreError::Corrupt("time"))?;
        self.conn()
            .execute("DELETE FROM credits WHERE created < ?1", params![before])?;
        Ok(())
    }

    /// Records the dust in flight (value in neither party's output, in sat) of a channel's
    /// commitment on `side` (1 holder, 2 counterparty).
    pub fn set_channel_dust(&self, channel: &str, side: u8, sat: u64) -> Result<(), StoreError> {
        let mut dust = self.dust.lock().unwrap_or_else(|p| p.into_inner());
        let key = (channel.to_string(), side);
        if dust.get(&key) == Some(&sat) {
            return Ok(());
        }
        let value = i64::try_from(sat).map_err(|_| StoreError::Corrupt("amount"))?;
        self.conn().execute(
            "INSERT OR REPLACE INTO channel_dust (channel, side, sat) VALUES (?1, ?2, ?3)",
            params![channel, side, value],
        )?;
        dust.insert(key, sat);
        Ok(())
    }

    /// Stores a number under `key`.
    pub fn set_number(&self, key: &str, value: u64) -> Result<(), StoreError> {
        let value = i64::try_from(value).map_err(|_| StoreError::Corrupt("number"))?;
        self.conn().execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    /// The number stored under `key`.
    pub fn number(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let value: Option<i64> = self
            .conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?;
        value.map(sql_u64).transpose()
    }

    /// Records outgoing payments that settled (their payee has the money), each with the
    /// time until which a new approval of its hash is refused, in one transaction.
    pub fn record_settled(&self, settled: &[([u8; 32], u64)]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (hash, until) in settled {
            let until = i64::try_from(*until).map_err(|_| StoreError::Corrupt("time"))?;
            tx.execute(
                "INSERT INTO settled_payments (hash, refuse_until) VALUES (?1, ?2)
                 ON CONFLICT (hash) DO UPDATE SET refuse_until = MAX(refuse_until, ?2)",
                params![hex::encode(hash), until],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Until when (unix seconds) a new approval of `hash` is refused, if it settled.
    pub fn settled_until(&self, hash: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        let until: Option<i64> = self
            .conn()
            .query_row(
                "SELECT refuse_until FROM settled_payments WHERE hash = ?1",
                params![hex::encode(hash)],
                |r| r.get(0),
            )
            .optional()?;
        until.map(sql_u64).transpose()
    }

    /// Forgets settled payments whose refusal ended before `before`.
    pub fn prune_settled(&self, before: u64) -> Result<(), StoreError> {
        let before = i64::try_from(before).map_err(|_| StoreError::Corrupt("time"))?;
        self.conn().execute(
            "DELETE FROM settled_payments WHERE refuse_until < ?1",
            params![before],
        )?;
        Ok(())
    }

    /// The dust in flight over all channels, in sat: per channel, the larger of its two
    /// commitments'.
    pub fn total_channel_dust(&self) -> u64 {
        let dust = self.dust.lock().unwrap_or_else(|p| p.into_inner());
        let mut per_channel: HashMap<&str, u64> = HashMap::new();
        for ((channel, _), sat) in dust.iter() {
            let entry = per_channel.entry(channel).or_default();
            *entry = (*entry).max(*sat);
        }
        per_channel.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lightning_signer::bitcoin::hashes::Hash;
    use lightning_signer::bitcoin::{
        absolute::LockTime, transaction::Version, Amount, ScriptBuf, TxIn,
    };

    fn tx(spending: OutPoint, value: u64) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: spending,
                ..Default::default()
            }],
            output: vec![TxOut {
                value: Amount::from_sat(value),
                script_pubkey: ScriptBuf::new(),
            }],
        }
    }

    #[test]
    fn chain_view_survives_reopen_and_forgets_reorged_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/signer.sqlite");
        let funding = OutPoint::new(Txid::from_byte_array([1; 32]), 0);
        let commitment = tx(funding, 900);
        let child = tx(OutPoint::new(commitment.compute_txid(), 0), 800);
        {
            let store = SignerStore::open(&path).unwrap();
            store.record_funding(&funding, 100, 3).unwrap();
            store.record_tx(&commitment, 110, 1).unwrap();
            store.record_tx(&child, 120, 2).unwrap();
        }
        let store = SignerStore::open(&path).unwrap();
        assert_eq!(store.funding_position(&funding).unwrap(), Some((100, 3)));
        assert_eq!(store.recorded_depth(&child.compute_txid()), Some(2));
        assert_eq!(
            store
                .prevout(&OutPoint::new(commitment.compute_txid(), 0))
                .unwrap()
                .map(|o| o.value.to_sat()),
            Some(900)
        );
        assert_eq!(
            store.spender_of(&funding).unwrap().map(|t| t.height),
            Some(110)
        );
        store.disconnect_from(115).unwrap();
        assert_eq!(store.recorded_depth(&child.compute_txid()), None);
        assert_eq!(store.recorded_depth(&commitment.compute_txid()), Some(1));
    }

    #[test]
    fn credits_are_granted_once_and_withdrawn_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SignerStore::open(&dir.path().join("s.sqlite")).unwrap();
        assert!(store.grant_credit(&[7; 32], 12, 1_000).unwrap());
        assert!(!store.grant_credit(&[7; 32], 99, 1_001).unwrap());
        assert!(store.grant_credit(&[8; 32], 5, 2_000).unwrap());
        assert_eq!(store.live_credits_since(0).unwrap(), 17);
        assert_eq!(store.live_credits_since(1_500).unwrap(), 5);
        store.withdraw_credit(&[7; 32]).unwrap();
        assert_eq!(store.live_credit(&[7; 32]).unwrap(), None);
        assert_eq!(store.live_credits_since(0).unwrap(), 5);
        store.prune_credits(3_000).unwrap();
        assert_eq!(store.live_credits_since(0).unwrap(), 0);
    }

    #[test]
    fn dust_in_flight_counts_each_channels_larger_commitment() {
        let dir = tempfile::tempdir().unwrap();
        let store = SignerStore::open(&dir.path().join("s.sqlite")).unwrap();
        store.set_channel_dust("a", 1, 30).unwrap();
        store.set_channel_dust("a", 2, 50).unwrap();
        store.set_channel_dust("b", 1, 7).unwrap();
        assert_eq!(store.total_channel_dust(), 57);
        drop(store);
        let store = SignerStore::open(&dir.path().join("s.sqlite")).unwrap();
        assert_eq!(store.total_channel_dust(), 57, "kept across a restart");
    }

    #[test]
    fn settled_payments_keep_their_latest_refusal_and_are_forgotten_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SignerStore::open(&dir.path().join("s.sqlite")).unwrap();
        store
            .record_settled(&[([1; 32], 500), ([2; 32], 100)])
            .unwrap();
        store.record_settled(&[([1; 32], 300)]).unwrap();
        assert_eq!(store.settled_until(&[1; 32]).unwrap(), Some(500));
        assert_eq!(store.settled_until(&[3; 32]).unwrap(), None);
        store.prune_settled(200).unwrap();
        assert_eq!(store.settled_until(&[2; 32]).unwrap(), None);
        assert_eq!(store.settled_until(&[1; 32]).unwrap(), Some(500));
    }

    #[test]
    fn wallet_high_water_marks_only_rise() {
        let dir = tempfile::tempdir().unwrap();
        let store = SignerStore::open(&dir.path().join("s.sqlite")).unwrap();
        assert_eq!(store.wallet_high(1).unwrap(), 0);
        store.note_wallet_index(1, 40).unwrap();
        store.note_wallet_index(1, 7).unwrap();
        assert_eq!(store.wallet_high(1).unwrap(), 40);
        assert_eq!(store.wallet_high(0).unwrap(), 0);
    }
}
