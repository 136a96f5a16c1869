//! A volume's life in the registry's directory: created whole in staging (`<root>/.tmp/`) and renamed in,
//! adopted when a power loss left its directory without a whole record, renamed out and deleted (see
//! "Removal", "Prune", "Staging" and "Durability" in docs/volumes.md).

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tracing::{debug, info, warn};

use crate::driver;
use crate::files::mkdir;
use crate::filter::{Filter, matches_all};
use crate::inuse::InUse;
use crate::layout::{DATA, Layout};
use crate::lock::ChangeLock;
use crate::name::{generate, validate_name};
use crate::record::{self, RECORD, Record};
use crate::volume::{self, Volume};
use crate::{Error, Result, cache, limit};
use mountkit_safefs::{TimePrecision, now_rfc3339};

/// The staging directory.
const TMP: &str = ".tmp";

/// What to create: the driver (only `local`), labels, driver options, and whether the volume is anonymous.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The driver; `None` means `local`.
    pub driver: Option<String>,
    /// Labels (`--label k=v`).
    pub labels: BTreeMap<String, String>,
    /// Driver options (`--opt type=tmpfs`, `o=...`, `device=...`).
    pub options: BTreeMap<String, String>,
    /// An anonymous volume (an image's `VOLUME`, `-v /path`): random name, removed by plain `prune`.
    pub anonymous: bool,
}

fn describe(driver: &str, options: &BTreeMap<String, String>) -> String {
    if options.is_empty() {
        return format!("driver {driver:?} and no options");
    }
    let opts = options
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    format!("driver {driver:?} and options {opts:?}")
}

/// Creates a volume (see [`Registry::create`](crate::Registry::create)).
pub(crate) fn create(layout: &Layout, name: Option<&str>, opts: CreateOptions) -> Result<Volume> {
    let driver = driver::check_driver(opts.driver.as_deref())?;
    driver::parse(&opts.options)?;
    let size = limit::size_option(opts.options.get(limit::SIZE))?;
    let name = match name {
        Some(n) => {
            validate_name(n)?;
            n.to_string()
        }
        None => generate(),
    };
    let change = ChangeLock::take(layout)?;
    match volume::load(layout, &name) {
        Ok(existing) => {
            if existing.driver != driver || existing.options != opts.options {
                return Err(Error::Conflict {
                    name,
                    existing: describe(&existing.driver, &existing.options),
                    requested: describe(driver, &opts.options),
                });
            }
            debug!(volume = %name, "volume exists with the same driver and options; reusing it");
            return Ok(existing);
        }
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    // Built whole in staging, made visible by one rename; no fsync (see "Durability").
    let stage = staging(layout)?.join(format!("create-{}", mountkit_safefs::random_hex(8)));
    mkdir(&stage, 0o755)?;
    mkdir(&stage.join(DATA), 0o755)?;
    let size_limit = match size {
        Some(bytes) => match limit::prepare(&change, &name, &stage, bytes) {
            Ok(l) => Some(l),
            Err(e) => {
                discard(&stage);
                return Err(e);
            }
        },
        None => None,
    };
    let record = Record {
        driver: driver.to_string(),
        created: now_rfc3339(TimePrecision::Seconds),
        labels: opts.labels,
        options: opts.options,
        anonymous: opts.anonymous,
        in_use: InUse::default(),
        size_limit,
    };
    let dest = layout.volume_dir(&name);
    let placed = record::write_staged(&stage.join(RECORD), &record).and_then(|()| {
        change.invalidate_list_cache()?;
        Ok(fs::rename(&stage, &dest))
    });
    let renamed = match placed {
        Ok(r) => r,
        Err(e) => {
            give_back(layout, &name, &stage, &record);
            return Err(e);
        }
    };
    match renamed {
        Ok(()) => {}
        // A non-empty directory without a whole record (`load` said NotFound): adopt it.
        Err(e) if matches!(e.kind(), ErrorKind::DirectoryNotEmpty | ErrorKind::AlreadyExists) => {
            if record.size_limit.is_some() {
                // The kept `_data` has no project ID and there is no image beside it: not adopted.
                give_back(layout, &name, &stage, &record);
                return Err(Error::io(
                    "create a size-limited volume at",
                    &dest,
                    std::io::Error::other(
                        "a directory of that name without a whole record is in the way (a create cut short by a power loss?); remove it first",
                    ),
                ));
            }
            adopt(&stage, &dest, &name)?;
            info!(volume = %name, "created volume (adopted)");
            // What survived beside the lost record (references, `populated`) is the volume's.
            return volume::load(layout, &name);
        }
        Err(e) => {
            give_back(layout, &name, &stage, &record);
            return Err(Error::io("move staged volume into place at", &dest, e));
        }
    }
    info!(volume = %name, "created volume");
    Ok(Volume {
        name: name.clone(),
        driver: record.driver,
        mountpoint: layout.data_dir(&name),
        created: record.created,
        labels: record.labels,
        options: record.options,
        anonymous: record.anonymous,
        users: Vec::new(),
        populated: false,
        active: Vec::new(),
        mounted: false,
        active_boot: String::new(),
        size_limit: record.size_limit,
    })
}

/// Undoes a create that failed after its size limit was set up: the limit's project ID freed, the stage
/// deleted (or left to the next sweep).
fn give_back(layout: &Layout, name: &str, stage: &Path, record: &Record) {
    if let Some(l) = &record.size_limit {
        limit::undo(layout, name, stage, l);
    }
    discard(stage);
}

/// Deletes a stage of this change now rather than at the next sweep.
fn discard(stage: &Path) {
    if let Err(e) = mountkit_safefs::remove_tree(stage) {
        warn!("cannot clear volume staging (the next sweep will): {e}");
    }
}

/// Puts the staged record into `dest`, a directory of the volume's name that has no whole record (a
/// create cut short by a power loss), keeping its `_data`: it may hold what a container wrote.
fn adopt(stage: &Path, dest: &Path, name: &str) -> Result<()> {
    warn!(
        volume = name,
        "{} has no complete {RECORD} (a create cut short by a power loss?): adopting it, {DATA} kept",
        dest.display()
    );
    mkdir(&dest.join(DATA), 0o755)?;
    fs::rename(stage.join(RECORD), dest.join(RECORD))
        .map_err(|e| Error::io("move staged record into place at", dest.join(RECORD), e))?;
    // The stage is an empty `_data` now; if it cannot go, the next sweep takes it.
    let _ = fs::remove_dir(stage.join(DATA));
    let _ = fs::remove_dir(stage);
    Ok(())
}

/// Removes the volume `name` (see [`Registry::remove`](crate::Registry::remove)).
pub(crate) fn remove(layout: &Layout, name: &str, force: bool) -> Result<bool> {
    validate_name(name)?;
    let change = ChangeLock::take(layout)?;
    let vol = match volume::load(layout, name) {
        Ok(v) => v,
        Err(Error::NotFound { .. }) if force => return Ok(false),
        Err(e) => return Err(e),
    };
    remove_locked(&change, &vol)?;
    Ok(true)
}

fn remove_locked(change: &ChangeLock, vol: &Volume) -> Result<()> {
    if !vol.users.is_empty() {
        return Err(Error::InUse {
            name: vol.name.clone(),
            containers: vol.users.clone(),
        });
    }
    if !vol.active.is_empty() {
        return Err(Error::Active {
            name: vol.name.clone(),
            users: vol.active.clone(),
        });
    }
    let layout = change.layout();
    let dir = layout.volume_dir(&vol.name);
    let mounts = driver::mounts_below(&dir)?;
    if !mounts.is_empty() {
        return Err(Error::MountedUnder {
            name: vol.name.clone(),
            mounts,
        });
    }
    let grave = staging(layout)?.join(format!("rm-{}", mountkit_safefs::random_hex(8)));
    debug!(volume = %vol.name, "moving volume out of the registry for removal");
    change.invalidate_list_cache()?;
    fs::rename(&dir, &grave).map_err(|e| Error::io("move out for removal", &dir, e))?;
    // The volume is gone from the registry now; if its files cannot all be deleted (something was
    // mounted there in between), they stay in staging, and the next sweep tries again.
    // Its mounts were checked above, under the lock, before the rename.
    if let Err(e) = mountkit_safefs::remove_tree_checked(&grave) {
        warn!(volume = %vol.name, "volume removed, but some of its files are left in staging: {e}");
    }
    // With its files gone, the space they took is free; a project ID is given back.
    if let Some(l) = &vol.size_limit {
        limit::release(layout, &vol.name, &staging(layout)?, l);
    }
    info!(volume = %vol.name, "removed volume");
    Ok(())
}

/// Removes unreferenced, inactive volumes (see [`Registry::prune`](crate::Registry::prune)).
pub(crate) fn prune(layout: &Layout, all: bool, filters: &[Filter]) -> Result<Vec<String>> {
    let change = ChangeLock::take(layout)?;
    let mut removed = Vec::new();
    for vol in cache::read_for_decision(layout)?.0 {
        if !vol.users.is_empty() || !vol.active.is_empty() || (!all && !vol.anonymous) {
            continue;
        }
        if !matches_all(filters, &vol) {
            continue;
        }
        match remove_locked(&change, &vol) {
            Ok(()) => removed.push(vol.name),
            Err(e) => warn!("prune skips a volume: {e}"),
        }
    }
    Ok(removed)
}

/// The staging directory, made if missing, with what crashed commands left in it removed. The caller
/// holds the registry lock, so every entry is stale: each change finishes with its staging inside the
/// lock. Entries are always directories, so a directory link count of 2 (what ext4, xfs and tmpfs report
/// for a directory without subdirectories) means nothing to sweep; other counts (btrfs always says 1)
/// mean "look".
pub(crate) fn staging(layout: &Layout) -> Result<PathBuf> {
    let tmp = layout.file(TMP);
    match fs::symlink_metadata(&tmp) {
        Ok(m) if m.is_dir() => {
            if m.nlink() != 2 {
                sweep(&tmp);
            }
        }
        Ok(_) => {
            return Err(Error::io(
                "use as staging",
                &tmp,
                std::io::Error::other("not a directory"),
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => mkdir(&tmp, 0o700)?,
        Err(e) => return Err(Error::io("inspect", &tmp, e)),
    }
    Ok(tmp)
}

fn sweep(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if owned_by_live_process(&entry.file_name()) {
            continue;
        }
        debug!(path = %path.display(), "removing stale volume staging");
        if let Err(e) = mountkit_safefs::remove_tree(&path) {
            warn!("cannot clear stale volume staging: {e}");
        }
    }
}

/// Makes a staging directory `<root>/.tmp/<kind>-<pid>-<random>` for a change that fills it outside
/// the lock (an import, a clone): the sweep leaves it alone while this process lives. The caller holds
/// the lock.
pub(crate) fn long_stage(layout: &Layout, kind: &str) -> Result<PathBuf> {
    let dir = staging(layout)?.join(format!(
        "{kind}-{}-{}",
        std::process::id(),
        mountkit_safefs::random_hex(8)
    ));
    mkdir(&dir, 0o700)?;
    Ok(dir)
}

/// Whether a staging entry is a [`long_stage`] of a process that is still running.
fn owned_by_live_process(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else { return false };
    let mut parts = name.split('-');
    let (Some(_kind), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    pid.parse::<u32>()
        .is_ok_and(|pid| Path::new("/proc").join(pid.to_string()).exists())
}
