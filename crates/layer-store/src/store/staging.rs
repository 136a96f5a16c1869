//! Staging directories under `<root>/tmp/`, each owned through an flock on its lock file, and the
//! sweep of those whose owner is gone.

use std::path::PathBuf;

use mountkit_safefs::{Lock, random_hex, remove_tree};

use super::Store;
use crate::error::{Error, Result};

/// A staging directory under `<root>/tmp/`, owned by this process through an flock on its lock
/// file; removed on drop unless committed.
pub(super) struct Staging {
    /// The directory (`tmp/<name>`).
    pub(super) dir: PathBuf,
    /// Its lock file (`tmp/<name>.lock`).
    lock_path: PathBuf,
    /// The flock that makes it ours.
    lock: Option<Lock>,
    /// Committed or discarded: nothing is left to remove on drop.
    pub(super) done: bool,
}

impl Staging {
    /// The layer tree being staged (`diff/`).
    pub(super) fn tree(&self) -> PathBuf {
        self.dir.join("diff")
    }

    /// Removes the staging directory and its lock file now.
    pub(super) fn discard(mut self) -> Result<()> {
        self.done = true;
        let r = remove_tree(&self.dir);
        if r.is_ok() {
            let _ = std::fs::remove_file(&self.lock_path);
        }
        self.lock = None;
        Ok(r?)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = remove_tree(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove staging directory; the next start sweeps it");
                return;
            }
        }
        if !self.dir.exists() {
            let _ = std::fs::remove_file(&self.lock_path);
        }
    }
}

impl Store {
    /// Removes staging left by dead processes: every `tmp/<name>` whose `tmp/<name>.lock` nobody holds.
    pub(super) fn sweep(&self) -> Result<()> {
        let tmp = self.tmp();
        // Nothing staged (the common case): nothing to sweep, and no lock to take. Staging made after
        // this look belongs to a live process anyway.
        let empty = std::fs::read_dir(&tmp)
            .map_err(|e| Error::io("read directory", &tmp, e))?
            .next()
            .is_none();
        if empty {
            return Ok(());
        }
        let _g = Lock::exclusive(&self.root.join("tmp.lock"))?;
        let rd = std::fs::read_dir(&tmp).map_err(|e| Error::io("read directory", &tmp, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("read directory", &tmp, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let base = name.strip_suffix(".lock").unwrap_or(&name).to_string();
            let lock_path = tmp.join(format!("{base}.lock"));
            let Some(held) = Lock::try_exclusive(&lock_path)? else {
                continue;
            };
            let dir = tmp.join(&base);
            tracing::debug!(dir = %dir.display(), "sweeping stale staging");
            match remove_tree(&dir) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&lock_path);
                }
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot sweep stale staging"),
            }
            drop(held);
        }
        Ok(())
    }

    /// Makes a staging directory (`mkdir` = true) or reserves a staging name (for a rename into it).
    pub(super) fn staging(&self, mkdir: bool) -> Result<Staging> {
        let _g = Lock::shared(&self.root.join("tmp.lock"))?;
        let name = random_hex(12);
        let lock_path = self.tmp().join(format!("{name}.lock"));
        let lock = Lock::exclusive(&lock_path)?;
        let dir = self.tmp().join(&name);
        let st = Staging {
            dir,
            lock_path,
            lock: Some(lock),
            done: false,
        };
        if mkdir {
            std::fs::create_dir(&st.dir).map_err(|e| Error::io("create staging directory", &st.dir, e))?;
            std::fs::create_dir(st.tree())
                .map_err(|e| Error::io("create staging directory", st.tree(), e))?;
        }
        Ok(st)
    }
}
