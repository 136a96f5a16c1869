//! The error type of the layer store.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the layer store. Each message names the object and the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No layer or image matches what was asked for.
    #[error("{what} {id:?} not found")]
    NotFound {
        /// "layer" or "image".
        what: &'static str,
        /// The ID, prefix or name that was looked up.
        id: String,
    },
    /// A prefix matches more than one object (for images: more than one image ID; names of one image never do).
    #[error("{what} {id:?} is ambiguous: it matches {}; give more of the ID (or a name)", .matches.join(", "))]
    Ambiguous {
        /// "layer" or "image".
        what: &'static str,
        /// The prefix that was looked up.
        id: String,
        /// What it matched.
        matches: Vec<String>,
    },
    /// A layer cannot be removed because images use it.
    #[error("layer {layer} is used by image(s) {}; remove them first", .images.join(", "))]
    InUse {
        /// The layer.
        layer: String,
        /// The images (names, or IDs for unnamed ones) that use it.
        images: Vec<String>,
    },
    /// A layer archive was refused: one entry is hostile or malformed. Nothing was stored.
    #[error("layer archive refused: entry {entry:?}: {reason}")]
    Rejected {
        /// The entry's path as written in the archive.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// An image name is already used by another image.
    #[error("image name {name:?} is already used by image {id}; remove it first or pick another name")]
    NameTaken {
        /// The name.
        name: String,
        /// The image that holds it.
        id: String,
    },
    /// An image name is not valid.
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer ID or image reference is malformed.
    #[error("invalid {what} {input:?}: {reason}")]
    InvalidId {
        /// "layer ID", "image ID", ...
        what: &'static str,
        /// The input.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An image refers to a layer that is not in the store.
    #[error("image refers to layer {layer}, which is not in the store; import it first")]
    MissingLayer {
        /// The missing layer.
        layer: String,
    },
    /// A filesystem or I/O operation failed.
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An extended attribute of an archive entry could not be set (the filesystem under the store may
    /// not support it, or refuse that namespace).
    #[error("cannot set xattr {name:?} on {}: {source}", .path.display())]
    Xattr {
        /// The attribute's name (`user.x`, `security.capability`, ...).
        name: String,
        /// The entry, as named in the archive.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Something in the store or in a source is not what it should be.
    #[error("{what}: {reason}")]
    Corrupt {
        /// The object (a metadata file, a source directory, a stream).
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// An OCI or docker-archive image (layout, archive, index, manifest, config) is unusable.
    #[error("image {source_path:?}: {reason}")]
    Image {
        /// The layout directory or archive (with the part inside it, when that is known).
        source_path: String,
        /// What is wrong.
        reason: String,
    },
    /// One blob of an image (manifest, config or layer) is missing, corrupt or not what its
    /// descriptor or the config says. Nothing was stored.
    #[error("blob {blob} ({role}): {reason}")]
    Blob {
        /// The blob's digest (or its path in a docker-archive).
        blob: String,
        /// "manifest", "config", "layer 2 of 3", ...
        role: String,
        /// What is wrong (digest or diff_id mismatch, truncated, missing...).
        reason: String,
    },
    /// An error from the safe-filesystem primitives (atomic writes, locks, removal).
    #[error(transparent)]
    Fs(#[from] mountkit_safefs::Error),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }

    pub(crate) fn xattr(name: &str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Error {
        Error::Xattr {
            name: name.into(),
            path: path.into(),
            source: source.into(),
        }
    }

    pub(crate) fn rejected(entry: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Rejected {
            entry: entry.into(),
            reason: reason.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
