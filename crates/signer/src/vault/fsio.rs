//! Reading the vault file, and writing a new one atomically without ever replacing an
//! existing file (the write itself is `micronode-files`'s).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use super::VaultError;

/// A vault file is a few hundred bytes; anything much larger is not one.
const MAX_FILE_LEN: u64 = 16 * 1024;

fn io_error(what: impl Into<String>, source: io::Error) -> VaultError {
    VaultError::Io {
        what: what.into(),
        source,
    }
}

/// Fails with [`VaultError::AlreadyExists`] if anything (even a dangling symlink) is at `path`.
pub(super) fn ensure_absent(path: &Path) -> Result<(), VaultError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Err(VaultError::AlreadyExists(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(format!("checking {}", path.display()), e)),
    }
}

/// Reads a vault file, refusing anything that is not a small regular file.
pub(super) fn read_vault_file(path: &Path) -> Result<Vec<u8>, VaultError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(VaultError::NotFound(path.to_path_buf()))
        }
        Err(e) => return Err(io_error(format!("opening {}", path.display()), e)),
    };
    let metadata = file
        .metadata()
        .map_err(|e| io_error(format!("reading metadata of {}", path.display()), e))?;
    if !metadata.is_file() {
        return Err(VaultError::Corrupt(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    warn_if_exposed(path, &metadata);
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(format!("reading {}", path.display()), e))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(VaultError::Corrupt(format!(
            "{} is larger than {MAX_FILE_LEN} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(unix)]
fn warn_if_exposed(path: &Path, metadata: &fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:o}"),
            "the seed vault is accessible to other users; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_exposed(_path: &Path, _metadata: &fs::Metadata) {}

/// Writes `bytes` to a new file at `path` through `micronode-files` (owner-only, fsynced,
/// published without replacing anything that appeared there meanwhile, directory fsynced).
pub(super) fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    micronode_files::write_new_private(path, bytes).map_err(|e| match e {
        micronode_files::FileError::AlreadyExists(p) => VaultError::AlreadyExists(p),
        other => VaultError::Io {
            what: format!("writing {}", path.display()),
            source: std::io::Error::other(other),
        },
    })
}
