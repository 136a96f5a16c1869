//! A faithful tree copy for `populate` and `clone`: owners, modes, timestamps, xattrs, symlinks (not
//! followed), hard links, device nodes and FIFOs; file data is shared with a reflink (`FICLONE`) where
//! the filesystem can, else copied with its holes kept. It does not descend into other mounts of the
//! source.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mountkit_safefs::{FinalSymlink, XattrsOf, mount_id_at};
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};
use tracing::{trace, warn};

use crate::{Error, Result};

struct Copier {
    /// The mount the source is on (`None` where the kernel reports no mount IDs, before Linux 5.8).
    root_mnt: Option<u64>,
    links: HashMap<(u64, u64), PathBuf>,
}

/// Copies the content of directory `src` into the existing directory `dst`, then gives `dst` the owner,
/// mode, xattrs and timestamps of `src`.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    // `src` itself may be a link to the directory (a `/proc/self/fd/N` path): follow it, and only it.
    let meta = fs::metadata(src).map_err(|e| Error::io("inspect", src, e))?;
    let mut c = Copier {
        root_mnt: mount_id_at(CWD, src, FinalSymlink::Follow)?,
        links: HashMap::new(),
    };
    c.copy_dir_contents(src, dst)?;
    apply_meta(src, dst, &meta)
}

impl Copier {
    fn copy_dir_contents(&mut self, src: &Path, dst: &Path) -> Result<()> {
        let entries = fs::read_dir(src).map_err(|e| Error::io("read directory", src, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read directory", src, e))?;
            let s = entry.path();
            let d = dst.join(entry.file_name());
            let meta = fs::symlink_metadata(&s).map_err(|e| Error::io("inspect", &s, e))?;
            self.copy_entry(&s, &d, &meta)?;
        }
        Ok(())
    }

    fn copy_entry(&mut self, s: &Path, d: &Path, meta: &Metadata) -> Result<()> {
        let ft = meta.file_type();
        trace!(src = %s.display(), dst = %d.display(), "copy");
        if ft.is_dir() {
            fs::create_dir(d).map_err(|e| Error::io("create directory", d, e))?;
            if mount_id_at(CWD, s, FinalSymlink::NoFollow)? == self.root_mnt {
                self.copy_dir_contents(s, d)?;
            } else {
                warn!(path = %s.display(), "not copying into a mount inside the populate source");
            }
            return apply_meta(s, d, meta);
        }
        if ft.is_symlink() {
            let target = fs::read_link(s).map_err(|e| Error::io("read link", s, e))?;
            std::os::unix::fs::symlink(&target, d).map_err(|e| Error::io("create symlink", d, e))?;
            return apply_meta(s, d, meta);
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                return fs::hard_link(first, d).map_err(|e| Error::io("create hard link", d, e));
            }
            self.links.insert(key, d.to_path_buf());
        }
        if ft.is_file() {
            // Data and metadata through the two open files: no path is looked up again.
            return copy_file(s, d, meta);
        } else {
            // FIFOs, sockets, character and block devices.
            rustix::fs::mknodat(
                CWD,
                d,
                FileType::from_raw_mode(meta.mode()),
                Mode::from_raw_mode(meta.mode() & 0o7777),
                meta.rdev(),
            )
            .map_err(|e| Error::io("create node", d, e))?;
        }
        apply_meta(s, d, meta)
    }
}

/// Copies the regular file `s` (whose metadata is `meta`) to the new file `d`: its data (a reflink where
/// the filesystem can, else its data segments), then owner, mode, xattrs and timestamps, all through
/// the open descriptors.
fn copy_file(s: &Path, d: &Path, meta: &Metadata) -> Result<()> {
    let mut from = OpenOptions::new()
        .read(true)
        .custom_flags(o_nofollow())
        .open(s)
        .map_err(|e| Error::io("open", s, e))?;
    let mut to: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(o_nofollow())
        .open(d)
        .map_err(|e| Error::io("create", d, e))?;
    // One ioctl shares all the data where source and copy are on one filesystem that can (XFS with
    // reflink, btrfs); anything else (EXDEV, EOPNOTSUPP, EINVAL) means "copy". An empty file has none.
    if meta.len() > 0 {
        if rustix::fs::ioctl_ficlone(&to, &from).is_ok() {
            trace!(dst = %d.display(), "reflinked");
        } else {
            match copy_sparse(&from, &to, meta.len()) {
                Ok(()) => {}
                Err(SparseCopy::Unsupported) => {
                    io::copy(&mut from, &mut to).map_err(|e| Error::io("copy into", d, e))?;
                }
                Err(SparseCopy::Io(e)) => return Err(Error::io("copy into", d, e)),
            }
        }
    }
    rustix::fs::fchown(
        &to,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
    )
    .map_err(|e| Error::io("chown", d, io::Error::from(e)))?;
    rustix::fs::fchmod(&to, Mode::from_raw_mode(meta.mode() & 0o7777))
        .map_err(|e| Error::io("chmod", d, io::Error::from(e)))?;
    copy_xattrs(XattrsOf::Fd(from.as_fd()), s, XattrsOf::Fd(to.as_fd()), d)?;
    rustix::fs::futimens(&to, &timestamps(meta)).map_err(|e| Error::io("set times of", d, io::Error::from(e)))
}

/// Why [`copy_sparse`] gave up.
enum SparseCopy {
    /// The source's filesystem cannot say where its data is (`SEEK_DATA`): copy it all.
    Unsupported,
    /// A read or write failed.
    Io(io::Error),
}

impl From<io::Error> for SparseCopy {
    fn from(e: io::Error) -> SparseCopy {
        SparseCopy::Io(e)
    }
}

/// Copies the `len` bytes of `from` into the empty `to`, only its data segments (`SEEK_DATA` /
/// `SEEK_HOLE`): a hole of the source stays a hole.
fn copy_sparse(from: &File, to: &File, len: u64) -> std::result::Result<(), SparseCopy> {
    use rustix::fs::SeekFrom;
    use rustix::io::Errno;
    let mut off = 0u64;
    // The end of the data written so far: `to`'s size.
    let mut written = 0u64;
    let mut kernel_copy = true;
    let mut buf = Vec::new();
    while off < len {
        let start = match rustix::fs::seek(from, SeekFrom::Data(off)) {
            Ok(p) => p,
            Err(Errno::NXIO) => break, // only a hole is left
            Err(Errno::INVAL | Errno::NOTSUP) if off == 0 => return Err(SparseCopy::Unsupported),
            Err(e) => return Err(io::Error::from(e).into()),
        };
        let end = rustix::fs::seek(from, SeekFrom::Hole(start))
            .map_err(io::Error::from)?
            .min(len);
        let (mut i, mut o) = (start, start);
        while i < end {
            let want = (end - i).min(1 << 30) as usize;
            if kernel_copy {
                match rustix::fs::copy_file_range(from, Some(&mut i), to, Some(&mut o), want) {
                    Ok(0) => break, // the file shrank meanwhile
                    Ok(_) => continue,
                    Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::NOTSUP) => kernel_copy = false,
                    Err(e) => return Err(io::Error::from(e).into()),
                }
            }
            use std::os::unix::fs::FileExt;
            buf.resize(want.min(256 << 10), 0);
            let n = from.read_at(&mut buf, i)?;
            if n == 0 {
                break;
            }
            to.write_all_at(&buf[..n], o)?;
            i += n as u64;
            o += n as u64;
        }
        written = written.max(o);
        off = end.max(start + 1);
    }
    // The size, with a trailing hole if there is one (the data written may reach it already).
    if written < len {
        to.set_len(len)?;
    }
    Ok(())
}

/// `O_NOFOLLOW`, for std's `OpenOptionsExt::custom_flags`.
fn o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Gives `d` the owner, mode (not for symlinks), xattrs and timestamps of `s`, in that order (chown
/// clears set-id bits, and every change but the timestamps updates the ctime only). For what is not a
/// regular file (those go through [`copy_file`]).
fn apply_meta(s: &Path, d: &Path, meta: &Metadata) -> Result<()> {
    std::os::unix::fs::lchown(d, Some(meta.uid()), Some(meta.gid())).map_err(|e| Error::io("chown", d, e))?;
    let is_link = meta.file_type().is_symlink();
    if !is_link {
        fs::set_permissions(d, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| Error::io("chmod", d, e))?;
    }
    copy_xattrs(XattrsOf::Path(s), s, XattrsOf::Path(d), d)?;
    rustix::fs::utimensat(CWD, d, &timestamps(meta), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| Error::io("set times of", d, e))
}

/// The access and modification times of `meta`, to the nanosecond.
fn timestamps(meta: &Metadata) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    }
}

/// Copies every xattr of `from` (the file at `s`) to `to` (the file at `d`; the paths name them in
/// errors).
fn copy_xattrs(from: XattrsOf<'_>, s: &Path, to: XattrsOf<'_>, d: &Path) -> Result<()> {
    let names = from
        .names()
        .map_err(|e| Error::io("list xattrs of", s, io::Error::from(e)))?;
    for name in &names {
        let name = OsStr::from_bytes(name);
        let Some(value) = from
            .get(name)
            .map_err(|e| Error::io("read xattr of", s, io::Error::from(e)))?
        else {
            continue;
        };
        match to.set(name, &value) {
            Ok(()) => {}
            Err(rustix::io::Errno::NOTSUP) => {
                warn!(path = %d.display(), xattr = ?name, "the volume's filesystem does not support this xattr; skipped");
            }
            Err(e) => return Err(Error::io("set xattr on", d, io::Error::from(e))),
        }
    }
    Ok(())
}
