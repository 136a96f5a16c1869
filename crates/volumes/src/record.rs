//! The record, `<root>/<name>/volume.json`: what a volume is (driver, options, labels, creation time,
//! anonymous or not) and its in-use state ([`InUse`], whose rules are in `inuse`).
//!
//! The record is written whole: once at create, without fsync, inside the staging directory that the
//! volume appears by; after that only to change its in-use state, atomically and with fsync
//! ([`replace`]). Its name is its directory's; its references and whether it has content are entries
//! beside it (`refs`, `populate`), never fields of the record.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::{self, read_small};
use crate::inuse::InUse;
use crate::layout::Layout;
use crate::limit::SizeLimit;
use crate::lock::ChangeLock;
use crate::{Error, Result};

/// The record's file name, in the volume's directory.
pub(crate) const RECORD: &str = "volume.json";

/// The content of `volume.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The driver (`local`).
    pub(crate) driver: String,
    /// When the volume was created (RFC 3339, UTC).
    pub(crate) created: String,
    /// Its labels.
    pub(crate) labels: BTreeMap<String, String>,
    /// Its driver options.
    pub(crate) options: BTreeMap<String, String>,
    /// Whether it is anonymous.
    pub(crate) anonymous: bool,
    /// Who holds it acquired, and whether mountkit has its driver mount attached (keys `active`,
    /// `mounted`, `active_boot` of the same object).
    #[serde(flatten)]
    pub(crate) in_use: InUse,
    /// The size limit (`size` option) and how it is enforced; decided once, at create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) size_limit: Option<SizeLimit>,
}

/// The path of `name`'s record.
pub(crate) fn path(layout: &Layout, name: &str) -> PathBuf {
    layout.volume_dir(name).join(RECORD)
}

/// Reads `name`'s record. [`Error::NotFound`] when there is none, or an empty one: an empty record is
/// what a power loss leaves of a create whose record had not been written back yet (see "Durability" in
/// docs/volumes.md), and that directory is no volume.
pub(crate) fn read(layout: &Layout, name: &str) -> Result<Record> {
    let path = path(layout, name);
    let not_found = || Error::NotFound {
        name: name.to_string(),
    };
    let bytes = match read_small(&path) {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => return Err(not_found()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    serde_json::from_slice(&bytes).map_err(|source| Error::Metadata { path, source })
}

/// Whether `name` has a whole record (a volume, as far as one `stat` can tell).
pub(crate) fn exists(layout: &Layout, name: &str) -> bool {
    fs::metadata(path(layout, name)).is_ok_and(|m| m.is_file() && m.len() > 0)
}

fn encode(record: &Record, path: &Path) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(record).map_err(|e| Error::io("encode", path, e))
}

/// Writes a new record at `path`, in a staging directory (no fsync: the volume appears by the rename of
/// that directory).
pub(crate) fn write_staged(path: &Path, record: &Record) -> Result<()> {
    files::write_new(path, &encode(record, path)?)
}

/// Replaces `name`'s record, atomically and durably. The fsync is kept because an unsynced replace can
/// leave an empty record after a power loss (xfs), and an empty record hides the volume and, when the
/// name is created again, adopts it without its driver options. Only in-use changes of driver volumes
/// and of users without a reference come here, so it is rarely paid.
pub(crate) fn replace(change: &ChangeLock, name: &str, record: &Record) -> Result<()> {
    change.invalidate_list_cache()?;
    let path = path(change.layout(), name);
    mountkit_safefs::write_atomic(&path, &encode(record, &path)?)?;
    Ok(())
}
