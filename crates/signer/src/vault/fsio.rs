//! Reading the vault file, and writing a new one atomically without ever replacing an
//! existing file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;

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

/// Writes `bytes` to a new file at `path`: into a temporary file in the same directory (mode
/// 0600, fsynced), then published under its name without replacing anything that appeared
/// there meanwhile, then the directory is fsynced. Missing directories are created with
/// mode 0700.
pub(super) fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let name = path.file_name().ok_or_else(|| {
        io_error(
            format!("writing {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
        )
    })?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;
    ensure_absent(path)?;

    let mut suffix = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", hex::encode(suffix)));
    let tmp_path = dir.join(tmp_name);
    let mut file = create_private_file(&tmp_path)?;
    let tmp = TempFile(tmp_path);
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(format!("writing {}", tmp.0.display()), e))?;
    drop(file);

    publish(&tmp.0, path)?;
    drop(tmp);
    sync_dir(&dir)
}

/// Gives the temporary file its final name. A hard link fails if the name is taken, so a
/// vault that appeared since [`ensure_absent`] is never replaced; file systems without hard
/// links fall back to a rename after one more check.
fn publish(tmp: &Path, path: &Path) -> Result<(), VaultError> {
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(VaultError::AlreadyExists(path.to_path_buf()))
        }
        Err(e) => {
            tracing::debug!(error = %e, "hard link failed; publishing the vault by rename");
            ensure_absent(path)?;
            fs::rename(tmp, path)
                .map_err(|e| io_error(format!("renaming into {}", path.display()), e))
        }
    }
}

/// Removes the temporary file when dropped (after a hard link it is a second name of the
/// vault; after a rename or on error it may be gone already).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.0) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.0.display(), error = %e, "could not remove a temporary file");
            }
        }
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), VaultError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error(format!("creating directory {}", dir.display()), e))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), VaultError> {
    fs::create_dir_all(dir)
        .map_err(|e| io_error(format!("creating directory {}", dir.display()), e))
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> Result<File, VaultError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(format!("creating {}", path.display()), e))?;
    // The mode above is filtered by the umask; make it exactly 0600 whatever the umask.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| io_error(format!("setting the mode of {}", path.display()), e))?;
    Ok(file)
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> Result<File, VaultError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io_error(format!("creating {}", path.display()), e))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(format!("syncing directory {}", dir.display()), e))
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), VaultError> {
    Ok(())
}
