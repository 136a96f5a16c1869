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
//! # Parsing (pure; see [`parse_volume_flag`], [`parse_mount_flag`], [`parse_tmpfs_flag`])
//!
//! Docker's rules and Docker's error messages, checked in Docker's order (the CLI's checks, then the
//! daemon's), so that a Docker user recognises both. Decisions where Docker leaves room:
//! - Targets are lexically cleaned (`/a/./b/../c/` is `/a/c`), as Docker does; a target that cleans to
//!   `/` is refused; a relative target is refused. A bind source is cleaned the same way.
//! - `-v SRC:…` is a bind when SRC starts with `/` (or is `.` / `./…`, made absolute against the
//!   current directory as the Docker CLI does); otherwise SRC must be a valid `local` volume name
//!   (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`), with Docker's hint to use an absolute path.
//! - `z`/`Z` (SELinux relabelling) and `consistent`/`cached`/`delegated` (macOS) are accepted and
//!   ignored: mountkit does no SELinux labelling.
//! - `-v` creates a missing bind source directory (mode 0755, owned by root) in [`prepare_sources`];
//!   `--mount` refuses it with Docker's "bind source path does not exist: PATH".
//! - `--mount` accepts only the `local` volume driver, and no `volume-subpath` or `volume-label`
//!   (labels belong to `volume create --label`; the spec has no field for them): clear errors.
//! - `--tmpfs` options are checked up front (Docker hands unknown ones to the kernel, which fails with
//!   a bare EINVAL); Docker's defaults `noexec,nosuid,nodev` apply to `--tmpfs` and
//!   `--mount type=tmpfs` alike, later options override them (`--tmpfs /run:exec`).
//! - A newline in a `--mount` value is an error (Go's CSV reader silently ignores the rest).
//!
//! # Mounting ([`prepare_sources`], [`mount_all`])
//!
//! - Order: [`sort_plan`]: by target depth, parents first, stable; at equal depth binds and volumes
//!   before tmpfs. Like Docker (which sorts all mounts by depth), a tmpfs at `/run` is mounted before
//!   a bind at `/run/app`, so the bind is visible inside the tmpfs; a mount below another mount lands
//!   inside it (its mount point is created in the parent mount, i.e. in the parent's host source).
//! - Targets are resolved with [`mountkit_safefs::inroot`] as if the root were `/` (a `/data ->
//!   /../../../etc` symlink leads to `<root>/etc`), missing directories (or, for a file source, an
//!   empty file and its parents) are created inside the root, and the mount is made onto the resolved
//!   `O_PATH` descriptor, so a symlink swapped in after resolution cannot redirect it.
//! - Bind sources are opened once (`O_PATH`), **following symlinks on the host** as Docker does (the
//!   host and the user naming the path are trusted; the image is not); the opened object is what gets
//!   mounted, so the file/directory check and the mount cannot disagree.
//! - Binds use the new mount API: `open_tree(OPEN_TREE_CLONE[|AT_RECURSIVE])` and `move_mount` onto
//!   the target descriptor (Linux 5.2+; older kernels get a clear error). Read-only is set on the
//!   detached tree with `mount_setattr(2)` (`AT_RECURSIVE` unless `bind-recursive=writable`), through
//!   [`mountkit_safefs::set_read_only`]; on kernels without it (< 5.12), every mount of the tree is remounted
//!   read-only one by one after attaching, as bubblewrap does. So read-only is always recursive,
//!   as with `bind-recursive=readonly`, and an error if it cannot be done.
//! - Propagation (default `rprivate`) is applied with mount(2) after attaching; `shared`/`slave`
//!   only connect to the host if the source mount is itself shared in the namespace.
//! - tmpfs: mount(2) onto the resolved descriptor with the flags and `size/mode/uid/gid` data.
//! - Two mounts on one target are not refused by [`mount_all`] (the later one stacks on top);
//!   callers check with [`check_duplicate_targets`] as Docker does.
//! - Known limit (shared with Docker/runc): a mount below a read-only bind needs its mount point to
//!   exist already in the bind's source, since it cannot be created through a read-only mount.
//!
//! Dependencies: `mountkit-safefs` for in-root resolution and `mount_setattr`; `rustix` for typed
//! `open_tree`, `move_mount`, `mount`, `fstatvfs`; `libc` for errno constants; `serde` because callers store specs in container metadata; `thiserror` for [`Error`];
//! `tracing` for a debug line around every privileged step.

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
