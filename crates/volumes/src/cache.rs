//! The list cache: every volume's view at one generation of the registry, in `<root>/.list-cache.json`,
//! so that `list` reads one file rather than one record per volume (see "The list cache" in
//! docs/volumes.md). It is derived from the records and entries only: deleting it, or the generation
//! token, is always safe.
//!
//! The generation token is the target of the symlink `<root>/.generation`, replaced with a new random
//! one before the first write of every change ([`invalidate`]); a cache is current when it was written
//! at the token `.generation` points to, in this boot.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

use mountkit_safefs::Lock;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::files::{read_json, write_json_nosync};
use crate::layout::{DATA, Layout};
use crate::lock::LOCK;
use crate::record::RECORD;
use crate::volume::{self, Volume};
use crate::{Error, Result};
use mountkit_safefs::boot_id;

const GENERATION: &str = ".generation";
const CACHE: &str = ".list-cache.json";

/// A cached volume is reused only if its directory had not changed for this long when the cache was
/// built: a later change then gets a ctime past the stamp even though file timestamps are taken from a
/// coarse clock (one tick, a few ms), unless the clock is stepped back by more than this in between.
const STAMP_MARGIN_NS: i64 = 1_000_000_000;

/// The content of `.list-cache.json`.
#[derive(Serialize, Deserialize)]
struct Cache {
    boot_id: String,
    generation: String,
    volumes: Vec<Volume>,
    /// When the cache was built (ns since the epoch), and the stamp of each volume's directory then: a
    /// later rebuild for a listing reuses the entry of a volume whose directory has not changed.
    #[serde(default)]
    built_ns: i64,
    #[serde(default)]
    stamps: BTreeMap<String, Stamp>,
}

/// What changes whenever anything in a volume's directory changes: every entry made, removed or renamed
/// there (a reference, `populated`, a new record) sets the directory's ctime, and a new directory of the
/// same name has another inode.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    ino: u64,
    ctime_ns: i64,
}

/// A directory's stamp; `None` when it cannot be read.
fn dir_stamp(path: &Path) -> Option<Stamp> {
    let m = fs::symlink_metadata(path).ok()?;
    Some(Stamp {
        ino: m.ino(),
        ctime_ns: m
            .ctime()
            .saturating_mul(1_000_000_000)
            .saturating_add(m.ctime_nsec()),
    })
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// What a read of every volume is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Showing (`list`): a volume whose directory is unchanged since the previous cache is taken from it
    /// (one `stat`), and a record that cannot be read is an error.
    Show,
    /// Deciding (`prune`, `reconcile`): every record is read; one that cannot be read is skipped with a
    /// warning and named in the result.
    Decide,
}

/// The generation token, the target of `.generation`; `None` when there is none (no cache is trusted).
fn generation(layout: &Layout) -> Option<String> {
    let target = fs::read_link(layout.file(GENERATION)).ok()?;
    target
        .into_os_string()
        .into_string()
        .ok()
        .filter(|t| !t.is_empty())
}

/// Replaces the generation token by a new random one: the cache is stale from now on, whatever happens
/// next, and the token never comes back. The caller holds the registry lock. A symlink, because
/// replacing one is metadata only: on ext4 replacing a small file by rename costs ten times more, as
/// the kernel writes the new file's data back at once.
pub(crate) fn invalidate(layout: &Layout) -> Result<()> {
    let path = layout.file(GENERATION);
    let token = mountkit_safefs::random_hex(8);
    let tmp = layout.file(&format!("{GENERATION}.{token}.tmp"));
    std::os::unix::fs::symlink(&token, &tmp).map_err(|e| Error::io("create", &tmp, e))?;
    if let Err(e) = fs::rename(&tmp, &path) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("replace", &path, e));
    }
    Ok(())
}

/// The cache, when it was written in this boot (at any generation).
fn read_of_this_boot(layout: &Layout) -> Option<Cache> {
    let boot = boot_id();
    if boot.is_empty() {
        return None;
    }
    let cache: Cache = read_json(&layout.file(CACHE))?;
    (cache.boot_id == boot).then_some(cache)
}

/// Whether `cache` was written at the current `generation`.
fn is_current(cache: &Cache, generation: &Option<String>) -> bool {
    generation.as_ref() == Some(&cache.generation)
}

/// `vols` with their mountpoints in this registry (the cache may have been written through another path
/// to it).
fn with_mountpoints(layout: &Layout, mut vols: Vec<Volume>) -> Vec<Volume> {
    for v in &mut vols {
        v.mountpoint = layout.data_dir(&v.name);
    }
    vols
}

/// Every volume, for `list`: from the cache when it is current (no lock), else from the records under the
/// shared lock (and the cache is rebuilt). While a change holds the lock (it may be in a driver mount
/// that blocks: an NFS server away), the records are read without it (each is replaced whole, as `get`
/// reads them) and the cache is left to the next listing: `volume ls` never waits for a mount.
pub(crate) fn list(layout: &Layout) -> Result<Vec<Volume>> {
    let generation = generation(layout);
    if generation.is_some()
        && let Some(cache) = read_of_this_boot(layout)
        && is_current(&cache, &generation)
    {
        return Ok(with_mountpoints(layout, cache.volumes));
    }
    match Lock::try_shared(&layout.file(LOCK))? {
        Some(_shared) => Ok(read_all(layout, Purpose::Show)?.0),
        None => Ok(read_volumes(layout, BTreeMap::new(), Purpose::Show)?.0),
    }
}

/// Every volume, for a decision (`prune`, `reconcile`), and the names of the records that could not be
/// read. The caller holds the registry lock.
pub(crate) fn read_for_decision(layout: &Layout) -> Result<(Vec<Volume>, Vec<String>)> {
    read_all(layout, Purpose::Decide)
}

/// Every volume, from the cache when it is current, else from the records (then the cache is rebuilt,
/// unless a record could not be read), and the names of the records that could not be read. The
/// caller holds the registry lock (shared or exclusive).
fn read_all(layout: &Layout, purpose: Purpose) -> Result<(Vec<Volume>, Vec<String>)> {
    let generation = generation(layout);
    let old = match read_of_this_boot(layout) {
        Some(cache) if is_current(&cache, &generation) => {
            return Ok((with_mountpoints(layout, cache.volumes), Vec::new()));
        }
        old => old,
    };
    let built_ns = now_ns();
    let reusable = match (purpose, old) {
        (Purpose::Show, Some(cache)) => reusable(cache),
        _ => BTreeMap::new(),
    };
    let (volumes, stamps, broken) = read_volumes(layout, reusable, purpose)?;
    let Some(generation) = generation.filter(|_| broken.is_empty()) else {
        return Ok((volumes, broken));
    };
    let cache = Cache {
        boot_id: boot_id().to_string(),
        generation,
        volumes,
        built_ns,
        stamps,
    };
    if let Err(e) = write_json_nosync(&layout.file(CACHE), &cache) {
        debug!("cannot write the volume list cache: {e}");
    }
    Ok((cache.volumes, broken))
}

/// The volumes of an older cache that a listing may take as they are if their directory still has the
/// stamp it had then: those whose directory had been still for [`STAMP_MARGIN_NS`] when it was built.
fn reusable(cache: Cache) -> BTreeMap<String, (Stamp, Volume)> {
    let Cache {
        volumes,
        stamps,
        built_ns,
        ..
    } = cache;
    volumes
        .into_iter()
        .filter_map(|v| {
            let stamp = *stamps.get(&v.name)?;
            (stamp.ctime_ns.saturating_add(STAMP_MARGIN_NS) < built_ns).then(|| (v.name.clone(), (stamp, v)))
        })
        .collect()
}

type Volumes = (Vec<Volume>, BTreeMap<String, Stamp>, Vec<String>);

/// Reads every volume (taking from `reusable` those whose directory is unchanged): the volumes, the
/// stamps of their directories, and the names whose records could not be read (with [`Purpose::Decide`]).
fn read_volumes(
    layout: &Layout,
    mut reusable: BTreeMap<String, (Stamp, Volume)>,
    purpose: Purpose,
) -> Result<Volumes> {
    let (mut vols, mut stamps, mut broken) = (Vec::new(), BTreeMap::new(), Vec::new());
    for name in layout.names()? {
        let stamp = dir_stamp(&layout.volume_dir(&name));
        if let (Some(stamp), Some((then, v))) = (stamp, reusable.remove(&name))
            && stamp == then
        {
            vols.push(Volume {
                mountpoint: layout.data_dir(&name),
                ..v
            });
            stamps.insert(name, stamp);
            continue;
        }
        match volume::load(layout, &name) {
            Ok(v) => {
                if let Some(stamp) = stamp {
                    stamps.insert(name, stamp);
                }
                vols.push(v)
            }
            Err(Error::NotFound { .. }) => warn_if_not_a_volume(layout, &name),
            Err(e) if purpose == Purpose::Decide => {
                warn!("skipping a volume: {e}");
                broken.push(name);
            }
            Err(e) => return Err(e),
        }
    }
    Ok((vols, stamps, broken))
}

/// Under the lock nothing is half-way: a directory without a whole record is a create that a power loss
/// cut short (see "Durability" in docs/volumes.md).
fn warn_if_not_a_volume(layout: &Layout, name: &str) {
    let dir = layout.volume_dir(name);
    if dir.is_dir() {
        warn!(
            volume = %name,
            "{} has no complete {RECORD} (a create cut short by a power loss?): it is not a \
             volume; creating a volume of that name adopts its {DATA}",
            dir.display()
        );
    }
}
