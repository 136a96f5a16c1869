//! Container records: `containers/<id>/container.json`, read, written and looked up by reference.

use std::path::Path;

use mountkit_safefs::{Lock, write_atomic, write_atomic_nosync};

use crate::container::{Container, Status};
use crate::{Error, Mountkit, Result};

impl Mountkit {
    /// Whether container `id`'s runner (the attached `run`/`start`, or a detached container's monitor)
    /// holds its `running.lock`. The runner holds it exclusive; whoever waits for a run's end (`wait`,
    /// `stop`, `rm -f`) takes it shared, for a moment once the runner has let go, and is not taken for
    /// a runner here: a shared lock can be had beside theirs, never beside the runner's.
    pub(crate) fn is_running(&self, id: &str) -> bool {
        matches!(
            Lock::try_shared(&self.container_dir(id).join("running.lock")),
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
            c.state.runner_lost();
        }
        Ok(c)
    }

    pub(crate) fn save(&self, c: &Container) -> Result<()> {
        write_record(&self.container_dir(&c.id), c)
    }

    fn ids(&self) -> Result<Vec<String>> {
        let dir = self.root().join("containers");
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
}

/// Writes `c`'s record into its directory `dir`, atomically; durably (fsync) unless it is a `--rm`
/// container, whose state nobody needs after a crash.
pub(crate) fn write_record(dir: &Path, c: &Container) -> Result<()> {
    let path = dir.join("container.json");
    let data = serde_json::to_vec_pretty(c).expect("container serializes");
    if c.auto_remove {
        write_atomic_nosync(&path, &data)?
    } else {
        write_atomic(&path, &data)?
    }
    Ok(())
}
