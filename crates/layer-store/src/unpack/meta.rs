//! An entry's ownership, mode, times and xattrs: read from its headers, applied to what was
//! created, skipping the calls that would change nothing.

use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{AtFlags, Mode, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::Unpacker;
use crate::error::{Error, Result};

/// What a new inode gets without being told, so that calls that would change nothing are skipped.
pub(super) struct Creds {
    /// Our effective user and group: the owner and group of what we create.
    pub(super) uid: u32,
    pub(super) gid: u32,
    /// False when new inodes may not get `uid` (the staging root is not ours) or may inherit a
    /// group from a set-group-ID staging root: then every inode is chowned.
    pub(super) skip_chown: bool,
    /// The umask, when known and no default ACL decides modes instead: a create with the final
    /// mode then needs no chmod. `None`: every inode is chmodded.
    pub(super) umask: Option<u32>,
}

impl Creds {
    /// Finds out what new inodes get under `root` (whose stat is `st`).
    pub(super) fn probe(root: &OwnedFd, st: &rustix::fs::Stat) -> Creds {
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
    pub(super) fn create_mode(&self, mode: u32) -> (Mode, bool) {
        match self.umask {
            Some(um) if mode & !0o777 == 0 && mode & um == 0 => (Mode::from_raw_mode(mode), false),
            _ => (Mode::from_raw_mode(0o600), true),
        }
    }

    /// Whether an inode just created in a directory of group `parent_gid` needs a chown to get
    /// `meta`'s owner. Its group is ours, or the directory's (set-group-ID directory, `grpid`
    /// mount): when both are `meta.gid`, nothing changes.
    pub(super) fn must_chown(&self, meta: &Meta, parent_gid: Option<u32>) -> bool {
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

/// Ownership, mode, time and xattrs of one entry.
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: (i64, u32),
    pub(super) xattrs: Vec<(String, Vec<u8>)>,
}

impl Unpacker {
    /// Owner (when `chown`) and xattrs of the directory `fd` at `path` now; its mode and times are
    /// queued for the end.
    pub(super) fn set_dir_meta(
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
    pub(super) fn set_node_meta(
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
}

/// A uid as rustix takes it.
pub(super) fn uid(n: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(n)
}

/// A gid as rustix takes it.
pub(super) fn gid(n: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(n)
}

/// Access and modification times, both `mtime`.
pub(super) fn times((sec, nsec): (i64, u32)) -> Timestamps {
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

/// Reads an entry's mode, owner, mtime and xattrs from its header and PAX records (overlay xattrs
/// dropped).
pub(super) fn read_meta<R: Read>(e: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta> {
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
