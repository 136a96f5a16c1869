//! Streaming, hostile-input-safe extraction of a layer tar into a staging directory.
//!
//! Every file is created relative to a directory descriptor, one path component at a time, with
//! `O_NOFOLLOW`: nothing is ever resolved through a symlink, so no entry can land outside the layer
//! directory. See the crate docs for the rules on which entries are refused.
//!
//! This file walks the archive and the directories; `create` makes each kind of entry, `meta`
//! reads an entry's ownership, mode, times and xattrs and applies them.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc::{SyncSender, sync_channel};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use crate::error::{Error, Result};
use crate::rules::{OVERLAY_OPAQUE_XATTR, Whiteout, decode_whiteout, normalise};

mod create;
mod meta;

use create::Dest;
use meta::{Creds, read_meta, times};

/// Extracts the tar stream `src` into the existing, empty directory `dest`, then sets each
/// directory's mode and times. Returns the number of members (extension headers not counted).
/// Durability is the caller's: one `syncfs` before its commit.
pub(crate) fn unpack(src: impl Read, dest: &Path) -> Result<u64> {
    unpack_with(src, dest, false)
}

/// [`unpack`] for a plain tree that is not a layer (a volume's content, see
/// [`unpack_tree`](crate::unpack_tree)) when `plain`: names are never whiteouts, absolute member
/// names are refused, and an archive must end with its end-of-archive block (or it is truncated).
pub(crate) fn unpack_with(src: impl Read, dest: &Path, plain: bool) -> Result<u64> {
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
            plain,
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
            let mut src = EofWatch {
                inner: src,
                eof: false,
            };
            for e in tar::Archive::new(&mut src).entries().map_err(bad_stream)? {
                u.entry(&mut e.map_err(bad_stream)?)?;
            }
            // The tar crate ends at a zero block or at the end of the stream; only the first is an
            // archive's end (the second is a stream cut at a member boundary).
            if plain && src.eof {
                return Err(bad_stream(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the archive ends without its end-of-archive block (truncated)",
                )));
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

/// A reader that remembers whether it reached the end of its stream.
struct EofWatch<R> {
    inner: R,
    eof: bool,
}

impl<R: Read> Read for EofWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        Ok(n)
    }
}

/// Filesystems without writeback.
const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

/// Bytes written between two kicks of the early writeback.
const KICK_BYTES: u64 = 64 << 20;

/// A tar parse error: the stream is not a valid archive.
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

/// An open directory on the current path, and its group when known.
struct OpenDir {
    name: Vec<u8>,
    fd: Rc<OwnedFd>,
    gid: Option<u32>,
}

/// A directory descriptor and its group (when known).
type Parent = (Rc<OwnedFd>, Option<u32>);

/// The state of one unpack.
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
    /// A plain tree, not a layer: no whiteouts, no absolute names (see [`unpack_with`]).
    plain: bool,
}

/// Path components joined with `/`.
fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

/// A name for messages.
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

/// Writes all of `data` to `fd`.
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
    /// Extracts one archive member (extension headers are skipped).
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
        if self.plain && raw.first() == Some(&b'/') {
            return Err(Error::rejected(
                &shown,
                "absolute member name: this archive may only hold names relative to its root",
            ));
        }
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
        let whiteout = match self.plain {
            true => Whiteout::None,
            false => decode_whiteout(last).map_err(|r| Error::rejected(&shown, r))?,
        };
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
                Some(kind) => {
                    let to = Dest {
                        shown: &shown,
                        dir: &dir,
                        parent_gid,
                        name: last,
                    };
                    self.create(e, to, parent, kind, &meta)
                }
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
