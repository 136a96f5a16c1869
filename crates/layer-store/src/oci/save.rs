//! Saving a stored image as an OCI layout, an oci-archive or a docker-archive.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use mountkit_safefs::{random_hex, remove_tree, write_atomic};
use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndex, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    RootFsBuilder,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{ArchiveFormat, host_arch};
use crate::error::{Error, Result};
use crate::id::LayerId;
use crate::store::{ImageInfo, Store};

/// A writer that hashes and counts what it writes to a file.
struct HashFile {
    out: BufWriter<File>,
    hasher: Sha256,
    count: u64,
}

impl Write for HashFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn spec_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        what: format!("saved {what}"),
        reason: e.to_string(),
    }
}

/// JSON with object keys sorted (serde_json's `Value` map is ordered), so output is stable.
fn stable_json<T: Serialize>(v: &T, what: &str) -> Result<Vec<u8>> {
    let value = serde_json::to_value(v).map_err(|e| spec_err(what, e))?;
    serde_json::to_vec(&value).map_err(|e| spec_err(what, e))
}

/// Writes `data` as a blob of the layout at `dir`; returns its descriptor.
fn put_blob(dir: &Path, data: &[u8], media_type: MediaType) -> Result<Descriptor> {
    let hex = hex::encode(Sha256::digest(data));
    write_atomic(&dir.join("blobs/sha256").join(&hex), data)?;
    Ok(Descriptor::new(media_type, data.len() as u64, sha_digest(&hex)?))
}

fn sha_digest(hex: &str) -> Result<oci_spec::image::Digest> {
    format!("sha256:{hex}").parse().map_err(|e| spec_err("digest", e))
}

/// Writes the image's blobs (layers, config, manifest) into the layout directory `dir`.
/// Returns the manifest descriptor, the config's path and the layers' paths (relative to `dir`).
fn write_blobs(store: &Store, info: &ImageInfo, dir: &Path) -> Result<(Descriptor, String, Vec<String>)> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| Error::io("create directory", &blobs, e))?;
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_paths = Vec::new();
    for id in &info.layers {
        let (hex, size) = write_layer_blob(store, id, &blobs)?;
        layer_descs.push(Descriptor::new(MediaType::ImageLayer, size, sha_digest(&hex)?));
        diff_ids.push(format!("sha256:{hex}"));
        layer_paths.push(format!("blobs/sha256/{hex}"));
    }
    let config = image_config(info, diff_ids)?;
    let config_desc = put_blob(dir, &stable_json(&config, "config")?, MediaType::ImageConfig)?;
    let config_path = format!("blobs/sha256/{}", config_desc.digest().digest());
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc)
        .layers(layer_descs)
        .build()
        .map_err(|e| spec_err("manifest", e))?;
    let manifest_desc = put_blob(
        dir,
        &stable_json(&manifest, "manifest")?,
        MediaType::ImageManifest,
    )?;
    Ok((manifest_desc, config_path, layer_paths))
}

/// Exports layer `id` as a blob into the directory `blobs` (a temp file, synced, then renamed to its
/// digest); returns the blob's hex digest and size.
fn write_layer_blob(store: &Store, id: &LayerId, blobs: &Path) -> Result<(String, u64)> {
    let tmp = blobs.join(format!(".tmp-{}", random_hex(8)));
    let f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let mut hw = HashFile {
        out: BufWriter::with_capacity(1 << 18, f),
        hasher: Sha256::new(),
        count: 0,
    };
    tracing::debug!(layer = %id, "export layer");
    let written = store.export_layer(id, &mut hw).and_then(|()| {
        let f = hw
            .out
            .into_inner()
            .map_err(|e| Error::io("write", &tmp, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let hex = hex::encode(hw.hasher.finalize());
    let dest = blobs.join(&hex);
    std::fs::rename(&tmp, &dest).map_err(|e| Error::io("rename blob into", &dest, e))?;
    Ok((hex, hw.count))
}

/// The OCI image config of a stored image whose layers have these `diff_ids`.
fn image_config(info: &ImageInfo, diff_ids: Vec<String>) -> Result<ImageConfiguration> {
    let c = &info.config;
    let mut cb = ConfigBuilder::default().env(c.env.clone());
    if let Some(u) = &c.user {
        cb = cb.user(u.clone());
    }
    if let Some(w) = &c.workdir {
        cb = cb.working_dir(w.clone());
    }
    if let Some(e) = &c.entrypoint {
        cb = cb.entrypoint(e.clone());
    }
    if let Some(cmd) = &c.cmd {
        cb = cb.cmd(cmd.clone());
    }
    if !c.volumes.is_empty() {
        cb = cb.volumes(c.volumes.clone());
    }
    if !c.labels.is_empty() {
        cb = cb.labels(c.labels.clone().into_iter().collect::<HashMap<_, _>>());
    }
    let history = c
        .history
        .iter()
        .map(|h| {
            let mut b = HistoryBuilder::default();
            if let Some(v) = &h.created {
                b = b.created(v.clone());
            }
            if let Some(v) = &h.created_by {
                b = b.created_by(v.clone());
            }
            if let Some(v) = &h.comment {
                b = b.comment(v.clone());
            }
            if h.empty_layer {
                b = b.empty_layer(true);
            }
            b.build().map_err(|e| spec_err("history", e))
        })
        .collect::<Result<Vec<_>>>()?;
    ImageConfigurationBuilder::default()
        .history(history)
        .created(info.created.clone())
        .architecture(Arch::from(host_arch()))
        .os(Os::Linux)
        .config(cb.build().map_err(|e| spec_err("config", e))?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .map_err(|e| spec_err("config", e))?,
        )
        .build()
        .map_err(|e| spec_err("config", e))
}

/// Writes `oci-layout` and `index.json`, keeping the entries of an existing index except one
/// with the same name.
fn write_index(dir: &Path, mut desc: Descriptor, name: Option<&str>) -> Result<()> {
    let index_path = dir.join("index.json");
    let mut manifests = Vec::new();
    if index_path.exists() {
        let old = ImageIndex::from_file(&index_path).map_err(|e| Error::Image {
            source_path: index_path.display().to_string(),
            reason: format!("existing index.json is invalid: {e}"),
        })?;
        for d in old.manifests() {
            let old_name = d.annotations().as_ref().and_then(|a| a.get(ANNOTATION_REF_NAME));
            if name.is_none() || old_name.map(String::as_str) != name {
                manifests.push(d.clone());
            }
        }
    }
    if let Some(n) = name {
        desc.set_annotations(Some(HashMap::from([(
            ANNOTATION_REF_NAME.to_string(),
            n.to_string(),
        )])));
    }
    manifests.push(desc);
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(|e| spec_err("index", e))?;
    write_atomic(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    write_atomic(&index_path, &stable_json(&index, "index")?)?;
    Ok(())
}

/// A `docker save` manifest entry.
#[derive(Serialize)]
struct DockerEntry<'a> {
    #[serde(rename = "Config")]
    config: &'a str,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: &'a [String],
}

/// Docker wants `name:tag`.
fn docker_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Tars the files of `dir` (the ones listed, in order) into `dest` atomically.
fn write_tar(dir: &Path, files: &[String], dest: &Path) -> Result<()> {
    let tmp = sibling(dest, "tmp");
    let result = (|| -> Result<()> {
        let f = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 18, f));
        let wr = |e| Error::io("write", &tmp, e);
        for d in ["blobs/", "blobs/sha256/"] {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_mtime(0);
            h.set_path(d).map_err(wr)?;
            h.set_cksum();
            b.append(&h, std::io::empty()).map_err(wr)?;
        }
        for name in files {
            let p = dir.join(name);
            let f = File::open(&p).map_err(|e| Error::io("open", &p, e))?;
            let len = f.metadata().map_err(|e| Error::io("stat", &p, e))?.len();
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(len);
            h.set_mtime(0);
            h.set_path(name).map_err(wr)?;
            h.set_cksum();
            b.append(&h, f).map_err(wr)?;
        }
        let out = b.into_inner().map_err(wr)?;
        let f = out.into_inner().map_err(|e| wr(e.into_error()))?;
        f.sync_all().map_err(wr)?;
        std::fs::rename(&tmp, dest).map_err(|e| Error::io("rename archive into", dest, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `<dir>/.<name>.<what>-<random>`, beside `path`.
fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{what}-{}", random_hex(6)))
}

pub(crate) fn save(store: &Store, image: &str, dest: &Path, format: ArchiveFormat) -> Result<()> {
    let _span = tracing::debug_span!("oci_save", image, dest = %dest.display(), ?format).entered();
    let info = store.image(image)?;
    let name = info.name.as_deref();
    match format {
        ArchiveFormat::Oci => {
            if dest.exists() && !dest.join("index.json").exists() {
                let empty = std::fs::read_dir(dest)
                    .map_err(|e| Error::io("read directory", dest, e))?
                    .next()
                    .is_none();
                if !empty {
                    return Err(Error::Image {
                        source_path: dest.display().to_string(),
                        reason: "exists and is neither empty nor an OCI image layout".into(),
                    });
                }
            }
            std::fs::create_dir_all(dest).map_err(|e| Error::io("create directory", dest, e))?;
            let (desc, _, _) = write_blobs(store, &info, dest)?;
            write_index(dest, desc, name)
        }
        ArchiveFormat::OciArchive | ArchiveFormat::DockerArchive => {
            let dir = sibling(dest, "staging");
            std::fs::create_dir(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
            let result = (|| -> Result<()> {
                let (desc, config_path, layer_paths) = write_blobs(store, &info, &dir)?;
                let mut files: Vec<String> = Vec::new();
                if format == ArchiveFormat::OciArchive {
                    let manifest_path = format!("blobs/sha256/{}", desc.digest().digest());
                    write_index(&dir, desc, name)?;
                    files.extend(["oci-layout".to_string(), "index.json".to_string()]);
                    files.push(manifest_path);
                } else {
                    let entries = [DockerEntry {
                        config: &config_path,
                        repo_tags: name.map(docker_tag).into_iter().collect(),
                        layers: &layer_paths,
                    }];
                    let json = serde_json::to_vec(&entries).map_err(|e| spec_err("manifest.json", e))?;
                    write_atomic(&dir.join("manifest.json"), &json)?;
                    files.push("manifest.json".into());
                }
                files.push(config_path);
                for l in layer_paths {
                    if !files.contains(&l) {
                        files.push(l);
                    }
                }
                write_tar(&dir, &files, dest)
            })();
            remove_tree(&dir)?;
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_tags() {
        assert_eq!(docker_tag("app"), "app:latest");
        assert_eq!(docker_tag("app:1"), "app:1");
        assert_eq!(docker_tag("reg:5000/team/app"), "reg:5000/team/app:latest");
        assert_eq!(docker_tag("reg:5000/team/app:v2"), "reg:5000/team/app:v2");
    }

    #[test]
    fn stable_json_sorts_keys() {
        let m: HashMap<String, u8> = (0..20).map(|i| (format!("k{i:02}"), i)).collect();
        let s = String::from_utf8(stable_json(&m, "t").unwrap()).unwrap();
        let mut keys: Vec<&str> = m.keys().map(String::as_str).collect();
        keys.sort();
        let pos: Vec<usize> = keys.iter().map(|k| s.find(k).unwrap()).collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{s}");
    }
}
