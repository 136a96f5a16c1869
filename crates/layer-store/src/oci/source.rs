//! Where an image's files come from: a layout directory, or a tar archive read by offsets.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Largest JSON document (index, manifest, config) read into memory.
pub(crate) const MAX_JSON: u64 = 16 << 20;

/// A file tree: a directory, or the regular files of a tar archive (offset and size of each).
pub(crate) enum Source {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        files: HashMap<String, (u64, u64)>,
        links: HashMap<String, String>,
    },
}

/// Normalises a relative path inside a layout or archive: no leading `/` or `./`, no `.`
/// components; `..` refused.
pub(crate) fn clean(name: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

impl Source {
    /// Indexes a tar archive in one pass: offsets of regular files, targets of links.
    pub(crate) fn scan_tar(path: &Path) -> Result<Source> {
        let _span = tracing::debug_span!("scan_archive", path = %path.display()).entered();
        let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let bad = |e: io::Error| Error::Image {
            source_path: path.display().to_string(),
            reason: format!("not a readable tar archive: {e}"),
        };
        let mut ar = tar::Archive::new(io::BufReader::with_capacity(1 << 16, f));
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        for e in ar.entries_with_seek().map_err(bad)? {
            let e = e.map_err(bad)?;
            let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let Some(name) = clean(&raw) else { continue };
            let kind = e.header().entry_type();
            if kind.is_file() {
                files.insert(name, (e.raw_file_position(), e.size()));
            } else if kind.is_symlink() || kind.is_hard_link() {
                if let Some(t) = e.link_name_bytes() {
                    let t = String::from_utf8_lossy(&t).into_owned();
                    // Symlink targets are relative to the link's directory; hard links to the root.
                    let target = if kind.is_symlink() && !t.starts_with('/') {
                        match name.rsplit_once('/') {
                            Some((dir, _)) => format!("{dir}/{t}"),
                            None => t,
                        }
                    } else {
                        t
                    };
                    links.insert(name, target);
                }
            }
        }
        tracing::debug!(files = files.len(), "archive indexed");
        Ok(Source::Tar {
            path: path.to_path_buf(),
            files,
            links,
        })
    }

    /// A name for messages: the directory or archive.
    pub(crate) fn display(&self) -> String {
        match self {
            Source::Dir(p) | Source::Tar { path: p, .. } => p.display().to_string(),
        }
    }

    /// True when `name` is a file of this source.
    pub(crate) fn exists(&self, name: &str) -> bool {
        match self {
            Source::Dir(d) => d.join(name).is_file(),
            Source::Tar { .. } => self.locate(name).is_some(),
        }
    }

    fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let Source::Tar { files, links, .. } = self else {
            return None;
        };
        let mut name = clean(name)?;
        for _ in 0..16 {
            if let Some(hit) = files.get(&name) {
                return Some(*hit);
            }
            name = clean(links.get(&name)?)?;
        }
        None
    }

    /// Opens a file of the source: a stream and its size.
    pub(crate) fn open(&self, name: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        let missing = || Error::Image {
            source_path: self.display(),
            reason: format!("{name:?} is missing"),
        };
        let clean_name = clean(name).ok_or_else(missing)?;
        match self {
            Source::Dir(d) => {
                let p = d.join(&clean_name);
                let f = File::open(&p).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        missing()
                    } else {
                        Error::io("open", &p, e)
                    }
                })?;
                let size = f.metadata().map_err(|e| Error::io("stat", &p, e))?.len();
                Ok((Box::new(f), size))
            }
            Source::Tar { path, .. } => {
                let (off, size) = self.locate(&clean_name).ok_or_else(missing)?;
                let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
                f.seek(SeekFrom::Start(off))
                    .map_err(|e| Error::io("seek in", path, e))?;
                Ok((Box::new(f.take(size)), size))
            }
        }
    }

    /// Reads a small file whole (at most [`MAX_JSON`] bytes).
    pub(crate) fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let (r, size) = self.open(name)?;
        if size > MAX_JSON {
            return Err(Error::Image {
                source_path: self.display(),
                reason: format!("{name:?} is {size} bytes, more than a JSON document may be"),
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.take(MAX_JSON)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io("read", format!("{}: {name}", self.display()), e))?;
        Ok(buf)
    }
}

/// The path of a blob in an OCI layout (`blobs/<alg>/<hex>`); only sha256 is accepted.
pub(crate) fn blob_path(digest: &str) -> Option<String> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| format!("blobs/sha256/{hex}"))
}

/// `sha256:<hex>` of bytes.
pub(crate) fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A reader that hashes and counts what passes through, reports progress, and at the end of the
/// stream checks the size and digest it was promised; a mismatch is an `InvalidData` error.
pub(crate) struct VerifyReader {
    inner: Box<dyn Read + Send>,
    hasher: Option<Sha256>,
    count: u64,
    expect_digest: Option<String>,
    expect_size: Option<u64>,
    progress: Option<std::sync::mpsc::Sender<u64>>,
    unreported: u64,
}

impl VerifyReader {
    pub(crate) fn new(
        inner: Box<dyn Read + Send>,
        expect_digest: Option<String>,
        expect_size: Option<u64>,
        progress: Option<std::sync::mpsc::Sender<u64>>,
    ) -> VerifyReader {
        VerifyReader {
            inner,
            hasher: Some(Sha256::new()),
            count: 0,
            expect_digest,
            expect_size,
            progress,
            unreported: 0,
        }
    }

    fn check(&mut self) -> io::Result<()> {
        let Some(h) = self.hasher.take() else {
            return Ok(());
        };
        if let Some(p) = &self.progress {
            let _ = p.send(self.unreported);
            self.unreported = 0;
        }
        if let Some(size) = self.expect_size
            && size != self.count
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob is {} bytes, its descriptor says {size}", self.count),
            ));
        }
        let got = format!("sha256:{}", hex::encode(h.finalize()));
        if let Some(want) = &self.expect_digest
            && *want != got
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("digest mismatch: content hashes to {got}, expected {want}"),
            ));
        }
        Ok(())
    }
}

impl Read for VerifyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            self.check()?;
            return Ok(0);
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        if let Some(size) = self.expect_size
            && self.count > size
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob is longer than the {size} bytes its descriptor says"),
            ));
        }
        self.unreported += n as u64;
        if self.unreported >= 1 << 20
            && let Some(p) = &self.progress
        {
            let _ = p.send(self.unreported);
            self.unreported = 0;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_names() {
        assert_eq!(clean("./blobs//sha256/ab").as_deref(), Some("blobs/sha256/ab"));
        assert_eq!(clean("/index.json").as_deref(), Some("index.json"));
        assert_eq!(clean("a/../b"), None);
        assert_eq!(clean("./"), None);
    }

    #[test]
    fn blob_paths() {
        let hex = "a".repeat(64);
        assert_eq!(
            blob_path(&format!("sha256:{hex}")),
            Some(format!("blobs/sha256/{hex}"))
        );
        assert_eq!(blob_path("sha512:aa"), None);
        assert_eq!(blob_path(&format!("sha256:{}", "A".repeat(64))), None);
        assert_eq!(blob_path("sha256:../../etc"), None);
    }

    #[test]
    fn verify_reader() {
        let data = b"hello".to_vec();
        let good = digest_of(&data);
        let read = |d: Option<String>, s: Option<u64>| {
            let mut r = VerifyReader::new(Box::new(io::Cursor::new(data.clone())), d, s, None);
            let mut out = Vec::new();
            r.read_to_end(&mut out).map(|_| out)
        };
        assert_eq!(read(Some(good.clone()), Some(5)).unwrap(), data);
        let e = read(Some(digest_of(b"other")), None).unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
        assert!(read(Some(good.clone()), Some(4)).is_err());
        assert!(read(Some(good), Some(6)).is_err());
    }
}
