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
use std::path::Path;

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
            history: Vec::new(),
        }
    }
}

impl Mountkit {
    /// A layer named on the command line or in a recipe: a directory or a tar file at `path` is
    /// imported (a hash only, when the store already has it); otherwise `reference` is looked up as a
    /// layer ID or unique prefix.
    pub fn layer_from_arg(&self, path: &Path, reference: &str) -> Result<LayerId> {
        Ok(if path.is_dir() {
            self.layers().import_layer(LayerSource::Dir(path.into()))?.id
        } else if path.is_file() {
            self.layers().import_layer(LayerSource::Tar(path.into()))?.id
        } else {
            self.layers().layer(reference)?.id
        })
    }

    /// Creates image `name` from a recipe file, importing its directory and tar layers.
    pub fn create_image_from_recipe(&self, name: &str, path: &Path) -> Result<ImageInfo> {
        let recipe = Recipe::load(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut ids: Vec<LayerId> = Vec::new();
        for l in &recipe.layers {
            let id = self.layer_from_arg(&base.join(l), l).map_err(|e| match e {
                Error::Layers(mountkit_layer_store::Error::NotFound { .. }) => Error::Recipe {
                    path: path.into(),
                    reason: format!("layer {l:?} is neither a directory, a file, nor a layer in the store"),
                },
                other => other,
            })?;
            ids.push(id);
        }
        Ok(self.layers().create_image(Some(name), &ids, recipe.config())?)
    }
}
