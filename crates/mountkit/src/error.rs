//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in mountkit, with the object and the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the layer and image store.
    #[error(transparent)]
    Layers(#[from] mountkit_layer_store::Error),
    /// From mounting the container's rootfs.
    #[error("container rootfs: {0}")]
    Overlay(#[from] mountkit_overlay::Error),
    /// From a mount specification or its mounting.
    #[error(transparent)]
    Binds(#[from] mountkit_binds::Error),
    /// From the volume registry.
    #[error(transparent)]
    Volumes(#[from] mountkit_volumes::Error),
    /// From running the container's process (set-up steps, exec). A failure of mountkit's own root
    /// preparation in the container's namespace comes back as the error of the crate that failed
    /// (`Overlay`, `Binds`, `Volumes`, `Fs`), not as this.
    #[error(transparent)]
    Runner(mountkit_ns_runner::Error),
    /// From a filesystem primitive.
    #[error(transparent)]
    Fs(#[from] mountkit_safefs::Error),
    /// No container has this name, ID or ID prefix.
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    /// An ID prefix matches more than one container.
    #[error("container reference {reference:?} is ambiguous: it matches {matches}")]
    AmbiguousContainer {
        /// What was given.
        reference: String,
        /// The IDs it matches.
        matches: String,
    },
    /// The name is taken.
    #[error("container name {name:?} is already in use by container {id}; remove it or choose another name")]
    NameInUse {
        /// The name.
        name: String,
        /// The container that has it.
        id: String,
    },
    /// The name breaks the naming rule.
    #[error("invalid container name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The container is running and the operation needs it stopped.
    #[error("container {0} is running; stop it first or use --force")]
    Running(String),
    /// The container is already running (start twice).
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    /// A start given up after the store lock was let go around a driver mount: what it needs changed.
    #[error("container {container} did not start: {reason}")]
    StartAbandoned {
        /// The container's name.
        container: String,
        /// What changed meanwhile.
        reason: String,
    },
    /// The operation needs the container running (`exec`), and it is not (created, or exited).
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The container's rootfs is mounted in the host namespace (`container mount`).
    #[error("container {0} is mounted at {1}; run `mountkit container unmount {0}` first or use --force")]
    Mounted(String, PathBuf),
    /// Something that mountkit did not mount is mounted under the container's directory.
    #[error(
        "container {container} cannot be removed: {} is mounted under it, and mountkit did not mount it; unmount it first (umount {}); nothing was changed",
        .mount.display(), .mount.display()
    )]
    ForeignMount {
        /// The container's name.
        container: String,
        /// The mount point.
        mount: PathBuf,
    },
    /// An image is used by containers.
    #[error("image {image} is used by container(s) {containers}; remove them first")]
    ImageInUse {
        /// The image.
        image: String,
        /// The containers using it.
        containers: String,
    },
    /// An image ID was given for removal, and the image has several names.
    #[error(
        "image {image} has several names ({names}); remove one name at a time, or every name with --force"
    )]
    ImageHasNames {
        /// The reference given.
        image: String,
        /// The image's names.
        names: String,
    },
    /// A `volume-subpath` cannot be mounted.
    #[error("cannot mount subpath {} of volume {volume}: {reason}", .subpath.display())]
    VolumeSubpath {
        /// The volume.
        volume: String,
        /// The subpath as given (cleaned).
        subpath: std::path::PathBuf,
        /// Why not.
        reason: String,
    },
    /// A volume is used by running containers, which an export, import or clone must not race.
    #[error("volume {volume} is used by running container(s) {containers}: {hint}")]
    VolumeBusy {
        /// The volume.
        volume: String,
        /// The running containers (by name).
        containers: String,
        /// Why that matters here, and what to do.
        hint: &'static str,
    },
    /// A volume's archive could not be written or read.
    #[error("cannot {op} volume {volume}{outcome}: {}", crate::volume_archive::cause(.error))]
    VolumeArchive {
        /// "export" or "import into".
        op: &'static str,
        /// The volume.
        volume: String,
        /// What it means for the volume (" (the volume is unchanged)"), or empty.
        outcome: &'static str,
        /// The cause (shown in the message, in a volume's words).
        error: Box<mountkit_layer_store::Error>,
    },
    /// A volume is referenced by containers.
    #[error(
        "volume {volume} is in use by container(s) {containers}; remove them first (as in Docker, --force does not override this)"
    )]
    VolumeInUse {
        /// The volume.
        volume: String,
        /// The containers (by name) that use it.
        containers: String,
    },
    /// No command to run.
    #[error("no command specified: image {0} has no entrypoint or cmd, and none was given")]
    NoCommand(String),
    /// An invalid `-e` value and the like.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A seccomp profile (`--security-opt seccomp=FILE`) could not be read or is not a valid profile.
    #[error("seccomp profile {path}: {reason}")]
    SeccompProfile {
        /// The profile file.
        path: PathBuf,
        /// What is wrong (the place in the profile and the problem).
        reason: String,
    },
    /// A detached container did not start: its monitor's report (the message and the exit code
    /// `docker run` would give).
    #[error("{message}")]
    StartFailed {
        /// 125, 126 or 127.
        code: i32,
        /// What went wrong, as the monitor saw it.
        message: String,
    },
    /// An image recipe could not be read.
    #[error("image recipe {path}: {reason}")]
    Recipe {
        /// The recipe file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file operation of this crate failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// To what.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl From<mountkit_ns_runner::Error> for Error {
    /// Unwraps the root preparation's own error (mountkit's closure returns the typed errors of the
    /// overlay, binds, volumes and safefs crates), so callers and the exit-code mapping see its kind.
    fn from(e: mountkit_ns_runner::Error) -> Error {
        let mountkit_ns_runner::Error::Prepare { source } = e else {
            return Error::Runner(e);
        };
        let source = match source.downcast::<mountkit_overlay::Error>() {
            Ok(e) => return Error::Overlay(*e),
            Err(other) => other,
        };
        let source = match source.downcast::<mountkit_binds::Error>() {
            Ok(e) => return Error::Binds(*e),
            Err(other) => other,
        };
        let source = match source.downcast::<mountkit_volumes::Error>() {
            Ok(e) => return Error::Volumes(*e),
            Err(other) => other,
        };
        match source.downcast::<mountkit_safefs::Error>() {
            Ok(e) => Error::Fs(*e),
            Err(other) => Error::Runner(mountkit_ns_runner::Error::Prepare { source: other }),
        }
    }
}

impl Error {
    /// The exit status `mountkit run` uses for this error: 126 when the command cannot be executed, 127
    /// when it is not found, 125 for every failure of mountkit itself (as `docker run`).
    pub fn run_exit_code(&self) -> i32 {
        match self {
            Error::Runner(e) => e.exit_code(),
            Error::StartFailed { code, .. } => *code,
            _ => 125,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preparation_error_comes_back_as_its_crates_error() {
        let binds = mountkit_binds::Error::VolumeNotResolved {
            name: "todo".into(),
            target: "/data".into(),
        };
        let e: Error = mountkit_ns_runner::Error::Prepare {
            source: Box::new(binds),
        }
        .into();
        assert!(
            matches!(e, Error::Binds(mountkit_binds::Error::VolumeNotResolved { .. })),
            "{e:?}"
        );
        assert_eq!(e.run_exit_code(), 125);
        // Anything else stays the runner's, with its text.
        let e: Error = mountkit_ns_runner::Error::Prepare {
            source: "something else".into(),
        }
        .into();
        assert!(matches!(e, Error::Runner(_)), "{e:?}");
        assert!(e.to_string().contains("something else"));
    }
}
