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
//! # Layer order
//! [`Stack`] takes lowers **bottom first**, the way image layers are listed (the last one added wins
//! when two layers hold the same path). The kernel's `lowerdir=` lists them top first; this crate
//! converts (`lowerdir+` is also given top first, since each one is appended below the previous).
//! Error messages number lowers bottom first too: `lower layer 0 (of 5, 0 = bottom)`.
//!
//! # Two ways to mount, chosen by trying
//! [`Method::Auto`] learns what the kernel does from the first real mount of the process: it tries
//! the new mount API with `lowerdir+`, and if the kernel refuses in the ways that mean "not
//! supported" (no `fsopen` for overlay; `lowerdir+` unknown to `fsconfig`; EINVAL at
//! `FSCONFIG_CMD_CREATE`, where Linux 6.1's legacy option parser reports it), mounts with classic
//! mount(2) and remembers which worked. No probe costs a `mount` anything (a probe made directories
//! and an overlay superblock on every `mountkit run`). [`features`] still probes, without attaching
//! anything (`fsopen("overlay")`, then a real `lowerdir+` overlay creation over two empty
//! directories), for reports and for an explicit [`Method::NewApi`]. The two ways:
//! - **New mount API** (`fsopen`, one `fsconfig(lowerdir+)` per layer, `FSCONFIG_CMD_CREATE`,
//!   `fsmount`, `move_mount`; Linux 6.8+). There is no page limit on the whole, only 255 bytes per
//!   `fsconfig` string: a longer layer path is passed as `/proc/self/fd/N` of an O_PATH fd.
//!   Failures carry the messages the kernel logged on the fs context ("e overlayfs: ...").
//!   [`mount_detached`] returns the unattached mount so the caller can `move_mount` it onto an fd.
//! - **Classic `mount(2)`**, whose whole option string must fit in one page (4096 bytes with the
//!   NUL). If the stack's paths fit, they are passed as they are (escaped). Otherwise every layer
//!   is opened as an O_PATH fd and a helper thread that did `unshare(CLONE_FS)` (private cwd; the
//!   rest of the process is unaffected) and `chdir("/proc/self/fd")` mounts with the fd numbers as
//!   relative names (`lowerdir=612:611:...`). overlayfs resolves the names at mount time and
//!   keeps the layers, not the names, so the fds are closed right after. 500 layers plus upper and
//!   work take about 2,000-2,500 bytes this way. (containers-storage reaches the same goal with
//!   short `l/XXXX` symlinks, which need a writable directory and clean-up; fd numbers need
//!   neither.) The price: mountinfo shows the numbers, not the paths, for such mounts.
//!
//! A stack without an upper is a read-only overlay; overlayfs then needs at least two lowers
//! ([`Error::SingleLowerWithoutUpper`] otherwise; a single read-only layer is a bind-mount job).
//!
//! Both reach the kernel's limit of [`MAX_LOWER_LAYERS`] (500). Above it, [`mount`] fails with
//! [`Error::TooManyLayers`] before any system call; flattening layers is the caller's job for now.
//!
//! # Escaping
//! For `mount(2)`, `\`, `,` and `:` in paths get a backslash ([`escape_classic`]): the kernel splits
//! options at unescaped commas, `lowerdir` at unescaped colons, and removes one backslash before
//! any character of each path. `lowerdir+` through `fsconfig` takes the path verbatim (per
//! `Documentation/filesystems/overlayfs.rst`: "/a:lower::dir" is one layer; no escapes), while
//! `upperdir`/`workdir` are still unescaped by the kernel with either API, so they are escaped.
//!
//! # Options and defaults
//! No extra option is set by default: the kernel's (module's) defaults apply, as with
//! `mount -t overlay`. [`Stack::option`] passes others through (`index`, `redirect_dir`,
//! `metacopy`, `userxattr`, `volatile`, `xino`, ...; their purpose is documented there).
//! **Hard links:** when a container changes one name of a file hard-linked in a lower layer,
//! copy-up breaks the link (the other names keep the old content) unless `index=on`.
//!
//! # Unmounting only what we mounted
//! Every overlay this crate mounts has the source [`MOUNT_SOURCE`] (`mountkit`). [`unmount`]
//! unmounts `target` only if it is the root of a mount of type `overlay` with that source
//! (checked by mount id through `statx` and `/proc/self/mountinfo`); `MNT_DETACH` only through
//! [`unmount_with`]`(target, true)`.
//!
//! # Container diff (`docker diff`)
//! [`changes`] lists `A`/`C`/`D` [`Change`]s from the upper layer only, like Docker's overlay2
//! driver (moby `OverlayChanges`, with containers-storage's fixes): each upper entry is looked up in
//! the lowers top first as overlayfs does (whiteouts, non-directories and opaque directories end
//! the lookup), so the cost follows the number of changes, not the image size. A 0/0 character
//! device is `D`; an entry absent from the lowers is `A`, present is `C`; a copied-up directory is
//! `C` when something below it is reported or its mode/owner/mtime differ, and omitted otherwise
//! (so `C /app` comes with `A /app/x`; `/` is never listed). An **opaque** directory
//! (`trusted.overlay.opaque=y` or `user.overlay.opaque=y`) that hides a lower path is `D` (removed
//! and made again, as Docker prints it), and its upper content follows as `A` or, when the image
//! had the same name below, `C`; the hidden lower children are not listed one by one. An opaque
//! directory the lowers do not have (overlayfs marks new directories opaque) is `A`.
//! `metacopy` files need nothing special (a metadata-only copy-up is `C`, or `A` at a new path);
//! a directory with a `redirect` xattr (renamed under `redirect_dir=on`) is refused with
//! [`Error::RedirectedDir`], since its content lives elsewhere in the lowers (Docker falls back to a
//! full-tree diff there). Names starting with `.wh.` are ordinary files here (Docker's AUFS
//! check is not applied); lower-layer "xwhiteouts" (`overlay.whiteout` xattr, Linux 6.7+) are not
//! recognised. Output is sorted by path component by component (`/a`, `/a/x`, `/a-b`).
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
