//! Project quotas: whether the registry's filesystem enforces them, a project ID per volume (allocated in
//! `<root>/.project-ids/`), the limit (`quotactl_fd(Q_SETQUOTA)` on the project) and the ID on the
//! volume's `_data` (`FS_IOC_FSSETXATTR`: `fsx_projid` and `FS_XFLAG_PROJINHERIT`, so that everything
//! made under it is charged to the project). See "Size limits" in docs/volumes.md.
//!
//! `quotactl_fd(2)` (Linux 5.14) takes any open file of the filesystem, so mountkit need not find the
//! block device under the store. The generic `Q_GETQUOTA`/`Q_SETQUOTA` reach XFS too (its
//! `quotactl_ops` has `get_dqblk`/`set_dqblk`), so one code path serves ext4 and XFS.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::layout::Layout;
use crate::lock::ChangeLock;
use crate::{Error, Result, record};

/// The allocation directory: one symlink `<id> -> <volume name>` per project ID in use.
const IDS: &str = ".project-ids";

/// The first project ID mountkit hands out: well above the small numbers an administrator's
/// `/etc/projid` usually holds.
pub(crate) const FIRST_ID: u32 = 1_000_000;

/// How many IDs past the taken ones a search tries before giving up.
const SEARCH: u32 = 100_000;

const PRJQUOTA: libc::c_int = 2;
const Q_XGETQSTATV: libc::c_int = (b'X' as libc::c_int) << 8 | 8;
const FS_QSTATV_VERSION1: u8 = 1;
const FS_QUOTA_PDQ_ENFD: u16 = 1 << 5;
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;
const FS_XFLAG_PROJINHERIT: u32 = 0x0000_0200;

/// `struct fsxattr` of `<linux/fs.h>`.
#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

fn quotactl_fd(file: &File, cmd: libc::c_int, id: u32, addr: *mut libc::c_void) -> std::io::Result<()> {
    // SAFETY: the kernel reads or writes the structure `addr` points to, which the caller sized for `cmd`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_quotactl_fd,
            file.as_raw_fd(),
            libc::QCMD(cmd, PRJQUOTA),
            id as libc::c_uint,
            addr,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn open_dir(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
}

/// Whether the filesystem of `dir` enforces project quotas (ext4 or XFS mounted with `prjquota`).
pub(crate) fn enforced(dir: &Path) -> bool {
    let file = match open_dir(dir) {
        Ok(f) => f,
        Err(e) => {
            debug!(dir = %dir.display(), "cannot open to ask for project quotas: {e}");
            return false;
        }
    };
    // `struct fs_quota_statv` is 160 bytes; only its version (byte 0) and flags (bytes 2-3) matter here.
    let mut statv = [0u64; 20];
    let bytes = statv.as_mut_ptr().cast::<u8>();
    // SAFETY: `statv` is 160 bytes, 8-aligned; byte 0 is the version the kernel reads first.
    unsafe { *bytes = FS_QSTATV_VERSION1 };
    match quotactl_fd(&file, Q_XGETQSTATV, 0, statv.as_mut_ptr().cast()) {
        Ok(()) => {
            // SAFETY: in bounds of `statv`; the kernel filled it.
            let flags = unsafe { u16::from_ne_bytes([*bytes.add(2), *bytes.add(3)]) };
            let on = flags & FS_QUOTA_PDQ_ENFD != 0;
            debug!(dir = %dir.display(), flags, on, "project quota state");
            on
        }
        Err(e) => {
            debug!(dir = %dir.display(), "no project quotas: {e}");
            false
        }
    }
}

/// The quota record of project `id` on the filesystem of `file`; `None` when the filesystem has none
/// for it (XFS says `ENOENT`).
fn get(file: &File, id: u32) -> std::io::Result<Option<libc::dqblk>> {
    // SAFETY: an all-zero `dqblk` is valid (plain integers).
    let mut dq: libc::dqblk = unsafe { std::mem::zeroed() };
    match quotactl_fd(file, libc::Q_GETQUOTA, id, (&raw mut dq).cast()) {
        Ok(()) => Ok(Some(dq)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn set_limit(file: &File, id: u32, bytes: u64) -> std::io::Result<()> {
    // SAFETY: as in `get`.
    let mut dq: libc::dqblk = unsafe { std::mem::zeroed() };
    let blocks = bytes.div_ceil(1024); // QIF_DQBLKSIZE
    dq.dqb_bhardlimit = blocks;
    dq.dqb_bsoftlimit = blocks;
    dq.dqb_valid = libc::QIF_BLIMITS;
    quotactl_fd(file, libc::Q_SETQUOTA, id, (&raw mut dq).cast())
}

/// Whether project `id` is used on the filesystem of `file`: it charges files or has limits (another
/// store, another tool). Unknown (an error) counts as used.
fn used_on_fs(file: &File, id: u32) -> bool {
    match get(file, id) {
        Ok(None) => false,
        Ok(Some(dq)) => {
            dq.dqb_curspace != 0
                || dq.dqb_curinodes != 0
                || dq.dqb_bhardlimit != 0
                || dq.dqb_bsoftlimit != 0
                || dq.dqb_ihardlimit != 0
                || dq.dqb_isoftlimit != 0
        }
        Err(e) => {
            debug!(id, "cannot read project quota: {e}");
            true
        }
    }
}

fn fail(name: &str, what: String) -> impl FnOnce(std::io::Error) -> Error {
    let name = name.to_string();
    move |source| Error::SizeLimit { name, what, source }
}

/// Allocates a project ID for the volume `name` (whose `_data` is `data`), with the registry lock held.
pub(crate) fn allocate(change: &ChangeLock, name: &str, data: &Path) -> Result<u32> {
    let layout = change.layout();
    let file = open_dir(data).map_err(|e| Error::io("open", data, e))?;
    let owns = |owner: &str, id: u32| {
        record::read(layout, owner)
            .ok()
            .and_then(|r| r.size_limit)
            .and_then(|l| l.project_id)
            == Some(id)
    };
    change.invalidate_list_cache()?;
    pick(&layout.file(IDS), name, &owns, &|id| used_on_fs(&file, id))
}

/// The allocation itself: the lowest ID from [`FIRST_ID`] that no volume of this registry owns
/// (`owns(volume, id)`: its record says so) and that is not `used_on_fs`; claimed by a symlink to `name`.
/// Entries whose volume does not own them (a create or a removal cut short) are dropped. The caller holds
/// the registry lock.
fn pick(
    dir: &Path,
    name: &str,
    owns: &dyn Fn(&str, u32) -> bool,
    used_on_fs: &dyn Fn(u32) -> bool,
) -> Result<u32> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("create directory", dir, e)),
    }
    let mut taken = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let path = entry.path();
        let Some(id) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let owner = fs::read_link(&path).ok();
        match owner.as_deref().and_then(Path::to_str) {
            Some(owner) if owns(owner, id) => {
                taken.insert(id);
            }
            _ => {
                debug!(id, "dropping a stale project ID entry");
                if let Err(e) = fs::remove_file(&path)
                    && e.kind() != ErrorKind::NotFound
                {
                    return Err(Error::io("remove", &path, e));
                }
            }
        }
    }
    let last = FIRST_ID.saturating_add(taken.len() as u32).saturating_add(SEARCH);
    for id in FIRST_ID..last {
        if taken.contains(&id) || used_on_fs(id) {
            continue;
        }
        let entry = dir.join(id.to_string());
        std::os::unix::fs::symlink(name, &entry).map_err(|e| Error::io("create", &entry, e))?;
        debug!(volume = name, id, "project ID allocated");
        return Ok(id);
    }
    Err(Error::io(
        "allocate a project ID in",
        dir,
        std::io::Error::other(format!(
            "every ID from {FIRST_ID} to {last} is taken on this filesystem"
        )),
    ))
}

/// Sets the limit of project `id` to `bytes` and gives `data` (the volume's empty `_data`) the project ID
/// with inheritance.
pub(crate) fn apply(name: &str, data: &Path, id: u32, bytes: u64) -> Result<()> {
    let file = open_dir(data).map_err(|e| Error::io("open", data, e))?;
    set_limit(&file, id, bytes).map_err(fail(
        name,
        format!("set the limit of project {id} to {bytes} bytes"),
    ))?;
    let mut attr = FsXattr::default();
    // SAFETY: FS_IOC_FSGETXATTR fills a `struct fsxattr`.
    if unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FSGETXATTR, &raw mut attr) } < 0 {
        return Err(fail(name, format!("read the project of {}", data.display()))(
            std::io::Error::last_os_error(),
        ));
    }
    attr.projid = id;
    attr.xflags |= FS_XFLAG_PROJINHERIT;
    // SAFETY: FS_IOC_FSSETXATTR reads a `struct fsxattr`.
    if unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FSSETXATTR, &raw const attr) } < 0 {
        return Err(fail(name, format!("set project {id} on {}", data.display()))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Frees project `id` of the volume `name`: its limit cleared (through `dir`, or the registry's directory
/// when `dir` is gone: the same filesystem) and its entry removed. Failures are logged: the entry of a
/// volume that is gone is dropped by the next allocation anyway, and an ID with charges or limits left
/// is skipped by it.
pub(crate) fn free(layout: &Layout, name: &str, dir: &Path, id: u32) {
    let file = open_dir(dir).or_else(|_| open_dir(layout.root()));
    match file {
        Ok(file) => {
            if let Err(e) = set_limit(&file, id, 0) {
                warn!(volume = name, id, "cannot clear the limit of the project: {e}");
            }
        }
        Err(e) => warn!(volume = name, id, "cannot clear the limit of the project: {e}"),
    }
    let entry: PathBuf = layout.file(IDS).join(id.to_string());
    if fs::read_link(&entry).is_ok_and(|owner| owner == Path::new(name))
        && let Err(e) = fs::remove_file(&entry)
    {
        warn!(volume = name, id, "cannot free the project ID: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// The allocation with a fake registry (volume -> its ID) and a fake filesystem (IDs in use there).
    struct World {
        dir: tempfile::TempDir,
        volumes: RefCell<BTreeMap<String, u32>>,
        on_fs: BTreeSet<u32>,
    }

    impl World {
        fn new(on_fs: &[u32]) -> World {
            World {
                dir: tempfile::tempdir().unwrap(),
                volumes: RefCell::default(),
                on_fs: on_fs.iter().copied().collect(),
            }
        }

        fn ids(&self) -> PathBuf {
            self.dir.path().join(IDS)
        }

        /// Allocates for `name` and, as a create that succeeds does, records the ID in its "record".
        fn create(&self, name: &str) -> u32 {
            let id = self.pick(name).unwrap();
            self.volumes.borrow_mut().insert(name.into(), id);
            id
        }

        fn pick(&self, name: &str) -> Result<u32> {
            let owns = |v: &str, id: u32| self.volumes.borrow().get(v) == Some(&id);
            pick(&self.ids(), name, &owns, &|id| self.on_fs.contains(&id))
        }

        fn remove(&self, name: &str) {
            let id = self.volumes.borrow_mut().remove(name).unwrap();
            fs::remove_file(self.ids().join(id.to_string())).unwrap();
        }
    }

    #[test]
    fn ids_are_unique_and_freed_ids_come_back() {
        let w = World::new(&[]);
        let a = w.create("a");
        let b = w.create("b");
        let c = w.create("c");
        assert_eq!((a, b, c), (FIRST_ID, FIRST_ID + 1, FIRST_ID + 2));
        assert_eq!(
            fs::read_link(w.ids().join(b.to_string())).unwrap(),
            Path::new("b")
        );
        w.remove("b");
        assert_eq!(w.create("d"), FIRST_ID + 1, "a freed ID is handed out again");
        assert_eq!(w.create("e"), FIRST_ID + 3);
    }

    #[test]
    fn ids_used_on_the_filesystem_are_skipped() {
        let w = World::new(&[FIRST_ID, FIRST_ID + 2]);
        assert_eq!(w.create("a"), FIRST_ID + 1);
        assert_eq!(w.create("b"), FIRST_ID + 3);
    }

    #[test]
    fn entries_of_creates_cut_short_are_reclaimed() {
        let w = World::new(&[]);
        let a = w.create("a");
        // A create that died after claiming its ID: the entry is there, no volume owns it.
        let lost = w.pick("lost").unwrap();
        assert_eq!(lost, a + 1);
        // An entry naming a volume that owns another ID (removed and made again) is stale too.
        std::os::unix::fs::symlink("a", w.ids().join((a + 5).to_string())).unwrap();
        assert_eq!(w.create("b"), a + 1, "the lost create's ID is free again");
        assert!(!w.ids().join((a + 5).to_string()).exists());
        // Names that are no IDs are left alone.
        fs::write(w.ids().join("README"), "").unwrap();
        assert_eq!(w.create("c"), a + 2);
        assert!(w.ids().join("README").exists());
    }
}
