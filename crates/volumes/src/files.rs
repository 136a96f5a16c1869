//! The small file operations the registry makes everywhere: empty entries made or removed by one system
//! call, small reads, JSON files of this crate, new files and directories.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Creates an empty file at `path` with one `mknodat(2)` (no descriptor to open and close): a reference
/// or a marker. `Ok(false)` when it exists already.
pub(crate) fn make_empty(path: &Path) -> Result<bool> {
    use rustix::fs::{CWD, FileType, Mode, mknodat};
    match mknodat(CWD, path, FileType::RegularFile, Mode::from_raw_mode(0o644), 0) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        Err(e) => Err(Error::io("create", path, e)),
    }
}

/// Removes the file at `path`; `Ok(false)` when there was none.
pub(crate) fn remove_if_there(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// Whether anything is at `path` (not following a final symlink): one `stat`.
pub(crate) fn is_there(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Reads a small file: open, read until the end, close (`fs::read` also `stat`s it for a size hint, which
/// costs more than it saves for a file of a few hundred bytes).
pub(crate) fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = fs::File::open(path)?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One of the registry's own JSON files (the list cache, the in-use index); `None` when it is missing or
/// does not parse: these files are derived, and whoever reads them rebuilds them then.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// Replaces one of the registry's own JSON files, atomically and without fsync (they are derived: see
/// the callers for why losing one is harmless).
pub(crate) fn write_json_nosync<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_vec(value).map_err(|e| Error::io("encode", path, e))?;
    mountkit_safefs::write_atomic_nosync(path, &json)?;
    Ok(())
}

/// Writes a new file (that must not exist yet) without fsync: for a record inside a private staging
/// directory, which becomes visible only by the rename of that directory.
pub(crate) fn write_new(path: &Path, data: &[u8]) -> Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| Error::io("write", path, e))
}

/// Makes the directory `path` with `mode`; an existing directory is fine.
pub(crate) fn mkdir(path: &Path, mode: u32) -> Result<()> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(Error::io("create directory", path, e)),
    }
}

/// Whether the directory `path` has no entries.
pub(crate) fn dir_is_empty(path: &Path) -> Result<bool> {
    Ok(fs::read_dir(path)
        .map_err(|e| Error::io("read directory", path, e))?
        .next()
        .is_none())
}
