//! The store: layers and images under one directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mountkit_safefs::{
    Lock, TimePrecision, now_rfc3339, random_hex, remove_tree, write_atomic, write_atomic_nosync,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canon::{canonical_size, write_canonical};
use crate::error::{Error, Result};
use crate::id::{LayerId, hex_prefix, is_lower_hex, pick_by_prefix};
use crate::pipeline::{self, Sink};
use crate::unpack::{HashReader, HashWriter, unpack};

/// Where a layer comes from.
pub enum LayerSource {
    /// A directory tree, archived canonically (see the crate docs).
    Dir(PathBuf),
    /// A tar file, plain or gzip/zstd-compressed (detected by magic bytes). Unpacked while hashed,
    /// in one pass; only hashed when a stored layer may be the same (see the crate docs).
    Tar(PathBuf),
    /// A one-shot stream (stdin), plain or compressed: unpacked while hashed; the staging copy is
    /// discarded when the layer turns out to be in the store already.
    Reader(Box<dyn Read + Send>),
}

impl std::fmt::Debug for LayerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayerSource::Dir(p) => f.debug_tuple("Dir").field(p).finish(),
            LayerSource::Tar(p) => f.debug_tuple("Tar").field(p).finish(),
            LayerSource::Reader(_) => f.write_str("Reader(..)"),
        }
    }
}

/// What the store knows about a layer (`layers/<hex>/layer.json`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// The layer's ID: sha256 of its uncompressed tar stream.
    pub id: LayerId,
    /// Bytes of the uncompressed tar stream.
    pub size: u64,
    /// `sha256:<hex>` of the compressed blob, when the layer was imported compressed.
    pub compressed_digest: Option<String>,
    /// When the layer was imported (RFC 3339, UTC).
    pub created: String,
    /// Members of the tar stream (extension headers not counted).
    pub entries: u64,
}

/// An image's configuration: what a container made from it starts with.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
#[serde(default)]
pub struct ImageConfig {
    /// Paths that get an anonymous volume in each container (Dockerfile `VOLUME`).
    pub volumes: Vec<String>,
    /// The user (`name`, `uid`, `uid:gid`) the process runs as.
    pub user: Option<String>,
    /// The working directory of the process.
    pub workdir: Option<String>,
    /// Environment, as `KEY=VALUE` strings.
    pub env: Vec<String>,
    /// The entrypoint (argv prefix).
    pub entrypoint: Option<Vec<String>>,
    /// The default command (arguments after the entrypoint).
    pub cmd: Option<Vec<String>>,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
}

/// An image: an ordered list of layers (bottom first) plus a config, under an optional name.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:<hex>` of the canonical JSON of `{layers, config}`.
    pub id: String,
    /// The image's name (tag), if any.
    pub name: Option<String>,
    /// Layer IDs, bottom first.
    pub layers: Vec<LayerId>,
    /// The configuration.
    pub config: ImageConfig,
    /// When the image was created (RFC 3339, UTC).
    pub created: String,
}

impl ImageInfo {
    /// The name if there is one, else the ID: how an image is named in messages.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.id.clone())
    }
}

/// The content an image ID is computed from.
#[derive(Serialize)]
struct ImageContent<'a> {
    layers: &'a [LayerId],
    config: &'a ImageConfig,
}

/// A directory of layers and images: `<root>/{layers,images,tmp}`.
///
/// Safe to use from several processes at once: staging directories are private to their creator,
/// commits and removals take a store-wide lock (`<root>/store.lock`).
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    unpacks: AtomicU64,
}

/// A staging directory under `<root>/tmp/`, owned by this process through an flock on its lock
/// file; removed on drop unless committed.
struct Staging {
    dir: PathBuf,
    lock_path: PathBuf,
    lock: Option<Lock>,
    done: bool,
}

impl Staging {
    fn tree(&self) -> PathBuf {
        self.dir.join("diff")
    }

    fn discard(mut self) -> Result<()> {
        self.done = true;
        let r = remove_tree(&self.dir);
        if r.is_ok() {
            let _ = std::fs::remove_file(&self.lock_path);
        }
        self.lock = None;
        Ok(r?)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = remove_tree(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove staging directory; the next start sweeps it");
                return;
            }
        }
        if !self.dir.exists() {
            let _ = std::fs::remove_file(&self.lock_path);
        }
    }
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
const BZIP2_MAGIC: &[u8] = b"BZh";

/// How a layer stream is compressed (sniffed from its first bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Format {
    Plain,
    Gzip,
    Zstd,
}

impl Format {
    /// Recognises gzip and zstd by their magic bytes; refuses xz and bzip2; anything else is plain.
    pub(crate) fn sniff(head: &[u8]) -> Result<Format> {
        if head.starts_with(GZIP_MAGIC) {
            Ok(Format::Gzip)
        } else if head.starts_with(ZSTD_MAGIC) {
            Ok(Format::Zstd)
        } else if head.starts_with(XZ_MAGIC) || head.starts_with(BZIP2_MAGIC) {
            Err(Error::Corrupt {
                what: "layer stream".into(),
                reason: "is xz- or bzip2-compressed; only plain, gzip and zstd tar streams are supported"
                    .into(),
            })
        } else {
            Ok(Format::Plain)
        }
    }

    /// A reader of the uncompressed stream.
    fn decoder<'a>(self, r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Format::Plain => Box::new(r),
            Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                1 << 16,
                r,
            ))),
            Format::Zstd => Box::new(
                zstd::stream::read::Decoder::new(r)
                    .map_err(|e| Error::io("start zstd decoder for", "layer stream", e))?,
            ),
        })
    }
}

/// Reads up to `head.len()` bytes from the start of `r` (fewer only at the end of the stream).
fn read_head(r: &mut impl Read, head: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Detects gzip/zstd by magic bytes and returns a reader of the uncompressed stream, and whether
/// it was compressed.
pub(crate) fn decompress<'a>(mut r: impl Read + 'a) -> Result<(Box<dyn Read + 'a>, bool)> {
    let mut head = [0u8; 6];
    let n = read_head(&mut r, &mut head).map_err(|e| Error::io("read", "layer stream", e))?;
    let format = Format::sniff(&head[..n])?;
    tracing::debug!(?format, "layer stream format");
    let whole = io::Cursor::new(head[..n].to_vec()).chain(r);
    Ok((format.decoder(whole)?, format != Format::Plain))
}

/// A reader that hashes what passes through it while `on`.
struct BlobHasher<R> {
    inner: R,
    hasher: Sha256,
    on: bool,
}

impl<R: Read> Read for BlobHasher<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.on {
            self.hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The producer of the import pipeline for a file or stream: sniffs the compression, decompresses
/// into `sink` (which hashes the uncompressed stream). Returns `Some(digest of the raw blob)` when
/// it was compressed (`Some("")` when `hash_blob` is false), `None` when it was plain.
fn produce(raw: impl Read, sink: &mut Sink, hash_blob: bool) -> Result<Option<String>> {
    let mut raw = BlobHasher {
        inner: raw,
        hasher: Sha256::new(),
        on: hash_blob,
    };
    let mut head = [0u8; 6];
    let n = read_head(&mut raw, &mut head).map_err(stream_err)?;
    let format = Format::sniff(&head[..n])?;
    tracing::debug!(?format, "layer stream format");
    // A plain stream's digest is its ID, which the sink computes anyway.
    raw.on &= format != Format::Plain;
    let mut whole = io::Cursor::new(&head[..n]).chain(&mut raw);
    if format == Format::Gzip {
        // Inflating is the slowest step: the unpacker's thread hashes instead.
        sink.hash_downstream();
    }
    let filled = match format {
        Format::Plain => sink.fill_from(&mut whole),
        _ => sink.fill_from(&mut format.decoder(&mut whole)?),
    };
    if let Err(e) = filled {
        return Err(if sink.hung_up() {
            Error::io("pass on", "layer stream", e)
        } else {
            stream_err(e)
        });
    }
    Ok(match format {
        Format::Plain => None,
        _ if hash_blob => Some(format!("sha256:{}", hex::encode(raw.hasher.finalize()))),
        _ => Some(String::new()),
    })
}

/// A read or decode error of a layer stream: bad data is a corrupt stream, anything else I/O.
fn stream_err(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
            Error::Corrupt {
                what: "layer stream".into(),
                reason: e.to_string(),
            }
        }
        _ => Error::io("read", "layer stream", e),
    }
}

/// What one pass of the pipeline gave.
struct Streamed<T> {
    id: LayerId,
    size: u64,
    entries: u64,
    value: T,
}

/// The uncompressed size of a stream, as far as it is known without reading it.
#[derive(Clone, Copy, Debug)]
enum SizeHint {
    Exact(u64),
    /// Modulo 2^32 (gzip's ISIZE trailer; right for a single-member gzip).
    Mod32(u64),
    Unknown,
}

/// Reads up to `buf.len()` bytes at `offset` (fewer only at the end of the file).
fn read_at_most(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A gzip file's ISIZE trailer: its last member's uncompressed size modulo 2^32.
fn gzip_isize(f: &File, len: u64) -> io::Result<SizeHint> {
    if len < 18 {
        return Ok(SizeHint::Unknown);
    }
    let mut t = [0u8; 4];
    if read_at_most(f, &mut t, len - 4)? < 4 {
        return Ok(SizeHint::Unknown);
    }
    Ok(SizeHint::Mod32(u32::from_le_bytes(t).into()))
}

/// A zstd frame's content size, when its header records one (the zstd tool does for a file it
/// compresses in one frame; a stream compressed from a pipe has none).
fn zstd_content_size(head: &[u8]) -> SizeHint {
    match zstd::zstd_safe::get_frame_content_size(head) {
        Ok(Some(n)) => SizeHint::Exact(n),
        _ => SizeHint::Unknown,
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let data = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    serde_json::from_slice(&data).map_err(|e| Error::Corrupt {
        what: format!("metadata file {}", path.display()),
        reason: e.to_string(),
    })
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).expect("metadata serialises");
    out.push(b'\n');
    out
}

/// Checks an image name: `[a-z0-9._-/:]`, starting with a letter or digit, at most 255 bytes, no `..`,
/// no `//`, no trailing `/`, not `sha256:`-prefixed and not 64 hex digits (those read as IDs).
pub fn validate_image_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidName {
            name: name.into(),
            reason: reason.into(),
        })
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > 255 {
        return bad("is longer than 255 bytes");
    }
    if !name
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'/' | b':'))
    {
        return bad("may only contain lowercase letters, digits and . _ - / :");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("must start with a letter or a digit");
    }
    if name.contains("..") {
        return bad("must not contain `..`");
    }
    if name.contains("//") || name.ends_with('/') {
        return bad("must not contain an empty path component");
    }
    if name.starts_with("sha256:") || (name.len() == 64 && is_lower_hex(name)) {
        return bad("looks like an image ID");
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store at `root`, and sweeps staging directories that no live
    /// process holds (left by a crash).
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        // `tmp` is made last: when it is there, so are the others (one stat on every later open).
        if !root.join("tmp").is_dir() {
            for d in ["", "layers", "images", "tmp"] {
                let p = root.join(d);
                std::fs::create_dir_all(&p).map_err(|e| Error::io("create store directory", &p, e))?;
            }
        }
        let store = Store {
            root,
            unpacks: AtomicU64::new(0),
        };
        store.sweep()?;
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many times this `Store` value unpacked a layer (an import that found its layer already
    /// present from a re-readable source does not count). For tests and diagnostics.
    pub fn unpack_count(&self) -> u64 {
        self.unpacks.load(Ordering::Relaxed)
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn layer_dir(&self, id: &LayerId) -> PathBuf {
        self.root.join("layers").join(id.hex())
    }

    fn store_lock(&self) -> Result<Lock> {
        Ok(Lock::exclusive(&self.root.join("store.lock"))?)
    }

    /// Removes staging left by dead processes: every `tmp/<name>` whose `tmp/<name>.lock` nobody holds.
    fn sweep(&self) -> Result<()> {
        let tmp = self.tmp();
        // Nothing staged (the common case): nothing to sweep, and no lock to take. Staging made after
        // this look belongs to a live process anyway.
        let empty = std::fs::read_dir(&tmp)
            .map_err(|e| Error::io("read directory", &tmp, e))?
            .next()
            .is_none();
        if empty {
            return Ok(());
        }
        let _g = Lock::exclusive(&self.root.join("tmp.lock"))?;
        let rd = std::fs::read_dir(&tmp).map_err(|e| Error::io("read directory", &tmp, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("read directory", &tmp, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let base = name.strip_suffix(".lock").unwrap_or(&name).to_string();
            let lock_path = tmp.join(format!("{base}.lock"));
            let Some(held) = Lock::try_exclusive(&lock_path)? else {
                continue;
            };
            let dir = tmp.join(&base);
            tracing::debug!(dir = %dir.display(), "sweeping stale staging");
            match remove_tree(&dir) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&lock_path);
                }
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot sweep stale staging"),
            }
            drop(held);
        }
        Ok(())
    }

    /// Makes a staging directory (`mkdir` = true) or reserves a staging name (for a rename into it).
    fn staging(&self, mkdir: bool) -> Result<Staging> {
        let _g = Lock::shared(&self.root.join("tmp.lock"))?;
        let name = random_hex(12);
        let lock_path = self.tmp().join(format!("{name}.lock"));
        let lock = Lock::exclusive(&lock_path)?;
        let dir = self.tmp().join(&name);
        let st = Staging {
            dir,
            lock_path,
            lock: Some(lock),
            done: false,
        };
        if mkdir {
            std::fs::create_dir(&st.dir).map_err(|e| Error::io("create staging directory", &st.dir, e))?;
            std::fs::create_dir(st.tree())
                .map_err(|e| Error::io("create staging directory", st.tree(), e))?;
        }
        Ok(st)
    }

    fn existing(&self, id: &LayerId) -> Result<Option<LayerInfo>> {
        let p = self.layer_dir(id).join("layer.json");
        match std::fs::symlink_metadata(&p) {
            Ok(_) => Ok(Some(read_json(&p)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", &p, e)),
        }
    }

    /// Imports a layer; returns the existing layer's info when the same content is already stored.
    pub fn import_layer(&self, src: LayerSource) -> Result<LayerInfo> {
        match src {
            LayerSource::Dir(path) => self.import_dir(&path),
            LayerSource::Tar(path) => self.import_tar(&path),
            LayerSource::Reader(r) => self.import_reader(r),
        }
    }

    fn import_dir(&self, path: &Path) -> Result<LayerInfo> {
        let _span = tracing::debug_span!("import_dir", path = %path.display()).entered();
        // Hash first only when a stored layer may be this one (one of the same stream size).
        let prehashed = if self.may_hold(|| Ok(SizeHint::Exact(canonical_size(path)?)))? {
            let mut hw = HashWriter::new();
            write_canonical(path, &mut hw)?;
            let (id, _) = hw.finish();
            if let Some(info) = self.existing(&id)? {
                tracing::debug!(%id, "layer already stored");
                return Ok(info);
            }
            Some(id)
        } else {
            None
        };
        let staging = self.staging(true)?;
        let s = self.unpack_into(&staging, |sink| write_canonical(path, &mut *sink).map(drop))?;
        if prehashed.is_some_and(|id| id != s.id) {
            return Err(Error::Corrupt {
                what: format!("layer source {}", path.display()),
                reason: "changed while it was being imported".into(),
            });
        }
        self.finish(staging, &s.id, s.size, s.entries, None)
    }

    fn import_tar(&self, path: &Path) -> Result<LayerInfo> {
        let _span = tracing::debug_span!("import_tar", path = %path.display()).entered();
        let mut f = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        let mut head = [0u8; 18]; // a zstd frame header at most
        let n = read_at_most(&f, &mut head, 0).map_err(|e| read_err(path, e))?;
        let format = Format::sniff(&head[..n])?;
        let hint = || {
            Ok(match format {
                Format::Plain => SizeHint::Exact(len),
                Format::Gzip => gzip_isize(&f, len).map_err(|e| read_err(path, e))?,
                Format::Zstd => zstd_content_size(&head[..n]),
            })
        };
        // Hash first only when a stored layer may be this one; otherwise unpack at once.
        let prehashed = if self.may_hold(hint)? {
            let mut raw = BufReader::with_capacity(1 << 18, &f);
            let (r, _) = decompress(&mut raw)?;
            let (id, size) = HashReader::new(r).finish().map_err(|e| read_err(path, e))?;
            if let Some(info) = self.existing(&id)? {
                tracing::debug!(%id, "layer already stored");
                return Ok(info);
            }
            f.seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("seek in", path, e))?;
            Some((id, size))
        } else {
            None
        };
        let staging = self.staging(true)?;
        let s = self.unpack_into(&staging, |sink| produce(f, sink, true))?;
        if prehashed.is_some_and(|p| p != (s.id.clone(), s.size)) {
            return Err(Error::Corrupt {
                what: format!("layer archive {}", path.display()),
                reason: "changed while it was being imported".into(),
            });
        }
        self.finish(staging, &s.id, s.size, s.entries, s.value)
    }

    fn import_reader(&self, r: Box<dyn Read + Send>) -> Result<LayerInfo> {
        let _span = tracing::debug_span!("import_stream").entered();
        let staging = self.staging(true)?;
        let s = self.unpack_into(&staging, |sink| produce(r, sink, true))?;
        self.finish(staging, &s.id, s.size, s.entries, s.value)
    }

    /// Imports a layer blob whose digest the caller verifies (`verified_blob`, recorded as the
    /// compressed digest when the blob is compressed; hashed here when `None`) and whose ID must
    /// be `expect`: a layer that hashes otherwise is not committed, and the error says both IDs.
    pub(crate) fn import_verified(
        &self,
        r: Box<dyn Read + Send>,
        verified_blob: Option<String>,
        expect: &LayerId,
    ) -> Result<LayerInfo> {
        let _span = tracing::debug_span!("import_blob", %expect).entered();
        let staging = self.staging(true)?;
        let hash_blob = verified_blob.is_none();
        let s = self.unpack_into(&staging, |sink| produce(r, sink, hash_blob))?;
        if s.id != *expect {
            return Err(Error::Corrupt {
                what: "layer".into(),
                reason: format!(
                    "uncompressed content hashes to {}, but the config's rootfs.diff_ids says {expect}",
                    s.id
                ),
            });
        }
        let digest = s.value.map(|d| verified_blob.unwrap_or(d));
        self.finish(staging, &s.id, s.size, s.entries, digest)
    }

    /// Unpacks what `produce` writes into the staging tree, in one pass: `produce` runs on its own
    /// thread (reading, decompressing, hashing), the unpacker on this one.
    fn unpack_into<T: Send>(
        &self,
        staging: &Staging,
        produce: impl FnOnce(&mut Sink) -> Result<T> + Send,
    ) -> Result<Streamed<T>> {
        self.unpacks.fetch_add(1, Ordering::Relaxed);
        let tree = staging.tree();
        let (p, entries) = pipeline::run(produce, |src| unpack(src, &tree))?;
        if p.size == 0 {
            return Err(Error::Corrupt {
                what: "layer stream".into(),
                reason: "is empty (not a tar archive)".into(),
            });
        }
        Ok(Streamed {
            id: p.id,
            size: p.size,
            entries,
            value: p.value,
        })
    }

    /// True when the store may hold the layer whose stream size `hint` tells: a layer of that size
    /// is stored, or the size is unknown and the store is not empty. Reads every `layer.json`.
    fn may_hold(&self, hint: impl FnOnce() -> Result<SizeHint>) -> Result<bool> {
        let layers = self.layers()?;
        if layers.is_empty() {
            return Ok(false);
        }
        let hint = hint()?;
        let maybe = match hint {
            SizeHint::Exact(n) => layers.iter().any(|l| l.size == n),
            SizeHint::Mod32(n) => layers.iter().any(|l| l.size & 0xffff_ffff == n),
            SizeHint::Unknown => true,
        };
        tracing::debug!(?hint, maybe, "is the layer stored? (by stream size)");
        Ok(maybe)
    }

    /// Commits the staged layer, or discards it when the store has it already.
    fn finish(
        &self,
        staging: Staging,
        id: &LayerId,
        size: u64,
        entries: u64,
        compressed_digest: Option<String>,
    ) -> Result<LayerInfo> {
        if let Some(info) = self.existing(id)? {
            tracing::debug!(%id, "layer already stored; discarding the staged copy");
            staging.discard()?;
            return Ok(info);
        }
        self.commit(staging, id, size, entries, compressed_digest)
    }

    /// Writes the metadata into the staging directory, makes everything durable with one `syncfs`,
    /// and renames it into `layers/` (one rename), unless another process committed the same layer
    /// first.
    fn commit(
        &self,
        mut staging: Staging,
        id: &LayerId,
        size: u64,
        entries: u64,
        compressed_digest: Option<String>,
    ) -> Result<LayerInfo> {
        let info = LayerInfo {
            id: id.clone(),
            size,
            compressed_digest,
            created: now_rfc3339(TimePrecision::Seconds),
            entries,
        };
        // No fsync of its own: the syncfs below covers it, and the rename publishes it.
        write_atomic_nosync(&staging.dir.join("layer.json"), &to_json(&info))?;
        let dir = File::open(&staging.dir).map_err(|e| Error::io("open", &staging.dir, e))?;
        tracing::debug!(dir = %staging.dir.display(), "syncfs before commit");
        rustix::fs::syncfs(&dir).map_err(|e| Error::io("syncfs", &staging.dir, e))?;
        let _g = self.store_lock()?;
        if let Some(info) = self.existing(id)? {
            tracing::debug!(%id, "layer committed meanwhile by another import; discarding ours");
            drop(_g);
            staging.discard()?;
            return Ok(info);
        }
        let dest = self.layer_dir(id);
        tracing::debug!(%id, from = %staging.dir.display(), to = %dest.display(), "commit layer");
        std::fs::rename(&staging.dir, &dest).map_err(|e| Error::io("commit layer into", &dest, e))?;
        staging.done = true;
        let layers = self.root.join("layers");
        File::open(&layers)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync", &layers, e))?;
        Ok(info)
    }

    fn layer_hexes(&self) -> Result<Vec<String>> {
        let dir = self.root.join("layers");
        let mut out = Vec::new();
        for ent in std::fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))? {
            let ent = ent.map_err(|e| Error::io("read directory", &dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.len() == 64 && is_lower_hex(&name) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn resolve_layer(&self, input: &str) -> Result<LayerId> {
        let prefix = hex_prefix(input).ok_or_else(|| Error::InvalidId {
            what: "layer ID",
            input: input.into(),
            reason: "expected sha256:<hex>, <hex>, or a unique prefix of at least 4 hex digits".into(),
        })?;
        let hexes = self.layer_hexes()?;
        match pick_by_prefix(prefix, hexes.iter().map(String::as_str)) {
            Ok(Some(hex)) => hex.parse(),
            Ok(None) => Err(Error::NotFound {
                what: "layer",
                id: input.into(),
            }),
            Err(matches) => Err(Error::Ambiguous {
                what: "layer",
                id: input.into(),
                matches: matches.iter().map(|h| format!("sha256:{h}")).collect(),
            }),
        }
    }

    /// Looks a layer up by `sha256:<hex>`, `<hex>` or a unique hex prefix (4 digits or more).
    pub fn layer(&self, id_or_prefix: &str) -> Result<LayerInfo> {
        let id = self.resolve_layer(id_or_prefix)?;
        self.existing(&id)?.ok_or_else(|| Error::NotFound {
            what: "layer",
            id: id_or_prefix.into(),
        })
    }

    /// Every layer in the store, ordered by ID.
    pub fn layers(&self) -> Result<Vec<LayerInfo>> {
        let mut out = Vec::new();
        for hex in self.layer_hexes()? {
            let id: LayerId = hex.parse()?;
            if let Some(info) = self.existing(&id)? {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// The unpacked tree of a layer: what an overlay mount takes as a lowerdir. Never write to it.
    pub fn layer_path(&self, id: &LayerId) -> PathBuf {
        self.layer_dir(id).join("diff")
    }

    fn images_using(&self, id: &LayerId) -> Result<Vec<String>> {
        Ok(self
            .images()?
            .into_iter()
            .filter(|i| i.layers.contains(id))
            .map(|i| i.display_name())
            .collect())
    }

    /// Removes a layer that no image uses; returns its ID.
    pub fn remove_layer(&self, id_or_prefix: &str) -> Result<LayerId> {
        let _g = self.store_lock()?;
        let id = self.resolve_layer(id_or_prefix)?;
        let users = self.images_using(&id)?;
        if !users.is_empty() {
            return Err(Error::InUse {
                layer: id.to_string(),
                images: users,
            });
        }
        self.remove_layer_locked(&id)?;
        Ok(id)
    }

    /// Moves the layer out of `layers/` (one rename: it disappears at once), then deletes it.
    fn remove_layer_locked(&self, id: &LayerId) -> Result<()> {
        let staging = self.staging(false)?;
        let src = self.layer_dir(id);
        tracing::debug!(%id, "remove layer");
        std::fs::rename(&src, &staging.dir).map_err(|e| Error::io("move out of the store", &src, e))?;
        staging.discard()
    }

    /// Writes the layer as a canonical tar stream (overlay whiteouts become `.wh.` members).
    pub fn export_layer(&self, id: &LayerId, out: &mut dyn Write) -> Result<()> {
        if self.existing(id)?.is_none() {
            return Err(Error::NotFound {
                what: "layer",
                id: id.to_string(),
            });
        }
        let mut w = BufWriter::with_capacity(1 << 18, out);
        write_canonical(&self.layer_path(id), &mut w)?;
        w.flush()
            .map_err(|e| Error::io("write", "exported layer stream", e))
    }

    fn image_file(&self, key: &str) -> PathBuf {
        self.root.join("images").join(format!("{key}.json"))
    }

    /// The record file of the image named `name`: its key is the sha256 of `name:<name>`, so a lookup
    /// by name reads one file instead of every record.
    fn named_image_file(&self, name: &str) -> PathBuf {
        self.image_file(&sha256_hex(format!("name:{name}").as_bytes()))
    }

    /// Creates an image from stored layers (bottom first) and a config.
    ///
    /// The ID is the sha256 of `{layers, config}`: several names may share one ID (as Docker tags do).
    /// A name already used is refused (`app` and `app:latest` are one name). Without a name, content
    /// that is stored already returns that image (under its first name, if it has one); a name given to
    /// an unnamed image's content replaces the unnamed record.
    pub fn create_image(
        &self,
        name: Option<&str>,
        layers: &[LayerId],
        config: ImageConfig,
    ) -> Result<ImageInfo> {
        if let Some(n) = name {
            validate_image_name(n)?;
        }
        let id = format!(
            "sha256:{}",
            sha256_hex(
                &serde_json::to_vec(&ImageContent {
                    layers,
                    config: &config
                })
                .expect("serialises")
            )
        );
        let unnamed = self.image_file(id.trim_start_matches("sha256:"));
        let _g = self.store_lock()?;
        for l in layers {
            if self.existing(l)?.is_none() {
                return Err(Error::MissingLayer { layer: l.to_string() });
            }
        }
        let path = match name {
            Some(n) => {
                if let Some((_, old)) = self.named_record(n)? {
                    return Err(Error::NameTaken {
                        name: old.name.unwrap_or_else(|| n.into()),
                        id: old.id,
                    });
                }
                self.named_image_file(n)
            }
            None => {
                // The same content again: the image it already is, named or not.
                if let Some((_, old)) = self.image_entries()?.into_iter().find(|(_, i)| i.id == id) {
                    return Ok(old);
                }
                unnamed.clone()
            }
        };
        let info = ImageInfo {
            id,
            name: name.map(str::to_string),
            layers: layers.to_vec(),
            config,
            created: now_rfc3339(TimePrecision::Seconds),
        };
        tracing::debug!(id = %info.id, name = ?info.name, "create image");
        write_atomic(&path, &to_json(&info))?;
        if name.is_some() {
            // An unnamed record of this image is now named: it leaves the `<none>` rows (as `docker tag`).
            match std::fs::remove_file(&unnamed) {
                Ok(()) => tracing::debug!(id = %info.id, "unnamed record replaced by the name"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &unnamed, e)),
            }
        }
        Ok(info)
    }

    fn image_entries(&self) -> Result<Vec<(PathBuf, ImageInfo)>> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for ent in std::fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))? {
            let ent = ent.map_err(|e| Error::io("read directory", &dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue; // temp files of atomic writes
            }
            let p = ent.path();
            out.push((p.clone(), read_json::<ImageInfo>(&p)?));
        }
        out.sort_by(|a, b| (&a.1.name, &a.1.id).cmp(&(&b.1.name, &b.1.id)));
        Ok(out)
    }

    /// The record of the image named `name` (`app` and `app:latest` name the same image), if any.
    fn named_record(&self, name: &str) -> Result<Option<(PathBuf, ImageInfo)>> {
        for candidate in std::iter::once(name.to_string()).chain(alternate_name(name)) {
            let path = self.named_image_file(&candidate);
            match read_json::<ImageInfo>(&path) {
                Ok(info) if info.name.as_deref() == Some(candidate.as_str()) => {
                    return Ok(Some((path, info)));
                }
                Ok(_) => {}
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Every record that `input` names, all of one image ID (never empty). The one resolution rule of
    /// the store:
    ///
    /// 1. a name (`app:v1`; `app` and `app:latest` are the same name) names that one record;
    /// 2. otherwise a full ID or an ID prefix of at least 4 hex digits, with or without `sha256:`,
    ///    names the image with that ID, under every name it has. Only a prefix that matches two
    ///    *different* IDs is ambiguous; names of one image never are (as `docker` resolves them).
    fn resolve_image(&self, input: &str) -> Result<Vec<(PathBuf, ImageInfo)>> {
        let is_name = validate_image_name(input).is_ok();
        // A name: one file, found by its key.
        if is_name && let Some(found) = self.named_record(input)? {
            return Ok(vec![found]);
        }
        let all = self.image_entries()?;
        if is_name {
            // A record written under another key (renamed by hand, say): the scan still finds it.
            let names: Vec<String> = std::iter::once(input.to_string())
                .chain(alternate_name(input))
                .collect();
            if let Some(found) = all
                .iter()
                .find(|(_, i)| i.name.as_ref().is_some_and(|n| names.contains(n)))
            {
                return Ok(vec![found.clone()]);
            }
        }
        let not_found = || Error::NotFound {
            what: "image",
            id: input.into(),
        };
        let Some(prefix) = hex_prefix(input) else {
            return Err(not_found());
        };
        let ids: BTreeSet<&str> = all
            .iter()
            .map(|(_, i)| i.id.trim_start_matches("sha256:"))
            .collect();
        let hex = match pick_by_prefix(prefix, ids.iter().copied()) {
            Ok(Some(h)) => h.to_string(),
            Ok(None) => return Err(not_found()),
            Err(m) => {
                return Err(Error::Ambiguous {
                    what: "image",
                    id: input.into(),
                    matches: m.iter().map(|h| format!("sha256:{h}")).collect(),
                });
            }
        };
        // Sorted by name (see image_entries): the first record is the image's first name.
        Ok(all
            .into_iter()
            .filter(|(_, i)| i.id.trim_start_matches("sha256:") == hex)
            .collect())
    }

    /// Looks an image up by name, full ID, or unique ID prefix (4 hex digits or more); `app` finds
    /// `app:latest` and the other way round. An image with several names, looked up by ID, comes back
    /// under its first name (sorted); [`Store::image_names`] lists them all.
    pub fn image(&self, name_or_id: &str) -> Result<ImageInfo> {
        let mut records = self.resolve_image(name_or_id)?;
        Ok(records.swap_remove(0).1)
    }

    /// Every record that a reference names: the one record of a name, or for an ID (or prefix) the
    /// image under each of its names (one record with no name for an unnamed image). Never empty.
    pub fn image_records(&self, reference: &str) -> Result<Vec<ImageInfo>> {
        Ok(self
            .resolve_image(reference)?
            .into_iter()
            .map(|(_, i)| i)
            .collect())
    }

    /// The names of the image with ID `id` (`sha256:...`), sorted; empty for an unnamed image or an
    /// ID the store does not have.
    pub fn image_names(&self, id: &str) -> Result<Vec<String>> {
        Ok(self
            .image_entries()?
            .into_iter()
            .filter(|(_, i)| i.id == id)
            .filter_map(|(_, i)| i.name)
            .collect())
    }

    /// Every image, ordered by name (unnamed first) then ID: one entry per name, as `docker images`
    /// lists one row per tag.
    pub fn images(&self) -> Result<Vec<ImageInfo>> {
        Ok(self.image_entries()?.into_iter().map(|(_, i)| i).collect())
    }

    /// Removes what `reference` names and returns the removed records: a name removes that name only
    /// (the image stays while it has another); an ID removes the image under every name it has. The
    /// layers stay until [`Store::gc`]. The caller checks containers first.
    pub fn remove_image(&self, reference: &str) -> Result<Vec<ImageInfo>> {
        let _g = self.store_lock()?;
        let records = self.resolve_image(reference)?;
        for (path, info) in &records {
            tracing::debug!(id = %info.id, name = ?info.name, "remove image record");
            std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))?;
        }
        let images = self.root.join("images");
        File::open(&images)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync", &images, e))?;
        Ok(records.into_iter().map(|(_, i)| i).collect())
    }

    /// Removes every layer that no image uses; returns their IDs.
    pub fn gc(&self) -> Result<Vec<LayerId>> {
        let _g = self.store_lock()?;
        let used: BTreeSet<LayerId> = self.images()?.into_iter().flat_map(|i| i.layers).collect();
        let mut removed = Vec::new();
        for hex in self.layer_hexes()? {
            let id: LayerId = hex.parse()?;
            if !used.contains(&id) {
                self.remove_layer_locked(&id)?;
                removed.push(id);
            }
        }
        Ok(removed)
    }
}

/// The other spelling of an image name: `app` for `app:latest` and `app:latest` for `app` (the tag is
/// what follows the last `:` after the last `/`; `registry:5000/app` has none). `None` for other tags.
fn alternate_name(name: &str) -> Option<String> {
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, "latest")) => Some(name[..name.len() - ":latest".len()].to_string()),
        Some(_) => None,
        None => Some(format!("{name}:latest")),
    }
}

fn read_err(what: impl Into<PathBuf>, e: io::Error) -> Error {
    Error::io("read", what, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        for good in ["app", "app:1.0", "registry.example/team/app:v2", "a_b-c.d", "0x"] {
            validate_image_name(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "/app",
            "App",
            "a..b",
            "a//b",
            "a/",
            "-a",
            ".a",
            "a b",
            &"f".repeat(64),
            "sha256:abcd",
            &"a".repeat(256),
        ] {
            let err = validate_image_name(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn alternate_names() {
        assert_eq!(alternate_name("app").as_deref(), Some("app:latest"));
        assert_eq!(alternate_name("app:latest").as_deref(), Some("app"));
        assert_eq!(alternate_name("app:v1"), None);
        assert_eq!(
            alternate_name("registry:5000/team/app").as_deref(),
            Some("registry:5000/team/app:latest")
        );
        assert_eq!(
            alternate_name("registry:5000/app:latest").as_deref(),
            Some("registry:5000/app")
        );
    }

    /// Records written by hand: two images whose IDs share their first 8 hex digits, one with two names.
    #[test]
    fn a_prefix_is_ambiguous_only_across_different_images() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let (a, b) = (
            format!("sha256:abcd1234{}", "1".repeat(56)),
            format!("sha256:abcd1234{}", "2".repeat(56)),
        );
        let record = |key: &str, id: &str, name: Option<&str>| {
            let info = ImageInfo {
                id: id.into(),
                name: name.map(str::to_string),
                layers: Vec::new(),
                config: ImageConfig::default(),
                created: now_rfc3339(TimePrecision::Seconds),
            };
            std::fs::write(store.image_file(key), to_json(&info)).unwrap();
        };
        record("k1", &a, Some("one:v1"));
        record("k2", &a, Some("one:v2"));
        record("k3", &b, None);
        let err = store.image("abcd1234").unwrap_err();
        assert!(
            matches!(&err, Error::Ambiguous { matches, .. } if matches == &[a.clone(), b.clone()]),
            "{err}"
        );
        assert!(store.image("sha256:abcd").is_err());
        // One more digit tells them apart; the image with two names is one image.
        assert_eq!(store.image("abcd12341").unwrap().id, a);
        assert_eq!(store.image_records(&a).unwrap().len(), 2);
        assert_eq!(store.image("abcd12342").unwrap().name, None);
        // Found by name although its record is not under the name's key.
        assert_eq!(store.image("one:v2").unwrap().id, a);
        assert!(matches!(store.image("one"), Err(Error::NotFound { .. })));
    }

    #[test]
    fn sniffing() {
        let plain = b"hello tar".to_vec();
        let (mut r, c) = decompress(&plain[..]).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(!c);
        assert_eq!(out, plain);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let (mut r, c) = decompress(&gz[..]).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(c);
        assert_eq!(out, plain);

        let zs = zstd::encode_all(&plain[..], 1).unwrap();
        let (mut r, c) = decompress(&zs[..]).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert!(c);
        assert_eq!(out, plain);

        assert!(decompress(&b"\xfd7zXZ\0rest"[..]).is_err());
        let (mut r, c) = decompress(&b"ab"[..]).unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(
            (out.as_slice(), c),
            (&b"ab"[..], false),
            "short streams pass through"
        );
    }
}
