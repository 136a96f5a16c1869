//! `--mount`: comma-separated `key=value` fields, read first, then checked as the Docker CLI checks
//! them, then as the daemon does.

use std::path::{Path, PathBuf};

use super::common::{absolutize_dot, parse_octal_mode, validate_target, volume_name};
use super::csv::csv_record;
use crate::spec::{BindRecursive, MountSpec, Propagation, TmpfsOptions, TmpfsSize, clean_path};
use crate::{Error, Result};

/// Parses a `--mount` value, with `.` sources made absolute against `cwd` (see `parse_mount_flag`).
pub(super) fn parse_mount_in(raw: &str, cwd: Option<&Path>) -> Result<MountSpec> {
    let mut fields = Fields::default();
    for field in &csv_record(raw)? {
        fields.read(field, cwd)?;
    }
    fields.check_cli(raw)?;
    fields.into_spec()
}

/// The `bind-*` options.
#[derive(Default)]
struct BindOpts {
    propagation: Option<String>,
    nonrecursive: bool,
    ro_nonrecursive: bool,
    ro_force: bool,
}

/// The `volume-*` options.
#[derive(Default)]
struct VolumeOpts {
    nocopy: bool,
    driver_opts: Vec<(String, String)>,
    subpath: Option<String>,
}

/// The `tmpfs-*` options.
#[derive(Default)]
struct TmpfsOpts {
    size: Option<u64>,
    mode: Option<u32>,
}

/// What the fields of one `--mount` value say, before any check; an option group is `Some` once
/// one of its keys was given.
struct Fields {
    kind: String,
    source: String,
    target: String,
    readonly: bool,
    bind: Option<BindOpts>,
    volume: Option<VolumeOpts>,
    tmpfs: Option<TmpfsOpts>,
}

impl Default for Fields {
    /// No field given yet: a volume, as Docker's default `type`.
    fn default() -> Self {
        Fields {
            kind: "volume".to_string(),
            source: String::new(),
            target: String::new(),
            readonly: false,
            bind: None,
            volume: None,
            tmpfs: None,
        }
    }
}

impl Fields {
    /// Takes in one field: `key=value`, or a key alone for the boolean options that allow it.
    fn read(&mut self, field: &str, cwd: Option<&Path>) -> Result<()> {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let Some(val) = value else {
            match key.as_str() {
                "readonly" | "ro" => self.readonly = true,
                "volume-nocopy" => self.volume.get_or_insert_default().nocopy = true,
                "bind-nonrecursive" => self.bind.get_or_insert_default().nonrecursive = true,
                _ => return Err(Error::NotKeyValue(field.to_string())),
            }
            return Ok(());
        };
        let invalid_value = || Error::InvalidValue {
            key: key.clone(),
            value: val.to_string(),
        };
        match key.as_str() {
            "type" => self.kind = val.to_lowercase(),
            "source" | "src" => self.source = absolutize_dot(val, cwd),
            "target" | "dst" | "destination" => self.target = val.to_string(),
            "readonly" | "ro" => self.readonly = parse_bool(val).ok_or_else(invalid_value)?,
            "consistency" => {} // macOS-only in Docker; nothing to do on Linux.
            _ => {
                let known = self.read_bind_option(&key, val, &invalid_value)?
                    || self.read_volume_option(&key, val, field, &invalid_value)?
                    || self.read_tmpfs_option(&key, val, &invalid_value)?;
                if !known {
                    return Err(Error::UnexpectedKey {
                        key,
                        field: field.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Takes in a `bind-*` key with its value; false when `key` is not one.
    fn read_bind_option(&mut self, key: &str, val: &str, invalid: &dyn Fn() -> Error) -> Result<bool> {
        match key {
            "bind-propagation" => self.bind.get_or_insert_default().propagation = Some(val.to_lowercase()),
            "bind-nonrecursive" => {
                self.bind.get_or_insert_default().nonrecursive = parse_bool(val).ok_or_else(invalid)?
            }
            "bind-recursive" => match val {
                "enabled" => {}
                "disabled" => self.bind.get_or_insert_default().nonrecursive = true,
                "writable" => self.bind.get_or_insert_default().ro_nonrecursive = true,
                "readonly" => self.bind.get_or_insert_default().ro_force = true,
                _ => return Err(Error::InvalidBindRecursive(val.to_string())),
            },
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Takes in a `volume-*` key with its value (`field` is the whole field, for messages); false
    /// when `key` is not one.
    fn read_volume_option(
        &mut self,
        key: &str,
        val: &str,
        field: &str,
        invalid: &dyn Fn() -> Error,
    ) -> Result<bool> {
        let unsupported = |why| Error::Unsupported {
            field: field.to_string(),
            why,
        };
        match key {
            "volume-nocopy" => {
                self.volume.get_or_insert_default().nocopy = parse_bool(val).ok_or_else(invalid)?
            }
            "volume-label" => {
                return Err(unsupported(
                    "label the volume with `mountkit volume create --label` instead",
                ));
            }
            "volume-opt" => set_kv(&mut self.volume.get_or_insert_default().driver_opts, val),
            "volume-driver" => {
                self.volume.get_or_insert_default();
                if val != "local" {
                    return Err(unsupported("mountkit has only the \"local\" volume driver"));
                }
            }
            "volume-subpath" => self.volume.get_or_insert_default().subpath = Some(val.to_string()),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Takes in a `tmpfs-*` key with its value; false when `key` is not one.
    fn read_tmpfs_option(&mut self, key: &str, val: &str, invalid: &dyn Fn() -> Error) -> Result<bool> {
        match key {
            "tmpfs-size" => {
                self.tmpfs.get_or_insert_default().size = Some(ram_in_bytes(val).ok_or_else(invalid)?)
            }
            "tmpfs-mode" => {
                self.tmpfs.get_or_insert_default().mode = Some(parse_octal_mode(val).ok_or_else(invalid)?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The Docker CLI's checks: a type and a target, options only of the type's own group, and
    /// the `bind-recursive` modes that need `readonly` (and `rprivate`).
    fn check_cli(&self, raw: &str) -> Result<()> {
        if self.kind.is_empty() {
            return Err(Error::TypeRequired(raw.to_string()));
        }
        if self.target.is_empty() {
            return Err(Error::TargetRequired(raw.to_string()));
        }
        for (present, prefix, own) in [
            (self.volume.is_some(), "volume", "volume"),
            (self.bind.is_some(), "bind", "bind"),
            (self.tmpfs.is_some(), "tmpfs", "tmpfs"),
        ] {
            if present && self.kind != own {
                return Err(Error::MixedOptions {
                    prefix,
                    kind: self.kind.clone(),
                });
            }
        }
        if let Some(b) = &self.bind {
            if b.ro_nonrecursive && !self.readonly {
                return Err(Error::RecursiveNeedsReadonly("writable"));
            }
            if b.ro_force {
                if !self.readonly {
                    return Err(Error::RecursiveNeedsReadonly("readonly"));
                }
                let p = b.propagation.as_deref().unwrap_or("");
                if p != "rprivate" {
                    return Err(Error::RecursiveReadonlyNeedsRprivate(p.to_string()));
                }
            }
        }
        Ok(())
    }

    /// The daemon's checks, and the spec: the target first, then what the type needs.
    fn into_spec(self) -> Result<MountSpec> {
        let target = validate_target(&self.kind, &self.target)?;
        match self.kind.as_str() {
            "bind" => self.into_bind(target),
            "volume" => self.into_volume(target),
            "tmpfs" => self.into_tmpfs(target),
            _ => Err(Error::UnknownType(self.kind)),
        }
    }

    /// A bind: an absolute source, a known propagation.
    fn into_bind(self, target: PathBuf) -> Result<MountSpec> {
        let (kind, source) = (self.kind, self.source);
        if source.is_empty() {
            return Err(Error::MissingField {
                kind,
                field: "Source",
            });
        }
        let b = self.bind.unwrap_or_default();
        let propagation = match &b.propagation {
            None => Propagation::default(),
            Some(p) => Propagation::from_name(p).ok_or_else(|| Error::InvalidPropagation {
                kind: kind.clone(),
                value: p.clone(),
            })?,
        };
        if !source.starts_with('/') {
            return Err(Error::NotAbsolute { kind, path: source });
        }
        let recursive = if b.nonrecursive {
            BindRecursive::Disabled
        } else if b.ro_force {
            BindRecursive::Readonly
        } else if b.ro_nonrecursive {
            BindRecursive::Writable
        } else {
            BindRecursive::Enabled
        };
        Ok(MountSpec::Bind {
            source: clean_path(Path::new(&source)),
            target,
            readonly: self.readonly,
            propagation,
            recursive,
            create_source: false,
        })
    }

    /// A volume: named (a valid name) or anonymous (then not read-only).
    fn into_volume(self, target: PathBuf) -> Result<MountSpec> {
        let v = self.volume.unwrap_or_default();
        let name = volume_name(self.source, self.readonly)?;
        let subpath = match v.subpath {
            None => None,
            Some(s) => Some(check_subpath(&s, name.is_some())?),
        };
        Ok(MountSpec::Volume {
            name,
            target,
            readonly: self.readonly,
            nocopy: v.nocopy,
            driver_opts: v.driver_opts,
            subpath,
        })
    }

    /// A tmpfs: no source; a size or mode of 0 is left out, as Docker does.
    fn into_tmpfs(self, target: PathBuf) -> Result<MountSpec> {
        if !self.source.is_empty() {
            return Err(Error::ExtraField {
                kind: self.kind,
                field: "Source",
            });
        }
        let t = self.tmpfs.unwrap_or_default();
        let options = TmpfsOptions {
            readonly: self.readonly,
            size: t.size.filter(|&s| s != 0).map(TmpfsSize::Bytes),
            mode: t.mode.filter(|&m| m != 0),
            ..TmpfsOptions::default()
        };
        Ok(MountSpec::Tmpfs { target, options })
    }
}

/// `k=v` into an ordered map (Docker's `setValueOnMap`: empty keys ignored, last value wins).
fn set_kv(map: &mut Vec<(String, String)>, kv: &str) {
    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
    if k.is_empty() {
        return;
    }
    match map.iter_mut().find(|(key, _)| key == k) {
        Some(entry) => entry.1 = v.to_string(),
        None => map.push((k.to_string(), v.to_string())),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units `RAMInBytes`: a decimal number, an optional space, and an optional binary unit
/// `b`, `k`, `m`, `g`, `t`, `p` optionally followed by `b` or `ib` (case-insensitive).
pub(super) fn ram_in_bytes(s: &str) -> Option<u64> {
    let split = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')?;
    let (num, suffix) = if s.as_bytes()[split] == b' ' {
        (&s[..split], &s[split + 1..])
    } else {
        (&s[..=split], &s[split + 1..])
    };
    if num.is_empty()
        || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || num.matches('.').count() > 1
        || !num.bytes().any(|b| b.is_ascii_digit())
    {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let suffix = suffix.to_ascii_lowercase();
    let shift = match suffix.as_str() {
        "" | "b" => 0,
        _ => {
            let shift = match suffix.as_bytes()[0] {
                b'k' => 10,
                b'm' => 20,
                b'g' => 30,
                b't' => 40,
                b'p' => 50,
                _ => return None,
            };
            if !matches!(&suffix[1..], "" | "b" | "ib") {
                return None;
            }
            shift
        }
    };
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return None;
    }
    Some(bytes as u64)
}

/// A `volume-subpath`: relative, not empty, without a `..` component (Docker: "subpath must be a
/// relative path within the volume"); `.` components and repeated slashes are dropped. Whether it
/// exists, and whether symlinks in it stay inside the volume, is checked at start.
fn check_subpath(s: &str, named: bool) -> Result<PathBuf> {
    let invalid = |reason: &'static str| Error::InvalidSubpath {
        subpath: s.to_string(),
        reason,
    };
    let p = Path::new(s);
    if s.is_empty() || p.is_absolute() || p.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(invalid("subpath must be a relative path within the volume"));
    }
    if !named {
        return Err(invalid("an anonymous volume is new and empty: it has no subpath"));
    }
    let clean: PathBuf = p
        .components()
        .filter(|c| *c != std::path::Component::CurDir)
        .collect();
    if clean.as_os_str().is_empty() {
        return Err(invalid("subpath must be a relative path within the volume"));
    }
    Ok(clean)
}
