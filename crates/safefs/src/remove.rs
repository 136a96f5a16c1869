//! Mount-aware, same-filesystem tree removal.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::mountinfo::MountTable;
use crate::{Error, FinalSymlink, Result, mount_id, mount_id_at};

/// The mount points at or below `path` in the calling process's mount namespace, from
/// `/proc/self/mountinfo`. `path` is made absolute and its symlinks resolved first when it exists.
pub fn mounts_under(path: &Path) -> Result<Vec<PathBuf>> {
    let base =
        std::fs::canonicalize(path).unwrap_or_else(|_| std::path::absolute(path).unwrap_or(path.into()));
    mounts_under_canonical(&base)
}

/// [`mounts_under`] for a path the caller knows to be absolute and free of symlinks (built on a
/// canonical root, say): it is compared with the mount table as given, with no resolving.
pub fn mounts_under_canonical(path: &Path) -> Result<Vec<PathBuf>> {
    // One read of the whole table; only the mount points are split out and unescaped.
    Ok(MountTable::read()?
        .mounts()
        .filter_map(|m| m.mount_point())
        .filter(|mp| mp.starts_with(path))
        .collect())
}

/// Whether something is mounted exactly at `path` (a final symlink is not followed): its mount ID
/// differs from its parent directory's (`statx` `STATX_MNT_ID`, two system calls, no mountinfo read).
/// Where the kernel has no `STATX_MNT_ID` (before 5.8), mountinfo is read instead. A path that cannot
/// be examined is not a mount point.
pub fn is_mount_point(path: &Path) -> bool {
    let id = |p: &Path, symlink| mount_id_at(rustix::fs::CWD, p, symlink).ok().flatten();
    match (
        id(path, FinalSymlink::NoFollow),
        id(&path.join(".."), FinalSymlink::Follow),
    ) {
        (Some(here), Some(parent)) => here != parent,
        _ => {
            let Ok(canon) = std::fs::canonicalize(path) else {
                return false;
            };
            mounts_under(&canon).is_ok_and(|m| m.iter().any(|mp| mp == &canon))
        }
    }
}

/// Removes the tree at `path`, safely for a process running as root.
///
/// - `Ok(())` when `path` does not exist.
/// - Refuses ([`Error::MountedUnder`]) when anything is mounted at or below `path`, before deleting anything.
/// - Never follows symlinks (a symlink is removed, not its target).
/// - Refuses ([`Error::CrossesMount`]) to descend into a directory that sits on another mount (compared by
///   mount ID, which also catches bind mounts of the same filesystem that appeared after the first check).
pub fn remove_tree(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", path, e)),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e));
    }
    let mounts = mounts_under(path)?;
    if !mounts.is_empty() {
        return Err(Error::MountedUnder {
            path: path.into(),
            mounts,
        });
    }
    remove_checked_dir(path)
}

/// [`remove_tree`] for a directory whose mountinfo check the caller has just made, under its former
/// name, with [`mounts_under`] or [`mounts_under_canonical`] (finding nothing), before moving it aside
/// under a lock: the mount table is not read a second time. Everything else is as in [`remove_tree`]:
/// symlinks are not followed, and the walk still refuses to enter a directory on another mount (a mount
/// made in between). `Ok(())` when `path` does not exist.
pub fn remove_tree_checked(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => remove_checked_dir(path),
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("stat", path, e)),
    }
}

/// Removes the directory at `path` and everything in it, its mount table check done.
fn remove_checked_dir(path: &Path) -> Result<()> {
    tracing::debug!(path = %path.display(), "remove tree");
    let top = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", path, e))?;
    let id = mount_id(top.as_fd(), path)?;
    empty_dir(top, path, id, path)?;
    std::fs::remove_dir(path).map_err(|e| Error::io("remove directory", path, e))
}

/// Deletes everything inside the directory `dir` (at `dir_path`), depth first, with an explicit stack,
/// refusing to enter a directory whose mount ID is not `mount` (`None`, before Linux 5.8: all compare
/// equal, and the mountinfo check made before is the only one).
fn empty_dir(dir: OwnedFd, dir_path: &Path, mount: Option<u64>, top: &Path) -> Result<()> {
    // Each frame: a directory fd, its path (for messages), and the names still to delete in it.
    let mut stack: Vec<(OwnedFd, PathBuf, Vec<Entry>)> = Vec::new();
    let names = list(&dir, dir_path)?;
    stack.push((dir, dir_path.to_path_buf(), names));
    while let Some((fd, path, mut names)) = stack.pop() {
        let Some((name, is_dir)) = names.pop() else {
            // Finished this directory: remove it from its parent (the frame below), unless it is the top.
            if let Some((parent, ppath, _)) = stack.last() {
                let n = path.file_name().expect("child has a name");
                rustix::fs::unlinkat(parent, n, AtFlags::REMOVEDIR)
                    .map_err(|e| Error::io("remove directory", ppath.join(n), e))?;
            }
            continue;
        };
        let child = path.join(&name);
        let is_dir = match is_dir {
            Some(d) => d,
            None => {
                let st = rustix::fs::statat(&fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| Error::io("stat", &child, e))?;
                FileType::from_raw_mode(st.st_mode) == FileType::Directory
            }
        };
        if is_dir {
            let cfd = rustix::fs::openat(
                &fd,
                name.as_os_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io("open", &child, e))?;
            if mount_id(cfd.as_fd(), &child)? != mount {
                return Err(Error::CrossesMount {
                    path: top.into(),
                    at: child,
                });
            }
            let cnames = list(&cfd, &child)?;
            stack.push((fd, path, names));
            stack.push((cfd, child, cnames));
        } else {
            rustix::fs::unlinkat(&fd, name.as_os_str(), AtFlags::empty())
                .map_err(|e| Error::io("remove", &child, e))?;
            stack.push((fd, path, names));
        }
    }
    Ok(())
}

/// A directory entry's name, and whether it is a directory if the entry says (`None`: it does not).
type Entry = (OsString, Option<bool>);

/// The entries of the directory open at `fd` (read from its start, on that descriptor: no reopening),
/// each with whether it is a directory when the filesystem says so in the entry (`None`: it did not).
fn list(fd: &OwnedFd, path: &Path) -> Result<Vec<Entry>> {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    let mut dir = rustix::fs::RawDir::new(fd, &mut buf);
    let mut out = Vec::new();
    while let Some(entry) = dir.next() {
        let entry = entry.map_err(|e| Error::io("read directory", path, e))?;
        let n = entry.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        let is_dir = match entry.file_type() {
            FileType::Directory => Some(true),
            FileType::Unknown => None,
            _ => Some(false),
        };
        out.push((OsString::from(std::ffi::OsStr::from_bytes(n)), is_dir));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::mount::{MsFlags, mount};

    fn tree(root: &Path) {
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::write(root.join("a/f"), "x").unwrap();
        std::fs::write(root.join("a/b/c/g"), "y").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("a/link")).unwrap();
    }

    #[test]
    fn removes_a_tree_and_not_symlink_targets() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "k").unwrap();
        let t = dir.path().join("t");
        tree(&t);
        std::os::unix::fs::symlink(&outside, t.join("a/b/dirlink")).unwrap();
        remove_tree(&t).unwrap();
        assert!(!t.exists());
        assert_eq!(std::fs::read_to_string(outside.join("keep")).unwrap(), "k");
        remove_tree(&t).unwrap(); // missing is fine
    }

    #[test]
    #[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
    fn refuses_while_a_bind_mount_is_attached_below() {
        mountkit_testutil::require_root();
        mountkit_testutil::in_mount_ns(|| {
            let dir = tempfile::tempdir().unwrap();
            let canary = dir.path().join("canary");
            std::fs::create_dir(&canary).unwrap();
            std::fs::write(canary.join("precious"), "p").unwrap();
            let t = dir.path().join("t");
            tree(&t);
            let target = t.join("a/b/mnt");
            std::fs::create_dir(&target).unwrap();
            mount(
                Some(&canary),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .unwrap();
            let err = remove_tree(&t).unwrap_err();
            assert!(matches!(err, Error::MountedUnder { .. }), "{err}");
            assert!(err.to_string().contains("a/b/mnt"), "{err}");
            // Nothing was deleted, inside the mount or outside it.
            assert_eq!(std::fs::read_to_string(canary.join("precious")).unwrap(), "p");
            assert!(t.join("a/f").exists());
            nix::mount::umount(&target).unwrap();
            remove_tree(&t).unwrap();
            assert!(!t.exists());
            assert!(canary.join("precious").exists());
        });
    }

    /// In `dir`: a `canary` directory holding `precious`, and a tree `t` with the canary bind-mounted
    /// at `t/m` (in the caller's mount namespace).
    fn bind_canary_under_tree(dir: &Path) -> (PathBuf, PathBuf) {
        let canary = dir.join("canary");
        std::fs::create_dir(&canary).unwrap();
        std::fs::write(canary.join("precious"), "p").unwrap();
        let t = dir.join("t");
        std::fs::create_dir_all(t.join("m")).unwrap();
        mount(
            Some(&canary),
            &t.join("m"),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        (canary, t)
    }

    #[test]
    #[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
    fn empty_dir_refuses_to_cross_a_mount_it_meets() {
        mountkit_testutil::require_root();
        // mounts_under is the first line of defence; this checks the second one (mount IDs while walking),
        // which also covers a mount that appears after the first check.
        mountkit_testutil::in_mount_ns(|| {
            let dir = tempfile::tempdir().unwrap();
            let (canary, t) = bind_canary_under_tree(dir.path());
            let fd = rustix::fs::open(&t, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
            let id = mount_id(fd.as_fd(), &t).unwrap();
            let err = empty_dir(fd, &t, id, &t).unwrap_err();
            assert!(matches!(err, Error::CrossesMount { .. }), "{err}");
            assert_eq!(std::fs::read_to_string(canary.join("precious")).unwrap(), "p");
            nix::mount::umount(&t.join("m")).unwrap();
        });
    }

    #[test]
    fn remove_tree_checked_removes() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        tree(&t);
        remove_tree_checked(&t).unwrap();
        assert!(!t.exists());
        remove_tree_checked(&t).unwrap(); // missing is fine
    }

    #[test]
    #[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
    fn remove_tree_checked_still_refuses_to_cross_a_mount() {
        mountkit_testutil::require_root();
        mountkit_testutil::in_mount_ns(|| {
            let dir = tempfile::tempdir().unwrap();
            let (canary, t) = bind_canary_under_tree(dir.path());
            // A mount made after the caller's check: the walk refuses it.
            let err = remove_tree_checked(&t).unwrap_err();
            assert!(matches!(err, Error::CrossesMount { .. }), "{err}");
            assert_eq!(std::fs::read_to_string(canary.join("precious")).unwrap(), "p");
            nix::mount::umount(&t.join("m")).unwrap();
        });
    }

    #[test]
    #[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
    fn is_mount_point_sees_binds_of_the_same_filesystem() {
        mountkit_testutil::require_root();
        mountkit_testutil::in_mount_ns(|| {
            let dir = tempfile::tempdir().unwrap();
            let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
            std::fs::create_dir(&src).unwrap();
            std::fs::create_dir(&dst).unwrap();
            std::os::unix::fs::symlink(&dst, dir.path().join("link")).unwrap();
            assert!(!is_mount_point(&dst));
            assert!(!is_mount_point(&dir.path().join("missing")));
            mount(Some(&src), &dst, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
            assert!(
                is_mount_point(&dst),
                "a bind of the same filesystem is a mount point"
            );
            assert!(
                !is_mount_point(&dir.path().join("link")),
                "a symlink to one is not"
            );
            assert!(!is_mount_point(&src));
            nix::mount::umount(&dst).unwrap();
            assert!(!is_mount_point(&dst));
        });
    }
}
