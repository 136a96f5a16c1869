//! The registry: volume records on disk, their lifecycle, references, acquire/release and prune.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
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
const IDLE: &str = ".idle";
const ACTIVE: &str = ".active.json";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// The prefix of a reference entry: `<root>/<name>/ref.<container>`.
const REF_PREFIX: &str = "ref.";
/// The entry that says a volume has received content: `<root>/<name>/populated`.
const POPULATED: &str = "populated";
/// The longest container name a reference can carry (the entry name is `ref.` + the name, at most 255).
const MAX_REF_LEN: usize = 250;

/// The registry lock, held for one change; the first write under it replaces the generation token.
struct Held {
    _lock: Lock,
    bumped: Cell<bool>,
}

/// The list cache: every volume at one generation of the registry (named by its token), in one file.
#[derive(Serialize, Deserialize)]
struct Cache {
    boot_id: String,
    generation: String,
    volumes: Vec<Volume>,
    /// When the cache was built (ns since the epoch), and the stamp of each volume's directory then: a
    /// later rebuild reuses the entry of a volume whose directory has not changed (see `snapshot_locked`).
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

/// A cached volume is reused only if its directory had not changed for this long when the cache was
/// built: a later change then gets a ctime past the stamp even though file timestamps are taken from a
/// coarse clock (one tick, a few ms), unless the clock is stepped back by more than this in between.
const STAMP_MARGIN_NS: i64 = 1_000_000_000;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The volumes that may have active users or a driver mount in this boot (`<root>/.active.json`).
#[derive(Serialize, Deserialize)]
struct ActiveIndex {
    boot_id: String,
    volumes: Vec<String>,
}

/// The kernel's ID of this boot (empty when /proc is not there), read once per process.
fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        fs::read_to_string(BOOT_ID)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
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
    /// The boot (the kernel's boot ID) in which `active` and `mounted` were recorded; empty when neither
    /// is set. No process and no mount outlives a reboot, so in another boot both read as empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub active_boot: String,
}

impl Volume {
    /// Whether the record says someone uses the volume or mountkit has its driver mount attached.
    fn in_use(&self) -> bool {
        !self.active.is_empty() || self.mounted
    }
}

/// One volume made usable by [`Registry::acquire_all`]: the host path to bind into the container, whether
/// it already has content, and what [`Registry::release_all`] has to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acquired {
    /// The volume's name.
    pub name: String,
    /// The host path of its data (`<root>/<name>/_data`, with the driver mount attached if it has one).
    pub path: PathBuf,
    /// Whether it has received content already. While the volume stays acquired this cannot go back to
    /// false, so a caller may skip [`Registry::populate`] when it is true; when false, `populate` decides
    /// (under the lock) whether to copy.
    pub populated: bool,
    /// The user it was acquired for.
    user: String,
    /// Whether the use was recorded (driver volumes, and users without a reference): release must undo it.
    recorded: bool,
}

impl Acquired {
    /// Whether [`Registry::populate`] may have something to do for this volume (it has no content yet).
    pub fn needs_populate(&self) -> bool {
        !self.populated
    }
}

/// The state kept as directory entries beside `volume.json`, each made or removed by one system call.
#[derive(Default)]
struct Entries {
    refs: Vec<String>,
    populated: bool,
}

/// The name of the entry that records `container`'s reference.
fn ref_entry(container: &str) -> String {
    format!("{REF_PREFIX}{container}")
}

/// A container name must fit in a directory entry: not empty, no `/` or NUL, at most 250 bytes.
fn validate_ref(container: &str) -> Result<()> {
    let reason = if container.is_empty() {
        "it is empty"
    } else if container.len() > MAX_REF_LEN {
        "it is longer than 250 bytes"
    } else if container.contains(['/', '\0']) {
        "it contains '/' or NUL"
    } else {
        return Ok(());
    };
    Err(Error::InvalidReference {
        container: container.to_string(),
        reason,
    })
}

/// Creates an empty file at `path` with one `mknodat(2)` (no descriptor to open and close): a reference
/// or a marker. `Ok(false)` when it exists already.
fn make_entry(path: &Path) -> Result<bool> {
    use rustix::fs::{CWD, FileType, Mode, mknodat};
    match mknodat(CWD, path, FileType::RegularFile, Mode::from_raw_mode(0o644), 0) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::EXIST) => Ok(false),
        Err(e) => Err(Error::io("create", path, e)),
    }
}

/// Reads a small file: open, read until the end, close (`fs::read` also `stat`s it for a size hint).
fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
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

/// Removes the entry at `path`; `Ok(false)` when there was none.
fn remove_entry(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

/// The volume registry in one directory; see the crate docs for the layout and the rules.
#[derive(Debug)]
pub struct Registry {
    /// The directory as given (made absolute), for the one `stat` of the common case.
    given: PathBuf,
    /// The directory with symlinks resolved, computed on first use (every path mountkit hands out or
    /// compares with the mount table is built on it).
    root: OnceLock<PathBuf>,
    /// `open` saw `.idle`: the first `reconcile` has nothing to do.
    idle_at_open: AtomicBool,
}

impl Clone for Registry {
    fn clone(&self) -> Registry {
        Registry {
            given: self.given.clone(),
            root: self.root.clone(),
            idle_at_open: AtomicBool::new(false),
        }
    }
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

/// Writes a new file (that must not exist yet) without fsync: for a record inside a private staging
/// directory, which becomes visible only by the rename of that directory.
fn write_new(path: &Path, data: &[u8]) -> Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| Error::io("write", path, e))
}

/// The mount points at or below `path` (canonical: every path here is built on the canonical root) in
/// this process's mount namespace, without resolving the path again.
fn mounts_below(path: &Path) -> Result<Vec<PathBuf>> {
    Ok(mountkit_safefs::mounts_under_canonical(path)?)
}

fn is_mount_point(path: &Path) -> Result<bool> {
    Ok(mounts_below(path)?.iter().any(|m| m == path))
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
        // `.idle` only exists in an existing registry; otherwise make sure the directory is there.
        let idle = fs::symlink_metadata(given.join(IDLE)).is_ok();
        if !idle {
            fs::create_dir_all(&given).map_err(|e| Error::io("create directory", &given, e))?;
        }
        Ok(Registry {
            given,
            root: OnceLock::new(),
            idle_at_open: AtomicBool::new(idle),
        })
    }

    /// The registry's directory (canonical).
    pub fn root(&self) -> &Path {
        self.root
            .get_or_init(|| fs::canonicalize(&self.given).unwrap_or_else(|_| self.given.clone()))
    }

    /// Takes the registry lock for a change.
    fn lock(&self) -> Result<Held> {
        Ok(Held {
            _lock: Lock::exclusive(&self.root().join(LOCK))?,
            bumped: Cell::new(false),
        })
    }

    /// The generation token: the target of the `.generation` symlink (a symlink because replacing it is
    /// metadata only: on ext4 replacing a small file by rename costs ten times more, as the kernel writes
    /// the new file's data back at once). `None` when there is none: no cache is trusted.
    fn generation(&self) -> Option<String> {
        let target = fs::read_link(self.root().join(GENERATION)).ok()?;
        target
            .into_os_string()
            .into_string()
            .ok()
            .filter(|t| !t.is_empty())
    }

    /// Called (with the lock held) before the first change on disk: invalidates the list cache, even if
    /// the process dies halfway through the change. The new token is random, so it never comes back.
    fn touch(&self, held: &Held) -> Result<()> {
        if !held.bumped.get() {
            let path = self.root().join(GENERATION);
            let token = mountkit_safefs::random_hex(8);
            let tmp = self.root().join(format!("{GENERATION}.{token}.tmp"));
            std::os::unix::fs::symlink(&token, &tmp).map_err(|e| Error::io("create", &tmp, e))?;
            if let Err(e) = fs::rename(&tmp, &path) {
                let _ = fs::remove_file(&tmp);
                return Err(Error::io("replace", &path, e));
            }
            held.bumped.set(true);
        }
        Ok(())
    }

    /// Every volume, from the cache when it is current, else from the records (then the cache is rebuilt),
    /// and the names of the records that could not be read. The caller holds the registry lock (shared or
    /// exclusive). With `lenient`, corrupt records are skipped with a warning (and the cache is not
    /// written); otherwise they are an error.
    ///
    /// With `reuse` (for `list`, which only shows), a rebuild takes from the previous cache of this boot
    /// every volume whose directory still has the [`Stamp`] it had then (one `stat` instead of reading the
    /// record and listing the directory); the others are read. Decisions (`prune`, `reconcile`) read
    /// every record.
    fn snapshot_locked(&self, lenient: bool, reuse: bool) -> Result<(Vec<Volume>, Vec<String>)> {
        let generation = self.generation();
        let boot = boot_id();
        let old = self.load_cache(boot);
        if let (Some(cache), Some(generation)) = (&old, &generation)
            && cache.generation == *generation
        {
            let mut vols = cache.volumes.clone();
            for v in &mut vols {
                v.mountpoint = self.data_path(&v.name);
            }
            return Ok((vols, Vec::new()));
        }
        let built_ns = now_ns();
        let mut reusable: BTreeMap<String, (Stamp, Volume)> = BTreeMap::new();
        if let (true, Some(cache)) = (reuse, old) {
            let Cache {
                volumes,
                stamps,
                built_ns: then,
                ..
            } = cache;
            for v in volumes {
                if let Some(stamp) = stamps.get(&v.name)
                    && stamp.ctime_ns.saturating_add(STAMP_MARGIN_NS) < then
                {
                    reusable.insert(v.name.clone(), (*stamp, v));
                }
            }
        }
        let mut vols = Vec::new();
        let mut stamps = BTreeMap::new();
        let mut broken = Vec::new();
        for name in self.names()? {
            let stamp = dir_stamp(&self.dir(&name));
            if let (Some(stamp), Some((then, v))) = (stamp, reusable.remove(&name))
                && stamp == then
            {
                vols.push(Volume {
                    mountpoint: self.data_path(&name),
                    ..v
                });
                stamps.insert(name, stamp);
                continue;
            }
            match self.load(&name) {
                Ok(v) => {
                    if let Some(stamp) = stamp {
                        stamps.insert(name, stamp);
                    }
                    vols.push(v)
                }
                Err(Error::NotFound { .. }) => {
                    // Under the lock nothing is half-way: a directory without a whole record is a create
                    // that a power loss cut short (see "Durability" in the crate docs).
                    if self.dir(&name).is_dir() {
                        warn!(
                            volume = %name,
                            "{} has no complete {META} (a create cut short by a power loss?): it is not a \
                             volume; creating a volume of that name adopts its {DATA}",
                            self.dir(&name).display()
                        );
                    }
                }
                Err(e) if lenient => {
                    warn!("skipping a volume: {e}");
                    broken.push(name);
                }
                Err(e) => return Err(e),
            }
        }
        if let (true, Some(generation)) = (broken.is_empty(), generation) {
            let cache = Cache {
                boot_id: boot.to_string(),
                generation,
                volumes: vols,
                built_ns,
                stamps,
            };
            match serde_json::to_vec(&cache) {
                Ok(json) => {
                    if let Err(e) = mountkit_safefs::write_atomic_nosync(&self.root().join(CACHE), &json) {
                        debug!("cannot write the volume list cache: {e}");
                    }
                }
                Err(e) => debug!("cannot encode the volume list cache: {e}"),
            }
            vols = cache.volumes;
        }
        Ok((vols, broken))
    }

    /// The list cache, when it was written in this boot (at any generation).
    fn load_cache(&self, boot: &str) -> Option<Cache> {
        if boot.is_empty() {
            return None;
        }
        let bytes = fs::read(self.root().join(CACHE)).ok()?;
        let cache: Cache = serde_json::from_slice(&bytes).ok()?;
        (cache.boot_id == boot).then_some(cache)
    }

    fn read_cache(&self, generation: Option<&str>, boot: &str) -> Option<Vec<Volume>> {
        let generation = generation?;
        let cache = self.load_cache(boot)?;
        if cache.generation != generation {
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
        if let Some(vols) = self.read_cache(self.generation().as_deref(), boot_id()) {
            return Ok(vols);
        }
        let _shared = Lock::shared(&self.root().join(LOCK))?;
        Ok(self.snapshot_locked(false, true)?.0)
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    /// The host path of a volume's data (`<root>/<name>/_data`), whether or not the volume exists.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.root().join(name).join(DATA)
    }

    /// The staging directory, made if missing, with what crashed commands left in it removed. The caller
    /// holds the registry lock, so every entry is stale: each change finishes with its staging inside the
    /// lock. Entries are always directories, so a directory link count of 2 (what ext4, xfs and tmpfs
    /// report for a directory without subdirectories) means nothing to sweep; other counts (btrfs always
    /// says 1) mean "look".
    fn staging(&self) -> Result<PathBuf> {
        let tmp = self.root().join(TMP);
        match fs::symlink_metadata(&tmp) {
            Ok(m) if m.is_dir() => {
                if m.nlink() != 2 {
                    Self::sweep(&tmp);
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
            debug!(path = %path.display(), "removing stale volume staging");
            if let Err(e) = mountkit_safefs::remove_tree(&path) {
                warn!("cannot clear stale volume staging: {e}");
            }
        }
    }

    /// The volume as its record and its entries say (references and `populated` are entries; the
    /// record's `users` and `populated` fields are always written empty and are not read).
    fn load(&self, name: &str) -> Result<Volume> {
        let mut vol = self.load_record(name)?;
        let mut entries = self.read_entries(name)?;
        entries.refs.sort();
        vol.users = entries.refs;
        vol.populated = entries.populated;
        Self::void_other_boot(&mut vol);
        Ok(vol)
    }

    /// The entries beside a volume's record; [`Error::NotFound`] when its directory is gone.
    fn read_entries(&self, name: &str) -> Result<Entries> {
        use rustix::fs::{CWD, Mode, OFlags, RawDir, openat};
        let dir = self.dir(name);
        let mut entries = Entries::default();
        // getdents64 on a stack buffer: no stat of the directory as std's `read_dir` makes (this runs once
        // per volume when `list` reads every record).
        let fd = match openat(
            CWD,
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                return Err(Error::NotFound {
                    name: name.to_string(),
                });
            }
            Err(e) => return Err(Error::io("read directory", &dir, e)),
        };
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut listing = RawDir::new(fd, &mut buf);
        while let Some(entry) = listing.next() {
            let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
            let Ok(file_name) = entry.file_name().to_str() else {
                continue;
            };
            if let Some(container) = file_name.strip_prefix(REF_PREFIX) {
                entries.refs.push(container.to_string());
            } else if file_name == POPULATED {
                entries.populated = true;
            }
        }
        Ok(entries)
    }

    /// The record alone (`volume.json`), with its name and mountpoint filled in.
    fn load_record(&self, name: &str) -> Result<Volume> {
        let path = self.dir(name).join(META);
        let bytes = match read_small(&path) {
            Ok(b) if !b.is_empty() => b,
            // An empty record is what a power loss leaves of a create whose record had not been written
            // back yet (see "Durability" in the crate docs): no volume.
            Ok(_) => {
                return Err(Error::NotFound {
                    name: name.to_string(),
                });
            }
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

    /// Whether `name` has a whole record (a volume, as far as one `stat` can tell).
    fn record_exists(&self, name: &str) -> bool {
        fs::metadata(self.dir(name).join(META)).is_ok_and(|m| m.is_file() && m.len() > 0)
    }

    /// Clears users and the mount flag recorded in another boot: nothing of them survived the reboot.
    /// Returns whether it did (the record on disk is then out of date, harmlessly).
    fn void_other_boot(vol: &mut Volume) -> bool {
        if !vol.in_use() || vol.active_boot.is_empty() {
            return false;
        }
        let boot = boot_id();
        if boot.is_empty() || boot == vol.active_boot {
            return false;
        }
        debug!(volume = %vol.name, users = ?vol.active, "users and mount recorded in another boot: void");
        vol.active.clear();
        vol.mounted = false;
        vol.active_boot.clear();
        if vol.options.get("type").map(String::as_str) == Some("tmpfs") {
            vol.populated = false;
        }
        true
    }

    /// Writes a changed record (atomically and durably). Stamps `active_boot` when it says "in use".
    ///
    /// References and `populated` are entries, not record fields: they are made to match `vol` first
    /// (a reference in `vol.users` gets its entry, `populated` its marker or none), and the record is
    /// written without them. Only driver mounts and users without a reference come here, so the fsync of `write_atomic` is rarely paid; it is kept
    /// because an unsynced replace can leave an empty record after a power loss (xfs), and an empty record
    /// hides the volume and, when it is adopted again, loses its driver options.
    fn save(&self, held: &Held, vol: &mut Volume) -> Result<()> {
        self.touch(held)?;
        vol.active_boot = if vol.in_use() {
            boot_id().to_string()
        } else {
            String::new()
        };
        let dir = self.dir(&vol.name);
        for c in &vol.users {
            make_entry(&dir.join(ref_entry(c)))?;
        }
        if vol.populated {
            make_entry(&dir.join(POPULATED))?;
        } else {
            remove_entry(&dir.join(POPULATED))?;
        }
        let record = Volume {
            users: Vec::new(),
            populated: false,
            ..vol.clone()
        };
        let path = dir.join(META);
        let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::io("encode", &path, e))?;
        mountkit_safefs::write_atomic(&path, &json)?;
        Ok(())
    }

    /// Marks the volume as having received content: one entry, no record rewrite.
    fn mark_populated(&self, held: &Held, name: &str) -> Result<()> {
        self.touch(held)?;
        make_entry(&self.dir(name).join(POPULATED))?;
        Ok(())
    }

    /// Whether `.idle` says that no volume is in use (in this boot).
    fn is_idle(&self) -> bool {
        fs::symlink_metadata(self.given.join(IDLE)).is_ok()
    }

    /// The in-use index, when it was written in this boot (otherwise it says nothing).
    fn read_index(&self) -> Option<Vec<String>> {
        let bytes = fs::read(self.root().join(ACTIVE)).ok()?;
        let index: ActiveIndex = serde_json::from_slice(&bytes).ok()?;
        (!index.boot_id.is_empty() && index.boot_id == boot_id()).then_some(index.volumes)
    }

    fn write_index(&self, volumes: Vec<String>) -> Result<()> {
        let index = ActiveIndex {
            boot_id: boot_id().to_string(),
            volumes,
        };
        let path = self.root().join(ACTIVE);
        let json = serde_json::to_vec(&index).map_err(|e| Error::io("encode", &path, e))?;
        mountkit_safefs::write_atomic_nosync(&path, &json)?;
        Ok(())
    }

    /// The volumes in use in this boot, read from every record (or the list cache), plus those whose
    /// record cannot be read (they might be in use): what the index is rebuilt from.
    fn scan_in_use(&self) -> Result<Vec<String>> {
        let (vols, mut names) = self.snapshot_locked(true, false)?;
        names.extend(vols.into_iter().filter(Volume::in_use).map(|v| v.name));
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Called with the lock held before a record first says "in use": puts the volume in the index and
    /// then removes `.idle`, so every later command reconciles until the volume is out of use again.
    fn enter_use(&self, _held: &Held, name: &str) -> Result<()> {
        let idle = self.is_idle();
        let (mut names, current) = match (idle, self.read_index()) {
            // `.idle`: nothing is in use, whatever an old index says.
            (true, _) => (Vec::new(), false),
            (false, Some(names)) => (names, true),
            (false, None) => (self.scan_in_use()?, false),
        };
        if insert_sorted(&mut names, name) || !current {
            self.write_index(names)?;
        }
        if idle {
            match fs::remove_file(self.root().join(IDLE)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", self.root().join(IDLE), e)),
            }
        }
        Ok(())
    }

    /// Called with the lock held after a record was saved as out of use: takes it out of the index and,
    /// when the index is empty, writes `.idle`.
    fn leave_use(&self, _held: &Held, name: &str) -> Result<()> {
        // Without an index of this boot, the next reconcile rebuilds it.
        let Some(mut names) = self.read_index() else {
            return Ok(());
        };
        let removed = remove_item(&mut names, name);
        let empty = names.is_empty();
        if removed {
            self.write_index(names)?;
        }
        if empty {
            self.mark_idle();
        }
        Ok(())
    }

    /// Writes `.idle`. Its absence only costs the next command a reconcile, so failing is not an error.
    fn mark_idle(&self) {
        let path = self.root().join(IDLE);
        if let Err(e) = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
        {
            debug!("cannot write {}: {e}", path.display());
        }
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
            active_boot: String::new(),
        };
        // Built whole in staging, made visible by one rename; no fsync (see "Durability").
        let stage = self
            .staging()?
            .join(format!("create-{}", mountkit_safefs::random_hex(8)));
        mkdir(&stage, 0o755)?;
        mkdir(&stage.join(DATA), 0o755)?;
        let json = serde_json::to_vec_pretty(&vol).map_err(|e| Error::io("encode", stage.join(META), e))?;
        write_new(&stage.join(META), &json)?;
        let dest = self.dir(&name);
        self.touch(&held)?;
        match fs::rename(&stage, &dest) {
            Ok(()) => {}
            // A non-empty directory without a whole record (`load` said NotFound): adopt it.
            Err(e) if matches!(e.kind(), ErrorKind::DirectoryNotEmpty | ErrorKind::AlreadyExists) => {
                Self::adopt(&stage, &dest, &name)?;
                info!(volume = %name, "created volume (adopted)");
                // What survived beside the lost record (references, `populated`) is the volume's.
                return self.load(&name);
            }
            Err(e) => return Err(Error::io("move staged volume into place at", &dest, e)),
        }
        info!(volume = %name, "created volume");
        Ok(vol)
    }

    /// Puts the staged record into `dest`, a directory of the volume's name that has no whole record
    /// (a create cut short by a power loss), keeping its `_data`: it may hold what a container wrote.
    fn adopt(stage: &Path, dest: &Path, name: &str) -> Result<()> {
        warn!(
            volume = name,
            "{} has no complete {META} (a create cut short by a power loss?): adopting it, {DATA} kept",
            dest.display()
        );
        mkdir(&dest.join(DATA), 0o755)?;
        fs::rename(stage.join(META), dest.join(META))
            .map_err(|e| Error::io("move staged record into place at", dest.join(META), e))?;
        // The stage is an empty `_data` now; if it cannot go, the next sweep takes it.
        let _ = fs::remove_dir(stage.join(DATA));
        let _ = fs::remove_dir(stage);
        Ok(())
    }

    /// The volume called `name`.
    pub fn get(&self, name: &str) -> Result<Volume> {
        validate_name(name)?;
        self.load(name)
    }

    /// Whether a volume called `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        validate_name(name).is_ok()
            && fs::metadata(self.dir(name).join(META)).is_ok_and(|m| m.is_file() && m.len() > 0)
    }

    fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let root = self.root();
        for entry in fs::read_dir(root).map_err(|e| Error::io("read directory", root, e))? {
            let entry = entry.map_err(|e| Error::io("read directory", root, e))?;
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
        let mounts = mounts_below(&dir)?;
        if !mounts.is_empty() {
            return Err(Error::MountedUnder {
                name: vol.name.clone(),
                mounts,
            });
        }
        let grave = self
            .staging()?
            .join(format!("rm-{}", mountkit_safefs::random_hex(8)));
        debug!(volume = %vol.name, "moving volume out of the registry for removal");
        self.touch(held)?;
        fs::rename(&dir, &grave).map_err(|e| Error::io("move out for removal", &dir, e))?;
        // The volume is gone from the registry now; if its files cannot all be deleted (something was
        // mounted there in between), they stay in staging, and the next sweep tries again.
        // Its mounts were checked above, under the lock, before the rename.
        if let Err(e) = mountkit_safefs::remove_tree_checked(&grave) {
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
        for vol in self.snapshot_locked(true, false)?.0 {
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
        self.add_refs(&[name], container)
    }

    /// Records that `container` references each of `names`, under one lock: one directory entry per
    /// volume, nothing rewritten, no fsync. Idempotent. When one of the volumes does not exist
    /// ([`Error::NotFound`]), no reference is added.
    pub fn add_refs(&self, names: &[&str], container: &str) -> Result<()> {
        validate_ref(container)?;
        for name in names {
            validate_name(name)?;
        }
        let held = self.lock()?;
        if let Some(missing) = names.iter().find(|n| !self.record_exists(n)) {
            return Err(Error::NotFound {
                name: missing.to_string(),
            });
        }
        for name in names {
            self.touch(&held)?;
            if make_entry(&self.dir(name).join(ref_entry(container)))? {
                debug!(volume = name, container, "volume referenced");
            }
        }
        Ok(())
    }

    /// Drops `container`'s reference (at container rm). Idempotent; [`Error::NotFound`] if the volume is gone.
    pub fn remove_ref(&self, name: &str, container: &str) -> Result<()> {
        self.remove_refs(&[name], container)
    }

    /// Drops `container`'s reference to each of `names`, under one lock: one `unlink` per volume. Every
    /// volume is dealt with; the first error (such as [`Error::NotFound`] for a volume that is gone) is
    /// returned after.
    pub fn remove_refs(&self, names: &[&str], container: &str) -> Result<()> {
        validate_ref(container)?;
        for name in names {
            validate_name(name)?;
        }
        let held = self.lock()?;
        let mut first_error = None;
        for name in names {
            self.touch(&held)?;
            let result = match remove_entry(&self.dir(name).join(ref_entry(container))) {
                Ok(true) => {
                    debug!(volume = name, container, "volume reference dropped");
                    Ok(())
                }
                // No entry: no reference; an error only if there is no volume (or its record is unreadable).
                Ok(false) => self.load(name).map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Makes the references exactly `refs` (volume name -> the containers that reference it): missing
    /// ones are added, others dropped, for every volume (a volume not in `refs` has none). Names in `refs`
    /// that are not volumes are ignored. Returns how many references were added or dropped.
    ///
    /// References are written without fsync, so a power loss can lose a recent one, or bring back one
    /// that was dropped (see "References" in the crate docs). A caller that keeps its own durable record of
    /// which container uses which volume (mountkit's container records) calls this before acting on
    /// references: before `remove`, `prune` and a `dangling` listing.
    pub fn set_refs(&self, refs: &BTreeMap<String, BTreeSet<String>>) -> Result<usize> {
        for containers in refs.values() {
            for c in containers {
                validate_ref(c)?;
            }
        }
        let held = self.lock()?;
        let none = BTreeSet::new();
        let mut changes = 0;
        for name in self.names()? {
            let vol = match self.load(&name) {
                Ok(v) => v,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => {
                    warn!("cannot check the references of a volume: {e}");
                    continue;
                }
            };
            let want = refs.get(&name).unwrap_or(&none);
            let dir = self.dir(&name);
            for c in want.iter().filter(|c| vol.users.binary_search(c).is_err()) {
                self.touch(&held)?;
                make_entry(&dir.join(ref_entry(c)))?;
                info!(volume = %name, container = %c, "missing volume reference restored");
                changes += 1;
            }
            let stale: Vec<String> = vol.users.iter().filter(|c| !want.contains(*c)).cloned().collect();
            for c in &stale {
                self.touch(&held)?;
                remove_entry(&dir.join(ref_entry(c)))?;
                info!(volume = %name, container = %c, "stale volume reference dropped");
                changes += 1;
            }
        }
        Ok(changes)
    }

    /// Makes the volume usable by `user` and returns the host path to bind into the container.
    ///
    /// For a volume with driver options, the first user makes the mount at `_data` in the caller's mount
    /// namespace; later users share it. Idempotent per user. The use is recorded (the record is rewritten,
    /// with fsync); [`acquire_all`](Registry::acquire_all) skips that where it is not needed.
    pub fn acquire(&self, name: &str, user: &str) -> Result<PathBuf> {
        validate_name(name)?;
        let held = self.lock()?;
        Ok(self.acquire_locked(&held, name, user)?.mountpoint)
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
        for name in names {
            validate_name(name)?;
        }
        let mut held: Option<Held> = None;
        let mut out: Vec<Acquired> = Vec::with_capacity(names.len());
        for name in names {
            let result = self.load(name).and_then(|vol| {
                let plain = matches!(driver::parse(&vol.options)?, Backing::Directory);
                if plain && vol.users.binary_search_by(|u| u.as_str().cmp(user)).is_ok() {
                    return Ok((vol, false));
                }
                let held = match &mut held {
                    Some(h) => h,
                    none => none.insert(self.lock()?),
                };
                Ok((self.acquire_locked(held, name, user)?, true))
            });
            match result {
                Ok((vol, recorded)) => out.push(Acquired {
                    name: name.to_string(),
                    path: vol.mountpoint,
                    populated: vol.populated,
                    user: user.to_string(),
                    recorded,
                }),
                Err(e) => {
                    // Only recorded uses need undoing, and recording took the lock.
                    if let Some(held) = &held {
                        for a in out.iter().filter(|a| a.recorded) {
                            if let Err(e) = self.release_locked(held, &a.name, &a.user) {
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

    /// Acquires the volume for `user` with the lock held; returns the volume as acquired.
    fn acquire_locked(&self, held: &Held, name: &str, user: &str) -> Result<Volume> {
        let mut vol = self.load(name)?;
        let data = vol.mountpoint.clone();
        if !vol.in_use() {
            self.enter_use(held, name)?;
        }
        if let Backing::Mount(plan) = driver::parse(&vol.options)? {
            let attached = is_mount_point(&data)?;
            if attached && !vol.mounted {
                if !vol.in_use() {
                    self.leave_use(held, name)?;
                }
                return Err(Error::ForeignMount {
                    name: name.to_string(),
                    path: data,
                });
            }
            if !attached {
                // Record the intent (and the user) first: a crash after the mount leaves a record that
                // reconcile can act on.
                let before = vol.clone();
                vol.mounted = true;
                insert_sorted(&mut vol.active, user);
                self.save(held, &mut vol)?;
                if let Err(e) = driver::mount(name, &plan, &data) {
                    vol = before;
                    vol.mounted = false;
                    self.save(held, &mut vol)?;
                    if !vol.in_use() {
                        self.leave_use(held, name)?;
                    }
                    return Err(e);
                }
                info!(volume = name, what = %plan.describe(), "volume mounted");
                return Ok(vol);
            }
        }
        if insert_sorted(&mut vol.active, user) {
            self.save(held, &mut vol)?;
        }
        Ok(vol)
    }

    /// Ends `user`'s use of the volume; the last user out unmounts a driver mount. Idempotent per user.
    pub fn release(&self, name: &str, user: &str) -> Result<()> {
        validate_name(name)?;
        let held = self.lock()?;
        self.release_locked(&held, name, user)
    }

    /// Releases what [`acquire_all`](Registry::acquire_all) acquired: nothing to do (no lock taken) for the
    /// volumes it did not record; the others under one lock. Every volume is dealt with; the first error
    /// is returned after.
    pub fn release_all(&self, acquired: &[Acquired]) -> Result<()> {
        if !acquired.iter().any(|a| a.recorded) {
            return Ok(());
        }
        let held = self.lock()?;
        let mut first_error = None;
        for a in acquired.iter().filter(|a| a.recorded) {
            if let Err(e) = self.release_locked(&held, &a.name, &a.user) {
                warn!("cannot release a volume: {e}");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn release_locked(&self, held: &Held, name: &str, user: &str) -> Result<()> {
        let mut vol = self.load(name)?;
        let changed = remove_item(&mut vol.active, user);
        if vol.active.is_empty() && vol.mounted {
            self.unmount_ours(&mut vol)?;
        } else if !changed {
            return Ok(());
        }
        self.save(held, &mut vol)?;
        if !vol.in_use() {
            self.leave_use(held, name)?;
        }
        Ok(())
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
    /// (after a crash). Call it at the start of every command.
    ///
    /// When `.idle` says no volume is in use (the common case), this costs one `stat` (none right after
    /// [`open`](Registry::open)) and takes no lock. Otherwise it takes the lock and looks only at the
    /// volumes in the in-use index (every record, once per boot, when the index is not of this boot). An
    /// unmount that fails is reported after the other volumes were dealt with.
    pub fn reconcile(&self, is_alive: &dyn Fn(&str) -> bool) -> Result<()> {
        if self.idle_at_open.swap(false, Ordering::Relaxed) || self.is_idle() {
            return Ok(());
        }
        let held = self.lock()?;
        if self.is_idle() {
            return Ok(()); // another command reconciled while we waited for the lock
        }
        let (names, from_index) = match self.read_index() {
            Some(names) => (names, true),
            None => (self.scan_in_use()?, false),
        };
        let mut in_use = Vec::new();
        let mut first_error = None;
        for name in &names {
            let mut vol = match self.load(name) {
                Ok(v) => v,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => {
                    // Cannot tell whether it is in use: keep it in the index, and keep reconciling.
                    warn!("cannot reconcile a volume: {e}");
                    in_use.push(name.clone());
                    continue;
                }
            };
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
                match self.unmount_ours(&mut vol) {
                    Ok(()) => changed = true,
                    Err(e) => {
                        warn!("cannot reconcile a volume: {e}");
                        first_error.get_or_insert(e);
                    }
                }
            }
            if changed {
                self.save(&held, &mut vol)?;
            }
            if vol.in_use() {
                in_use.push(name.clone());
            }
        }
        if !from_index || in_use != names {
            self.write_index(in_use.clone())?;
        }
        if in_use.is_empty() {
            self.mark_idle();
        }
        first_error.map_or(Ok(()), Err)
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
        // The source first: it is the image's, not the registry's, so no lock is needed to find that
        // there is nothing to copy (the common case: a mount path the image has empty, or not at all).
        // The source itself may be reached through a link (a `/proc/self/fd/N` path of a directory the
        // caller resolved inside the image root); nothing below it is followed.
        let meta = match fs::metadata(source) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("inspect", source, e)),
        };
        if meta.is_dir() && dir_is_empty(source)? {
            return Ok(false);
        }
        let held = self.lock()?;
        let vol = self.load(name)?;
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
            self.mark_populated(&held, name)?;
            return Ok(false);
        }
        if !meta.is_dir() {
            return Err(Error::SourceNotDirectory {
                name: name.to_string(),
                path: source.to_path_buf(),
            });
        }
        debug!(volume = name, source = %source.display(), "populating volume from image content");
        crate::copy::copy_tree(source, &data)?;
        self.mark_populated(&held, name)?;
        info!(volume = name, "volume populated");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_below_finds_the_root_mount() {
        let all = mounts_below(Path::new("/")).unwrap();
        assert!(all.iter().any(|m| m == Path::new("/")), "{all:?}");
        assert!(
            mounts_below(Path::new("/nonexistent-mountkit-dir"))
                .unwrap()
                .is_empty()
        );
    }
}
