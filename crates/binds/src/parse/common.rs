//! The checks and value syntaxes that `-v`, `--mount` and `--tmpfs` share.

use std::path::{Path, PathBuf};

use crate::spec::clean_path;
use crate::{Error, Result};

/// The Docker CLI turns a source of `.` or `./…` into an absolute path.
pub(super) fn absolutize_dot(source: &str, cwd: Option<&Path>) -> String {
    if source == "." || source.starts_with("./") {
        if let Some(cwd) = cwd {
            return clean_path(&cwd.join(source)).to_string_lossy().into_owned();
        }
    }
    source.to_string()
}

/// Docker's `local` volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (two characters at least).
fn validate_volume_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest: Vec<char> = chars.collect();
    let rest_ok = !rest.is_empty()
        && rest
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(Error::InvalidVolumeName(name.to_string()))
    }
}

/// The name of a volume mount from its source (`None`, anonymous, when empty), checked as Docker
/// does: a valid name, and no read-only anonymous volume.
pub(super) fn volume_name(source: String, readonly: bool) -> Result<Option<String>> {
    let name = if source.is_empty() {
        None
    } else {
        validate_volume_name(&source)?;
        Some(source)
    };
    if readonly && name.is_none() {
        return Err(Error::ReadonlyAnonymousVolume);
    }
    Ok(name)
}

/// Docker's target rules: cleaned, not `/`, absolute. Returns the cleaned target.
pub(super) fn validate_target(kind: &str, target: &str) -> Result<PathBuf> {
    let cleaned = clean_path(Path::new(target));
    if cleaned == Path::new("/") {
        return Err(Error::TargetIsRoot {
            kind: kind.into(),
            target: target.into(),
        });
    }
    if !target.starts_with('/') {
        return Err(Error::NotAbsolute {
            kind: kind.into(),
            path: target.into(),
        });
    }
    Ok(cleaned)
}

/// Octal permission bits, at most `7777`, digits only (no sign, no `0o`).
pub(super) fn parse_octal_mode(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|&m| m <= 0o7777)
}
