//! Adding per-mount flags (read-only, `nodev`, ...) to a mount or a tree of mounts, the two ways
//! `mountkit-binds` and `mountkit-ns-runner` both use: `mount_setattr(2)` (Linux 5.12+), which neither
//! rustix nor nix wraps, and a bind remount of each mount that keeps its other flags (what works
//! everywhere, and what bubblewrap falls back to).

use std::io;
use std::ops::BitOr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use rustix::fs::StatVfsMountFlags;
use rustix::mount::MountFlags;
use tracing::trace;

/// Per-mount flags that can be added to a mount: the `MOUNT_ATTR_*` of `<linux/mount.h>`, which
/// [`set_mount_attr`] passes to `mount_setattr` and the remount fallbacks ([`remount_adding`],
/// [`remount_tree_adding`]) turn into the matching `MS_*` flags. Combine them with `|`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountAttr(u64);

impl MountAttr {
    /// Read-only (`MOUNT_ATTR_RDONLY`, `MS_RDONLY`).
    pub const RDONLY: MountAttr = MountAttr(0x1);
    /// Set-user-ID and set-group-ID bits and file capabilities ignored (`MOUNT_ATTR_NOSUID`,
    /// `MS_NOSUID`).
    pub const NOSUID: MountAttr = MountAttr(0x2);
    /// Device nodes cannot be opened: `open` of a block or character device on the mount fails with
    /// `EACCES` (`MOUNT_ATTR_NODEV`, `MS_NODEV`).
    pub const NODEV: MountAttr = MountAttr(0x4);
    /// Files cannot be executed (`MOUNT_ATTR_NOEXEC`, `MS_NOEXEC`).
    pub const NOEXEC: MountAttr = MountAttr(0x8);

    /// The `MOUNT_ATTR_*` bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every flag of `other` is in `self`.
    pub const fn contains(self, other: MountAttr) -> bool {
        self.0 & other.0 == other.0
    }

    /// The `MS_*` flags of a remount that adds these.
    fn mount_flags(self) -> MountFlags {
        let mut flags = MountFlags::empty();
        for (attr, flag) in [
            (MountAttr::RDONLY, MountFlags::RDONLY),
            (MountAttr::NOSUID, MountFlags::NOSUID),
            (MountAttr::NODEV, MountFlags::NODEV),
            (MountAttr::NOEXEC, MountFlags::NOEXEC),
        ] {
            if self.contains(attr) {
                flags |= flag;
            }
        }
        flags
    }
}

impl BitOr for MountAttr {
    type Output = MountAttr;
    fn bitor(self, rhs: MountAttr) -> MountAttr {
        MountAttr(self.0 | rhs.0)
    }
}

/// `struct mount_attr` of `<linux/mount.h>` (`MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
struct RawMountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Adds `attr` to the mount that `fd` refers to (`mount_setattr(fd, "", AT_EMPTY_PATH, {attr_set:
/// attr})`; its other flags are left as they are), and with `recursive` to every mount below it too
/// (`AT_RECURSIVE`), in one call. `fd` may be attached or a detached tree from
/// `open_tree(OPEN_TREE_CLONE)`.
///
/// Fails with `ENOSYS` before Linux 5.12: callers fall back to [`remount_adding`] or
/// [`remount_tree_adding`].
pub fn set_mount_attr(fd: BorrowedFd<'_>, attr: MountAttr, recursive: bool) -> io::Result<()> {
    let raw = RawMountAttr {
        attr_set: attr.bits(),
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: every pointer is valid for the call: a NUL-terminated empty path and a mount_attr of
    // the size passed; the kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &raw as *const RawMountAttr,
            std::mem::size_of::<RawMountAttr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes the mount that `fd` refers to read-only, and with `recursive` every mount below it:
/// [`set_mount_attr`] with [`MountAttr::RDONLY`].
///
/// Fails with `ENOSYS` before Linux 5.12: callers fall back to remounting each mount.
pub fn set_read_only(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<()> {
    set_mount_attr(fd, MountAttr::RDONLY, recursive)
}

/// `ST_NOSYMFOLLOW` (Linux 5.10), which rustix does not name.
const ST_NOSYMFOLLOW: u64 = 0x2000;

/// Remounts the one mount that `fd` refers to with `attr` added (`mount(NULL, "/proc/self/fd/N", NULL,
/// MS_REMOUNT | MS_BIND | attr | kept, "")`), keeping the flags it has: read-only, `nosuid`, `nodev`,
/// `noexec`, `nosymfollow` and its atime mode (read with `fstatvfs`; a bind remount that left one out
/// would clear it, or fail in a user namespace where it is locked; neither `noatime` nor `relatime`
/// there means `strictatime`, which is passed: the kernel keeps the atime mode only of a remount given
/// no atime flag at all, and would make a `strictatime,nodiratime` mount `relatime`). Mounts below it
/// are left as they are.
pub fn remount_adding(fd: BorrowedFd<'_>, attr: MountAttr) -> io::Result<()> {
    let st = rustix::fs::fstatvfs(fd)?;
    let mut flags = MountFlags::BIND | attr.mount_flags();
    for (have, keep) in [
        (StatVfsMountFlags::RDONLY, MountFlags::RDONLY),
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
        (
            StatVfsMountFlags::from_bits_retain(ST_NOSYMFOLLOW),
            MountFlags::NOSYMFOLLOW,
        ),
    ] {
        if st.f_flag.contains(have) {
            flags |= keep;
        }
    }
    if !st
        .f_flag
        .intersects(StatVfsMountFlags::NOATIME | StatVfsMountFlags::RELATIME)
    {
        flags |= MountFlags::STRICTATIME;
    }
    rustix::mount::mount_remount(crate::inroot::fd_path(fd), flags, "")?;
    Ok(())
}

/// Remounts the one mount that `fd` refers to read-only, keeping its other flags: [`remount_adding`]
/// with [`MountAttr::RDONLY`]. Mounts below it are left as they are.
pub fn remount_read_only(fd: BorrowedFd<'_>) -> io::Result<()> {
    remount_adding(fd, MountAttr::RDONLY)
}

/// [`remount_adding`] for the mount that `fd` refers to and then every mount below it (what
/// [`set_mount_attr`] with `recursive` does in one call, for kernels without it): the mounts are
/// found in `/proc/self/mountinfo` under the path `fd` is at, parents first, and each is reached
/// through `fd` ([`crate::inroot::resolve`], never leaving the tree), so the top mount at each mount
/// point is the one changed (one hidden under another stays as it is, unreachable).
pub fn remount_tree_adding(fd: BorrowedFd<'_>, attr: MountAttr) -> io::Result<()> {
    remount_adding(fd, attr)?;
    let top = std::fs::read_link(crate::inroot::fd_path(fd))?;
    let mounts = crate::mounts_under_canonical(&top).map_err(io::Error::other)?;
    for mp in mounts {
        let Some(rel) = mp.strip_prefix(&top).ok().filter(|r| *r != Path::new("")) else {
            continue;
        };
        trace!(submount = %mp.display(), ?attr, "bind remount adding flags");
        let sub = crate::inroot::resolve(fd, rel).map_err(io::Error::other)?;
        remount_adding(sub.as_fd(), attr)
            .map_err(|e| io::Error::new(e.kind(), format!("submount {}: {e}", mp.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn attrs_combine_and_map_to_mount_flags() {
        let a = MountAttr::NODEV | MountAttr::RDONLY;
        assert_eq!(a.bits(), 0x5);
        assert!(a.contains(MountAttr::NODEV) && !a.contains(MountAttr::NOEXEC));
        assert_eq!(a.mount_flags(), MountFlags::NODEV | MountFlags::RDONLY);
    }

    /// The mount options (field 6) of the mounts at and below `dir`, by mount point, from mountinfo.
    fn options_under(dir: &Path) -> Vec<(String, String)> {
        let d = dir.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .filter(|f| f[4].starts_with(&d))
            .map(|f| (f[4].to_string(), f[5].to_string()))
            .collect()
    }

    fn has(opts: &str, o: &str) -> bool {
        opts.split(',').any(|x| x == o)
    }

    /// A tmpfs at `t`, with a read-only `noexec,strictatime,nodiratime` tmpfs at `t/a` and a tmpfs at `t/a/b`
    /// under it; then both ways of adding `nodev` to all three: each keeps its other flags.
    #[test]
    #[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
    fn nodev_is_added_to_a_tree_keeping_each_mounts_flags() {
        mountkit_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().to_path_buf();
        mountkit_testutil::in_mount_ns(|| {
            for use_setattr in [true, false] {
                let tmpfs = |at: &Path, flags: MountFlags| {
                    rustix::mount::mount("tmpfs", at, "tmpfs", flags, None).unwrap()
                };
                tmpfs(&t, MountFlags::empty());
                std::fs::create_dir_all(t.join("a")).unwrap();
                let a_flags = MountFlags::NOEXEC | MountFlags::STRICTATIME | MountFlags::NODIRATIME;
                tmpfs(&t.join("a"), a_flags);
                std::fs::create_dir_all(t.join("a/b")).unwrap();
                tmpfs(&t.join("a/b"), MountFlags::empty());
                let a = crate::inroot::open_root(&t.join("a")).unwrap();
                remount_read_only(a.as_fd()).unwrap();
                let root = crate::inroot::open_root(&t).unwrap();
                if use_setattr {
                    set_mount_attr(root.as_fd(), MountAttr::NODEV, true).unwrap();
                } else {
                    remount_tree_adding(root.as_fd(), MountAttr::NODEV).unwrap();
                }
                let opts = options_under(&t);
                assert_eq!(opts.len(), 3, "{opts:?}");
                for (mp, o) in &opts {
                    assert!(has(o, "nodev"), "{use_setattr}: {mp} is not nodev: {o}");
                }
                let a_opts = &opts.iter().find(|(mp, _)| mp.ends_with("/a")).unwrap().1;
                assert!(
                    has(a_opts, "ro") && has(a_opts, "noexec") && has(a_opts, "nodiratime"),
                    "{a_opts}"
                );
                assert!(!has(a_opts, "relatime"), "strictatime lost: {a_opts}");
                let b_opts = &opts.iter().find(|(mp, _)| mp.ends_with("/a/b")).unwrap().1;
                assert!(has(b_opts, "rw") && !has(b_opts, "noexec"), "{b_opts}");
                drop((a, root));
                rustix::mount::unmount(&t, rustix::mount::UnmountFlags::DETACH).unwrap();
            }
        });
    }
}
