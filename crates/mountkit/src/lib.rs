//! mountkit: the container storage model (image layers, one writable layer per container, volumes, bind
//! mounts, tmpfs) done directly with the Linux kernel, with no daemon.
//!
//! This crate composes the workspace's small crates into the product and is what the `mountkit` binary
//! calls; the binary itself only parses arguments and prints.
//!
//! | crate | role here |
//! |---|---|
//! | `mountkit-layer-store` | layers and images under `<root>/layers`, `<root>/images` |
//! | `mountkit-overlay` | the container's rootfs: the image's layers + the container's writable layer |
//! | `mountkit-binds` | `-v`, `--mount`, `--tmpfs`: parsing and mounting inside the container root |
//! | `mountkit-volumes` | the volume registry under `<root>/volumes` |
//! | `mountkit-ns-runner` | new namespaces, /proc /dev /sys, pivot_root, user, exec, exit status |
//! | `mountkit-safefs` | atomic writes, locks, mount-aware removal, in-root resolution |
//!
//! # Where state lives
//! Everything is under one root directory ([`Mountkit::open`]; the CLI takes `--root`, else
//! `MOUNTKIT_ROOT`, else `/var/lib/mountkit`): `layers/`, `images/`, `tmp/` (the layer store),
//! `volumes/` (the registry), `containers/<id>/` (this crate: `container.json`, the writable layer
//! `upper/` and overlay's `work/`, the mount point `merged/`, lock files), `container-names/` (one
//! symlink `NAME -> ID` per container, the ID in 43 characters of base64url so the link fits in an ext4
//! inode: a name is claimed by creating its link, so `create` and lookups by name read one record, not
//! all of them), `volume-refs.boot`
//! (the boot in which volume references were last checked against the records), `staging/` (this
//! crate's work in progress, swept when the process that made it is gone). On-disk metadata is JSON,
//! written atomically (temp file, fsync, rename); a `--rm` container skips the fsyncs since nobody needs
//! its state after a crash.
//!
//! # Decisions where Docker is the reference
//! - A container's mounts live in its own mount namespace: nothing of a running container is mounted in
//!   the host's namespace, and a killed runner leaks no mount. The runner supervises the container: when
//!   the runner dies, the container is killed (there is no daemon to adopt it).
//! - Container IDs are 64 random hex digits; names are Docker-style generated (`adjective_name`) when not
//!   given, and may be `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 characters. Any unique ID prefix works.
//! - The command is the image's entrypoint followed by the given arguments, or by the image's cmd when
//!   none are given (Docker's rule). The environment is the image's, overridden key by key with `-e`;
//!   `-e KEY` alone copies KEY from the caller's environment when it is set. The hostname is the ID's
//!   first 12 digits.
//! - The overlay mount method is detected (`mountkit system info`); `MOUNTKIT_OVERLAY_METHOD=classic|new-api`
//!   forces one, for tests and for working around a kernel bug.
//! - Volumes (Docker's rules): `-v name:/path` creates `name` when it does not exist; an image `VOLUME`
//!   or `-v /path` makes an anonymous volume that `rm -v` and `run --rm` remove; an empty volume is
//!   filled from the image's content at its path on first use unless mounted `nocopy`; a volume a
//!   container references cannot be removed (the error names the containers). References are written
//!   cheaply by the registry (no fsync) and re-derived from the container records, which are durable,
//!   once per boot before anything acts on them (`volume rm`, `volume prune`, `volume ls --filter
//!   dangling`): a power loss can neither let a used volume be removed nor keep a free one forever.
//!
//! Dependencies: the workspace crates above; `serde`/`serde_json` for metadata and `--format json`;
//! `thiserror` for [`Error`]; `tracing` for diagnostics; `toml` for image recipes.

#![deny(missing_docs)]

mod changes;
mod container;
mod create;
mod error;
mod mount;
mod names;
mod recipe;
mod records;
mod remove;
mod run;
pub mod sample;
mod store;
mod usage;
mod volume_refs;

pub use container::{Container, ContainerConfig, CreateOptions, MountRecord, State, Status};
pub use error::{Error, Result};
pub use names::{generate_name, validate_container_name};
pub use recipe::Recipe;
pub use store::Mountkit;
pub use usage::{ContainerFilter, VolumeInspect, VolumeUser, volume_users};

pub use mountkit_binds as binds;
pub use mountkit_layer_store as layer_store;
pub use mountkit_ns_runner as ns_runner;
pub use mountkit_overlay as overlay;
pub use mountkit_volumes as volumes;
