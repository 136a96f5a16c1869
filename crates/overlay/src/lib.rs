//! overlayfs stacks: mount read-only lower layers, an optional upper (writable) layer and its work
//! directory onto a target, and unmount them again.
//!
//! ```no_run
//! use std::path::Path;
//! use mountkit_overlay::{Method, Stack, mount, unmount};
//!
//! let stack = Stack::new()
//!     .lowers(["/store/layers/base", "/store/layers/app"]) // bottom first
//!     .upper("/store/c1/upper", "/store/c1/work");
//! let used = mount(&stack, Path::new("/store/c1/merged"), Method::Auto)?;
//! eprintln!("mounted with {used:?}");
//! unmount(Path::new("/store/c1/merged"))?;
//! # Ok::<(), mountkit_overlay::Error>(())
//! ```
//!
//! (`no_run`: mounting needs root; the crate's privileged tests mount for real.)
//!
//! # Main items
//!
//! - [`Stack`]: lowers **bottom first** (as image layers are listed; the last one wins), an optional
//!   upper and work directory, extra options ([`Stack::option`]).
//! - [`mount`] (with [`Method::Auto`]: the new mount API with `lowerdir+` where the kernel has it, else
//!   classic mount(2), which still reaches [`MAX_LOWER_LAYERS`] by passing layers as descriptors),
//!   [`mount_detached`], [`unmount`] (only overlays this crate mounted: source [`MOUNT_SOURCE`]).
//! - [`features`]: what the kernel supports, for reports.
//! - [`changes`]: the upper layer read back as `docker diff` [`Change`]s, at a cost that follows the
//!   changes, not the image.
//! - [`Error`] names the layer (numbered bottom first) and the cause.
//!
//! How each method works, escaping, options, hard links and the diff rules are in the repository's
//! `docs/overlay.md`.
//!
//! # Dependencies
//! - `rustix`: typed wrappers for fsopen/fsconfig/fsmount/move_mount, mount(2)/umount2, statx (the
//!   mount-root attribute), `unshare(CLONE_FS)` and chdir (nix and sys-mount lack the new mount API).
//! - `mountkit-safefs`: the mount ID (`statx`) and the mountinfo parser for [`unmount`]'s checks (the
//!   workspace's one parser, not `procfs`: safefs's docs say why).
//! - `serde`: [`Change`] serialises for `--format json`.
//! - `thiserror`: the error enum; `tracing`: debug!/trace! around every privileged step. No `caps`:
//!   nothing here handles capabilities.
#![deny(missing_docs)]

mod diff;
mod error;
mod stack;
mod sys;

pub use diff::{Change, ChangeKind, changes};
pub use error::{Error, Result};
pub use stack::{
    MAX_LOWER_LAYERS, Stack, classic_option_len, classic_option_string, classic_options_limit, escape_classic,
};
pub use sys::{Features, MOUNT_SOURCE, Method, features, mount, mount_detached, unmount, unmount_with};
