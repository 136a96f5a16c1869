//! Importing an OCI layout, an oci-archive or a docker-archive.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    ANNOTATION_REF_NAME, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};
use serde::Deserialize;

use super::source::{Source, VerifyReader, blob_path, clean, digest_of};
use super::{ImportOptions, Progress, host_arch};
use crate::error::{Error, Result};
use crate::hash::HashReader;
use crate::id::LayerId;
use crate::store::{ImageConfig, ImageInfo, Store, decompress, validate_image_name};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// One entry of a docker-archive's `manifest.json` (the `docker save` format, not an OCI schema).
#[derive(Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A layer to import: where its blob is, what it must hash to.
struct LayerBlob {
    /// Name of the file inside the source.
    path: String,
    /// Expected digest of the blob as stored (None: a docker-archive layer not named by digest).
    digest: Option<String>,
    size: Option<u64>,
    media_type: Option<String>,
}

/// What an image import resolved to before touching the store.
struct Resolved {
    config: ImageConfiguration,
    layers: Vec<LayerBlob>,
    name: Option<String>,
}

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

pub(crate) fn import(store: &Store, path: &Path, mut opts: ImportOptions<'_>) -> Result<ImageInfo> {
    let _span = tracing::debug_span!("oci_import", path = %path.display()).entered();
    let (path, path_ref) = split_ref(path);
    let reference = match (opts.reference.take(), path_ref) {
        (Some(a), Some(b)) if a != b => {
            return Err(Error::Image {
                source_path: path.display().to_string(),
                reason: format!("two references given: {a:?} and {b:?} (from PATH:TAG)"),
            });
        }
        (a, b) => a.or(b),
    };
    if let Some(t) = &opts.tag {
        validate_image_name(t)?;
    }
    let meta = std::fs::metadata(&path).map_err(|e| Error::io("open image", &path, e))?;
    let src = if meta.is_dir() {
        Source::Dir(path.clone())
    } else {
        Source::scan_tar(&path)?
    };
    let resolved = if src.exists("manifest.json") {
        tracing::debug!("docker-archive format");
        resolve_docker(&src, reference.as_deref())?
    } else if src.exists("index.json") {
        tracing::debug!("OCI image layout");
        resolve_oci(&src, reference.as_deref())?
    } else {
        return Err(Error::Image {
            source_path: src.display(),
            reason: "neither an OCI image layout (index.json) nor a docker-archive (manifest.json)".into(),
        });
    };
    let name = opts.tag.clone().or(resolved.name.clone());
    if let Some(n) = &name {
        validate_image_name(n).map_err(|e| Error::Image {
            source_path: src.display(),
            reason: format!("cannot use the image's own name ({e}); give another with a tag"),
        })?;
    }
    let config = map_config(&resolved.config);
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

    let before: HashSet<LayerId> = store.layers()?.into_iter().map(|l| l.id).collect();
    let mut added: Vec<LayerId> = Vec::new();
    let outcome = import_layers(
        store,
        &src,
        &resolved.layers,
        &expected,
        &mut opts,
        &before,
        &mut added,
    )
    .and_then(|layers| create(store, name.as_deref(), &layers, config));
    if outcome.is_err() {
        for id in &added {
            tracing::debug!(%id, "removing a layer this failed import added");
            if let Err(e) = store.remove_layer(id.hex()) {
                tracing::debug!(%id, error = %e, "layer not removed (left for gc)");
            }
        }
    }
    outcome
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

fn import_layers(
    store: &Store,
    src: &Source,
    blobs: &[LayerBlob],
    expected: &[LayerId],
    opts: &mut ImportOptions<'_>,
    before: &HashSet<LayerId>,
    added: &mut Vec<LayerId>,
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
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let verify = VerifyReader::new(reader, blob.digest.clone(), blob.size, Some(tx));
        let result = std::thread::scope(|s| {
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
                if let Some(p) = opts.progress.as_mut() {
                    p(Progress {
                        layer: i + 1,
                        layers: n,
                        bytes: done + this.min(sizes[i]),
                        total,
                    });
                }
            }
            worker.join().unwrap_or_else(|_| {
                Err(Error::Corrupt {
                    what: "layer import".into(),
                    reason: "worker thread panicked".into(),
                })
            })
        });
        done += sizes[i];
        let got = result.map_err(|e| blob_err(reason_of(e)))?;
        if !present && !before.contains(&got) && !added.contains(&got) {
            added.push(got.clone());
        }
        if got != *want {
            return Err(blob_err(format!(
                "uncompressed content hashes to {got}, but the config's rootfs.diff_ids says {want}"
            )));
        }
        out.push(got);
    }
    Ok(out)
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

fn is_layer_media_type(mt: &str) -> bool {
    mt.starts_with("application/vnd.oci.image.layer.")
        || mt.starts_with("application/vnd.docker.image.rootfs.")
}

/// Reads a JSON blob named by a descriptor, checking its size and digest.
fn read_blob(src: &Source, desc: &Descriptor, role: &str) -> Result<Vec<u8>> {
    let digest = desc.digest().to_string();
    let err = |reason: String| Error::Blob {
        blob: digest.clone(),
        role: role.into(),
        reason,
    };
    let path = blob_path(&digest).ok_or_else(|| err("unsupported digest (only sha256 is)".into()))?;
    let data = src.read_small(&path).map_err(|e| match e {
        Error::Image { reason, .. } => err(reason),
        e => e,
    })?;
    if data.len() as u64 != desc.size() {
        return Err(err(format!(
            "blob is {} bytes, its descriptor says {}",
            data.len(),
            desc.size()
        )));
    }
    let got = digest_of(&data);
    if got != digest {
        return Err(err(format!("digest mismatch: content hashes to {got}")));
    }
    Ok(data)
}

fn parse_err(src: &Source, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Image {
        source_path: src.display(),
        reason: format!("invalid {what}: {e}"),
    }
}

fn ref_name(desc: &Descriptor) -> Option<String> {
    desc.annotations().as_ref()?.get(ANNOTATION_REF_NAME).cloned()
}

fn platform_ok(desc: &Descriptor) -> bool {
    match desc.platform() {
        None => true,
        Some(p) => p.os().to_string() == "linux" && p.architecture().to_string() == host_arch(),
    }
}

/// Collects the image manifests of an index (nested indexes included) that fit this host.
fn candidates(
    src: &Source,
    index: &ImageIndex,
    inherited: Option<String>,
    depth: usize,
    out: &mut Vec<(Descriptor, Option<String>)>,
) -> Result<()> {
    if depth > 8 {
        return Err(Error::Image {
            source_path: src.display(),
            reason: "image indexes nested more than 8 deep".into(),
        });
    }
    for d in index.manifests() {
        if !platform_ok(d) {
            continue;
        }
        let name = ref_name(d).or_else(|| inherited.clone());
        match d.media_type() {
            MediaType::ImageIndex => {}
            MediaType::Other(s) if s == DOCKER_LIST => {}
            MediaType::ImageManifest => {
                out.push((d.clone(), name));
                continue;
            }
            MediaType::Other(s) if s == DOCKER_MANIFEST => {
                out.push((d.clone(), name));
                continue;
            }
            _ => continue,
        }
        let data = read_blob(src, d, "image index")?;
        let nested = ImageIndex::from_reader(&data[..]).map_err(|e| parse_err(src, "image index", e))?;
        candidates(src, &nested, name, depth + 1, out)?;
    }
    Ok(())
}

fn resolve_oci(src: &Source, reference: Option<&str>) -> Result<Resolved> {
    let data = src.read_small("index.json")?;
    let index = ImageIndex::from_reader(&data[..]).map_err(|e| parse_err(src, "index.json", e))?;
    let mut all = Vec::new();
    candidates(src, &index, None, 0, &mut all)?;
    let names = || {
        let v: Vec<String> = all
            .iter()
            .map(|(d, n)| n.clone().unwrap_or_else(|| d.digest().to_string()))
            .collect();
        if v.is_empty() { "none".into() } else { v.join(", ") }
    };
    let picked: Vec<&(Descriptor, Option<String>)> = match reference {
        Some(r) => all.iter().filter(|(_, n)| n.as_deref() == Some(r)).collect(),
        None => all.iter().collect(),
    };
    let (desc, name) = match picked.as_slice() {
        [] => {
            return Err(Error::Image {
                source_path: src.display(),
                reason: match reference {
                    Some(r) => format!("no {}/linux image named {r:?} (images: {})", host_arch(), names()),
                    None => format!("no image for linux/{}", host_arch()),
                },
            });
        }
        [one, rest @ ..] if rest.iter().all(|(d, _)| d.digest() == one.0.digest()) => (*one).clone(),
        _ => {
            return Err(Error::Image {
                source_path: src.display(),
                reason: format!("holds several images ({}); say which one (PATH:NAME)", names()),
            });
        }
    };
    let data = read_blob(src, &desc, "manifest")?;
    let manifest = ImageManifest::from_reader(&data[..]).map_err(|e| parse_err(src, "manifest", e))?;
    let cdata = read_blob(src, manifest.config(), "config")?;
    let config =
        ImageConfiguration::from_reader(&cdata[..]).map_err(|e| parse_err(src, "image config", e))?;
    let mut layers = Vec::new();
    for l in manifest.layers() {
        let digest = l.digest().to_string();
        let path = blob_path(&digest).ok_or_else(|| Error::Blob {
            blob: digest.clone(),
            role: "layer".into(),
            reason: "unsupported digest (only sha256 is)".into(),
        })?;
        layers.push(LayerBlob {
            path,
            digest: Some(digest),
            size: Some(l.size()),
            media_type: Some(l.media_type().to_string()),
        });
    }
    Ok(Resolved {
        config,
        layers,
        name: name.filter(|n| !n.is_empty()),
    })
}

/// The digest a docker-archive file name implies: `blobs/sha256/<hex>` or `<hex>.json`.
fn digest_from_path(p: &str) -> Option<String> {
    let base = p.rsplit('/').next()?;
    let hex = base.strip_suffix(".json").unwrap_or(base);
    let d = format!("sha256:{hex}");
    blob_path(&d).map(|_| d)
}

fn resolve_docker(src: &Source, reference: Option<&str>) -> Result<Resolved> {
    let data = src.read_small("manifest.json")?;
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&data).map_err(|e| parse_err(src, "manifest.json", e))?;
    // Tags as Docker shows them: without `docker.io/library/` (or `docker.io/`), which skopeo adds.
    let tags = |e: &DockerEntry| -> Vec<String> {
        e.repo_tags
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|t| short_tag(&t))
            .collect()
    };
    let matches = |e: &DockerEntry, r: &str| tags(e).iter().any(|t| t == r || *t == format!("{r}:latest"));
    let picked: Vec<&DockerEntry> = match reference {
        Some(r) => entries.iter().filter(|e| matches(e, r)).collect(),
        None => entries.iter().collect(),
    };
    let all_tags = || {
        let v: Vec<String> = entries.iter().flat_map(tags).collect();
        if v.is_empty() { "none".into() } else { v.join(", ") }
    };
    let entry = match picked.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::Image {
                source_path: src.display(),
                reason: match reference {
                    Some(r) => format!("no image tagged {r:?} (tags: {})", all_tags()),
                    None => "manifest.json lists no image".into(),
                },
            });
        }
        _ => {
            return Err(Error::Image {
                source_path: src.display(),
                reason: format!(
                    "holds several images (tags: {}); say which one (PATH:TAG)",
                    all_tags()
                ),
            });
        }
    };
    let cpath = clean(&entry.config).ok_or_else(|| parse_err(src, "manifest.json Config", &entry.config))?;
    let cdata = src.read_small(&cpath).map_err(|e| match e {
        Error::Image { reason, .. } => Error::Blob {
            blob: cpath.clone(),
            role: "config".into(),
            reason,
        },
        e => e,
    })?;
    if let Some(want) = digest_from_path(&cpath) {
        let got = digest_of(&cdata);
        if got != want {
            return Err(Error::Blob {
                blob: cpath.clone(),
                role: "config".into(),
                reason: format!("digest mismatch: content hashes to {got}, its name says {want}"),
            });
        }
    }
    let config =
        ImageConfiguration::from_reader(&cdata[..]).map_err(|e| parse_err(src, "image config", e))?;
    let mut layers = Vec::new();
    for l in &entry.layers {
        let path = clean(l).ok_or_else(|| parse_err(src, "manifest.json Layers entry", l))?;
        let digest = path
            .starts_with("blobs/sha256/")
            .then(|| digest_from_path(&path))
            .flatten();
        layers.push(LayerBlob {
            path,
            digest,
            size: None,
            media_type: None,
        });
    }
    let name = match reference {
        Some(r) => tags(entry)
            .into_iter()
            .find(|t| t == r || *t == format!("{r}:latest")),
        None => tags(entry).into_iter().next(),
    };
    Ok(Resolved { config, layers, name })
}

/// A Docker Hub reference as Docker displays it.
fn short_tag(t: &str) -> String {
    t.strip_prefix("docker.io/library/")
        .or_else(|| t.strip_prefix("docker.io/"))
        .unwrap_or(t)
        .to_string()
}

/// Maps an OCI image config onto mountkit's.
pub(crate) fn map_config(c: &ImageConfiguration) -> ImageConfig {
    let Some(cfg) = c.config() else {
        return ImageConfig::default();
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn docker_paths() {
        let hex = "b".repeat(64);
        assert_eq!(
            digest_from_path(&format!("{hex}.json")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(
            digest_from_path(&format!("blobs/sha256/{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(digest_from_path("abc/layer.tar"), None);
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
