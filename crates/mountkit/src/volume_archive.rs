//! `volume export`, `volume import`, `volume clone`: the registry stages and commits
//! (`mountkit_volumes`), the layer store's tar code writes and reads the archive
//! (`mountkit_layer_store::{tar_tree, unpack_tree}`, with its guards against hostile entries), and this
//! module adds what needs the container records: which running containers use the volume. See
//! "Export, import, clone" in docs/volumes.md.

use std::io::{Read, Write};
use std::path::Path;

use mountkit_binds::MountSpec;
use mountkit_volumes::Volume;

use crate::container::Status;
use crate::export::{ExportTarget, write_atomically};
use crate::{Error, Mountkit, Result};

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeExport {
    /// The archive's members.
    pub entries: u64,
    /// The running containers (by name) that had the volume mounted writable while it was read (only
    /// with `force`): the archive is then not a snapshot (see docs/volumes.md).
    pub live_writers: Vec<String>,
}

impl Mountkit {
    /// The running containers (by name) that mount the volume `volume` writable.
    fn running_writers(&self, volume: &str) -> Result<Vec<String>> {
        Ok(self
            .containers()?
            .into_iter()
            .filter(|c| c.state.status == Status::Running)
            .filter(|c| {
                c.mounts.iter().any(|m| {
                    matches!(&m.spec, MountSpec::Volume { name: Some(n), readonly: false, .. } if n == volume)
                })
            })
            .map(|c| c.name)
            .collect())
    }

    /// Writes a tar of the volume's content to `target` (owners, modes, mtimes, xattrs, hard links,
    /// symlinks; a `./` member carries the volume root's own owner and mode). Refused while a running
    /// container has the volume mounted writable, unless `force`. A driver volume that no container has
    /// attached is attached for the time of the export (see [`Mountkit::attach_for_read`]), except a
    /// tmpfs one, which has no content then and is refused, never exported as an empty archive. A file
    /// target appears complete or not at all.
    pub fn export_volume(&self, name: &str, force: bool, target: &ExportTarget) -> Result<VolumeExport> {
        let live_writers = self.running_writers(name)?;
        if !live_writers.is_empty() && !force {
            return Err(Error::VolumeBusy {
                volume: name.to_string(),
                containers: live_writers.join(", "),
                hint: "the archive would not be a consistent copy; stop them, or force an export of the live content",
            });
        }
        let _attached = self.attach_for_read(name)?;
        let dir = self.volumes().export_dir(name)?;
        let mut entries = 0;
        let mut export = |out: &mut dyn Write, what: &Path| -> Result<()> {
            let mut out = std::io::BufWriter::with_capacity(256 << 10, out);
            entries =
                mountkit_layer_store::tar_tree(&dir, &mut out).map_err(|source| Error::VolumeArchive {
                    op: "export",
                    volume: name.to_string(),
                    outcome: "",
                    error: Box::new(source),
                })?;
            out.flush().map_err(|e| Error::io("write", what, e))
        };
        match target {
            ExportTarget::Stdout => export(&mut std::io::stdout().lock(), Path::new("standard output"))?,
            ExportTarget::File(path) => write_atomically(path, |f| export(f, path))?,
        }
        Ok(VolumeExport {
            entries,
            live_writers,
        })
    }

    /// Imports the tar stream `src` into the volume `name`: a new volume (local driver) when there is
    /// none of that name, else an empty volume without driver options, or a non-empty one with `force`
    /// (its content is replaced). Extracted in the registry's staging with the layer unpacker's guards
    /// (`..`, absolute names, paths through symlinks, hard links out, truncated or corrupt archives are
    /// refused), then committed in one step; on any error the volume is unchanged (or not made). Refused
    /// while a running container uses the volume (even with `force`: it would keep the old content).
    pub fn import_volume(&self, name: &str, src: impl Read, force: bool) -> Result<Volume> {
        self.refuse_running_users(name)?;
        let staged = self.volumes().stage_import(name, force)?;
        mountkit_layer_store::unpack_tree(src, &staged.data()).map_err(|source| Error::VolumeArchive {
            op: "import into",
            volume: name.to_string(),
            outcome: " (the volume is unchanged)",
            error: Box::new(source),
        })?;
        // Under the store lock, which a container's start takes: none starts with it between the
        // check and the commit.
        let _lock = self.lock()?;
        self.refuse_running_users(name)?;
        Ok(staged.commit()?)
    }

    /// Makes the new volume `dst` with a copy of `src`'s content (reflinks where the filesystem can).
    /// Refused while a running container has `src` mounted writable, unless `force`.
    pub fn clone_volume(&self, src: &str, dst: &str, force: bool) -> Result<(Volume, Vec<String>)> {
        let live_writers = self.running_writers(src)?;
        if !live_writers.is_empty() && !force {
            return Err(Error::VolumeBusy {
                volume: src.to_string(),
                containers: live_writers.join(", "),
                hint: "the clone would not be a consistent copy; stop them, or force a clone of the live content",
            });
        }
        let _attached = self.attach_for_read(src)?;
        Ok((self.volumes().clone_volume(src, dst)?, live_writers))
    }

    /// When the volume's content is at a device that no container has attached now (a loop-backed size
    /// limit's image, an NFS export, a bound directory: [`Registry::needs_attach`]), acquires it for
    /// this command, as a container's start would: the mount is made in this process's mount namespace
    /// and undone when the returned guard is dropped. Its user is this process
    /// ([`crate::store::process_user`]), which `reconcile` sees alive while it runs: killed, it leaves
    /// a mount that the next command undoes. A tmpfs volume has no content to attach: the export or
    /// clone then says so.
    ///
    /// [`Registry::needs_attach`]: mountkit_volumes::Registry::needs_attach
    fn attach_for_read(&self, name: &str) -> Result<Option<AttachedForRead<'_>>> {
        if !self.volumes().needs_attach(name)? {
            return Ok(None);
        }
        let user = crate::store::process_user();
        self.volumes().acquire(name, &user)?;
        tracing::debug!(volume = name, user, "attached for this command");
        Ok(Some(AttachedForRead {
            mk: self,
            name: name.to_string(),
            user,
        }))
    }

    /// Refuses an import into a volume that a running container uses (writable or not).
    fn refuse_running_users(&self, name: &str) -> Result<()> {
        let users: Vec<String> = self
            .containers()?
            .into_iter()
            .filter(|c| c.state.status == Status::Running && Self::volume_names(c).contains(&name))
            .map(|c| c.name)
            .collect();
        if users.is_empty() {
            return Ok(());
        }
        Err(Error::VolumeBusy {
            volume: name.to_string(),
            containers: users.join(", "),
            hint: "an import replaces the volume's content, which a running container would not see; stop them first",
        })
    }
}

/// A volume acquired by this command itself, to read its content (see
/// [`Mountkit::attach_for_read`]); released (its mount undone) when dropped.
struct AttachedForRead<'a> {
    mk: &'a Mountkit,
    name: String,
    user: String,
}

impl Drop for AttachedForRead<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.mk.volumes().release(&self.name, &self.user) {
            tracing::warn!(volume = %self.name, error = %e, "release after the export or clone");
        }
    }
}

/// The layer store's error, in a volume's words: its unpacker speaks of layers.
pub(crate) fn cause(e: &mountkit_layer_store::Error) -> String {
    match e {
        mountkit_layer_store::Error::Rejected { entry, reason } => format!(
            "entry {entry:?} refused: {}",
            reason
                .replace("this layer", "this archive")
                .replace("the layer", "the archive")
        ),
        mountkit_layer_store::Error::Corrupt { what, reason } if what == "layer stream" => {
            format!("the archive: {reason}")
        }
        e => e.to_string(),
    }
}
