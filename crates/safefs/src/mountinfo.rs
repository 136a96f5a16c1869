//! `/proc/self/mountinfo`: the workspace's one mount table parser.
//!
//! Each line reads `ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS`
//! (proc_pid_mountinfo(5)). The file is read in one go and nothing is parsed up front: a [`Mount`] is a
//! line, split when a field is asked for, and only that field is unescaped. [`crate::remove_tree`] (on
//! the path of every `run --rm`) needs only the mount points, so that is all it pays for.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::{Error, Result};

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mount table of the calling process's mount namespace, as `/proc/self/mountinfo` showed it.
#[derive(Debug, Clone)]
pub struct MountTable {
    text: Vec<u8>,
}

impl MountTable {
    /// Reads `/proc/self/mountinfo` (the whole file, once).
    pub fn read() -> Result<MountTable> {
        std::fs::read(MOUNTINFO)
            .map(MountTable::from_bytes)
            .map_err(|e| Error::io("read", MOUNTINFO, e))
    }

    /// A table from mountinfo text read elsewhere (another process's `mountinfo`, a test's).
    pub fn from_bytes(text: Vec<u8>) -> MountTable {
        MountTable { text }
    }

    /// Every mount, in the file's order (a mount after its parent; of mounts stacked on one point, the
    /// top one last).
    pub fn mounts(&self) -> impl Iterator<Item = Mount<'_>> {
        self.text
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| Mount { line })
    }

    /// The mount with this ID (as `statx` reports it: [`crate::mount_id`]), if the table has it.
    pub fn by_id(&self, id: u64) -> Option<Mount<'_>> {
        self.mounts().find(|m| m.id() == Some(id))
    }
}

/// One mount of a [`MountTable`]: a line of mountinfo, its fields split and unescaped when asked for.
/// An accessor gives `None` when the line lacks its field.
#[derive(Debug, Clone, Copy)]
pub struct Mount<'a> {
    line: &'a [u8],
}

impl<'a> Mount<'a> {
    fn fields(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.line.split(|&b| b == b' ')
    }

    /// Field `i` after the ` - ` that ends the optional fields: 0 the filesystem type, 1 the source.
    fn after_separator(&self, i: usize) -> Option<&'a [u8]> {
        self.fields().skip(6).skip_while(|f| *f != b"-").nth(1 + i)
    }

    /// The mount ID (first field).
    pub fn id(&self) -> Option<u64> {
        std::str::from_utf8(self.fields().next()?).ok()?.parse().ok()
    }

    /// Where it is mounted (fifth field), unescaped.
    pub fn mount_point(&self) -> Option<PathBuf> {
        self.fields()
            .nth(4)
            .map(|f| PathBuf::from(OsString::from_vec(unescape(f))))
    }

    /// The filesystem type (`overlay`, `tmpfs`, ...), unescaped.
    pub fn fs_type(&self) -> Option<OsString> {
        self.after_separator(0).map(|f| OsString::from_vec(unescape(f)))
    }

    /// The mount's source, unescaped; `None` where the kernel shows `none` (a mount without a source,
    /// or one whose source is the word `none`: mountinfo does not tell them apart).
    pub fn source(&self) -> Option<OsString> {
        self.after_separator(1)
            .filter(|f| *f != b"none")
            .map(|f| OsString::from_vec(unescape(f)))
    }

    /// The superblock's options (`rw,user_id=0,group_id=0` for a FUSE mount), unescaped.
    pub fn super_options(&self) -> Option<OsString> {
        self.after_separator(2).map(|f| OsString::from_vec(unescape(f)))
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| d[0] <= b'3' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (field[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') << 6 | (d[1] - b'0') << 3 | (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(br"/a\040b\011c\134d"), b"/a b\tc\\d");
        assert_eq!(unescape(br"/plain/path"), b"/plain/path");
        // Not an escape: kept as it is.
        assert_eq!(unescape(br"/x\9y\777\04"), br"/x\9y\777\04");
    }

    const SAMPLE: &[u8] = b"22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n\
        35 22 0:33 / /var/lib/my\\040dir rw,nosuid master:3 propagate_from:2 - overlay mountkit rw,lowerdir=a\n\
        36 22 0:34 / /run rw - tmpfs none rw\n";

    #[test]
    fn fields_are_found_past_optional_fields() {
        let t = MountTable::from_bytes(SAMPLE.to_vec());
        let all: Vec<_> = t.mounts().collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].id(), Some(22));
        assert_eq!(all[0].mount_point(), Some(PathBuf::from("/")));
        assert_eq!(all[0].fs_type(), Some("ext4".into()));
        assert_eq!(all[0].source(), Some("/dev/vda1".into()));
        assert_eq!(all[0].super_options(), Some("rw".into()));
        assert_eq!(t.by_id(35).unwrap().super_options(), Some("rw,lowerdir=a".into()));
        let ovl = t.by_id(35).unwrap();
        assert_eq!(ovl.mount_point(), Some(PathBuf::from("/var/lib/my dir")));
        assert_eq!(ovl.fs_type(), Some("overlay".into()));
        assert_eq!(ovl.source(), Some("mountkit".into()));
        assert_eq!(t.by_id(36).unwrap().source(), None, "the kernel's `none`");
        assert!(t.by_id(99).is_none());
    }

    #[test]
    fn a_short_line_has_no_fields_to_give() {
        let t = MountTable::from_bytes(b"garbage\n".to_vec());
        let m = t.mounts().next().unwrap();
        assert_eq!(
            (m.id(), m.mount_point(), m.fs_type(), m.source()),
            (None, None, None, None)
        );
    }

    #[test]
    fn the_own_table_has_the_root() {
        let t = MountTable::read().unwrap();
        assert!(t.mounts().any(|m| m.mount_point() == Some(PathBuf::from("/"))));
    }
}
