//! `docker diff`-style changes of a container, read from its overlay upper (writable) layer.
//!
//! Only the upper directory is walked; every entry found there is looked up in the lower layers
//! the way overlayfs itself looks it up (top layer first, stopping at whiteouts, at non-directories
//! and below opaque directories). The cost therefore grows with the number of entries in the upper
//! layer (the changes) times the number of lower layers, never with the size of the image.

use std::fmt;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tracing::{debug, trace};

use crate::{Error, Result};

/// What happened to a path, as `docker diff` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ChangeKind {
    /// The path exists in the container but in no lower (image) layer: `A`.
    Added,
    /// The path exists in the container and in the image, and the container changed it (content,
    /// metadata, or something below it for a directory): `C`.
    Changed,
    /// The container removed the path (or, for an opaque directory, replaced it): `D`.
    Deleted,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Added => "A",
            ChangeKind::Changed => "C",
            ChangeKind::Deleted => "D",
        })
    }
}

/// One line of `mountkit container diff`: a kind and an absolute path inside the container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The path, absolute within the container (`/app/x`).
    pub path: PathBuf,
}

impl fmt::Display for Change {
    /// `A /app/x`, like a `docker diff` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.path.display())
    }
}

/// Opaque-directory xattrs: the privileged (`trusted.`) form and the `userxattr` form.
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];
/// Directory-rename xattrs (`redirect_dir=on`).
const REDIRECT_XATTRS: [&str; 2] = ["trusted.overlay.redirect", "user.overlay.redirect"];

/// The changes recorded in the overlay upper directory `upper` relative to the lower layers
/// `lowers_bottom_first` (listed as for [`crate::Stack::lowers`]), sorted by path.
///
/// Read the upper directory while the overlay is unmounted (or at least quiet): a container writing
/// at the same time makes the result a snapshot of no particular instant. Semantics (Docker's
/// overlay2 driver, with containers-storage's refinements) are in the crate docs.
///
/// ```no_run
/// use std::path::{Path, PathBuf};
/// let lowers = [PathBuf::from("/store/layers/base"), PathBuf::from("/store/layers/app")];
/// for change in mountkit_overlay::changes(Path::new("/store/c1/upper"), &lowers)? {
///     println!("{change}"); // "C /app", "A /app/x", ...
/// }
/// # Ok::<(), mountkit_overlay::Error>(())
/// ```
pub fn changes(upper: &Path, lowers_bottom_first: &[PathBuf]) -> Result<Vec<Change>> {
    let lowers: Vec<&Path> = lowers_bottom_first.iter().rev().map(PathBuf::as_path).collect();
    debug!(upper = ?upper, lowers = lowers.len(), "overlay diff: walking the upper layer");
    let md = fs::symlink_metadata(upper).map_err(|source| Error::Layer {
        role: "upperdir".into(),
        path: upper.to_path_buf(),
        source,
    })?;
    if !md.is_dir() {
        return Err(Error::Layer {
            role: "upperdir".into(),
            path: upper.to_path_buf(),
            source: io::Error::from_raw_os_error(libc_enotdir()),
        });
    }
    let walker = Walker { upper, lowers };
    // Every lower layer's root is a directory and takes part in the merged root.
    let root_stack: Vec<usize> = (0..walker.lowers.len()).collect();
    let mut out = Vec::new();
    walker.walk(Path::new(""), &root_stack, &mut out)?;
    // PathBuf orders component by component: "/a", "/a/x", "/a-b" (a directory before its content).
    out.sort_by(|a, b| a.path.cmp(&b.path));
    debug!(upper = ?upper, changes = out.len(), "overlay diff done");
    Ok(out)
}

fn libc_enotdir() -> i32 {
    rustix::io::Errno::NOTDIR.raw_os_error()
}

/// What the lower layers hold at one path.
#[derive(Debug)]
struct Lower {
    /// The topmost visible lower object at the path (`None`: absent or whited out).
    found: Option<Metadata>,
    /// Indexes (into the top-first lowers) of the layers whose directory at this path merges into
    /// the lower view of the directory, top first. Empty unless `found` is a directory.
    stack: Vec<usize>,
}

struct Walker<'a> {
    upper: &'a Path,
    /// Top first.
    lowers: Vec<&'a Path>,
}

impl Walker<'_> {
    /// Reports the changes below the upper directory `rel` (relative; "" is the root), whose lower
    /// view is made of the layers `stack`. Returns whether anything below was reported.
    fn walk(&self, rel: &Path, stack: &[usize], out: &mut Vec<Change>) -> Result<bool> {
        let dir = self.upper.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| io_err(format!("reading the directory {dir:?} of the upper layer"), e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| io_err(format!("reading the directory {dir:?} of the upper layer"), e))?;
        names.sort();
        let mut any = false;
        for name in names {
            let rel = rel.join(&name);
            let path = self.upper.join(&rel);
            let md = fs::symlink_metadata(&path)
                .map_err(|e| io_err(format!("lstat of {path:?} in the upper layer"), e))?;
            let kind = if is_whiteout(&md) {
                Some(ChangeKind::Deleted)
            } else {
                let lower = self.lookup(stack, &rel)?;
                if md.is_dir() {
                    if let Some((xattr, _)) = first_xattr(&path, &REDIRECT_XATTRS)? {
                        return Err(Error::RedirectedDir {
                            path: path.clone(),
                            xattr,
                        });
                    }
                    let below = self.walk(&rel, &lower.stack, out)?;
                    classify_dir(&md, lower.found.as_ref(), is_opaque(&path)?, below)
                } else if lower.found.is_some() {
                    Some(ChangeKind::Changed)
                } else {
                    Some(ChangeKind::Added)
                }
            };
            if let Some(kind) = kind {
                let change = Change {
                    kind,
                    path: Path::new("/").join(&rel),
                };
                trace!(%change, "overlay diff");
                out.push(change);
                any = true;
            }
        }
        Ok(any)
    }

    /// Looks `rel` up in the lower layers `stack` (top first; the layers where `rel`'s parent is a
    /// merged directory), as overlayfs does.
    fn lookup(&self, stack: &[usize], rel: &Path) -> Result<Lower> {
        let mut lower = Lower {
            found: None,
            stack: Vec::new(),
        };
        for &i in stack {
            let p = self.lowers[i].join(rel);
            let md = match fs::symlink_metadata(&p) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc_enotdir()) => {
                    continue;
                }
                Err(e) => {
                    return Err(io_err(
                        format!(
                            "lstat of {p:?} in lower layer {} (of {}, 0 = bottom)",
                            self.lowers.len() - 1 - i,
                            self.lowers.len()
                        ),
                        e,
                    ));
                }
            };
            if is_whiteout(&md) {
                break; // deleted in this layer: nothing below shows through
            }
            let is_dir = md.is_dir();
            if lower.found.is_none() {
                lower.found = Some(md);
            }
            if !is_dir {
                // On top, a non-directory hides everything below it; under a directory, it is
                // hidden itself and ends the merge.
                break;
            }
            lower.stack.push(i);
            if is_opaque(&p)? {
                break;
            }
        }
        Ok(lower)
    }
}

/// The change reported for a directory of the upper layer, or `None` when it is only there as a
/// (metadata-identical) copy of a lower directory with nothing changed below it.
fn classify_dir(upper: &Metadata, lower: Option<&Metadata>, opaque: bool, below: bool) -> Option<ChangeKind> {
    match lower {
        None => Some(ChangeKind::Added),
        // Opaque over something the image has: the directory was removed and made again.
        Some(_) if opaque => Some(ChangeKind::Deleted),
        Some(l) if l.is_dir() && !below && same_dir_metadata(upper, l) => None,
        Some(_) => Some(ChangeKind::Changed),
    }
}

/// Mode, owner and modification time equal (Docker compares size too; directory sizes depend on
/// the filesystem's history, not on what the container did, so mountkit does not).
fn same_dir_metadata(a: &Metadata, b: &Metadata) -> bool {
    a.mode() == b.mode()
        && a.uid() == b.uid()
        && a.gid() == b.gid()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
}

/// An overlayfs whiteout: a character device with device number 0/0.
fn is_whiteout(md: &Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(path: &Path) -> Result<bool> {
    Ok(first_xattr(path, &OPAQUE_XATTRS)?.is_some_and(|(_, v)| v == b"y"))
}

/// The first of `names` set on `path` (not following a final symlink), with its value.
fn first_xattr(path: &Path, names: &[&'static str]) -> Result<Option<(&'static str, Vec<u8>)>> {
    for &name in names {
        let mut buf = [0u8; 256];
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => return Ok(Some((name, buf[..n].to_vec()))),
            // Not set, not readable without privileges (trusted.*: invisible), or no xattrs.
            Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP | rustix::io::Errno::PERM) => {}
            // Longer than any overlay flag value: present.
            Err(rustix::io::Errno::RANGE) => return Ok(Some((name, Vec::new()))),
            Err(e) => {
                return Err(io_err(
                    format!("reading the xattr {name:?} of {path:?}"),
                    io::Error::from(e),
                ));
            }
        }
    }
    Ok(None)
}

fn io_err(what: String, source: io::Error) -> Error {
    Error::Io { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn c(kind: ChangeKind, path: &str) -> Change {
        Change {
            kind,
            path: PathBuf::from(path),
        }
    }

    /// Gives `to` the mode and times of `from` (as a copy-up does).
    fn copy_meta(from: &Path, to: &Path) {
        let md = fs::metadata(from).unwrap();
        fs::set_permissions(to, md.permissions()).unwrap();
        File::open(to)
            .unwrap()
            .set_times(
                fs::FileTimes::new()
                    .set_modified(md.modified().unwrap())
                    .set_accessed(md.accessed().unwrap()),
            )
            .unwrap();
    }

    struct Tree {
        _tmp: tempfile::TempDir,
        upper: PathBuf,
        bottom: PathBuf,
        top: PathBuf,
    }

    fn tree() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let (upper, bottom, top) = (
            tmp.path().join("upper"),
            tmp.path().join("l0"),
            tmp.path().join("l1"),
        );
        for d in [&upper, &bottom, &top] {
            fs::create_dir(d).unwrap();
        }
        Tree {
            _tmp: tmp,
            upper,
            bottom,
            top,
        }
    }

    #[test]
    fn display_is_docker_diff_line() {
        assert_eq!(c(ChangeKind::Added, "/app/x").to_string(), "A /app/x");
        assert_eq!(c(ChangeKind::Changed, "/app").to_string(), "C /app");
        assert_eq!(c(ChangeKind::Deleted, "/etc/y").to_string(), "D /etc/y");
    }

    #[test]
    fn added_changed_and_parent_dir() {
        let t = tree();
        fs::create_dir(t.bottom.join("app")).unwrap();
        fs::write(t.bottom.join("app/a"), "a").unwrap();
        fs::create_dir(t.upper.join("app")).unwrap();
        fs::write(t.upper.join("app/a"), "changed").unwrap();
        fs::write(t.upper.join("app/new"), "n").unwrap();
        copy_meta(&t.bottom.join("app"), &t.upper.join("app"));
        let got = changes(&t.upper, &[t.bottom.clone(), t.top.clone()]).unwrap();
        assert_eq!(
            got,
            vec![
                c(ChangeKind::Changed, "/app"),
                c(ChangeKind::Changed, "/app/a"),
                c(ChangeKind::Added, "/app/new"),
            ]
        );
    }

    #[test]
    fn copied_up_dir_reported_only_when_different() {
        let t = tree();
        fs::create_dir(t.top.join("etc")).unwrap();
        fs::create_dir(t.upper.join("etc")).unwrap();
        copy_meta(&t.top.join("etc"), &t.upper.join("etc"));
        let lowers = [t.bottom.clone(), t.top.clone()];
        assert_eq!(changes(&t.upper, &lowers).unwrap(), vec![]);
        fs::set_permissions(
            t.upper.join("etc"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        assert_eq!(
            changes(&t.upper, &lowers).unwrap(),
            vec![c(ChangeKind::Changed, "/etc")]
        );
    }

    #[test]
    fn new_dir_and_its_content_are_added_sorted_by_component() {
        let t = tree();
        fs::create_dir_all(t.upper.join("a/sub")).unwrap();
        fs::write(t.upper.join("a/sub/f"), "").unwrap();
        fs::write(t.upper.join("a-b"), "").unwrap();
        std::os::unix::fs::symlink("/nowhere", t.upper.join("a/link")).unwrap();
        let got = changes(&t.upper, std::slice::from_ref(&t.bottom)).unwrap();
        assert_eq!(
            got,
            vec![
                c(ChangeKind::Added, "/a"),
                c(ChangeKind::Added, "/a/link"),
                c(ChangeKind::Added, "/a/sub"),
                c(ChangeKind::Added, "/a/sub/f"),
                c(ChangeKind::Added, "/a-b"),
            ]
        );
    }

    #[test]
    fn lookup_is_top_first_and_non_dirs_hide_lower_layers() {
        let t = tree();
        // bottom: x/f (a dir); top: x is a file, so x/f is not in the lower view.
        fs::create_dir(t.bottom.join("x")).unwrap();
        fs::write(t.bottom.join("x/f"), "").unwrap();
        fs::write(t.top.join("x"), "").unwrap();
        // bottom: y is a file; top: y is a dir -> y/g in top counts, y is a directory.
        fs::write(t.bottom.join("y"), "").unwrap();
        fs::create_dir(t.top.join("y")).unwrap();
        fs::write(t.top.join("y/g"), "").unwrap();
        let w = Walker {
            upper: &t.upper,
            lowers: vec![&t.top, &t.bottom],
        };
        let x = w.lookup(&[0, 1], Path::new("x")).unwrap();
        assert!(x.found.unwrap().is_file());
        assert!(x.stack.is_empty());
        let y = w.lookup(&[0, 1], Path::new("y")).unwrap();
        assert!(y.found.unwrap().is_dir());
        assert_eq!(y.stack, vec![0]);
        assert!(w.lookup(&y.stack, Path::new("y/g")).unwrap().found.is_some());
        assert!(w.lookup(&[0, 1], Path::new("missing")).unwrap().found.is_none());
        // Both layers have dir z: both merge, top first.
        fs::create_dir(t.bottom.join("z")).unwrap();
        fs::create_dir(t.top.join("z")).unwrap();
        assert_eq!(w.lookup(&[0, 1], Path::new("z")).unwrap().stack, vec![0, 1]);
    }

    #[test]
    fn opaque_upper_dir_is_deleted_if_the_image_has_it_else_added() {
        let t = tree();
        fs::create_dir(t.bottom.join("old")).unwrap();
        fs::write(t.bottom.join("old/x"), "").unwrap();
        fs::create_dir(t.upper.join("old")).unwrap();
        fs::write(t.upper.join("old/x"), "").unwrap();
        fs::write(t.upper.join("old/y"), "").unwrap();
        fs::create_dir(t.upper.join("fresh")).unwrap();
        for d in ["old", "fresh"] {
            let p = t.upper.join(d);
            if let Err(e) =
                rustix::fs::lsetxattr(&p, "user.overlay.opaque", b"y", rustix::fs::XattrFlags::empty())
            {
                eprintln!(
                    "SKIP opaque_upper_dir_is_deleted_if_the_image_has_it_else_added: user xattrs unsupported here ({e})"
                );
                return;
            }
        }
        let got = changes(&t.upper, std::slice::from_ref(&t.bottom)).unwrap();
        assert_eq!(
            got,
            vec![
                c(ChangeKind::Added, "/fresh"),
                c(ChangeKind::Deleted, "/old"),
                c(ChangeKind::Changed, "/old/x"),
                c(ChangeKind::Added, "/old/y"),
            ]
        );
    }

    #[test]
    fn missing_upper_is_an_error_naming_it() {
        let t = tree();
        let missing = t.upper.join("nope");
        let err = changes(&missing, std::slice::from_ref(&t.bottom)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("upperdir") && msg.contains("nope"), "{msg}");
        fs::write(&missing, "").unwrap();
        assert!(changes(&missing, std::slice::from_ref(&t.bottom)).is_err());
    }
}
