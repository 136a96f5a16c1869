//! Mount specifications as Docker users write them (`-v`, `--mount`, `--tmpfs`), and their mounting
//! inside a container root: binds of directories and single files, truly recursive read-only binds,
//! propagation, tmpfs, with every target resolved inside the root so that a hostile image cannot
//! redirect a mount onto the host.
//!
//! ```
//! use mountkit_binds::{parse_mount_flag, parse_tmpfs_flag, parse_volume_flag, MountSpec, Planned, sort_plan};
//! let specs = [
//!     parse_volume_flag("/srv/app/src:/app/src:ro").unwrap(),
//!     parse_mount_flag("type=volume,source=todo-list,target=/data").unwrap(),
//!     parse_tmpfs_flag("/app:size=64m").unwrap(),
//! ];
//! // The caller resolves volumes to host directories, then mounts everything in order.
//! let mut plan: Vec<Planned> = specs
//!     .iter()
//!     .map(|s| s.to_planned(Some(std::path::Path::new("/var/lib/mountkit/volumes/todo-list/_data"))))
//!     .collect::<Result<_, _>>()
//!     .unwrap();
//! sort_plan(&mut plan);
//! let order: Vec<_> = plan.iter().map(|p| p.target().to_str().unwrap()).collect();
//! assert_eq!(order, ["/data", "/app", "/app/src"]);
//! ```
//!
//! # Main items
//!
//! - Parsing, pure and with Docker's own error messages: [`parse_volume_flag`] (`-v`),
//!   [`parse_mount_flag`] (`--mount`), [`parse_tmpfs_flag`] (`--tmpfs`) give a [`MountSpec`].
//! - Planning: [`MountSpec::to_planned`] turns a spec into a [`Planned`] mount (the caller gives a
//!   volume's host directory); [`sort_plan`] orders a plan parents first.
//! - Mounting: [`prepare_sources`] (creates `-v` bind sources, as Docker), [`mount_all`] (every target
//!   resolved inside the root with `mountkit_safefs::inroot`, missing directories made there, never on
//!   the host; binds with `open_tree`/`move_mount`, read-only recursively; tmpfs).
//! - [`Error`] names the flag or target and the cause.
//!
//! The decisions where Docker leaves room (target cleaning, ignored SELinux/macOS options, `--tmpfs`
//! defaults, mount order, symlinks on the host and in the image, kernels without `mount_setattr`) are
//! in the repository's `docs/binds.md`.
//!
//! Dependencies: `mountkit-safefs` for in-root resolution, the mount table, and making a mount
//! read-only (`mount_setattr`, or the flag-keeping bind remount where the kernel lacks it); `rustix` for
//! typed `open_tree`, `move_mount`, `mount` and errno values; `serde` because callers store specs in
//! container metadata; `thiserror` for [`Error`]; `tracing` for a debug line around every privileged
//! step. Not used: `nix` and `sys-mount` (no new mount API: `open_tree`, `move_mount`), `procfs`
//! (safefs's mountinfo parser), `caps` (no capability is handled here).

#![deny(missing_docs)]

mod error;
mod mount;
mod parse;
mod spec;

pub use error::{Error, Result};
pub use mount::{mount_all, prepare_sources};
pub use parse::{check_duplicate_targets, parse_mount_flag, parse_tmpfs_flag, parse_volume_flag};
pub use spec::{
    BindRecursive, MountSpec, Planned, Propagation, TmpfsOptions, TmpfsSize, clean_path, sort_plan,
    target_depth,
};
