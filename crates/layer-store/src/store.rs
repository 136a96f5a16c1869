//! The store: layers and images under one directory. This file holds the [`Store`] and its layers;
//! the image records are in `images`, layer imports in `import`, the staging directories under
//! `tmp/` (and their sweep) in `staging`, and what a layer stream's first bytes tell (compression,
//! size) in `stream`.

use std::collections::BTreeSet;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mountkit_safefs::Lock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::canon::write_canonical;
use crate::error::{Error, Result};
use crate::id::{LayerId, hex_prefix, is_lower_hex, pick_by_prefix};

mod images;
mod import;
mod notes;
mod staging;
mod stream;

pub use images::{HistoryEntry, ImageConfig, ImageInfo, validate_image_name};
pub(crate) use stream::decompress;

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

/// A directory of layers and images: `<root>/{layers,images,tmp}`.
///
/// Safe to use from several processes at once: staging directories are private to their creator,
/// commits and removals take a store-wide lock (`<root>/store.lock`).
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    unpacks: AtomicU64,
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

    fn existing(&self, id: &LayerId) -> Result<Option<LayerInfo>> {
        let p = self.layer_dir(id).join("layer.json");
        match std::fs::symlink_metadata(&p) {
            Ok(_) => Ok(Some(read_json(&p)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", &p, e)),
        }
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
