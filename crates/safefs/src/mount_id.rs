//! Mount IDs from `statx(STATX_MNT_ID)`: two files are on the same mount when their IDs are equal,
//! which also tells apart bind mounts of one filesystem (their device numbers are the same).

use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::fs::{AtFlags, StatxFlags};

use crate::{Error, Result};

/// Whether the final component of a path, when it is a symlink, is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalSymlink {
    /// The symlink's target is examined.
    Follow,
    /// The symlink itself is examined.
    NoFollow,
}

/// The ID of the mount that the file open at `fd` is on (`statx(fd, "", AT_EMPTY_PATH,
/// STATX_MNT_ID)`; `fd` may be an `O_PATH` descriptor). `path` only names the file in errors.
///
/// `Ok(None)` where the kernel reports no mount ID (before Linux 5.8): callers decide what that means
/// (compare nothing, or read [`crate::mountinfo`] instead).
pub fn mount_id(fd: BorrowedFd<'_>, path: &Path) -> Result<Option<u64>> {
    statx_mount_id(
        fd,
        "".as_ref(),
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        path,
    )
}

/// The ID of the mount that `path` (relative to `dir`, or absolute; [`rustix::fs::CWD`] for the
/// working directory) is on, as [`mount_id`] gives it, a final symlink followed or not.
pub fn mount_id_at(dir: BorrowedFd<'_>, path: &Path, symlink: FinalSymlink) -> Result<Option<u64>> {
    let flags = match symlink {
        FinalSymlink::Follow => AtFlags::empty(),
        FinalSymlink::NoFollow => AtFlags::SYMLINK_NOFOLLOW,
    };
    statx_mount_id(dir, path, flags, path)
}

fn statx_mount_id(dir: BorrowedFd<'_>, name: &Path, flags: AtFlags, path: &Path) -> Result<Option<u64>> {
    let st =
        rustix::fs::statx(dir, name, flags, StatxFlags::MNT_ID).map_err(|e| Error::io("statx", path, e))?;
    Ok((st.stx_mask & StatxFlags::MNT_ID.bits() != 0).then_some(st.stx_mnt_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_file_and_its_directory_share_a_mount_and_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        let fd = std::fs::File::open(dir.path()).unwrap();
        let here = mount_id(fd.as_fd(), dir.path()).unwrap();
        assert!(here.is_some(), "kernels from 5.8 report mount IDs");
        let file = mount_id_at(fd.as_fd(), Path::new("f"), FinalSymlink::NoFollow).unwrap();
        assert_eq!(here, file);
        let abs = mount_id_at(rustix::fs::CWD, &dir.path().join("f"), FinalSymlink::Follow).unwrap();
        assert_eq!(here, abs);
        let err = mount_id_at(fd.as_fd(), Path::new("missing"), FinalSymlink::Follow).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
