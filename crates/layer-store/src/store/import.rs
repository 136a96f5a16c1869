//! Layer imports: from a directory, a tar file or a stream, unpacked in one pass through the
//! pipeline into staging, then committed with one rename (or discarded when the layer is stored).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use mountkit_safefs::{TimePrecision, now_rfc3339, write_atomic_nosync};

use super::staging::Staging;
use super::stream::{Format, SizeHint, decompress, gzip_isize, produce, read_at_most, zstd_content_size};
use super::{LayerInfo, LayerSource, Store, to_json};
use crate::canon::{canonical_size, write_canonical};
use crate::error::{Error, Result};
use crate::hash::{HashReader, HashWriter};
use crate::id::LayerId;
use crate::pipeline::{self, Sink};
use crate::unpack::unpack;

/// What one pass of the pipeline gave.
struct Streamed<T> {
    id: LayerId,
    size: u64,
    entries: u64,
    value: T,
}

impl Store {
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
}

fn read_err(what: impl Into<PathBuf>, e: io::Error) -> Error {
    Error::io("read", what, e)
}
