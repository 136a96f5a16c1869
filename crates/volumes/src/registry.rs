//! The registry: volume records on disk, their lifecycle, references, acquire/release and prune.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mountkit_safefs::Lock;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::driver::{self, Backing};
use crate::filter::{Filter, matches_all};
use crate::name::{generate, validate_name};
use crate::{Error, Result};

const META: &str = "volume.json";
const DATA: &str = "_data";
const TMP: &str = ".tmp";
const LOCK: &str = ".lock";
const GENERATION: &str = ".generation";
const CACHE: &str = ".list-cache.json";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The registry lock, held for one change; the first write under it bumps the generation.
struct Held {
    _lock: Lock,
    bumped: Cell<bool>,
}

/// The list cache: every volume at one generation of the registry, in one file.
#[derive(Serialize, Deserialize)]
struct Cache {
    boot_id: String,
    generation: u64,
    volumes: Vec<Volume>,
}

fn boot_id() -> String {
    fs::read_to_string(BOOT_ID)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

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

/// A volume as `inspect` shows it; also the shape of `volume.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// Its driver (`local`).
    pub driver: String,
    /// The host path of its data (`<root>/<name>/_data`), what a container gets bind-mounted.
    pub mountpoint: PathBuf,
    /// When it was created (RFC 3339, UTC).
    pub created: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its driver options.
    pub options: BTreeMap<String, String>,
    /// Whether it is anonymous.
    pub anonymous: bool,
    /// The containers that reference it (`add_ref`), sorted.
    pub users: Vec<String>,
    /// Whether it has received content (from `populate`, or found non-empty by it).
    #[serde(default)]
    pub populated: bool,
    /// The users that currently hold it acquired (`acquire` without `release`), sorted.
    #[serde(default)]
    pub active: Vec<String>,
    /// Whether mountkit has (or is about to have) its driver mount attached at `mountpoint`.
    #[serde(default)]
    pub mounted: bool,
}

/// The volume registry in one directory; see the crate docs for the layout and the rules.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn mkdir(path: &Path, mode: u32) -> Result<()> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(Error::io("create directory", path, e)),
    }
}

fn sync_dir(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("fsync", path, e))
}

fn is_mount_point(path: &Path) -> Result<bool> {
    Ok(mountkit_safefs::mounts_under(path)?.iter().any(|m| m == path))
}

fn dir_is_empty(path: &Path) -> Result<bool> {
    Ok(fs::read_dir(path)
        .map_err(|e| Error::io("read directory", path, e))?
        .next()
        .is_none())
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

impl Registry {
    /// Opens (creating if needed) the registry in `root`, and clears staging left by crashed commands
    /// when no other process holds the registry lock.
    pub fn open(root: impl Into<PathBuf>) -> Result<Registry> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| Error::io("create directory", &root, e))?;
        let root = fs::canonicalize(&root).map_err(|e| Error::io("resolve", &root, e))?;
        let tmp = root.join(TMP);
        mkdir(&tmp, 0o700)?;
        let reg = Registry { root };
        if let Some(_lock) = Lock::try_exclusive(&reg.root.join(LOCK))? {
            reg.sweep_tmp();
        }
        Ok(reg)
    }

    /// The registry's directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> Result<Held> {
        Ok(Held {
            _lock: Lock::exclusive(&self.root.join(LOCK))?,
            bumped: Cell::new(false),
        })
    }

    fn generation(&self) -> u64 {
        fs::read_to_string(self.root.join(GENERATION))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Called (with the lock held) before the first change on disk: invalidates the list cache, even if
    /// the process dies halfway through the change.
    fn touch(&self, held: &Held) -> Result<()> {
        if !held.bumped.get() {
            let next = self.generation().wrapping_add(1);
            mountkit_safefs::write_atomic_nosync(&self.root.join(GENERATION), next.to_string().as_bytes())?;
            held.bumped.set(true);
        }
        Ok(())
    }

    /// Every volume, from the cache when it is current, else from the records (then the cache is rebuilt).
    /// The caller holds the registry lock (shared or exclusive). With `lenient`, corrupt records are
    /// skipped with a warning (and the cache is not written); otherwise they are an error.
    fn snapshot_locked(&self, lenient: bool) -> Result<Vec<Volume>> {
        let generation = self.generation();
        let boot = boot_id();
        if let Some(vols) = self.read_cache(generation, &boot) {
            return Ok(vols);
        }
        let mut vols = Vec::new();
        let mut complete = true;
        for name in self.names()? {
            match self.load(&name) {
                Ok(v) => vols.push(v),
                Err(Error::NotFound { .. }) => {}
                Err(e) if lenient => {
                    warn!("skipping a volume: {e}");
                    complete = false;
                }
                Err(e) => return Err(e),
            }
        }
        if complete {
            let cache = Cache {
                boot_id: boot,
                generation,
                volumes: vols,
            };
            match serde_json::to_vec(&cache) {
                Ok(json) => {
                    if let Err(e) = mountkit_safefs::write_atomic_nosync(&self.root.join(CACHE), &json) {
                        debug!("cannot write the volume list cache: {e}");
                    }
                }
                Err(e) => debug!("cannot encode the volume list cache: {e}"),
            }
            vols = cache.volumes;
        }
        Ok(vols)
    }

    fn read_cache(&self, generation: u64, boot: &str) -> Option<Vec<Volume>> {
        let bytes = fs::read(self.root.join(CACHE)).ok()?;
        let cache: Cache = serde_json::from_slice(&bytes).ok()?;
        if cache.generation != generation || cache.boot_id != boot || boot.is_empty() {
            return None;
        }
        let mut vols = cache.volumes;
        for v in &mut vols {
            v.mountpoint = self.data_path(&v.name);
        }
        Some(vols)
    }

    /// Every volume, without waiting for a lock when the cache is current.
    fn snapshot(&self) -> Result<Vec<Volume>> {
        if let Some(vols) = self.read_cache(self.generation(), &boot_id()) {
            return Ok(vols);
        }
        let _shared = Lock::shared(&self.root.join(LOCK))?;
        self.snapshot_locked(false)
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The host path of a volume's data (`<root>/<name>/_data`), whether or not the volume exists.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join(DATA)
    }

    fn sweep_tmp(&self) {
        let tmp = self.root.join(TMP);
        let Ok(entries) = fs::read_dir(&tmp) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            debug!(path = %path.display(), "removing stale volume staging");
            if let Err(e) = mountkit_safefs::remove_tree(&path) {
                warn!("cannot clear stale volume staging: {e}");
            }
        }
    }

    fn load(&self, name: &str) -> Result<Volume> {
        let path = self.dir(name).join(META);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    name: name.to_string(),
                });
            }
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let mut vol: Volume =
            serde_json::from_slice(&bytes).map_err(|source| Error::Metadata { path, source })?;
        vol.name = name.to_string();
        vol.mountpoint = self.data_path(name);
        Ok(vol)
    }

    fn save_to(dir: &Path, vol: &Volume) -> Result<()> {
        let json = serde_json::to_vec_pretty(vol).map_err(|e| Error::io("encode", dir.join(META), e))?;
        mountkit_safefs::write_atomic(&dir.join(META), &json)?;
        Ok(())
    }

    fn save(&self, held: &Held, vol: &Volume) -> Result<()> {
        self.touch(held)?;
        Self::save_to(&self.dir(&vol.name), vol)
    }

    /// Creates a volume named `name` (or a generated 64-hex name) and returns it.
    ///
    /// An existing volume of that name is returned as it is when driver and options are the same;
    /// otherwise [`Error::Conflict`].
    pub fn create(&self, name: Option<&str>, opts: CreateOptions) -> Result<Volume> {
        let driver = driver::check_driver(opts.driver.as_deref())?;
        driver::parse(&opts.options)?;
        let name = match name {
            Some(n) => {
                validate_name(n)?;
                n.to_string()
            }
            None => generate(),
        };
        let held = self.lock()?;
        match self.load(&name) {
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
        let vol = Volume {
            name: name.clone(),
            driver: driver.to_string(),
            mountpoint: self.data_path(&name),
            created: now_rfc3339(),
            labels: opts.labels,
            options: opts.options,
            anonymous: opts.anonymous,
            users: Vec::new(),
            populated: false,
            active: Vec::new(),
            mounted: false,
        };
        let stage = self
            .root
            .join(TMP)
            .join(format!("create-{}", mountkit_safefs::random_hex(8)));
        mkdir(&stage, 0o755)?;
        mkdir(&stage.join(DATA), 0o755)?;
        Self::save_to(&stage, &vol)?;
        let dest = self.dir(&name);
        self.touch(&held)?;
        fs::rename(&stage, &dest).map_err(|e| Error::io("move staged volume into place at", &dest, e))?;
        sync_dir(&self.root)?;
        info!(volume = %name, "created volume");
        Ok(vol)
    }

    /// The volume called `name`.
    pub fn get(&self, name: &str) -> Result<Volume> {
        validate_name(name)?;
        self.load(name)
    }

    /// Whether a volume called `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        validate_name(name).is_ok() && self.dir(name).join(META).is_file()
    }

    fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(|e| Error::io("read directory", &self.root, e))? {
            let entry = entry.map_err(|e| Error::io("read directory", &self.root, e))?;
            if let Some(n) = entry.file_name().to_str()
                && validate_name(n).is_ok()
            {
                names.push(n.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The volumes that pass `filters` (all of them when empty), sorted by name.
    pub fn list(&self, filters: &[Filter]) -> Result<Vec<Volume>> {
        let mut all = self.snapshot()?;
        all.retain(|v| matches_all(filters, v));
        Ok(all)
    }

    /// Removes the volume `name`; `Ok(false)` when it does not exist and `force` is set.
    ///
    /// Refuses while containers reference it (even with `force`), while users hold it acquired, or while
    /// anything is mounted under its directory; nothing is deleted then.
    pub fn remove(&self, name: &str, force: bool) -> Result<bool> {
        validate_name(name)?;
        let held = self.lock()?;
        let vol = match self.load(name) {
            Ok(v) => v,
            Err(Error::NotFound { .. }) if force => return Ok(false),
            Err(e) => return Err(e),
        };
        self.remove_locked(&held, &vol)?;
        Ok(true)
    }

    fn remove_locked(&self, held: &Held, vol: &Volume) -> Result<()> {
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
        let dir = self.dir(&vol.name);
        let mounts = mountkit_safefs::mounts_under(&dir)?;
        if !mounts.is_empty() {
            return Err(Error::MountedUnder {
                name: vol.name.clone(),
                mounts,
            });
        }
        let grave = self
            .root
            .join(TMP)
            .join(format!("rm-{}", mountkit_safefs::random_hex(8)));
        debug!(volume = %vol.name, "moving volume out of the registry for removal");
        self.touch(held)?;
        fs::rename(&dir, &grave).map_err(|e| Error::io("move out for removal", &dir, e))?;
        // The volume is gone from the registry now; if its files cannot all be deleted (something was
        // mounted there in between), they stay in staging, and the next sweep tries again.
        if let Err(e) = mountkit_safefs::remove_tree(&grave) {
            warn!(volume = %vol.name, "volume removed, but some of its files are left in staging: {e}");
        }
        info!(volume = %vol.name, "removed volume");
        Ok(())
    }

    /// Removes unreferenced, inactive volumes that pass `filters`: anonymous ones only, or named ones too
    /// with `all`. Returns the names removed.
    pub fn prune(&self, all: bool, filters: &[Filter]) -> Result<Vec<String>> {
        let held = self.lock()?;
        let mut removed = Vec::new();
        for vol in self.snapshot_locked(true)? {
            let name = vol.name.clone();
            if !vol.users.is_empty() || !vol.active.is_empty() || (!all && !vol.anonymous) {
                continue;
            }
            if !matches_all(filters, &vol) {
                continue;
            }
            match self.remove_locked(&held, &vol) {
                Ok(()) => removed.push(name),
                Err(e) => warn!("prune skips a volume: {e}"),
            }
        }
        Ok(removed)
    }

    /// Records that `container` references the volume (at container create). Idempotent.
    pub fn add_ref(&self, name: &str, container: &str) -> Result<()> {
        validate_name(name)?;
        let held = self.lock()?;
        let mut vol = self.load(name)?;
        if insert_sorted(&mut vol.users, container) {
            debug!(volume = name, container, "volume referenced");
            self.save(&held, &vol)?;
        }
        Ok(())
    }

    /// Drops `container`'s reference (at container rm). Idempotent; [`Error::NotFound`] if the volume is gone.
    pub fn remove_ref(&self, name: &str, container: &str) -> Result<()> {
        validate_name(name)?;
        let held = self.lock()?;
        let mut vol = self.load(name)?;
        if remove_item(&mut vol.users, container) {
            debug!(volume = name, container, "volume reference dropped");
            self.save(&held, &vol)?;
        }
        Ok(())
    }

    /// Makes the volume usable by `user` and returns the host path to bind into the container.
    ///
    /// For a volume with driver options, the first user makes the mount at `_data` in the caller's mount
    /// namespace; later users share it. Idempotent per user.
    pub fn acquire(&self, name: &str, user: &str) -> Result<PathBuf> {
        validate_name(name)?;
        let held = self.lock()?;
        let mut vol = self.load(name)?;
        let data = vol.mountpoint.clone();
        if let Backing::Mount(plan) = driver::parse(&vol.options)? {
            let attached = is_mount_point(&data)?;
            if attached && !vol.mounted {
                return Err(Error::ForeignMount {
                    name: name.to_string(),
                    path: data,
                });
            }
            if !attached {
                // Record the intent first: a crash after the mount leaves a record reconcile can act on.
                vol.mounted = true;
                self.save(&held, &vol)?;
                if let Err(e) = driver::mount(name, &plan, &data) {
                    vol.mounted = false;
                    self.save(&held, &vol)?;
                    return Err(e);
                }
                info!(volume = name, what = %plan.describe(), "volume mounted");
            }
        }
        insert_sorted(&mut vol.active, user);
        self.save(&held, &vol)?;
        Ok(data)
    }

    /// Ends `user`'s use of the volume; the last user out unmounts a driver mount. Idempotent per user.
    pub fn release(&self, name: &str, user: &str) -> Result<()> {
        validate_name(name)?;
        let held = self.lock()?;
        let mut vol = self.load(name)?;
        let changed = remove_item(&mut vol.active, user);
        if vol.active.is_empty() && vol.mounted {
            self.unmount_ours(&mut vol)?;
        } else if !changed {
            return Ok(());
        }
        self.save(&held, &vol)
    }

    /// Unmounts the volume's driver mount if it is attached; clears `mounted`. The caller saves.
    fn unmount_ours(&self, vol: &mut Volume) -> Result<()> {
        let data = vol.mountpoint.clone();
        if vol.mounted && is_mount_point(&data)? {
            let what = match driver::parse(&vol.options)? {
                Backing::Mount(plan) => plan.describe(),
                Backing::Directory => "no driver options".to_string(),
            };
            driver::unmount(&vol.name, what, &data)?;
            info!(volume = %vol.name, "volume unmounted");
        }
        vol.mounted = false;
        // A tmpfs keeps nothing once unmounted: the next mount is empty, and may be populated again.
        if vol.options.get("type").map(String::as_str) == Some("tmpfs") {
            vol.populated = false;
        }
        Ok(())
    }

    /// Forgets active users for whom `is_alive` is false, and unmounts driver mounts left with no live user
    /// (after a crash). Also clears stale staging. Call it at the start of every command.
    pub fn reconcile(&self, is_alive: &dyn Fn(&str) -> bool) -> Result<()> {
        let held = self.lock()?;
        self.sweep_tmp();
        for mut vol in self.snapshot_locked(true)? {
            if vol.active.is_empty() && !vol.mounted {
                continue;
            }
            let name = vol.name.clone();
            let before = vol.active.len();
            vol.active.retain(|u| {
                let alive = is_alive(u);
                if !alive {
                    debug!(volume = %name, user = %u, "forgetting dead volume user");
                }
                alive
            });
            let mut changed = vol.active.len() != before;
            if vol.active.is_empty() && vol.mounted {
                self.unmount_ours(&mut vol)?;
                changed = true;
            }
            if changed {
                self.save(&held, &vol)?;
            }
        }
        Ok(())
    }

    /// Copies `source` (the image's content at the mount path) into the volume, once; returns whether it
    /// copied. See the crate docs for when it copies.
    ///
    /// A volume with driver options must be acquired first (its mount attached), so the content lands in
    /// the mount and not in the directory under it. `source` should be resolved by the caller inside the
    /// image's root (for example with `mountkit_safefs::inroot`; a `/proc/self/fd/N` path is fine): it is
    /// followed if it is a link, but nothing under it is.
    pub fn populate(&self, name: &str, source: &Path) -> Result<bool> {
        validate_name(name)?;
        let held = self.lock()?;
        let mut vol = self.load(name)?;
        if vol.populated {
            return Ok(false);
        }
        let data = vol.mountpoint.clone();
        if let Backing::Mount(plan) = driver::parse(&vol.options)?
            && !(vol.mounted && is_mount_point(&data)?)
        {
            return Err(Error::NotAcquired {
                name: name.to_string(),
                kind: plan.fstype,
            });
        }
        if !dir_is_empty(&data)? {
            vol.populated = true;
            self.save(&held, &vol)?;
            return Ok(false);
        }
        // The source itself may be reached through a link (a `/proc/self/fd/N` path of a directory the
        // caller resolved inside the image root); nothing below it is followed.
        let meta = match fs::metadata(source) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("inspect", source, e)),
        };
        if !meta.is_dir() {
            return Err(Error::SourceNotDirectory {
                name: name.to_string(),
                path: source.to_path_buf(),
            });
        }
        if dir_is_empty(source)? {
            return Ok(false);
        }
        debug!(volume = name, source = %source.display(), "populating volume from image content");
        crate::copy::copy_tree(source, &data)?;
        vol.populated = true;
        self.save(&held, &vol)?;
        info!(volume = name, "volume populated");
        Ok(true)
    }
}
