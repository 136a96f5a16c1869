//! Populate: filling a volume from the image on first use, and whether it has content, which is the empty
//! file `<root>/<name>/populated` and nothing else (see "Populate" in docs/volumes.md).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use tracing::{debug, info};

use crate::driver::{self, Backing};
use crate::files::{dir_is_empty, is_there, make_empty, remove_if_there};
use crate::layout::Layout;
use crate::lock::ChangeLock;
use crate::{Error, Result, volume};

/// The marker's file name, in the volume's directory.
pub(crate) const MARKER: &str = "populated";

fn marker(layout: &Layout, name: &str) -> PathBuf {
    layout.volume_dir(name).join(MARKER)
}

/// Whether the volume's marker says it has received content: one `stat`.
pub(crate) fn is_marked(layout: &Layout, name: &str) -> bool {
    is_there(&marker(layout, name))
}

/// Drops the marker: the volume's content went with its mount (a tmpfs). The caller holds the lock and
/// has invalidated the list cache.
pub(crate) fn forget(layout: &Layout, name: &str) -> Result<()> {
    remove_if_there(&marker(layout, name)).map(|_| ())
}

/// Marks the volume as having received content: one entry, no record rewrite.
fn mark(change: &ChangeLock, name: &str) -> Result<()> {
    change.invalidate_list_cache()?;
    make_empty(&marker(change.layout(), name))?;
    Ok(())
}

/// Copies `source` into the volume `name` once; returns whether it copied (see
/// [`Registry::populate`](crate::Registry::populate)).
pub(crate) fn populate(layout: &Layout, name: &str, source: &Path) -> Result<bool> {
    // The source first: it is the image's, not the registry's, so no lock is needed to find that there is
    // nothing to copy (the common case: a mount path the image has empty, or not at all). The source
    // itself may be reached through a link (a `/proc/self/fd/N` path of a directory the caller resolved
    // inside the image root); nothing below it is followed.
    let meta = match fs::metadata(source) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("inspect", source, e)),
    };
    if meta.is_dir() && dir_is_empty(source)? {
        return Ok(false);
    }
    let change = ChangeLock::take(layout)?;
    let vol = volume::load(layout, name)?;
    if vol.populated {
        return Ok(false);
    }
    let data = vol.mountpoint;
    let mut on_mount = None;
    if let Backing::Mount(plan) =
        driver::backing(&vol.options, vol.size_limit.as_ref(), &layout.volume_dir(name))?
    {
        if !(vol.mounted && driver::is_mount_point(&data)?) {
            return Err(Error::NotAcquired {
                name: name.to_string(),
                kind: plan.fstype,
            });
        }
        on_mount = Some(plan);
    }
    if !dir_is_empty(&data)? {
        mark(&change, name)?;
        return Ok(false);
    }
    if !meta.is_dir() {
        return Err(Error::SourceNotDirectory {
            name: name.to_string(),
            path: source.to_path_buf(),
        });
    }
    debug!(volume = name, source = %source.display(), "populating volume from image content");
    crate::copy::copy_tree(source, &data).map_err(|e| match &on_mount {
        Some(plan) => on_mount_error(name, plan, e),
        None => e,
    })?;
    mark(&change, name)?;
    info!(volume = name, "volume populated");
    Ok(true)
}

/// A copy onto a driver mount that failed: the volume, the mount (for NFS its server) and the cause,
/// with the likely reason when root was refused (an NFS export's `root_squash` maps root to nobody).
fn on_mount_error(name: &str, plan: &driver::MountPlan, e: Error) -> Error {
    let refused = matches!(&e, Error::Io { source, .. }
        if matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM)));
    let hint = if !refused {
        String::new()
    } else if plan.fstype.starts_with("nfs") {
        "; the server refuses root (an export with root_squash maps root to nobody): export it with \
         no_root_squash, or mount the volume with nocopy to skip filling it"
            .to_string()
    } else {
        "; the filesystem refuses what the copy needs (an owner, a mode, a special file, a link): \
         mount the volume with nocopy to skip filling it"
            .to_string()
    };
    Error::PopulateMount {
        name: name.to_string(),
        what: plan.describe(),
        hint,
        source: Box::new(e),
    }
}
