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
//! # Layers
//!
//! A layer's ID is the sha256 of its *uncompressed* tar stream (OCI `diff_id`), shown `sha256:<hex>`.
//! [`Store::import_layer`] takes a directory, a tar file (plain, gzip or zstd, detected by magic
//! bytes) or a one-shot stream. A directory is turned into a canonical tar stream (see below), so
//! the same tree always gets the same ID.
//!
//! ## The import pipeline
//!
//! One pass, two threads. A reader thread reads the source (or archives the directory), sniffs
//! and decompresses it, and hashes it: the uncompressed stream gives the ID, a compressed blob its
//! `compressed_digest`. It hands the stream on in 256 KiB buffers through a queue of 8, recycled;
//! the calling thread parses the tar and creates the files under a staging directory in `tmp/`.
//! On two cores decompression and hashing overlap file creation instead of adding to it (as GNU
//! `tar -xzf` runs gzip in its own process). Memory is flat in the layer size: at most 11 of those
//! buffers, one 256 KiB copy buffer, the open directories of the current path (64 at most) and
//! the list of extracted directories, whose mode and times are set at the end.
//!
//! When the stream ends the ID is known: if the store holds that layer already, the staged copy is
//! discarded (no sync); otherwise it is committed (below). So that a stored layer is not unpacked
//! again, a re-readable source (a tar file, a directory) is only hashed first when the store holds
//! a layer of the same uncompressed stream size; that size is known without reading the data for a
//! plain tar (its file size), a directory (a walk of its metadata that sizes the canonical stream),
//! a gzip file (its ISIZE trailer, modulo 2^32; right for single-member gzip) and a zstd file whose
//! frame header records it. Unknown sizes (zstd compressed from a pipe) hash first whenever the
//! store is not empty. Net effect (decision): a new layer costs one pass (a hash and one pass on a
//! size collision); a stored layer costs one hash pass (an unpack that is then discarded when the
//! size tells nothing, e.g. a multi-member gzip). A one-shot stream is always unpacked once; an OCI
//! import knows each layer's diff_id beforehand, so a stored layer is only hashed and verified, and
//! a new layer whose stream does not hash to its diff_id is never committed.
//!
//! Extraction preserves modes, numeric owners (lchown), mtimes (whole seconds; PAX sub-second mtimes
//! too), xattrs (PAX `SCHILY.xattr.*`), symlinks, device nodes, fifos and hard links inside the
//! layer. Every entry is created relative to a directory descriptor with `O_NOFOLLOW`; a name that
//! exists already is found by `EEXIST` from the create itself (then replaced or refused, see below),
//! not by a stat before each create. A regular file costs `openat` (`O_CREAT|O_EXCL`, created with
//! its final mode), its writes, `futimens` and `close`: the chown is skipped when the owner is the
//! one a new inode gets anyway (our effective uid and gid, in a directory of our group, the staging
//! not set-group-ID), the chmod when the umask (read once from `/proc/self/status`) leaves the mode
//! alone, no default ACL decides it instead and it has no set-user/group-ID or sticky bit (those
//! are set by a chmod after the chown, which would clear them). Directories are created `0700`,
//! kept open while their contents come, and get their mode and times at the end, deepest first.
//!
//! ## Durability and commit
//!
//! Nothing is fsynced per file. The commit writes `layer.json` into the staging directory, calls
//! `syncfs` once on the staging filesystem (the store's), then, under `store.lock`, renames the
//! staging directory to `layers/<hex>` (unless another process committed the same layer meanwhile:
//! then ours is discarded) and fsyncs `layers/`. After a crash a layer is either complete and
//! durable or not there; its staging is swept at the next start.
//!
//! So that this one `syncfs` does not write the whole layer back while everything waits, a third
//! thread starts the writeback early: on a filesystem that has one (not tmpfs or ramfs), every
//! 64 MiB of file data the unpacker asks it for a `syncfs` of the staging filesystem (a request
//! made while one runs is merged into it). Those calls make nothing durable that the commit's
//! would not and their errors are ignored (the commit's `syncfs` reports); they only overlap the
//! disk writes with extraction (decision: on a 500 MB layer on ext4 the final `syncfs` went from
//! about 0.6 s to 0.03 s).
//!
//! Sparse files are written out in full (holes become zeros). Foreign owners and device nodes need
//! root (CAP_CHOWN, CAP_MKNOD); an import that cannot set them fails rather than silently dropping
//! them. [`Store::unpack_count`] tells how many unpacks a `Store` value did (for tests).
//!
//! OCI whiteouts become overlay whiteouts: `.wh.NAME` becomes a 0/0 character device `NAME`, and
//! `DIR/.wh..wh..opq` sets `trusted.overlay.opaque=y` on `DIR`. Other `.wh..wh.*` names (AUFS
//! internals) are skipped. `trusted.overlay.*` xattrs in an archive are dropped: overlayfs' own
//! bookkeeping (redirects, metacopy) must never come from an image.
//!
//! ## Entries that are refused (decisions)
//!
//! A refused archive leaves nothing in the store; [`Error::Rejected`] names the entry and the reason.
//!
//! - A `..` component anywhere in a member name or a hard-link target.
//! - Absolute names are *not* refused (a decision): leading `/` are removed, as GNU tar (without
//!   `-P`) and Docker's and containerd's unpackers do, so `/etc/x` lands at `etc/x` inside the layer.
//!   Why: archives made with absolute names exist in the wild (`tar -P`, some hand-made and older
//!   docker-archive layers) and every other tool imports them this way; a name is only ever joined
//!   below the layer root, so the leading `/` cannot reach the host (a test checks that nothing lands
//!   outside the layer). Leading `./`, `.` components and repeated `/` are dropped too.
//! - A member whose parent path goes through a symlink (or a non-directory) extracted earlier.
//! - A hard link whose target is outside the layer, not extracted (yet), a directory, or itself.
//! - A non-directory member naming the layer root (`.`, `./`, `/`; umoci CVE-2021-29136). A *directory*
//!   member naming the root (as `tar -C dir -cf - .` writes) is accepted and sets the root's metadata.
//! - Conflicting duplicates: the same path twice with different types. A later directory over an
//!   earlier directory merges (the later metadata wins); a later non-directory over an earlier one of
//!   the *same* type replaces it (as tar does); anything else (file over directory, directory over
//!   symlink, file over fifo, a whiteout and a file of the same name...) is refused.
//! - Unsupported member types, bad header fields, ids above 2^32-1, empty or invalid streams.
//!
//! ## The canonical tar stream
//!
//! The same writer serves directory import and [`Store::export_layer`], so a directory-imported layer
//! exports to a stream whose sha256 is its ID. Depth-first, children sorted by member name (bytes);
//! no entry for the root; ustar headers with numeric owners, empty uname/gname, whole-second mtime and
//! no atime; PAX `path`/`linkpath` when a name exceeds 100 bytes and `SCHILY.xattr.*` records sorted by
//! name. Overlay whiteouts (0/0 char devices) and `.wh.*` files export as empty `.wh.NAME` members with
//! their own mode/owner/mtime; opaque directories (xattr or a `.wh..wh..opq` file) get a `.wh..wh..opq`
//! member with fixed metadata (mode 0644, 0:0, mtime 0). Sockets are skipped.
//!
//! # Images
//!
//! An image is an ordered list of layer IDs (bottom first) plus an [`ImageConfig`], with an optional
//! name. Its ID is the sha256 of the canonical JSON of `{layers, config}`, so two names may share an ID
//! (like two Docker tags): each name is one record, and the image is every record of its ID. One
//! resolution rule holds for every lookup ([`Store::image`], [`Store::image_records`],
//! [`Store::remove_image`]), as `docker` resolves references: a name first (`app` and `app:latest`
//! are the same name), then a full ID or a prefix of at least 4 hex digits (with or without
//! `sha256:`), which names the image under all its names. Only a prefix matching two *different* IDs
//! is ambiguous. Names follow Docker
//! references loosely: `[a-z0-9._-/:]`, starting with a letter or digit, no `..`, no empty component,
//! nothing that reads as an ID (see [`validate_image_name`]). Layers are looked up by full ID or
//! unique prefix alike. A layer used by an image cannot be
//! removed; [`Store::remove_image`] leaves its layers for [`Store::gc`], which removes every layer no
//! image references (including one imported a moment ago for an image not yet created: do not run
//! gc concurrently with an import-then-create sequence).
//!
//! # OCI images
//!
//! [`oci::import`] reads an OCI image layout, an oci-archive or a docker-archive (every blob and
//! diff_id verified, nothing stored on failure); [`oci::save`] writes a stored image back out in
//! any of those formats. See the [`oci`] module for the decisions.
//!
//! # Concurrency and crashes
//!
//! Imports stage under `tmp/` and commit with one rename under `store.lock`; two imports of the same
//! layer both succeed (the second discards its copy). [`Store::open`] sweeps staging whose lock file
//! nobody holds (left by a crashed process).
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
//! paths); `rustix` (typed `*at` syscalls, xattrs, `mknodat`, `syncfs`, the effective uid/gid);
//! `tar` (>= 0.4.45) to *parse* archives (headers, PAX, GNU long names; it never touches the
//! filesystem here: extraction is ours); `flate2` (with the `zlib-rs` backend, the fastest inflate
//! available without C, and its `runtime_detection` feature, which the workspace's
//! `default-features = false` drops: without it zlib-rs uses neither its AVX2 inflate nor its
//! pclmulqdq CRC, and gzip layers import 1.5x slower) and `zstd` to decompress (and read a zstd
//! frame's content size); `sha2`/`hex` for IDs; `serde`/`serde_json` for metadata;
//! `humantime` for RFC 3339 timestamps; `oci-spec` (image feature only) for the OCI index,
//! manifest and config types; `thiserror`, `tracing`.

#![deny(missing_docs)]

mod canon;
mod error;
mod id;
pub mod oci;
mod pipeline;
pub mod rules;
mod store;
mod unpack;

pub use error::{Error, Result};
pub use id::LayerId;
pub use store::{ImageConfig, ImageInfo, LayerInfo, LayerSource, Store, validate_image_name};

/// Writes the canonical tar stream of the directory `root` to `out` (see the crate docs); returns
/// the number of members. This is what a directory import hashes, and what an export writes.
pub fn canonical_tar(root: &std::path::Path, out: impl std::io::Write) -> Result<u64> {
    canon::write_canonical(root, out)
}
