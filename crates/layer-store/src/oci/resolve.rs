//! Resolving the image an OCI layout or a docker-archive holds: which manifest (by reference, for
//! this host's platform), its config and its layer blobs, every JSON blob checked against its
//! digest.

use oci_spec::image::{
    ANNOTATION_REF_NAME, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};
use serde::Deserialize;

use super::host_arch;
use super::source::{Source, blob_path, clean, digest_of};
use crate::error::{Error, Result};

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
pub(super) struct LayerBlob {
    /// Name of the file inside the source.
    pub(super) path: String,
    /// Expected digest of the blob as stored (None: a docker-archive layer not named by digest).
    pub(super) digest: Option<String>,
    /// Its size, when a descriptor says it.
    pub(super) size: Option<u64>,
    /// Its media type, when a descriptor says it.
    pub(super) media_type: Option<String>,
}

/// What an image import resolved to before touching the store.
pub(super) struct Resolved {
    /// The image config.
    pub(super) config: ImageConfiguration,
    /// The layer blobs, bottom first.
    pub(super) layers: Vec<LayerBlob>,
    /// The image's own name, if it has one.
    pub(super) name: Option<String>,
}

/// Resolves the image in a docker-archive (`manifest.json`) or an OCI layout (`index.json`).
pub(super) fn resolve(src: &Source, reference: Option<&str>) -> Result<Resolved> {
    if src.exists("manifest.json") {
        tracing::debug!("docker-archive format");
        resolve_docker(src, reference)
    } else if src.exists("index.json") {
        tracing::debug!("OCI image layout");
        resolve_oci(src, reference)
    } else {
        Err(Error::Image {
            source_path: src.display(),
            reason: "neither an OCI image layout (index.json) nor a docker-archive (manifest.json)".into(),
        })
    }
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

/// The error for a document of the source (`what`) that does not parse.
fn parse_err(src: &Source, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Image {
        source_path: src.display(),
        reason: format!("invalid {what}: {e}"),
    }
}

/// A descriptor's `org.opencontainers.image.ref.name` annotation.
fn ref_name(desc: &Descriptor) -> Option<String> {
    desc.annotations().as_ref()?.get(ANNOTATION_REF_NAME).cloned()
}

/// Whether a descriptor's platform (none: any) is linux on this host's architecture.
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

/// The image of an OCI layout that `reference` names, or its only one for this platform.
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

/// The image of a docker-archive that `reference` names, or its only one.
fn resolve_docker(src: &Source, reference: Option<&str>) -> Result<Resolved> {
    let data = src.read_small("manifest.json")?;
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&data).map_err(|e| parse_err(src, "manifest.json", e))?;
    let entry = pick_docker_entry(src, &entries, reference)?;
    let config = read_docker_config(src, entry)?;
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
        Some(r) => entry.tags().into_iter().find(|t| names_tag(r, t)),
        None => entry.tags().into_iter().next(),
    };
    Ok(Resolved { config, layers, name })
}

impl DockerEntry {
    /// Tags as Docker shows them: without `docker.io/library/` (or `docker.io/`), which skopeo adds.
    fn tags(&self) -> Vec<String> {
        self.repo_tags
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|t| short_tag(&t))
            .collect()
    }
}

/// Whether the reference `r` names the tag `t` (`app` names `app:latest`).
fn names_tag(r: &str, t: &str) -> bool {
    t == r || *t == format!("{r}:latest")
}

/// The entry of a docker-archive's `manifest.json` that `reference` names, or its only one.
fn pick_docker_entry<'e>(
    src: &Source,
    entries: &'e [DockerEntry],
    reference: Option<&str>,
) -> Result<&'e DockerEntry> {
    let picked: Vec<&DockerEntry> = match reference {
        Some(r) => entries
            .iter()
            .filter(|e| e.tags().iter().any(|t| names_tag(r, t)))
            .collect(),
        None => entries.iter().collect(),
    };
    let all_tags = || {
        let v: Vec<String> = entries.iter().flat_map(DockerEntry::tags).collect();
        if v.is_empty() { "none".into() } else { v.join(", ") }
    };
    match picked.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::Image {
            source_path: src.display(),
            reason: match reference {
                Some(r) => format!("no image tagged {r:?} (tags: {})", all_tags()),
                None => "manifest.json lists no image".into(),
            },
        }),
        _ => Err(Error::Image {
            source_path: src.display(),
            reason: format!(
                "holds several images (tags: {}); say which one (PATH:TAG)",
                all_tags()
            ),
        }),
    }
}

/// Reads a docker-archive entry's config, checked against the digest its file name implies.
fn read_docker_config(src: &Source, entry: &DockerEntry) -> Result<ImageConfiguration> {
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
    ImageConfiguration::from_reader(&cdata[..]).map_err(|e| parse_err(src, "image config", e))
}

/// A Docker Hub reference as Docker displays it.
pub(super) fn short_tag(t: &str) -> String {
    t.strip_prefix("docker.io/library/")
        .or_else(|| t.strip_prefix("docker.io/"))
        .unwrap_or(t)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
