//! Where things are in the registry's directory: the directory itself (resolved once), each volume's
//! directory and data, and which entries are volumes. Each module names its own files; this one only
//! joins paths.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::name::validate_name;
use crate::{Error, Result};

/// A volume's data directory, inside its directory: what a container gets bind-mounted.
pub(crate) const DATA: &str = "_data";

/// The registry's directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The directory as given (made absolute), for the one `stat` of the common case.
    given: PathBuf,
    /// The directory with symlinks resolved, computed on first use (every path mountkit hands out or
    /// compares with the mount table is built on it).
    root: OnceLock<PathBuf>,
}

impl Layout {
    /// The registry in `given`, an absolute path.
    pub(crate) fn new(given: PathBuf) -> Layout {
        Layout {
            given,
            root: OnceLock::new(),
        }
    }

    /// The directory as given, not resolved: for a `stat` that should not pay for resolving it.
    pub(crate) fn given(&self) -> &Path {
        &self.given
    }

    /// The directory, canonical.
    pub(crate) fn root(&self) -> &Path {
        self.root
            .get_or_init(|| fs::canonicalize(&self.given).unwrap_or_else(|_| self.given.clone()))
    }

    /// A file of the registry itself (`<root>/<file>`).
    pub(crate) fn file(&self, file: &str) -> PathBuf {
        self.root().join(file)
    }

    /// A volume's directory (`<root>/<name>`).
    pub(crate) fn volume_dir(&self, name: &str) -> PathBuf {
        self.root().join(name)
    }

    /// A volume's data (`<root>/<name>/_data`).
    pub(crate) fn data_dir(&self, name: &str) -> PathBuf {
        self.root().join(name).join(DATA)
    }

    /// The entries of the directory that can be volumes (their names are valid volume names), sorted.
    /// Whether each is a volume is for its record to say.
    pub(crate) fn names(&self) -> Result<Vec<String>> {
        let root = self.root();
        let mut names = Vec::new();
        for entry in fs::read_dir(root).map_err(|e| Error::io("read directory", root, e))? {
            let entry = entry.map_err(|e| Error::io("read directory", root, e))?;
            if let Some(n) = entry.file_name().to_str()
                && validate_name(n).is_ok()
            {
                names.push(n.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
}
