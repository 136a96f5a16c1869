//! Size limits (`--opt size=100m`): the size parsed, and the method a volume gets at create: a project
//! quota on its `_data` when the registry's filesystem enforces project quotas (`quota`), else an ext4
//! image file of that size, loop-mounted at `_data` while the volume is in use (`loopdev`). See "Size
//! limits" in docs/volumes.md.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::layout::{DATA, Layout};
use crate::lock::ChangeLock;
use crate::{Error, Result, loopdev, quota};

/// The option key.
pub(crate) const SIZE: &str = "size";

/// The image file of a loop-backed volume, in its directory (beside `_data`, out of a container's reach).
pub(crate) const IMAGE: &str = "disk.img";

/// The smallest size accepted: an ext4 image smaller than this has no room for its own metadata.
const MIN_BYTES: u64 = 1 << 20;

/// How a volume's size limit is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SizeMethod {
    /// A project quota on the volume's `_data` (ext4 or XFS mounted with project quotas).
    ProjectQuota,
    /// An ext4 filesystem in a sparse image file, loop-mounted at `_data` while the volume is in use.
    LoopExt4,
}

/// A volume's size limit, as `inspect` shows it (`size_limit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeLimit {
    /// The size asked for, in bytes.
    pub bytes: u64,
    /// How it is enforced.
    pub method: SizeMethod,
    /// The project ID of a [`SizeMethod::ProjectQuota`] volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<u32>,
}

/// Parses a size as Docker's `--opt size=` takes it: a number (decimals allowed) with an optional unit
/// `b`, `k`, `m`, `g`, `t`, `p` (powers of 1024; `kb`, `KiB` and the like too), case-insensitive.
/// Returns `None` for anything else and for an overflow.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    if number.is_empty() || number.starts_with('.') && number.len() == 1 {
        return None;
    }
    let bytes = if let Some((whole, frac)) = number.split_once('.') {
        let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
        if frac.contains('.') || frac.len() > 9 {
            return None;
        }
        let frac_n: u64 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
        let scale = 10u64.pow(frac.len() as u32);
        let whole_bytes = whole.checked_mul(1u64 << shift)?;
        let frac_bytes = (u128::from(frac_n) << shift) / u128::from(scale);
        whole_bytes.checked_add(u64::try_from(frac_bytes).ok()?)?
    } else {
        number.parse::<u64>().ok()?.checked_mul(1u64 << shift)?
    };
    Some(bytes)
}

/// The `size` option's value in bytes, checked; `None` when the option is not given.
pub(crate) fn size_option(value: Option<&String>) -> Result<Option<u64>> {
    let Some(value) = value else { return Ok(None) };
    let invalid = |why: &str| Error::InvalidOption {
        reason: format!("\"size\" {value:?} {why}"),
    };
    match parse_size(value) {
        None => Err(invalid(
            "is not a size (a number with an optional unit: 4096, 512k, 100m, 1.5g)",
        )),
        Some(0) => Err(invalid("is zero: a size limit is at least 1m")),
        Some(b) if b < MIN_BYTES => Err(invalid("is too small: a size limit is at least 1m")),
        Some(b) => Ok(Some(b)),
    }
}

/// Sets up the limit for the volume `name` being created in `stage` (a staging directory with its `_data`
/// made), with the registry lock held: a project quota when the registry's filesystem enforces them, else
/// an image file. On an error nothing of it is left (the project ID is freed; the stage is the caller's).
pub(crate) fn prepare(change: &ChangeLock, name: &str, stage: &Path, bytes: u64) -> Result<SizeLimit> {
    let data = stage.join(DATA);
    if quota::enforced(&data) {
        let id = quota::allocate(change, name, &data)?;
        if let Err(e) = quota::apply(name, &data, id, bytes) {
            quota::free(change.layout(), name, &data, id);
            return Err(e);
        }
        info!(volume = name, bytes, project_id = id, "size limit: project quota");
        return Ok(SizeLimit {
            bytes,
            method: SizeMethod::ProjectQuota,
            project_id: Some(id),
        });
    }
    loopdev::make_image(name, &stage.join(IMAGE), bytes)?;
    info!(
        volume = name,
        bytes, "size limit: ext4 image, loop-mounted while in use"
    );
    Ok(SizeLimit {
        bytes,
        method: SizeMethod::LoopExt4,
        project_id: None,
    })
}

/// Undoes [`prepare`] after a later step of the create failed (the stage itself is the caller's).
pub(crate) fn undo(layout: &Layout, name: &str, stage: &Path, limit: &SizeLimit) {
    if let Some(id) = limit.project_id {
        quota::free(layout, name, &stage.join(DATA), id);
    }
}

/// Frees what the limit of a removed volume held: its project ID (the limit cleared, the ID given back).
/// The volume's files are gone (the image file with them); `dir` is where they were, on the same
/// filesystem.
pub(crate) fn release(layout: &Layout, name: &str, dir: &Path, limit: &SizeLimit) {
    if let Some(id) = limit.project_id {
        quota::free(layout, name, dir, id);
    } else if limit.method == SizeMethod::ProjectQuota {
        warn!(volume = name, "project quota volume without a project ID");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_docker_takes_them() {
        let cases: &[(&str, u64)] = &[
            ("4096", 4096),
            ("100m", 100 << 20),
            ("100M", 100 << 20),
            ("100mb", 100 << 20),
            ("100MiB", 100 << 20),
            ("8m", 8 << 20),
            ("512k", 512 << 10),
            ("1.5g", 3 << 29),
            ("2t", 2 << 40),
            ("1p", 1 << 50),
            ("10b", 10),
            (" 3g ", 3 << 30),
            ("0.5m", 1 << 19),
            ("0", 0),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Some(*bytes), "{text}");
        }
        for bad in [
            "",
            "lots",
            "m",
            "-1m",
            "1.2.3m",
            "1x",
            "100 m x",
            ".",
            "1e6",
            "99999999999999p",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn size_option_errors_name_the_option_and_the_value() {
        assert_eq!(size_option(None).unwrap(), None);
        assert_eq!(size_option(Some(&"8m".into())).unwrap(), Some(8 << 20));
        for (bad, why) in [
            ("lots", "not a size"),
            ("0", "zero"),
            ("0m", "zero"),
            ("512k", "too small"),
        ] {
            let err = size_option(Some(&bad.to_string())).unwrap_err().to_string();
            assert!(
                err.contains("\"size\"") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn inspect_form() {
        let limit = SizeLimit {
            bytes: 8 << 20,
            method: SizeMethod::ProjectQuota,
            project_id: Some(1_000_000),
        };
        assert_eq!(
            serde_json::to_string(&limit).unwrap(),
            r#"{"bytes":8388608,"method":"project-quota","project_id":1000000}"#
        );
        let limit = SizeLimit {
            bytes: 8 << 20,
            method: SizeMethod::LoopExt4,
            project_id: None,
        };
        assert_eq!(
            serde_json::to_string(&limit).unwrap(),
            r#"{"bytes":8388608,"method":"loop-ext4"}"#
        );
    }
}
