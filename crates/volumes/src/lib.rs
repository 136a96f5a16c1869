//! The volume registry of mountkit: named and anonymous volumes with their own lifecycle, labels, the
//! `local` driver's options (plain directory, tmpfs, bind of a host directory, any other filesystem type
//! such as NFS or CIFS), in-use references, prune, and populate-from-image on first use.
//!
//! A [`Registry`] owns one directory (`<root>`, normally `<store>/volumes`), laid out as Docker lays out
//! `/var/lib/docker/volumes`:
//!
//! ```text
//! <root>/.lock                 flock(2)ed by every command that changes the registry
//! <root>/.tmp/                 staging: volumes are created here and renamed in; removed ones renamed out
//! <root>/.generation           bumped (under the lock) before every change
//! <root>/.list-cache.json      every record at one generation: `list` reads one file, not one per volume
//! <root>/<name>/volume.json    the metadata (JSON, written atomically through mountkit-safefs)
//! <root>/<name>/_data/         the data; a container gets it bind-mounted (the `mountpoint`)
//! ```
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
//! reg.remove_ref("todo-list", "c1").unwrap();
//! assert!(reg.remove("todo-list", false).unwrap());
//! ```
//!
//! # Decisions (where the issue is silent, Docker's behaviour unless said otherwise)
//!
//! - **Names** follow Docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (so at least two characters, and never a
//!   path). Generated names (no name given, and every anonymous volume) are 64 hex digits from the kernel's
//!   CSPRNG, like Docker's.
//! - **Creating an existing name** returns the existing volume when the driver and the options are the same
//!   (Docker: "If you specify a volume name already in use on the current driver, Docker assumes you want to
//!   re-use the existing volume and does not return an error"). Labels of the second request are ignored, as
//!   in Docker. Differing driver *or options* is an error ([`Error::Conflict`]); Docker silently ignores
//!   differing options, which hides mistakes like asking for a tmpfs and getting a disk directory.
//! - **Drivers**: only `local`. Options are Docker's `type`, `o`, `device`; unknown keys are an error.
//!   `type` needs `device` and the other way round, as in Docker, except that `type=tmpfs` may leave
//!   `device` out (it defaults to `tmpfs`). `type=none` needs `o=bind` (or `rbind`) and an absolute `device`.
//!   Words of `o` that are mount flags (`ro`, `nosuid`, `nodev`, `noexec`, `noatime`, `bind`, `rbind`, ...)
//!   become `mount(2)` flags; the rest is passed as the data string. For `nfs`/`nfs4`, an `addr=HOST` that
//!   is not an IP address is resolved first (the kernel wants an address), as Docker does.
//! - **Driver mounts** (any `type`) are made in the caller's (host) mount namespace at `_data` when the first
//!   user [`acquire`](Registry::acquire)s the volume and undone when the last one
//!   [`release`](Registry::release)s it, so two containers share one tmpfs. The record of active users is in
//!   `volume.json`, and the record says "mounted" *before* the mount is made, so a crash can never leave a
//!   mount that [`reconcile`](Registry::reconcile) will not find. Only a mount at exactly `_data` that the
//!   record says mountkit made is ever unmounted. A mount at `_data` that mountkit did not make is an error.
//! - **References** ([`add_ref`](Registry::add_ref)) are the containers that use a volume. A referenced
//!   volume cannot be removed, with or without `force` (as in Docker, `force` only makes an unknown name no
//!   error). `dangling=true` means "no references".
//! - **Removal** is a rename out of the registry followed by `mountkit_safefs::remove_tree`, which refuses
//!   when anything is mounted under the volume's directory and never crosses a mount. It deletes only
//!   mountkit's own files: the `device` of a bind volume is never touched.
//! - **Prune** removes unreferenced anonymous volumes; with `all`, unreferenced named ones too (Docker 23+).
//!   Volumes with references or active users are kept. A volume that cannot be removed (something mounted
//!   under it) is skipped with a warning, as Docker does, and is not in the returned list.
//! - **Filters**: `label=k`, `label=k=v`, `label!=k`, `label!=k=v`, `dangling=true|false|1|0`,
//!   `name=TEXT`, `driver=NAME`. Several filters must all hold, except that several `name` (or `driver`)
//!   filters match when any of them does (Docker: values of one key are alternatives, except `label`).
//!   Docker matches `name` as an unanchored regular expression; mountkit matches it as a substring, which is
//!   what the regular expression does for every valid volume name (they contain no regex syntax but `.`).
//! - **Populate** ([`populate`](Registry::populate)) copies the image's content at the mount path into the
//!   volume on first use, keeping owners, modes, timestamps, xattrs, symlinks (never followed), hard links
//!   and device nodes, and not descending into other mounts of the source. The root of the volume takes the
//!   owner and mode of the image's directory, as in Docker. It copies only when the volume is empty and the
//!   source has content (Docker's rule), and then sets `populated`; a volume found non-empty is marked
//!   `populated` too. So a missing or empty image directory leaves the volume open to a later image (as in
//!   Docker), but once a volume has had content it is never filled again, even if emptied (Docker would
//!   fill an emptied volume again; mountkit prefers not to resurrect data the user deleted). A tmpfs
//!   volume loses its content with its mount, so its `populated` flag is cleared when it is unmounted.
//! - **Locking**: one exclusive `flock` on `<root>/.lock` around every change (including populate and driver
//!   mounts). [`get`](Registry::get) takes no lock: every record is replaced atomically and volumes appear
//!   and disappear by rename, so a reader sees whole volumes.
//! - **The list cache**: reading 1,000 small files costs more than a CLI should spend on `volume ls` (and
//!   `reconcile` runs before every command), so `list`, `prune` and `reconcile` read `.list-cache.json`
//!   when its generation equals `.generation` and it was written in this boot; otherwise they read every
//!   record (under the shared lock) and rewrite the cache. Every change bumps the generation first, so a
//!   change that dies halfway still invalidates the cache. Both files are written without fsync; the boot
//!   ID guards against a power loss reverting them. The `volume.json` records stay the truth: deleting the
//!   two files is always safe. Records edited by hand are seen by `get` at once, by `list` after the next
//!   change.
//! - **Durability**: a create is fsynced (record, staging directory, registry directory) before it
//!   returns. A removal is not (as in Docker): after a power loss a removed volume may reappear, whole.
//! - **Metadata format**: JSON (`volume.json`), the same shape as [`Volume`]'s serde form.
//!
//! # Dependencies
//! - `mountkit-safefs`: atomic writes, the registry lock, mount-aware removal, mountinfo, random names.
//! - `nix`: `mount(2)`/`umount2(2)` for driver mounts (typed flags).
//! - `rustix`: what std lacks for a faithful copy: xattrs, `utimensat` on symlinks, `mknodat`, `statx`
//!   mount IDs.
//! - `serde`/`serde_json`: the metadata file; `humantime`: RFC 3339 creation times.
//! - `thiserror`: the error type; `tracing`: diagnostics around every privileged step.

#![deny(missing_docs)]

mod copy;
mod driver;
mod filter;
mod name;
mod registry;

use std::path::PathBuf;

pub use driver::validate_options;
pub use filter::Filter;
pub use name::validate_name;
pub use registry::{CreateOptions, Registry, Volume};

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
    #[error("cannot remove volume {name}: still mounted under it: {} (nothing was deleted)", display_paths(.mounts))]
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

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
