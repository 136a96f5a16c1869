//! The filesystem under a path (a volume's `_data`, the store's `volumes/`), for `volume inspect` and
//! `system info`: what a container's writes there meet (an NFS server, a FUSE process, a local disk).
//!
//! Read from the mount table alone (`/proc/self/mountinfo`: the mount whose mount point is the path or
//! its nearest ancestor, the top one of a stack), never from the path itself: a `stat` of an NFS mount
//! whose server is gone can block, and `inspect` must not.

use std::path::{Path, PathBuf};

use mountkit_safefs::mountinfo::MountTable;
use serde::Serialize;

/// The mount a path is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilesystemInfo {
    /// The filesystem type as the kernel names it (`ext4`, `tmpfs`, `nfs4`, `fuse.sshfs`, ...).
    #[serde(rename = "type")]
    pub fs_type: String,
    /// The mount's source (a device, `server:/export`, `user@host:dir`, ...).
    pub source: String,
    /// Where that mount is, in this mount namespace (the path itself, or an ancestor).
    pub mount_point: PathBuf,
    /// The superblock's options (for FUSE: `user_id=`, `allow_other`).
    #[serde(skip)]
    pub super_options: String,
}

impl FilesystemInfo {
    /// For a FUSE mount without `allow_other`: the uid of the only user the kernel lets in (the one
    /// who mounted it, `user_id=`). `None` for anything else.
    pub fn fuse_owner_only(&self) -> Option<u32> {
        if !(self.fs_type == "fuse" || self.fs_type == "fuseblk" || self.fs_type.starts_with("fuse.")) {
            return None;
        }
        let mut words = self.super_options.split(',');
        if words.clone().any(|w| w == "allow_other") {
            return None;
        }
        words.find_map(|w| w.strip_prefix("user_id=")?.parse().ok())
    }
}

/// Warnings for `-v` binds whose source is on a FUSE mount without `allow_other` that the container's
/// user cannot enter (the kernel refuses every other uid, root too, with "Permission denied"): what
/// the container would otherwise meet as a bare EACCES. Reads the mount table once, only when the
/// container has binds.
pub(crate) fn fuse_bind_warnings(c: &crate::Container) -> Vec<String> {
    use mountkit_binds::MountSpec;
    let binds: Vec<&PathBuf> = c
        .mounts
        .iter()
        .filter_map(|m| match &m.spec {
            MountSpec::Bind { source, .. } => Some(source),
            _ => None,
        })
        .collect();
    if binds.is_empty() {
        return Vec::new();
    }
    let Ok(table) = MountTable::read() else {
        return Vec::new();
    };
    let user = c.config.user.as_deref().unwrap_or("0");
    let name = user.split(':').next().unwrap_or(user);
    let uid: Option<u32> = if name == "root" {
        Some(0)
    } else {
        name.parse().ok()
    };
    let mut out = Vec::new();
    for source in binds {
        // The mount table has canonical paths; a source the kernel refuses to resolve stays as given.
        let real = std::fs::canonicalize(source).unwrap_or_else(|_| source.clone());
        let Some(fs) = on_mount(&table, &real) else {
            continue;
        };
        let Some(owner) = fs.fuse_owner_only() else {
            continue;
        };
        if uid == Some(owner) {
            continue;
        }
        let who = match uid {
            Some(u) => format!("the container's user (uid {u})"),
            None => format!("the container's user {user:?} unless it is uid {owner}"),
        };
        let me = rustix::process::geteuid().as_raw();
        let mountkit_too = if me != owner {
            format!(" (and mountkit itself, uid {me}, cannot bind it)")
        } else {
            String::new()
        };
        out.push(format!(
            "{} is on a FUSE mount ({} {}) without allow_other: the kernel lets only uid {owner}, who \
             mounted it, enter it, so {who} gets \"Permission denied\" there{mountkit_too}; mount it with \
             -o allow_other (as root, or with user_allow_other in /etc/fuse.conf)",
            source.display(),
            fs.fs_type,
            fs.source
        ));
    }
    out
}

/// Prints [`fuse_bind_warnings`] on stderr.
pub(crate) fn report_fuse_binds(c: &crate::Container) {
    for w in fuse_bind_warnings(c) {
        eprintln!("mountkit: warning: {w}");
    }
}

/// The mount that `path` (absolute, without symlinks or `..`: a store path) is on in this process's
/// mount namespace; `None` when the mount table cannot be read.
pub fn filesystem_of(path: &Path) -> Option<FilesystemInfo> {
    let table = MountTable::read().ok()?;
    on_mount(&table, path)
}

fn on_mount(table: &MountTable, path: &Path) -> Option<FilesystemInfo> {
    let mut best: Option<(usize, FilesystemInfo)> = None;
    for m in table.mounts() {
        let Some(point) = m.mount_point() else { continue };
        if !path.starts_with(&point) {
            continue;
        }
        let depth = point.components().count();
        // `>=`: of mounts stacked on one point, the later (top) one wins.
        if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
            let info = FilesystemInfo {
                fs_type: m.fs_type()?.to_string_lossy().into_owned(),
                source: m
                    .source()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                mount_point: point,
                super_options: m
                    .super_options()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            best = Some((depth, info));
        }
    }
    best.map(|(_, info)| info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_and_topmost_mount_wins() {
        let text = "1 0 8:1 / / rw - ext4 /dev/vda1 rw\n\
                    2 1 0:5 / /srv rw - tmpfs tmpfs rw\n\
                    3 2 0:9 / /srv/store/volumes/v/_data rw - nfs4 127.0.0.1:/export/v1 rw\n\
                    4 1 0:6 / /srv rw - tmpfs other rw\n";
        let t = MountTable::from_bytes(text.as_bytes().to_vec());
        let nfs = on_mount(&t, Path::new("/srv/store/volumes/v/_data")).unwrap();
        assert_eq!(nfs.fs_type, "nfs4");
        assert_eq!(nfs.source, "127.0.0.1:/export/v1");
        let other = on_mount(&t, Path::new("/srv/store/volumes/w/_data")).unwrap();
        assert_eq!(
            (other.fs_type.as_str(), other.source.as_str()),
            ("tmpfs", "other")
        );
        // A path component, not a string prefix.
        let root = on_mount(&t, Path::new("/srvx/a")).unwrap();
        assert_eq!(root.fs_type, "ext4");
    }

    #[test]
    fn fuse_without_allow_other_admits_its_owner_only() {
        let text = "1 0 8:1 / / rw - ext4 /dev/vda1 rw\n\
                    2 1 0:40 / /mnt/a rw,nosuid,nodev - fuse.sshfs u@h:/d rw,user_id=1000,group_id=1000\n\
                    3 1 0:41 / /mnt/b rw,nosuid,nodev - fuse.sshfs u@h:/d rw,user_id=0,group_id=0,allow_other\n";
        let t = MountTable::from_bytes(text.as_bytes().to_vec());
        let on = |p: &str| on_mount(&t, Path::new(p)).unwrap().fuse_owner_only();
        assert_eq!(on("/mnt/a/x"), Some(1000));
        assert_eq!(on("/mnt/b/x"), None);
        assert_eq!(on("/srv"), None);
    }

    #[test]
    fn this_process_root_is_on_a_mount() {
        assert!(filesystem_of(Path::new("/")).is_some());
    }
}
