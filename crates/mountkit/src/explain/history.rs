//! `image history`: one row per layer, newest first, with what the layer does to the layers below it.
//!
//! Counted per layer, against the union of the layers below it in this image (the same lookup as
//! `explain`, so whiteouts and opaque directories of those layers are honoured):
//!
//! - *added*: an entry (file, link, device, or a directory) that the layers below do not show;
//! - *changed*: a non-directory that replaces one the layers below show (a directory that is there
//!   already only merges: it is not counted; a directory replacing a non-directory, or the reverse, is);
//! - *deleted*: an entry of the layers below removed by a whiteout, or hidden by an opaque directory
//!   (each entry the opaque directory does not bring back counts once; its contents are not counted).
//!
//! A whiteout of something the layers below do not have deletes nothing and is not counted.
//!
//! Computed once, the first time a layer is asked about on a given parent chain (each of its entries
//! looked up in the layers below, top first), and kept with the layer as a layer-store note keyed by the
//! parent chain (`changes-<sha256 of the lower layer IDs>`): the same layer may sit on different layers
//! in different images, and its counts differ with them. Later asks read the note. A note that cannot be
//! written (a read-only store) only costs the walk again. The build history (`created_by`, else
//! `comment`) is the image's own (`ImageConfig::history`, from its OCI config): shown when its steps
//! that made a layer account for the image's layers, unknown otherwise (images made here from
//! directories have none; `container commit` adds its step to an image that has one).

use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use mountkit_layer_store::LayerId;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Branch, LayerRef, Loc, Node, View, is_opaque, is_whiteout, lstat};
use crate::{Error, Mountkit, Result};

/// One row of `image history`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HistoryRow {
    /// The layer (its position, ID, and the command that made it when known).
    pub layer: LayerRef,
    /// When the layer was imported into this store.
    pub created: String,
    /// The layer's size (bytes of its uncompressed tar stream).
    pub size: u64,
    /// Entries added.
    pub added: u64,
    /// Entries changed.
    pub changed: u64,
    /// Entries deleted.
    pub deleted: u64,
}

#[derive(Default, Serialize, serde::Deserialize)]
struct Counts {
    added: u64,
    changed: u64,
    deleted: u64,
}

impl Mountkit {
    /// `image history`: the image's layers, newest first, with their sizes and what each adds, changes
    /// and deletes against the layers below it (see the module docs).
    pub fn image_history(&self, reference: &str) -> Result<Vec<HistoryRow>> {
        let image = self.layers().image(reference)?;
        let all = View::layer_branches(self, &image); // top first
        let mut rows = Vec::with_capacity(all.len());
        for (pos, branch) in all.iter().enumerate() {
            let layer = branch.layer.clone().expect("image layers have a LayerRef");
            let info = self.layers().layer(&layer.id)?;
            let below = View {
                branches: all[pos + 1..]
                    .iter()
                    .map(|b| Branch {
                        dir: b.dir.clone(),
                        layer: b.layer.clone(),
                    })
                    .collect(),
                mounts: Vec::new(),
            };
            let counts = self.layer_counts(&image.layers[..all.len() - pos], &below, &branch.dir)?;
            rows.push(HistoryRow {
                layer,
                created: info.created,
                size: info.size,
                added: counts.added,
                changed: counts.changed,
                deleted: counts.deleted,
            });
        }
        Ok(rows)
    }
}

impl Mountkit {
    /// The counts of the top layer of `chain` (bottom first) on the layers below it: from its note, or
    /// computed with `below` (their view) and `top` (its directory) and noted.
    fn layer_counts(&self, chain: &[LayerId], below: &View, top: &Path) -> Result<Counts> {
        let (layer, lower) = chain.split_last().expect("a chain has a top layer");
        let mut h = Sha256::new();
        for l in lower {
            h.update(l.to_string().as_bytes());
            h.update(b" ");
        }
        let key = format!("changes-{}", hex::encode(h.finalize()));
        if let Some(note) = self.layers().layer_note(layer, &key)? {
            if let Ok(c) = serde_json::from_slice::<Counts>(&note) {
                return Ok(c);
            }
        }
        let mut counts = Counts::default();
        let root = below.root()?;
        below.count(top, Path::new(""), Some(&root), &mut counts)?;
        let data = serde_json::to_vec(&counts).expect("counts serialise");
        if let Err(e) = self.layers().set_layer_note(layer, &key, &data) {
            tracing::debug!(%layer, error = %e, "layer note not written");
        }
        Ok(counts)
    }
}

impl View {
    /// Counts what the directory `rel` of the layer at `top` does to `lower`, this view's node at the same
    /// path (`None`: nothing below).
    fn count(&self, top: &Path, rel: &Path, lower: Option<&Node>, counts: &mut Counts) -> Result<()> {
        let dir = top.join(rel);
        let mut lower = lower.filter(|n| n.is_dir());
        let mut names: Vec<(OsString, std::fs::FileType)> = Vec::new();
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("read directory", &dir, e))?;
            let ft = ent.file_type().map_err(|e| Error::io("stat", ent.path(), e))?;
            names.push((ent.file_name(), ft));
        }
        if let Some(l) = lower.filter(|_| !rel.as_os_str().is_empty() && is_opaque(&dir, false)) {
            // Everything below that this directory does not bring back is deleted.
            let hidden = self.raw_listing(l)?;
            counts.deleted += hidden
                .keys()
                .filter(|k| !names.iter().any(|(n, _)| n == *k))
                .count() as u64;
            lower = None;
        }
        let stack: Vec<usize> = match lower.and_then(|l| l.loc.as_ref()) {
            Some(Loc::Union { stack, .. }) => stack.clone(),
            _ => Vec::new(),
        };
        for (name, ft) in names {
            let child_rel = rel.join(&name);
            let below = if stack.is_empty() {
                None
            } else {
                Some(self.union_child(&child_rel, &stack)?).filter(|n| n.md.is_some())
            };
            if ft.is_char_device() && lstat(&dir.join(&name))?.is_some_and(|m| is_whiteout(&m)) {
                if below.is_some() {
                    counts.deleted += 1;
                }
                continue;
            }
            match (&below, ft.is_dir()) {
                (None, _) => counts.added += 1,
                (Some(b), true) if b.is_dir() => {}
                (Some(_), _) => counts.changed += 1,
            }
            if ft.is_dir() {
                self.count(top, &child_rel, below.as_ref(), counts)?;
            }
        }
        Ok(())
    }
}
