//! [`Registry`], the public face of the crate: every call checks its arguments and hands the work to the
//! module that keeps the fact it changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::archive::{self, StagedImport};
use crate::filter::{Filter, matches_all};
use crate::inuse::{self, AcquirePlan, Acquired};
use crate::layout::Layout;
use crate::lifecycle::{self, CreateOptions};
use crate::name::validate_name;
use crate::volume::{self, Volume};
use crate::{Error, Result, cache, populate, record, refs};

/// The volume registry in one directory; see the crate docs and docs/volumes.md for the layout and the
/// rules.
#[derive(Debug)]
pub struct Registry {
    layout: Layout,
    /// `open` saw `.idle`: the first `reconcile` has nothing to do.
    idle_at_open: AtomicBool,
}

impl Clone for Registry {
    fn clone(&self) -> Registry {
        Registry {
            layout: self.layout.clone(),
            idle_at_open: AtomicBool::new(false),
        }
    }
}

impl Registry {
    /// Opens (creating if needed) the registry in `root`.
    ///
    /// Cheap: when the registry exists and no volume is in use, this is one `stat` and [`reconcile`]
    /// right after it costs nothing more. Staging left by a crashed command is swept by the next command
    /// that creates or removes a volume.
    ///
    /// [`reconcile`]: Registry::reconcile
    pub fn open(root: impl Into<PathBuf>) -> Result<Registry> {
        let given = root.into();
        let given = std::path::absolute(&given).map_err(|e| Error::io("resolve", &given, e))?;
        let layout = Layout::new(given);
        // `.idle` only exists in an existing registry; otherwise make sure the directory is there.
        let idle = inuse::is_idle(&layout);
        if !idle {
            let dir = layout.given();
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        }
        Ok(Registry {
            layout,
            idle_at_open: AtomicBool::new(idle),
        })
    }

    /// The registry's directory (canonical).
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// The host path of a volume's data (`<root>/<name>/_data`), whether or not the volume exists.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.layout.data_dir(name)
    }

    /// Creates a volume named `name` (or a generated 64-hex name) and returns it.
    ///
    /// An existing volume of that name is returned as it is when driver and options are the same;
    /// otherwise [`Error::Conflict`].
    pub fn create(&self, name: Option<&str>, opts: CreateOptions) -> Result<Volume> {
        lifecycle::create(&self.layout, name, opts)
    }

    /// The volume called `name`.
    pub fn get(&self, name: &str) -> Result<Volume> {
        validate_name(name)?;
        volume::load(&self.layout, name)
    }

    /// Whether a volume called `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        validate_name(name).is_ok() && record::exists(&self.layout, name)
    }

    /// The volumes that pass `filters` (all of them when empty), sorted by name.
    pub fn list(&self, filters: &[Filter]) -> Result<Vec<Volume>> {
        let mut all = cache::list(&self.layout)?;
        all.retain(|v| matches_all(filters, v));
        Ok(all)
    }

    /// Removes the volume `name`; `Ok(false)` when it does not exist and `force` is set.
    ///
    /// Refuses while containers reference it (even with `force`), while users hold it acquired, or while
    /// anything is mounted under its directory; nothing is deleted then.
    pub fn remove(&self, name: &str, force: bool) -> Result<bool> {
        lifecycle::remove(&self.layout, name, force)
    }

    /// Removes unreferenced, inactive volumes that pass `filters`: anonymous ones only, or named ones too
    /// with `all`. Returns the names removed.
    pub fn prune(&self, all: bool, filters: &[Filter]) -> Result<Vec<String>> {
        lifecycle::prune(&self.layout, all, filters)
    }

    /// Records that `container` references the volume (at container create). Idempotent.
    pub fn add_ref(&self, name: &str, container: &str) -> Result<()> {
        self.add_refs(&[name], container)
    }

    /// Records that `container` references each of `names`, under one lock: one directory entry per
    /// volume, nothing rewritten, no fsync. Idempotent. When one of the volumes does not exist
    /// ([`Error::NotFound`]), no reference is added.
    pub fn add_refs(&self, names: &[&str], container: &str) -> Result<()> {
        refs::add(&self.layout, names, container)
    }

    /// Drops `container`'s reference (at container rm). Idempotent; [`Error::NotFound`] if the volume is gone.
    pub fn remove_ref(&self, name: &str, container: &str) -> Result<()> {
        self.remove_refs(&[name], container)
    }

    /// Drops `container`'s reference to each of `names`, under one lock: one `unlink` per volume. Every
    /// volume is dealt with; the first error (such as [`Error::NotFound`] for a volume that is gone) is
    /// returned after.
    pub fn remove_refs(&self, names: &[&str], container: &str) -> Result<()> {
        refs::remove(&self.layout, names, container)
    }

    /// Makes the references exactly `refs` (volume name -> the containers that reference it): missing
    /// ones are added, others dropped, for every volume (a volume not in `refs` has none). Names in `refs`
    /// that are not volumes are ignored. Returns how many references were added or dropped.
    ///
    /// References are written without fsync, so a power loss can lose a recent one, or bring back one
    /// that was dropped (see "Durability" in docs/volumes.md). A caller that keeps its own durable record
    /// of which container uses which volume (mountkit's container records) calls this before acting on
    /// references: before `remove`, `prune` and a `dangling` listing.
    pub fn set_refs(&self, refs: &BTreeMap<String, BTreeSet<String>>) -> Result<usize> {
        refs::set(&self.layout, refs)
    }

    /// Makes the volume usable by `user` and returns the host path to bind into the container.
    ///
    /// For a volume with driver options, the first user makes the mount at `_data` in the caller's mount
    /// namespace; later users share it. Idempotent per user. The use is recorded (the record is rewritten,
    /// with fsync); [`acquire_all`](Registry::acquire_all) skips that where it is not needed.
    pub fn acquire(&self, name: &str, user: &str) -> Result<PathBuf> {
        inuse::acquire(&self.layout, name, user)
    }

    /// Acquires each of `names` for `user` (a container), all or none: on an error, what was acquired is
    /// released again. Returns one [`Acquired`] per name, in order; give them to
    /// [`release_all`](Registry::release_all) when the container stops.
    ///
    /// A plain directory volume (no driver options) that `user` references ([`add_ref`](Registry::add_ref))
    /// is not recorded as in use: the reference already keeps it from `remove` and `prune`, there is no
    /// mount to undo after a crash, and nothing is written or locked (one record read). Other volumes are
    /// acquired as [`acquire`](Registry::acquire) does, under one lock for all of them.
    pub fn acquire_all(&self, names: &[&str], user: &str) -> Result<Vec<Acquired>> {
        self.acquire_planned(&self.plan_acquire(names)?, user)
    }

    /// The first half of [`acquire_all`](Registry::acquire_all): validates `names` and reads their
    /// records, nothing locked or changed. [`AcquirePlan::may_mount`] then says whether the second half,
    /// [`acquire_planned`](Registry::acquire_planned), may block in a driver mount (an NFS server that
    /// does not answer blocks until the mount's own timeouts): mountkit lets its store lock go around
    /// it then.
    pub fn plan_acquire(&self, names: &[&str]) -> Result<AcquirePlan> {
        inuse::plan_acquire(&self.layout, names)
    }

    /// The second half of [`acquire_all`](Registry::acquire_all), for the volumes of `plan`.
    pub fn acquire_planned(&self, plan: &AcquirePlan, user: &str) -> Result<Vec<Acquired>> {
        inuse::acquire_planned(&self.layout, plan, user)
    }

    /// Ends `user`'s use of the volume; the last user out unmounts a driver mount. Idempotent per user.
    pub fn release(&self, name: &str, user: &str) -> Result<()> {
        inuse::release(&self.layout, name, user)
    }

    /// Releases what [`acquire_all`](Registry::acquire_all) acquired: nothing to do (no lock taken) for the
    /// volumes it did not record; the others under one lock. Every volume is dealt with; the first error
    /// is returned after.
    pub fn release_all(&self, acquired: &[Acquired]) -> Result<()> {
        inuse::release_all(&self.layout, acquired)
    }

    /// Forgets active users for whom `is_alive` is false, and unmounts driver mounts left with no live user
    /// (after a crash). Call it at the start of every command.
    ///
    /// When `.idle` says no volume is in use (the common case), this costs one `stat` (none right after
    /// [`open`](Registry::open)) and takes no lock. Otherwise it takes the lock and looks only at the
    /// volumes in the in-use index (every record, once per boot, when the index is not of this boot). An
    /// unmount that fails is reported after the other volumes were dealt with. It never waits for the
    /// lock: while another process holds it (possibly in a driver mount that blocks), this does nothing
    /// and the next command reconciles.
    pub fn reconcile(&self, is_alive: &dyn Fn(&str) -> bool) -> Result<()> {
        if self.idle_at_open.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        inuse::reconcile(&self.layout, is_alive)
    }

    /// Copies `source` (the image's content at the mount path) into the volume, once; returns whether it
    /// copied. See "Populate" in docs/volumes.md for when it copies.
    ///
    /// A volume with driver options must be acquired first (its mount attached), so the content lands in
    /// the mount and not in the directory under it. `source` should be resolved by the caller inside the
    /// image's root (for example with `mountkit_safefs::inroot`; a `/proc/self/fd/N` path is fine): it is
    /// followed if it is a link, but nothing under it is.
    pub fn populate(&self, name: &str, source: &Path) -> Result<bool> {
        validate_name(name)?;
        populate::populate(&self.layout, name, source)
    }

    /// The directory that holds the volume's content now, for an export: `_data` of a plain volume, or
    /// of a driver volume whose mount is attached (a container uses it, or the caller acquired it after
    /// [`needs_attach`](Registry::needs_attach)). A driver volume not attached is
    /// [`Error::NotAttached`], never an empty directory. Whether a running container writes there is for
    /// the caller to know (the registry does not record a plain volume's users).
    pub fn export_dir(&self, name: &str) -> Result<PathBuf> {
        archive::export_dir(&self.layout, name)
    }

    /// Whether the volume's content can only be read once its mount is attached, and it is not now: a
    /// driver volume whose content lives on at its device (a loop-backed size limit's image, an NFS
    /// export, a bound directory; not a tmpfs, which has none) that no one has acquired. A caller that
    /// wants to export or clone it [`acquire`](Registry::acquire)s it for the time being (under a user
    /// of its own that its `reconcile` callback knows to be alive) and releases it after.
    pub fn needs_attach(&self, name: &str) -> Result<bool> {
        archive::needs_attach(&self.layout, name)
    }

    /// Starts an import into the volume `name`: a new volume (local driver, no options) when there is
    /// none of that name, else an existing volume without driver options that is empty, or any with
    /// `force` (its content is replaced). Fill [`StagedImport::data`], then
    /// [`commit`](StagedImport::commit); nothing is visible before. A driver volume is refused
    /// ([`Error::Unsupported`]: its content is a mount elsewhere), a non-empty one without `force`
    /// ([`Error::NotEmpty`]). The content is filled without the registry lock held.
    pub fn stage_import(&self, name: &str, force: bool) -> Result<StagedImport> {
        archive::stage_import(&self.layout, name, force)
    }

    /// Makes a new volume `dst` (local driver, no options, no labels) with a copy of `src`'s content:
    /// owners, modes, timestamps, xattrs, symlinks, hard links, devices, holes of sparse files; each
    /// file's data reflinked (`FICLONE`) where the filesystem can. `dst` must not exist
    /// ([`Error::Exists`]); a driver volume `src` must be attached ([`Error::NotAttached`]; see
    /// [`needs_attach`](Registry::needs_attach)). Built in
    /// staging and renamed in: a failure leaves no `dst`.
    pub fn clone_volume(&self, src: &str, dst: &str) -> Result<Volume> {
        archive::clone_volume(&self.layout, src, dst)
    }
}
