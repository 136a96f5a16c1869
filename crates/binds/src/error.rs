//! The crate's error type. Parse errors use Docker's wording (so that a Docker user recognises them)
//! and always quote the offending part of the input.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while parsing a mount flag, preparing sources or mounting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `-v` value with the wrong number of `:`-separated parts, an empty source, or a mode alone.
    #[error("invalid volume specification: '{0}'")]
    InvalidVolumeSpec(String),
    /// `-v` mode list with an unknown word or two words of the same kind (`ro,rw`).
    #[error("invalid mode: {0}")]
    InvalidMode(String),
    /// A volume name that is not a valid `local` volume name (and not an absolute host path).
    #[error(
        "\"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" \
         are allowed. If you intended to pass a host directory, use absolute path"
    )]
    InvalidVolumeName(String),
    /// A target (or bind source) that is not an absolute path.
    #[error(
        "invalid mount config for type \"{kind}\": invalid mount path: '{path}' mount path must be absolute"
    )]
    NotAbsolute {
        /// `bind`, `volume` or `tmpfs`.
        kind: String,
        /// The path as given.
        path: String,
    },
    /// A target that is `/` once cleaned.
    #[error(
        "invalid mount config for type \"{kind}\": invalid specification: destination can't be '/' (got '{target}')"
    )]
    TargetIsRoot {
        /// `bind`, `volume` or `tmpfs`.
        kind: String,
        /// The target as given.
        target: String,
    },
    /// A required field is empty (`source` of a bind, `target`).
    #[error("invalid mount config for type \"{kind}\": field {field} must not be empty")]
    MissingField {
        /// `bind`, `volume` or `tmpfs`.
        kind: String,
        /// Docker's field name (`Source`, `Target`).
        field: &'static str,
    },
    /// A field that this mount type does not take (`source` on a tmpfs, `nocopy` on a bind, ...).
    #[error("invalid mount config for type \"{kind}\": field {field} must not be specified")]
    ExtraField {
        /// `bind`, `volume` or `tmpfs`.
        kind: String,
        /// Docker's field name (`Source`, `VolumeOptions`, `BindOptions`).
        field: &'static str,
    },
    /// An unknown propagation mode.
    #[error("invalid mount config for type \"{kind}\": invalid propagation mode: {value}")]
    InvalidPropagation {
        /// `bind`.
        kind: String,
        /// The mode as given.
        value: String,
    },
    /// `readonly` on an anonymous volume.
    #[error(
        "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes"
    )]
    ReadonlyAnonymousVolume,
    /// A `--mount type=` that is not `bind`, `volume` or `tmpfs`.
    #[error("invalid mount config for type \"{0}\": mount type unknown")]
    UnknownType(String),
    /// A `--mount` value that is not a valid CSV record.
    #[error("invalid --mount value '{input}': {reason}")]
    Csv {
        /// The whole value.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--mount` field without `=` that is not a flag.
    #[error("invalid field '{0}' must be a key=value pair")]
    NotKeyValue(String),
    /// A `--mount` field whose value is invalid.
    #[error("invalid value for {key}: {value}")]
    InvalidValue {
        /// The key as given (lowercased).
        key: String,
        /// The value as given.
        value: String,
    },
    /// `bind-recursive=` with an unknown value.
    #[error(
        "invalid value for bind-recursive: {0} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
    )]
    InvalidBindRecursive(String),
    /// An unknown `--mount` key.
    #[error("unexpected key '{key}' in '{field}'")]
    UnexpectedKey {
        /// The key (lowercased).
        key: String,
        /// The whole field.
        field: String,
    },
    /// `--mount` without `target=`.
    #[error("target is required (in --mount '{0}')")]
    TargetRequired(String),
    /// `--mount` with `type=` empty.
    #[error("type is required (in --mount '{0}')")]
    TypeRequired(String),
    /// `bind-*`, `volume-*` or `tmpfs-*` options on a mount of another type.
    #[error("cannot mix '{prefix}-*' options with mount type '{kind}'")]
    MixedOptions {
        /// `bind`, `volume` or `tmpfs`.
        prefix: &'static str,
        /// The mount type.
        kind: String,
    },
    /// `bind-recursive=writable|readonly` without `readonly`.
    #[error("option 'bind-recursive={0}' requires 'readonly' to be specified in conjunction")]
    RecursiveNeedsReadonly(&'static str),
    /// `bind-recursive=readonly` with a propagation other than `rprivate`.
    #[error(
        "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction (got '{0}')"
    )]
    RecursiveReadonlyNeedsRprivate(String),
    /// A `volume-subpath` that is absolute, empty, has a `..` component, or is given for an anonymous
    /// volume.
    #[error("invalid volume-subpath {subpath:?}: {reason}")]
    InvalidSubpath {
        /// The subpath as given.
        subpath: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `--mount` option mountkit does not support (a volume driver other than `local`).
    #[error("unsupported --mount option '{field}': {why}")]
    Unsupported {
        /// The field as given.
        field: String,
        /// Why.
        why: &'static str,
    },
    /// A `--tmpfs` option that is not a tmpfs or mount(8) option.
    #[error("invalid tmpfs option '{option}' in '{input}'")]
    InvalidTmpfsOption {
        /// The option as given.
        option: String,
        /// The whole `--tmpfs` value.
        input: String,
    },
    /// Two mounts with the same target.
    #[error("Duplicate mount point: {}", .0.display())]
    DuplicateTarget(PathBuf),
    /// A volume spec was given to [`crate::MountSpec::to_planned`] without its host directory.
    #[error("volume {name} at {} has not been resolved to a host directory", .target.display())]
    VolumeNotResolved {
        /// The volume's name.
        name: String,
        /// Its target.
        target: PathBuf,
    },
    /// `--mount type=bind` with a source that does not exist (Docker's message).
    #[error("invalid mount config for type \"bind\": bind source path does not exist: {}", .0.display())]
    BindSourceMissing(PathBuf),
    /// A bind source could not be created, opened or examined.
    #[error("bind source {}: cannot {op}: {source}", .path.display())]
    Source {
        /// The host path.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// The container root could not be opened, or a target could not be resolved or created in it.
    #[error("mount target {} inside root {}: {source}", .target.display(), .root.display())]
    Target {
        /// The container root.
        root: PathBuf,
        /// The target, relative to the root.
        target: PathBuf,
        /// What safefs said.
        #[source]
        source: mountkit_safefs::Error,
    },
    /// A mount step failed.
    #[error("{what} on {} (inside the root): {op} failed: {source}", .target.display())]
    Mount {
        /// The mount being made (`bind of /host/dir`, `tmpfs`).
        what: String,
        /// The target, relative to the root.
        target: PathBuf,
        /// The system call or step (`open_tree`, `move_mount`, `mount_setattr`, ...).
        op: &'static str,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
