//! The volume registry of mountkit: named and anonymous volumes with their own lifecycle, labels, the
//! `local` driver's options (a plain directory, tmpfs, a bind of a host directory, NFS, CIFS, ...),
//! references from containers, driver mounts while a volume is in use, prune, and populate-from-image on
//! first use. A [`Registry`] owns one directory laid out as Docker lays out `/var/lib/docker/volumes`:
//! `<root>/<name>/_data` for the data, `volume.json` beside it for the record.
//!
//! The layout, where each fact is kept, the rules (Docker's unless said otherwise), durability and the
//! measurements behind them are in `docs/volumes.md` at the repository root.
//!
//! ```
//! use mountkit_volumes::{CreateOptions, Filter, Registry};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let reg = Registry::open(dir.path().join("volumes")).unwrap();
//! let mut opts = CreateOptions::default();
//! opts.labels.insert("app".into(), "todo".into());
//! let vol = reg.create(Some("todo-list"), opts).unwrap();
//! assert!(vol.mountpoint.ends_with("todo-list/_data"));
//!
//! reg.add_ref("todo-list", "c1").unwrap();
//! let err = reg.remove("todo-list", true).unwrap_err();
//! assert!(err.to_string().contains("in use by container(s) c1"));
//!
//! let dangling: Filter = "dangling=true".parse().unwrap();
//! assert!(reg.list(&[dangling]).unwrap().is_empty());
//!
//! // A container run: acquire, populate what has no content yet, release.
//! let acquired = reg.acquire_all(&["todo-list"], "c1").unwrap();
//! assert_eq!(acquired[0].path, vol.mountpoint);
//! assert!(acquired[0].needs_populate());
//! reg.release_all(&acquired).unwrap();
//!
//! reg.remove_ref("todo-list", "c1").unwrap();
//! assert!(reg.remove("todo-list", false).unwrap());
//! ```
//!
//! # Main types
//!
//! - [`Registry`]: every operation: create, get, list, remove, prune; references
//!   ([`add_refs`](Registry::add_refs), [`set_refs`](Registry::set_refs)); a container run's
//!   [`acquire_all`](Registry::acquire_all), [`populate`](Registry::populate) and
//!   [`release_all`](Registry::release_all); [`reconcile`](Registry::reconcile) after a crash.
//! - Moving and copying content: [`export_dir`](Registry::export_dir) (what to archive),
//!   [`stage_import`](Registry::stage_import) and [`StagedImport::commit`] (an import, atomic),
//!   [`clone_volume`](Registry::clone_volume) (reflinks where the filesystem can). The archive format
//!   is the caller's (mountkit uses `mountkit-layer-store`'s `tar_tree`/`unpack_tree`).
//! - [`Volume`]: what `inspect` shows of a volume. [`CreateOptions`]: what to create. [`Filter`]: one
//!   `--filter` of `ls` and `prune`. [`Acquired`]: one volume made usable for a run. [`Error`].
//!
//! # Dependencies
//!
//! - `mountkit-safefs`: atomic writes, the registry lock, mount-aware removal, the mount table, random
//!   names, the boot ID, RFC 3339 creation times, `statx` mount IDs.
//! - `libc`: `quotactl_fd(2)` and the ioctls of project quotas (`FS_IOC_FSSETXATTR`) and loop devices
//!   (`LOOP_CONFIGURE`), which rustix does not wrap.
//! - `rustix`: `mount(2)`/`umount2(2)` for driver mounts; `mknodat` for the empty entries; `getdents64`
//!   for a volume's entries; for a faithful copy, what std lacks: xattrs, `utimensat` on symlinks.
//! - `serde`/`serde_json`: the record and the registry's own files.
//! - `thiserror`: the error type; `tracing`: diagnostics around every privileged step.
//! - For tests only: `nix` (the privileged tests make their own mounts with it), `humantime` (checks
//!   creation times), `tempfile`, `mountkit-testutil`, and `criterion` for the benches.

#![deny(missing_docs)]

mod archive;
mod cache;
mod copy;
mod driver;
mod files;
mod filter;
mod inuse;
mod layout;
mod lifecycle;
mod limit;
mod lock;
mod loopdev;
mod name;
mod populate;
mod quota;
mod record;
mod refs;
mod registry;
mod volume;

use std::path::PathBuf;

pub use archive::StagedImport;
pub use driver::validate_options;
pub use filter::Filter;
pub use inuse::{AcquirePlan, Acquired};
pub use lifecycle::CreateOptions;
pub use limit::{SizeLimit, SizeMethod};
pub use name::validate_name;
pub use registry::Registry;
pub use volume::Volume;

/// Everything that can go wrong in this crate; each message names the volume (or input) and the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A volume name breaks Docker's rule.
    #[error("invalid volume name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No volume has this name.
    #[error("no such volume: {name:?}")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// The name is taken by a volume with another driver or other options.
    #[error("volume {name:?} already exists with {existing}; it was asked for with {requested}")]
    Conflict {
        /// The volume's name.
        name: String,
        /// The existing driver and options.
        existing: String,
        /// The requested driver and options.
        requested: String,
    },
    /// A driver other than `local` was asked for.
    #[error("unsupported volume driver {driver:?}: only \"local\" is available")]
    UnsupportedDriver {
        /// The driver asked for.
        driver: String,
    },
    /// A driver option is unknown, missing or malformed.
    #[error("invalid option for volume driver \"local\": {reason}")]
    InvalidOption {
        /// What is wrong (quotes the option).
        reason: String,
    },
    /// A filter string could not be parsed.
    #[error("invalid filter {filter:?}: {reason}")]
    InvalidFilter {
        /// The filter as given.
        filter: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A container name cannot be recorded as a reference (it must fit in a directory entry).
    #[error("invalid container name {container:?} for a volume reference: {reason}")]
    InvalidReference {
        /// The name as given.
        container: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The volume is referenced by containers and cannot be removed.
    #[error("volume {name} is in use by container(s) {}; remove them first", .containers.join(", "))]
    InUse {
        /// The volume's name.
        name: String,
        /// The referencing containers.
        containers: Vec<String>,
    },
    /// The volume is acquired (mounted for running users) and cannot be removed.
    #[error("volume {name} is mounted for {}; stop them first", .users.join(", "))]
    Active {
        /// The volume's name.
        name: String,
        /// The active users.
        users: Vec<String>,
    },
    /// Something is mounted under the volume's directory: nothing was deleted.
    #[error("cannot remove volume {name}: still mounted under it: {} (nothing was deleted)", mountkit_safefs::display_paths(.mounts))]
    MountedUnder {
        /// The volume's name.
        name: String,
        /// The mount points found.
        mounts: Vec<PathBuf>,
    },
    /// A driver volume was to be populated while its mount is not attached.
    #[error("volume {name} is not acquired: its {kind} mount must be attached before it can be populated")]
    NotAcquired {
        /// The volume's name.
        name: String,
        /// The filesystem type of its mount.
        kind: String,
    },
    /// Something not made by mountkit is mounted at the volume's `_data`.
    #[error(
        "volume {name}: {path} is a mount point that mountkit did not make; refusing to mount over or unmount it"
    )]
    ForeignMount {
        /// The volume's name.
        name: String,
        /// The `_data` path.
        path: PathBuf,
    },
    /// A driver volume's content cannot be read while its mount is not attached.
    #[error(
        "cannot {op} volume {name}: its content is a {what} mount, which has none while no container uses it"
    )]
    NotAttached {
        /// "export" or "clone".
        op: &'static str,
        /// The volume's name.
        name: String,
        /// The mount, described (type, device, options).
        what: String,
    },
    /// The operation cannot be done on this volume.
    #[error("cannot {op} volume {name}: {reason}")]
    Unsupported {
        /// What was asked ("import into", ...).
        op: &'static str,
        /// The volume's name.
        name: String,
        /// Why not.
        reason: String,
    },
    /// An import into a volume that has content, without `force`.
    #[error("volume {name} is not empty: importing would replace its content (force to do so)")]
    NotEmpty {
        /// The volume's name.
        name: String,
    },
    /// The volume to be made (a clone's destination) exists.
    #[error("volume {name} already exists")]
    Exists {
        /// The volume's name.
        name: String,
    },
    /// A clone failed while copying; nothing of the destination is left.
    #[error("cannot clone volume {src} into {dst} (nothing was made): {source}")]
    Clone {
        /// The source volume.
        src: String,
        /// The destination volume.
        dst: String,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
    /// `mount(2)` or `umount2(2)` failed.
    #[error("cannot {op} volume {name} ({what}) at {path}: {source}")]
    Mount {
        /// "mount" or "unmount".
        op: &'static str,
        /// The volume's name.
        name: String,
        /// The mount, described (type, device, options).
        what: String,
        /// The `_data` path.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// Setting up or using a volume's size limit failed (project quota, image file, loop device).
    #[error("volume {name}: cannot {what}: {source}")]
    SizeLimit {
        /// The volume's name.
        name: String,
        /// What was being done.
        what: String,
        /// The kernel's (or the program's) answer.
        #[source]
        source: std::io::Error,
    },
    /// Filling a driver volume (NFS, a bind, ...) from the image failed on its mount: the server or
    /// filesystem refused what the copy needs.
    #[error("cannot fill volume {name} from the image onto its mount ({what}){hint}: {source}")]
    PopulateMount {
        /// The volume's name.
        name: String,
        /// The mount, described (type, device, options: the server's address for NFS).
        what: String,
        /// A likely cause, when the error says one (`; ...`), else empty.
        hint: String,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
    /// `populate` was given a source that is not a directory.
    #[error("cannot populate volume {name} from {path}: not a directory")]
    SourceNotDirectory {
        /// The volume's name.
        name: String,
        /// The source path.
        path: PathBuf,
    },
    /// A volume's metadata file is unreadable or malformed.
    #[error("volume metadata {path} is corrupt: {source}")]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A filesystem operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// To which path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A mountkit-safefs operation failed (atomic write, lock, removal, mountinfo).
    #[error(transparent)]
    Fs(#[from] mountkit_safefs::Error),
}

impl Error {
    /// True for [`Error::NotFound`], so callers can ignore a volume that is already gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<std::io::Error>) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
