//! The mount specification types: what the user asked for ([`MountSpec`]) and what gets mounted
//! ([`Planned`]), with the ordering rule ([`sort_plan`]).

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Mount propagation of a bind mount, as in `mount --make-*` and Docker's `bind-propagation`.
///
/// The default is [`Propagation::RPrivate`], as in Docker: nothing mounted on either side later
/// propagates to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    /// `private`: this mount only.
    Private,
    /// `rprivate`: this mount and every submount (the default).
    #[default]
    RPrivate,
    /// `shared`: this mount only.
    Shared,
    /// `rshared`: this mount and every submount.
    RShared,
    /// `slave`: this mount only.
    Slave,
    /// `rslave`: this mount and every submount.
    RSlave,
}

impl Propagation {
    /// Every propagation mode, in Docker's order.
    pub const ALL: [Propagation; 6] = [
        Propagation::Private,
        Propagation::RPrivate,
        Propagation::Shared,
        Propagation::RShared,
        Propagation::Slave,
        Propagation::RSlave,
    ];

    /// The name Docker and mount(8) use (`rprivate`, `shared`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::RPrivate => "rprivate",
            Propagation::Shared => "shared",
            Propagation::RShared => "rshared",
            Propagation::Slave => "slave",
            Propagation::RSlave => "rslave",
        }
    }

    /// Parses a mode name exactly as Docker spells it (lowercase); `None` if it is not one.
    pub fn from_name(name: &str) -> Option<Propagation> {
        Propagation::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Whether the mode applies to every submount too (`r*`).
    pub fn is_recursive(self) -> bool {
        matches!(
            self,
            Propagation::RPrivate | Propagation::RShared | Propagation::RSlave
        )
    }
}

impl fmt::Display for Propagation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a bind mount treats the mounts found below its source (Docker's `bind-recursive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindRecursive {
    /// Submounts are carried along; a read-only bind is read-only all the way down (the default, and
    /// what `-v …:ro` does, as in Docker 25+).
    #[default]
    Enabled,
    /// Only the source mount itself is bound; submounts are not carried (`rbind` vs `bind`).
    Disabled,
    /// Submounts are carried; `readonly` applies to the top mount only (Docker 24's behaviour).
    Writable,
    /// Submounts are carried and must all be read-only; an error if that cannot be done.
    Readonly,
}

impl BindRecursive {
    /// The name Docker uses.
    pub fn as_str(self) -> &'static str {
        match self {
            BindRecursive::Enabled => "enabled",
            BindRecursive::Disabled => "disabled",
            BindRecursive::Writable => "writable",
            BindRecursive::Readonly => "readonly",
        }
    }
}

/// The size limit of a tmpfs: bytes, or a percentage of RAM (`size=50%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TmpfsSize {
    /// An absolute size in bytes (`0` means "no limit" to the kernel).
    Bytes(u64),
    /// A percentage of physical RAM.
    Percent(u32),
}

impl fmt::Display for TmpfsSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TmpfsSize::Bytes(b) => write!(f, "{b}"),
            TmpfsSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Options of a tmpfs mount.
///
/// [`Default`] gives Docker's defaults for `--tmpfs` and `--mount type=tmpfs`: `noexec`, `nosuid` and
/// `nodev` set, no size limit (the kernel's default, half of RAM), mode `1777`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsOptions {
    /// `size=`: the size limit; `None` = the kernel's default.
    pub size: Option<TmpfsSize>,
    /// `mode=`: permission bits of the tmpfs root (octal in the syntax, at most `7777`).
    pub mode: Option<u32>,
    /// `uid=`: owner of the tmpfs root.
    pub uid: Option<u32>,
    /// `gid=`: group of the tmpfs root.
    pub gid: Option<u32>,
    /// `ro`: mounted read-only.
    pub readonly: bool,
    /// `noexec` (default on; `exec` clears it).
    pub noexec: bool,
    /// `nosuid` (default on; `suid` clears it).
    pub nosuid: bool,
    /// `nodev` (default on; `dev` clears it).
    pub nodev: bool,
    /// `noatime` (`atime`/`relatime` clear it).
    pub noatime: bool,
    /// Other tmpfs options handed to the kernel as given (`nr_inodes=…`, `nr_blocks=…`, `huge=…`,
    /// `mpol=…`, `inode64`, `inode32`, `noswap`).
    pub data: Vec<String>,
}

impl Default for TmpfsOptions {
    fn default() -> Self {
        TmpfsOptions {
            size: None,
            mode: None,
            uid: None,
            gid: None,
            readonly: false,
            noexec: true,
            nosuid: true,
            nodev: true,
            noatime: false,
            data: Vec::new(),
        }
    }
}

impl TmpfsOptions {
    /// The filesystem-specific option string given to the kernel (`size=…,mode=…,uid=…,gid=…,…`).
    ///
    /// ```
    /// use mountkit_binds::{TmpfsOptions, TmpfsSize};
    /// let o = TmpfsOptions { size: Some(TmpfsSize::Bytes(65536)), mode: Some(0o1777), ..Default::default() };
    /// assert_eq!(o.data_string(), "size=65536,mode=1777");
    /// ```
    pub fn data_string(&self) -> String {
        let mut parts = Vec::new();
        if let Some(size) = self.size {
            parts.push(format!("size={size}"));
        }
        if let Some(mode) = self.mode {
            parts.push(format!("mode={mode:o}"));
        }
        if let Some(uid) = self.uid {
            parts.push(format!("uid={uid}"));
        }
        if let Some(gid) = self.gid {
            parts.push(format!("gid={gid}"));
        }
        parts.extend(self.data.iter().cloned());
        parts.join(",")
    }
}

/// One mount a user asked for, from `-v`, `--mount` or `--tmpfs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MountSpec {
    /// A host path (directory or file) bound into the container.
    Bind {
        /// Absolute, lexically cleaned host path.
        source: PathBuf,
        /// Absolute, lexically cleaned path inside the container (never `/`).
        target: PathBuf,
        /// Mounted read-only.
        readonly: bool,
        /// Propagation of the bind (default `rprivate`).
        propagation: Propagation,
        /// Treatment of submounts of the source.
        recursive: BindRecursive,
        /// Create the source directory when it is missing (`-v` does, `--mount` refuses).
        create_source: bool,
    },
    /// A named or anonymous volume, which the caller turns into a host directory.
    Volume {
        /// The volume name; `None` for an anonymous volume (the caller picks a random name).
        name: Option<String>,
        /// Absolute, lexically cleaned path inside the container (never `/`).
        target: PathBuf,
        /// Mounted read-only.
        readonly: bool,
        /// Do not copy the image's content at the target into a new, empty volume.
        nocopy: bool,
        /// `volume-opt=k=v` options for the `local` driver (type, device, o), in order, last one wins.
        driver_opts: Vec<(String, String)>,
        /// `volume-subpath=sub/dir` (Docker 26): mount only this directory or file of the volume. A
        /// relative path without `..` components; the caller resolves it inside the volume at start
        /// (never out of it) and passes what it names as `volume_dir` to [`MountSpec::to_planned`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subpath: Option<PathBuf>,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Absolute, lexically cleaned path inside the container (never `/`).
        target: PathBuf,
        /// Size, mode, owner and flags.
        options: TmpfsOptions,
    },
}

impl MountSpec {
    /// The path inside the container.
    pub fn target(&self) -> &Path {
        match self {
            MountSpec::Bind { target, .. }
            | MountSpec::Volume { target, .. }
            | MountSpec::Tmpfs { target, .. } => target,
        }
    }

    /// Turns this spec into what gets mounted. A volume needs its host directory (`volume_dir`,
    /// resolved by the caller); binds and tmpfs ignore it. A volume is bound recursively with
    /// `rprivate` propagation.
    pub fn to_planned(&self, volume_dir: Option<&Path>) -> Result<Planned> {
        Ok(match self {
            MountSpec::Bind {
                source,
                target,
                readonly,
                propagation,
                recursive,
                ..
            } => Planned::Bind {
                source: source.clone(),
                target: target.clone(),
                readonly: *readonly,
                propagation: *propagation,
                recursive: *recursive,
            },
            MountSpec::Volume {
                name,
                target,
                readonly,
                ..
            } => {
                let dir = volume_dir.ok_or_else(|| Error::VolumeNotResolved {
                    name: name.clone().unwrap_or_else(|| "(anonymous)".into()),
                    target: target.clone(),
                })?;
                Planned::Bind {
                    source: dir.to_path_buf(),
                    target: target.clone(),
                    readonly: *readonly,
                    propagation: Propagation::RPrivate,
                    recursive: BindRecursive::Enabled,
                }
            }
            MountSpec::Tmpfs { target, options } => Planned::Tmpfs {
                target: target.clone(),
                options: options.clone(),
            },
        })
    }
}

/// What actually gets mounted: volumes already turned into host directories by the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Planned {
    /// Bind `source` (host path, directory or file) onto `target` (inside the root).
    Bind {
        /// Host path; symlinks in it are followed on the host.
        source: PathBuf,
        /// Path inside the container root.
        target: PathBuf,
        /// Read-only (recursively unless `recursive` is [`BindRecursive::Writable`]).
        readonly: bool,
        /// Propagation applied after mounting.
        propagation: Propagation,
        /// Treatment of submounts of the source.
        recursive: BindRecursive,
    },
    /// Mount a new tmpfs on `target` (inside the root).
    Tmpfs {
        /// Path inside the container root.
        target: PathBuf,
        /// Size, mode, owner and flags.
        options: TmpfsOptions,
    },
}

impl Planned {
    /// The path inside the container.
    pub fn target(&self) -> &Path {
        match self {
            Planned::Bind { target, .. } | Planned::Tmpfs { target, .. } => target,
        }
    }
}

/// Number of named components of a target (`/` = 0, `/a/b` = 2), after lexical cleaning.
pub fn target_depth(target: &Path) -> usize {
    clean_path(target)
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// Sorts a plan into mounting order: by target depth, parents first, so that a mount onto a path
/// below another mount lands inside it; at equal depth binds (and volumes) before tmpfs; otherwise
/// the input order is kept (the sort is stable).
///
/// Docker sorts every mount, tmpfs included, by depth; a tmpfs is therefore mounted before a bind
/// below it, and the bind is visible inside the tmpfs.
///
/// ```
/// use mountkit_binds::{sort_plan, Planned, TmpfsOptions};
/// let mut plan = vec![
///     Planned::Tmpfs { target: "/a/b".into(), options: TmpfsOptions::default() },
///     Planned::Tmpfs { target: "/a".into(), options: TmpfsOptions::default() },
/// ];
/// sort_plan(&mut plan);
/// assert_eq!(plan[0].target(), std::path::Path::new("/a"));
/// ```
pub fn sort_plan(plan: &mut [Planned]) {
    plan.sort_by_key(|p| (target_depth(p.target()), matches!(p, Planned::Tmpfs { .. })));
}

/// Lexically cleans a path like Go's `path.Clean` (as Docker does to targets and bind sources):
/// repeated `/` and `.` go, `..` removes the previous component, and `..` at the root stays at the
/// root. A relative path stays relative; an empty path becomes `.`.
///
/// ```
/// use mountkit_binds::clean_path;
/// assert_eq!(clean_path("/a//b/./c/../d/".as_ref()), std::path::Path::new("/a/b/d"));
/// assert_eq!(clean_path("/../x".as_ref()), std::path::Path::new("/x"));
/// ```
pub fn clean_path(path: &Path) -> PathBuf {
    let absolute = path.has_root();
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    let mut leading_dotdots = 0usize;
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if parts.pop().is_none() && !absolute {
                    leading_dotdots += 1;
                }
            }
            Component::Normal(n) => parts.push(n),
        }
    }
    let mut out = PathBuf::new();
    if absolute {
        out.push("/");
    }
    for _ in 0..leading_dotdots {
        out.push("..");
    }
    for p in parts {
        out.push(p);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(t: &str) -> Planned {
        Planned::Bind {
            source: "/src".into(),
            target: t.into(),
            readonly: false,
            propagation: Propagation::RPrivate,
            recursive: BindRecursive::Enabled,
        }
    }
    fn tmpfs(t: &str) -> Planned {
        Planned::Tmpfs {
            target: t.into(),
            options: TmpfsOptions::default(),
        }
    }
    fn targets(plan: &[Planned]) -> Vec<String> {
        plan.iter()
            .map(|p| {
                format!(
                    "{}:{}",
                    if matches!(p, Planned::Tmpfs { .. }) {
                        "t"
                    } else {
                        "b"
                    },
                    p.target().display()
                )
            })
            .collect()
    }

    #[test]
    fn sort_parents_first_either_input_order() {
        let mut a = vec![bind("/a/b"), bind("/a")];
        sort_plan(&mut a);
        assert_eq!(targets(&a), ["b:/a", "b:/a/b"]);
        let mut b = vec![bind("/a"), bind("/a/b")];
        sort_plan(&mut b);
        assert_eq!(targets(&b), ["b:/a", "b:/a/b"]);
    }

    #[test]
    fn sort_is_stable_and_tmpfs_after_binds_at_equal_depth() {
        let mut p = vec![
            tmpfs("/z"),
            bind("/x/y/z"),
            bind("/c"),
            tmpfs("/t/u"),
            bind("/b"),
            bind("/a/b"),
            bind("/a"),
        ];
        sort_plan(&mut p);
        assert_eq!(
            targets(&p),
            ["b:/c", "b:/b", "b:/a", "t:/z", "b:/a/b", "t:/t/u", "b:/x/y/z"]
        );
    }

    #[test]
    fn sort_puts_tmpfs_before_a_deeper_bind() {
        let mut p = vec![bind("/run/app"), tmpfs("/run")];
        sort_plan(&mut p);
        assert_eq!(targets(&p), ["t:/run", "b:/run/app"]);
    }

    #[test]
    fn depth_uses_the_cleaned_path() {
        assert_eq!(target_depth(Path::new("/")), 0);
        assert_eq!(target_depth(Path::new("/a/../b/./c//")), 2);
        assert_eq!(target_depth(Path::new("/a/b/c")), 3);
    }

    #[test]
    fn clean_path_like_go() {
        for (i, o) in [
            ("/", "/"),
            ("", "."),
            ("a/../..", ".."),
            ("/..", "/"),
            ("/a/b/../../..", "/"),
            ("./a/", "a"),
            ("//a//b", "/a/b"),
            ("/a/./b/.", "/a/b"),
        ] {
            assert_eq!(clean_path(Path::new(i)), Path::new(o), "clean_path({i:?})");
        }
    }

    #[test]
    fn tmpfs_defaults_are_dockers() {
        let o = TmpfsOptions::default();
        assert!(o.noexec && o.nosuid && o.nodev && !o.readonly);
        assert_eq!(o.data_string(), "");
    }

    #[test]
    fn volume_needs_a_directory_to_be_planned() {
        let v = MountSpec::Volume {
            name: Some("todo-list".into()),
            target: "/data".into(),
            readonly: true,
            nocopy: false,
            driver_opts: vec![],
            subpath: None,
        };
        let err = v.to_planned(None).unwrap_err().to_string();
        assert!(err.contains("todo-list") && err.contains("/data"), "{err}");
        let p = v.to_planned(Some(Path::new("/var/lib/v/todo-list"))).unwrap();
        assert_eq!(
            p,
            Planned::Bind {
                source: "/var/lib/v/todo-list".into(),
                target: "/data".into(),
                readonly: true,
                propagation: Propagation::RPrivate,
                recursive: BindRecursive::Enabled
            }
        );
    }

    #[test]
    fn specs_round_trip_through_json() {
        let specs = vec![
            MountSpec::Bind {
                source: "/h".into(),
                target: "/c".into(),
                readonly: true,
                propagation: Propagation::RSlave,
                recursive: BindRecursive::Writable,
                create_source: false,
            },
            MountSpec::Tmpfs {
                target: "/run".into(),
                options: TmpfsOptions {
                    size: Some(TmpfsSize::Percent(10)),
                    ..Default::default()
                },
            },
        ];
        let json = serde_json::to_string(&specs).unwrap();
        assert!(json.contains(r#""propagation":"rslave""#), "{json}");
        let back: Vec<MountSpec> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, specs);
    }
}
