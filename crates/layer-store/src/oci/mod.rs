//! OCI images in and out: import an OCI image layout, an oci-archive or a docker-archive into a
//! [`Store`]; save a stored image in any of those three formats.
//!
//! # Import ([`import`])
//!
//! The format is detected: a directory or a tar file holding `manifest.json` is a docker-archive
//! (`docker save`; Docker 25+ archives also carry an OCI layout, but their `RepoTags` are what a
//! Docker user expects, so `manifest.json` wins); otherwise `index.json` makes it an OCI layout
//! (a directory) or an oci-archive (a tar of one). Compressed outer archives are not accepted.
//! An archive is never extracted to disk: one pass indexes the offsets of its members, then each
//! blob is read in place.
//!
//! The image is chosen by reference (`PATH:REF` or [`ImportOptions::reference`]): an OCI manifest
//! whose `org.opencontainers.image.ref.name` annotation equals it (a nested index's annotation
//! applies to the manifests inside), or a docker-archive entry with that `RepoTags` entry (`REF`
//! or `REF:latest`). Index entries with a platform other than `linux/<host architecture>` are
//! skipped; nested indexes are followed (8 levels at most). Without a reference, the layout must
//! hold exactly one such image.
//!
//! Every blob is verified: index, manifest and config against their descriptors' digest and size;
//! each layer blob's sha256 and size while it streams, and its uncompressed sha256 against the
//! config's `rootfs.diff_ids`. A docker-archive names its config (and, in new archives, its
//! layers) by digest: those names are checked too; older `<id>/layer.tar` layers are checked by
//! diff_id only. Layers are gzip, zstd or plain (sniffed from their first bytes, whatever the
//! media type says). A layer already in the store is verified by hashing only, not unpacked.
//!
//! On any failure no image is recorded, and the layers this import added are removed again
//! (decision: a failed import leaves the store as it was; layers that were there before stay).
//! A concurrent import of the same layer could lose it that way, exactly as with [`Store::gc`].
//!
//! The image is named [`ImportOptions::tag`], else by its `ref.name` annotation (OCI), else by
//! its first `RepoTags` entry (docker), else left unnamed. Importing the same image under the
//! same name again returns the existing image; a name held by a different image is refused.
//! Config mapping: `Volumes` keys (sorted), `User`, `WorkingDir`, `Env`, `Entrypoint`, `Cmd`,
//! `Labels`; empty `User`/`WorkingDir` count as unset. Everything else (ports, stop signal,
//! history, healthcheck) is dropped.
//!
//! # Save ([`save`])
//!
//! Layers are written with [`Store::export_layer`] (the canonical tar stream) *uncompressed*,
//! media type `application/vnd.oci.image.layer.v1.tar`: the blob digest equals the diff_id, saving
//! costs no compression time, and the store is usually local. (A layer imported from a tar whose
//! bytes were not canonical gets a new diff_id: the exported stream is the canonical one.)
//! The config records `os: linux`, the host architecture, `created`, `rootfs.diff_ids` and the
//! mapped fields; the JSON keys are written sorted, so saving twice gives identical blobs.
//! The image's name becomes the `org.opencontainers.image.ref.name` annotation of its index
//! entry (OCI), or its `RepoTags` entry (docker-archive; `:latest` added when the name has no
//! tag). An existing OCI layout directory is added to (an entry with the same name is replaced);
//! an archive destination is replaced atomically (written beside it, then renamed).

//!
//! # Example
//!
//! ```
//! use mountkit_layer_store::oci::{self, ArchiveFormat, ImportOptions};
//! use mountkit_layer_store::{ImageConfig, LayerSource, Store};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let src = tmp.path().join("rootfs");
//! std::fs::create_dir_all(&src)?;
//! std::fs::write(src.join("hello"), "hi\n")?;
//! let store = Store::open(tmp.path().join("a"))?;
//! let layer = store.import_layer(LayerSource::Dir(src))?;
//! let config = ImageConfig { cmd: Some(vec!["/hello".into()]), ..Default::default() };
//! store.create_image(Some("demo:1"), &[layer.id], config)?;
//!
//! // Out as an OCI layout, back into another store (by PATH:REF).
//! let layout = tmp.path().join("layout");
//! oci::save(&store, "demo:1", &layout, ArchiveFormat::Oci)?;
//! let other = Store::open(tmp.path().join("b"))?;
//! let img = oci::import(&other, &tmp.path().join("layout:demo:1"), ImportOptions::default())?;
//! assert_eq!(img.name.as_deref(), Some("demo:1"));
//! assert_eq!(img.config.cmd, Some(vec!["/hello".to_string()]));
//! assert_eq!(std::fs::read(other.layer_path(&img.layers[0]).join("hello"))?, b"hi\n");
//! # Ok(()) }
//! ```

use std::path::Path;

use crate::error::Result;
use crate::store::{ImageInfo, Store};

mod import;
mod resolve;
mod save;
mod source;

/// Progress of an import, reported after each MiB of a layer blob and at the end of each layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The layer being read, from 1.
    pub layer: usize,
    /// How many layers the image has.
    pub layers: usize,
    /// Blob bytes read so far, over all layers (compressed size when compressed).
    pub bytes: u64,
    /// Blob bytes of all layers.
    pub total: u64,
}

/// Options of [`import`].
#[derive(Default)]
pub struct ImportOptions<'a> {
    /// Name the image this (overrides the name in the archive).
    pub tag: Option<String>,
    /// Which image of the layout/archive to import (`ref.name` or a `RepoTags` entry); the
    /// `PATH:REF` form of the path does the same.
    pub reference: Option<String>,
    /// Called with progress while layers are read (from the calling thread).
    pub progress: Option<&'a mut dyn FnMut(Progress)>,
}

impl std::fmt::Debug for ImportOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportOptions")
            .field("tag", &self.tag)
            .field("reference", &self.reference)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// The formats [`save`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI image layout directory (`oci:DIR`).
    Oci,
    /// A tar file of an OCI image layout (`oci-archive:FILE`).
    OciArchive,
    /// A `docker save` tar file (`docker-archive:FILE`): `manifest.json` with `RepoTags`.
    DockerArchive,
}

/// Imports an image from an OCI layout directory, an oci-archive or a docker-archive (detected);
/// `path` may end in `:REF` to choose the image. See the module docs for verification and naming.
pub fn import(store: &Store, path: &Path, opts: ImportOptions<'_>) -> Result<ImageInfo> {
    import::import(store, path, opts)
}

/// Saves a stored image (by name or ID) to `dest` in the given format.
pub fn save(store: &Store, image: &str, dest: &Path, format: ArchiveFormat) -> Result<()> {
    save::save(store, image, dest, format)
}

/// The OCI name of this machine's architecture (`amd64`, `arm64`, ...).
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}
