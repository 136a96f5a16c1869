//! In use: who holds a volume acquired, and the driver mount made for them. The record alone says it
//! ([`InUse`], kept in `volume.json`), for this boot only: what another boot recorded reads as empty. The
//! in-use index and `.idle` (`index`) are derived from the records so that the common case of
//! [`reconcile`] costs one `stat` (see "Driver mounts", "Reconcile" and "Acquire for a container run" in
//! docs/volumes.md).

mod index;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::driver::{self, Backing, MountPlan};
use crate::layout::Layout;
use crate::lock::ChangeLock;
use crate::name::validate_name;
use crate::record::{self, Record};
use crate::{Error, Result, populate, refs};
use mountkit_safefs::boot_id;

pub(crate) use index::is_idle;

/// A volume's in-use state, as its record keeps it (the keys `active`, `mounted`, `active_boot` of
/// `volume.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InUse {
    /// The users that hold the volume acquired, sorted.
    #[serde(default)]
    pub(crate) active: Vec<String>,
    /// Whether mountkit has (or is about to have) the volume's driver mount attached at its `_data`.
    #[serde(default)]
    pub(crate) mounted: bool,
    /// The boot in which `active` and `mounted` were recorded; empty when neither is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) active_boot: String,
}

impl InUse {
    /// Whether someone uses the volume or mountkit has its driver mount attached.
    pub(crate) fn is_in_use(&self) -> bool {
        !self.active.is_empty() || self.mounted
    }

    /// Clears users and the mount flag recorded in another boot: nothing of them survived the reboot.
    /// Returns whether it did.
    pub(crate) fn void_if_from_another_boot(&mut self, volume: &str) -> bool {
        if !self.is_in_use() || self.active_boot.is_empty() {
            return false;
        }
        let boot = boot_id();
        if boot.is_empty() || boot == self.active_boot {
            return false;
        }
        debug!(volume, users = ?self.active, "users and mount recorded in another boot: void");
        *self = InUse::default();
        true
    }
}

/// One volume made usable by [`Registry::acquire_all`](crate::Registry::acquire_all): the host path to
/// bind into the container, whether it already has content, and what
/// [`Registry::release_all`](crate::Registry::release_all) has to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    /// The volume's name.
    pub name: String,
    /// The host path of its data (`<root>/<name>/_data`, with the driver mount attached if it has one).
    pub path: PathBuf,
    /// Whether it has received content already. While the volume stays acquired this cannot go back to
    /// false, so a caller may skip [`Registry::populate`](crate::Registry::populate) when it is true;
    /// when false, `populate` decides (under the lock) whether to copy.
    pub populated: bool,
    /// The user it was acquired for.
    user: String,
    /// Whether the use was recorded (driver volumes, and users without a reference): release must undo it.
    recorded: bool,
}

impl Acquired {
    /// Whether [`Registry::populate`](crate::Registry::populate) may have something to do for this volume
    /// (it has no content yet).
    pub fn needs_populate(&self) -> bool {
        !self.populated
    }
}

/// A volume's record, loaded under the lock to change its in-use state.
struct InUseRecord {
    name: String,
    data: PathBuf,
    record: Record,
    /// The volume's content went with its mount (a tmpfs unmounted, or mounted in another boot): saving
    /// drops its `populated` marker.
    content_lost: bool,
}

impl InUseRecord {
    fn load(layout: &Layout, name: &str) -> Result<InUseRecord> {
        let mut record = record::read(layout, name)?;
        let content_lost = record.in_use.void_if_from_another_boot(name)
            && driver::loses_content_when_unmounted(&record.options);
        Ok(InUseRecord {
            name: name.to_string(),
            data: layout.data_dir(name),
            record,
            content_lost,
        })
    }

    /// What the volume is backed by (its options, or its size limit's image).
    fn backing(&self) -> Result<Backing> {
        record_backing(&self.record, self.data.parent().unwrap_or(&self.data))
    }

    fn in_use(&mut self) -> &mut InUse {
        &mut self.record.in_use
    }

    /// Writes the record back (stamped with this boot when it says "in use").
    fn save(&mut self, change: &ChangeLock) -> Result<()> {
        change.invalidate_list_cache()?;
        let in_use = self.in_use();
        in_use.active_boot = if in_use.is_in_use() {
            boot_id().to_string()
        } else {
            String::new()
        };
        if self.content_lost {
            populate::forget(change.layout(), &self.name)?;
        }
        record::replace(change, &self.name, &self.record)
    }

    /// Unmounts the volume's driver mount if it is attached and clears `mounted`; the caller saves.
    fn unmount(&mut self) -> Result<()> {
        if self.record.in_use.mounted && driver::is_mount_point(&self.data)? {
            let what = match self.backing()? {
                Backing::Mount(plan) => plan.describe(),
                Backing::Directory => "no driver options".to_string(),
            };
            driver::unmount(&self.name, what, &self.data)?;
            info!(volume = %self.name, "volume unmounted");
        }
        self.in_use().mounted = false;
        // A tmpfs keeps nothing once unmounted: the next mount is empty, and may be populated again.
        self.content_lost |= driver::loses_content_when_unmounted(&self.record.options);
        Ok(())
    }
}

fn record_backing(record: &Record, volume_dir: &std::path::Path) -> Result<Backing> {
    driver::backing(&record.options, record.size_limit.as_ref(), volume_dir)
}

fn insert_sorted(list: &mut Vec<String>, item: &str) -> bool {
    match list.binary_search_by(|x| x.as_str().cmp(item)) {
        Ok(_) => false,
        Err(i) => {
            list.insert(i, item.to_string());
            true
        }
    }
}

fn remove_item(list: &mut Vec<String>, item: &str) -> bool {
    let before = list.len();
    list.retain(|x| x != item);
    list.len() != before
}

/// Acquires the volume `name` for `user`, recording the use; returns its data path.
pub(crate) fn acquire(layout: &Layout, name: &str, user: &str) -> Result<PathBuf> {
    validate_name(name)?;
    let change = ChangeLock::take(layout)?;
    acquire_locked(&change, name, user)?;
    Ok(layout.data_dir(name))
}

/// The volumes a container is about to acquire, each record read once (see
/// [`Registry::plan_acquire`](crate::Registry::plan_acquire)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquirePlan {
    /// `(name, plain)`: `plain` for a volume that is a directory in the store (no mount to make).
    volumes: Vec<(String, bool)>,
}

impl AcquirePlan {
    /// Whether acquiring may make a mount (a driver volume such as NFS, or a loop-backed size limit)
    /// that can block for as long as the mount's own timeouts: a caller holding a lock that others
    /// wait for should let it go around [`Registry::acquire_planned`](crate::Registry::acquire_planned).
    /// False when every volume is a plain directory.
    pub fn may_mount(&self) -> bool {
        self.volumes.iter().any(|(_, plain)| !plain)
    }
}

/// Reads the record of each of `names` (validated) and notes which are plain directories.
pub(crate) fn plan_acquire(layout: &Layout, names: &[&str]) -> Result<AcquirePlan> {
    let volumes = names
        .iter()
        .map(|name| {
            validate_name(name)?;
            let record = record::read(layout, name)?;
            let plain = matches!(
                record_backing(&record, &layout.volume_dir(name))?,
                Backing::Directory
            );
            Ok((name.to_string(), plain))
        })
        .collect::<Result<_>>()?;
    Ok(AcquirePlan { volumes })
}

/// Acquires each volume of `plan` for `user`, all or none (see
/// [`Registry::acquire_all`](crate::Registry::acquire_all)).
pub(crate) fn acquire_planned(layout: &Layout, plan: &AcquirePlan, user: &str) -> Result<Vec<Acquired>> {
    let mut change: Option<ChangeLock> = None;
    let mut out: Vec<Acquired> = Vec::with_capacity(plan.volumes.len());
    for (name, plain) in &plan.volumes {
        match acquire_for_run(layout, &mut change, name, *plain, user) {
            Ok(acquired) => out.push(acquired),
            Err(e) => {
                // Only recorded uses need undoing, and recording took the lock.
                if let Some(change) = &change {
                    for a in out.iter().filter(|a| a.recorded) {
                        if let Err(e) = release_locked(change, &a.name, &a.user) {
                            warn!("cannot release a volume after a failed acquire: {e}");
                        }
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// One volume of [`acquire_planned`]: a plain directory volume that `user` references is not recorded
/// (two `stat`s); any other is, under `change` (taken on first need).
fn acquire_for_run<'a>(
    layout: &'a Layout,
    change: &mut Option<ChangeLock<'a>>,
    name: &str,
    plain: bool,
    user: &str,
) -> Result<Acquired> {
    let recorded = !(plain && refs::is_referenced_by(layout, name, user));
    if recorded {
        let change = match change {
            Some(c) => c,
            none => none.insert(ChangeLock::take(layout)?),
        };
        acquire_locked(change, name, user)?;
    }
    Ok(Acquired {
        name: name.to_string(),
        path: layout.data_dir(name),
        populated: populate::is_marked(layout, name),
        user: user.to_string(),
        recorded,
    })
}

/// Acquires the volume for `user` with the lock held: records the user, and makes the driver mount if it
/// is not attached yet.
fn acquire_locked(change: &ChangeLock, name: &str, user: &str) -> Result<()> {
    let mut vol = InUseRecord::load(change.layout(), name)?;
    let was_in_use = vol.in_use().is_in_use();
    if !was_in_use {
        index::enter(change, name)?;
    }
    if let Backing::Mount(plan) = vol.backing()? {
        let attached = driver::is_mount_point(&vol.data)?;
        if attached && !vol.in_use().mounted {
            if !was_in_use {
                index::leave(change, name)?;
            }
            return Err(Error::ForeignMount {
                name: name.to_string(),
                path: vol.data,
            });
        }
        if !attached {
            return mount_for(change, vol, &plan, user);
        }
    }
    if insert_sorted(&mut vol.in_use().active, user) {
        vol.save(change)?;
    }
    Ok(())
}

/// Makes the driver mount for `user`, its first user. The intent (and the user) is recorded first, so a
/// crash after the mount leaves a record that reconcile can act on.
fn mount_for(change: &ChangeLock, mut vol: InUseRecord, plan: &MountPlan, user: &str) -> Result<()> {
    let before = vol.in_use().clone();
    vol.in_use().mounted = true;
    insert_sorted(&mut vol.in_use().active, user);
    vol.save(change)?;
    if let Err(e) = driver::mount(&vol.name, plan, &vol.data) {
        *vol.in_use() = InUse {
            mounted: false,
            ..before
        };
        vol.save(change)?;
        if !vol.in_use().is_in_use() {
            index::leave(change, &vol.name)?;
        }
        return Err(e);
    }
    info!(volume = %vol.name, what = %plan.describe(), "volume mounted");
    Ok(())
}

/// Ends `user`'s use of the volume `name`.
pub(crate) fn release(layout: &Layout, name: &str, user: &str) -> Result<()> {
    validate_name(name)?;
    let change = ChangeLock::take(layout)?;
    release_locked(&change, name, user)
}

/// Releases what [`acquire_all`] acquired (see [`Registry::release_all`](crate::Registry::release_all)).
pub(crate) fn release_all(layout: &Layout, acquired: &[Acquired]) -> Result<()> {
    if !acquired.iter().any(|a| a.recorded) {
        return Ok(());
    }
    let change = ChangeLock::take(layout)?;
    let mut first_error = None;
    for a in acquired.iter().filter(|a| a.recorded) {
        if let Err(e) = release_locked(&change, &a.name, &a.user) {
            warn!("cannot release a volume: {e}");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn release_locked(change: &ChangeLock, name: &str, user: &str) -> Result<()> {
    let mut vol = InUseRecord::load(change.layout(), name)?;
    let changed = remove_item(&mut vol.in_use().active, user);
    if vol.in_use().active.is_empty() && vol.in_use().mounted {
        vol.unmount()?;
    } else if !changed {
        return Ok(());
    }
    vol.save(change)?;
    if !vol.in_use().is_in_use() {
        index::leave(change, name)?;
    }
    Ok(())
}

/// Forgets users for whom `is_alive` is false and undoes driver mounts left with no live user (see
/// [`Registry::reconcile`](crate::Registry::reconcile)).
pub(crate) fn reconcile(layout: &Layout, is_alive: &dyn Fn(&str) -> bool) -> Result<()> {
    if is_idle(layout) {
        return Ok(());
    }
    // Never wait: the holder may be in a driver mount that blocks (an NFS server that does not
    // answer, until the mount's own timeout), and every command reconciles first. Whoever holds the
    // lock is changing the registry now; the next command reconciles.
    let Some(change) = ChangeLock::try_take(layout)? else {
        debug!("volume registry busy: reconcile left to the next command");
        return Ok(());
    };
    if is_idle(layout) {
        return Ok(()); // another command reconciled just before
    }
    let (names, from_index) = match index::read(layout) {
        Some(names) => (names, true),
        None => (index::scan(layout)?, false),
    };
    let mut in_use = Vec::new();
    let mut first_error = None;
    for name in &names {
        let mut vol = match InUseRecord::load(layout, name) {
            Ok(v) => v,
            Err(Error::NotFound { .. }) => continue,
            Err(e) => {
                // Cannot tell whether it is in use: keep it in the index, and keep reconciling.
                warn!("cannot reconcile a volume: {e}");
                in_use.push(name.clone());
                continue;
            }
        };
        if let Some(e) = forget_the_dead(&change, &mut vol, is_alive)? {
            first_error.get_or_insert(e);
        }
        if vol.in_use().is_in_use() {
            in_use.push(name.clone());
        }
    }
    index::reconciled(layout, &names, from_index, in_use)?;
    first_error.map_or(Ok(()), Err)
}

/// Forgets the dead users of one volume and undoes its driver mount if no live user is left, saving the
/// record if that changed it. An unmount that fails is returned as `Ok(Some(error))`, so that the other
/// volumes are still reconciled.
fn forget_the_dead(
    change: &ChangeLock,
    vol: &mut InUseRecord,
    is_alive: &dyn Fn(&str) -> bool,
) -> Result<Option<Error>> {
    let name = vol.name.clone();
    let active = &mut vol.in_use().active;
    let before = active.len();
    active.retain(|u| {
        let alive = is_alive(u);
        if !alive {
            debug!(volume = %name, user = %u, "forgetting dead volume user");
        }
        alive
    });
    let mut changed = active.len() != before;
    let mut unmount_error = None;
    if vol.in_use().active.is_empty() && vol.in_use().mounted {
        match vol.unmount() {
            Ok(()) => changed = true,
            Err(e) => {
                warn!("cannot reconcile a volume: {e}");
                unmount_error = Some(e);
            }
        }
    }
    if changed {
        vol.save(change)?;
    }
    Ok(unmount_error)
}
