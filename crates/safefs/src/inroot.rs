//! Path resolution inside a root directory, as if that directory were `/`.
//!
//! A container's image may contain symlinks such as `/data -> /../../../etc`. When mountkit mounts a
//! volume at `/data`, it must land at `<root>/etc`, never at the host's `/etc`. Every function here
//! resolves with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: `..` at the root stays at the root,
//! absolute symlinks are taken relative to the root, and `/proc/self/...`-style magic links are refused.
//! Where the kernel lacks `openat2` (before Linux 5.6) an equivalent walk, one component at a time with
//! `O_NOFOLLOW` and symlinks expanded by hand, gives the same answers.
//!
//! [`mkdir_all`] and [`create_file`] create what is missing the way Docker does (runc's in-root
//! `MkdirAll`): a mount target behind a symlink that dangles, such as an image's `/data ->
//! /srv/appdata` (or `../../srv/appdata`) where `/srv/appdata` does not exist, is resolved inside the
//! root and the missing directories (for a file bind: the parents and an empty file) are created
//! *there*, `<root>/srv/appdata`; so is `/data/sub` below such a link. This is one walk from the root:
//! each component is opened `O_PATH | O_NOFOLLOW` relative to the directory reached so far, a missing
//! one is created relative to that directory's descriptor (`mkdirat`, or `openat(O_CREAT | O_EXCL |
//! O_NOFOLLOW)` for the file), and whatever is found under the name afterwards, a symlink swapped in
//! meanwhile included, is treated like any other component: a symlink is expanded inside the root. So
//! neither a dangling link nor a racing one can make a lookup or a creation leave the root, and nothing
//! is ever created on the host. A link whose target runs through a regular file is an error naming
//! that file, a loop (more than 40 links) an `ELOOP` error.
//!
//! The functions return `O_PATH` descriptors: mount onto [`fd_path`] of the descriptor (or with the new
//! mount API onto the descriptor itself), so that a symlink swapped in after resolution cannot redirect
//! the mount.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
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
    walk_in_root(root, path, Create::Nothing).map_err(|e| e.errno)
}

/// What [`walk_in_root`] does with a component that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Create {
    /// Nothing: it is `ENOENT` (plain resolution).
    Nothing,
    /// A directory with this mode, for every component; the result must be a directory.
    Dirs(u32),
    /// A directory (0755) for every component but the last, which is an empty regular file with this
    /// mode; the result must not be a directory.
    File(u32),
}

/// Why [`walk_in_root`] failed: the cause, what it was doing, and where, as an in-root path (after
/// symlink expansion, so it may differ from the path asked for).
#[derive(Debug)]
struct WalkError {
    errno: Errno,
    op: &'static str,
    at: PathBuf,
}

impl WalkError {
    /// The public error for `path`, the path as asked for.
    fn into_error(self, path: &Path) -> Error {
        // The component at fault, when it is not simply the path asked for.
        let at = (self.at != Path::new("/").join(rel(path))).then(|| self.at.display().to_string());
        let reason = match (self.op, self.errno, at) {
            (_, Errno::NOTDIR, None) => "exists and is not a directory".to_string(),
            (_, Errno::NOTDIR, Some(at)) => format!("{at} exists and is not a directory"),
            (_, Errno::ISDIR, None) => "is a directory, expected a file".to_string(),
            (_, Errno::ISDIR, Some(at)) => format!("{at} is a directory, expected a file"),
            (op, e, None) => format!("cannot {op}: {}", std::io::Error::from(e)),
            (op, e, Some(at)) => format!("cannot {op} {at}: {}", std::io::Error::from(e)),
        };
        in_root_err(path, reason)
    }
}

fn open_nofollow(dir: BorrowedFd<'_>, name: &OsStr) -> std::result::Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The one walk behind [`walk`], [`mkdir_all`] and [`create_file`], the way runc's in-root `MkdirAll`
/// works: from the root, one component at a time, each opened `O_PATH | O_NOFOLLOW` relative to the
/// directory reached so far. A symlink is read (through its own descriptor) and its parts take its
/// place in the to-do list: an absolute one restarts at the root, `..` never climbs above the root, more
/// than [`MAX_SYMLINKS`] links or a procfs magic link is `ELOOP`. A missing component is created (per `create`) relative to
/// the current directory descriptor, `EEXIST` (a race) is accepted, and whatever is then found under
/// that name is opened again with `O_NOFOLLOW` and handled like anything else, a symlink included. So
/// neither a dangling link nor one swapped in meanwhile can lead a lookup or a creation out of the root.
fn walk_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    create: Create,
) -> std::result::Result<OwnedFd, WalkError> {
    let mut w = Walk::start(root, path)?;
    while let Some(name) = w.todo.pop() {
        if name == b"." {
            continue;
        }
        if name == b".." {
            w.up();
            continue;
        }
        let last = w.todo.is_empty();
        let fd = w.open_or_create(&name, last, create)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| w.fail("stat", e, Some(&name)))?;
        match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Symlink => w.follow(&name, &fd)?,
            rustix::fs::FileType::Directory => {
                w.stack.push(fd);
                w.names.push(name);
            }
            // Anything else ends the walk: it must be the last component, and not where a directory
            // is wanted.
            _ if last && !matches!(create, Create::Dirs(_)) => return Ok(fd),
            _ => return Err(w.fail("resolve", Errno::NOTDIR, Some(&name))),
        }
    }
    if matches!(create, Create::File(_)) {
        return Err(w.fail("resolve", Errno::ISDIR, None));
    }
    Ok(w.stack.pop().expect("root stays on the stack"))
}

/// The state of [`walk_in_root`].
struct Walk {
    /// The directories from the root down to the current one.
    stack: Vec<OwnedFd>,
    /// Their names (the root has none), for messages.
    names: Vec<Vec<u8>>,
    /// Components still to walk, in reverse order so that pop() gives the next one.
    todo: Vec<Vec<u8>>,
    /// Symlinks followed so far.
    links: usize,
}

impl Walk {
    /// At the root (opened again as a directory), with all of `path` to walk.
    fn start(root: BorrowedFd<'_>, path: &Path) -> std::result::Result<Walk, WalkError> {
        let root = rustix::fs::openat(
            root,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| WalkError {
            errno: e,
            op: "open",
            at: PathBuf::from("/"),
        })?;
        Ok(Walk {
            stack: vec![root],
            names: Vec::new(),
            todo: split(path.as_os_str().as_bytes()),
            links: 0,
        })
    }

    /// The directory reached so far.
    fn cur(&self) -> BorrowedFd<'_> {
        self.stack.last().expect("root stays on the stack").as_fd()
    }

    /// `..`: one directory up, never above the root.
    fn up(&mut self) {
        if self.stack.len() > 1 {
            self.stack.pop();
            self.names.pop();
        }
    }

    /// The in-root path of `name` in the current directory (of the current directory itself when
    /// `None`).
    fn at(&self, name: Option<&[u8]>) -> PathBuf {
        let mut p = PathBuf::from("/");
        for n in self.names.iter().map(Vec::as_slice).chain(name) {
            p.push(OsStr::from_bytes(n));
        }
        p
    }

    /// The error of `op` failing with `errno` at `name` in the current directory.
    fn fail(&self, op: &'static str, errno: Errno, name: Option<&[u8]>) -> WalkError {
        WalkError {
            errno,
            op,
            at: self.at(name),
        }
    }

    /// Opens `name` in the current directory `O_NOFOLLOW`; when it is missing and `create` says so,
    /// creates it first (`EEXIST`, a race, accepted) and opens whatever is then there.
    fn open_or_create(
        &self,
        name: &[u8],
        last: bool,
        create: Create,
    ) -> std::result::Result<OwnedFd, WalkError> {
        let cur = self.cur();
        let name_os = OsStr::from_bytes(name);
        match open_nofollow(cur, name_os) {
            Err(Errno::NOENT) if create != Create::Nothing => {
                let (op, made) = create_missing(cur, name_os, last, create);
                match made {
                    // EEXIST: something appeared meanwhile; it is looked at like anything else.
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(self.fail(op, e, Some(name))),
                }
                open_nofollow(cur, name_os).map_err(|e| self.fail("open", e, Some(name)))
            }
            Err(e) => Err(self.fail("open", e, Some(name))),
            Ok(fd) => Ok(fd),
        }
    }

    /// Follows the symlink `link`, just opened as `name` in the current directory: refused past
    /// [`MAX_SYMLINKS`] or when it may be a magic link; otherwise its target (read through `link`)
    /// takes its place in the to-do list, from the root when absolute.
    fn follow(&mut self, name: &[u8], link: &OwnedFd) -> std::result::Result<(), WalkError> {
        self.links += 1;
        if self.links > MAX_SYMLINKS || may_be_magic(self.cur(), link) {
            return Err(self.fail("resolve", Errno::LOOP, Some(name)));
        }
        // The link read through its own descriptor: the very inode that was just looked at.
        let target = rustix::fs::readlinkat(link, "", Vec::new())
            .map_err(|e| self.fail("read symlink", e, Some(name)))?;
        let target = target.as_bytes();
        if target.first() == Some(&b'/') {
            self.stack.truncate(1);
            self.names.clear();
        }
        // `split` gives the parts reversed, like `todo`: the link's come next, in order.
        self.todo.extend(split(target));
        Ok(())
    }
}

/// Creates the missing `name` in `dir` as `create` asks: the last component of a [`Create::File`]
/// walk as an empty file (`O_CREAT | O_EXCL | O_NOFOLLOW`), anything else as a directory. Returns
/// what it did, for messages, and how that went.
fn create_missing(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    last: bool,
    create: Create,
) -> (&'static str, std::result::Result<(), Errno>) {
    match create {
        Create::File(mode) if last => (
            "create file",
            rustix::fs::openat(
                dir,
                name,
                OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            )
            .map(drop),
        ),
        Create::Dirs(mode) => (
            "create directory",
            rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode)),
        ),
        _ => (
            "create directory",
            rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755)),
        ),
    }
}

/// Whether `link`, a symlink in the directory `dir`, may be a procfs magic link (`/proc/<pid>/cwd`,
/// `fd/N`, `root`, ...), which the walk refuses as `openat2(RESOLVE_NO_MAGICLINKS)` does (`ELOOP`).
/// On procfs only the symlinks at the top of the mount (`self`, `thread-self`, `mounts`, ...) are
/// plain ones; magic links all live in the per-process directories below it.
fn may_be_magic(dir: BorrowedFd<'_>, link: &OwnedFd) -> bool {
    const PROC_ROOT_INO: u64 = 1;
    match rustix::fs::fstatfs(link) {
        Ok(fs) if fs.f_type == rustix::fs::PROC_SUPER_MAGIC => {
            rustix::fs::fstat(dir).map_or(true, |st| st.st_ino != PROC_ROOT_INO)
        }
        Ok(_) => false,
        Err(_) => true,
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
/// an `O_PATH` descriptor of the last one. Existing symlinks along the way are followed inside the root,
/// dangling ones too: what they name is created inside the root (see the module documentation).
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd> {
    let r = rel(path);
    // The common case first: the whole path exists already (one openat2). Anything else takes the
    // walk, which creates what is missing and whose errors name the component at fault.
    if let Ok(fd) = resolve_errno(root, &r)
        && is_dir(&fd)
    {
        return Ok(fd);
    }
    walk_in_root(root, &r, Create::Dirs(mode)).map_err(|e| e.into_error(path))
}

/// Makes sure `path` exists inside `root` as a non-directory (creating missing parent directories with
/// mode 0755 and an empty regular file with `mode`, behind a dangling symlink too) and returns an
/// `O_PATH` descriptor of it. An existing directory at `path` is an error (a file cannot be
/// bind-mounted onto a directory).
pub fn create_file(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd> {
    let r = rel(path);
    if let Ok(fd) = resolve_errno(root, &r)
        && !is_dir(&fd)
    {
        return Ok(fd);
    }
    walk_in_root(root, &r, Create::File(mode)).map_err(|e| e.into_error(path))
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

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn mkdir_all_creates_through_hostile_links_inside() {
        let (d, root) = hostile();
        let host = d.path().join("host");
        let r = open_root(&root).unwrap();
        let fd = mkdir_all(r.as_fd(), Path::new("/data/sub/deeper"), 0o755).unwrap();
        assert_eq!(real_path(fd.as_fd()).unwrap(), root.join("etc/sub/deeper"));
        assert!(!host.join("etc/sub").exists());
        let err = mkdir_all(r.as_fd(), Path::new("/file/x"), 0o755)
            .unwrap_err()
            .to_string();
        assert!(err.contains("file") && err.contains("not a directory"), "{err}");
        // A dangling link (`/dangling -> /nowhere/x`): its target is created inside the root, as
        // runc's in-root MkdirAll does; so is a path below such a link.
        let fd = mkdir_all(r.as_fd(), Path::new("/dangling"), 0o755).unwrap();
        assert_eq!(real_path(fd.as_fd()).unwrap(), root.join("nowhere/x"));
        let fd = mkdir_all(r.as_fd(), Path::new("/dangling/sub"), 0o755).unwrap();
        assert_eq!(real_path(fd.as_fd()).unwrap(), root.join("nowhere/x/sub"));
        // Links that a naive resolution would take to the host sibling directory: a relative one that
        // climbs above the root, an absolute one naming the host path, and one below a dangling one.
        symlink("../../host/new", root.join("up")).unwrap();
        symlink(host.join("abs"), root.join("abs")).unwrap();
        std::fs::create_dir(root.join("lib")).unwrap();
        symlink("../../../host/chained", root.join("lib/chain")).unwrap();
        symlink("/lib/chain/more", root.join("via")).unwrap();
        let inside_host = root.join(host.strip_prefix("/").unwrap());
        for (p, want) in [
            ("/up/sub", root.join("host/new/sub")),
            ("up", root.join("host/new")),
            ("/abs/x", inside_host.join("abs/x")),
            ("/via/end", root.join("host/chained/more/end")),
        ] {
            let fd = mkdir_all(r.as_fd(), Path::new(p), 0o700).unwrap();
            assert_eq!(real_path(fd.as_fd()).unwrap(), want, "{p}");
            // The resolvers agree with what was created.
            let (a, b) = both(&root, p);
            assert_eq!((&a, &b), (&want, &want), "{p}");
        }
        assert_eq!(names(&host), ["etc"], "something was created on the host side");
        assert!(names(&host.join("etc")).is_empty());
        // A link to a path below a regular file: an error naming the file.
        symlink("/file/x/y", root.join("under-file")).unwrap();
        let err = mkdir_all(r.as_fd(), Path::new("/under-file"), 0o755)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("under-file") && err.contains("/file ") && err.contains("not a directory"),
            "{err}"
        );
        assert!(!root.join("file.d").exists());
        // A symlink loop is an error, not an endless walk.
        symlink("/loop-b/x", root.join("loop-a")).unwrap();
        symlink("/loop-a/x", root.join("loop-b")).unwrap();
        let err = mkdir_all(r.as_fd(), Path::new("/loop-a"), 0o755)
            .unwrap_err()
            .to_string();
        assert!(err.contains("loop-a") && err.contains("symbolic links"), "{err}");
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
    fn create_file_through_a_dangling_link_creates_inside_the_root() {
        let (d, root) = hostile();
        let host = d.path().join("host");
        let r = open_root(&root).unwrap();
        // `/etc/conf -> /opt/conf`: `/opt` (0755) and an empty `opt/conf` are made in the root.
        symlink("/opt/conf", root.join("etc/conf")).unwrap();
        let fd = create_file(r.as_fd(), Path::new("/etc/conf"), 0o600).unwrap();
        assert_eq!(real_path(fd.as_fd()).unwrap(), root.join("opt/conf"));
        let meta = std::fs::symlink_metadata(root.join("opt/conf")).unwrap();
        assert!(meta.is_file() && meta.len() == 0);
        assert!(std::fs::metadata(root.join("opt")).unwrap().is_dir());
        // Relative and absolute links aimed at the host sibling directory stay inside.
        symlink("../../host/app.conf", root.join("etc/rel.conf")).unwrap();
        let fd = create_file(r.as_fd(), Path::new("etc/rel.conf"), 0o644).unwrap();
        assert_eq!(real_path(fd.as_fd()).unwrap(), root.join("host/app.conf"));
        symlink(host.join("x/abs.conf"), root.join("abs.conf")).unwrap();
        let fd = create_file(r.as_fd(), Path::new("/abs.conf"), 0o644).unwrap();
        let inside_host = root.join(host.strip_prefix("/").unwrap());
        assert_eq!(real_path(fd.as_fd()).unwrap(), inside_host.join("x/abs.conf"));
        // A file below a dangling directory link.
        let fd = create_file(r.as_fd(), Path::new("/dangling/in/f"), 0o644).unwrap();
        assert_eq!(real_path(fd.as_fd()).unwrap(), root.join("nowhere/x/in/f"));
        assert_eq!(names(&host), ["etc"], "something was created on the host side");
        assert!(names(&host.join("etc")).is_empty());
        // A link to a path whose parent is a regular file.
        symlink("/file/conf", root.join("bad.conf")).unwrap();
        let err = create_file(r.as_fd(), Path::new("/bad.conf"), 0o644)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.conf") && err.contains("/file ") && err.contains("not a directory"),
            "{err}"
        );
        // A link to a directory is still refused for a file.
        symlink("/etc", root.join("etc-link")).unwrap();
        let err = create_file(r.as_fd(), Path::new("/etc-link"), 0o644)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a directory"), "{err}");
    }

    /// A target swapped between a directory and a symlink to the host, over and over while targets
    /// are created through it: whatever each call meets, nothing is created outside the root.
    #[test]
    fn links_swapped_in_during_creation_stay_inside() {
        let (d, root) = hostile();
        let host = d.path().join("host");
        std::fs::create_dir(root.join("x")).unwrap();
        symlink(&host, root.join("x-link")).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (stop, root) = (stop.clone(), root.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        root.join("x"),
                        rustix::fs::CWD,
                        root.join("x-link"),
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .unwrap();
                }
            })
        };
        let r = open_root(&root).unwrap();
        for i in 0..500 {
            let p = format!("/x/d{i}/e");
            let res = if i % 2 == 0 {
                mkdir_all(r.as_fd(), Path::new(&p), 0o755)
            } else {
                create_file(r.as_fd(), Path::new(&p), 0o644)
            };
            if let Ok(fd) = res {
                let at = real_path(fd.as_fd()).unwrap();
                assert!(at.starts_with(&root), "{p} reached {}", at.display());
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert_eq!(names(&host), ["etc"], "something was created on the host side");
        assert!(names(&host.join("etc")).is_empty());
    }

    /// A procfs magic link is refused by the creating walk too (its text is never taken as a path).
    #[test]
    #[ignore = "privileged: needs root (cargo xtask ci runs these as root)"]
    fn magic_links_are_refused_when_creating() {
        mountkit_testutil::require_root();
        let (_d, root) = hostile();
        std::fs::create_dir(root.join("proc")).unwrap();
        symlink("/proc/self/cwd", root.join("cwd")).unwrap();
        let cwd = std::env::current_dir().unwrap();
        mountkit_testutil::in_mount_ns(|| {
            nix::mount::mount(
                Some("proc"),
                &root.join("proc"),
                Some("proc"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .unwrap();
            let r = open_root(&root).unwrap();
            for p in ["/cwd/x", "/proc/self/cwd/x"] {
                let err = mkdir_all(r.as_fd(), Path::new(p), 0o755).unwrap_err().to_string();
                assert!(err.contains("symbolic links"), "{p}: {err}");
                let err = create_file(r.as_fd(), Path::new(p), 0o644)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains("symbolic links"), "{p}: {err}");
            }
            // `/proc/self` is a plain link: followed (the creation then fails on procfs).
            let fd = resolve(r.as_fd(), Path::new("/proc/self")).unwrap();
            let b = walk(r.as_fd(), Path::new("proc/self")).unwrap();
            assert_eq!(real_path(fd.as_fd()).unwrap(), real_path(b.as_fd()).unwrap());
            assert!(!root.join(cwd.strip_prefix("/").unwrap()).exists());
        });
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
