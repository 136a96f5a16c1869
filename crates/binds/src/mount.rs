//! Preparing bind sources and mounting a plan inside a container root.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use mountkit_safefs::inroot;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags};
use tracing::{debug, trace};

use crate::spec::{BindRecursive, MountSpec, Planned, Propagation, TmpfsOptions, sort_plan};
use crate::{Error, Result};

/// Makes bind sources ready before mounting: a missing source of a `-v` bind is created as a
/// directory (mode 0755, as Docker does); a missing source of a `--mount` bind is an error with
/// Docker's message. Symlinks in the source are followed (as Docker's `stat`). Volumes and tmpfs are
/// left alone (volumes are the caller's).
pub fn prepare_sources(specs: &[MountSpec]) -> Result<()> {
    for spec in specs {
        let MountSpec::Bind {
            source,
            create_source,
            ..
        } = spec
        else {
            continue;
        };
        match std::fs::metadata(source) {
            Ok(_) => trace!(source = %source.display(), "bind source exists"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create_source {
                    return Err(Error::BindSourceMissing(source.clone()));
                }
                debug!(source = %source.display(), "creating missing bind source directory (mode 0755)");
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(source)
                    .map_err(|e| Error::Source {
                        path: source.clone(),
                        op: "create directory",
                        source: e,
                    })?;
            }
            Err(e) => {
                return Err(Error::Source {
                    path: source.clone(),
                    op: "examine",
                    source: e,
                });
            }
        }
    }
    Ok(())
}

/// Mounts `plan` inside `root` (already mounted, e.g. an overlay), in [`sort_plan`] order.
///
/// Every target is resolved inside `root` without following links out of it; missing directories
/// (or an empty file, for a file source) are created. Stops at the first failure; what was mounted
/// before stays mounted (it goes away with the mount namespace).
pub fn mount_all(root: &Path, plan: &[Planned]) -> Result<()> {
    let mut plan = plan.to_vec();
    sort_plan(&mut plan);
    let root_fd = inroot::open_root(root).map_err(|e| Error::Target {
        root: root.to_path_buf(),
        target: PathBuf::from("/"),
        source: e,
    })?;
    for p in &plan {
        match p {
            Planned::Bind {
                source,
                target,
                readonly,
                propagation,
                recursive,
            } => {
                let opts = BindOpts {
                    readonly: *readonly,
                    propagation: *propagation,
                    recursive: *recursive,
                };
                bind(root, root_fd.as_fd(), source, target, opts, ReadonlyMethod::Auto)?
            }
            Planned::Tmpfs { target, options } => tmpfs(root, root_fd.as_fd(), target, options)?,
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct BindOpts {
    pub readonly: bool,
    pub propagation: Propagation,
    pub recursive: BindRecursive,
}

/// How read-only is applied: `mount_setattr` where the kernel has it, else remounts (`Auto`), or
/// remounts only (to test the fallback on a new kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadonlyMethod {
    Auto,
    /// Used by the tests, to run the fallback on a kernel that has `mount_setattr`.
    #[cfg_attr(not(test), allow(dead_code))]
    Remount,
}

/// An opened bind source: the `O_PATH` descriptor and whether it is a directory.
pub(crate) struct Source {
    fd: OwnedFd,
    is_dir: bool,
}

pub(crate) fn open_source(source: &Path) -> Result<Source> {
    let err = |op, e: rustix::io::Errno| Error::Source {
        path: source.to_path_buf(),
        op,
        source: e.into(),
    };
    trace!(source = %source.display(), "opening bind source (O_PATH, following host symlinks)");
    let fd = rustix::fs::open(source, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| err("open", e))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| err("stat", e))?;
    let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir();
    Ok(Source { fd, is_dir })
}

fn bind(
    root: &Path,
    root_fd: BorrowedFd<'_>,
    source: &Path,
    target: &Path,
    opts: BindOpts,
    method: ReadonlyMethod,
) -> Result<()> {
    let src = open_source(source)?;
    let target_err = |e| Error::Target {
        root: root.to_path_buf(),
        target: target.to_path_buf(),
        source: e,
    };
    let tgt = if src.is_dir {
        inroot::mkdir_all(root_fd, target, 0o755).map_err(target_err)?
    } else {
        inroot::create_file(root_fd, target, 0o644).map_err(target_err)?
    };
    bind_onto(&src, source, tgt.as_fd(), target, opts, method)
}

/// Binds the opened `src` onto the resolved target descriptor `tgt`. `source` and `target` are for
/// messages only: nothing is looked up by path here, except the submounts of the fallback.
pub(crate) fn bind_onto(
    src: &Source,
    source: &Path,
    tgt: BorrowedFd<'_>,
    target: &Path,
    opts: BindOpts,
    method: ReadonlyMethod,
) -> Result<()> {
    let what = format!("bind of {}", source.display());
    let fail = |op: &'static str, e: io::Error| Error::Mount {
        what: what.clone(),
        target: target.to_path_buf(),
        op,
        source: e,
    };

    let mut flags =
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
    if opts.recursive != BindRecursive::Disabled {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    debug!(source = %source.display(), target = %target.display(), ?opts, "open_tree(OPEN_TREE_CLONE)");
    let tree = rustix::mount::open_tree(&src.fd, "", flags).map_err(|e| {
        let e = io::Error::from(e);
        if e.raw_os_error() == Some(Errno::NOSYS.raw_os_error()) {
            fail("open_tree (needs Linux 5.2 or later)", e)
        } else {
            fail("open_tree", e)
        }
    })?;

    // Read-only all the way down unless `bind-recursive=writable` (or the clone has one mount).
    let ro_recursive = opts.recursive != BindRecursive::Writable;
    let mut remount_after = false;
    if opts.readonly {
        match method {
            ReadonlyMethod::Auto => {
                debug!(target = %target.display(), recursive = ro_recursive, "mount_setattr(MOUNT_ATTR_RDONLY)");
                match mountkit_safefs::set_read_only(tree.as_fd(), ro_recursive) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(Errno::NOSYS.raw_os_error()) => {
                        debug!("mount_setattr unavailable (Linux < 5.12): remounting each mount read-only");
                        remount_after = true;
                    }
                    Err(e) => return Err(fail("mount_setattr(MOUNT_ATTR_RDONLY)", e)),
                }
            }
            ReadonlyMethod::Remount => remount_after = true,
        }
    }

    debug!(target = %target.display(), "move_mount onto the resolved target descriptor");
    rustix::mount::move_mount(
        &tree,
        "",
        tgt,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| fail("move_mount", e.into()))?;

    if remount_after {
        remount_readonly(tree.as_fd(), ro_recursive).map_err(|e| fail("read-only remount", e))?;
    }

    let mut prop = match opts.propagation {
        Propagation::Private | Propagation::RPrivate => MountPropagationFlags::PRIVATE,
        Propagation::Shared | Propagation::RShared => MountPropagationFlags::SHARED,
        Propagation::Slave | Propagation::RSlave => MountPropagationFlags::DOWNSTREAM,
    };
    if opts.propagation.is_recursive() {
        prop |= MountPropagationFlags::REC;
    }
    debug!(target = %target.display(), propagation = %opts.propagation, "setting propagation");
    rustix::mount::mount_change(inroot::fd_path(tree.as_fd()), prop)
        .map_err(|e| fail("set propagation", e.into()))?;
    Ok(())
}

/// The fallback for kernels without `mount_setattr`: remounts the attached `tree` read-only, then
/// (if `recursive`) every mount below it, found in mountinfo and reached through the tree (never
/// leaving it), keeping each mount's nosuid/nodev/noexec/atime flags as bubblewrap does.
fn remount_readonly(tree: BorrowedFd<'_>, recursive: bool) -> io::Result<()> {
    mountkit_safefs::remount_read_only(tree)?;
    if !recursive {
        return Ok(());
    }
    let top = std::fs::read_link(inroot::fd_path(tree))?;
    let mounts = mountkit_safefs::mounts_under(&top).map_err(io::Error::other)?;
    for mp in mounts {
        let Ok(rel) = mp.strip_prefix(&top) else { continue };
        if rel.as_os_str().is_empty() {
            continue;
        }
        trace!(submount = %mp.display(), "remounting submount read-only");
        let fd = inroot::resolve(tree, rel).map_err(io::Error::other)?;
        mountkit_safefs::remount_read_only(fd.as_fd())
            .map_err(|e| io::Error::new(e.kind(), format!("submount {}: {e}", mp.display())))?;
    }
    Ok(())
}

fn tmpfs(root: &Path, root_fd: BorrowedFd<'_>, target: &Path, options: &TmpfsOptions) -> Result<()> {
    let tgt = inroot::mkdir_all(root_fd, target, 0o755).map_err(|e| Error::Target {
        root: root.to_path_buf(),
        target: target.to_path_buf(),
        source: e,
    })?;
    let data = options.data_string();
    let fail = |op, e: io::Error| Error::Mount {
        what: format!("tmpfs ({data})"),
        target: target.to_path_buf(),
        op,
        source: e,
    };
    let mut flags = MountFlags::empty();
    for (on, flag) in [
        (options.readonly, MountFlags::RDONLY),
        (options.noexec, MountFlags::NOEXEC),
        (options.nosuid, MountFlags::NOSUID),
        (options.nodev, MountFlags::NODEV),
        (options.noatime, MountFlags::NOATIME),
    ] {
        if on {
            flags |= flag;
        }
    }
    let cdata = CString::new(data.clone()).map_err(|e| fail("encode options", io::Error::other(e)))?;
    debug!(target = %target.display(), %data, ?flags, "mounting tmpfs onto the resolved target descriptor");
    rustix::mount::mount(
        "tmpfs",
        inroot::fd_path(tgt.as_fd()),
        "tmpfs",
        flags,
        Some(cdata.as_c_str()),
    )
    .map_err(|e| fail("mount", e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::StatVfsMountFlags;
    use std::os::unix::fs::symlink;

    fn ro_check(path: &Path) -> Option<i32> {
        std::fs::write(path, b"x").err().and_then(|e| e.raw_os_error())
    }

    /// In `d`: makes `src/` with a tmpfs (mounted with `sub_flags`) on `src/sub`, and `root/`, then
    /// binds `src` read-only onto `/data` inside `root` with the remount fallback. Returns the two.
    fn bind_ro_by_remount(d: &Path, sub_flags: MountFlags, recursive: BindRecursive) -> (PathBuf, PathBuf) {
        let (src, root) = (d.join("src"), d.join("root"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        rustix::mount::mount("tmpfs", src.join("sub"), "tmpfs", sub_flags, None).unwrap();
        let root_fd = inroot::open_root(&root).unwrap();
        let opts = BindOpts {
            readonly: true,
            propagation: Propagation::RPrivate,
            recursive,
        };
        bind(
            &root,
            root_fd.as_fd(),
            &src,
            Path::new("/data"),
            opts,
            ReadonlyMethod::Remount,
        )
        .unwrap();
        (src, root)
    }

    /// The bubblewrap-style fallback (no mount_setattr) is recursive too.
    #[test]
    #[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
    fn remount_fallback_is_recursive() {
        mountkit_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        mountkit_testutil::in_mount_ns(|| {
            let (src, root) = bind_ro_by_remount(&d, MountFlags::NOSUID, BindRecursive::Enabled);
            assert_eq!(ro_check(&root.join("data/f")), Some(libc::EROFS));
            assert_eq!(ro_check(&root.join("data/sub/f")), Some(libc::EROFS));
            // The submount kept its nosuid flag, and the host side is still writable.
            let st = rustix::fs::statvfs(root.join("data/sub")).unwrap();
            assert!(st.f_flag.contains(StatVfsMountFlags::NOSUID));
            std::fs::write(src.join("sub/f"), b"host").unwrap();
            assert_eq!(std::fs::read(root.join("data/sub/f")).unwrap(), b"host");
        });
    }

    /// `bind-recursive=writable` with the fallback: only the top is read-only.
    #[test]
    #[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
    fn remount_fallback_writable_keeps_submounts_writable() {
        mountkit_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        mountkit_testutil::in_mount_ns(|| {
            let (_src, root) = bind_ro_by_remount(&d, MountFlags::empty(), BindRecursive::Writable);
            assert_eq!(ro_check(&root.join("data/f")), Some(libc::EROFS));
            std::fs::write(root.join("data/sub/f"), b"ok").unwrap();
        });
    }

    /// The target directory is swapped for a symlink to the outside after it was resolved: the
    /// mount lands on the directory that was resolved (now renamed), never outside the root.
    #[test]
    #[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
    fn swapped_symlink_after_resolution_cannot_redirect() {
        mountkit_testutil::require_root();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        mountkit_testutil::in_mount_ns(|| {
            let (src, root, outside) = (d.join("src"), d.join("root"), d.join("outside"));
            std::fs::create_dir_all(&src).unwrap();
            std::fs::write(src.join("marker"), b"bound").unwrap();
            std::fs::create_dir_all(root.join("data")).unwrap();
            std::fs::create_dir_all(&outside).unwrap();
            let root_fd = inroot::open_root(&root).unwrap();
            let tgt = inroot::mkdir_all(root_fd.as_fd(), Path::new("/data"), 0o755).unwrap();
            // The attack: between resolution and mounting.
            std::fs::rename(root.join("data"), root.join("moved")).unwrap();
            symlink(&outside, root.join("data")).unwrap();
            let source = open_source(&src).unwrap();
            let opts = BindOpts {
                readonly: false,
                propagation: Propagation::RPrivate,
                recursive: BindRecursive::Enabled,
            };
            bind_onto(
                &source,
                &src,
                tgt.as_fd(),
                Path::new("/data"),
                opts,
                ReadonlyMethod::Auto,
            )
            .unwrap();
            assert_eq!(std::fs::read(root.join("moved/marker")).unwrap(), b"bound");
            assert!(
                !outside.join("marker").exists(),
                "the mount went outside the root"
            );
            assert!(mountkit_safefs::mounts_under(&outside).unwrap().is_empty());
        });
    }

    #[test]
    fn missing_source_errors_name_the_path() {
        let err = open_source(Path::new("/nonexistent/mountkit-src"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("/nonexistent/mountkit-src") && err.contains("cannot open"),
            "{err}"
        );
    }
}
