//! The crate's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::Method;

/// What went wrong while preparing, mounting or unmounting an overlay stack.
///
/// Every variant names the object (layer index and path, option, target) and the cause; kernel
/// errors carry the `io::Error` and, with the new mount API, the reason the kernel logged on the
/// filesystem context (`kernel` field, empty when the kernel said nothing).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// More lower layers than the kernel stacks (overlayfs' `OVL_MAX_STACK`).
    #[error("overlay stack has {count} lower layers; the kernel stacks at most {max}")]
    TooManyLayers {
        /// How many lowers the stack has.
        count: usize,
        /// The limit ([`crate::MAX_LOWER_LAYERS`]).
        max: usize,
    },
    /// The stack has no lower layer; overlayfs needs at least one.
    #[error("overlay stack has no lower layer; overlayfs needs at least one")]
    NoLowerLayers,
    /// A read-only stack (no upper) with a single lower: overlayfs refuses it ("at least 2
    /// lowerdir are needed while upperdir nonexistent").
    #[error(
        "read-only overlay stack has a single lower layer; overlayfs needs at least 2 lowers \
         without an upper (bind-mount the layer read-only instead, or add an upper)"
    )]
    SingleLowerWithoutUpper,
    /// A path of the stack cannot be given to the kernel (empty, or contains a NUL byte).
    #[error("{role} {path:?} cannot be passed to overlayfs: {reason}")]
    InvalidPath {
        /// Which path: `lower layer 3 (of 5, 0 = bottom)`, `upperdir`, `workdir`, `target`.
        role: String,
        /// The offending path.
        path: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A layer directory is missing or is not a directory.
    #[error("{role} {path:?}: {source}")]
    Layer {
        /// Which path: `lower layer 3 (of 5, 0 = bottom)`, `upperdir`, `workdir`.
        role: String,
        /// The path as given.
        path: PathBuf,
        /// What `stat`/`open` said.
        #[source]
        source: io::Error,
    },
    /// An extra option is malformed or collides with the options this crate sets itself.
    #[error("overlay option {key:?}: {reason}")]
    InvalidOption {
        /// The option's key as given.
        key: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The requested method is not available on the running kernel.
    #[error("overlay mount method {method:?} is not available on this kernel: {reason}")]
    Unsupported {
        /// The method asked for.
        method: Method,
        /// What is missing.
        reason: &'static str,
    },
    /// The classic option string does not fit in one page even with shortened layer names.
    #[error(
        "overlay options for mount(2) are {len} bytes even with shortened layer names; the kernel \
         accepts at most {max}"
    )]
    OptionsTooLong {
        /// Bytes of the option string (without the NUL).
        len: usize,
        /// The limit (page size minus the NUL).
        max: usize,
    },
    /// `fsconfig` refused one option (new mount API).
    #[error(
        "overlay option {option:?} for {what} was refused: {source}{}",
        KernelSays(kernel)
    )]
    Config {
        /// The option (`lowerdir+`, `upperdir`, `index`, ...).
        option: String,
        /// What it was for: `lower layer 3 (of 5, 0 = bottom) "/path"`, `upperdir "/path"`, or
        /// the value of an extra option.
        what: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
        /// Messages the kernel logged on the filesystem context.
        kernel: Vec<String>,
    },
    /// The kernel refused to create the overlay from the configured options.
    #[error("creating the overlay ({context}) failed: {source}{}", KernelSays(kernel))]
    Create {
        /// What was being created (layer count, method).
        context: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
        /// Messages the kernel logged on the filesystem context (new mount API only).
        kernel: Vec<String>,
    },
    /// Attaching the overlay to its target failed.
    #[error("mounting the overlay on {target:?} failed: {source}")]
    Attach {
        /// The mount point.
        target: PathBuf,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// A system call needed around the mount failed (opening fds, the helper thread, ...).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// [`crate::changes`] met a directory renamed with `redirect_dir=on`: its lower content lives
    /// at another path, so the upper layer alone cannot tell what the container changed.
    #[error(
        "upper-layer directory {path:?} carries the overlay xattr {xattr:?} (a directory renamed \
         with redirect_dir=on); changes cannot be listed from the upper layer alone"
    )]
    RedirectedDir {
        /// The directory in the upper layer.
        path: PathBuf,
        /// The xattr found (`trusted.overlay.redirect` or `user.overlay.redirect`).
        xattr: &'static str,
    },
    /// `unmount` was asked to unmount something that is not a mount point.
    #[error("{target:?} is not a mount point; nothing to unmount")]
    NotMounted {
        /// The path given.
        target: PathBuf,
    },
    /// `unmount` was asked to unmount a mount that is not an overlay.
    #[error("{target:?} is a {fs_type} mount, not an overlay; refusing to unmount it")]
    NotOverlay {
        /// The path given.
        target: PathBuf,
        /// Its filesystem type.
        fs_type: String,
    },
    /// `unmount` was asked to unmount an overlay that this crate did not mount.
    #[error(
        "{target:?} is an overlay mounted by someone else (source {source_name:?}, mountkit uses \
         {expected:?}); refusing to unmount it"
    )]
    NotOurs {
        /// The path given.
        target: PathBuf,
        /// The mount's source as in mountinfo.
        source_name: String,
        /// The source this crate gives its mounts.
        expected: &'static str,
    },
    /// Reading `/proc/self/mountinfo` failed.
    #[error("reading /proc/self/mountinfo to check {target:?}: {message}")]
    MountInfo {
        /// The path being checked.
        target: PathBuf,
        /// The read's error, rendered.
        message: String,
    },
    /// `umount2` failed.
    #[error("unmounting the overlay at {target:?} failed: {source}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
}

/// Renders kernel log lines as `; kernel says: "...", "..."` (nothing when empty).
struct KernelSays<'a>(&'a [String]);

impl fmt::Display for KernelSays<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("; kernel says: ")?;
        for (i, line) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{line:?}")?;
        }
        Ok(())
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
