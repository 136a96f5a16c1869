//! `container explain` and `image explain`: which source provides a path of a container's view, and what
//! that source hides. Also the shadow warnings of `container create`/`run` (`shadow`).
//!
//! Everything is computed from the store's directories and the container's record, without mounting:
//!
//! - The union: the writable layer (`containers/<id>/upper`, for a container) over the image's layers
//!   (`layers/<hex>/diff`), looked up the way overlayfs looks a path up: one component at a time, top
//!   first, a whiteout (a 0/0 character device: how the layer store unpacks OCI `.wh.NAME` entries, and
//!   how overlayfs records a deletion in the writable layer) ends the lookup, a non-directory ends it, and
//!   an opaque directory (`trusted.overlay.opaque=y`, or its `user.` form; the layer store sets the
//!   former for `.wh..wh..opq`) merges nothing from below. A lookup costs one `lstat` per layer that
//!   still takes part at each depth: it grows with the path's depth and the number of layers, never with
//!   the image's file count.
//! - The mounts: the container's volumes (their `_data` directory), binds (their host source) and tmpfs,
//!   and the runtime's own `/proc`, `/dev` and `/sys`. A path at or below a mount's target is that
//!   mount's; the deepest target wins (mounts are made parents first). Targets are taken as written in
//!   the record (the run path resolves them inside the root; a target that goes through a symlink of the
//!   image is shown where it is written).
//! - Symlinks are followed inside the container's view (an absolute target starts again at the
//!   container's root, `..` never leaves it), so a link into a volume or a bind continues in that source;
//!   40 links at most, as the kernel. `--no-follow` explains the last component itself.
//!
//! What cannot be known without the running container: the contents of a tmpfs and of `/proc`, `/dev`,
//! `/sys` (they exist only in its mount namespace): such paths are named with their provider and
//! `exists: null`. A running container's writable layer is read while it may change. Reading the opaque
//! xattr (`trusted.*`) needs `CAP_SYS_ADMIN`: without it an opaque directory is not recognised as one.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use mountkit_binds::MountSpec;
use mountkit_layer_store::ImageInfo;

use crate::{Container, Error, Mountkit, Result};

pub(crate) mod history;
pub(crate) mod shadow;

/// The opaque-directory xattrs: overlayfs's privileged form (what the layer store writes) and its
/// `userxattr` form.
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];
/// The kernel's limit on symlinks followed in one lookup (`ELOOP`).
const MAX_LINKS: usize = 40;
/// The runtime's own mounts (ns-runner's), as the container sees them.
const RUNTIME_MOUNTS: [&str; 3] = ["/proc", "/dev", "/sys"];

/// What `explain` is asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExplainOptions {
    /// Explain a symlink named as the last component itself (`--no-follow`).
    pub no_follow: bool,
    /// For a directory, list each entry with its provider (`-v`).
    pub verbose: bool,
}

/// One image layer, as explain names it: `layer 3/4 sha256:…`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LayerRef {
    /// 1 is the bottom layer.
    pub index: usize,
    /// How many layers the image has.
    pub of: usize,
    /// The layer's ID.
    pub id: String,
    /// The command that made the layer (the image's OCI history; its comment when it has no command),
    /// when the image has a history that accounts for its layers.
    pub created_by: Option<String>,
}

impl std::fmt::Display for LayerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = self.id.strip_prefix("sha256:").unwrap_or(&self.id);
        write!(
            f,
            "layer {}/{} sha256:{}",
            self.index,
            self.of,
            &hex[..hex.len().min(12)]
        )?;
        if let Some(c) = &self.created_by {
            write!(f, " (created_by {c})")?;
        }
        Ok(())
    }
}

/// How the writable layer came to hold a path.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WritableOrigin {
    /// No image layer has the path (or the container deleted and made it again).
    New,
    /// Copied up from a layer with the same size and modification time: its metadata changed (or its
    /// bytes were rewritten identically).
    CopiedUp,
    /// Copied up from a layer, then its size or modification time changed.
    Changed,
}

/// The source that provides a path.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Provider {
    /// An image layer.
    Layer {
        /// Which.
        layer: LayerRef,
    },
    /// The container's writable layer.
    Writable {
        /// New, copied up or changed.
        origin: WritableOrigin,
        /// The layer the path was copied up from (the topmost holding it).
        from_layer: Option<usize>,
    },
    /// A volume mounted at `target`.
    Volume {
        /// The volume's name.
        name: String,
        /// Made for this container alone.
        anonymous: bool,
        /// The anonymous volume comes from the image's `VOLUME`.
        image_volume: bool,
        /// The mount point.
        target: String,
        /// Mounted read-only.
        readonly: bool,
    },
    /// A bind mount of a host path.
    Bind {
        /// The host path.
        source: PathBuf,
        /// The mount point.
        target: String,
        /// Mounted read-only.
        readonly: bool,
    },
    /// A tmpfs (its contents live only in the running container's mount namespace).
    Tmpfs {
        /// The mount point.
        target: String,
    },
    /// The runtime's `/proc`, `/dev` or `/sys`.
    Runtime {
        /// The mount point.
        target: String,
    },
    /// Nothing provides the path: it does not exist.
    None,
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = |ro: bool| if ro { "read-only" } else { "read-write" };
        match self {
            Provider::Layer { layer } => write!(f, "{layer}"),
            Provider::Writable { origin, from_layer } => match (origin, from_layer) {
                (WritableOrigin::New, _) | (_, None) => f.write_str("writable layer (new)"),
                (WritableOrigin::CopiedUp, Some(l)) => write!(f, "writable layer (copied up from layer {l})"),
                (WritableOrigin::Changed, Some(l)) => {
                    write!(f, "writable layer (copied up from layer {l}, changed)")
                }
            },
            Provider::Volume {
                name,
                anonymous,
                image_volume,
                target,
                readonly,
            } => {
                let shown = if *anonymous { short_hex(name) } else { name };
                let kind = match (anonymous, image_volume) {
                    (false, _) => "named".to_string(),
                    (true, true) => format!("anonymous, from image VOLUME {target}"),
                    (true, false) => "anonymous".to_string(),
                };
                write!(f, "volume {shown} ({kind}, {}) at {target}", mode(*readonly))
            }
            Provider::Bind {
                source,
                target,
                readonly,
            } => write!(
                f,
                "bind {} (host, {}) at {target}",
                source.display(),
                mode(*readonly)
            ),
            Provider::Tmpfs { target } => write!(f, "tmpfs {target}"),
            Provider::Runtime { target } => write!(f, "runtime ({target})"),
            Provider::None => f.write_str("nothing"),
        }
    }
}

fn short_hex(s: &str) -> &str {
    &s[..s.len().min(12)]
}

/// What a path is.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
}

impl FileKind {
    fn of(md: &Metadata) -> FileKind {
        let t = md.file_type();
        if t.is_dir() {
            FileKind::Directory
        } else if t.is_symlink() {
            FileKind::Symlink
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else {
            FileKind::File
        }
    }

    /// The word for it in text output.
    pub fn word(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
        }
    }
}

/// Something the provider hides (or, for a path that does not exist, what removed it).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Hidden {
    /// A lower version of the path (`layer: null`: the writable layer's, under a mount).
    Version {
        /// Whose version.
        layer: Option<LayerRef>,
        /// What it is.
        kind: FileKind,
        /// Its size in bytes.
        size: u64,
    },
    /// The path was deleted by a whiteout (`layer: null`: in the writable layer); lower versions are gone.
    Whiteout {
        /// Where.
        layer: Option<LayerRef>,
    },
    /// The directory was made opaque: nothing of the layers below it shows.
    Opaque {
        /// Where (`null`: the writable layer).
        layer: Option<LayerRef>,
    },
    /// A mount over a directory of the container's rootfs hides its entries.
    Files {
        /// The mount point.
        target: String,
        /// How many entries the directory has (its own entries: a subdirectory counts once).
        count: usize,
        /// The image layers (1 = bottom) whose entries are hidden.
        layers: Vec<usize>,
        /// The writable layer has entries there too.
        writable: bool,
    },
    /// A mount over a directory of another mount (a volume inside a bind, ...) hides its entries.
    MountFiles {
        /// The mount point.
        target: String,
        /// How many entries.
        count: usize,
        /// The mount underneath.
        under: Provider,
    },
}

/// `1-2`, `1, 3-5`: layer numbers as ranges.
pub fn layer_ranges(layers: &[usize]) -> String {
    let mut sorted = layers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(", ")
}

/// `(layers 1-2)`, `(layer 3)`, `(writable layer, layer 2)`.
fn sources_text(layers: &[usize], writable: bool) -> String {
    let mut parts = Vec::new();
    if writable {
        parts.push("writable layer".to_string());
    }
    match layers.len() {
        0 => {}
        1 => parts.push(format!("layer {}", layers[0])),
        _ => parts.push(format!("layers {}", layer_ranges(layers))),
    }
    parts.join(", ")
}

impl std::fmt::Display for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = |l: &Option<LayerRef>| match l {
            Some(l) => l.to_string(),
            None => "the writable layer".into(),
        };
        match self {
            Hidden::Version { layer, kind, size } => {
                write!(f, "{} of {}", kind.word(), whose(layer))?;
                if *kind != FileKind::Directory {
                    write!(f, " ({size} B)")?;
                }
                Ok(())
            }
            Hidden::Whiteout { layer } => write!(f, "deleted in {} (whiteout)", whose(layer)),
            Hidden::Opaque { layer } => write!(f, "directory made opaque in {}", whose(layer)),
            Hidden::Files {
                target,
                count,
                layers,
                writable,
            } => write!(
                f,
                "hides {count} image {} under {target} ({})",
                if *count == 1 { "file" } else { "files" },
                sources_text(layers, *writable)
            ),
            Hidden::MountFiles { target, count, under } => {
                write!(f, "hides {count} files of {under} under {target}")
            }
        }
    }
}

/// A symlink followed on the way.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Link {
    /// The link, as the container sees it.
    pub path: String,
    /// What it points to.
    pub target: String,
}

/// One entry of a directory's merged listing (`-v`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name.
    pub name: String,
    /// What it is (`null`: a mount point whose source cannot be read).
    pub kind: Option<FileKind>,
    /// Who provides it.
    pub provider: Provider,
}

/// The answer for one path.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Explanation {
    /// The path as asked.
    pub path: String,
    /// The path the container's view resolves it to (symlinks followed).
    pub resolved: String,
    /// The symlinks followed, in order.
    pub links: Vec<Link>,
    /// Whether the path exists (`null`: unknown, inside a tmpfs or the runtime's mounts).
    pub exists: Option<bool>,
    /// What it is.
    pub kind: Option<FileKind>,
    /// Its size in bytes.
    pub size: Option<u64>,
    /// Who provides it.
    pub provider: Provider,
    /// Where the provider keeps it on the host (a file of a layer's `diff/`, of the writable layer, of a
    /// volume's `_data` or of a bind's source); `null` for a tmpfs, the runtime's mounts, or a missing path.
    pub host_path: Option<PathBuf>,
    /// For a directory of the union: the other layers whose directory merges into it, top first (1 is
    /// the bottom layer).
    pub merged_with: Vec<usize>,
    /// What the provider hides; for a path that does not exist, what deleted it.
    pub hides: Vec<Hidden>,
    /// For a path that does not exist: the first component that is missing (or is not a directory).
    pub missing: Option<String>,
    /// For a directory: how many entries its merged listing has (`null`: unknown).
    pub entries: Option<usize>,
    /// With `-v`: each entry and its provider.
    pub listing: Vec<Entry>,
}

/// One branch of the union: the writable layer (`layer: None`) or an image layer.
#[derive(Debug)]
struct Branch {
    dir: PathBuf,
    layer: Option<LayerRef>,
}

/// A mount of the container's view.
#[derive(Debug)]
struct MountPoint {
    target: Vec<OsString>,
    provider: Provider,
    /// The host directory (or file) it shows; `None` for tmpfs and the runtime's mounts.
    host: Option<PathBuf>,
}

/// Where a directory's entries come from.
#[derive(Debug, Clone)]
enum Loc {
    /// The union: the path relative to the branches, and the branches (indices, top first) merging there.
    Union { rel: PathBuf, stack: Vec<usize> },
    /// A host directory, inside mount number `mount`.
    Host { dir: PathBuf, mount: usize },
    /// Contents that cannot be read (tmpfs, the runtime's mounts), inside mount number `mount`.
    Unknown { mount: usize },
}

/// A looked-up path.
#[derive(Debug, Clone)]
struct Node {
    /// `None`: missing; for `Loc::Unknown`, unknown.
    md: Option<Metadata>,
    /// Where its own entries are, when it is a directory (or unknown).
    loc: Option<Loc>,
    provider: Provider,
    /// The file on the host that holds it (for readlink and sizes).
    host: Option<PathBuf>,
    hides: Vec<Hidden>,
    merged_with: Vec<usize>,
    known: bool,
    /// A missing directory on the way to a mount's target: the start makes it (in the writable layer).
    made_at_start: bool,
}

impl Node {
    fn is_dir(&self) -> bool {
        self.made_at_start || self.md.as_ref().is_some_and(Metadata::is_dir)
    }
}

/// The container's (or image's) view: the union's branches and the mounts.
#[derive(Debug)]
pub(crate) struct View {
    branches: Vec<Branch>,
    mounts: Vec<MountPoint>,
}

fn lstat(p: &Path) -> Result<Option<Metadata>> {
    match std::fs::symlink_metadata(p) {
        Ok(m) => Ok(Some(m)),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
        Err(e) => Err(Error::io("stat", p, e)),
    }
}

fn is_whiteout(md: &Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Whether the directory `p` is opaque. An image layer's can only have the layer store's form
/// (`trusted.`: one `getxattr`); the writable layer's may have either.
fn is_opaque(p: &Path, writable: bool) -> bool {
    let mut buf = [0u8; 4];
    let names = if writable {
        &OPAQUE_XATTRS[..]
    } else {
        &OPAQUE_XATTRS[..1]
    };
    names
        .iter()
        .any(|x| matches!(rustix::fs::lgetxattr(p, *x, &mut buf), Ok(1) if buf[0] == b'y'))
}

/// The components of a container path (`/a/./b/` -> `a`, `.`, `b`; `..` kept, resolved later).
fn components(path: &str) -> Vec<OsString> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

fn display(comps: &[OsString]) -> String {
    let mut s = String::new();
    for c in comps {
        s.push('/');
        s.push_str(&c.to_string_lossy());
    }
    if s.is_empty() { "/".into() } else { s }
}

impl View {
    /// The image's layers alone (`image explain`, shadow warnings).
    pub(crate) fn of_image(mk: &Mountkit, image: &ImageInfo) -> View {
        View {
            branches: Self::layer_branches(mk, image),
            mounts: Vec::new(),
        }
    }

    fn layer_branches(mk: &Mountkit, image: &ImageInfo) -> Vec<Branch> {
        let of = image.layers.len();
        let history = image.config.layer_history(of);
        image
            .layers
            .iter()
            .enumerate()
            .rev()
            .map(|(i, id)| Branch {
                dir: mk.layers().layer_path(id),
                layer: Some(LayerRef {
                    index: i + 1,
                    of,
                    id: id.to_string(),
                    created_by: history[i].and_then(|h| h.created_by.clone().or_else(|| h.comment.clone())),
                }),
            })
            .collect()
    }

    /// A container's view: its writable layer over its image's layers, its mounts and the runtime's.
    fn of_container(mk: &Mountkit, c: &Container, image: &ImageInfo) -> View {
        let mut branches = vec![Branch {
            dir: mk.container_dir(&c.id).join("upper"),
            layer: None,
        }];
        branches.extend(Self::layer_branches(mk, image));
        let mut mounts: Vec<MountPoint> = RUNTIME_MOUNTS
            .iter()
            .map(|t| MountPoint {
                target: components(t),
                provider: Provider::Runtime {
                    target: (*t).to_string(),
                },
                host: None,
            })
            .collect();
        for m in &c.mounts {
            let target = components(&m.spec.target().to_string_lossy());
            let shown = display(&target);
            let (provider, host) = match &m.spec {
                MountSpec::Volume { name, readonly, .. } => {
                    let name = name.clone().unwrap_or_default();
                    let host = mk.volumes().data_path(&name);
                    (
                        Provider::Volume {
                            image_volume: m.anonymous
                                && image.config.volumes.iter().any(|v| components(v) == target),
                            name,
                            anonymous: m.anonymous,
                            target: shown,
                            readonly: *readonly,
                        },
                        Some(host),
                    )
                }
                MountSpec::Bind { source, readonly, .. } => (
                    Provider::Bind {
                        source: source.clone(),
                        target: shown,
                        readonly: *readonly,
                    },
                    Some(source.clone()),
                ),
                MountSpec::Tmpfs { .. } => (Provider::Tmpfs { target: shown }, None),
            };
            // A mount given later over the same target would replace an earlier one: the record has
            // none twice (create refuses duplicates), but the runtime's are replaced by the user's.
            mounts.retain(|mp| mp.target != target);
            mounts.push(MountPoint {
                target,
                provider,
                host,
            });
        }
        View { branches, mounts }
    }

    fn layer_of(&self, b: usize) -> Option<LayerRef> {
        self.branches[b].layer.clone()
    }

    fn layer_index(&self, b: usize) -> Option<usize> {
        self.branches[b].layer.as_ref().map(|l| l.index)
    }

    /// The mount whose target is exactly `path`.
    fn mount_at(&self, path: &[OsString]) -> Option<usize> {
        self.mounts.iter().position(|m| m.target == path)
    }

    /// The root of the view.
    /// Every branch's root is a directory and merges into the view's root (overlayfs ignores an
    /// opaque mark there): one `lstat`, of the top branch's root.
    fn root(&self) -> Result<Node> {
        let all: Vec<usize> = (0..self.branches.len()).collect();
        let Some(top) = self.branches.first() else {
            return Ok(Node {
                md: None,
                loc: None,
                provider: Provider::None,
                host: None,
                hides: Vec::new(),
                merged_with: Vec::new(),
                known: true,
                made_at_start: false,
            });
        };
        let md = lstat(&top.dir)?
            .ok_or_else(|| Error::io("stat", &top.dir, io::Error::from(io::ErrorKind::NotFound)))?;
        let provider = match &top.layer {
            Some(l) => Provider::Layer { layer: l.clone() },
            None => Provider::Writable {
                origin: if all.len() > 1 {
                    WritableOrigin::CopiedUp
                } else {
                    WritableOrigin::New
                },
                from_layer: all.get(1).and_then(|&b| self.layer_index(b)),
            },
        };
        Ok(Node {
            md: Some(md),
            loc: Some(Loc::Union {
                rel: PathBuf::new(),
                stack: all.clone(),
            }),
            provider,
            host: Some(top.dir.clone()),
            hides: Vec::new(),
            merged_with: all.iter().skip(1).filter_map(|&b| self.layer_index(b)).collect(),
            known: true,
            made_at_start: false,
        })
    }

    /// Looks up `rel` (relative to each branch) in the branches of `stack` (top first), as overlayfs.
    fn union_child(&self, rel: &Path, stack: &[usize]) -> Result<Node> {
        let mut top: Option<(usize, Metadata)> = None;
        let mut merged: Vec<usize> = Vec::new();
        let mut hides = Vec::new();
        let mut merging = true;
        let mut deleted_by: Option<usize> = None;
        // The first branch below the top one that holds the path too (what a copy-up came from).
        let mut first_lower: Option<usize> = None;
        for &b in stack {
            let p = self.branches[b].dir.join(rel);
            let Some(md) = lstat(&p)? else { continue };
            if is_whiteout(&md) {
                if top.is_none() {
                    deleted_by = Some(b);
                } else {
                    hides.push(Hidden::Whiteout {
                        layer: self.layer_of(b),
                    });
                }
                break;
            }
            match &top {
                None => {
                    if md.is_dir() {
                        merged.push(b);
                        if is_opaque(&p, self.branches[b].layer.is_none()) {
                            hides.push(Hidden::Opaque {
                                layer: self.layer_of(b),
                            });
                            merging = false;
                        }
                    }
                    top = Some((b, md));
                }
                Some((_, tmd)) => {
                    first_lower.get_or_insert(b);
                    if tmd.is_dir() && md.is_dir() && merging {
                        merged.push(b);
                        if is_opaque(&p, self.branches[b].layer.is_none()) {
                            hides.push(Hidden::Opaque {
                                layer: self.layer_of(b),
                            });
                            merging = false;
                        }
                    } else {
                        if !md.is_dir() {
                            merging = false;
                        }
                        hides.push(Hidden::Version {
                            layer: self.layer_of(b),
                            kind: FileKind::of(&md),
                            size: md.len(),
                        });
                    }
                }
            }
        }
        let Some((b, md)) = top else {
            return Ok(Node {
                md: None,
                loc: None,
                provider: Provider::None,
                host: None,
                hides: deleted_by
                    .map(|b| Hidden::Whiteout {
                        layer: self.layer_of(b),
                    })
                    .into_iter()
                    .collect(),
                merged_with: Vec::new(),
                known: true,
                made_at_start: false,
            });
        };
        let host = self.branches[b].dir.join(rel);
        let provider = match &self.branches[b].layer {
            Some(l) => Provider::Layer { layer: l.clone() },
            // A directory made opaque here was made again over a deletion: it replaces the lower ones.
            None if md.is_dir()
                && merged.len() == 1
                && matches!(hides.first(), Some(Hidden::Opaque { .. })) =>
            {
                Provider::Writable {
                    origin: WritableOrigin::New,
                    from_layer: None,
                }
            }
            None => match first_lower {
                None => Provider::Writable {
                    origin: WritableOrigin::New,
                    from_layer: None,
                },
                Some(lb) => {
                    let lower = lstat(&self.branches[lb].dir.join(rel))?;
                    Provider::Writable {
                        origin: copy_up_origin(&md, lower.as_ref()),
                        from_layer: self.layer_index(lb),
                    }
                }
            },
        };
        let merged_with = merged
            .iter()
            .skip(1)
            .filter_map(|&m| self.layer_index(m))
            .collect();
        let loc = md.is_dir().then(|| Loc::Union {
            rel: rel.to_path_buf(),
            stack: merged.clone(),
        });
        Ok(Node {
            md: Some(md),
            loc,
            provider,
            host: Some(host),
            hides,
            merged_with,
            known: true,
            made_at_start: false,
        })
    }

    /// The node of mount number `i` itself (its root).
    fn mount_node(&self, i: usize) -> Result<Node> {
        let m = &self.mounts[i];
        let Some(host) = &m.host else {
            return Ok(Node {
                md: None,
                loc: Some(Loc::Unknown { mount: i }),
                provider: m.provider.clone(),
                host: None,
                hides: Vec::new(),
                merged_with: Vec::new(),
                known: false,
                made_at_start: false,
            });
        };
        // The mount follows a symlink of the host path (binds resolve their source on the host).
        let md = match std::fs::metadata(host) {
            Ok(md) => Some(md),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("stat", host, e)),
        };
        let loc = md.as_ref().filter(|m| m.is_dir()).map(|_| Loc::Host {
            dir: host.clone(),
            mount: i,
        });
        Ok(Node {
            md,
            loc,
            provider: m.provider.clone(),
            host: Some(host.clone()),
            hides: Vec::new(),
            merged_with: Vec::new(),
            known: true,
            made_at_start: false,
        })
    }

    /// The entry `name` of the directory `parent` (at container path `path`, which ends with `name`).
    fn child(&self, parent: &Node, path: &[OsString], name: &OsStr) -> Result<Node> {
        let under = match &parent.loc {
            Some(Loc::Union { rel, stack }) => self.union_child(&rel.join(name), stack)?,
            Some(Loc::Host { dir, mount }) => {
                let p = dir.join(name);
                let md = lstat(&p)?;
                let loc = md.as_ref().filter(|m| m.is_dir()).map(|_| Loc::Host {
                    dir: p.clone(),
                    mount: *mount,
                });
                let provider = if md.is_some() {
                    self.mounts[*mount].provider.clone()
                } else {
                    Provider::None
                };
                Node {
                    md,
                    loc,
                    provider,
                    host: Some(p),
                    hides: Vec::new(),
                    merged_with: Vec::new(),
                    known: true,
                    made_at_start: false,
                }
            }
            Some(Loc::Unknown { mount }) => Node {
                md: None,
                loc: Some(Loc::Unknown { mount: *mount }),
                provider: self.mounts[*mount].provider.clone(),
                host: None,
                hides: Vec::new(),
                merged_with: Vec::new(),
                known: false,
                made_at_start: false,
            },
            None => unreachable!("child of a non-directory"),
        };
        let Some(i) = self.mount_at(path) else {
            if under.known
                && under.md.is_none()
                && self
                    .mounts
                    .iter()
                    .any(|m| m.target.len() > path.len() && m.target.starts_with(path))
            {
                // A directory on the way to a mount point: the start makes it in the writable layer.
                return Ok(Node {
                    loc: Some(Loc::Union {
                        rel: PathBuf::new(),
                        stack: Vec::new(),
                    }),
                    provider: Provider::Writable {
                        origin: WritableOrigin::New,
                        from_layer: None,
                    },
                    made_at_start: true,
                    ..under
                });
            }
            return Ok(under);
        };
        let mut node = self.mount_node(i)?;
        node.hides = self.hidden_by_mount(&display(path), &under)?;
        Ok(node)
    }

    /// What a mount at `target` hides of `under`, the node beneath it.
    fn hidden_by_mount(&self, target: &str, under: &Node) -> Result<Vec<Hidden>> {
        let Some(md) = &under.md else {
            return Ok(Vec::new());
        };
        if !md.is_dir() {
            let layer = match &under.provider {
                Provider::Layer { layer } => Some(layer.clone()),
                _ => None,
            };
            return Ok(vec![Hidden::Version {
                layer,
                kind: FileKind::of(md),
                size: md.len(),
            }]);
        }
        let listing = self.raw_listing(under)?;
        if listing.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![match &under.loc {
            Some(Loc::Union { .. }) => {
                let mut layers: Vec<usize> = listing
                    .values()
                    .filter_map(|e| e.top.and_then(|b| self.layer_index(b)))
                    .collect();
                layers.sort_unstable();
                layers.dedup();
                let writable = listing
                    .values()
                    .any(|e| e.top.is_some_and(|b| self.branches[b].layer.is_none()));
                Hidden::Files {
                    target: target.to_string(),
                    count: listing.len(),
                    layers,
                    writable,
                }
            }
            _ => Hidden::MountFiles {
                target: target.to_string(),
                count: listing.len(),
                under: under.provider.clone(),
            },
        }])
    }

    /// A directory's entries (whiteouts applied, opaque directories respected): each name with the
    /// branch that provides it (`top`: `None` inside a host directory) and the first lower branch that
    /// also holds it. One `readdir` per merging branch, one `lstat` per character device seen.
    fn raw_listing(&self, dir: &Node) -> Result<BTreeMap<OsString, RawEntry>> {
        let mut out: BTreeMap<OsString, RawEntry> = BTreeMap::new();
        let mut deleted: Vec<OsString> = Vec::new();
        let read = |p: &Path| -> Result<Vec<(OsString, std::fs::FileType)>> {
            let mut v = Vec::new();
            let rd = match std::fs::read_dir(p) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(v),
                Err(e) => return Err(Error::io("read directory", p, e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| Error::io("read directory", p, e))?;
                let ft = ent.file_type().map_err(|e| Error::io("stat", ent.path(), e))?;
                v.push((ent.file_name(), ft));
            }
            Ok(v)
        };
        match &dir.loc {
            Some(Loc::Union { rel, stack }) => {
                for &b in stack {
                    let p = self.branches[b].dir.join(rel);
                    for (name, ft) in read(&p)? {
                        if let Some(e) = out.get_mut(&name) {
                            e.lower.get_or_insert(b);
                            continue;
                        }
                        if deleted.contains(&name) {
                            continue;
                        }
                        if ft.is_char_device() && lstat(&p.join(&name))?.is_some_and(|m| is_whiteout(&m)) {
                            deleted.push(name);
                            continue;
                        }
                        out.insert(
                            name,
                            RawEntry {
                                top: Some(b),
                                lower: None,
                                kind: kind_of_type(ft),
                            },
                        );
                    }
                }
            }
            Some(Loc::Host { dir, .. }) => {
                for (name, ft) in read(dir)? {
                    out.insert(
                        name,
                        RawEntry {
                            top: None,
                            lower: None,
                            kind: kind_of_type(ft),
                        },
                    );
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// A directory's merged listing with each entry's provider (mounts over entries included).
    fn listing(&self, dir: &Node, path: &[OsString]) -> Result<Vec<Entry>> {
        let raw = self.raw_listing(dir)?;
        let mut out = Vec::with_capacity(raw.len());
        for (name, e) in &raw {
            let mut child = path.to_vec();
            child.push(name.clone());
            let provider = if let Some(i) = self.mount_at(&child) {
                self.mounts[i].provider.clone()
            } else {
                match (e.top, &dir.loc) {
                    (Some(b), Some(Loc::Union { rel, .. })) => match &self.branches[b].layer {
                        Some(l) => Provider::Layer { layer: l.clone() },
                        None => {
                            let origin = match e.lower {
                                None => WritableOrigin::New,
                                Some(lb) => match lstat(&self.branches[b].dir.join(rel).join(name))? {
                                    Some(up) => {
                                        let low = lstat(&self.branches[lb].dir.join(rel).join(name))?;
                                        copy_up_origin(&up, low.as_ref())
                                    }
                                    None => WritableOrigin::Changed,
                                },
                            };
                            Provider::Writable {
                                origin,
                                from_layer: e.lower.and_then(|lb| self.layer_index(lb)),
                            }
                        }
                    },
                    (_, Some(Loc::Host { mount, .. })) => self.mounts[*mount].provider.clone(),
                    _ => Provider::None,
                }
            };
            out.push(Entry {
                name: name.to_string_lossy().into_owned(),
                kind: Some(e.kind),
                provider,
            });
        }
        // Mount points that the directory does not hold, and the directories on the way to deeper ones:
        // the start makes them.
        for m in &self.mounts {
            if m.target.len() <= path.len() || !m.target.starts_with(path) {
                continue;
            }
            let name = &m.target[path.len()];
            if raw.contains_key(name) || out.iter().any(|e| e.name == *name.to_string_lossy()) {
                continue;
            }
            let provider = if m.target.len() == path.len() + 1 {
                m.provider.clone()
            } else {
                Provider::Writable {
                    origin: WritableOrigin::New,
                    from_layer: None,
                }
            };
            out.push(Entry {
                name: name.to_string_lossy().into_owned(),
                kind: Some(FileKind::Directory),
                provider,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Resolves `input` in the view, following symlinks (the last one too unless `no_follow`).
    fn resolve(&self, input: &str, no_follow: bool) -> Result<Resolved> {
        let root = self.root()?;
        // The resolved path so far: its components and their nodes.
        let mut path: Vec<OsString> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut rest: std::collections::VecDeque<OsString> = components(input).into();
        let mut links = Vec::new();
        while let Some(c) = rest.pop_front() {
            if c == ".." {
                path.pop();
                nodes.pop();
                continue;
            }
            let parent = nodes.last().unwrap_or(&root);
            if parent.known && !parent.is_dir() {
                // The parent is missing or not a directory.
                let missing = display(&path);
                path.push(c);
                path.extend(rest.drain(..));
                let hides = if parent.md.is_none() {
                    parent.hides.clone()
                } else {
                    Vec::new()
                };
                return Ok(Resolved {
                    path,
                    node: None,
                    links,
                    missing: Some(missing),
                    hides,
                });
            }
            path.push(c.clone());
            let node = self.child(parent, &path, &c)?;
            let is_link = node.md.as_ref().is_some_and(|m| m.file_type().is_symlink());
            if is_link && (!rest.is_empty() || !no_follow) {
                if links.len() >= MAX_LINKS {
                    return Err(Error::InvalidArgument {
                        what: "path",
                        value: input.to_string(),
                        reason: format!("too many levels of symbolic links (more than {MAX_LINKS})"),
                    });
                }
                let host = node.host.clone().expect("a symlink found has a host path");
                let target = std::fs::read_link(&host).map_err(|e| Error::io("read symlink", &host, e))?;
                links.push(Link {
                    path: display(&path),
                    target: target.to_string_lossy().into_owned(),
                });
                path.pop();
                if target.is_absolute() {
                    path.clear();
                    nodes.clear();
                }
                for t in components(&target.to_string_lossy()).into_iter().rev() {
                    rest.push_front(t);
                }
                continue;
            }
            nodes.push(node);
        }
        let node = nodes.pop().unwrap_or(root);
        Ok(Resolved {
            path,
            node: Some(node),
            links,
            missing: None,
            hides: Vec::new(),
        })
    }

    /// Explains one path.
    pub(crate) fn explain(&self, input: &str, opts: ExplainOptions) -> Result<Explanation> {
        let r = self.resolve(input, opts.no_follow)?;
        let resolved = display(&r.path);
        let Some(node) = r.node else {
            return Ok(Explanation {
                path: input.to_string(),
                resolved,
                links: r.links,
                exists: Some(false),
                kind: None,
                size: None,
                provider: Provider::None,
                host_path: None,
                merged_with: Vec::new(),
                hides: r.hides,
                missing: r.missing,
                entries: None,
                listing: Vec::new(),
            });
        };
        let exists = if node.known {
            Some(node.md.is_some() || node.made_at_start)
        } else {
            None
        };
        let (entries, listing) = if node.is_dir() {
            let listing = self.listing(&node, &r.path)?;
            let n = listing.len();
            (Some(n), if opts.verbose { listing } else { Vec::new() })
        } else {
            (None, Vec::new())
        };
        Ok(Explanation {
            path: input.to_string(),
            resolved: resolved.clone(),
            links: r.links,
            exists,
            kind: node
                .md
                .as_ref()
                .map(FileKind::of)
                .or(node.made_at_start.then_some(FileKind::Directory)),
            size: node.md.as_ref().map(Metadata::len),
            host_path: node.md.as_ref().and(node.host),
            provider: node.provider,
            merged_with: node.merged_with,
            hides: node.hides,
            missing: (exists == Some(false)).then_some(resolved),
            entries,
            listing,
        })
    }
}

/// A path resolved in a view.
struct Resolved {
    /// Its components (after a missing one, the rest as given).
    path: Vec<OsString>,
    /// Its node; `None` when a component before the last is missing or not a directory.
    node: Option<Node>,
    links: Vec<Link>,
    /// The first missing (or non-directory) component, when `node` is `None`.
    missing: Option<String>,
    /// What deleted the missing component, when `node` is `None`.
    hides: Vec<Hidden>,
}

/// One name of a directory listing.
#[derive(Debug)]
struct RawEntry {
    /// The branch providing it (`None`: a host directory).
    top: Option<usize>,
    /// The first lower branch that also holds it.
    lower: Option<usize>,
    kind: FileKind,
}

/// How a writable-layer entry `up` relates to the lower version it was copied up from.
fn copy_up_origin(up: &Metadata, lower: Option<&Metadata>) -> WritableOrigin {
    match lower {
        None => WritableOrigin::New,
        Some(l)
            if (up.is_dir() && l.is_dir())
                || (up.len() == l.len() && up.mtime() == l.mtime() && up.mtime_nsec() == l.mtime_nsec()) =>
        {
            WritableOrigin::CopiedUp
        }
        Some(_) => WritableOrigin::Changed,
    }
}

fn kind_of_type(ft: std::fs::FileType) -> FileKind {
    if ft.is_dir() {
        FileKind::Directory
    } else if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_char_device() {
        FileKind::CharDevice
    } else if ft.is_block_device() {
        FileKind::BlockDevice
    } else if ft.is_fifo() {
        FileKind::Fifo
    } else if ft.is_socket() {
        FileKind::Socket
    } else {
        FileKind::File
    }
}

/// How many entries a directory of the union has, and which branches provide them: what the shadow
/// warning needs (one `readdir` per layer holding the directory).
pub(crate) struct DirSummary {
    /// The entries of the merged directory.
    pub count: usize,
    /// The image layers (1 = bottom) that provide them.
    pub layers: Vec<usize>,
}

impl View {
    /// The merged directory at `path` (symlinks followed inside the view), if it is one: one `readdir`
    /// per branch that holds it.
    pub(crate) fn dir_summary(&self, path: &str) -> Result<Option<DirSummary>> {
        let Some(node) = self.resolve(path, false)?.node.filter(Node::is_dir) else {
            return Ok(None);
        };
        let raw = self.raw_listing(&node)?;
        let mut layers: Vec<usize> = raw
            .values()
            .filter_map(|r| r.top.and_then(|b| self.layer_index(b)))
            .collect();
        layers.sort_unstable();
        layers.dedup();
        Ok(Some(DirSummary {
            count: raw.len(),
            layers,
        }))
    }
}

impl Mountkit {
    /// `container explain`: for each path, which source of the container's view provides it and what it
    /// hides (see the module docs). Reads the store only; works on created, running and exited containers.
    pub fn explain_container(
        &self,
        reference: &str,
        paths: &[String],
        opts: ExplainOptions,
    ) -> Result<Vec<Explanation>> {
        let c = self.container(reference)?;
        let image = self.layers().image(&c.image)?;
        let view = View::of_container(self, &c, &image);
        paths.iter().map(|p| view.explain(p, opts)).collect()
    }

    /// `image explain`: the same over the image's layers alone.
    pub fn explain_image(
        &self,
        reference: &str,
        paths: &[String],
        opts: ExplainOptions,
    ) -> Result<Vec<Explanation>> {
        let image = self.layers().image(reference)?;
        let view = View::of_image(self, &image);
        paths.iter().map(|p| view.explain(p, opts)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(layer_ranges(&[1, 2]), "1-2");
        assert_eq!(layer_ranges(&[3, 1, 4, 5]), "1, 3-5");
        assert_eq!(layer_ranges(&[2]), "2");
        assert_eq!(sources_text(&[1, 2], true), "writable layer, layers 1-2");
        assert_eq!(sources_text(&[3], false), "layer 3");
    }

    #[test]
    fn path_components() {
        assert_eq!(components("/a/./b/"), vec![OsString::from("a"), "b".into()]);
        assert_eq!(
            components("a/../b"),
            vec![OsString::from("a"), "..".into(), "b".into()]
        );
        assert_eq!(display(&[]), "/");
        assert_eq!(display(&components("/x/y")), "/x/y");
    }

    fn layer(index: usize) -> LayerRef {
        LayerRef {
            index,
            of: 3,
            id: format!("sha256:{}", "ab".repeat(32)),
            created_by: None,
        }
    }

    #[test]
    fn texts() {
        assert_eq!(
            Provider::Writable {
                origin: WritableOrigin::Changed,
                from_layer: Some(2)
            }
            .to_string(),
            "writable layer (copied up from layer 2, changed)"
        );
        assert_eq!(
            Provider::Layer { layer: layer(2) }.to_string(),
            "layer 2/3 sha256:abababababab"
        );
        assert_eq!(
            Hidden::Whiteout {
                layer: Some(layer(3))
            }
            .to_string(),
            "deleted in layer 3/3 sha256:abababababab (whiteout)"
        );
        assert_eq!(
            Hidden::Files {
                target: "/app".into(),
                count: 37,
                layers: vec![1, 2],
                writable: false
            }
            .to_string(),
            "hides 37 image files under /app (layers 1-2)"
        );
        assert_eq!(
            Provider::Bind {
                source: "/srv/src".into(),
                target: "/app".into(),
                readonly: true
            }
            .to_string(),
            "bind /srv/src (host, read-only) at /app"
        );
    }

    /// A view of plain directories (no whiteouts: those need root to make), top first.
    fn view(dirs: &[&Path]) -> View {
        View {
            branches: dirs
                .iter()
                .enumerate()
                .map(|(i, d)| Branch {
                    dir: d.to_path_buf(),
                    layer: Some(LayerRef {
                        index: dirs.len() - i,
                        of: dirs.len(),
                        id: format!("sha256:{:064}", dirs.len() - i),
                        created_by: None,
                    }),
                })
                .collect(),
            mounts: Vec::new(),
        }
    }

    #[test]
    fn lookup_stops_at_the_top_version_and_follows_links_inside_the_view() {
        let t = tempfile::tempdir().unwrap();
        let (top, bot) = (t.path().join("top"), t.path().join("bot"));
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::create_dir_all(bot.join("etc")).unwrap();
        std::fs::create_dir_all(bot.join("real")).unwrap();
        std::fs::write(bot.join("etc/motd"), "old").unwrap();
        std::fs::write(top.join("etc/motd"), "newer").unwrap();
        std::fs::write(bot.join("etc/base"), "b").unwrap();
        std::fs::write(bot.join("real/f"), "f").unwrap();
        // An absolute link that would leave the view on the host: it resolves inside it.
        std::os::unix::fs::symlink("/real", top.join("link")).unwrap();
        std::os::unix::fs::symlink("../../../real/f", top.join("etc/up")).unwrap();
        let v = view(&[&top, &bot]);
        let e = v.explain("/etc/motd", ExplainOptions::default()).unwrap();
        assert_eq!(
            e.provider,
            Provider::Layer {
                layer: v.layer_of(0).unwrap()
            }
        );
        assert_eq!(e.size, Some(5));
        assert!(matches!(&e.hides[..], [Hidden::Version { size: 3, layer: Some(l), .. }] if l.index == 1));
        let e = v
            .explain(
                "/etc",
                ExplainOptions {
                    verbose: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(e.merged_with, vec![1]);
        assert_eq!(e.entries, Some(3));
        let names: Vec<_> = e.listing.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["base", "motd", "up"]);
        let e = v.explain("/link/f", ExplainOptions::default()).unwrap();
        assert_eq!(e.resolved, "/real/f");
        assert_eq!(e.exists, Some(true));
        let e = v.explain("/etc/up", ExplainOptions::default()).unwrap();
        assert_eq!(e.resolved, "/real/f");
        assert_eq!(e.links.len(), 1);
        let e = v
            .explain(
                "/etc/up",
                ExplainOptions {
                    no_follow: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(e.kind, Some(FileKind::Symlink));
        let e = v.explain("/nope/x", ExplainOptions::default()).unwrap();
        assert_eq!(e.exists, Some(false));
        assert_eq!(e.missing.as_deref(), Some("/nope"));
        // A link loop is an error naming the path.
        std::os::unix::fs::symlink("/loop", top.join("loop")).unwrap();
        let err = v
            .explain("/loop", ExplainOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("too many levels of symbolic links"), "{err}");
    }

    #[test]
    fn missing_directories_on_the_way_to_a_mount_are_made_at_start() {
        let t = tempfile::tempdir().unwrap();
        let (layer, vol) = (t.path().join("layer"), t.path().join("vol"));
        std::fs::create_dir_all(&layer).unwrap();
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(vol.join("f"), "v").unwrap();
        let mut v = view(&[&layer]);
        v.mounts.push(MountPoint {
            target: components("/opt/app/data"),
            provider: Provider::Bind {
                source: vol.clone(),
                target: "/opt/app/data".into(),
                readonly: false,
            },
            host: Some(vol.clone()),
        });
        let e = v.explain("/opt/app/data/f", ExplainOptions::default()).unwrap();
        assert_eq!(e.exists, Some(true));
        assert!(matches!(e.provider, Provider::Bind { .. }), "{e:?}");
        assert_eq!(e.host_path, Some(vol.join("f")));
        let e = v
            .explain(
                "/opt",
                ExplainOptions {
                    verbose: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(e.kind, Some(FileKind::Directory));
        assert_eq!(e.listing.len(), 1, "app, made at start too: {e:?}");
        assert_eq!(
            v.explain("/opt/other", ExplainOptions::default()).unwrap().exists,
            Some(false)
        );
    }
}
