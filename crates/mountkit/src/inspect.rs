//! `container inspect`: a container's record plus a Docker-like `Mounts` list, which says where each
//! mount comes from on the host (a volume's directory, a bind's source).

use std::path::PathBuf;

use serde::Serialize;

use mountkit_binds::{MountSpec, Propagation, TmpfsOptions};

use crate::{Container, MountRecord, Mountkit, Result};

/// What `container inspect` shows of one container: its record, and its mounts as Docker shows them.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInspect {
    /// The record (its keys are flattened into this object).
    #[serde(flatten)]
    pub container: Container,
    /// The container's mounts, in the order of its record.
    #[serde(rename = "Mounts")]
    pub mounts: Vec<MountView>,
    /// Its state with Docker's keys (the record's `state`, restated).
    #[serde(rename = "State")]
    pub docker_state: DockerState,
    /// The log a detached container's monitor writes (`container logs` reads it); it exists once the
    /// container was started detached.
    #[serde(rename = "LogPath")]
    pub log_path: PathBuf,
}

/// `State` in `container inspect`, with Docker's keys.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerState {
    /// `created`, `running` or `exited`.
    pub status: crate::Status,
    /// Whether its process runs.
    pub running: bool,
    /// Its process's PID in the host's PID namespace; 0 when it does not run.
    pub pid: i32,
    /// The exit code of its last run; -1 when unknown (its runner or monitor was killed).
    pub exit_code: i32,
    /// Why the last start failed, or why the exit code is unknown; empty otherwise.
    pub error: String,
    /// When the last run started (RFC 3339); empty before the first.
    pub started_at: String,
    /// When the last run ended; empty while it runs or before the first.
    pub finished_at: String,
    /// How many times `--restart` restarted it.
    pub restart_count: u32,
}

/// One entry of `Mounts` in `container inspect`, with Docker's keys. Which keys appear depends on the
/// type: `Name` and `Anonymous` for a volume, `Propagation` for a bind, `Options` for a tmpfs; `Mode` for
/// volumes and binds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MountView {
    /// A volume made for this container alone (an image `VOLUME`, `-v /path`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous: Option<bool>,
    /// The path inside the container.
    pub destination: PathBuf,
    /// `ro` or `rw` (volumes and binds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    /// The volume's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The tmpfs options (their keys in alphabetical order, as `container inspect` has always shown them).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "sorted_keys")]
    pub options: Option<TmpfsOptions>,
    /// A bind's propagation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagation: Option<Propagation>,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
    /// The host path mounted: the volume's directory (empty when the volume is gone), the bind's
    /// source; empty for a tmpfs.
    pub source: String,
    /// `volume`, `bind` or `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: &'static str,
}

impl Mountkit {
    /// The container (a name, an ID or a unique ID prefix) as `container inspect` shows it.
    pub fn inspect_container(&self, reference: &str) -> Result<ContainerInspect> {
        let container = self.container(reference)?;
        let mounts = container.mounts.iter().map(|m| self.mount_view(m)).collect();
        let st = &container.state;
        let running = st.status == crate::Status::Running;
        let docker_state = DockerState {
            status: st.status,
            running,
            pid: if running { st.pid.unwrap_or(0) } else { 0 },
            exit_code: match (st.status, st.exit_code) {
                (crate::Status::Exited, None) => -1,
                (_, code) => code.unwrap_or(0),
            },
            error: st.error.clone().unwrap_or_default(),
            started_at: st.started.clone().unwrap_or_default(),
            finished_at: if running {
                String::new()
            } else {
                st.finished.clone().unwrap_or_default()
            },
            restart_count: st.restart_count,
        };
        let log_path = self.container_dir(&container.id).join(crate::logs::LOG_FILE);
        Ok(ContainerInspect {
            container,
            mounts,
            docker_state,
            log_path,
        })
    }

    /// One mount of a container as `container inspect` shows it.
    pub fn mount_view(&self, m: &MountRecord) -> MountView {
        let mode = |readonly: bool| Some(if readonly { "ro" } else { "rw" });
        let empty = MountView {
            anonymous: None,
            destination: m.spec.target().to_path_buf(),
            mode: None,
            name: None,
            options: None,
            propagation: None,
            rw: true,
            source: String::new(),
            kind: "",
        };
        match &m.spec {
            MountSpec::Volume { name, readonly, .. } => {
                let name = name.clone().unwrap_or_default();
                let source = self
                    .volumes()
                    .get(&name)
                    .map(|v| v.mountpoint.display().to_string())
                    .unwrap_or_default();
                MountView {
                    anonymous: Some(m.anonymous),
                    mode: mode(*readonly),
                    name: Some(name),
                    rw: !readonly,
                    source,
                    kind: "volume",
                    ..empty
                }
            }
            MountSpec::Bind {
                source,
                readonly,
                propagation,
                ..
            } => MountView {
                mode: mode(*readonly),
                propagation: Some(*propagation),
                rw: !readonly,
                source: source.display().to_string(),
                kind: "bind",
                ..empty
            },
            MountSpec::Tmpfs { options, .. } => MountView {
                options: Some(options.clone()),
                kind: "tmpfs",
                ..empty
            },
        }
    }
}

/// Serializes `value` with the keys of its objects sorted (through `serde_json::Value`).
fn sorted_keys<S: serde::Serializer>(
    value: &Option<TmpfsOptions>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    serde_json::to_value(value)
        .map_err(serde::ser::Error::custom)?
        .serialize(s)
}
