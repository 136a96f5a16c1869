//! Importing an OCI layout, an oci-archive or a docker-archive.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;

use super::resolve::{LayerBlob, Resolved, resolve};
use super::source::{Source, VerifyReader};
use super::{ImportOptions, Progress};
use crate::error::{Error, Result};
use crate::hash::HashReader;
use crate::id::LayerId;
use crate::store::{HistoryEntry, ImageConfig, ImageInfo, Store, decompress, validate_image_name};

/// Splits `PATH:TAG` when `PATH` itself does not exist.
fn split_ref(path: &Path) -> (PathBuf, Option<String>) {
    if path.exists() {
        return (path.to_path_buf(), None);
    }
    // The longest existing prefix before a ':' is the path (references may hold ':' and '/').
    let s = path.to_string_lossy();
    for (i, _) in s.match_indices(':').collect::<Vec<_>>().into_iter().rev() {
        let (p, r) = (&s[..i], &s[i + 1..]);
        if !p.is_empty() && !r.is_empty() && Path::new(p).exists() {
            return (PathBuf::from(p), Some(r.to_string()));
        }
    }
    (path.to_path_buf(), None)
}

/// Imports the image at `path` into `store` (see [`super::import()`]).
pub(crate) fn import(store: &Store, path: &Path, mut opts: ImportOptions<'_>) -> Result<ImageInfo> {
    let _span = tracing::debug_span!("oci_import", path = %path.display()).entered();
    let (path, reference) = path_and_reference(path, opts.reference.take())?;
    if let Some(t) = &opts.tag {
        validate_image_name(t)?;
    }
    let meta = std::fs::metadata(&path).map_err(|e| Error::io("open image", &path, e))?;
    let src = if meta.is_dir() {
        Source::Dir(path.clone())
    } else {
        Source::scan_tar(&path)?
    };
    let resolved = resolve(&src, reference.as_deref())?;
    let name = opts.tag.clone().or(resolved.name.clone());
    if let Some(n) = &name {
        validate_image_name(n).map_err(|e| Error::Image {
            source_path: src.display(),
            reason: format!("cannot use the image's own name ({e}); give another with a tag"),
        })?;
    }
    let config = map_config(&resolved.config);
    let expected = expected_layer_ids(&src, &resolved)?;
    let mut added = Added::since(store)?;
    let outcome = import_layers(store, &src, &resolved.layers, &expected, &mut opts, &mut added)
        .and_then(|layers| create(store, name.as_deref(), &layers, config));
    if outcome.is_err() {
        added.remove(store);
    }
    outcome
}

/// The path to read and the reference of the image in it: `opts_reference` or the `:REF` of
/// `PATH:REF` (both, when they differ, are an error).
fn path_and_reference(path: &Path, opts_reference: Option<String>) -> Result<(PathBuf, Option<String>)> {
    let (path, path_ref) = split_ref(path);
    let reference = match (opts_reference, path_ref) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::Image {
                source_path: path.display().to_string(),
                reason: format!("two references given: {a:?} and {b:?} (from PATH:TAG)"),
            });
        }
        (a, b) => a.or(b),
    };
    Ok((path, reference))
}

/// The layer IDs the config's `rootfs.diff_ids` promise, one per layer of the manifest.
fn expected_layer_ids(src: &Source, resolved: &Resolved) -> Result<Vec<LayerId>> {
    let diff_ids = resolved.config.rootfs().diff_ids().clone();
    if diff_ids.len() != resolved.layers.len() {
        return Err(Error::Image {
            source_path: src.display(),
            reason: format!(
                "the manifest lists {} layers but the config's rootfs.diff_ids has {}",
                resolved.layers.len(),
                diff_ids.len()
            ),
        });
    }
    let mut expected = Vec::new();
    for d in &diff_ids {
        expected.push(d.parse::<LayerId>().map_err(|_| Error::Image {
            source_path: src.display(),
            reason: format!("config has an invalid rootfs.diff_ids entry {d:?}"),
        })?);
    }
    Ok(expected)
}

/// The layers an import added to the store: removed again when the import fails.
struct Added {
    /// The layers stored before the import.
    before: HashSet<LayerId>,
    /// The layers it stored, in order.
    added: Vec<LayerId>,
}

impl Added {
    /// Nothing added yet to what `store` holds now.
    fn since(store: &Store) -> Result<Added> {
        Ok(Added {
            before: store.layers()?.into_iter().map(|l| l.id).collect(),
            added: Vec::new(),
        })
    }

    /// Notes layer `id`, just imported; it was added unless it was `present` or stored before.
    fn note(&mut self, id: &LayerId, present: bool) {
        if !present && !self.before.contains(id) && !self.added.contains(id) {
            self.added.push(id.clone());
        }
    }

    /// Removes the added layers (a layer that cannot be removed is left for gc).
    fn remove(&self, store: &Store) {
        for id in &self.added {
            tracing::debug!(%id, "removing a layer this failed import added");
            if let Err(e) = store.remove_layer(id.hex()) {
                tracing::debug!(%id, error = %e, "layer not removed (left for gc)");
            }
        }
    }
}

/// Creates the image; a name already used by the very same image is not an error (re-import).
fn create(store: &Store, name: Option<&str>, layers: &[LayerId], config: ImageConfig) -> Result<ImageInfo> {
    match store.create_image(name, layers, config.clone()) {
        Err(Error::NameTaken { name, id }) => {
            let existing = store.image(&name)?;
            if existing.layers == layers && existing.config == config {
                Ok(existing)
            } else {
                Err(Error::NameTaken { name, id })
            }
        }
        r => r,
    }
}

/// Imports the layer blobs in order, each checked against its digest and its expected ID; returns
/// the layer IDs. Progress goes to `opts.progress`; `added` learns of each layer stored.
fn import_layers(
    store: &Store,
    src: &Source,
    blobs: &[LayerBlob],
    expected: &[LayerId],
    opts: &mut ImportOptions<'_>,
    added: &mut Added,
) -> Result<Vec<LayerId>> {
    let n = blobs.len();
    let mut sizes = Vec::new();
    for b in blobs {
        let size = match b.size {
            Some(s) => s,
            None => src.open(&b.path)?.1,
        };
        sizes.push(size);
    }
    let total: u64 = sizes.iter().sum();
    let mut done = 0u64;
    let mut out = Vec::new();
    for (i, (blob, want)) in blobs.iter().zip(expected).enumerate() {
        let role = format!("layer {} of {n}", i + 1);
        let name = blob.digest.clone().unwrap_or_else(|| blob.path.clone());
        let blob_err = |reason: String| Error::Blob {
            blob: name.clone(),
            role: role.clone(),
            reason,
        };
        if let Some(mt) = &blob.media_type
            && !is_layer_media_type(mt)
        {
            return Err(blob_err(format!("unsupported layer media type {mt:?}")));
        }
        let (reader, _) = src.open(&blob.path).map_err(|e| match e {
            Error::Image { reason, .. } => blob_err(reason),
            e => e,
        })?;
        let present = store.layer(want.hex()).is_ok();
        tracing::debug!(layer = i + 1, %want, present, blob = %name, "import layer");
        let mut report = |bytes: u64| {
            if let Some(p) = opts.progress.as_mut() {
                p(Progress {
                    layer: i + 1,
                    layers: n,
                    bytes: done + bytes.min(sizes[i]),
                    total,
                });
            }
        };
        let result = import_blob(store, reader, blob, want, present, &mut report);
        done += sizes[i];
        let got = result.map_err(|e| blob_err(reason_of(e)))?;
        added.note(&got, present);
        if got != *want {
            return Err(blob_err(format!(
                "uncompressed content hashes to {got}, but the config's rootfs.diff_ids says {want}"
            )));
        }
        out.push(got);
    }
    Ok(out)
}

/// Reads one layer blob on a worker thread through a [`VerifyReader`] (its size and digest): a
/// layer already `present` is only hashed, any other is unpacked and stored, its ID checked against
/// `want` before it is committed. `progress` hears of the blob bytes read so far. Returns the ID.
fn import_blob(
    store: &Store,
    reader: Box<dyn Read + Send>,
    blob: &LayerBlob,
    want: &LayerId,
    present: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<LayerId> {
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let verify = VerifyReader::new(reader, blob.digest.clone(), blob.size, Some(tx));
    std::thread::scope(|s| {
        let worker = s.spawn(move || -> Result<LayerId> {
            if present {
                // Already stored: check the blob and its diff_id without unpacking.
                let mut raw = HashReader::new(verify);
                let (r, _) = decompress(&mut raw)?;
                let (id, _) = HashReader::new(r)
                    .finish()
                    .map_err(|e| Error::io("read", "layer stream", e))?;
                raw.finish().map_err(|e| Error::io("read", "layer stream", e))?;
                Ok(id)
            } else {
                // Unpacked in one pass; the blob's digest is checked by `verify`, its diff_id
                // before anything is committed.
                Ok(store
                    .import_verified(Box::new(verify), blob.digest.clone(), want)?
                    .id)
            }
        });
        let mut this = 0u64;
        for k in rx {
            this += k;
            progress(this);
        }
        worker.join().unwrap_or_else(|_| {
            Err(Error::Corrupt {
                what: "layer import".into(),
                reason: "worker thread panicked".into(),
            })
        })
    })
}

/// The message of an import error. A size or digest mismatch found by the verifying reader
/// surfaces through the tar parser as "not a valid tar archive: ..."; only the mismatch is kept.
fn reason_of(e: Error) -> String {
    let msg = e.to_string();
    for marker in ["digest mismatch:", "blob is "] {
        if let Some(i) = msg.find(marker) {
            return msg[i..].to_string();
        }
    }
    msg
}

/// Whether `mt` is an OCI or a Docker layer media type.
fn is_layer_media_type(mt: &str) -> bool {
    mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.")
}

/// Maps an OCI image config onto mountkit's.
pub(crate) fn map_config(c: &ImageConfiguration) -> ImageConfig {
    let history = c
        .history()
        .iter()
        .flatten()
        .map(|h| HistoryEntry {
            created: h.created().clone(),
            created_by: h.created_by().clone(),
            comment: h.comment().clone(),
            empty_layer: h.empty_layer().unwrap_or(false),
        })
        .collect();
    let Some(cfg) = c.config() else {
        return ImageConfig {
            history,
            ..ImageConfig::default()
        };
    };
    let mut volumes = cfg.volumes().clone().unwrap_or_default();
    volumes.sort();
    volumes.dedup();
    ImageConfig {
        volumes,
        user: cfg.user().clone().filter(|u| !u.is_empty()),
        workdir: cfg.working_dir().clone().filter(|w| !w.is_empty()),
        env: cfg.env().clone().unwrap_or_default(),
        entrypoint: cfg.entrypoint().clone(),
        cmd: cfg.cmd().clone(),
        labels: cfg
            .labels()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        history,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::resolve::short_tag;
    use std::io::Read;

    #[test]
    fn config_mapping() {
        let json = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "config":{"User":"1000:1000","WorkingDir":"/srv","Env":["A=1","PATH=/bin"],
            "Entrypoint":["/init"],"Cmd":["run","-v"],"Volumes":{"/b":{},"/a":{}},
            "Labels":{"k":"v"}}}"#;
        let c = ImageConfiguration::from_reader(json.as_bytes()).unwrap();
        let m = map_config(&c);
        assert_eq!(m.volumes, vec!["/a", "/b"]);
        assert_eq!(m.user.as_deref(), Some("1000:1000"));
        assert_eq!(m.workdir.as_deref(), Some("/srv"));
        assert_eq!(m.env, vec!["A=1", "PATH=/bin"]);
        assert_eq!(m.entrypoint, Some(vec!["/init".to_string()]));
        assert_eq!(m.cmd, Some(vec!["run".to_string(), "-v".to_string()]));
        assert_eq!(m.labels.get("k").map(String::as_str), Some("v"));
        let bare = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert_eq!(
            map_config(&ImageConfiguration::from_reader(bare.as_bytes()).unwrap()),
            ImageConfig::default()
        );
    }

    #[test]
    fn path_tag_split() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("layout");
        std::fs::create_dir(&p).unwrap();
        assert_eq!(split_ref(&p), (p.clone(), None));
        let with = PathBuf::from(format!("{}:v1", p.display()));
        assert_eq!(split_ref(&with), (p.clone(), Some("v1".into())));
        let missing = t.path().join("nope:v1");
        assert_eq!(split_ref(&missing), (missing.clone(), None));
        let long = PathBuf::from(format!("{}:reg:5000/app:v1", p.display()));
        assert_eq!(split_ref(&long), (p.clone(), Some("reg:5000/app:v1".into())));
        assert_eq!(short_tag("docker.io/library/app:v1"), "app:v1");
        assert_eq!(short_tag("docker.io/me/app:v1"), "me/app:v1");
        assert_eq!(short_tag("quay.io/me/app:v1"), "quay.io/me/app:v1");
    }

    #[test]
    fn reads_are_bounded() {
        // A config larger than MAX_JSON is refused without reading it all.
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("big"),
            vec![b' '; (super::super::source::MAX_JSON + 1) as usize],
        )
        .unwrap();
        let src = Source::Dir(t.path().to_path_buf());
        let e = src.read_small("big").unwrap_err();
        assert!(e.to_string().contains("more than a JSON document"), "{e}");
        let mut r = src.open("big").unwrap().0;
        let mut b = [0u8; 1];
        assert_eq!(r.read(&mut b).unwrap(), 1);
    }
}
