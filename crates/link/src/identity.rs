//! A link endpoint's long-term static X25519 key.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{LinkError, Result};
use crate::fsutil;
use crate::handshake::KK_PARAMS;

/// Length of a static public or private key.
pub const KEY_LEN: usize = 32;

/// The static X25519 keypair a node or signer is known by on the link.
///
/// The private key is wiped from memory on drop and never printed: `Debug` shows only the
/// public key's fingerprint.
pub struct LinkIdentity {
    private: Zeroizing<[u8; KEY_LEN]>,
    public: [u8; KEY_LEN],
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct IdentityFile {
    version: u32,
    public_key: String,
    private_key: String,
}

impl LinkIdentity {
    /// Generates a fresh random keypair.
    pub fn generate() -> Result<Self> {
        let params = KK_PARAMS.parse()?;
        let mut kp = snow::Builder::new(params).generate_keypair()?;
        let out = Self::from_keypair_bytes(&kp.private, &kp.public);
        kp.private.zeroize();
        out
    }

    fn from_keypair_bytes(private: &[u8], public: &[u8]) -> Result<Self> {
        let mut priv_arr = Zeroizing::new([0u8; KEY_LEN]);
        let mut pub_arr = [0u8; KEY_LEN];
        if private.len() != KEY_LEN || public.len() != KEY_LEN {
            return Err(LinkError::Noise(snow::Error::Input));
        }
        priv_arr.copy_from_slice(private);
        pub_arr.copy_from_slice(public);
        Ok(Self {
            private: priv_arr,
            public: pub_arr,
        })
    }

    /// Builds an identity from a private key, deriving its public key.
    pub fn from_private_key(private: &[u8; KEY_LEN]) -> Result<Self> {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .ok_or(LinkError::Noise(snow::Error::Init(
                snow::error::InitStage::GetDhImpl,
            )))?;
        dh.set(private);
        Self::from_keypair_bytes(private, dh.pubkey())
    }

    /// Loads an identity saved by [`LinkIdentity::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fsutil::read_private(path)?.ok_or_else(|| LinkError::Storage {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
        let bytes = Zeroizing::new(bytes);
        let corrupt = |reason: &str| LinkError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let file: IdentityFile =
            serde_json::from_slice(&bytes).map_err(|_| corrupt("not a link identity file"))?;
        if file.version != 1 {
            return Err(corrupt("unsupported identity file version"));
        }
        let mut private = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(file.private_key.as_bytes(), &mut private[..])
            .map_err(|_| corrupt("private key is not 32 bytes of hex"))?;
        let identity = Self::from_private_key(&private)?;
        let mut public = [0u8; KEY_LEN];
        hex::decode_to_slice(file.public_key.as_bytes(), &mut public)
            .map_err(|_| corrupt("public key is not 32 bytes of hex"))?;
        if public != identity.public {
            return Err(corrupt("public key does not match the private key"));
        }
        Ok(identity)
    }

    /// Saves the identity as JSON, atomically, with mode 0600 (creating the directory with
    /// mode 0700 if it is missing).
    pub fn save(&self, path: &Path) -> Result<()> {
        let file = IdentityFile {
            version: 1,
            public_key: hex::encode(self.public),
            private_key: hex::encode(*self.private),
        };
        let json =
            Zeroizing::new(
                serde_json::to_vec_pretty(&file).map_err(|e| LinkError::Corrupt {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?,
            );
        fsutil::write_private_atomic(path, &json)
    }

    /// Loads the identity at `path`, or generates and saves a new one if there is none.
    pub fn load_or_generate(path: &Path) -> Result<Self> {
        if path.exists() {
            return Self::load(path);
        }
        let identity = Self::generate()?;
        identity.save(path)?;
        Ok(identity)
    }

    /// The static public key peers pin.
    pub fn public_key(&self) -> [u8; KEY_LEN] {
        self.public
    }

    /// A short human-comparable fingerprint of the public key (see [`fingerprint`]).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public)
    }

    pub(crate) fn private_key(&self) -> &[u8; KEY_LEN] {
        &self.private
    }
}

impl fmt::Debug for LinkIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkIdentity")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// A short fingerprint of a static public key, for people to compare out of band and for
/// logs: the first 8 bytes in hex, grouped by 4 (`"1a2b3c4d-5e6f7a8b"`).
pub fn fingerprint(public_key: &[u8; KEY_LEN]) -> String {
    let hex = hex::encode(&public_key[..8]);
    format!("{}-{}", &hex[..8], &hex[8..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("link.json");
        let id = LinkIdentity::generate().unwrap();
        id.save(&path).unwrap();
        let loaded = LinkIdentity::load(&path).unwrap();
        assert_eq!(loaded.public_key(), id.public_key());
        assert_eq!(*loaded.private_key(), *id.private_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dmode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(dmode & 0o777, 0o700);
        }
        // No temporary files are left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn load_or_generate_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link.json");
        let a = LinkIdentity::load_or_generate(&path).unwrap();
        let b = LinkIdentity::load_or_generate(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
    }

    #[test]
    fn derived_public_key_matches_generated() {
        let id = LinkIdentity::generate().unwrap();
        let again = LinkIdentity::from_private_key(id.private_key()).unwrap();
        assert_eq!(again.public_key(), id.public_key());
    }

    #[test]
    fn corrupt_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link.json");
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            LinkIdentity::load(&path),
            Err(LinkError::Corrupt { .. })
        ));
        let id = LinkIdentity::generate().unwrap();
        let other = LinkIdentity::generate().unwrap();
        let json = format!(
            r#"{{"version":1,"public_key":"{}","private_key":"{}"}}"#,
            hex::encode(other.public_key()),
            hex::encode(*id.private_key())
        );
        std::fs::write(&path, json).unwrap();
        assert!(matches!(
            LinkIdentity::load(&path),
            Err(LinkError::Corrupt { .. })
        ));
        assert!(matches!(
            LinkIdentity::load(&dir.path().join("missing.json")),
            Err(LinkError::Storage { .. })
        ));
    }

    #[test]
    fn debug_does_not_print_the_private_key() {
        let id = LinkIdentity::generate().unwrap();
        let shown = format!("{id:?}");
        assert!(!shown.contains(&hex::encode(*id.private_key())));
        assert!(shown.contains(&id.fingerprint()));
    }
}
