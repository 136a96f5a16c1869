//! Moving and copying a volume's content: the directory an export reads, a staged import committed
//! atomically, and a clone (see "Export, import, clone" in docs/volumes.md). The archive format is the
//! caller's: this module only stages, checks and commits.

use std::fs;
use std::path::PathBuf;

use rustix::fs::{CWD, RenameFlags};
use tracing::{debug, info, warn};

use crate::driver::{self, Backing};
use crate::files::{dir_is_empty, make_empty, mkdir};
use crate::layout::{DATA, Layout};
use crate::lifecycle::long_stage;
use crate::lock::ChangeLock;
use crate::name::validate_name;
use crate::populate::MARKER;
use crate::record::{self, RECORD, Record};
use crate::volume::{self, Volume};
use crate::{Error, Result};
use mountkit_safefs::{TimePrecision, now_rfc3339};

/// The directory that holds the volume's content now, for an export or a clone.
///
/// A plain volume's `_data`; a driver volume's `_data` only while its mount is attached (a container
/// uses it): otherwise its content is not there to read (a tmpfs has none, an NFS export or a bound
/// directory is elsewhere), and [`Error::NotAttached`] says so rather than reading an empty directory.
pub(crate) fn content_dir(layout: &Layout, name: &str, op: &'static str) -> Result<PathBuf> {
    let vol = volume::load(layout, name)?;
    let data = vol.mountpoint;
    if let Backing::Mount(plan) =
        driver::backing(&vol.options, vol.size_limit.as_ref(), &layout.volume_dir(name))?
        && !(vol.mounted && driver::is_mount_point(&data)?)
    {
        return Err(Error::NotAttached {
            op,
            name: name.to_string(),
            what: plan.describe(),
        });
    }
    Ok(data)
}

/// Whether reading the volume's content needs its mount attached first: a driver volume whose content
/// lives on at its device (a loop-backed size limit's image, an NFS export, a bound directory: any type
/// but tmpfs) and whose mount is not attached now (no container uses it).
pub(crate) fn needs_attach(layout: &Layout, name: &str) -> Result<bool> {
    validate_name(name)?;
    let vol = volume::load(layout, name)?;
    Ok(
        match driver::backing(&vol.options, vol.size_limit.as_ref(), &layout.volume_dir(name))? {
            Backing::Directory => false,
            Backing::Mount(plan) => {
                plan.fstype != "tmpfs" && !(vol.mounted && driver::is_mount_point(&vol.mountpoint)?)
            }
        },
    )
}

/// Refuses a volume with driver options as the target of an import: see [`Registry::stage_import`].
fn refuse_driver_target(vol: &Volume) -> Result<()> {
    if let Some(limit) = &vol.size_limit {
        // The import replaces `_data`: a staged one has no project ID, and a loop-backed volume's
        // content is in its image.
        return Err(Error::Unsupported {
            op: "import into",
            name: vol.name.clone(),
            reason: format!(
                "it has a size limit ({} bytes, {:?}); import into a new volume instead",
                limit.bytes, limit.method
            ),
        });
    }
    if let Backing::Mount(plan) = driver::parse(&vol.options)? {
        return Err(Error::Unsupported {
            op: "import into",
            name: vol.name.clone(),
            reason: format!(
                "its content is a driver mount ({}); only a volume without driver options can be imported into",
                plan.describe()
            ),
        });
    }
    Ok(())
}

/// Whether the existing volume may take an import: no driver options, and empty unless `force`.
fn check_target(vol: &Volume, force: bool) -> Result<()> {
    refuse_driver_target(vol)?;
    if !force && !dir_is_empty(&vol.mountpoint)? {
        return Err(Error::NotEmpty {
            name: vol.name.clone(),
        });
    }
    Ok(())
}

/// A volume import in progress, made by [`Registry::stage_import`](crate::Registry::stage_import): put
/// the content into [`data`](StagedImport::data), then [`commit`](StagedImport::commit). Dropped
/// without a commit, the staging is deleted and the volume is as it was (or, for a new name, was never
/// made).
#[derive(Debug)]
pub struct StagedImport {
    layout: Layout,
    name: String,
    force: bool,
    /// Only a new volume may be made (a clone): an existing name is [`Error::Exists`] at commit.
    new_only: bool,
    /// `<root>/.tmp/import-<pid>-<random>`; its `_data` is the staged content.
    stage: PathBuf,
    done: bool,
}

impl StagedImport {
    /// The volume's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The empty directory to fill: it becomes the volume's `_data` (its owner, mode and xattrs too).
    pub fn data(&self) -> PathBuf {
        self.stage.join(DATA)
    }

    /// Makes the staged content the volume's, atomically: a new volume appears whole (one rename); an
    /// existing one has its `_data` exchanged with the staged one (`renameat2(RENAME_EXCHANGE)`) and the
    /// old content deleted. The checks of [`stage_import`](crate::Registry::stage_import) are made again
    /// under the lock (the volume may have been created or filled meanwhile).
    pub fn commit(mut self) -> Result<Volume> {
        let layout = self.layout.clone();
        let change = ChangeLock::take(&layout)?;
        let staged_data = self.data();
        let has_content = !dir_is_empty(&staged_data)?;
        let vol = match volume::load(&layout, &self.name) {
            Ok(vol) => vol,
            Err(Error::NotFound { .. }) => {
                // A local volume without options or labels; built through serde so that every
                // field the record may gain keeps its default.
                let record: Record = serde_json::from_value(serde_json::json!({
                    "driver": "local",
                    "created": now_rfc3339(TimePrecision::Seconds),
                    "labels": {},
                    "options": {},
                    "anonymous": false,
                }))
                .map_err(|source| Error::Metadata {
                    path: self.stage.join(RECORD),
                    source,
                })?;
                record::write_staged(&self.stage.join(RECORD), &record)?;
                if has_content {
                    make_empty(&self.stage.join(MARKER))?;
                }
                let dest = layout.volume_dir(&self.name);
                change.invalidate_list_cache()?;
                fs::rename(&self.stage, &dest)
                    .map_err(|e| Error::io("move imported volume into place at", &dest, e))?;
                self.done = true;
                info!(volume = %self.name, "imported into a new volume");
                return volume::load(&layout, &self.name);
            }
            Err(e) => return Err(e),
        };
        if self.new_only {
            return Err(Error::Exists { name: vol.name });
        }
        check_target(&vol, self.force)?;
        let dir = layout.volume_dir(&self.name);
        let mounts = driver::mounts_below(&dir)?;
        if !mounts.is_empty() {
            return Err(Error::Unsupported {
                op: "import into",
                name: self.name.clone(),
                reason: format!(
                    "something is mounted under it: {}",
                    mountkit_safefs::display_paths(&mounts)
                ),
            });
        }
        change.invalidate_list_cache()?;
        rustix::fs::renameat_with(CWD, &staged_data, CWD, &vol.mountpoint, RenameFlags::EXCHANGE)
            .map_err(|e| Error::io("exchange the imported content with", &vol.mountpoint, e))?;
        if has_content {
            make_empty(&dir.join(MARKER))?;
        }
        // The old content is in the stage now; Drop deletes it.
        info!(volume = %self.name, "imported into an existing volume");
        drop(change);
        volume::load(&layout, &self.name)
    }
}

impl Drop for StagedImport {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        debug!(stage = %self.stage.display(), "removing import staging");
        if let Err(e) = mountkit_safefs::remove_tree(&self.stage) {
            warn!(volume = %self.name, "cannot remove import staging (the next volume change sweeps it): {e}");
        }
    }
}

/// Starts an import into `name` (see [`Registry::stage_import`](crate::Registry::stage_import)).
pub(crate) fn stage_import(layout: &Layout, name: &str, force: bool) -> Result<StagedImport> {
    validate_name(name)?;
    let _change = ChangeLock::take(layout)?;
    match volume::load(layout, name) {
        Ok(vol) => check_target(&vol, force)?,
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let stage = long_stage(layout, "import")?;
    let staged = StagedImport {
        layout: layout.clone(),
        name: name.to_string(),
        force,
        new_only: false,
        stage,
        done: false,
    };
    mkdir(&staged.data(), 0o755)?;
    Ok(staged)
}

/// Makes the volume `dst` with a copy of `src`'s content (see
/// [`Registry::clone_volume`](crate::Registry::clone_volume)).
pub(crate) fn clone_volume(layout: &Layout, src: &str, dst: &str) -> Result<Volume> {
    validate_name(src)?;
    validate_name(dst)?;
    let (from, stage) = {
        let _change = ChangeLock::take(layout)?;
        if record::exists(layout, dst) {
            return Err(Error::Exists {
                name: dst.to_string(),
            });
        }
        let from = content_dir(layout, src, "clone")?;
        (from, long_stage(layout, "clone")?)
    };
    let staged = StagedImport {
        layout: layout.clone(),
        name: dst.to_string(),
        force: false,
        new_only: true,
        stage,
        done: false,
    };
    mkdir(&staged.data(), 0o755)?;
    debug!(src, dst, "cloning volume");
    crate::copy::copy_tree(&from, &staged.data()).map_err(|e| Error::Clone {
        src: src.to_string(),
        dst: dst.to_string(),
        source: Box::new(e),
    })?;
    let vol = staged.commit()?;
    info!(src, dst, "cloned volume");
    Ok(vol)
}

/// The data path of a volume a caller exports (see [`content_dir`]).
pub(crate) fn export_dir(layout: &Layout, name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    content_dir(layout, name, "export")
}
