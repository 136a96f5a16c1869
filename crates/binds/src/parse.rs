//! The three command-line syntaxes, parsed as Docker parses them (the CLI's checks first, then the
//! daemon's), with Docker's error messages: one file a syntax (`volume_flag` for `-v`, `mount_flag`
//! for `--mount`, with its CSV reader in `csv`, `tmpfs_flag` for `--tmpfs`), the checks they share
//! in `common`.

use crate::spec::{MountSpec, clean_path};
use crate::{Error, Result};

mod common;
mod csv;
mod mount_flag;
mod tmpfs_flag;
mod volume_flag;

#[cfg(test)]
mod tests;

use mount_flag::parse_mount_in;
use volume_flag::parse_volume_in;

/// Parses a `-v` / `--volume` value: `DST` (anonymous volume), `SRC:DST` or `SRC:DST:OPTS`.
///
/// `SRC` starting with `/` is a host path (a bind, whose missing directory [`crate::prepare_sources`]
/// creates, as Docker does); `.` or `./…` is made absolute against the current directory, as the
/// Docker CLI does; anything else is a volume name. `OPTS` is a comma-separated list with at most one
/// of each kind: `ro`/`rw`; `z`/`Z` (SELinux relabelling: accepted and ignored, mountkit does no
/// labelling); `nocopy` (volumes only); a propagation mode (binds only); `consistent`/`cached`/
/// `delegated` (macOS-only in Docker: accepted and ignored). Targets are lexically cleaned (`/a/../b`
/// is `/b`), must be absolute and must not be `/`.
///
/// ```
/// use mountkit_binds::{parse_volume_flag, MountSpec};
/// let spec = parse_volume_flag("todo-list:/data").unwrap();
/// assert!(matches!(spec, MountSpec::Volume { ref name, .. } if name.as_deref() == Some("todo-list")));
/// let err = parse_volume_flag("/src:/data:rx").unwrap_err();
/// assert_eq!(err.to_string(), "invalid mode: rx");
/// ```
pub fn parse_volume_flag(s: &str) -> Result<MountSpec> {
    parse_volume_in(s, std::env::current_dir().ok().as_deref())
}

/// Parses a `--mount` value: comma-separated (CSV-quoted) `key=value` fields, Docker's keys:
/// `type=bind|volume|tmpfs` (default `volume`), `source`/`src`, `target`/`destination`/`dst`,
/// `readonly`/`ro[=bool]`, `consistency` (ignored), `bind-propagation`, `bind-recursive=enabled|
/// disabled|writable|readonly`, `bind-nonrecursive[=bool]` (deprecated), `volume-nocopy[=bool]`,
/// `volume-driver=local`, `volume-opt=k=v` (last one wins), `tmpfs-size` (`64m`, `1.5GiB`, bytes),
/// `tmpfs-mode` (octal). A bind source must exist ([`crate::prepare_sources`] checks).
/// `volume-subpath=sub/dir` (Docker 26: mount that directory or file of a named volume; relative,
/// no `..`; resolved inside the volume at start). `volume-label` is refused (label volumes with
/// `volume create --label`), as are drivers other than `local`.
///
/// ```
/// use mountkit_binds::{parse_mount_flag, MountSpec};
/// let spec = parse_mount_flag("type=bind,source=/srv/www,target=/usr/share/nginx/html,readonly").unwrap();
/// assert!(matches!(spec, MountSpec::Bind { readonly: true, create_source: false, .. }));
/// ```
pub fn parse_mount_flag(s: &str) -> Result<MountSpec> {
    parse_mount_in(s, std::env::current_dir().ok().as_deref())
}

/// Parses a `--tmpfs` value: `DST[:OPTS]`, OPTS as mount(8) and tmpfs(5) take them: `size=64m`
/// (suffixes k, m, g, t, p, e or a percentage of RAM), `mode=1777` (octal), `uid=`, `gid=`,
/// `ro`/`rw`, `exec`/`noexec`, `suid`/`nosuid`, `dev`/`nodev`, `atime`/`noatime`/`relatime`,
/// `defaults`, and the tmpfs options `nr_inodes=`, `nr_blocks=`, `huge=`, `mpol=`, `inode64`,
/// `inode32`, `noswap`. Docker's defaults apply first (`noexec,nosuid,nodev`); later options win.
///
/// ```
/// use mountkit_binds::{parse_tmpfs_flag, MountSpec, TmpfsSize};
/// let MountSpec::Tmpfs { options, .. } = parse_tmpfs_flag("/run:size=64m,exec").unwrap() else { panic!() };
/// assert_eq!(options.size, Some(TmpfsSize::Bytes(64 << 20)));
/// assert!(!options.noexec && options.nosuid);
/// ```
pub fn parse_tmpfs_flag(s: &str) -> Result<MountSpec> {
    tmpfs_flag::parse_tmpfs(s)
}

/// Checks that no two specs share a target (after cleaning), as Docker does.
///
/// ```
/// use mountkit_binds::{check_duplicate_targets, parse_volume_flag, parse_tmpfs_flag};
/// let specs = [parse_volume_flag("/a:/x").unwrap(), parse_tmpfs_flag("/x/").unwrap()];
/// assert_eq!(check_duplicate_targets(&specs).unwrap_err().to_string(), "Duplicate mount point: /x");
/// ```
pub fn check_duplicate_targets(specs: &[MountSpec]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        let t = clean_path(spec.target());
        if !seen.insert(t.clone()) {
            return Err(Error::DuplicateTarget(t));
        }
    }
    Ok(())
}
