//! Private files: the one way micronode writes a secret or a piece of state that must survive a
//! crash.
//!
//! Every write is atomic and durable: the bytes go to a temporary file in the same directory
//! (created owner-only, mode 0600), the file is fsynced, renamed over its final name (or
//! hard-linked, when an existing file must never be replaced), and the directory is fsynced
//! so the rename itself survives a power cut. Directories are created owner-only (0700).
//!
//! Used by the node (keys seed, channel key cache), the signer link (identity, pairings), the
//! signer (seed vault, revocation marker, velocity log, pairing, config) and the API cookie.

#![deny(missing_docs)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Why a private file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An I/O step failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("writing", "syncing directory", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// [`write_new_private`] found something at the path already.
    #[error("{} already exists; refusing to replace it", .0.display())]
    AlreadyExists(PathBuf),
}

impl FileError {
    fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        FileError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Creates `dir` and any missing parents with mode 0700. An existing directory is left as it
/// is (it may be shared, like `/tmp`): use [`own_private_dir`] for a directory that belongs to
/// the component alone.
pub fn create_private_dir(dir: &Path) -> Result<(), FileError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| FileError::io("creating directory", dir, e))
}

/// Like [`create_private_dir`], and makes `dir` itself owner-only (0700) even if it existed:
/// for a directory that belongs to one component alone (a node's data directory, the signer's
/// directory).
pub fn own_private_dir(dir: &Path) -> Result<(), FileError> {
    create_private_dir(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if !dir.as_os_str().is_empty() {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| FileError::io("setting the mode of", dir, e))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path`, replacing any previous content atomically: after a crash the file
/// holds either the old or the new bytes, never a mix, and a write that returned `Ok` is on disk.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let dir = parent_dir(path);
    create_private_dir(&dir)?;
    let tmp = TempFile::write(path, &dir, bytes)?;
    fs::rename(&tmp.0, path).map_err(|e| FileError::io("renaming into", path, e))?;
    tmp.forget();
    sync_dir(&dir)
}

/// Like [`write_private`], but never replaces anything: fails with
/// [`FileError::AlreadyExists`] if `path` exists (even as a dangling symlink) or appears while
/// the file is being written. For files whose loss would be catastrophic (a seed vault).
pub fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let dir = parent_dir(path);
    create_private_dir(&dir)?;
    ensure_absent(path)?;
    let tmp = TempFile::write(path, &dir, bytes)?;
    // A hard link fails if the name is taken, so nothing that appeared meanwhile is replaced;
    // file systems without hard links fall back to a rename after one more check.
    match fs::hard_link(&tmp.0, path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(FileError::AlreadyExists(path.to_path_buf()))
        }
        Err(e) => {
            tracing::debug!(error = %e, "hard link failed; publishing by rename");
            ensure_absent(path)?;
            fs::rename(&tmp.0, path).map_err(|e| FileError::io("renaming into", path, e))?;
        }
    }
    drop(tmp);
    sync_dir(&dir)
}

/// Reads `path` if it exists (`Ok(None)` if not). Warns, without failing, when the file is
/// readable or writable by group or others.
pub fn read_private(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    match fs::read(path) {
        Ok(bytes) => {
            warn_if_exposed(path);
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FileError::io("reading", path, e)),
    }
}

/// Fails with [`FileError::AlreadyExists`] if anything (even a dangling symlink) is at `path`.
pub fn ensure_absent(path: &Path) -> Result<(), FileError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Err(FileError::AlreadyExists(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FileError::io("checking", path, e)),
    }
}

/// Opens a new file for writing with mode 0600 (exactly, whatever the umask); fails if it
/// exists. For files written in place by their owner (e.g. a log).
pub fn create_private_file(path: &Path) -> Result<File, FileError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts
        .open(path)
        .map_err(|e| FileError::io("creating", path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| FileError::io("setting the mode of", path, e))?;
    }
    Ok(file)
}

/// Sets an existing file's mode to 0600 (e.g. SQLite's side files, created by the library).
pub fn restrict_to_owner(path: &Path) -> Result<(), FileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| FileError::io("setting the mode of", path, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temporary sibling of the target, removed on drop unless forgotten (after a rename).
struct TempFile(PathBuf);

impl TempFile {
    fn write(target: &Path, dir: &Path, bytes: &[u8]) -> Result<Self, FileError> {
        let name = target.file_name().ok_or_else(|| {
            FileError::io(
                "writing",
                target,
                io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
            )
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", hex::encode(rand::random::<[u8; 8]>())));
        let path = dir.join(tmp_name);
        let mut file = create_private_file(&path)?;
        let tmp = TempFile(path);
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| FileError::io("writing", &tmp.0, e))?;
        Ok(tmp)
    }

    fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.0) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.0.display(), error = %e, "could not remove a temporary file");
            }
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), FileError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FileError::io("syncing directory", dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn warn_if_exposed(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{mode:o}"),
                    "a private file is accessible to other users; it should be mode 0600"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn writes_replace_atomically_owner_only_and_leave_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        let path = sub.join("state.json");
        write_private(&path, b"one").unwrap();
        write_private(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(read_private(&path).unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 1, "no temporary left");
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&sub), 0o700);
        }
    }

    #[cfg(unix)]
    #[test]
    fn shared_directories_keep_their_mode_owned_ones_become_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
        write_private(&shared.join("cookie"), b"x").unwrap();
        assert_eq!(
            mode(&shared),
            0o755,
            "a file in a shared directory leaves it alone"
        );
        own_private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o700);
    }

    #[test]
    fn new_files_never_replace_anything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.vault");
        write_new_private(&path, b"first").unwrap();
        let err = write_new_private(&path, b"second").unwrap_err();
        assert!(matches!(err, FileError::AlreadyExists(_)), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"first");
        #[cfg(unix)]
        {
            let link = dir.path().join("dangling");
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
            assert!(matches!(
                write_new_private(&link, b"x"),
                Err(FileError::AlreadyExists(_))
            ));
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn missing_files_read_as_none_and_errors_keep_their_cause() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_private(&dir.path().join("absent")).unwrap().is_none());
        // A directory where a file is expected: reading fails with the path and the cause.
        let err = read_private(dir.path()).unwrap_err();
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }
}
