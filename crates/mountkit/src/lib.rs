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
//! # Example
//!
//! A store, a layer from a directory, an image and a container (creating one needs no privilege;
//! running it does: see [`Mountkit::run`]).
//!
//! ```
//! use mountkit::{CreateOptions, Mountkit};
//! use mountkit::layer_store::{ImageConfig, LayerSource};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let rootfs = tmp.path().join("rootfs");
//! std::fs::create_dir_all(rootfs.join("etc"))?;
//! std::fs::write(rootfs.join("etc/motd"), "hello\n")?;
//!
//! let mk = Mountkit::open(tmp.path().join("store"))?;
//! let layer = mk.layers().import_layer(LayerSource::Dir(rootfs))?;
//! let config = ImageConfig { cmd: Some(vec!["cat".into(), "/etc/motd".into()]), ..Default::default() };
//! mk.layers().create_image(Some("motd:1"), &[layer.id], config)?;
//!
//! let c = mk.create(&CreateOptions { name: Some("c1".into()), image: "motd:1".into(), ..Default::default() })?;
//! assert_eq!(c.config.args, ["cat", "/etc/motd"]);
//! assert_eq!(mk.container("c1")?.id, c.id);
//! // The image cannot go while c1 uses it; the container can.
//! assert!(mk.remove_image("motd:1", false).is_err());
//! mk.remove("c1", false, true)?;
//! assert!(mk.containers()?.is_empty());
//! # Ok(()) }
//! ```
//!
//! # Main types
//!
//! - [`Mountkit`]: the store (`open`), containers (`create`, `run`, `start`, `remove`, `mount`, `diff`,
//!   `commit`, `export`), images (`remove_image`; the rest through [`Mountkit::layers`]) and volumes
//!   (`remove_volume`, `prune_volumes`, `inspect_volumes`; the registry through [`Mountkit::volumes`]).
//! - [`Mountkit::exec`] (`container exec`, with [`ExecOptions`]): a command in a running container's
//!   namespaces, with its confinement; the container's process is pinned and checked first (`exec.rs`).
//! - [`Container`] (its record: [`ContainerConfig`], [`MountRecord`]s, [`State`]), [`CreateOptions`]
//!   (what `container create` and `run` take).
//! - [`Error`]: the object and the cause; [`Error::run_exit_code`] gives `docker run`'s status.
//! - What the `mountkit` command does beyond these, for programs that want the same behaviour:
//!   [`Mountkit::default_root`] (where the store is without `--root`), [`layer_source_from_arg`]
//!   (`layer import ARG`), [`Mountkit::export_to`] and [`Mountkit::export_layer_to`] (`-o FILE|-`, a file
//!   written atomically: [`write_atomically`]), [`Mountkit::inspect_container`] (`container inspect`,
//!   with Docker's `Mounts`); [`cli_command`], the command line's definition, for generating shell
//!   completions and man pages.
//!
//! Where state lives, and the decisions where Docker is the reference (IDs and names, command and
//! environment, volumes), are in the repository's `docs/decisions.md` and `ARCHITECTURE.md`.
//!
//! Dependencies: the workspace crates above; `serde`/`serde_json` for metadata and `--format json`;
//! `thiserror` for [`Error`]; `tracing` for diagnostics; `toml` for image recipes; `sha2`/`hex` for the digest of a
//! container's seccomp profile (`container inspect` shows it, as the layer store digests layers); `libc`
//! for `fork` and `_exit` (the detached container's monitor: rustix has no fork); `rustix` for the
//! few system calls of its own (the exporter's private mount namespace, `kill` for `rm -f`, the
//! effective uid), typed, as the other crates make them (nix is not used: one syscall layer). The
//! binary alone uses `clap` (arguments; its definitions live in the library so that `cargo xtask`
//! generates completions and man pages from the same source), `anyhow` (its error reports) and
//! `tracing-subscriber` (`--debug`, `MOUNTKIT_LOG`).

#![deny(missing_docs)]

mod changes;
#[doc(hidden)]
pub mod cli_args;
mod container;
mod create;
mod default_root;
mod detach;
mod df;
mod doctor;
mod error;
mod exec;
mod explain;
mod export;
mod fs_type;
pub mod init;
mod inspect;
mod layer_source;
mod logs;
mod mount;
mod names;
mod recipe;
mod records;
mod remove;
mod run;
pub mod sample;
pub mod signal;
mod stop;
mod store;
pub mod tty;
mod usage;
mod volume_archive;
mod volume_refs;

pub use cli_args::cli_command;
pub use container::{
    Container, ContainerConfig, CreateOptions, LogOptions, MountRecord, NetworkMode, RestartPolicy, Seccomp,
    SeccompOption, State, Status,
};
pub use df::{ContainerUsage, DiskUsage, ImageUsage, KindUsage, LayerUsage, VolumeUsage};
pub use doctor::{DoctorReport, Feature, Problem};
pub use error::{Error, Result};
pub use exec::{ExecOptions, read_env_file};
pub use explain::history::HistoryRow;
pub use explain::shadow::{set_shadow_warnings, warnings as shadow_warnings};
pub use explain::{
    Entry, ExplainOptions, Explanation, FileKind, Hidden, LayerRef, Link, Provider, WritableOrigin,
    layer_ranges,
};
pub use export::{ExportTarget, write_atomically};
pub use fs_type::{FilesystemInfo, filesystem_of};
pub use inspect::{ContainerInspect, DockerState, MountView};
pub use layer_source::layer_source_from_arg;
pub use logs::{LogEntry, LogsOptions, Stream};
pub use names::{generate_name, validate_container_name};
pub use recipe::Recipe;
pub use stop::{DEFAULT_STOP_TIMEOUT, TopProcess};
pub use store::Mountkit;
pub use usage::{ContainerFilter, VolumeInspect, VolumeUser, volume_users};
pub use volume_archive::VolumeExport;

pub use mountkit_binds as binds;
pub use mountkit_layer_store as layer_store;
pub use mountkit_ns_runner as ns_runner;
pub use mountkit_overlay as overlay;
pub use mountkit_volumes as volumes;
