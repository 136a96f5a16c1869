//! Streaming, hostile-input-safe extraction of a layer tar into a staging directory.
//!
//! Every file is created relative to a directory descriptor, one path component at a time, with
//! `O_NOFOLLOW`: nothing is ever resolved through a symlink, so no entry can land outside the layer
//! directory. See the crate docs for the rules on which entries are refused.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc::{SyncSender, sync_channel};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use tar::EntryType;

use crate::error::{Error, Result};
use crate::id::LayerId;
use crate::rules::{OVERLAY_OPAQUE_XATTR, Whiteout, decode_whiteout, normalise};

/// A reader that hashes (sha256) and counts everything read through it.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R) -> HashReader<R> {
        HashReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream (hashing it) and returns the digest and the byte count.
    pub(crate) fn finish(mut self) -> io::Result<(LayerId, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((LayerId::from_digest(&self.hasher.finalize()), self.count))
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that only hashes and counts: how a canonical stream is identified without storing it.
pub(crate) struct HashWriter {
    hasher: Sha256,
    count: u64,
}

impl HashWriter {
    pub(crate) fn new() -> HashWriter {
        HashWriter {
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub(crate) fn finish(self) -> (LayerId, u64) {
        (LayerId::from_digest(&self.hasher.finalize()), self.count)
    }
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.count += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Extracts the tar stream `src` into the existing, empty directory `dest`, then sets each
/// directory's mode and times. Returns the number of members (extension headers not counted).
/// Durability is the caller's: one `syncfs` before its commit.
pub(crate) fn unpack(src: impl Read, dest: &Path) -> Result<u64> {
    let root = rustix::fs::open(dest, DIR_FLAGS, Mode::empty())
        .map_err(|e| Error::io("open staging directory", dest, e))?;
    let st = rustix::fs::fstat(&root).map_err(|e| Error::io("stat staging directory", dest, e))?;
    let creds = Creds::probe(&root, &st);
    let early = match rustix::fs::fstatfs(&root) {
        Ok(fs) => !matches!(fs.f_type as u64, TMPFS_MAGIC | RAMFS_MAGIC),
        Err(_) => true,
    };
    tracing::debug!(dest = %dest.display(), skip_chown = creds.skip_chown, umask = ?creds.umask, early_writeback = early, "unpack");
    let flusher_fd = match early {
        true => Some(root.try_clone().map_err(|e| Error::io("dup", dest, e))?),
        false => None,
    };
    std::thread::scope(|s| {
        // Made in here: were extraction to panic, dropping it ends the writeback thread, which
        // the scope waits for.
        let mut u = Unpacker {
            root: Rc::new(root),
            root_gid: st.st_gid,
            stack: Vec::new(),
            dirs: Vec::new(),
            entries: 0,
            buf: vec![0u8; COPY_BUF],
            creds,
            kick: None,
            dirty: 0,
        };
        if let Some(fd) = flusher_fd {
            // Writeback started early, on another thread, while extraction goes on: the syncfs
            // of the commit then finds little left to write. It makes nothing durable that the
            // commit's syncfs would not; errors are left for that one to report.
            let (tx, rx) = sync_channel::<()>(1);
            u.kick = Some(tx);
            std::thread::Builder::new()
                .name("layer-writeback".into())
                .spawn_scoped(s, move || {
                    while rx.recv().is_ok() {
                        let _ = rustix::fs::syncfs(&fd);
                    }
                })
                .map_err(|e| Error::io("start a thread for", "writeback", e))?;
        }
        let extracted = (|| -> Result<()> {
            let mut ar = tar::Archive::new(src);
            for e in ar.entries().map_err(bad_stream)? {
                u.entry(&mut e.map_err(bad_stream)?)?;
            }
            Ok(())
        })();
        // Ends the writeback thread (after the syncfs it may be running), also on an error.
        u.kick = None;
        extracted?;
        u.fixup_dirs()?;
        Ok(u.entries)
    })
}

/// Filesystems without writeback.
const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// Bytes written between two kicks of the early writeback.
const KICK_BYTES: u64 = 64 << 20;

fn bad_stream(e: io::Error) -> Error {
    Error::Corrupt {
        what: "layer stream".into(),
        reason: format!("not a valid tar archive: {e}"),
    }
}

/// How directories are opened: for reading (so xattrs can be set through the fd), never through a
/// symlink.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The copy buffer for file contents (one per unpack).
const COPY_BUF: usize = 256 << 10;

/// Directories kept open along the current path: enough for any real layer; deeper paths are
/// opened component by component without being kept.
const MAX_OPEN: usize = 64;

/// What a new inode gets without being told, so that calls that would change nothing are skipped.
struct Creds {
    /// Our effective user and group: the owner and group of what we create.
    uid: u32,
    gid: u32,
    /// False when new inodes may not get `uid` (the staging root is not ours) or may inherit a
    /// group from a set-group-ID staging root: then every inode is chowned.
    skip_chown: bool,
    /// The umask, when known and no default ACL decides modes instead: a create with the final
    /// mode then needs no chmod. `None`: every inode is chmodded.
    umask: Option<u32>,
}

impl Creds {
    fn probe(root: &OwnedFd, st: &rustix::fs::Stat) -> Creds {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        let skip_chown = st.st_uid == uid && st.st_mode & 0o2000 == 0;
        let acl = !matches!(
            rustix::fs::fgetxattr(root, "system.posix_acl_default", &mut [0u8; 0][..]),
            Err(Errno::NODATA | Errno::NOTSUP)
        );
        let umask = if acl { None } else { read_umask() };
        Creds {
            uid,
            gid,
            skip_chown,
            umask,
        }
    }

    /// The mode to create an inode with, and whether a chmod must follow.
    fn create_mode(&self, mode: u32) -> (Mode, bool) {
        match self.umask {
            Some(um) if mode & !0o777 == 0 && mode & um == 0 => (Mode::from_raw_mode(mode), false),
            _ => (Mode::from_raw_mode(0o600), true),
        }
    }

    /// Whether an inode just created in a directory of group `parent_gid` needs a chown to get
    /// `meta`'s owner. Its group is ours, or the directory's (set-group-ID directory, `grpid`
    /// mount): when both are `meta.gid`, nothing changes.
    fn must_chown(&self, meta: &Meta, parent_gid: Option<u32>) -> bool {
        !(self.skip_chown && meta.uid == self.uid && meta.gid == self.gid && parent_gid == Some(self.gid))
    }
}

/// The process umask, from /proc/self/status (reading it with umask(2) would change it for every
/// thread for a moment).
fn read_umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Dir,
    File,
    Symlink,
    Char,
    Block,
    Fifo,
}

impl Kind {
    fn of(ft: FileType) -> Option<Kind> {
        Some(match ft {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File,
            FileType::Symlink => Kind::Symlink,
            FileType::CharacterDevice => Kind::Char,
            FileType::BlockDevice => Kind::Block,
            FileType::Fifo => Kind::Fifo,
            _ => return None,
        })
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File => "regular file",
            Kind::Symlink => "symlink",
            Kind::Char => "character device",
            Kind::Block => "block device",
            Kind::Fifo => "fifo",
        }
    }
}

/// Ownership, mode, time and xattrs of one entry.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
    xattrs: Vec<(String, Vec<u8>)>,
}

/// An open directory on the current path, and its group when known.
struct OpenDir {
    name: Vec<u8>,
    fd: Rc<OwnedFd>,
    gid: Option<u32>,
}

/// A directory descriptor and its group (when known).
type Parent = (Rc<OwnedFd>, Option<u32>);

struct Unpacker {
    root: Rc<OwnedFd>,
    root_gid: u32,
    /// The directories along the last parent path, root first: entries of one directory usually
    /// come together and a directory's entry comes just before its contents, so most entries
    /// open nothing.
    stack: Vec<OpenDir>,
    /// Directories whose mode and times are set at the end: (path, mode, mtime).
    dirs: Vec<(Vec<u8>, u32, (i64, u32))>,
    entries: u64,
    /// The copy buffer for file contents (one per unpack: memory stays flat).
    buf: Vec<u8>,
    creds: Creds,
    /// Starts a writeback of the filesystem (on a filesystem that has one).
    kick: Option<SyncSender<()>>,
    /// Bytes written since the last kick.
    dirty: u64,
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `create`; when the name is taken, lets `make_room` clear it (or refuse) and runs it again.
fn create_or_replace<T>(
    mut create: impl FnMut() -> rustix::io::Result<T>,
    make_room: impl FnOnce() -> Result<bool>,
    op: &'static str,
    shown: &str,
) -> Result<T> {
    match create() {
        Err(Errno::EXIST) => {
            make_room()?;
            create().map_err(|e| Error::io(op, shown, e))
        }
        r => r.map_err(|e| Error::io(op, shown, e)),
    }
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Unpacker {
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let ty = e.header().entry_type();
        let raw = e.path_bytes().into_owned();
        let shown = show(&raw);
        if matches!(
            ty,
            EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName | EntryType::GNULongLink
        ) {
            tracing::trace!(entry = %shown, "skipping extension header");
            return Ok(());
        }
        self.entries += 1;
        tracing::trace!(entry = %shown, ty = ?ty, "extract");
        let meta = read_meta(e, &shown)?;
        let comps = normalise(&raw).map_err(|r| Error::rejected(&shown, r))?;
        let kind = match ty {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Some(Kind::File),
            EntryType::Directory => Some(Kind::Dir),
            EntryType::Symlink => Some(Kind::Symlink),
            EntryType::Char => Some(Kind::Char),
            EntryType::Block => Some(Kind::Block),
            EntryType::Fifo => Some(Kind::Fifo),
            EntryType::Link => None,
            other => {
                return Err(Error::rejected(
                    &shown,
                    format!("unsupported entry type {:?}", other.as_byte() as char),
                ));
            }
        };
        let Some((last, parent)) = comps.split_last() else {
            if kind == Some(Kind::Dir) {
                // `./` (or `/`): the layer root's own metadata.
                let root = self.root.clone();
                self.set_dir_meta(&shown, &root, true, Vec::new(), &meta)?;
                return Ok(());
            }
            return Err(Error::rejected(
                &shown,
                "names the layer root (`.` or `/`); only a directory entry may",
            ));
        };
        let whiteout = decode_whiteout(last).map_err(|r| Error::rejected(&shown, r))?;
        let (dir, parent_gid) = self.parent(&shown, parent, true)?;
        match whiteout {
            Whiteout::Internal => {
                tracing::debug!(entry = %shown, "skipping AUFS-internal whiteout name");
                Ok(())
            }
            Whiteout::Opaque => rustix::fs::fsetxattr(&*dir, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|e| Error::io("set trusted.overlay.opaque on the directory of", &shown, e)),
            Whiteout::Delete(name) => {
                let (mode, chmod) = self.creds.create_mode(meta.mode);
                create_or_replace(
                    || rustix::fs::mknodat(&*dir, name, FileType::CharacterDevice, mode, 0),
                    || self.make_room(&shown, &dir, name, Kind::Char),
                    "create whiteout for",
                    &shown,
                )?;
                self.set_node_meta(&shown, &dir, parent_gid, name, &meta, Some(chmod))
            }
            Whiteout::None => match kind {
                None => self.hard_link(e, &shown, &dir, parent, last),
                Some(kind) => self.create(e, &shown, (&dir, parent_gid), parent, last, kind, &meta),
            },
        }
    }

    /// Opens (creating missing directories when `create`) the directory `comps` below the root,
    /// never following a symlink. Reuses the directories open along the previous path.
    fn parent(&mut self, shown: &str, comps: &[&[u8]], create: bool) -> Result<Parent> {
        let keep = self
            .stack
            .iter()
            .zip(comps)
            .take_while(|(open, c)| open.name == **c)
            .count();
        self.stack.truncate(keep);
        // Beyond MAX_OPEN, the rest of the path is opened without being kept.
        let mut deep: Option<Parent> = None;
        for (i, c) in comps.iter().enumerate().skip(keep) {
            let (at, _) = match (&deep, self.stack.last()) {
                (Some(d), _) => d.clone(),
                (None, Some(open)) => (open.fd.clone(), open.gid),
                (None, None) => (self.root.clone(), Some(self.root_gid)),
            };
            let fd = match rustix::fs::openat(&*at, *c, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    let (mode, chmod) = self.creds.create_mode(0o755);
                    rustix::fs::mkdirat(&*at, *c, mode)
                        .and_then(|()| match chmod {
                            true => {
                                rustix::fs::chmodat(&*at, *c, Mode::from_raw_mode(0o755), AtFlags::empty())
                            }
                            false => Ok(()),
                        })
                        .and_then(|()| rustix::fs::openat(&*at, *c, DIR_FLAGS, Mode::empty()))
                        .map_err(|e| Error::io("create parent directory for", shown, e))?
                }
                Err(Errno::NOENT) => {
                    return Err(Error::rejected(
                        shown,
                        format!("`{}` does not exist in this layer", show(&join(&comps[..=i]))),
                    ));
                }
                Err(Errno::NOTDIR | Errno::LOOP) => {
                    let prefix = show(&join(&comps[..=i]));
                    let is_link = rustix::fs::statat(&*at, *c, AtFlags::SYMLINK_NOFOLLOW)
                        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
                        .unwrap_or(false);
                    return Err(Error::rejected(
                        shown,
                        if is_link {
                            format!(
                                "its path goes through `{prefix}`, a symlink extracted earlier in this layer"
                            )
                        } else {
                            format!("its path goes through `{prefix}`, which is not a directory")
                        },
                    ));
                }
                Err(e) => return Err(Error::io("open parent directory of", shown, e)),
            };
            // The group decides whether new inodes need a chown; only worth a stat when they may not.
            let gid = if self.creds.skip_chown {
                rustix::fs::fstat(&fd).ok().map(|st| st.st_gid)
            } else {
                None
            };
            let fd = Rc::new(fd);
            if deep.is_none() && self.stack.len() < MAX_OPEN {
                self.stack.push(OpenDir {
                    name: c.to_vec(),
                    fd,
                    gid,
                });
            } else {
                deep = Some((fd, gid));
            }
        }
        Ok(match (deep, self.stack.last()) {
            (Some(d), _) => d,
            (None, Some(open)) => (open.fd.clone(), open.gid),
            (None, None) => (self.root.clone(), Some(self.root_gid)),
        })
    }

    /// Checks what already exists at `name`; removes it when `kind` may replace it (same kind, not a
    /// directory), refuses a conflict. Returns true when a directory is already there (merge).
    fn make_room(&self, shown: &str, dir: &OwnedFd, name: &[u8], kind: Kind) -> Result<bool> {
        let old = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Kind::of(FileType::from_raw_mode(st.st_mode)),
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(Error::io("stat", shown, e)),
        };
        match old {
            Some(Kind::Dir) if kind == Kind::Dir => Ok(true),
            Some(old) if old == kind => {
                tracing::trace!(entry = %shown, "later entry replaces an earlier one of the same type");
                rustix::fs::unlinkat(dir, name, AtFlags::empty())
                    .map_err(|e| Error::io("replace", shown, e))?;
                Ok(false)
            }
            Some(old) => Err(Error::rejected(
                shown,
                format!(
                    "conflicts with an earlier entry of the same name: {} then {}",
                    old.noun(),
                    kind.noun()
                ),
            )),
            None => Err(Error::rejected(
                shown,
                "an earlier entry of the same name has an unexpected type",
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn create<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        shown: &str,
        (dir, parent_gid): (&Rc<OwnedFd>, Option<u32>),
        parent: &[&[u8]],
        name: &[u8],
        kind: Kind,
        meta: &Meta,
    ) -> Result<()> {
        match kind {
            Kind::Dir => {
                let existed = match rustix::fs::mkdirat(&**dir, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => false,
                    Err(Errno::EXIST) => self.make_room(shown, dir, name, Kind::Dir)?,
                    Err(e) => return Err(Error::io("create directory", shown, e)),
                };
                let fd = rustix::fs::openat(&**dir, name, DIR_FLAGS, Mode::empty())
                    .map_err(|e| Error::io("open directory", shown, e))?;
                let mut path = join(parent);
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(name);
                // A merged directory may have had another owner: chown it whatever it is.
                let chown = existed || self.creds.must_chown(meta, parent_gid);
                self.set_dir_meta(shown, &fd, chown, path, meta)?;
                // Its contents most likely come next: keep it open as the current directory.
                if self.stack.len() == parent.len() && self.stack.len() < MAX_OPEN {
                    self.stack.push(OpenDir {
                        name: name.to_vec(),
                        fd: Rc::new(fd),
                        gid: Some(if chown { meta.gid } else { self.creds.gid }),
                    });
                }
                Ok(())
            }
            Kind::File => {
                let (mode, chmod) = self.creds.create_mode(meta.mode);
                let flags =
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = create_or_replace(
                    || rustix::fs::openat(&**dir, name, flags, mode),
                    || self.make_room(shown, dir, name, Kind::File),
                    "create file",
                    shown,
                )?;
                self.copy_data(e, shown, &fd)?;
                if self.creds.must_chown(meta, parent_gid) {
                    rustix::fs::fchown(&fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
                        .map_err(|e| Error::io("chown", shown, e))?;
                }
                if chmod {
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                        .map_err(|e| Error::io("chmod", shown, e))?;
                }
                for (k, v) in &meta.xattrs {
                    rustix::fs::fsetxattr(&fd, k.as_str(), v, XattrFlags::empty())
                        .map_err(|e| Error::xattr(k, shown, e))?;
                }
                rustix::fs::futimens(&fd, &times(meta.mtime)).map_err(|e| Error::io("set times of", shown, e))
            }
            Kind::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| Error::rejected(shown, "symlink without a target"))?
                    .into_owned();
                if target.is_empty() || target.contains(&0) {
                    return Err(Error::rejected(
                        shown,
                        "symlink target is empty or contains a NUL byte",
                    ));
                }
                create_or_replace(
                    || rustix::fs::symlinkat(target.as_slice(), &**dir, name),
                    || self.make_room(shown, dir, name, Kind::Symlink),
                    "create symlink",
                    shown,
                )?;
                self.set_node_meta(shown, dir, parent_gid, name, meta, None)
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let h = e.header();
                let dev = if kind == Kind::Fifo {
                    0
                } else {
                    let major = h.device_major().ok().flatten().unwrap_or(0);
                    let minor = h.device_minor().ok().flatten().unwrap_or(0);
                    rustix::fs::makedev(major, minor)
                };
                let ft = match kind {
                    Kind::Char => FileType::CharacterDevice,
                    Kind::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                tracing::trace!(entry = %shown, ?ft, "mknodat");
                let (mode, chmod) = self.creds.create_mode(meta.mode);
                create_or_replace(
                    || rustix::fs::mknodat(&**dir, name, ft, mode, dev),
                    || self.make_room(shown, dir, name, kind),
                    "create node",
                    shown,
                )?;
                self.set_node_meta(shown, dir, parent_gid, name, meta, Some(chmod))
            }
        }
    }

    /// Copies the entry's data into `fd`, in writes as large as the copy buffer.
    fn copy_data<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, shown: &str, fd: &OwnedFd) -> Result<()> {
        loop {
            let mut n = 0;
            while n < self.buf.len() {
                match e.read(&mut self.buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(bad_stream(err)),
                }
            }
            if n == 0 {
                return Ok(());
            }
            write_all(fd, &self.buf[..n]).map_err(|err| Error::io("write file", shown, err))?;
            self.dirty += n as u64;
            if self.dirty >= KICK_BYTES
                && let Some(kick) = &self.kick
            {
                // A writeback already running takes this one's place.
                let _ = kick.try_send(());
                self.dirty = 0;
            }
            if n < self.buf.len() {
                return Ok(());
            }
        }
    }

    fn hard_link<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        shown: &str,
        dir: &OwnedFd,
        parent: &[&[u8]],
        name: &[u8],
    ) -> Result<()> {
        let target = e
            .link_name_bytes()
            .ok_or_else(|| Error::rejected(shown, "hard link without a target"))?
            .into_owned();
        let tcomps = normalise(&target).map_err(|r| {
            Error::rejected(
                shown,
                format!("hard link target `{}` leaves the layer: {r}", show(&target)),
            )
        })?;
        let Some((tname, tparent)) = tcomps.split_last() else {
            return Err(Error::rejected(shown, "hard link to the layer root"));
        };
        let missing = || {
            Error::rejected(
                shown,
                format!(
                    "hard link target `{}` was not extracted (earlier) in this layer",
                    show(&target)
                ),
            )
        };
        let (tdir, _) = match self.parent(shown, tparent, false) {
            Ok(d) => d,
            Err(Error::Rejected { reason, .. }) if reason.contains("does not exist") => return Err(missing()),
            Err(e) => return Err(e),
        };
        let st = match rustix::fs::statat(&*tdir, *tname, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Err(missing()),
            Err(e) => return Err(Error::io("stat hard link target of", shown, e)),
        };
        let kind = match Kind::of(FileType::from_raw_mode(st.st_mode)) {
            Some(Kind::Dir) | None => {
                return Err(Error::rejected(
                    shown,
                    format!("hard link target `{}` is a directory", show(&target)),
                ));
            }
            Some(k) => k,
        };
        if tparent == parent && *tname == name {
            return Err(Error::rejected(shown, "hard link to itself"));
        }
        create_or_replace(
            || rustix::fs::linkat(&*tdir, *tname, dir, name, AtFlags::empty()),
            || self.make_room(shown, dir, name, kind),
            "create hard link",
            shown,
        )
    }

    fn set_dir_meta(
        &mut self,
        shown: &str,
        fd: &OwnedFd,
        chown: bool,
        path: Vec<u8>,
        meta: &Meta,
    ) -> Result<()> {
        if chown {
            rustix::fs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
                .map_err(|e| Error::io("chown", shown, e))?;
        }
        for (k, v) in &meta.xattrs {
            rustix::fs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty())
                .map_err(|e| Error::xattr(k, shown, e))?;
            if k == "system.posix_acl_default" {
                // Modes of what is created below now come from this ACL, not the umask.
                self.creds.umask = None;
            }
        }
        self.dirs.push((path, meta.mode, meta.mtime));
        Ok(())
    }

    /// Owner, mode (`chmod`: None for a symlink, else whether the create left it to do), xattrs
    /// and times of a non-directory, non-regular inode just created as `name` in `dir`.
    fn set_node_meta(
        &self,
        shown: &str,
        dir: &OwnedFd,
        parent_gid: Option<u32>,
        name: &[u8],
        meta: &Meta,
        chmod: Option<bool>,
    ) -> Result<()> {
        if self.creds.must_chown(meta, parent_gid) {
            rustix::fs::chownat(
                dir,
                name,
                Some(uid(meta.uid)),
                Some(gid(meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| Error::io("chown", shown, e))?;
        }
        if chmod == Some(true) {
            // Not a symlink (we just created it in a directory only we write to): chmodat cannot follow.
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(meta.mode), AtFlags::empty())
                .map_err(|e| Error::io("chmod", shown, e))?;
        }
        if !meta.xattrs.is_empty() {
            let mut p = mountkit_safefs::inroot::fd_path(dir.as_fd())
                .into_os_string()
                .into_encoded_bytes();
            p.push(b'/');
            p.extend_from_slice(name);
            for (k, v) in &meta.xattrs {
                rustix::fs::lsetxattr(p.as_slice(), k.as_str(), v, XattrFlags::empty())
                    .map_err(|e| Error::xattr(k, shown, e))?;
            }
        }
        rustix::fs::utimensat(dir, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("set times of", shown, e))
    }

    /// Sets each extracted directory's mode and times, now that nothing more is created in them.
    /// Deepest first (reverse path order), so that a directory made unreadable or unsearchable
    /// is changed after everything below it; of several entries for one directory the last wins.
    fn fixup_dirs(&mut self) -> Result<()> {
        let mut dirs = std::mem::take(&mut self.dirs);
        // Stable: the entries of one path keep their archive order.
        dirs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut done: Option<Vec<u8>> = None;
        for (path, mode, mtime) in dirs.into_iter().rev() {
            if done.as_deref() == Some(path.as_slice()) {
                continue;
            }
            let shown = show(&path);
            let mode = Mode::from_raw_mode(mode);
            if path.is_empty() {
                rustix::fs::fchmod(&*self.root, mode).map_err(|e| Error::io("chmod", &shown, e))?;
                rustix::fs::futimens(&*self.root, &times(mtime))
                    .map_err(|e| Error::io("set times of", &shown, e))?;
            } else {
                let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
                let (last, parent) = comps.split_last().expect("non-empty path");
                let (dir, _) = self.parent(&shown, parent, false)?;
                // A directory of this unpack stays one (nothing may replace it): chmodat cannot
                // follow a symlink here.
                rustix::fs::chmodat(&*dir, *last, mode, AtFlags::empty())
                    .map_err(|e| Error::io("chmod", &shown, e))?;
                rustix::fs::utimensat(&*dir, *last, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| Error::io("set times of", &shown, e))?;
            }
            done = Some(path);
        }
        self.stack.clear();
        Ok(())
    }
}

fn uid(n: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(n)
}

fn gid(n: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(n)
}

fn times((sec, nsec): (i64, u32)) -> Timestamps {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Parses a PAX time (`"1700000000"`, `"1700000000.5"`, `"-1.25"`) into seconds and nanoseconds.
pub(crate) fn parse_pax_time(s: &str) -> Option<(i64, u32)> {
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: u32 = digits.parse().ok()?;
    if sec < 0 && nsec > 0 {
        // -1.25 means 1.25 s before the epoch: (-2, 0.75 s).
        return Some((sec - 1, 1_000_000_000 - nsec));
    }
    Some((sec, nsec))
}

fn read_meta<R: Read>(e: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta> {
    let h = e.header();
    let bad = |field: &str, err: io::Error| Error::rejected(shown, format!("bad {field} field: {err}"));
    let mode = h.mode().map_err(|err| bad("mode", err))? & 0o7777;
    let mut uid64 = h.uid().map_err(|err| bad("uid", err))?;
    let mut gid64 = h.gid().map_err(|err| bad("gid", err))?;
    let mut mtime = (
        h.mtime().map_err(|err| bad("mtime", err))?.min(i64::MAX as u64) as i64,
        0,
    );
    let mut xattrs = Vec::new();
    if let Some(exts) = e.pax_extensions().map_err(|err| bad("PAX header", err))? {
        for ext in exts {
            let ext = ext.map_err(|err| bad("PAX header", err))?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            let text = std::str::from_utf8(value).unwrap_or("");
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if name.starts_with("trusted.overlay.") {
                    // overlayfs' own bookkeeping (redirects, metacopy...) must never come from a tar.
                    tracing::debug!(entry = %shown, xattr = name, "dropping overlay xattr from archive");
                    continue;
                }
                xattrs.push((name.to_string(), value.to_vec()));
            } else {
                match key {
                    "mtime" => {
                        mtime = parse_pax_time(text)
                            .ok_or_else(|| Error::rejected(shown, format!("bad PAX mtime {text:?}")))?
                    }
                    "uid" => {
                        uid64 = text
                            .parse()
                            .map_err(|_| Error::rejected(shown, format!("bad PAX uid {text:?}")))?
                    }
                    "gid" => {
                        gid64 = text
                            .parse()
                            .map_err(|_| Error::rejected(shown, format!("bad PAX gid {text:?}")))?
                    }
                    _ => {}
                }
            }
        }
    }
    let uid =
        u32::try_from(uid64).map_err(|_| Error::rejected(shown, format!("uid {uid64} is out of range")))?;
    let gid =
        u32::try_from(gid64).map_err(|_| Error::rejected(shown, format!("gid {gid64} is out of range")))?;
    Ok(Meta {
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(parse_pax_time("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(parse_pax_time("1.1234567891"), Some((1, 123_456_789)));
        assert_eq!(parse_pax_time("-1.25"), Some((-2, 750_000_000)));
        assert_eq!(parse_pax_time("x"), None);
        assert_eq!(parse_pax_time("1.x"), None);
    }
}
