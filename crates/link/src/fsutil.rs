//! Private-file helpers: the link's files go through `micronode-files` (owner-only, atomic,
//! file and directory fsynced), with errors mapped to [`LinkError::Storage`].

use std::path::Path;

use micronode_files::FileError;

use crate::error::{LinkError, Result};

fn storage(path: &Path, e: FileError) -> LinkError {
    let source = match e {
        FileError::Io { source, .. } => source,
        FileError::AlreadyExists(_) => std::io::Error::from(std::io::ErrorKind::AlreadyExists),
    };
    LinkError::Storage {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and missing parents) with mode 0700.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    micronode_files::create_private_dir(dir).map_err(|e| storage(dir, e))
}

/// Writes `contents` to `path` atomically and durably, owner-only.
pub(crate) fn write_private_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    micronode_files::write_private(path, contents).map_err(|e| storage(path, e))
}

/// Reads `path` if it exists; warns when it is accessible to others.
pub(crate) fn read_private(path: &Path) -> Result<Option<Vec<u8>>> {
    micronode_files::read_private(path).map_err(|e| storage(path, e))
}
