//! The canonical tar writer: turns a directory tree into a deterministic tar stream.
//!
//! The same tree always gives the same bytes, so its sha256 is a stable layer ID, and a layer
//! unpacked in the store exports back to the very stream it was imported from (when it was imported
//! from a directory). The rules:
//!
//! - Depth-first; the children of each directory are sorted by their member name (bytewise), so a
//!   directory always precedes its contents. The root directory itself has no entry.
//! - ustar headers: member name, mode (permission bits `0o7777`), numeric uid/gid, mtime (whole
//!   seconds), size, type, link name, device numbers. uname/gname are empty, there is no atime or
//!   ctime. When a name or link name does not fit (100 bytes), a PAX `x` header carries `path` /
//!   `linkpath`; xattrs go into PAX `SCHILY.xattr.<name>` records, sorted by name. PAX headers are named
//!   `././@PaxHeader` with mode 0644, owner 0:0 and mtime 0. The stream ends with two zero blocks.
//! - Hard links: the first name of a regular file with several links (in walk order) carries the data;
//!   later names are `link` entries pointing at it.
//! - Whiteouts: a 0/0 character device `NAME` (overlay whiteout) or a file `.wh.NAME` (OCI whiteout)
//!   becomes an empty regular member `.wh.NAME` with the device's (or file's) mode, owner and mtime. A
//!   directory with `trusted.overlay.opaque=y` or holding a `.wh..wh..opq` file gets an empty
//!   `.wh..wh..opq` member with fixed metadata (mode 0644, owner 0:0, mtime 0: an xattr has none of its
//!   own). `trusted.overlay.*` xattrs are never exported (they are overlayfs' own bookkeeping).
//! - Sockets cannot be archived and are skipped (as GNU tar does).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use tar::{EntryType, Header};

use crate::error::{Error, Result};
use crate::rules::{OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, Whiteout, decode_whiteout, encode_whiteout};

const BLOCK: usize = 512;

/// Writes canonical tar streams to `out`.
pub(crate) struct TarWriter<W: Write> {
    out: W,
    /// (dev, ino) of regular files with several links -> the member name that carried the data.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Entries written (PAX headers not counted).
    pub entries: u64,
    /// Bytes of the stream so far.
    pub bytes: u64,
    /// Only count: file contents are neither read nor written (see [`canonical_size`]).
    sizing: bool,
    /// A plain tree, not a layer: names and 0/0 character devices are what they are (no whiteouts,
    /// no opaque markers); see [`write_plain`].
    plain: bool,
}

enum Item {
    /// An ordinary file, directory, link, device or fifo.
    Plain(Metadata),
    /// A whiteout (from a 0/0 char device or a `.wh.` file), with the metadata of that inode.
    Whiteout(Metadata),
    /// The opaque marker of the directory being walked.
    Opaque,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W) -> TarWriter<W> {
        TarWriter {
            out,
            links: HashMap::new(),
            entries: 0,
            bytes: 0,
            sizing: false,
            plain: false,
        }
    }

    /// Writes every entry of the tree at `root` (not the root itself).
    pub(crate) fn write_tree(&mut self, root: &Path) -> Result<()> {
        // The root itself may be a symlink to a directory (as `tar -C link` follows it); nothing below it
        // is ever followed.
        let meta = std::fs::metadata(root).map_err(|e| Error::io("stat", root, e))?;
        if !meta.is_dir() {
            return Err(Error::Corrupt {
                what: format!("layer source {}", root.display()),
                reason: "is not a directory".into(),
            });
        }
        if self.plain {
            // A plain tree's root has an owner and a mode worth keeping (a volume's, say): `./`.
            let mut h = new_header(EntryType::Directory);
            set_common(&mut h, &meta);
            let xattrs = xattrs_of(root, false)?;
            self.emit(h, b"./", None, &xattrs, io::empty(), 0)?;
        }
        self.walk(root, &mut Vec::new())
    }

    /// Ends the archive (two zero blocks) and hands back the writer.
    pub(crate) fn finish(mut self) -> Result<W> {
        self.write(&[0u8; 2 * BLOCK])?;
        self.out
            .flush()
            .map_err(|e| Error::io("flush", "tar stream", e))?;
        Ok(self.out)
    }

    fn walk(&mut self, dir: &Path, rel: &mut Vec<u8>) -> Result<()> {
        let mut items: Vec<(Vec<u8>, Item)> = Vec::new();
        let mut opaque = !self.plain && xattr_get(dir, OVERLAY_OPAQUE_XATTR)?.is_some_and(|v| v == b"y");
        let rd = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("read directory", dir, e))?;
            let name = ent.file_name();
            let path = ent.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
            let ft = meta.file_type();
            let decoded = match self.plain {
                true => Ok(Whiteout::None),
                false => decode_whiteout(name.as_bytes()),
            };
            match decoded {
                Ok(Whiteout::Opaque) => opaque = true,
                Ok(Whiteout::Internal) => {
                    tracing::debug!(path = %path.display(), "skipping AUFS-internal name")
                }
                Ok(Whiteout::Delete(_)) => items.push((name.as_bytes().to_vec(), Item::Whiteout(meta))),
                Err(reason) => {
                    return Err(Error::Corrupt {
                        what: format!("layer source entry {}", path.display()),
                        reason: reason.into(),
                    });
                }
                Ok(Whiteout::None) if !self.plain && ft.is_char_device() && meta.rdev() == 0 => {
                    items.push((encode_whiteout(name.as_bytes()), Item::Whiteout(meta)))
                }
                Ok(Whiteout::None) if ft.is_socket() => {
                    tracing::debug!(path = %path.display(), "skipping socket: tar cannot hold one")
                }
                Ok(Whiteout::None) => items.push((name.as_bytes().to_vec(), Item::Plain(meta))),
            }
        }
        if opaque {
            items.push((OPAQUE_MARKER.as_bytes().to_vec(), Item::Opaque));
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items.dedup_by(|later, earlier| later.0 == earlier.0);

        for (name, item) in items {
            let base = rel.len();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(&name);
            // The child's path on disk: for an overlay whiteout the tar name differs from the file name.
            let result = match item {
                Item::Opaque => {
                    let mut h = new_header(EntryType::Regular);
                    h.set_mode(0o644);
                    self.emit(h, rel, None, &[], io::empty(), 0)
                }
                Item::Whiteout(meta) => {
                    let mut h = new_header(EntryType::Regular);
                    set_common(&mut h, &meta);
                    self.emit(h, rel, None, &[], io::empty(), 0)
                }
                Item::Plain(meta) => self.plain(&dir.join(OsStr::from_bytes(&name)), rel, &meta),
            };
            rel.truncate(base);
            result?;
        }
        Ok(())
    }

    fn plain(&mut self, path: &Path, rel: &mut Vec<u8>, meta: &Metadata) -> Result<()> {
        let ft = meta.file_type();
        let xattrs = if ft.is_symlink() {
            xattrs_of(path, true)?
        } else {
            xattrs_of(path, false)?
        };
        if ft.is_dir() {
            let mut h = new_header(EntryType::Directory);
            set_common(&mut h, meta);
            rel.push(b'/');
            let r = self.emit(h, rel, None, &xattrs, io::empty(), 0);
            rel.pop();
            r?;
            return self.walk(path, rel);
        }
        if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key).cloned() {
                    let mut h = new_header(EntryType::Link);
                    set_common(&mut h, meta);
                    return self.emit(h, rel, Some(&first), &[], io::empty(), 0);
                }
                self.links.insert(key, rel.clone());
            }
            let mut h = new_header(EntryType::Regular);
            set_common(&mut h, meta);
            h.set_size(meta.len());
            if self.sizing {
                return self.emit(h, rel, None, &xattrs, io::empty(), meta.len());
            }
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc_o_nofollow())
                .open(path)
                .map_err(|e| Error::io("open", path, e))?;
            return self
                .emit(h, rel, None, &xattrs, f, meta.len())
                .map_err(|e| match e {
                    Error::Corrupt { reason, .. } => Error::Corrupt {
                        what: format!("file {}", path.display()),
                        reason,
                    },
                    e => e,
                });
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| Error::io("read link", path, e))?;
            let mut h = new_header(EntryType::Symlink);
            set_common(&mut h, meta);
            return self.emit(
                h,
                rel,
                Some(target.as_os_str().as_bytes()),
                &xattrs,
                io::empty(),
                0,
            );
        }
        let ty = if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else if ft.is_fifo() {
            EntryType::Fifo
        } else {
            return Err(Error::Corrupt {
                what: format!("layer source entry {}", path.display()),
                reason: "is of a file type a layer cannot hold".into(),
            });
        };
        let mut h = new_header(ty);
        set_common(&mut h, meta);
        if ty != EntryType::Fifo {
            let rdev = meta.rdev();
            set_dev(&mut h, rustix::fs::major(rdev), rustix::fs::minor(rdev));
        }
        self.emit(h, rel, None, &xattrs, io::empty(), 0)
    }

    /// Writes one member: an optional PAX header, the ustar header, the data and its padding.
    fn emit(
        &mut self,
        mut h: Header,
        name: &[u8],
        link: Option<&[u8]>,
        xattrs: &[(String, Vec<u8>)],
        data: impl Read,
        size: u64,
    ) -> Result<()> {
        let mut pax: Vec<(&str, &[u8])> = Vec::new();
        if name.len() > 100 {
            pax.push(("path", name));
        }
        if let Some(link) = link.filter(|l| l.len() > 100) {
            pax.push(("linkpath", link));
        }
        let keys: Vec<String> = xattrs.iter().map(|(k, _)| format!("SCHILY.xattr.{k}")).collect();
        for (k, (_, v)) in keys.iter().zip(xattrs) {
            pax.push((k, v));
        }
        if !pax.is_empty() {
            let mut body = Vec::new();
            for (k, v) in &pax {
                pax_record(&mut body, k, v);
            }
            let mut ph = new_header(EntryType::XHeader);
            ph.set_mode(0o644);
            ph.set_size(body.len() as u64);
            set_name(&mut ph, b"././@PaxHeader");
            ph.set_cksum();
            self.write(ph.as_bytes())?;
            self.write(&body)?;
            self.pad(body.len() as u64)?;
        }
        set_name(&mut h, name);
        if let Some(link) = link {
            let n = link.len().min(100);
            h.as_old_mut().linkname[..n].copy_from_slice(&link[..n]);
        }
        h.set_cksum();
        self.write(h.as_bytes())?;
        let copied = if self.sizing {
            size
        } else {
            io::copy(&mut data.take(size), &mut self.out)
                .map_err(|e| Error::io("copy", String::from_utf8_lossy(name).into_owned(), e))?
        };
        self.bytes += copied;
        if copied != size {
            return Err(Error::Corrupt {
                what: String::from_utf8_lossy(name).into_owned(),
                reason: format!("changed while being archived: expected {size} bytes, read {copied}"),
            });
        }
        self.pad(size)?;
        self.entries += 1;
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.bytes += bytes.len() as u64;
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io("write", "tar stream", e))
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.write(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }
}

fn libc_o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

fn new_header(ty: EntryType) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(ty);
    h.set_mode(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(0);
    h
}

fn set_common(h: &mut Header, meta: &Metadata) {
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid().into());
    h.set_gid(meta.gid().into());
    h.set_mtime(meta.mtime().max(0) as u64);
}

fn set_dev(h: &mut Header, major: u32, minor: u32) {
    // Both cannot fail on a ustar header (they only fail on old-style headers).
    let _ = h.set_device_major(major);
    let _ = h.set_device_minor(minor);
}

fn set_name(h: &mut Header, name: &[u8]) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name[..n]);
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
pub(crate) fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// One xattr of `path` (not following a symlink), `None` when absent or unsupported.
fn xattr_get(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    loop {
        let size = match rustix::fs::lgetxattr_query(path, name) {
            Ok(n) => n,
            Err(rustix::io::Errno::NODATA | rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(Error::io("read xattr of", path, e)),
        };
        let mut buf = vec![0u8; size];
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::RANGE) => continue, // grew meanwhile
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(e) => return Err(Error::io("read xattr of", path, e)),
        }
    }
}

/// All xattrs of `path` worth archiving (not `trusted.overlay.*`), sorted by name.
fn xattrs_of(path: &Path, _symlink: bool) -> Result<Vec<(String, Vec<u8>)>> {
    let names = loop {
        let size = match rustix::fs::llistxattr_query(path) {
            Ok(0) | Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Ok(n) => n,
            Err(e) => return Err(Error::io("list xattrs of", path, e)),
        };
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                break buf;
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(Error::io("list xattrs of", path, e)),
        }
    };
    let mut out = Vec::new();
    for raw in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else {
            tracing::debug!(path = %path.display(), "skipping xattr with a non-UTF-8 name");
            continue;
        };
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        if let Some(v) = xattr_get(path, name)? {
            out.push((name.to_string(), v));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes the canonical tar stream of `root` to `out`; returns the number of entries.
pub(crate) fn write_canonical(root: &Path, out: impl Write) -> Result<u64> {
    let mut w = TarWriter::new(out);
    w.write_tree(root)?;
    let n = w.entries;
    w.finish()?;
    Ok(n)
}

/// Writes the tar stream of the plain tree `root` (not a layer) to `out`: the canonical rules without
/// the whiteout ones. Returns the number of entries.
pub(crate) fn write_plain(root: &Path, out: impl Write) -> Result<u64> {
    let mut w = TarWriter::new(out);
    w.plain = true;
    w.write_tree(root)?;
    let n = w.entries;
    w.finish()?;
    Ok(n)
}

/// The size of the canonical tar stream of `root`, from a walk of its metadata alone (names,
/// sizes, link targets, xattrs; no file is opened). A tree that changes meanwhile may differ.
pub(crate) fn canonical_size(root: &Path) -> Result<u64> {
    let mut w = TarWriter::new(io::sink());
    w.sizing = true;
    w.write_tree(root)?;
    w.write(&[0u8; 2 * BLOCK])?;
    Ok(w.bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, "path", b"abc");
        assert_eq!(v, b"12 path=abc\n");
        let mut v = Vec::new();
        let long = vec![b'x'; 95];
        pax_record(&mut v, "path", &long);
        // 95 + "path" (4) + " =\n" (3) = 102, plus 3 digits = 105.
        assert_eq!(&v[..4], b"105 ");
        assert_eq!(v.len(), 105);
    }
}
