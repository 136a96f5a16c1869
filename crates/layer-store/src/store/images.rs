//! Image records: `images/<key>.json`, one a name (or one for an unnamed image), and the one rule
//! that resolves a reference to them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::path::PathBuf;

use mountkit_safefs::{TimePrecision, now_rfc3339, write_atomic};
use serde::{Deserialize, Serialize};

use super::{Store, read_json, sha256_hex, to_json};
use crate::error::{Error, Result};
use crate::id::{LayerId, hex_prefix, is_lower_hex, pick_by_prefix};

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
    /// How the image was built, oldest step first (the OCI config's `history`): an entry without
    /// `empty_layer` made the next layer. Empty for images made here without one; left out of the
    /// record (and so of the image ID) when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// One build step of an image (the OCI config's `history` entry).
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
#[serde(default)]
pub struct HistoryEntry {
    /// When the step ran (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command of the step (`/bin/sh -c #(nop) ADD file:… in /`, `RUN …`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// A comment (`mountkit container commit`, a builder's note).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The step made no layer (ENV, CMD, ...).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// The history entry of each of `layers` layers (bottom first): the entries that made a layer, in
    /// order. `None` for every layer when the history does not account for exactly that many.
    pub fn layer_history(&self, layers: usize) -> Vec<Option<&HistoryEntry>> {
        let made: Vec<&HistoryEntry> = self.history.iter().filter(|h| !h.empty_layer).collect();
        if made.len() == layers {
            made.into_iter().map(Some).collect()
        } else {
            vec![None; layers]
        }
    }
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
}
