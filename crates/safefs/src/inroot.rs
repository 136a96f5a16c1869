//! Path resolution inside a root directory, as if that directory were `/`.
//!
//! A container's image may contain symlinks such as `/data -> /../../../etc`. When mountkit mounts a
//! volume at `/data`, it must land at `<root>/etc`, never at the host's `/etc`. Every function here
//! resolves with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `..` at the root stays at the root,
//! absolute symlinks are taken relative to the root, and `/proc/self/...`-style magic links are refused.
//! Where the kernel lacks `openat2` (before Linux 5.6) an equivalent walk, one component at a time with
//! `O_NOFOLLOW` and symlinks expanded by hand, gives the same answers.
//!
//! The functions return `O_PATH` descriptors: mount onto [`fd_path`] of the descriptor (or with the new
//! mount API onto the descriptor itself), so that a symlink swapped in after resolution cannot redirect
//! the mount.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::{Error, Result};

const MAX_SYMLINKS: usize = 40;

fn rel(path: &Path) -> PathBuf {
    let r: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if r.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        r
    }
}

fn in_root_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::InRoot {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn errno_err(op: &str, path: &Path, e: Errno) -> Error {
    in_root_err(path, format!("cannot {op}: {}", std::io::Error::from(e)))
}

/// Opens `root` as an `O_PATH` directory descriptor, the anchor for the other functions.
pub fn open_root(root: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open root directory", root, e))
}

/// `"/proc/self/fd/N"` for a descriptor: a path that mount(2) and friends accept and that names exactly
/// the object the descriptor refers to.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn resolve_errno(root: BorrowedFd<'_>, path: &Path) -> std::result::Result<OwnedFd, Errno> {
    let r = rel(path);
    match rustix::fs::openat2(
        root,
        &r,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Err(Errno::NOSYS) => walk(root, &r),
        Err(Errno::AGAIN) => walk(root, &r), // openat2 may ask for a retry under rename races
        other => other,
    }
}

/// Resolves `path` inside `root` and returns an `O_PATH` descriptor of what it names (following symlinks,
/// including a final one, but never out of `root`).
pub fn resolve(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd> {
    resolve_errno(root, path).map_err(|e| errno_err("resolve", path, e))
}

/// The fallback resolver (also used directly by tests): walks one component at a time with `O_NOFOLLOW`,
/// expanding symlinks by hand; `..` at the root stays at the root.
pub fn walk(root: BorrowedFd<'_>, path: &Path) -> std::result::Result<OwnedFd, Errno> {
    let dup = || {
        rustix::fs::openat(
            root,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    // `stack` holds the directories from the root down to the current one.
    let mut stack: Vec<OwnedFd> = vec![dup()?];
    // Components still to walk, in reverse order so that pop() gives the next one.
    let mut todo: Vec<Vec<u8>> = split(path.as_os_str().as_bytes());
    let mut links = 0;
    let mut last: Option<OwnedFd> = None;
    while let Some(name) = todo.pop() {
        if let Some(l) = last.take() {
            // The previous component was not a directory but more components follow.
            drop(l);
            return Err(Errno::NOTDIR);
        }
        if name == b"." {
            continue;
        }
        if name == b".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let cur = stack.last().expect("root stays on the stack");
        let name_os = OsStr::from_bytes(&name);
        let fd = rustix::fs::openat(
            cur,
            name_os,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&fd)?;
        match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Symlink => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP);
                }
                let target = rustix::fs::readlinkat(cur, name_os, Vec::new())?;
                let target = target.as_bytes();
                if target.first() == Some(&b'/') {
                    stack.truncate(1);
                }
                let mut parts = split(target);
                parts.reverse();
                // `todo` is reversed: push the link's parts so that they come next, in order.
                for p in parts.into_iter().rev() {
                    todo.push(p);
                }
            }
            rustix::fs::FileType::Directory => stack.push(fd),
            _ => last = Some(fd),
        }
    }
    match last {
        Some(fd) => Ok(fd),
        None => Ok(stack.pop().expect("root stays on the stack")),
    }
}

/// Path components as byte strings, in reverse order (the next one last).
fn split(path: &[u8]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| c.to_vec())
        .collect();
    v.reverse();
    v
}

fn is_dir(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd)
        .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
        .unwrap_or(false)
}

/// Creates every missing directory of `path` inside `root` (with `mode`, owned by the caller) and returns
/// an `O_PATH` descriptor of the last one. Existing symlinks along the way are followed inside the root.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd> {
    let r = rel(path);
    // The common case first: the whole path exists already (one openat2). Anything else takes the
    // walk below, whose errors name the component at fault.
    if let Ok(fd) = resolve_errno(root, &r)
        && is_dir(&fd)
    {
        return Ok(fd);
    }
    let comps: Vec<&OsStr> = r.iter().collect();
    let mut parent: OwnedFd = resolve(root, Path::new("."))?;
    let mut prefix = PathBuf::new();
    for c in comps {
        prefix.push(c);
        let fd = match resolve_errno(root, &prefix) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&parent, c, Mode::from_raw_mode(mode)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(errno_err("create directory", &prefix, e)),
                }
                resolve_errno(root, &prefix).map_err(|e| match e {
                    Errno::NOENT => {
                        in_root_err(&prefix, "is a dangling symlink; refusing to create its target")
                    }
                    e => errno_err("resolve", &prefix, e),
                })?
            }
            Err(e) => return Err(errno_err("resolve", &prefix, e)),
        };
        if !is_dir(&fd) {
            return Err(in_root_err(&prefix, "exists and is not a directory"));
        }
        parent = fd;
    }
    Ok(parent)
}

/// Makes sure `path` exists inside `root` as a non-directory (creating missing parent directories with
/// mode 0755 and an empty regular file with `mode`) and returns an `O_PATH` descriptor of it. An existing
/// directory at `path` is an error (a file cannot be bind-mounted onto a directory).
pub fn create_file(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd> {
    let r = rel(path);
    let fd = match resolve_errno(root, &r) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            let (Some(parent), Some(name)) = (r.parent(), r.file_name()) else {
                return Err(in_root_err(path, "has no file name"));
            };
            let dir = mkdir_all(root, parent, 0o755)?;
            match rustix::fs::openat(
                &dir,
                name,
                OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            ) {
                Ok(_) | Err(Errno::EXIST) => {}
                Err(e) => return Err(errno_err("create file", path, e)),
            }
            resolve_errno(root, &r).map_err(|e| match e {
                Errno::NOENT => in_root_err(path, "is a dangling symlink; refusing to create its target"),
                e => errno_err("resolve", path, e),
            })?
        }
        Err(e) => return Err(errno_err("resolve", path, e)),
    };
    if is_dir(&fd) {
        return Err(in_root_err(path, "is a directory, expected a file"));
    }
    Ok(fd)
}

/// The path of `fd` as the kernel sees it (`readlink /proc/self/fd/N`), for messages and tests.
pub fn real_path(fd: BorrowedFd<'_>) -> Result<PathBuf> {
    let p = fd_path(fd);
    std::fs::read_link(&p).map_err(|e| Error::io("read link", p, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::symlink;

    /// A root with hostile symlinks, and a sibling "host" directory they try to reach.
    fn hostile() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(dir.path().join("host/etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "inside").unwrap();
        symlink("/../../../etc", root.join("data")).unwrap();
        symlink("../../../../etc", root.join("rel")).unwrap();
        symlink("/etc/passwd", root.join("pw")).unwrap();
        symlink("/nowhere/x", root.join("dangling")).unwrap();
        std::fs::write(root.join("file"), "f").unwrap();
        (dir, root)
    }

    fn both(root: &Path, p: &str) -> (PathBuf, PathBuf) {
        let r = open_root(root).unwrap();
        let a = resolve(r.as_fd(), Path::new(p)).unwrap();
        let b = walk(r.as_fd(), &rel(Path::new(p))).unwrap();
        (real_path(a.as_fd()).unwrap(), real_path(b.as_fd()).unwrap())
    }

    #[test]
    fn symlinks_resolve_inside_the_root_by_both_methods() {
        let (_d, root) = hostile();
        for p in [
            "/data",
            "rel",
            "/data/../../..",
            "pw",
            "/../../etc/passwd",
            "data/passwd",
        ] {
            let (a, b) = both(&root, p);
            assert!(a.starts_with(&root), "{p}: openat2 gave {}", a.display());
            assert_eq!(a, b, "{p}: openat2 and the walk disagree");
        }
        assert_eq!(both(&root, "/data").0, root.join("etc"));
        assert_eq!(both(&root, "pw").0, root.join("etc/passwd"));
    }

    #[test]
    fn mkdir_all_creates_through_hostile_links_inside() {
        let (_d, root) = hostile();
        let r = open_root(&root).unwrap();
        let fd = mkdir_all(r.as_fd(), Path::new("/data/sub/deeper"), 0o755).unwrap();
        assert_eq!(real_path(fd.as_fd()).unwrap(), root.join("etc/sub/deeper"));
        assert!(!root.parent().unwrap().join("host/etc/sub").exists());
        let err = mkdir_all(r.as_fd(), Path::new("/file/x"), 0o755)
            .unwrap_err()
            .to_string();
        assert!(err.contains("file") && err.contains("not a directory"), "{err}");
        let err = mkdir_all(r.as_fd(), Path::new("/dangling"), 0o755)
            .unwrap_err()
            .to_string();
        assert!(err.contains("dangling"), "{err}");
    }

    #[test]
    fn create_file_makes_parents_and_refuses_directories() {
        let (_d, root) = hostile();
        let r = open_root(&root).unwrap();
        let fd = create_file(r.as_fd(), Path::new("/a/b/conf"), 0o644).unwrap();
        assert_eq!(real_path(fd.as_fd()).unwrap(), root.join("a/b/conf"));
        let fd = create_file(r.as_fd(), Path::new("/pw"), 0o644).unwrap();
        assert_eq!(real_path(fd.as_fd()).unwrap(), root.join("etc/passwd"));
        assert!(create_file(r.as_fd(), Path::new("/etc"), 0o644).is_err());
    }

    #[test]
    fn symlink_loops_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let r = open_root(dir.path()).unwrap();
        assert!(resolve(r.as_fd(), Path::new("a")).is_err());
        assert_eq!(walk(r.as_fd(), Path::new("a")).unwrap_err(), Errno::LOOP);
    }
}
