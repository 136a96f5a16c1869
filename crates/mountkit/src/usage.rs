//! Who uses a volume: the containers `volume inspect` lists, and `container ls --filter volume=`.
//!
//! Both read the container records, which are durable, rather than the registry's `ref.<id>` entries,
//! which are written without fsync (see the crate docs): a stale reference names no container here, and a
//! container whose volume record has gone is still found by its mounts.

use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use mountkit_binds::MountSpec;
use mountkit_volumes::Volume;

use crate::container::{Container, Status};
use crate::store::Mountkit;
use crate::{Error, Result};

/// A container that references a volume, as `volume inspect` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeUser {
    /// The container's ID (64 hex digits).
    pub id: String,
    /// The container's name.
    pub name: String,
    /// Created, running or exited.
    pub status: Status,
}

/// What `volume inspect` shows: the volume's record and the containers that reference it.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeInspect {
    /// The registry's record (its keys are flattened into this object).
    #[serde(flatten)]
    pub volume: Volume,
    /// The containers that reference the volume, whatever their state, sorted by name.
    pub containers: Vec<VolumeUser>,
    /// The filesystem its data is on in this mount namespace now: its driver's mount while attached
    /// (`nfs4`, `tmpfs`, ...), else the store's (a directory volume's, or a driver volume not in use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<crate::FilesystemInfo>,
}

/// One `container ls --filter KEY=VALUE`.
///
/// Filters with the same key match when any of them does; filters with different keys must all match
/// (Docker's rule). Parsed from `volume=NAME` or `volume=/DESTINATION`:
///
/// ```
/// use mountkit::ContainerFilter;
/// let f: ContainerFilter = "volume=todo-list".parse().unwrap();
/// assert_eq!(f, ContainerFilter::Volume("todo-list".into()));
/// assert!("colour=red".parse::<ContainerFilter>().unwrap_err().to_string().contains("\"colour\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerFilter {
    /// `volume=V`: the container mounts the volume named V, or has a volume or bind mount whose
    /// destination inside the container is V.
    Volume(String),
    /// `status=created|running|exited` (Docker's other states never occur here: no pause, no daemon).
    /// A status filter lists stopped containers without `-a`, as `docker ps` does.
    Status(Status),
    /// `name=TEXT`: the container's name contains TEXT.
    Name(String),
}

impl FromStr for ContainerFilter {
    type Err = Error;

    fn from_str(s: &str) -> Result<ContainerFilter> {
        let bad = |reason: String| Error::InvalidArgument {
            what: "filter",
            value: s.to_string(),
            reason,
        };
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE".into()))?;
        if value.is_empty() {
            return Err(bad("the value is empty".into()));
        }
        match key {
            "volume" => Ok(ContainerFilter::Volume(value.to_string())),
            "name" => Ok(ContainerFilter::Name(value.to_string())),
            "status" => match value {
                "created" => Ok(ContainerFilter::Status(Status::Created)),
                "running" => Ok(ContainerFilter::Status(Status::Running)),
                "exited" => Ok(ContainerFilter::Status(Status::Exited)),
                _ => Err(bad(format!(
                    "unknown status {value:?}; known: created, running, exited"
                ))),
            },
            _ => Err(bad(format!(
                "unknown filter key {key:?}; known: volume, status, name"
            ))),
        }
    }
}

impl ContainerFilter {
    /// The filter's key, for grouping (same key: any; different keys: all).
    fn key(&self) -> &'static str {
        match self {
            ContainerFilter::Volume(_) => "volume",
            ContainerFilter::Status(_) => "status",
            ContainerFilter::Name(_) => "name",
        }
    }

    /// Whether `c` passes this one filter.
    pub fn matches(&self, c: &Container) -> bool {
        match self {
            ContainerFilter::Volume(v) => c.mounts.iter().any(|m| match &m.spec {
                MountSpec::Volume { name, target, .. } => {
                    name.as_deref() == Some(v.as_str()) || target == Path::new(v)
                }
                MountSpec::Bind { target, .. } => target == Path::new(v),
                MountSpec::Tmpfs { .. } => false,
            }),
            ContainerFilter::Status(st) => c.state.status == *st,
            ContainerFilter::Name(n) => c.name.contains(n.as_str()),
        }
    }

    /// Whether `c` passes `filters` (it does when there are none): for each key given, at least one of
    /// its filters matches.
    pub fn matches_all(filters: &[ContainerFilter], c: &Container) -> bool {
        filters
            .iter()
            .all(|f| filters.iter().any(|g| g.key() == f.key() && g.matches(c)))
    }
}

/// The containers among `containers` that reference the volume `volume`, sorted by name.
pub fn volume_users(volume: &str, containers: &[Container]) -> Vec<VolumeUser> {
    let mut users: Vec<VolumeUser> = containers
        .iter()
        .filter(|c| Mountkit::volume_names(c).contains(&volume))
        .map(|c| VolumeUser {
            id: c.id.clone(),
            name: c.name.clone(),
            status: c.state.status,
        })
        .collect();
    users.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    users
}

impl Mountkit {
    /// `volume inspect`: each volume named in `names`, in order, with the containers that reference it
    /// (read from the container records once for all of them). Fails on the first unknown volume.
    pub fn inspect_volumes<S: AsRef<str>>(&self, names: &[S]) -> Result<Vec<VolumeInspect>> {
        let volumes = names
            .iter()
            .map(|n| self.volumes().get(n.as_ref()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let containers = if volumes.is_empty() {
            Vec::new()
        } else {
            self.containers()?
        };
        Ok(volumes
            .into_iter()
            .map(|volume| VolumeInspect {
                containers: volume_users(&volume.name, &containers),
                filesystem: crate::fs_type::filesystem_of(&volume.mountpoint),
                volume,
            })
            .collect())
    }

    /// `container ls`: the containers that pass `filters`, oldest first; only running ones unless `all`.
    pub fn list_containers(&self, all: bool, filters: &[ContainerFilter]) -> Result<Vec<Container>> {
        let mut cs = self.containers()?;
        let all = all || filters.iter().any(|f| matches!(f, ContainerFilter::Status(_)));
        cs.retain(|c| (all || c.state.status == Status::Running) && ContainerFilter::matches_all(filters, c));
        Ok(cs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{ContainerConfig, MountRecord, State};
    use std::path::PathBuf;

    fn volume(name: &str, target: &str) -> MountRecord {
        MountRecord {
            spec: MountSpec::Volume {
                name: Some(name.into()),
                target: target.into(),
                readonly: false,
                nocopy: false,
                driver_opts: Vec::new(),
                subpath: None,
            },
            anonymous: false,
        }
    }

    fn container(id: char, name: &str, status: Status, mounts: Vec<MountRecord>) -> Container {
        let mut state = State::created();
        state.status = status;
        Container {
            id: id.to_string().repeat(64),
            name: name.into(),
            image: "sha256:0".into(),
            image_name: None,
            created: "2024-01-01T00:00:00Z".into(),
            config: ContainerConfig {
                args: vec!["true".into()],
                env: Vec::new(),
                workdir: "/".into(),
                user: None,
                hostname: "h".into(),
                readonly_root: false,
                capabilities: Vec::new(),
                privileged: false,
                no_new_privileges: false,
                network: Default::default(),
                seccomp: Default::default(),
                tty: false,
                open_stdin: false,
                stop_signal: None,
                stop_timeout: None,
                restart: Default::default(),
                init: false,
                log: Default::default(),
            },
            mounts,
            state,
            auto_remove: false,
        }
    }

    #[test]
    fn filters_parse_volume_and_refuse_the_rest() {
        assert_eq!(
            "volume=data".parse::<ContainerFilter>().unwrap(),
            ContainerFilter::Volume("data".into())
        );
        assert_eq!(
            "volume=/srv/a=b".parse::<ContainerFilter>().unwrap(),
            ContainerFilter::Volume("/srv/a=b".into()),
            "only the first = splits"
        );
        for (bad, needle) in [
            ("volume", "KEY=VALUE"),
            ("volume=", "empty"),
            ("colour=red", "\"colour\""),
            ("=x", "\"\""),
            ("Volume=x", "\"Volume\""),
        ] {
            let e = bad.parse::<ContainerFilter>().unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn volume_filter_matches_name_or_destination() {
        let bind = MountRecord {
            spec: MountSpec::Bind {
                source: PathBuf::from("/srv"),
                target: "/srv".into(),
                readonly: false,
                propagation: Default::default(),
                recursive: Default::default(),
                create_source: false,
            },
            anonymous: false,
        };
        let c = container('a', "a", Status::Created, vec![volume("data", "/data"), bind]);
        let f = |v: &str| ContainerFilter::Volume(v.into());
        assert!(f("data").matches(&c));
        assert!(f("/data").matches(&c));
        assert!(f("/data/").matches(&c), "paths compare by component");
        assert!(f("/srv").matches(&c), "a bind by its destination");
        assert!(!f("srv").matches(&c), "a bind has no volume name");
        assert!(!f("dat").matches(&c), "names match whole");
        assert!(!f("/other").matches(&c));
        assert!(ContainerFilter::matches_all(&[], &c));
        assert!(
            ContainerFilter::matches_all(&[f("nope"), f("data")], &c),
            "same key: any"
        );
        assert!(!ContainerFilter::matches_all(&[f("nope"), f("/nope")], &c));
    }

    #[test]
    fn users_are_the_referencing_containers_sorted_by_name() {
        let cs = vec![
            container('b', "zeta", Status::Exited, vec![volume("data", "/data")]),
            container('c', "other", Status::Running, vec![volume("else", "/data")]),
            container(
                'a',
                "alpha",
                Status::Running,
                vec![volume("x", "/x"), volume("data", "/d")],
            ),
        ];
        let users = volume_users("data", &cs);
        let got: Vec<(&str, Status)> = users.iter().map(|u| (u.name.as_str(), u.status)).collect();
        assert_eq!(got, [("alpha", Status::Running), ("zeta", Status::Exited)]);
        assert_eq!(users[0].id, "a".repeat(64));
        assert!(volume_users("none", &cs).is_empty());
        assert_eq!(
            serde_json::to_value(&users[1]).unwrap(),
            serde_json::json!({"id": "b".repeat(64), "name": "zeta", "status": "exited"})
        );
    }
}
