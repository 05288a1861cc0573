//! The signer's BIP39 seed, encrypted at rest with a passphrase.
//!
//! A [`SeedVault`] is one small JSON file (format below) holding the mnemonic's entropy,
//! encrypted with XChaCha20-Poly1305 under a key that Argon2id derives from the tenant's
//! [`Passphrase`]. The header (format version, KDF parameters, salt, cipher) is bound to the
//! ciphertext as associated data, so changing any of it makes decryption fail.
//!
//! Typical use:
//!
//! - first start: [`read_passphrase_twice`], then [`SeedVault::create`], then show the words
//!   with [`confirm_backup`] (until it succeeds; the vault is already written). Or, to write
//!   nothing until the words are confirmed: [`Mnemonic::generate`], [`confirm_backup`], then
//!   [`SeedVault::create_from_mnemonic`];
//! - recovery: [`SeedVault::restore`] from the words the tenant wrote down;
//! - every start: [`SeedVault::open`], then [`SeedVault::unlock`] to get an [`UnlockedSeed`],
//!   whose [`UnlockedSeed::signer_seed`] is handed to the Lightning signer.
//!
//! # File format (version 1)
//!
//! ```json
//! {
//!   "version": 1,
//!   "kdf": {
//!     "algorithm": "argon2id",
//!     "m_cost_kib": 65536,
//!     "t_cost": 3,
//!     "p_cost": 1,
//!     "salt": "<32 bytes, hex>"
//!   },
//!   "cipher": "xchacha20poly1305",
//!   "nonce": "<24 bytes, hex>",
//!   "key_check": "<32 bytes, hex>",
//!   "ciphertext": "<16- or 32-byte entropy + 16-byte tag, hex>"
//! }
//! ```
//!
//! Argon2id (version 0x13) turns the passphrase and salt into 64 bytes: the first 32 are the
//! XChaCha20-Poly1305 key, the last 32 are stored as `key_check`. The plaintext is the BIP39
//! entropy (16 bytes for 12 words, 32 for 24). The associated data is a fixed domain prefix
//! followed by the version, the KDF name and parameters, the salt and the cipher name, all
//! length-prefixed. Unlocking compares `key_check` first (mismatch:
//! [`VaultError::WrongPassphrase`]), then decrypts (failure despite a matching key check:
//! [`VaultError::Corrupt`]). The key check gives an attacker nothing the ciphertext did not:
//! either way each guess costs one Argon2id run. Unknown fields, other versions, and values
//! out of range are rejected by [`SeedVault::open`].
//!
//! The file is written to a temporary file in the same directory (mode 0600, fsynced), then
//! hard-linked to its name, which fails if anything exists there (falling back to a checked
//! rename on file systems without hard links), then the directory is fsynced.
//!
//! Argon2id with the production [`KdfParams`] takes a noticeable fraction of a second and 64 MiB
//! of memory; call [`SeedVault::create`], [`SeedVault::restore`] and [`SeedVault::unlock`] from a
//! blocking context (e.g. `tokio::task::spawn_blocking`), not on an async executor thread.
//!
//! Secrets ([`Passphrase`], [`UnlockedSeed`], derived keys, decrypted entropy) are wiped from
//! memory when dropped and never appear in `Debug` output. This is best effort: copies the
//! compiler makes on the stack, and the input the terminal or the operating system buffered,
//! are out of reach.

mod crypto;
mod format;
mod fsio;
mod init_flow;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use bip39::{Language, Mnemonic};
use rand::rngs::OsRng;
use zeroize::Zeroizing;

pub use init_flow::{confirm_backup, read_passphrase_twice, ATTEMPTS_PER_WORD, BACKUP_CHECK_WORDS};

use format::Sealed;

/// Fewest characters (Unicode scalar values, not bytes) a new passphrase may have.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

/// Number of words of a mnemonic made by [`SeedVault::create`] (256 bits of entropy).
pub const NEW_MNEMONIC_WORDS: usize = 24;

/// Word counts [`SeedVault::restore`] accepts: 12 (128-bit) and 24 (256-bit) mnemonics.
pub const ACCEPTED_WORD_COUNTS: [usize; 2] = [12, 24];

// `UnlockedSeed` keeps a `Mnemonic`, so the mnemonic itself must wipe its word indices on drop.
// That needs bip39's `zeroize` feature (enabled in this crate's Cargo.toml); this line stops the
// build if it is ever lost.
const _: fn() = || {
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wiped_on_drop::<Mnemonic>();
};

/// Everything that can go wrong with a seed vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// [`SeedVault::create`] or [`SeedVault::restore`] found a file at the path; an existing
    /// vault is never overwritten.
    #[error("a seed vault already exists at {0}; refusing to overwrite it")]
    AlreadyExists(PathBuf),
    /// [`SeedVault::open`] found no file at the path.
    #[error("no seed vault at {0}")]
    NotFound(PathBuf),
    /// Reading or writing the vault (or the terminal) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path involved.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The vault file is damaged or was modified: it does not parse, a field is out of range,
    /// or the ciphertext fails authentication although the passphrase is right.
    #[error("the seed vault is corrupt: {0}")]
    Corrupt(String),
    /// The vault file has a format version this build does not read.
    #[error("unsupported seed vault version {0} (this build reads version {v})", v = format::FORMAT_VERSION)]
    UnsupportedVersion(u32),
    /// The passphrase does not open the vault. (A modified salt or modified KDF parameters are
    /// indistinguishable from a wrong passphrase and also end up here.)
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// The recovery words are not a valid 12- or 24-word English BIP39 mnemonic.
    #[error("invalid recovery words: {0}")]
    InvalidMnemonic(String),
    /// A new passphrase is empty or shorter than [`MIN_PASSPHRASE_CHARS`] characters.
    #[error("passphrase too weak: use at least {n} characters", n = MIN_PASSPHRASE_CHARS)]
    WeakPassphrase,
    /// [`read_passphrase_twice`] read two different passphrases.
    #[error("the two passphrases do not match")]
    PassphraseMismatch,
    /// [`KdfParams`] given to [`SeedVault::create`] or [`SeedVault::restore`] are out of range.
    #[error("invalid key-derivation parameters: {0}")]
    InvalidKdfParams(String),
    /// [`confirm_backup`]: a recovery word was typed back wrong too many times.
    #[error("the recovery words were not confirmed; write all of them down and try again")]
    BackupNotConfirmed,
}

/// The passphrase that encrypts the seed vault. Wiped from memory on drop; its `Debug` output
/// is redacted.
///
/// The passphrase is used exactly as given (its UTF-8 bytes, no Unicode normalization or
/// trimming), so it must be typed the same way every time.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase. Any string is accepted here (an existing vault is opened with
    /// whatever its passphrase is); rules for new passphrases are in [`Passphrase::check_strength`].
    pub fn new(passphrase: impl Into<String>) -> Passphrase {
        Passphrase(Zeroizing::new(passphrase.into()))
    }

    /// Checks the rules for a new passphrase: at least [`MIN_PASSPHRASE_CHARS`] characters, not
    /// all of them whitespace. [`SeedVault::create`], [`SeedVault::restore`] and
    /// [`read_passphrase_twice`] apply it.
    pub fn check_strength(&self) -> Result<(), VaultError> {
        if self.0.trim().is_empty() || self.0.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(VaultError::WeakPassphrase);
        }
        Ok(())
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl From<Zeroizing<String>> for Passphrase {
    /// Wraps a passphrase that is already held in a wiped-on-drop string.
    fn from(passphrase: Zeroizing<String>) -> Passphrase {
        Passphrase(passphrase)
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Argon2id cost parameters, stored in the vault header so a vault always opens with the
/// parameters it was created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory cost in KiB (at least 8 × `p_cost`, at most [`KdfParams::MAX_M_COST_KIB`]).
    pub m_cost_kib: u32,
    /// Number of passes (1 to [`KdfParams::MAX_T_COST`]).
    pub t_cost: u32,
    /// Degree of parallelism, i.e. lanes (1 to [`KdfParams::MAX_P_COST`]).
    pub p_cost: u32,
}

impl KdfParams {
    /// The production parameters: 64 MiB, 3 passes, 1 lane. Also the [`Default`].
    pub const PRODUCTION: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };
    /// Largest accepted memory cost (1 GiB); a vault file asking for more is treated as corrupt
    /// rather than allowed to exhaust memory.
    pub const MAX_M_COST_KIB: u32 = 1024 * 1024;
    /// Largest accepted number of passes.
    pub const MAX_T_COST: u32 = 64;
    /// Largest accepted number of lanes.
    pub const MAX_P_COST: u32 = 16;

    /// Checks the parameters are within the accepted ranges.
    pub fn validate(&self) -> Result<(), VaultError> {
        self.check().map_err(VaultError::InvalidKdfParams)
    }

    fn check(&self) -> Result<(), String> {
        if !(1..=Self::MAX_P_COST).contains(&self.p_cost) {
            return Err(format!(
                "p_cost {} is outside 1..={}",
                self.p_cost,
                Self::MAX_P_COST
            ));
        }
        if !(1..=Self::MAX_T_COST).contains(&self.t_cost) {
            return Err(format!(
                "t_cost {} is outside 1..={}",
                self.t_cost,
                Self::MAX_T_COST
            ));
        }
        let min_m = 8 * self.p_cost;
        if !(min_m..=Self::MAX_M_COST_KIB).contains(&self.m_cost_kib) {
            return Err(format!(
                "m_cost_kib {} is outside {min_m}..={}",
                self.m_cost_kib,
                Self::MAX_M_COST_KIB
            ));
        }
        Ok(())
    }
}

impl Default for KdfParams {
    fn default() -> KdfParams {
        KdfParams::PRODUCTION
    }
}

/// An encrypted seed on disk. Holding a `SeedVault` means the file was read and its header
/// validated; the seed itself stays encrypted until [`SeedVault::unlock`].
pub struct SeedVault {
    path: PathBuf,
    sealed: Sealed,
}

impl fmt::Debug for SeedVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedVault")
            .field("path", &self.path)
            .field("kdf", &self.sealed.params)
            .finish_non_exhaustive()
    }
}

impl SeedVault {
    /// Makes a new random 24-word mnemonic, stores it encrypted under `passphrase` in a new
    /// vault file at `path`, and returns the vault and the mnemonic (to show the tenant once,
    /// e.g. with [`confirm_backup`]).
    ///
    /// The file is written atomically with mode 0600; missing parent directories are created
    /// with mode 0700. Fails with [`VaultError::AlreadyExists`] if anything exists at `path`,
    /// [`VaultError::WeakPassphrase`] or [`VaultError::InvalidKdfParams`].
    pub fn create(
        path: impl AsRef<Path>,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<(SeedVault, Mnemonic), VaultError> {
        let path = path.as_ref();
        passphrase.check_strength()?;
        params.validate()?;
        fsio::ensure_absent(path)?;
        let mnemonic =
            Mnemonic::generate_in_with(&mut OsRng, Language::English, NEW_MNEMONIC_WORDS)
                .map_err(|e| VaultError::InvalidMnemonic(e.to_string()))?;
        let vault = SeedVault::write_new(path, &mnemonic, passphrase, params)?;
        tracing::info!(path = %path.display(), "created a new seed vault");
        Ok((vault, mnemonic))
    }

    /// Stores an existing mnemonic (the tenant's written-down recovery words) encrypted under
    /// `passphrase` in a new vault file at `path`. The words are checked first, see
    /// [`parse_mnemonic`]; the file is written as in [`SeedVault::create`].
    pub fn restore(
        path: impl AsRef<Path>,
        words: &str,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<SeedVault, VaultError> {
        let mnemonic = parse_mnemonic(words)?;
        SeedVault::create_from_mnemonic(path, &mnemonic, passphrase, params)
    }

    /// Stores a mnemonic the caller already holds in a new vault file at `path`, as
    /// [`SeedVault::create`] does. With [`Mnemonic::generate`] this lets the CLI run
    /// [`confirm_backup`] *before* anything is written. Only 12- and 24-word mnemonics are
    /// accepted ([`VaultError::InvalidMnemonic`] otherwise).
    pub fn create_from_mnemonic(
        path: impl AsRef<Path>,
        mnemonic: &Mnemonic,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<SeedVault, VaultError> {
        let path = path.as_ref();
        check_word_count(mnemonic.word_count())?;
        passphrase.check_strength()?;
        params.validate()?;
        fsio::ensure_absent(path)?;
        let vault = SeedVault::write_new(path, mnemonic, passphrase, params)?;
        tracing::info!(path = %path.display(), "stored existing recovery words in a new seed vault");
        Ok(vault)
    }

    /// Reads the vault file at `path` and validates its format without decrypting it.
    /// Fails with [`VaultError::NotFound`], [`VaultError::UnsupportedVersion`] or
    /// [`VaultError::Corrupt`]. Logs a warning if the file is readable by other users.
    pub fn open(path: impl AsRef<Path>) -> Result<SeedVault, VaultError> {
        let path = path.as_ref();
        let bytes = fsio::read_vault_file(path)?;
        let sealed = format::decode(&bytes)?;
        Ok(SeedVault {
            path: path.to_path_buf(),
            sealed,
        })
    }

    /// Decrypts the seed. Fails with [`VaultError::WrongPassphrase`] if the passphrase is not
    /// the vault's, and with [`VaultError::Corrupt`] if the passphrase is right but the
    /// encrypted part was modified or damaged.
    pub fn unlock(&self, passphrase: &Passphrase) -> Result<UnlockedSeed, VaultError> {
        let entropy = crypto::unseal(&self.sealed, passphrase)?;
        let mnemonic = Mnemonic::from_entropy_in(Language::English, &entropy)
            .map_err(|e| VaultError::Corrupt(format!("decrypted entropy is unusable: {e}")))?;
        Ok(UnlockedSeed { mnemonic })
    }

    /// The vault file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Argon2id parameters the vault was created with.
    pub fn kdf_params(&self) -> KdfParams {
        self.sealed.params
    }

    fn write_new(
        path: &Path,
        mnemonic: &Mnemonic,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<SeedVault, VaultError> {
        let (entropy, len) = mnemonic.to_entropy_array();
        let entropy = Zeroizing::new(entropy);
        let sealed = crypto::seal(&entropy[..len], passphrase, params)?;
        fsio::write_new_file(path, &format::encode(&sealed)?)?;
        Ok(SeedVault {
            path: path.to_path_buf(),
            sealed,
        })
    }
}

/// Checks recovery words: 12 or 24 words from the English BIP39 word list with a valid
/// checksum. Case and extra whitespace are ignored. Errors say which word is unknown (by
/// position, never the word itself) or that the checksum does not match.
pub fn parse_mnemonic(words: &str) -> Result<Mnemonic, VaultError> {
    let mut normalized = Zeroizing::new(String::with_capacity(words.len()));
    for (i, word) in words.split_whitespace().enumerate() {
        if i > 0 {
            normalized.push(' ');
        }
        normalized.extend(word.chars().flat_map(char::to_lowercase));
    }
    check_word_count(normalized.split(' ').filter(|w| !w.is_empty()).count())?;
    Mnemonic::parse_in(Language::English, normalized.as_str()).map_err(|e| {
        VaultError::InvalidMnemonic(match e {
            bip39::Error::UnknownWord(i) => {
                format!("word #{} is not in the BIP39 English word list", i + 1)
            }
            bip39::Error::InvalidChecksum => "the checksum does not match: a word is wrong or \
                 the words are out of order"
                .to_string(),
            other => other.to_string(),
        })
    })
}

fn check_word_count(count: usize) -> Result<(), VaultError> {
    if ACCEPTED_WORD_COUNTS.contains(&count) {
        Ok(())
    } else {
        Err(VaultError::InvalidMnemonic(format!(
            "expected 12 or 24 words, got {count}"
        )))
    }
}

/// A decrypted seed. Wiped from memory on drop; its `Debug` output shows only the word count.
pub struct UnlockedSeed {
    // `Mnemonic` zeroizes itself on drop (bip39's `zeroize` feature; asserted above).
    mnemonic: Mnemonic,
}

impl UnlockedSeed {
    /// Wraps a mnemonic the caller already has (e.g. in tests of the signer), without a vault.
    pub fn from_mnemonic(mnemonic: Mnemonic) -> UnlockedSeed {
        UnlockedSeed { mnemonic }
    }

    /// Number of recovery words (12 or 24 for seeds from a vault).
    pub fn word_count(&self) -> usize {
        self.mnemonic.word_count()
    }

    /// The recovery words, lowercase, separated by single spaces.
    pub fn mnemonic_words(&self) -> Zeroizing<String> {
        // Sized up front so the string never reallocates and leaves copies behind.
        let len = self.mnemonic.words().map(|w| w.len() + 1).sum();
        let mut words = Zeroizing::new(String::with_capacity(len));
        for (i, word) in self.mnemonic.words().enumerate() {
            if i > 0 {
                words.push(' ');
            }
            words.push_str(word);
        }
        words
    }

    /// The 64-byte BIP39 seed of the words with an empty BIP39 passphrase (the vault's
    /// passphrase only encrypts the file; it is not a BIP39 passphrase).
    pub fn bip39_seed(&self) -> Zeroizing<[u8; 64]> {
        Zeroizing::new(self.mnemonic.to_seed_normalized(""))
    }

    /// The 32-byte seed handed to the Lightning signer (VLS): the first 32 bytes of
    /// [`UnlockedSeed::bip39_seed`]. It is a deterministic function of the recovery words
    /// alone, so the words restore the node's keys.
    pub fn signer_seed(&self) -> Zeroizing<[u8; 32]> {
        let full = self.bip39_seed();
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&full[..32]);
        seed
    }
}

impl fmt::Debug for UnlockedSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnlockedSeed")
            .field("word_count", &self.word_count())
            .finish_non_exhaustive()
    }
}
