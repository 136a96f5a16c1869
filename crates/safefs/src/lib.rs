//! Filesystem primitives that a tool running as root needs in order to be safe, shared by the mountkit
//! crates so that each of them does these things one way, the careful way.
//!
//! - [`write_atomic`]: metadata files are written to a temporary file in the same directory, fsynced and
//!   renamed over the old one, then the directory is fsynced: a crash leaves the old file or the new one.
//!   [`write_atomic_nosync`] does the same without the fsyncs, for state nobody needs after a crash (a
//!   `run --rm` container).
//! - [`Lock`]: `flock(2)` on a lock file, released when dropped (or when the process dies, even by SIGKILL).
//! - [`remove_tree`]: deletes a directory tree but refuses when anything is mounted at or below it (checked
//!   in `/proc/self/mountinfo` first, and again for every directory it descends into, by comparing mount
//!   IDs), never follows a symlink, and never crosses into another filesystem. This is how a container's
//!   writable layer or a volume is removed without ever deleting host files through a bind mount.
//! - [`mountinfo`]: the one parser of `/proc/self/mountinfo` ([`mountinfo::MountTable`]), and
//!   [`mount_id`] / [`mount_id_at`]: the one `statx(STATX_MNT_ID)` (`None` before Linux 5.8).
//!   Decision: mountinfo is split by hand here, not with `procfs` (the design card's crate), because
//!   [`remove_tree`] reads it on the path of every `run --rm` for the mount points alone, while procfs
//!   reads the kernel version and parses every field into owned strings and maps (about a third slower
//!   here: the figures are in the repository's `docs/benchmarks.md`).
//! - [`set_mount_attr`] (`mount_setattr`) and [`remount_adding`] / [`remount_tree_adding`] (a bind
//!   remount of each mount keeping its other flags): the two ways a [`MountAttr`] (read-only, `nodev`,
//!   ...) is added to a mount or a tree of mounts; [`set_read_only`] and [`remount_read_only`] for the
//!   read-only case.
//! - [`XattrsOf`]: an open file's or a path's extended attributes read whole (names, values; read again
//!   when they grew meanwhile) and set, for the layer store's tar writer and the volumes' tree copy.
//! - [`now_rfc3339`] (at a [`TimePrecision`]) for record timestamps, and [`boot_id`], read once.
//! - [`inroot`]: resolves a path inside a root directory as if that directory were `/` (`..` and absolute
//!   symlinks stay inside), creates missing directories and files the same way, and hands back `O_PATH`
//!   file descriptors so that callers mount onto what was resolved, never onto a path that could have
//!   been swapped for a symlink in the meantime (the libpathrs / `openat2(RESOLVE_IN_ROOT)` approach).
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("state.json");
//! mountkit_safefs::write_atomic(&path, b"{}").unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"{}");
//! ```
//!
//! Dependencies: `rustix` for typed syscalls std lacks (`openat2`, `statx` with mount IDs, `flock`,
//! `getrandom`, `*at` calls on descriptors, the bind remount); `libc` for the one syscall rustix lacks,
//! `mount_setattr` ([`set_mount_attr`]); `humantime` to format RFC 3339; `thiserror` for the error type;
//! `tracing` for diagnostics. Not used: `procfs` (see [`mountinfo`] above), `nix` (only in tests:
//! rustix has every call here, `openat2` and `statx` included), `sys-mount` (a mount(2) builder: rustix's
//! calls suffice), `caps` (nothing here handles capabilities).

#![deny(missing_docs)]

mod host;
pub mod inroot;
mod mount_attr;
mod mount_id;
pub mod mountinfo;
mod remove;
mod xattr;

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub use host::{TimePrecision, boot_id, now_rfc3339};
pub use mount_attr::{
    MountAttr, remount_adding, remount_read_only, remount_tree_adding, set_mount_attr, set_read_only,
};
pub use mount_id::{FinalSymlink, mount_id, mount_id_at};
pub use remove::{is_mount_point, mounts_under, mounts_under_canonical, remove_tree, remove_tree_checked};
pub use xattr::XattrsOf;

/// The error of every operation in this crate: what was being done, to which path, and why.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done ("open", "rename", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// [`remove_tree`] found mounts at or below the directory.
    #[error("refusing to remove {path}: still mounted there: {}", display_paths(.mounts))]
    MountedUnder {
        /// The directory that was to be removed.
        path: PathBuf,
        /// The mount points found at or below it.
        mounts: Vec<PathBuf>,
    },
    /// [`remove_tree`] met a directory on another mount or filesystem while descending.
    #[error("refusing to remove {path}: {at} is on another mount or filesystem")]
    CrossesMount {
        /// The directory that was to be removed.
        path: PathBuf,
        /// The entry on another mount.
        at: PathBuf,
    },
    /// An in-root path could not be resolved or created as asked.
    #[error("{path} (inside the root): {reason}")]
    InRoot {
        /// The path, as given (relative to the root).
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
}

impl Error {
    /// The `io::ErrorKind` behind this error, when there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            Error::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// The underlying `io::Error` of an [`Error::Io`] (for callers that report the path themselves);
    /// any other error wrapped as [`io::Error::other`].
    pub fn into_io(self) -> io::Error {
        match self {
            Error::Io { source, .. } => source,
            other => io::Error::other(other),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}

/// Paths joined with `", "`, for error messages that list mount points.
pub fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Writes `data` to `path` atomically and durably: temp file in the same directory, fsync, rename,
/// fsync of the directory. Readers see the old content or the new, never a mix.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_impl(path, data, true)
}

/// Like [`write_atomic`] but without fsyncs: atomic against concurrent readers, not against a crash.
/// For state that nobody needs after a crash (the bookkeeping of a `run --rm` container).
pub fn write_atomic_nosync(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_impl(path, data, false)
}

fn write_atomic_impl(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| Error::InRoot {
        path: path.to_path_buf(),
        reason: "has no file name to write to".into(),
    })?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), random_hex(6)));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(rustix::fs::OFlags::CLOEXEC.bits() as i32)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
        if durable {
            f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))?;
        if durable {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io("fsync directory", dir, e))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An `flock(2)` lock on a lock file; released when dropped or when the process exits.
#[derive(Debug)]
pub struct Lock {
    fd: OwnedFd,
}

impl Lock {
    fn open(path: &Path) -> Result<OwnedFd> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::CLOEXEC.bits() as i32)
            .open(path)
            .map_err(|e| Error::io("open lock file", path, e))?;
        Ok(f.into())
    }

    fn take(path: &Path, op: rustix::fs::FlockOperation) -> Result<Option<Lock>> {
        let fd = Self::open(path)?;
        match rustix::fs::flock(fd.as_fd(), op) {
            Ok(()) => Ok(Some(Lock { fd })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::io("lock", path, e)),
        }
    }

    /// Takes an exclusive lock on `path` (created if missing), waiting for other holders.
    pub fn exclusive(path: &Path) -> Result<Lock> {
        tracing::trace!(path = %path.display(), "lock exclusive");
        Self::take(path, rustix::fs::FlockOperation::LockExclusive).map(|l| l.expect("blocking lock"))
    }

    /// Takes a shared lock on `path` (created if missing), waiting for an exclusive holder.
    pub fn shared(path: &Path) -> Result<Lock> {
        Self::take(path, rustix::fs::FlockOperation::LockShared).map(|l| l.expect("blocking lock"))
    }

    /// Takes a shared lock unless an exclusive one is held elsewhere (then `Ok(None)`).
    pub fn try_shared(path: &Path) -> Result<Option<Lock>> {
        Self::take(path, rustix::fs::FlockOperation::NonBlockingLockShared)
    }

    /// Takes an exclusive lock if nobody holds one; `Ok(None)` when it is held elsewhere.
    pub fn try_exclusive(path: &Path) -> Result<Option<Lock>> {
        Self::take(path, rustix::fs::FlockOperation::NonBlockingLockExclusive)
    }

    /// Lets this exclusive lock go while `f` runs, then waits to take it again, on the same open file
    /// (a lock shared with a forked child stays one lock). For work that may block for long, such as a
    /// network mount, while others should go on: whatever was read under the lock must be checked
    /// again afterwards. `what` names the lock in an error. When taking it again fails, `f`'s result
    /// is dropped (and with it whatever it holds) and the error returned.
    pub fn while_released<T>(&mut self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        use rustix::fs::FlockOperation;
        let io = |e: rustix::io::Errno| Error::io("lock again", what, io::Error::from(e));
        rustix::fs::flock(self.fd.as_fd(), FlockOperation::Unlock).map_err(io)?;
        tracing::debug!(lock = what, "lock let go around a long operation");
        let out = f();
        loop {
            match rustix::fs::flock(self.fd.as_fd(), FlockOperation::LockExclusive) {
                Ok(()) => return Ok(out),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io(e)),
            }
        }
    }
}

/// `bytes` random bytes from the kernel's CSPRNG, as lowercase hex (`2 * bytes` characters).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let mut filled = 0;
    while filled < bytes {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("getrandom failed: {e}"),
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic_nosync(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("meta.json")]);
    }

    #[test]
    fn atomic_write_into_missing_dir_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope/meta.json");
        let err = write_atomic(&p, b"x").unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn try_exclusive_sees_a_held_lock() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let held = Lock::exclusive(&p).unwrap();
        assert!(Lock::try_exclusive(&p).unwrap().is_none());
        drop(held);
        assert!(Lock::try_exclusive(&p).unwrap().is_some());
    }

    #[test]
    fn random_hex_has_the_asked_length_and_varies() {
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(32));
    }
}
