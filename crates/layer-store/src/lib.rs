//! Content-addressed image layers and images on disk, for overlayfs.
//!
//! A [`Store`] owns one directory:
//!
//! ```text
//! <root>/layers/<hex>/diff/        the unpacked layer (an overlay lowerdir; never written after commit)
//! <root>/layers/<hex>/layer.json   its LayerInfo
//! <root>/images/<key>.json         one ImageInfo per image (key: sha256 of `name:<name>`, so a lookup by
//!                                   name reads one file; the ID if unnamed)
//! <root>/tmp/<rand>/ + <rand>.lock staging, owned by whoever holds the flock on the .lock file
//! <root>/store.lock, tmp.lock      store-wide locks (commits/removals; staging creation vs. sweep)
//! ```
//!
//! Metadata is JSON (pretty-printed, written with `mountkit_safefs::write_atomic`).
//!
//! # Main types
//!
//! - [`Store`]: [`Store::import_layer`] (a directory, a tar, gzip or zstd file, or a stream; one pass,
//!   OCI whiteouts become overlay whiteouts, hostile entries refused), [`Store::layer_path`] (an overlay
//!   lowerdir), [`Store::export_layer`] (the canonical tar: its sha256 is the layer's ID),
//!   [`Store::create_image`], [`Store::image`], [`Store::remove_image`], [`Store::gc`].
//! - [`LayerId`] (sha256 of the uncompressed tar, OCI `diff_id`), [`LayerInfo`], [`ImageInfo`],
//!   [`ImageConfig`]; [`Error`] names the object and the cause.
//! - [`oci`]: import OCI layouts, oci-archives and docker-archives (every digest verified) and save
//!   images back in those formats.
//!
//! Image references resolve as `docker` resolves them, in every lookup: a name first (`app` and
//! `app:latest` are one name), then a full ID or a prefix of at least 4 hex digits. Several names may
//! share one ID (one record each); an ID names the image under all of them, and only a prefix that
//! matches two *different* IDs is ambiguous.
//!
//! The import pipeline, durability, the entries that are refused (and why absolute member names are
//! kept, relative to the layer), the canonical tar stream and the concurrency rules are in the
//! repository's `docs/layer-store.md`.
//!
//! # Example
//!
//! ```
//! use mountkit_layer_store::{ImageConfig, LayerSource, Store};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let src = tmp.path().join("rootfs");
//! std::fs::create_dir_all(src.join("etc"))?;
//! std::fs::write(src.join("etc/motd"), "hello\n")?;
//!
//! let store = Store::open(tmp.path().join("store"))?;
//! let layer = store.import_layer(LayerSource::Dir(src.clone()))?;
//! assert!(layer.id.to_string().starts_with("sha256:"));
//! // The unpacked tree is an overlay lowerdir.
//! assert_eq!(std::fs::read(store.layer_path(&layer.id).join("etc/motd"))?, b"hello\n");
//! // Importing the same tree again only hashes it.
//! assert_eq!(store.import_layer(LayerSource::Dir(src))?.id, layer.id);
//!
//! let config = ImageConfig { cmd: Some(vec!["/bin/sh".into()]), ..Default::default() };
//! let image = store.create_image(Some("motd:1"), &[layer.id.clone()], config)?;
//! assert_eq!(store.image("motd:1")?.id, image.id);
//! assert!(store.remove_layer(layer.id.hex()).is_err()); // used by motd:1
//! assert_eq!(store.remove_image("motd:1")?.len(), 1);
//! assert_eq!(store.gc()?, vec![layer.id]);
//! # Ok(()) }
//! ```
//!
//! # Dependencies
//!
//! `mountkit-safefs` (atomic metadata writes, flock locks, mount-aware tree removal, `/proc/self/fd`
//! paths, RFC 3339 record times in whole seconds); `rustix` (typed `*at` syscalls, xattrs, `mknodat`,
//! `syncfs`, the effective uid/gid); `tar` (>= 0.4.45) to *parse* archives (headers, PAX, GNU long
//! names; it never touches the filesystem here: extraction is ours); `flate2` (with the `zlib-rs`
//! backend, the fastest inflate available without C, and its `runtime_detection` feature, which the
//! workspace's `default-features = false` drops: without it zlib-rs uses neither its AVX2 inflate nor
//! its pclmulqdq CRC, and gzip layers import 1.5x slower) and `zstd` to decompress (and read a zstd
//! frame's content size); `sha2`/`hex` for IDs; `serde`/`serde_json` for metadata; `oci-spec` (image
//! feature only) for the OCI index, manifest and config types; `thiserror`, `tracing`. Not used:
//! `nix` (rustix has every call), `procfs`, `sys-mount`, `caps` (no mount table, mount or capability
//! is handled here).

#![deny(missing_docs)]

mod canon;
mod error;
mod hash;
mod id;
pub mod oci;
mod pipeline;
pub mod rules;
mod store;
mod unpack;

pub use error::{Error, Result};
pub use id::LayerId;
pub use store::{HistoryEntry, ImageConfig, ImageInfo, LayerInfo, LayerSource, Store, validate_image_name};

/// Writes the canonical tar stream of the directory `root` to `out` (see the crate docs); returns
/// the number of members. This is what a directory import hashes, and what an export writes.
pub fn canonical_tar(root: &std::path::Path, out: impl std::io::Write) -> Result<u64> {
    canon::write_canonical(root, out)
}

/// Writes a tar stream of the plain directory tree `root` (a volume's content, not a layer) to `out`;
/// returns the number of members. The canonical stream's rules (owners, modes, mtimes, xattrs, hard
/// links, symlinks, devices, fifos, sorted names, PAX for long names), with a `./` member for the
/// root's own owner, mode and xattrs, and without the whiteout rules: a
/// `.wh.` name or a 0/0 character device is archived as what it is. File data is written whole (a hole
/// reads as zeros). A file whose size changes while it is read fails the stream
/// ([`Error::Corrupt`]).
pub fn tar_tree(root: &std::path::Path, out: impl std::io::Write) -> Result<u64> {
    canon::write_plain(root, out)
}

/// Extracts the tar stream `src` into the existing, empty directory `dest` as a plain tree (a volume's
/// content, not a layer), with the layer unpacker's guards: a `..` component, an entry whose path goes
/// through a symlink or a non-directory, a hard link to something not extracted earlier, an unsupported
/// entry type, are refused ([`Error::Rejected`]). Unlike a layer: no name is a whiteout, an absolute
/// member name is refused, and a stream that ends without its end-of-archive block is truncated
/// ([`Error::Corrupt`]). Returns the number of members. On an error `dest` holds what was extracted so
/// far: the caller extracts into staging and discards it. Nothing is fsynced.
pub fn unpack_tree(src: impl std::io::Read, dest: &std::path::Path) -> Result<u64> {
    unpack::unpack_with(src, dest, true)
}
