//! `--tmpfs`: `DST[:OPTS]`, the options as mount(8) and tmpfs(5) take them.

use super::common::{parse_octal_mode, validate_target};
use crate::spec::{MountSpec, TmpfsOptions, TmpfsSize};
use crate::{Error, Result};

/// Parses a `--tmpfs` value (see `parse_tmpfs_flag`).
pub(super) fn parse_tmpfs(s: &str) -> Result<MountSpec> {
    let (target, opts) = s.split_once(':').unwrap_or((s, ""));
    if target.is_empty() {
        return Err(Error::MissingField {
            kind: "tmpfs".into(),
            field: "Target",
        });
    }
    let target = validate_target("tmpfs", target)?;
    let options = parse_tmpfs_options(opts, s)?;
    Ok(MountSpec::Tmpfs { target, options })
}

/// The kernel's `memparse` for tmpfs `size=`: decimal with an optional `k m g t p e` suffix, or `N%`.
fn parse_tmpfs_size(s: &str) -> Option<TmpfsSize> {
    if let Some(p) = s.strip_suffix('%') {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return p.parse().ok().map(TmpfsSize::Percent);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(digits_end);
    if num.is_empty() {
        return None;
    }
    let n: u64 = num.parse().ok()?;
    let shift = match suffix {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return None,
    };
    n.checked_mul(1u64 << shift).map(TmpfsSize::Bytes)
}

/// The comma-separated `--tmpfs` options `opts` over Docker's defaults, later ones winning; `raw`
/// (the whole value) is for messages.
fn parse_tmpfs_options(opts: &str, raw: &str) -> Result<TmpfsOptions> {
    let mut o = TmpfsOptions::default();
    for item in opts.split(',').filter(|i| !i.is_empty()) {
        let bad = || Error::InvalidTmpfsOption {
            option: item.to_string(),
            input: raw.to_string(),
        };
        match item.split_once('=') {
            None => match item {
                "ro" => o.readonly = true,
                "rw" => o.readonly = false,
                "exec" => o.noexec = false,
                "noexec" => o.noexec = true,
                "suid" => o.nosuid = false,
                "nosuid" => o.nosuid = true,
                "dev" => o.nodev = false,
                "nodev" => o.nodev = true,
                "atime" | "relatime" => o.noatime = false,
                "noatime" => o.noatime = true,
                "defaults" => {
                    o.readonly = false;
                    o.noexec = false;
                    o.nosuid = false;
                    o.nodev = false;
                }
                "inode64" | "inode32" | "noswap" => {
                    if !o.data.iter().any(|d| d == item) {
                        o.data.push(item.to_string());
                    }
                }
                _ => return Err(bad()),
            },
            Some((key, value)) => match key {
                "size" => o.size = Some(parse_tmpfs_size(value).ok_or_else(bad)?),
                "mode" => o.mode = Some(parse_octal_mode(value).ok_or_else(bad)?),
                "uid" => o.uid = Some(parse_id(value).ok_or_else(bad)?),
                "gid" => o.gid = Some(parse_id(value).ok_or_else(bad)?),
                "nr_inodes" | "nr_blocks" | "huge" | "mpol" => {
                    if value.is_empty() || value.contains(|c: char| c.is_whitespace()) {
                        return Err(bad());
                    }
                    let prefix = format!("{key}=");
                    o.data.retain(|d| !d.starts_with(&prefix));
                    o.data.push(item.to_string());
                }
                _ => return Err(bad()),
            },
        }
    }
    Ok(o)
}

/// A numeric user or group ID: decimal digits only.
fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
