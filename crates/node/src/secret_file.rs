//! Secret files readable by their owner only.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::NodeError;

/// Reads a 32-byte seed from `path`, or creates one from the OS's randomness with mode 0600.
pub fn load_or_create_seed(path: &Path) -> Result<[u8; 32], NodeError> {
    if path.exists() {
        let bytes = fs::read(path)?;
        return bytes.as_slice().try_into().map_err(|_| {
            NodeError::Config(format!("{} must hold exactly 32 bytes", path.display()))
        });
    }
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    write_private(path, &seed)?;
    Ok(seed)
}

/// Writes `bytes` to `path` atomically, readable and writable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// Creates `dir` (and parents) with mode 0700 for the last component.
pub fn create_private_dir(dir: &Path) -> Result<(), NodeError> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}
