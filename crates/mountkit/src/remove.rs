//! Removing containers and image names: what must be true first (not running, no foreign mount, no
//! container using the image's last name), and the lock order that keeps `rm -f` from waiting under the
//! store lock.

use mountkit_layer_store::ImageInfo;
use mountkit_safefs::{Lock, remove_tree_checked};

use crate::container::Container;
use crate::{Error, Mountkit, Result};

impl Mountkit {
    /// Removes a container: its record and its writable layer (never through a mount that is still
    /// attached), and with `volumes` its anonymous volumes. A running container needs `force`, which kills
    /// it first; a container mounted with `container mount` is unmounted first with `force`. A mount
    /// under the container's directory that mountkit did not make is refused, `force` or not, before
    /// anything moves.
    ///
    /// Lock order (ARCHITECTURE.md): the store lock is never held while waiting for a container's
    /// `running.lock`, because its runner takes the store lock to record the exit while it holds that
    /// lock. So a running container is killed under the store lock, which is then let go while its
    /// runner finishes; the removal starts over under the store lock, by ID.
    pub fn remove(&self, reference: &str, force: bool, volumes: bool) -> Result<Container> {
        let mut lock = self.lock()?;
        let first = self.container(reference)?;
        let mut c = first.clone();
        loop {
            if !self.is_running(&c.id) {
                self.remove_locked(&c, force, volumes)?;
                return Ok(c);
            }
            if !force {
                return Err(Error::Running(c.name.clone()));
            }
            // A detached container's monitor must not restart it (`--restart`) meanwhile, and a start
            // still waiting for a volume's driver mount (no process yet) gives up when it sees this.
            let _ = std::fs::write(self.container_dir(&c.id).join(crate::detach::STOP_REQUESTED), b"");
            if let Some(pid) = c.state.pid {
                tracing::info!(pid, container = %c.name, "killing running container");
                let _ = kill(pid);
            }
            drop(lock);
            self.wait_stopped(&c.id)?;
            lock = self.lock()?;
            c = match self.container(&first.id) {
                Ok(c) => c,
                // Killed above, then removed by its own runner (`run --rm`): what was asked is done.
                Err(Error::NoSuchContainer(_)) => return Ok(first),
                Err(e) => return Err(e),
            };
        }
    }

    /// Waits until the runner of container `id` lets go of its `running.lock` (it has recorded the exit,
    /// or died). Never called under the store lock (see [`Mountkit::remove`]).
    fn wait_stopped(&self, id: &str) -> Result<()> {
        // Shared, as every waiter's (see `is_running`).
        match Lock::shared(&self.container_dir(id).join("running.lock")) {
            Ok(_released) => Ok(()),
            // The container directory went away meanwhile (its runner removed it).
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a container that is not running, under the store lock the caller holds.
    pub(crate) fn remove_locked(&self, c: &Container, force: bool, volumes: bool) -> Result<()> {
        let dir = self.container_dir(&c.id);
        if self.is_running(&c.id) {
            return Err(Error::Running(c.name.clone()));
        }
        let merged = dir.join("merged");
        // Before anything moves: a mount under the container that is not mountkit's own rootfs mount
        // (`container mount` at merged/) was made by someone else, and is never unmounted by mountkit.
        let canonical = std::fs::canonicalize(&dir).map_err(|e| Error::io("resolve", &dir, e))?;
        let own = canonical.join("merged");
        let mounts = mountkit_safefs::mounts_under_canonical(&canonical)?;
        if let Some(foreign) = mounts.iter().find(|m| **m != own) {
            return Err(Error::ForeignMount {
                container: c.name.clone(),
                mount: foreign.clone(),
            });
        }
        if mounts.contains(&own) {
            if !force {
                return Err(Error::Mounted(c.name.clone(), merged));
            }
            mountkit_overlay::unmount(&merged)?;
        }
        // The mount table was read above (and mountkit's own mount undone): the walk still refuses to
        // enter a directory on another mount, without a second read of the table.
        let trash = self.staging("rm");
        let moved = std::fs::rename(&dir, &trash).or_else(|e| {
            // `staging/` itself may be gone (removed by hand): make it and try once more.
            if e.kind() != std::io::ErrorKind::NotFound || !dir.exists() {
                return Err(e);
            }
            std::fs::create_dir_all(trash.parent().expect("staging has a parent"))?;
            std::fs::rename(&dir, &trash)
        });
        moved.map_err(|e| Error::io("move aside", &dir, e))?;
        remove_tree_checked(&trash)?;
        self.release_name(&c.name, &c.id);
        self.forget_volumes(c, volumes);
        tracing::info!(id = %c.id, "container removed");
        Ok(())
    }

    /// Removes what `reference` names (see `mountkit_layer_store`'s resolution rule) and returns the
    /// removed records. A name removes that name: the image and its containers keep working while it
    /// has another. An ID (or prefix) of an image with several names is refused unless `force`, which
    /// removes every name (as `docker rmi -f ID`). Removing the last name of an image that a container
    /// uses is refused, `force` or not.
    pub fn remove_image(&self, reference: &str, force: bool) -> Result<Vec<ImageInfo>> {
        let _lock = self.lock()?;
        let named = self.layers().image_records(reference)?;
        let id = named[0].id.clone();
        if named.len() > 1 && !force {
            return Err(Error::ImageHasNames {
                image: reference.to_string(),
                names: named
                    .iter()
                    .map(ImageInfo::display_name)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let remaining = self.layers().image_records(&id)?.len() - named.len();
        if remaining == 0 {
            let users: Vec<String> = self
                .containers()?
                .into_iter()
                .filter(|c| c.image == id)
                .map(|c| c.name)
                .collect();
            if !users.is_empty() {
                return Err(Error::ImageInUse {
                    image: reference.to_string(),
                    containers: users.join(", "),
                });
            }
        }
        Ok(self.layers().remove_image(reference)?)
    }
}

/// SIGKILL to the container's process (`docker rm -f`).
fn kill(pid: i32) -> rustix::io::Result<()> {
    match rustix::process::Pid::from_raw(pid) {
        Some(pid) => rustix::process::kill_process(pid, rustix::process::Signal::KILL),
        None => Err(rustix::io::Errno::SRCH),
    }
}
