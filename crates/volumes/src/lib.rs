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
//! <root>/.generation           a symlink to a random token, replaced (under the lock) before every change
//! <root>/.list-cache.json      every record at one generation: `list` reads one file, not one per volume
//! <root>/.idle                 present while no volume is in use: `reconcile` has nothing to do
//! <root>/.active.json          the volumes that may be in use in this boot (a superset), for `reconcile`
//! <root>/<name>/volume.json    the record: identity, options, labels, users of driver mounts (JSON)
//! <root>/<name>/_data/         the data; a container gets it bind-mounted (the `mountpoint`)
//! <root>/<name>/ref.<container>  an empty file: `container` references the volume
//! <root>/<name>/populated      an empty file: the volume has received content
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
//! - **References** ([`add_ref`](Registry::add_ref), [`add_refs`](Registry::add_refs)) are the containers
//!   that use a volume. A referenced volume cannot be removed, with or without `force` (as in Docker,
//!   `force` only makes an unknown name no error). `dangling=true` means "no references". Each reference is
//!   an empty file `ref.<container>` beside the record, made by one `mknod` and dropped by one `unlink`
//!   under the lock: the record is never rewritten for a reference (see "Durability"). A container name
//!   must therefore fit in a directory entry: not empty, no `/` or NUL, at most 250 bytes
//!   ([`Error::InvalidReference`]).
//! - **Removal** refuses when anything is mounted under the volume's directory (one read of the mount
//!   table, under the lock), renames the volume out of the registry and deletes it with
//!   `mountkit_safefs::remove_tree_checked`, which does not read the table again and never crosses a
//!   mount. It deletes only mountkit's own files: the `device` of a bind volume is never touched.
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
//!   source has content (Docker's rule), and then sets `populated`; a volume found non-empty then is marked
//!   `populated` without copying. A missing or empty source is found before the lock is taken, so a mount
//!   path the image leaves empty costs a `stat` and a directory read, nothing of the registry. So a missing or empty image directory leaves the volume open to a later image (as in
//!   Docker), but once a volume has had content it is never filled again, even if emptied (Docker would
//!   fill an emptied volume again; mountkit prefers not to resurrect data the user deleted). A tmpfs
//!   volume loses its content with its mount, so its `populated` flag is cleared when it is unmounted.
//! - **Locking**: one exclusive `flock` on `<root>/.lock` around every change (including populate and driver
//!   mounts). [`get`](Registry::get) takes no lock: every record is replaced atomically and volumes appear
//!   and disappear by rename, so a reader sees whole volumes.
//! - **The list cache**: reading 1,000 small files costs more than a CLI should spend on `volume ls`, so
//!   `list` and `prune` read `.list-cache.json` when its generation token equals the one `.generation`
//!   points to and it was written in this boot; otherwise they read every record (under the shared lock)
//!   and rewrite the cache. Every change replaces the token with a new random one first, so a change that
//!   dies halfway still invalidates the cache, and a token never comes back. `.generation` is a symlink
//!   because replacing one is metadata only: replacing a small file by rename makes ext4 write the new
//!   file back at once (its `auto_da_alloc`), measured here at 360 µs against 30 µs for the symlink. Both
//!   files are written without fsync; the boot ID guards against a power loss reverting them. The
//!   `volume.json` records stay the truth: deleting the two files is always safe. After a change, `list`
//!   does not read every record again: it takes from the previous cache (of this boot) each volume whose
//!   directory has the inode and ctime it had then, provided the directory had been still for a second
//!   when that cache was built (file timestamps come from a coarse clock); everything a change does to a
//!   volume is an entry made, removed or renamed in its directory, which sets that ctime. So one `stat`
//!   per unchanged volume, and the cost of a full read only for the changed ones. `prune` and `reconcile`
//!   never reuse: they read every record. A record edited by hand in place (not replaced by a rename)
//!   does not change its directory: `get` sees it at once, `list` once the directory changes or the
//!   cache is deleted.
//! - **Reconcile, and what every command pays**: [`open`](Registry::open) + [`reconcile`](Registry::reconcile)
//!   run before every mountkit command, including the `run --rm` hot path, so the common case (no volume
//!   in use) is one `stat` of `.idle`: no lock, no directory listing, no record read. The marker is kept
//!   under the lock: before a record first says "in use" (users or a driver mount), the volume is added to
//!   the in-use index `.active.json` and *then* `.idle` is removed; after a record says "out of use", the
//!   volume leaves the index, and when the index is empty `.idle` is written. So `.idle` visible means no
//!   record is in use, and a command that dies with a mount attached (its record says so before the
//!   mount) leaves no `.idle`: the next command takes the lock and checks the volumes in the index (every
//!   record, when the index is not of this boot or is gone). A record that cannot be read keeps the index
//!   non-empty. None of these files is fsynced: what is "in use" means nothing after a reboot (no process,
//!   no mount survives one), so each record carries the boot in which it was put in use
//!   (`active_boot`), and users and mount flags of another boot read as empty wherever the record is read.
//! - **Staging** (`.tmp/`) holds only directories, each made and finished (renamed in, or deleted) by one
//!   change under the lock; whatever is there while the lock is held was left by a command that died. The
//!   commands that use staging (create, remove, prune) sweep it first, at the cost of one `stat` when it
//!   is empty (a directory link count of 2; filesystems that do not count subdirectories, like btrfs, get
//!   a listing). Opening the registry never looks at it.
//! - **Acquire for a container run** ([`acquire_all`](Registry::acquire_all)): a plain directory volume
//!   (no driver options) that the container references is not recorded as in use. Recording exists for
//!   two things: undoing a driver mount when its last user is gone (also after a crash, by `reconcile`),
//!   and refusing `remove` while a user holds the volume. A plain volume has no mount to undo, and the
//!   container's reference already refuses `remove` and `prune` for as long as the container exists
//!   (running or not, as in Docker), so nothing is locked or written: one record read. Driver volumes, and
//!   users without a reference, are recorded as [`acquire`](Registry::acquire) records them, under one
//!   lock for all the volumes. [`acquire`](Registry::acquire) itself always records (and shows the user in
//!   `active`); it is the call for users that are not containers with references.
//! - **Durability**: creating and removing a volume do not fsync. Docker's local driver does not fsync
//!   the directories it makes either (its boltdb, like podman's database, does fsync its record), but
//!   fsync costs milliseconds on the disks measured here (3 to 6 ms each) against a 2 ms budget for
//!   create + rm, and what a user needs holds without it:
//!   - *Visibility is atomic.* A volume is built whole in `.tmp/` (data directory, then record) and appears
//!     by one rename; removal is one rename out, then `remove_tree`. A crashed or killed process leaves
//!     the volume absent or whole, never half-made; its staging is swept later.
//!   - *A power loss may lose a recent create* (the last ~30 s, the kernel's writeback delay, unless an
//!     fsync on the filesystem committed it earlier: on a journaling filesystem (ext4's default, xfs) any
//!     fsync commits all earlier metadata too). Usually the
//!     volume is then simply absent. If the filesystem kept the directories but not the record's content
//!     (an empty or missing `volume.json`), the directory is not a volume: `get`, `ls`, `rm`, `prune`
//!     ignore it (`ls` warns when it reads the records), nothing deletes it (a container may have written
//!     and synced data there), and the next `create` of that name *adopts* it: the new record goes in,
//!     `_data` is kept. A record that is not empty but unreadable stays an error that names the file.
//!   - *A power loss may undo a recent removal*: the volume comes back whole, or its remains sit in
//!     `.tmp/` and are swept.
//!   - *The record is written once*, at create, and not replaced for references, for `populated`, or for
//!     a container's use of a plain volume: those are empty files beside it (`ref.<container>`,
//!     `populated`), each made or removed by one system call, without fsync, and an empty file has no
//!     data that a power loss could leave unwritten. So the common changes cannot leave an empty or torn
//!     record on any filesystem; and if a record is lost anyway (the create above), the entries stay in
//!     the directory: adopting it keeps the data, the references and `populated`.
//!   - *A power loss may lose a recent reference*, or bring back one that was dropped. A lost reference
//!     makes a volume that a container uses look unreferenced: `volume rm` or `prune` could then delete
//!     it. A reference brought back keeps a volume from removal although its container is gone. Docker
//!     derives references from its containers when the daemon starts; mountkit has no daemon, so it
//!     should do the same where references matter, from its container records (which are fsynced):
//!     [`set_refs`](Registry::set_refs) makes the references exactly those given, under the registry
//!     lock, and mountkit should call it (under its store lock) before `volume rm`, `volume prune` and a
//!     `volume ls` with a `dangling` filter. Nothing else reads references: `run` does not need them
//!     durable.
//!   - *A power loss may lose `populated`*: the volume is then non-empty (its content survived) and
//!     `populate` marks it again without copying, or it is empty and is filled again, as Docker fills an
//!     empty volume.
//!   - *In-use state* (`active`, `mounted`) means nothing after a reboot and is voided by `active_boot`;
//!     it is recorded only for driver volumes and users without a reference. Those rewrites of the record
//!     keep their fsync (`write_atomic`): an unsynced replace can leave an empty record after a power
//!     loss on xfs (ext4 and btrfs write the new file back before the rename commits), and an empty record
//!     hides the volume and, when the name is created again, adopts it without its driver options, so an
//!     NFS volume would silently become a local directory. They are rare (driver volumes), and not on the
//!     path of a plain volume's `run`.
//!   - Nothing of this can make a volume's `_data` be deleted: a directory without a whole record is not
//!     a volume and nothing removes it; a volume is removed only by `remove`/`prune` of a whole record
//!     without references or users.
//! - **Metadata format**: JSON (`volume.json`), the same shape as [`Volume`]'s serde form, with `users`
//!   empty and `populated` false (they are entries, and those fields are not read).
//!
//! # What a container run calls
//!
//! For `run --rm` with volumes, in order (each a single lock hold at most, none with an fsync for plain
//! volumes):
//!
//! 1. at create: [`exists`](Registry::exists) (one `stat`) and [`create`](Registry::create) for the
//!    missing ones, then one [`add_refs`](Registry::add_refs) for all the container's volumes;
//! 2. at start: one [`acquire_all`](Registry::acquire_all); keep the [`Acquired`]s; populate in the
//!    container's mount namespace only those that [`needs_populate`](Acquired::needs_populate) (and are not
//!    `nocopy`), with a clone of the parent's `Registry` (no `open` there);
//! 3. at stop: [`release_all`](Registry::release_all) with the `Acquired`s (no work for plain volumes);
//! 4. at removal: one [`remove_refs`](Registry::remove_refs), then [`remove`](Registry::remove) of the
//!    anonymous volumes.
//!
//! Measured with `examples/run_sequence.rs` under `strace -c` (a named and an anonymous volume, the
//! anonymous one populated from a one-file image directory): 18 fsyncs and ~355 system calls per run
//! with one call per volume and every change a synced record rewrite (before references were entries),
//! 0 fsyncs and ~173 system calls with these calls. The `run_sequence` bench (create anonymous, two
//! references, two acquires, two releases, two references dropped, remove) on this machine's ext4:
//! 9.8 ms before, 1.1-1.4 ms with these calls, floor 0.4-0.7 ms; on tmpfs 1.46 ms before, 0.5 ms now,
//! floor 0.1 ms (most of what is left is the anonymous volume's create + remove).
//!
//! # Dependencies
//! - `mountkit-safefs`: atomic writes, the registry lock, mount-aware removal, random names.
//! - `rustix`: `mount(2)`/`umount2(2)` for driver mounts (typed flags); what std lacks for a faithful
//!   copy: xattrs, `utimensat` on symlinks, `mknodat`, `statx` mount IDs.
//! - For tests only: `nix` (the privileged tests make their own mounts with it).
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
pub use registry::{Acquired, CreateOptions, Registry, Volume};

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
