//! Private-file helpers: atomic writes with owner-only permissions.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{LinkError, Result};

fn storage(path: &Path, source: std::io::Error) -> LinkError {
    LinkError::Storage {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and missing parents) with mode 0700. An existing directory is left as is.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
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
    builder.create(dir).map_err(|e| storage(dir, e))
}

/// Writes `contents` to `path` atomically: a temporary file (mode 0600) in the same
/// directory is written, synced and renamed over `path`, then the directory is synced.
pub(crate) fn write_private_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    ensure_private_dir(&dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| storage(path, std::io::Error::other("not a file path")))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp-{:016x}", rand::random::<u64>()));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&tmp).map_err(|e| storage(&tmp, e))?;
        file.write_all(contents).map_err(|e| storage(&tmp, e))?;
        file.sync_all().map_err(|e| storage(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, path).map_err(|e| storage(path, e))?;
        // Make the rename durable. Directories cannot be opened for syncing everywhere;
        // where they can, a failure is reported.
        #[cfg(unix)]
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| storage(&dir, e))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads `path` if it exists. Warns (without failing) when a private file is readable by
/// group or others.
pub(crate) fn read_private(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = fs::metadata(path) {
                    if meta.permissions().mode() & 0o077 != 0 {
                        tracing::warn!(
                            path = %path.display(),
                            "link file is accessible to other users; it should be mode 0600"
                        );
                    }
                }
            }
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(storage(path, e)),
    }
}
