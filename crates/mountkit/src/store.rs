//! The store: one root directory holding layers, images, volumes and containers; its locks, its staging
//! area and the paths of a container's directory. What is done with it is split by concern: records
//! (`records.rs`), names (`names.rs`), creation (`create.rs`), starting (`run.rs`), removal (`remove.rs`),
//! volume bookkeeping (`volumes.rs`), host mounts of a rootfs (`mount.rs`).

use std::path::{Path, PathBuf};

use mountkit_layer_store::Store as LayerStore;
use mountkit_safefs::{Lock, remove_tree};
use mountkit_volumes::Registry;

use crate::{Error, Result};

/// Docker's default `PATH`, used when neither the image nor `-e` sets one (defined once, in ns-runner).
pub use mountkit_ns_runner::DEFAULT_PATH;

/// A mountkit store: the entry point of the library.
///
/// Every method that changes state takes the store's lock (`<root>/lock`), so concurrent `mountkit`
/// processes are safe; a running container holds its own lock (`containers/<id>/running.lock`) for as long
/// as its runner lives, which is how `ls` tells a running container from one whose runner was killed.
/// The order of the two is in ARCHITECTURE.md ("Locks").
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
    /// Opens (creating if needed) the store at `root` and sweeps staging left by processes that are gone.
    /// Volume driver mounts left by dead runners are undone by [`Mountkit::reconcile`].
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
    ///
    /// A volume's user is alive while it runs: a container whose runner holds its `running.lock`, a
    /// pending `run --rm` container (in `staging/`, not yet committed: its start may be waiting for
    /// the store lock after a driver mount) whose runner holds its lock there, or a mountkit command
    /// that attached the volume for itself ([`process_user`]).
    pub fn reconcile(&self) -> Result<()> {
        let is_alive = |id: &str| self.is_running(id) || self.pending_runs(id) || process_user_alive(id);
        self.volumes.reconcile(&is_alive)?;
        Ok(())
    }

    /// Whether `id` is a pending container (`staging/container-<pid>-<id>`) whose runner holds its
    /// `running.lock`.
    fn pending_runs(&self, id: &str) -> bool {
        let suffix = format!("-{id}");
        let Ok(entries) = std::fs::read_dir(self.root.join("staging")) else {
            return false;
        };
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("container-")
                && name.ends_with(&suffix)
                && matches!(
                    mountkit_safefs::Lock::try_shared(&e.path().join("running.lock")),
                    Ok(None)
                )
        })
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
}

/// Creates the staging directory `stage` (a fresh name), and `staging/` above it only when missing: one
/// `mkdir` on the path of every `run`.
pub(crate) fn create_staged_dir(stage: &Path) -> Result<()> {
    match std::fs::create_dir(stage) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(stage).map_err(|e| Error::io("create", stage, e))
        }
        other => other.map_err(|e| Error::io("create", stage, e)),
    }
}

/// The volume user that stands for this process itself rather than a container (`volume export` or
/// `clone` attaching a driver volume for their own time): `pid-<PID>-<start time>`, alive while this
/// process runs; a PID reused later has another start time.
pub(crate) fn process_user() -> String {
    let pid = std::process::id();
    format!("pid-{pid}-{}", start_time(pid).unwrap_or_default())
}

/// Whether `user` is a [`process_user`] whose process still runs.
fn process_user_alive(user: &str) -> bool {
    let Some((pid, start)) = user.strip_prefix("pid-").and_then(|r| r.split_once('-')) else {
        return false;
    };
    pid.parse().ok().and_then(start_time).is_some_and(|s| s == start)
}

/// Process `pid`'s start time (field 22 of `/proc/PID/stat`, in clock ticks since boot).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's name (which may hold spaces and parentheses): field 3 onwards.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19).map(str::to_string)
}

#[cfg(test)]
mod process_user_tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_others_are_not() {
        let me = process_user();
        assert!(me.starts_with(&format!("pid-{}-", std::process::id())), "{me}");
        assert!(process_user_alive(&me));
        let (prefix, start) = me.rsplit_once('-').unwrap();
        let start: u64 = start.parse().unwrap();
        // The same PID with another start time: a later process under a reused PID.
        assert!(!process_user_alive(&format!("{prefix}-{}", start + 1)));
        assert!(!process_user_alive("pid-999999999-1"));
        // A container ID is not a process user.
        assert!(!process_user_alive(&"ab".repeat(32)));
    }
}
