//! The store: one root directory holding layers, images, volumes and containers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mountkit_binds::MountSpec;
use mountkit_layer_store::{ImageInfo, Store as LayerStore};
use mountkit_safefs::{Lock, remove_tree, write_atomic, write_atomic_nosync};
use mountkit_volumes::{CreateOptions as VolumeOptions, Registry};

use crate::container::{Container, ContainerConfig, CreateOptions, MountRecord, State, Status, now_rfc3339};
use crate::names::{generate_name, validate_container_name};
use crate::{Error, Result};

/// Docker's default `PATH`, used when neither the image nor `-e` sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A mountkit store: the entry point of the library.
///
/// Every method that changes state takes the store's lock (`<root>/lock`), so concurrent `mountkit`
/// processes are safe; a running container holds its own lock (`containers/<id>/running.lock`) for as long
/// as its runner lives, which is how `ls` tells a running container from one whose runner was killed.
pub struct Mountkit {
    root: PathBuf,
    layers: LayerStore,
    volumes: Registry,
}

impl std::fmt::Debug for Mountkit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mountkit")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Mountkit {
    /// Opens (creating if needed) the store at `root`, sweeps stale staging and reconciles volume mounts
    /// left by runners that died.
    pub fn open(root: impl Into<PathBuf>) -> Result<Mountkit> {
        let root = root.into();
        let containers = root.join("containers");
        if !containers.is_dir() {
            std::fs::create_dir_all(&containers)
                .map_err(|e| Error::io("create store directory", &containers, e))?;
        }
        let layers = LayerStore::open(&root)?;
        let volumes = Registry::open(root.join("volumes"))?;
        let mk = Mountkit {
            root,
            layers,
            volumes,
        };
        mk.sweep_staging();
        Ok(mk)
    }

    /// A fresh path under `<root>/staging/` for work in progress (container creation, removal, exports,
    /// the sample's layers). mountkit's own staging area: the layer store sweeps its `tmp/` by its own
    /// rules, which must not touch ours. Names carry the creating process's pid for the sweep.
    pub(crate) fn staging(&self, kind: &str) -> PathBuf {
        self.root.join("staging").join(format!(
            "{kind}-{}-{}",
            std::process::id(),
            mountkit_safefs::random_hex(6)
        ))
    }

    /// Removes staging left by processes that are gone (a crash mid-create or mid-remove). Never
    /// through a mount: `remove_tree` refuses, and the entry is then left for a person to look at.
    fn sweep_staging(&self) {
        let dir = self.root.join("staging");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                if let Err(err) = remove_tree(&e.path()) {
                    tracing::warn!(path = %e.path().display(), error = %err, "stale staging kept");
                }
            }
        }
    }

    /// Unmounts volume-driver mounts (tmpfs, nfs, bind volumes) whose users are all gone: the start-up
    /// reconciliation that keeps a crash from leaving such a mount behind for good.
    pub fn reconcile(&self) -> Result<()> {
        let is_alive = |id: &str| self.is_running(id);
        self.volumes.reconcile(&is_alive)?;
        Ok(())
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layer and image store.
    pub fn layers(&self) -> &LayerStore {
        &self.layers
    }

    /// The volume registry.
    pub fn volumes(&self) -> &Registry {
        &self.volumes
    }

    pub(crate) fn lock(&self) -> Result<Lock> {
        Ok(Lock::exclusive(&self.root.join("lock"))?)
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    fn is_running(&self, id: &str) -> bool {
        // The runner holds this lock while the container's process lives.
        matches!(
            Lock::try_exclusive(&self.container_dir(id).join("running.lock")),
            Ok(None)
        )
    }

    fn load(&self, id: &str) -> Result<Container> {
        let path = self.container_dir(id).join("container.json");
        let data = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        let mut c: Container = serde_json::from_slice(&data).map_err(|e| Error::Io {
            op: "parse",
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        if c.state.status == Status::Running && !self.is_running(id) {
            // The runner died without recording the end (SIGKILL): its process is gone with it.
            c.state.status = Status::Exited;
            c.state.pid = None;
            c.state
                .error
                .get_or_insert_with(|| "runner was killed; exit status unknown".into());
        }
        Ok(c)
    }

    pub(crate) fn save(&self, c: &Container) -> Result<()> {
        write_record(&self.container_dir(&c.id), c)
    }

    fn ids(&self) -> Result<Vec<String>> {
        let dir = self.root.join("containers");
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))? {
            let e = e.map_err(|e| Error::io("list", &dir, e))?;
            let n = e.file_name().to_string_lossy().into_owned();
            if n.len() == 64 && e.path().join("container.json").exists() {
                ids.push(n);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Every container, oldest first.
    pub fn containers(&self) -> Result<Vec<Container>> {
        let mut v = Vec::new();
        for id in self.ids()? {
            match self.load(&id) {
                Ok(c) => v.push(c),
                // Removed between listing and reading.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        v.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    /// The container named by `reference`: a name, a full ID or a unique ID prefix. Reads one record:
    /// names are found through the name index, IDs by listing `containers/` (names only).
    pub fn container(&self, reference: &str) -> Result<Container> {
        if let Some(id) = self.name_owner(reference)? {
            return self.load(&id);
        }
        let ids = self.ids()?;
        if ids.iter().any(|id| id == reference) {
            return self.load(reference);
        }
        let hits: Vec<&String> = ids.iter().filter(|id| id.starts_with(reference)).collect();
        match hits.as_slice() {
            [one] if !reference.is_empty() => self.load(one),
            [] | [_] => Err(Error::NoSuchContainer(reference.to_string())),
            many => Err(Error::AmbiguousContainer {
                reference: reference.to_string(),
                matches: many.iter().map(|id| &id[..12]).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// `<root>/container-names/`: one symlink per container name, `NAME -> ID` (the ID in the short form
    /// of [`crate::names::id_to_link`]). Creating the link is
    /// what claims a name (atomically: `symlink` fails if the name exists), so creating a container
    /// reads no other container's record. Made from the records when missing (stores from before it).
    fn names_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("container-names");
        if dir.is_dir() {
            return Ok(dir);
        }
        let stage = self.staging("names");
        std::fs::create_dir_all(&stage).map_err(|e| Error::io("create", &stage, e))?;
        for c in self.containers()? {
            let Some(target) = crate::names::id_to_link(&c.id) else {
                continue;
            };
            std::os::unix::fs::symlink(target, stage.join(&c.name))
                .map_err(|e| Error::io("index the name of", stage.join(&c.name), e))?;
        }
        match std::fs::rename(&stage, &dir) {
            Ok(()) => Ok(dir),
            // Another process made it first (under the store lock this cannot happen; be safe anyway).
            Err(_) if dir.is_dir() => {
                let _ = remove_tree(&stage);
                Ok(dir)
            }
            Err(e) => Err(Error::io("create", &dir, e)),
        }
    }

    /// The ID of the container that holds `name`, if any. A link whose container is gone (a crash
    /// between removing a container and its name) counts as free.
    fn name_owner(&self, name: &str) -> Result<Option<String>> {
        if validate_container_name(name).is_err() {
            return Ok(None);
        }
        let link = self.names_dir()?.join(name);
        match std::fs::read_link(&link) {
            Ok(target) => Ok(crate::names::id_from_link(&target.to_string_lossy())
                .filter(|id| self.container_dir(id).join("container.json").exists())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &link, e)),
        }
    }

    /// Claims `name` for container `id`: Ok(false) when a live container holds it already.
    fn claim_name(&self, name: &str, id: &str) -> Result<bool> {
        let dir = self.names_dir()?;
        let link = dir.join(name);
        let target = crate::names::id_to_link(id).expect("container IDs are 64 hex digits");
        match std::os::unix::fs::symlink(&target, &link) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if self.name_owner(name)?.is_some() {
                    return Ok(false);
                }
                // A stale link: replace it atomically.
                let tmp = dir.join(format!(".{name}.{}", mountkit_safefs::random_hex(6)));
                std::os::unix::fs::symlink(&target, &tmp).map_err(|e| Error::io("create", &tmp, e))?;
                std::fs::rename(&tmp, &link).map_err(|e| Error::io("replace", &link, e))?;
                Ok(true)
            }
            Err(e) => Err(Error::io("create", &link, e)),
        }
    }

    /// Gives `name` up if container `id` holds it.
    fn release_name(&self, name: &str, id: &str) {
        let link = self.root.join("container-names").join(name);
        if std::fs::read_link(&link)
            .is_ok_and(|t| crate::names::id_from_link(&t.to_string_lossy()).as_deref() == Some(id))
        {
            let _ = std::fs::remove_file(&link);
        }
    }

    /// Resolves the image, the command, the environment and the mounts, and creates the container: its
    /// record, its (empty) writable layer and its anonymous volumes. Nothing is left behind on error.
    pub fn create(&self, opts: &CreateOptions) -> Result<Container> {
        let _lock = self.lock()?;
        Ok(self.create_locked(opts)?.0)
    }

    /// [`Mountkit::create`] under the store lock the caller holds; also returns the image.
    pub(crate) fn create_locked(&self, opts: &CreateOptions) -> Result<(Container, ImageInfo)> {
        let (c, image, _dir) = self.create_staged(opts, true)?;
        Ok((c, image))
    }

    /// Creates a container; with `commit`, writes its record and moves it into `containers/` as
    /// [`Mountkit::create`] does; without, leaves it *pending* in `staging/` with no record (its name,
    /// mounts and volumes claimed all the same) for `run --rm` to commit once it runs (see
    /// `Mountkit::run`). Returns the container, its image and its directory.
    pub(crate) fn create_staged(
        &self,
        opts: &CreateOptions,
        commit: bool,
    ) -> Result<(Container, ImageInfo, PathBuf)> {
        let image = self.layers.image(&opts.image)?;
        if let Some(n) = &opts.name {
            validate_container_name(n)?;
        }
        let id = mountkit_safefs::random_hex(32);
        let config = resolve_config(&image, opts, &id)?;
        let name = match &opts.name {
            Some(n) => {
                if !self.claim_name(n, &id)? {
                    return Err(Error::NameInUse {
                        name: n.clone(),
                        id: self.name_owner(n)?.unwrap_or_default(),
                    });
                }
                n.clone()
            }
            None => loop {
                let n = generate_name(&|n| self.name_owner(n).is_ok_and(|o| o.is_some()));
                if self.claim_name(&n, &id)? {
                    break n;
                }
            },
        };
        let mounts = match self.resolve_mounts(&image, opts) {
            Ok(m) => m,
            Err(e) => {
                self.release_name(&name, &id);
                return Err(e);
            }
        };

        let dir = self.container_dir(&id);
        let c = Container {
            id: id.clone(),
            name,
            image: image.id.clone(),
            image_name: image.name.clone(),
            created: now_rfc3339(),
            config,
            mounts,
            state: State::created(),
            auto_remove: opts.auto_remove,
        };
        let stage = self.staging("container");
        let made = (|| {
            // Staged under tmp/ and renamed into containers/ so that a half-made container is never visible.
            create_staged_dir(&stage)?;
            for d in ["upper", "work", "merged"] {
                std::fs::create_dir(stage.join(d)).map_err(|e| Error::io("create", stage.join(d), e))?;
            }
            if !commit {
                return self.create_volumes(&c);
            }
            write_record(&stage, &c)?;
            std::fs::rename(&stage, &dir).map_err(|e| Error::io("commit container", &dir, e))?;
            self.create_volumes(&c)
        })();
        if let Err(e) = made {
            tracing::debug!(error = %e, "create failed; cleaning up");
            self.release_name(&c.name, &c.id);
            self.forget_volumes(&c, true);
            let _ = remove_tree(&stage);
            let _ = remove_tree(&dir);
            return Err(e);
        }
        tracing::info!(id = %c.id, name = %c.name, pending = !commit, "container created");
        Ok((c, image, if commit { dir } else { stage }))
    }

    /// Moves a pending container (see [`Mountkit::create_staged`]) into `containers/` with its record,
    /// written once with the state it has now.
    pub(crate) fn commit_pending(&self, stage: &Path, c: &Container) -> Result<()> {
        write_record(stage, c)?;
        let dir = self.container_dir(&c.id);
        std::fs::rename(stage, &dir).map_err(|e| Error::io("commit container", &dir, e))
    }

    /// Undoes a pending container that never ran: its directory, name and volumes.
    pub(crate) fn discard_pending(&self, stage: &Path, c: &Container) -> Result<()> {
        remove_tree(stage)?;
        self.release_name(&c.name, &c.id);
        self.forget_volumes(c, true);
        Ok(())
    }

    /// Works out the container's mounts: the image's `VOLUME`s become anonymous volumes unless something
    /// else is mounted there, `--volumes-from` copies another container's volume mounts, `-v /path` (no
    /// source) is an anonymous volume too.
    fn resolve_mounts(&self, image: &ImageInfo, opts: &CreateOptions) -> Result<Vec<MountRecord>> {
        let mut out: Vec<MountRecord> = Vec::new();
        for spec in &opts.mounts {
            let mut spec = spec.clone();
            let mut anonymous = false;
            if let MountSpec::Volume { name, .. } = &mut spec {
                if name.is_none() {
                    *name = Some(mountkit_safefs::random_hex(32));
                    anonymous = true;
                }
            }
            if taken(&out, spec.target()) {
                return Err(Error::InvalidArgument {
                    what: "mount",
                    value: spec.target().display().to_string(),
                    reason: "duplicate mount point".into(),
                });
            }
            out.push(MountRecord { spec, anonymous });
        }
        mountkit_binds::prepare_sources(&opts.mounts)?;
        for from in &opts.volumes_from {
            let (reference, mode) = match from.rsplit_once(':') {
                Some((r, m @ ("ro" | "rw"))) => (r, Some(m)),
                _ => (from.as_str(), None),
            };
            let other = self.container(reference)?;
            for m in other.mounts.iter() {
                let MountSpec::Volume { .. } = &m.spec else {
                    continue;
                };
                if taken(&out, m.spec.target()) {
                    continue;
                }
                let mut spec = m.spec.clone();
                if let (MountSpec::Volume { readonly, nocopy, .. }, Some(mode)) = (&mut spec, mode) {
                    *readonly = mode == "ro";
                    *nocopy = true;
                } else if let MountSpec::Volume { nocopy, .. } = &mut spec {
                    *nocopy = true;
                }
                // Shared, not owned: `rm -v` of this container must not remove the other's volume.
                out.push(MountRecord {
                    spec,
                    anonymous: false,
                });
            }
        }
        for path in &image.config.volumes {
            let target = PathBuf::from(path);
            if taken(&out, &target) {
                continue; // S10: what the user mounts there wins over the image's VOLUME.
            }
            out.push(MountRecord {
                spec: MountSpec::Volume {
                    name: Some(mountkit_safefs::random_hex(32)),
                    target,
                    readonly: false,
                    nocopy: false,
                    driver_opts: Vec::new(),
                },
                anonymous: true,
            });
        }
        Ok(out)
    }

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
    fn create_volumes(&self, c: &Container) -> Result<()> {
        for m in &c.mounts {
            let MountSpec::Volume {
                name: Some(name),
                driver_opts,
                ..
            } = &m.spec
            else {
                continue;
            };
            if !self.volumes.exists(name) {
                let opts = VolumeOptions {
                    driver: None,
                    labels: BTreeMap::new(),
                    options: driver_opts.iter().cloned().collect(),
                    anonymous: m.anonymous,
                };
                self.volumes.create(Some(name), opts)?;
            }
        }
        let names = Self::volume_names(c);
        if !names.is_empty() {
            self.volumes.add_refs(&names, &c.id)?;
        }
        Ok(())
    }

    /// Drops this container's references to its volumes and, when `anonymous_too`, removes the anonymous
    /// volumes it owns that nobody else uses. Errors are logged: this runs on cleanup paths.
    fn forget_volumes(&self, c: &Container, anonymous_too: bool) {
        let names = Self::volume_names(c);
        if names.is_empty() {
            return;
        }
        if let Err(e) = self.volumes.remove_refs(&names, &c.id) {
            tracing::debug!(container = %c.id, error = %e, "remove_refs");
        }
        if !anonymous_too {
            return;
        }
        for m in &c.mounts {
            if let MountSpec::Volume { name: Some(name), .. } = &m.spec
                && m.anonymous
                && let Err(e) = self.volumes.remove(name, true)
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
        let marker = self.root.join("volume-refs.boot");
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
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
        match self.volumes.set_refs(&refs) {
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
        Ok(self.volumes.prune(all, filters)?)
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
        Ok(self.volumes.list(filters)?)
    }

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
        let lock = self.lock()?;
        let first = self.container(reference)?;
        drop(lock);
        let mut killed = false;
        loop {
            let lock = self.lock()?;
            let c = match self.container(&first.id) {
                Ok(c) => c,
                // Killed below, then removed by its own runner (`run --rm`): what was asked is done.
                Err(Error::NoSuchContainer(_)) if killed => return Ok(first),
                Err(e) => return Err(e),
            };
            if !self.is_running(&c.id) {
                self.remove_locked(&c, force, volumes)?;
                return Ok(c);
            }
            if !force {
                return Err(Error::Running(c.name.clone()));
            }
            if let Some(pid) = c.state.pid {
                tracing::info!(pid, container = %c.name, "killing running container");
                let _ = nix_kill(pid);
            }
            drop(lock);
            self.wait_stopped(&c.id)?;
            killed = true;
        }
    }

    /// Waits until the runner of container `id` lets go of its `running.lock` (it has recorded the exit,
    /// or died). Never called under the store lock (see [`Mountkit::remove`]).
    fn wait_stopped(&self, id: &str) -> Result<()> {
        match Lock::exclusive(&self.container_dir(id).join("running.lock")) {
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
        if let Some(foreign) = mountkit_safefs::mounts_under_canonical(&canonical)?
            .into_iter()
            .find(|m| *m != own)
        {
            return Err(Error::ForeignMount {
                container: c.name.clone(),
                mount: foreign,
            });
        }
        if mountkit_safefs::is_mount_point(&merged) {
            if !force {
                return Err(Error::Mounted(c.name.clone(), merged));
            }
            mountkit_overlay::unmount(&merged)?;
        }
        // Unmounted or not, remove_tree checks mountinfo again and never crosses a mount.
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
        remove_tree(&trash)?;
        self.release_name(&c.name, &c.id);
        self.forget_volumes(c, volumes);
        tracing::info!(id = %c.id, "container removed");
        Ok(())
    }

    /// Removes a volume unless a container references it (the error names the containers); with
    /// `force`, an unknown name is no error. Returns whether a volume was removed.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<bool> {
        let _lock = self.lock()?;
        self.check_volume_refs();
        match self.volumes.remove(name, force) {
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

    /// Removes what `reference` names (see `mountkit_layer_store`'s resolution rule) and returns the
    /// removed records. A name removes that name: the image and its containers keep working while it
    /// has another. An ID (or prefix) of an image with several names is refused unless `force`, which
    /// removes every name (as `docker rmi -f ID`). Removing the last name of an image that a container
    /// uses is refused, `force` or not.
    pub fn remove_image(&self, reference: &str, force: bool) -> Result<Vec<ImageInfo>> {
        let _lock = self.lock()?;
        let named = self.layers.image_records(reference)?;
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
        let remaining = self.layers.image_records(&id)?.len() - named.len();
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
        Ok(self.layers.remove_image(reference)?)
    }

    /// Mounts the container's rootfs in the *host's* mount namespace at `containers/<id>/merged` and
    /// returns that path (`container mount`, for inspection or copying from a script).
    pub fn mount(&self, reference: &str) -> Result<PathBuf> {
        let _lock = self.lock()?;
        let c = self.container(reference)?;
        let merged = self.container_dir(&c.id).join("merged");
        if !mountkit_safefs::is_mount_point(&merged) {
            let image = self.layers.image(&c.image)?;
            let stack = self.stack(&c, &image);
            mountkit_overlay::mount(&stack, &merged, Self::overlay_method())?;
        }
        Ok(merged)
    }

    /// Undoes [`Mountkit::mount`]. Unmounting a container that is not mounted is not an error.
    pub fn unmount(&self, reference: &str) -> Result<()> {
        let _lock = self.lock()?;
        let c = self.container(reference)?;
        let merged = self.container_dir(&c.id).join("merged");
        if mountkit_safefs::is_mount_point(&merged) {
            mountkit_overlay::unmount(&merged)?;
        }
        Ok(())
    }

    /// The overlay mount method: `Auto` unless `MOUNTKIT_OVERLAY_METHOD` says `new-api` or `classic` (a
    /// knob for tests and for working around a kernel bug; `mountkit system info` shows what is detected).
    pub(crate) fn overlay_method() -> mountkit_overlay::Method {
        match std::env::var("MOUNTKIT_OVERLAY_METHOD").as_deref() {
            Ok("new-api") => mountkit_overlay::Method::NewApi,
            Ok("classic") => mountkit_overlay::Method::Classic,
            _ => mountkit_overlay::Method::Auto,
        }
    }

    pub(crate) fn stack(&self, c: &Container, image: &ImageInfo) -> mountkit_overlay::Stack {
        self.stack_at(&self.container_dir(&c.id), image)
    }

    /// The overlay stack of a container whose directory is `dir` (a pending one's is in `staging/`).
    pub(crate) fn stack_at(&self, dir: &Path, image: &ImageInfo) -> mountkit_overlay::Stack {
        mountkit_overlay::Stack::new()
            .lowers(image.layers.iter().map(|l| self.layers.layer_path(l)))
            .upper(dir.join("upper"), dir.join("work"))
    }
}

fn nix_kill(pid: i32) -> nix::Result<()> {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
}

fn taken(out: &[MountRecord], target: &Path) -> bool {
    out.iter().any(|m| m.spec.target() == target)
}

/// The process configuration from the image's config and the flags (Docker's rules; see the crate docs).
fn resolve_config(image: &ImageInfo, opts: &CreateOptions, id: &str) -> Result<ContainerConfig> {
    let cfg = &image.config;
    let entrypoint: Vec<String> = match &opts.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => cfg.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !opts.cmd.is_empty() {
        opts.cmd.clone()
    } else if opts.entrypoint.is_some() {
        Vec::new() // Docker: --entrypoint resets the image's cmd.
    } else {
        cfg.cmd.clone().unwrap_or_default()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::NoCommand(opts.image.clone()));
    }
    let env = merge_env(&cfg.env, &opts.env)?;
    let workdir = opts
        .workdir
        .clone()
        .or(cfg.workdir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or("/".into());
    if !workdir.starts_with('/') {
        return Err(Error::InvalidArgument {
            what: "working directory",
            value: workdir,
            reason: "must be an absolute path".into(),
        });
    }
    Ok(ContainerConfig {
        args,
        env,
        workdir,
        user: opts.user.clone().or(cfg.user.clone()).filter(|u| !u.is_empty()),
        hostname: opts.hostname.clone().unwrap_or_else(|| id[..12].to_string()),
        readonly_root: opts.read_only,
    })
}

/// The image's environment overridden key by key by `-e` values; `-e KEY` copies KEY from the caller's
/// environment (and is dropped when the caller has none, as Docker does); PATH defaults to Docker's.
pub(crate) fn merge_env(image: &[String], flags: &[String]) -> Result<Vec<String>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| {
        if let Some(e) = env.iter_mut().find(|(ek, _)| ek == k) {
            e.1 = v;
        } else {
            env.push((k.to_string(), v));
        }
    };
    for kv in image {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k, v.to_string());
    }
    for kv in flags {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv.as_str(), std::env::var(kv).ok()),
        };
        if k.is_empty() {
            return Err(Error::InvalidArgument {
                what: "environment variable",
                value: kv.clone(),
                reason: "the name is empty".into(),
            });
        }
        if let Some(v) = v {
            set(k, v);
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// Writes `c`'s record into its directory `dir`, atomically; durably (fsync) unless it is a `--rm`
/// container, whose state nobody needs after a crash.
fn write_record(dir: &Path, c: &Container) -> Result<()> {
    let path = dir.join("container.json");
    let data = serde_json::to_vec_pretty(c).expect("container serializes");
    if c.auto_remove {
        write_atomic_nosync(&path, &data)?
    } else {
        write_atomic(&path, &data)?
    }
    Ok(())
}

/// Creates the staging directory `stage` (a fresh name), and `staging/` above it only when missing: one
/// `mkdir` on the path of every `run`.
fn create_staged_dir(stage: &Path) -> Result<()> {
    match std::fs::create_dir(stage) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(stage).map_err(|e| Error::io("create", stage, e))
        }
        other => other.map_err(|e| Error::io("create", stage, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merges_by_key_and_defaults_path() {
        let e = merge_env(&["A=1".into(), "B=2".into()], &["B=3".into(), "C=".into()]).unwrap();
        assert_eq!(
            e,
            vec![
                format!("PATH={DEFAULT_PATH}"),
                "A=1".into(),
                "B=3".into(),
                "C=".into()
            ]
        );
        let e = merge_env(&["PATH=/x".into()], &[]).unwrap();
        assert_eq!(e, vec!["PATH=/x".to_string()]);
        assert!(merge_env(&[], &["=v".into()]).is_err());
    }

    #[test]
    fn env_key_alone_copies_from_the_caller_or_is_dropped() {
        // SAFETY: this test owns the variable name; tests run one per process under nextest.
        unsafe { std::env::set_var("MOUNTKIT_TEST_COPY_ME", "yes") };
        let e = merge_env(
            &[],
            &["MOUNTKIT_TEST_COPY_ME".into(), "MOUNTKIT_TEST_UNSET_XYZ".into()],
        )
        .unwrap();
        assert!(e.contains(&"MOUNTKIT_TEST_COPY_ME=yes".to_string()));
        assert!(!e.iter().any(|kv| kv.starts_with("MOUNTKIT_TEST_UNSET_XYZ")));
    }
}
