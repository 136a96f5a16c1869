//! Extended attributes of an open file or of a path (a final symlink not followed), read whole: the
//! size is asked first and the read repeated if the list or value grew meanwhile (`ERANGE`). What the
//! layer store's tar writer and the volumes' tree copy both need.

use std::os::fd::BorrowedFd;
use std::path::Path;

use rustix::io::{Errno, Result};

/// Whose xattrs: an open file's, or those of a path (not following a final symlink).
#[derive(Debug, Clone, Copy)]
pub enum XattrsOf<'a> {
    /// The file open on this descriptor.
    Fd(BorrowedFd<'a>),
    /// The file at this path; a symlink's own xattrs if it is one.
    Path(&'a Path),
}

impl XattrsOf<'_> {
    /// The names, each without its NUL; none where the filesystem has no xattrs (`ENOTSUP`).
    pub fn names(self) -> Result<Vec<Vec<u8>>> {
        let list = loop {
            let size = match self.list_query() {
                Ok(0) | Err(Errno::NOTSUP) => return Ok(Vec::new()),
                Ok(n) => n,
                Err(e) => return Err(e),
            };
            let mut buf = vec![0u8; size];
            match self.list(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    break buf;
                }
                Err(Errno::RANGE) => continue, // grew meanwhile
                Err(e) => return Err(e),
            }
        };
        Ok(list
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect())
    }

    /// The value of `name`; `None` when it is absent (`ENODATA`) or xattrs are not supported.
    pub fn get(self, name: &std::ffi::OsStr) -> Result<Option<Vec<u8>>> {
        loop {
            let size = match self.get_query(name) {
                Ok(n) => n,
                Err(Errno::NODATA | Errno::NOTSUP) => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut buf = vec![0u8; size];
            match self.get_into(name, &mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(Some(buf));
                }
                Err(Errno::RANGE) => continue, // grew meanwhile
                Err(Errno::NODATA) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Sets `name` to `value` (created or replaced).
    pub fn set(self, name: &std::ffi::OsStr, value: &[u8]) -> Result<()> {
        let flags = rustix::fs::XattrFlags::empty();
        match self {
            XattrsOf::Fd(fd) => rustix::fs::fsetxattr(fd, name, value, flags),
            XattrsOf::Path(p) => rustix::fs::lsetxattr(p, name, value, flags),
        }
    }

    fn list_query(self) -> Result<usize> {
        match self {
            XattrsOf::Fd(fd) => rustix::fs::flistxattr_query(fd),
            XattrsOf::Path(p) => rustix::fs::llistxattr_query(p),
        }
    }

    fn list(self, buf: &mut [u8]) -> Result<usize> {
        match self {
            XattrsOf::Fd(fd) => rustix::fs::flistxattr(fd, buf),
            XattrsOf::Path(p) => rustix::fs::llistxattr(p, buf),
        }
    }

    fn get_query(self, name: &std::ffi::OsStr) -> Result<usize> {
        match self {
            XattrsOf::Fd(fd) => rustix::fs::fgetxattr_query(fd, name),
            XattrsOf::Path(p) => rustix::fs::lgetxattr_query(p, name),
        }
    }

    fn get_into(self, name: &std::ffi::OsStr, buf: &mut [u8]) -> Result<usize> {
        match self {
            XattrsOf::Fd(fd) => rustix::fs::fgetxattr(fd, name, buf),
            XattrsOf::Path(p) => rustix::fs::lgetxattr(p, name, buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::fd::AsFd;

    #[test]
    fn set_list_and_get_through_a_path_and_a_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let by_path = XattrsOf::Path(&f);
        // tmpfs before 6.6 and some filesystems have no user xattrs: nothing to check there.
        if by_path.set(OsStr::new("user.a"), b"1").is_err() {
            return;
        }
        let file = std::fs::File::open(&f).unwrap();
        let by_fd = XattrsOf::Fd(file.as_fd());
        by_fd.set(OsStr::new("user.b"), &[7u8; 300]).unwrap();
        let mut names = by_fd.names().unwrap();
        names.sort();
        assert_eq!(names, [b"user.a".to_vec(), b"user.b".to_vec()]);
        assert_eq!(by_path.get(OsStr::new("user.b")).unwrap(), Some(vec![7u8; 300]));
        assert_eq!(by_fd.get(OsStr::new("user.a")).unwrap(), Some(b"1".to_vec()));
        assert_eq!(by_fd.get(OsStr::new("user.none")).unwrap(), None);
    }
}
