//! `-v` / `--volume`: `DST`, `SRC:DST` or `SRC:DST:OPTS`.

use std::path::Path;

use super::common::{absolutize_dot, validate_target, volume_name};
use crate::spec::{BindRecursive, MountSpec, Propagation, clean_path};
use crate::{Error, Result};

/// Parses a `-v` value, with `.` sources made absolute against `cwd` (see `parse_volume_flag`).
pub(super) fn parse_volume_in(raw: &str, cwd: Option<&Path>) -> Result<MountSpec> {
    let (source, target, mode) = split_volume(raw)?;
    let modes = parse_mode(mode)?;
    let source = absolutize_dot(source, cwd);
    let kind = if source.starts_with('/') { "bind" } else { "volume" };
    if target.is_empty() {
        return Err(Error::MissingField {
            kind: kind.into(),
            field: "Target",
        });
    }
    let target = validate_target(kind, target)?;
    if kind == "bind" {
        if modes.nocopy {
            return Err(Error::ExtraField {
                kind: kind.into(),
                field: "VolumeOptions",
            });
        }
        Ok(MountSpec::Bind {
            source: clean_path(Path::new(&source)),
            target,
            readonly: modes.readonly,
            propagation: modes.propagation.unwrap_or_default(),
            recursive: BindRecursive::Enabled,
            create_source: true,
        })
    } else {
        if modes.propagation.is_some() {
            return Err(Error::ExtraField {
                kind: kind.into(),
                field: "BindOptions",
            });
        }
        Ok(MountSpec::Volume {
            name: volume_name(source, modes.readonly)?,
            target,
            readonly: modes.readonly,
            nocopy: modes.nocopy,
            driver_opts: Vec::new(),
            subpath: None,
        })
    }
}

/// Splits a `-v` value into source, target and mode (each possibly empty), refusing what Docker
/// refuses before looking at them: more than two `:`, an empty first part, `DST:MODE`.
fn split_volume(raw: &str) -> Result<(&str, &str, &str)> {
    let invalid = || Error::InvalidVolumeSpec(raw.to_string());
    if raw.matches(':').count() > 2 {
        return Err(invalid());
    }
    let parts: Vec<&str> = raw.splitn(3, ':').collect();
    if parts[0].is_empty() {
        return Err(invalid());
    }
    match parts.as_slice() {
        [target] => Ok(("", *target, "")),
        [source, target] => {
            if parse_mode(target).is_ok() {
                // A destination and a mode (`/foo:ro`) is not a valid volume.
                return Err(invalid());
            }
            Ok((*source, *target, ""))
        }
        [source, target, mode] => Ok((*source, *target, *mode)),
        _ => Err(invalid()),
    }
}

/// What a `-v` mode list asks for.
#[derive(Debug, Default)]
struct Modes {
    readonly: bool,
    propagation: Option<Propagation>,
    nocopy: bool,
}

/// Docker's `-v` mode list: at most one word of each kind.
fn parse_mode(mode: &str) -> Result<Modes> {
    let mut modes = Modes::default();
    if mode.is_empty() {
        return Ok(modes);
    }
    let bad = || Error::InvalidMode(mode.to_string());
    let (mut rw, mut label, mut prop, mut copy, mut consistency) = (0, 0, 0, 0, 0);
    for word in mode.split(',') {
        match word {
            "ro" | "rw" => {
                rw += 1;
                modes.readonly = word == "ro";
            }
            "z" | "Z" => label += 1,
            "nocopy" => {
                copy += 1;
                modes.nocopy = true;
            }
            "consistent" | "cached" | "delegated" => consistency += 1,
            other => match Propagation::from_name(other) {
                Some(p) => {
                    prop += 1;
                    modes.propagation = Some(p);
                }
                None => return Err(bad()),
            },
        }
    }
    if [rw, label, prop, copy, consistency].iter().any(|&n| n > 1) {
        return Err(bad());
    }
    Ok(modes)
}
