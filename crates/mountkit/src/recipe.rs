//! Image recipes: an image described in TOML (`mountkit image create NAME --file RECIPE.toml`).
//!
//! ```toml
//! layers = ["base/", "app.tar.gz", "sha256:3f5a..."]   # bottom first: directories, tars, or layer IDs
//! volumes = ["/data"]
//! user = "app"
//! workdir = "/app"
//! env = ["MODE=demo"]
//! entrypoint = ["/bin/sh", "-c"]
//! cmd = ["echo hello"]
//! [labels]
//! maintainer = "me"
//! ```
//! Relative layer paths are taken from the recipe file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use mountkit_layer_store::{ImageConfig, ImageInfo, LayerId, LayerSource};

use crate::{Error, Mountkit, Result};

/// The contents of a recipe file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Layers, bottom first: a directory, a tar (optionally gzip/zstd), or an existing layer's ID.
    pub layers: Vec<String>,
    /// Paths the image declares as volumes.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// The user the process runs as.
    pub user: Option<String>,
    /// The working directory.
    pub workdir: Option<String>,
    /// `K=V` environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// The entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// The default command.
    pub cmd: Option<Vec<String>>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Recipe {
    /// Reads and parses a recipe file.
    pub fn load(path: &Path) -> Result<Recipe> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read recipe", path, e))?;
        toml::from_str(&text).map_err(|e| Error::Recipe {
            path: path.into(),
            reason: e.to_string(),
        })
    }

    /// The image config part of the recipe.
    pub fn config(&self) -> ImageConfig {
        ImageConfig {
            volumes: self.volumes.clone(),
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            env: self.env.clone(),
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            labels: self.labels.clone(),
        }
    }
}

impl Mountkit {
    /// Creates image `name` from a recipe file, importing its directory and tar layers.
    pub fn create_image_from_recipe(&self, name: &str, path: &Path) -> Result<ImageInfo> {
        let recipe = Recipe::load(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut ids: Vec<LayerId> = Vec::new();
        for l in &recipe.layers {
            let p: PathBuf = base.join(l);
            let id = if p.is_dir() {
                self.layers().import_layer(LayerSource::Dir(p))?.id
            } else if p.is_file() {
                self.layers().import_layer(LayerSource::Tar(p))?.id
            } else if let Ok(info) = self.layers().layer(l) {
                info.id
            } else {
                return Err(Error::Recipe {
                    path: path.into(),
                    reason: format!("layer {l:?} is neither a directory, a file, nor a layer in the store"),
                });
            };
            ids.push(id);
        }
        Ok(self.layers().create_image(Some(name), &ids, recipe.config())?)
    }
}
