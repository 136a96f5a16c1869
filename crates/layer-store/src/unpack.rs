//! Streaming, hostile-input-safe extraction of a layer tar into a staging directory.
//!
//! Every file is created relative to a directory descriptor, one path component at a time, with
//! `O_NOFOLLOW`: nothing is ever resolved through a symlink, so no entry can land outside the layer
//! directory. See the crate docs for the rules on which entries are refused.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

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

/// What an unpack produced.
pub(crate) struct Unpacked {
    /// sha256 of the whole uncompressed stream.
    pub id: LayerId,
    /// Bytes in the uncompressed stream.
    pub size: u64,
    /// Members in the archive (PAX/GNU extension headers not counted).
    pub entries: u64,
}

/// Extracts the tar stream `src` into the existing, empty directory `dest`, hashing the stream,
/// then fixes directory modes and times and calls `syncfs` once.
pub(crate) fn unpack(src: impl Read, dest: &Path) -> Result<Unpacked> {
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open staging directory", dest, e))?;
    let mut u = Unpacker {
        root,
        cache: None,
        dirs: Vec::new(),
        entries: 0,
        buf: vec![0u8; 1 << 18],
    };
    let mut hr = HashReader::new(src);
    {
        let mut ar = tar::Archive::new(&mut hr);
        let entries = ar.entries().map_err(bad_stream)?;
        for e in entries {
            let mut e = e.map_err(bad_stream)?;
            u.entry(&mut e)?;
        }
    }
    let (id, size) = hr.finish().map_err(bad_stream)?;
    if size == 0 {
        return Err(Error::Corrupt {
            what: "layer stream".into(),
            reason: "is empty (not a tar archive)".into(),
        });
    }
    u.fixup_dirs()?;
    tracing::debug!(dest = %dest.display(), "syncfs before commit");
    rustix::fs::syncfs(&u.root).map_err(|e| Error::io("syncfs", dest, e))?;
    Ok(Unpacked {
        id,
        size,
        entries: u.entries,
    })
}

fn bad_stream(e: io::Error) -> Error {
    Error::Corrupt {
        what: "layer stream".into(),
        reason: format!("not a valid tar archive: {e}"),
    }
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

struct Unpacker {
    root: OwnedFd,
    /// The last parent directory used: entries of one directory usually come together.
    cache: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Directories whose mode and times are set at the end: (path, mode, mtime).
    dirs: Vec<(Vec<u8>, u32, (i64, u32))>,
    entries: u64,
    /// The copy buffer for file contents (one per unpack: memory stays flat).
    buf: Vec<u8>,
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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
                let fd = self
                    .root
                    .try_clone()
                    .map_err(|e| Error::io("dup", "layer root", e))?;
                self.set_dir_meta(&shown, &fd, Vec::new(), &meta)?;
                return Ok(());
            }
            return Err(Error::rejected(
                &shown,
                "names the layer root (`.` or `/`); only a directory entry may",
            ));
        };
        let whiteout = decode_whiteout(last).map_err(|r| Error::rejected(&shown, r))?;
        let dir = self.parent(&shown, parent, true)?;
        match whiteout {
            Whiteout::Internal => {
                tracing::debug!(entry = %shown, "skipping AUFS-internal whiteout name");
                Ok(())
            }
            Whiteout::Opaque => {
                let p = format!("{}", mountkit_safefs::inroot::fd_path(dir.as_fd()).display());
                rustix::fs::setxattr(&p, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(|e| Error::io("set trusted.overlay.opaque on the directory of", &shown, e))
            }
            Whiteout::Delete(name) => {
                self.make_room(&shown, &dir, name, Kind::Char)?;
                rustix::fs::mknodat(
                    &*dir,
                    name,
                    FileType::CharacterDevice,
                    Mode::from_raw_mode(0o600),
                    0,
                )
                .map_err(|e| Error::io("create whiteout for", &shown, e))?;
                self.set_node_meta(&shown, &dir, name, &meta, false)
            }
            Whiteout::None => match kind {
                None => self.hard_link(e, &shown, &dir, parent, last),
                Some(kind) => self.create(e, &shown, &dir, parent, last, kind, &meta),
            },
        }
    }

    /// Opens (creating missing directories when `create`) the directory `comps` below the root,
    /// never following a symlink.
    fn parent(&mut self, shown: &str, comps: &[&[u8]], create: bool) -> Result<Rc<OwnedFd>> {
        let key = join(comps);
        if let Some((k, fd)) = &self.cache {
            if *k == key {
                return Ok(fd.clone());
            }
        }
        let mut cur: Option<OwnedFd> = None;
        for (i, c) in comps.iter().enumerate() {
            let at: BorrowedFd<'_> = cur.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let next = match rustix::fs::openat(at, *c, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => rustix::fs::mkdirat(at, *c, Mode::from_raw_mode(0o755))
                    .and_then(|()| rustix::fs::chmodat(at, *c, Mode::from_raw_mode(0o755), AtFlags::empty()))
                    .and_then(|()| rustix::fs::openat(at, *c, flags, Mode::empty()))
                    .map_err(|e| Error::io("create parent directory for", shown, e))?,
                Err(Errno::NOENT) => {
                    return Err(Error::rejected(
                        shown,
                        format!("`{}` does not exist in this layer", show(&join(&comps[..=i]))),
                    ));
                }
                Err(Errno::NOTDIR | Errno::LOOP) => {
                    let prefix = show(&join(&comps[..=i]));
                    let is_link = rustix::fs::statat(at, *c, AtFlags::SYMLINK_NOFOLLOW)
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
            cur = Some(next);
        }
        let fd = Rc::new(match cur {
            Some(fd) => fd,
            None => self
                .root
                .try_clone()
                .map_err(|e| Error::io("dup", "layer root", e))?,
        });
        if create {
            self.cache = Some((key, fd.clone()));
        }
        Ok(fd)
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
        dir: &OwnedFd,
        parent: &[&[u8]],
        name: &[u8],
        kind: Kind,
        meta: &Meta,
    ) -> Result<()> {
        let exists = self.make_room(shown, dir, name, kind)?;
        let mode = Mode::from_raw_mode(0o600);
        match kind {
            Kind::Dir => {
                if !exists {
                    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| Error::io("create directory", shown, e))?;
                }
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::io("open directory", shown, e))?;
                let mut path = join(parent);
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(name);
                self.set_dir_meta(shown, &fd, path, meta)
            }
            Kind::File => {
                let fd = rustix::fs::openat(
                    dir,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    mode,
                )
                .map_err(|e| Error::io("create file", shown, e))?;
                let mut f = std::fs::File::from(fd);
                loop {
                    let n = match e.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                        Err(err) => return Err(bad_stream(err)),
                    };
                    f.write_all(&self.buf[..n])
                        .map_err(|err| Error::io("write file", shown, err))?;
                }
                let fd = OwnedFd::from(f);
                rustix::fs::fchown(&fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
                    .map_err(|e| Error::io("chown", shown, e))?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                    .map_err(|e| Error::io("chmod", shown, e))?;
                for (k, v) in &meta.xattrs {
                    rustix::fs::fsetxattr(&fd, k.as_str(), v, XattrFlags::empty())
                        .map_err(|e| Error::io(xattr_op(k), shown, e))?;
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
                rustix::fs::symlinkat(target.as_slice(), dir, name)
                    .map_err(|e| Error::io("create symlink", shown, e))?;
                self.set_node_meta(shown, dir, name, meta, true)
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
                rustix::fs::mknodat(dir, name, ft, mode, dev)
                    .map_err(|e| Error::io("create node", shown, e))?;
                self.set_node_meta(shown, dir, name, meta, false)
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
        let tdir = match self.parent(shown, tparent, false) {
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
        self.make_room(shown, dir, name, kind)?;
        rustix::fs::linkat(&*tdir, *tname, dir, name, AtFlags::empty())
            .map_err(|e| Error::io("create hard link", shown, e))
    }

    fn set_dir_meta(&mut self, shown: &str, fd: &OwnedFd, path: Vec<u8>, meta: &Meta) -> Result<()> {
        rustix::fs::fchown(fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
            .map_err(|e| Error::io("chown", shown, e))?;
        for (k, v) in &meta.xattrs {
            rustix::fs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty())
                .map_err(|e| Error::io(xattr_op(k), shown, e))?;
        }
        self.dirs.push((path, meta.mode, meta.mtime));
        Ok(())
    }

    fn set_node_meta(
        &self,
        shown: &str,
        dir: &OwnedFd,
        name: &[u8],
        meta: &Meta,
        symlink: bool,
    ) -> Result<()> {
        rustix::fs::chownat(
            dir,
            name,
            Some(uid(meta.uid)),
            Some(gid(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| Error::io("chown", shown, e))?;
        if !symlink {
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
                    .map_err(|e| Error::io(xattr_op(k), shown, e))?;
            }
        }
        rustix::fs::utimensat(dir, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("set times of", shown, e))
    }

    /// Sets each extracted directory's mode and times, now that nothing more is created in them.
    fn fixup_dirs(&mut self) -> Result<()> {
        self.cache = None;
        for (path, mode, mtime) in std::mem::take(&mut self.dirs) {
            let shown = show(&path);
            let fd = if path.is_empty() {
                self.root
                    .try_clone()
                    .map_err(|e| Error::io("dup", "layer root", e))?
            } else {
                let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
                let (last, parent) = comps.split_last().expect("non-empty path");
                let dir = self.parent(&shown, parent, false)?;
                rustix::fs::openat(
                    &*dir,
                    *last,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::io("open directory", &shown, e))?
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| Error::io("chmod", &shown, e))?;
            rustix::fs::futimens(&fd, &times(mtime)).map_err(|e| Error::io("set times of", &shown, e))?;
        }
        Ok(())
    }
}

fn xattr_op(_name: &str) -> &'static str {
    "set an xattr on"
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
