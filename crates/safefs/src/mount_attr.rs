//! Making a mount read-only, the two ways `mountkit-binds` and `mountkit-ns-runner` both use:
//! `mount_setattr(2)` (Linux 5.12+), which neither rustix nor nix wraps, and a bind remount of one mount
//! that keeps its other flags (what works everywhere, and what bubblewrap falls back to).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs::StatVfsMountFlags;
use rustix::mount::MountFlags;

/// `struct mount_attr` of `<linux/mount.h>` (`MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// Makes the mount that `fd` refers to read-only (`mount_setattr(fd, "", AT_EMPTY_PATH, {attr_set:
/// MOUNT_ATTR_RDONLY})`), and with `recursive` every mount below it too (`AT_RECURSIVE`), in one
/// call. `fd` may be attached or a detached tree from `open_tree(OPEN_TREE_CLONE)`.
///
/// Fails with `ENOSYS` before Linux 5.12: callers fall back to remounting each mount.
pub fn set_read_only(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
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
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Remounts the one mount that `fd` refers to read-only (`mount(NULL, "/proc/self/fd/N", NULL,
/// MS_REMOUNT | MS_BIND | MS_RDONLY | kept, "")`), keeping the `nosuid`, `nodev`, `noexec` and atime
/// flags it has (read with `fstatvfs`: a bind remount that left one out would clear it, or fail in a
/// user namespace where it is locked). Mounts below it are left as they are.
pub fn remount_read_only(fd: BorrowedFd<'_>) -> io::Result<()> {
    let st = rustix::fs::fstatvfs(fd)?;
    let mut flags = MountFlags::BIND | MountFlags::RDONLY;
    for (have, keep) in [
        (StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
        (StatVfsMountFlags::NOATIME, MountFlags::NOATIME),
        (StatVfsMountFlags::NODIRATIME, MountFlags::NODIRATIME),
        (StatVfsMountFlags::RELATIME, MountFlags::RELATIME),
    ] {
        if st.f_flag.contains(have) {
            flags |= keep;
        }
    }
    rustix::mount::mount_remount(crate::inroot::fd_path(fd), flags, "")?;
    Ok(())
}
