//! A container's volumes as the store keeps them: creating the ones it needs, its references, their
//! once-per-boot check against the container records, and `volume rm`/`prune`/`ls` with that check.
//! The use of volumes by a running container (acquire, plan, release) is in `run.rs`.

use std::collections::{BTreeMap, BTreeSet};

use mountkit_binds::MountSpec;
use mountkit_safefs::write_atomic_nosync;
use mountkit_volumes::CreateOptions as VolumeOptions;

use crate::container::Container;
use crate::{Error, Mountkit, Result};

impl Mountkit {
    /// The names of the volumes the container mounts, in mount order.
    pub(crate) fn volume_names(c: &Container) -> Vec<&str> {
        c.mounts
            .iter()
            .filter_map(|m| match &m.spec {
                MountSpec::Volume { name: Some(name), .. } => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Creates the container's volumes that do not exist yet (its anonymous ones, and named ones Docker
    /// style: `-v name:/path` creates `name` on first use), then records its references to all of them
    /// under one hold of the registry's lock.
    pub(crate) fn create_volumes(&self, c: &Container) -> Result<()> {
        for m in &c.mounts {
            let MountSpec::Volume {
                name: Some(name),
                driver_opts,
                ..
            } = &m.spec
            else {
                continue;
            };
            if !self.volumes().exists(name) {
                let opts = VolumeOptions {
                    driver: None,
                    labels: BTreeMap::new(),
                    options: driver_opts.iter().cloned().collect(),
                    anonymous: m.anonymous,
                };
                self.volumes().create(Some(name), opts)?;
            }
        }
        let names = Self::volume_names(c);
        if !names.is_empty() {
            self.volumes().add_refs(&names, &c.id)?;
        }
        Ok(())
    }

    /// Drops this container's references to its volumes and, when `anonymous_too`, removes the anonymous
    /// volumes it owns that nobody else uses. Errors are logged: this runs on cleanup paths.
    pub(crate) fn forget_volumes(&self, c: &Container, anonymous_too: bool) {
        let names = Self::volume_names(c);
        if names.is_empty() {
            return;
        }
        if let Err(e) = self.volumes().remove_refs(&names, &c.id) {
            tracing::debug!(container = %c.id, error = %e, "remove_refs");
        }
        if !anonymous_too {
            return;
        }
        for m in &c.mounts {
            if let MountSpec::Volume { name: Some(name), .. } = &m.spec
                && m.anonymous
                && let Err(e) = self.volumes().remove(name, true)
            {
                tracing::warn!(volume = %name, error = %e, "anonymous volume kept");
            }
        }
    }

    /// Makes the registry's references match the container records, once per boot.
    ///
    /// The registry writes references without fsync (one directory entry each), so only a power loss or
    /// a kernel crash, which means a new boot, can lose one or bring back a dropped one. The container
    /// records are what mountkit keeps durably; before acting on references (`volume rm`, `volume prune`,
    /// `volume ls --filter dangling`) the first command of each boot re-derives them from the records and
    /// writes the boot's ID to `<root>/volume-refs.boot`. Needs the store lock. When a record cannot be
    /// read, nothing is changed (a reference is never dropped on a guess) and the check is retried later.
    pub(crate) fn check_volume_refs(&self) {
        let marker = self.root().join("volume-refs.boot");
        // The marker holds the ID with the kernel file's newline, as it always has.
        let boot = match mountkit_safefs::boot_id() {
            "" => String::new(),
            id => format!("{id}\n"),
        };
        if !boot.is_empty() && std::fs::read_to_string(&marker).is_ok_and(|m| m == boot) {
            return;
        }
        let containers = match self.containers() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "volume references not checked against the container records");
                return;
            }
        };
        let mut refs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for c in &containers {
            for name in Self::volume_names(c) {
                refs.entry(name.to_string()).or_default().insert(c.id.clone());
            }
        }
        match self.volumes().set_refs(&refs) {
            Ok(changed) => {
                if changed > 0 {
                    tracing::info!(changed, "volume references re-derived from the container records");
                }
                if !boot.is_empty()
                    && let Err(e) = write_atomic_nosync(&marker, boot.as_bytes())
                {
                    tracing::debug!(error = %e, "volume reference check not recorded");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "volume references not checked against the container records")
            }
        }
    }

    /// `volume prune`: removes the volumes no container references (anonymous ones only unless `all`),
    /// after checking the references against the container records.
    pub fn prune_volumes(&self, all: bool, filters: &[mountkit_volumes::Filter]) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        self.check_volume_refs();
        Ok(self.volumes().prune(all, filters)?)
    }

    /// `volume ls`: the volumes that pass `filters`; with a `dangling` filter the references are checked
    /// against the container records first.
    pub fn list_volumes(
        &self,
        filters: &[mountkit_volumes::Filter],
    ) -> Result<Vec<mountkit_volumes::Volume>> {
        if filters
            .iter()
            .any(|f| matches!(f, mountkit_volumes::Filter::Dangling(_)))
        {
            let _lock = self.lock()?;
            self.check_volume_refs();
        }
        Ok(self.volumes().list(filters)?)
    }

    /// Removes a volume unless a container references it (the error names the containers); with
    /// `force`, an unknown name is no error. Returns whether a volume was removed.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<bool> {
        let _lock = self.lock()?;
        self.check_volume_refs();
        match self.volumes().remove(name, force) {
            Err(mountkit_volumes::Error::InUse { name, containers }) => {
                let all = self.containers().unwrap_or_default();
                let names: Vec<String> = containers
                    .iter()
                    .map(|id| {
                        all.iter()
                            .find(|c| &c.id == id)
                            .map(|c| c.name.clone())
                            .unwrap_or_else(|| id.clone())
                    })
                    .collect();
                Err(Error::VolumeInUse {
                    volume: name,
                    containers: names.join(", "),
                })
            }
            other => Ok(other?),
        }
    }
}
