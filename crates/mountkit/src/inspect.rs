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
        Ok(ContainerInspect { container, mounts })
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
