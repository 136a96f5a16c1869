//! Creating each kind of entry: directories, regular files (with their data), symlinks, device
//! nodes and fifos, hard links; every one relative to its parent directory's descriptor.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use super::meta::{Meta, gid, times, uid};
use super::{
    DIR_FLAGS, KICK_BYTES, Kind, MAX_OPEN, OpenDir, Unpacker, bad_stream, create_or_replace, join, show,
    write_all,
};
use crate::error::{Error, Result};
use crate::rules::normalise;

/// Where an entry is created: the name `name` in the directory `dir` (of group `parent_gid`, when
/// known); `shown` is the entry's name for messages.
#[derive(Clone, Copy)]
pub(super) struct Dest<'a> {
    pub(super) shown: &'a str,
    pub(super) dir: &'a Rc<OwnedFd>,
    pub(super) parent_gid: Option<u32>,
    pub(super) name: &'a [u8],
}

impl Unpacker {
    /// Creates the entry of `kind` at `to` (in the directory at path `parent`), with its data and
    /// metadata.
    pub(super) fn create<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        to: Dest<'_>,
        parent: &[&[u8]],
        kind: Kind,
        meta: &Meta,
    ) -> Result<()> {
        match kind {
            Kind::Dir => self.create_dir(to, parent, meta),
            Kind::File => self.create_file(e, to, meta),
            Kind::Symlink => self.create_symlink(e, to, meta),
            Kind::Char | Kind::Block | Kind::Fifo => self.create_node(e, to, kind, meta),
        }
    }

    /// A directory: made (or merged with one of an earlier entry), its owner and xattrs set now,
    /// its mode and times at the end; kept open as the current directory.
    #[inline]
    fn create_dir(&mut self, to: Dest<'_>, parent: &[&[u8]], meta: &Meta) -> Result<()> {
        let existed = match rustix::fs::mkdirat(&**to.dir, to.name, Mode::from_raw_mode(0o700)) {
            Ok(()) => false,
            Err(Errno::EXIST) => self.make_room(to.shown, to.dir, to.name, Kind::Dir)?,
            Err(e) => return Err(Error::io("create directory", to.shown, e)),
        };
        let fd = rustix::fs::openat(&**to.dir, to.name, DIR_FLAGS, Mode::empty())
            .map_err(|e| Error::io("open directory", to.shown, e))?;
        let mut path = join(parent);
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(to.name);
        // A merged directory may have had another owner: chown it whatever it is.
        let chown = existed || self.creds.must_chown(meta, to.parent_gid);
        self.set_dir_meta(to.shown, &fd, chown, path, meta)?;
        // Its contents most likely come next: keep it open as the current directory.
        if self.stack.len() == parent.len() && self.stack.len() < MAX_OPEN {
            self.stack.push(OpenDir {
                name: to.name.to_vec(),
                fd: Rc::new(fd),
                gid: Some(if chown { meta.gid } else { self.creds.gid }),
            });
        }
        Ok(())
    }

    /// A regular file: created with its data, then its owner, mode, xattrs and times.
    #[inline]
    fn create_file<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, to: Dest<'_>, meta: &Meta) -> Result<()> {
        let (mode, chmod) = self.creds.create_mode(meta.mode);
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = create_or_replace(
            || rustix::fs::openat(&**to.dir, to.name, flags, mode),
            || self.make_room(to.shown, to.dir, to.name, Kind::File),
            "create file",
            to.shown,
        )?;
        self.copy_data(e, to.shown, &fd)?;
        if self.creds.must_chown(meta, to.parent_gid) {
            rustix::fs::fchown(&fd, Some(uid(meta.uid)), Some(gid(meta.gid)))
                .map_err(|e| Error::io("chown", to.shown, e))?;
        }
        if chmod {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(meta.mode))
                .map_err(|e| Error::io("chmod", to.shown, e))?;
        }
        for (k, v) in &meta.xattrs {
            rustix::fs::fsetxattr(&fd, k.as_str(), v, XattrFlags::empty())
                .map_err(|e| Error::xattr(k, to.shown, e))?;
        }
        rustix::fs::futimens(&fd, &times(meta.mtime)).map_err(|e| Error::io("set times of", to.shown, e))
    }

    /// A symlink to the entry's (non-empty, NUL-free) link name, then its metadata.
    #[inline]
    fn create_symlink<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        to: Dest<'_>,
        meta: &Meta,
    ) -> Result<()> {
        let target = e
            .link_name_bytes()
            .ok_or_else(|| Error::rejected(to.shown, "symlink without a target"))?
            .into_owned();
        if target.is_empty() || target.contains(&0) {
            return Err(Error::rejected(
                to.shown,
                "symlink target is empty or contains a NUL byte",
            ));
        }
        create_or_replace(
            || rustix::fs::symlinkat(target.as_slice(), &**to.dir, to.name),
            || self.make_room(to.shown, to.dir, to.name, Kind::Symlink),
            "create symlink",
            to.shown,
        )?;
        self.set_node_meta(to.shown, to.dir, to.parent_gid, to.name, meta, None)
    }

    /// A character or block device (with the entry's device numbers) or a fifo, then its metadata.
    #[inline]
    fn create_node<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        to: Dest<'_>,
        kind: Kind,
        meta: &Meta,
    ) -> Result<()> {
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
        tracing::trace!(entry = %to.shown, ?ft, "mknodat");
        let (mode, chmod) = self.creds.create_mode(meta.mode);
        create_or_replace(
            || rustix::fs::mknodat(&**to.dir, to.name, ft, mode, dev),
            || self.make_room(to.shown, to.dir, to.name, kind),
            "create node",
            to.shown,
        )?;
        self.set_node_meta(to.shown, to.dir, to.parent_gid, to.name, meta, Some(chmod))
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

    /// A hard link to an entry extracted earlier in this layer (never a directory, never itself).
    pub(super) fn hard_link<R: Read>(
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
}
