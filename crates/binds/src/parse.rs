//! The three command-line syntaxes, parsed as Docker parses them (the CLI's checks first, then the
//! daemon's), with Docker's error messages.

use std::path::{Path, PathBuf};

use crate::spec::{BindRecursive, MountSpec, Propagation, TmpfsOptions, TmpfsSize, clean_path};
use crate::{Error, Result};

/// Parses a `-v` / `--volume` value: `DST` (anonymous volume), `SRC:DST` or `SRC:DST:OPTS`.
///
/// `SRC` starting with `/` is a host path (a bind, whose missing directory [`crate::prepare_sources`]
/// creates, as Docker does); `.` or `./…` is made absolute against the current directory, as the
/// Docker CLI does; anything else is a volume name. `OPTS` is a comma-separated list with at most one
/// of each kind: `ro`/`rw`; `z`/`Z` (SELinux relabelling: accepted and ignored, mountkit does no
/// labelling); `nocopy` (volumes only); a propagation mode (binds only); `consistent`/`cached`/
/// `delegated` (macOS-only in Docker: accepted and ignored). Targets are lexically cleaned (`/a/../b`
/// is `/b`), must be absolute and must not be `/`.
///
/// ```
/// use mountkit_binds::{parse_volume_flag, MountSpec};
/// let spec = parse_volume_flag("todo-list:/data").unwrap();
/// assert!(matches!(spec, MountSpec::Volume { ref name, .. } if name.as_deref() == Some("todo-list")));
/// let err = parse_volume_flag("/src:/data:rx").unwrap_err();
/// assert_eq!(err.to_string(), "invalid mode: rx");
/// ```
pub fn parse_volume_flag(s: &str) -> Result<MountSpec> {
    parse_volume_in(s, std::env::current_dir().ok().as_deref())
}

/// Parses a `--mount` value: comma-separated (CSV-quoted) `key=value` fields, Docker's keys:
/// `type=bind|volume|tmpfs` (default `volume`), `source`/`src`, `target`/`destination`/`dst`,
/// `readonly`/`ro[=bool]`, `consistency` (ignored), `bind-propagation`, `bind-recursive=enabled|
/// disabled|writable|readonly`, `bind-nonrecursive[=bool]` (deprecated), `volume-nocopy[=bool]`,
/// `volume-driver=local`, `volume-opt=k=v` (last one wins), `tmpfs-size` (`64m`, `1.5GiB`, bytes),
/// `tmpfs-mode` (octal). A bind source must exist ([`crate::prepare_sources`] checks).
/// `volume-label` is refused (label volumes with `volume create --label`), as are `volume-subpath`
/// and drivers other than `local`.
///
/// ```
/// use mountkit_binds::{parse_mount_flag, MountSpec};
/// let spec = parse_mount_flag("type=bind,source=/srv/www,target=/usr/share/nginx/html,readonly").unwrap();
/// assert!(matches!(spec, MountSpec::Bind { readonly: true, create_source: false, .. }));
/// ```
pub fn parse_mount_flag(s: &str) -> Result<MountSpec> {
    parse_mount_in(s, std::env::current_dir().ok().as_deref())
}

/// Parses a `--tmpfs` value: `DST[:OPTS]`, OPTS as mount(8) and tmpfs(5) take them: `size=64m`
/// (suffixes k, m, g, t, p, e or a percentage of RAM), `mode=1777` (octal), `uid=`, `gid=`,
/// `ro`/`rw`, `exec`/`noexec`, `suid`/`nosuid`, `dev`/`nodev`, `atime`/`noatime`/`relatime`,
/// `defaults`, and the tmpfs options `nr_inodes=`, `nr_blocks=`, `huge=`, `mpol=`, `inode64`,
/// `inode32`, `noswap`. Docker's defaults apply first (`noexec,nosuid,nodev`); later options win.
///
/// ```
/// use mountkit_binds::{parse_tmpfs_flag, MountSpec, TmpfsSize};
/// let MountSpec::Tmpfs { options, .. } = parse_tmpfs_flag("/run:size=64m,exec").unwrap() else { panic!() };
/// assert_eq!(options.size, Some(TmpfsSize::Bytes(64 << 20)));
/// assert!(!options.noexec && options.nosuid);
/// ```
pub fn parse_tmpfs_flag(s: &str) -> Result<MountSpec> {
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

/// Checks that no two specs share a target (after cleaning), as Docker does.
///
/// ```
/// use mountkit_binds::{check_duplicate_targets, parse_volume_flag, parse_tmpfs_flag};
/// let specs = [parse_volume_flag("/a:/x").unwrap(), parse_tmpfs_flag("/x/").unwrap()];
/// assert_eq!(check_duplicate_targets(&specs).unwrap_err().to_string(), "Duplicate mount point: /x");
/// ```
pub fn check_duplicate_targets(specs: &[MountSpec]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        let t = clean_path(spec.target());
        if !seen.insert(t.clone()) {
            return Err(Error::DuplicateTarget(t));
        }
    }
    Ok(())
}

fn parse_volume_in(raw: &str, cwd: Option<&Path>) -> Result<MountSpec> {
    let invalid = || Error::InvalidVolumeSpec(raw.to_string());
    if raw.matches(':').count() > 2 {
        return Err(invalid());
    }
    let parts: Vec<&str> = raw.splitn(3, ':').collect();
    if parts[0].is_empty() {
        return Err(invalid());
    }
    let (source, target, mode) = match parts.as_slice() {
        [target] => ("", *target, ""),
        [source, target] => {
            if parse_mode(target).is_ok() {
                // A destination and a mode (`/foo:ro`) is not a valid volume.
                return Err(invalid());
            }
            (*source, *target, "")
        }
        [source, target, mode] => (*source, *target, *mode),
        _ => return Err(invalid()),
    };
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
        let name = if source.is_empty() {
            None
        } else {
            validate_volume_name(&source)?;
            Some(source)
        };
        if modes.readonly && name.is_none() {
            return Err(Error::ReadonlyAnonymousVolume);
        }
        Ok(MountSpec::Volume {
            name,
            target,
            readonly: modes.readonly,
            nocopy: modes.nocopy,
            driver_opts: Vec::new(),
        })
    }
}

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

/// The Docker CLI turns a source of `.` or `./…` into an absolute path.
fn absolutize_dot(source: &str, cwd: Option<&Path>) -> String {
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

/// Docker's target rules: cleaned, not `/`, absolute. Returns the cleaned target.
fn validate_target(kind: &str, target: &str) -> Result<PathBuf> {
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

#[derive(Default)]
struct BindOpts {
    propagation: Option<String>,
    nonrecursive: bool,
    ro_nonrecursive: bool,
    ro_force: bool,
}

#[derive(Default)]
struct VolumeOpts {
    nocopy: bool,
    driver_opts: Vec<(String, String)>,
}

#[derive(Default)]
struct TmpfsOpts {
    size: Option<u64>,
    mode: Option<u32>,
}

fn parse_mount_in(raw: &str, cwd: Option<&Path>) -> Result<MountSpec> {
    let fields = csv_record(raw)?;
    let mut kind = "volume".to_string();
    let mut source = String::new();
    let mut target = String::new();
    let mut readonly = false;
    let mut bind: Option<BindOpts> = None;
    let mut volume: Option<VolumeOpts> = None;
    let mut tmpfs: Option<TmpfsOpts> = None;

    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let invalid_value = |v: &str| Error::InvalidValue {
            key: key.clone(),
            value: v.to_string(),
        };
        let Some(val) = value else {
            match key.as_str() {
                "readonly" | "ro" => readonly = true,
                "volume-nocopy" => volume.get_or_insert_default().nocopy = true,
                "bind-nonrecursive" => bind.get_or_insert_default().nonrecursive = true,
                _ => return Err(Error::NotKeyValue(field.clone())),
            }
            continue;
        };
        match key.as_str() {
            "type" => kind = val.to_lowercase(),
            "source" | "src" => source = absolutize_dot(val, cwd),
            "target" | "dst" | "destination" => target = val.to_string(),
            "readonly" | "ro" => readonly = parse_bool(val).ok_or_else(|| invalid_value(val))?,
            "consistency" => {} // macOS-only in Docker; nothing to do on Linux.
            "bind-propagation" => bind.get_or_insert_default().propagation = Some(val.to_lowercase()),
            "bind-nonrecursive" => {
                bind.get_or_insert_default().nonrecursive =
                    parse_bool(val).ok_or_else(|| invalid_value(val))?
            }
            "bind-recursive" => match val {
                "enabled" => {}
                "disabled" => bind.get_or_insert_default().nonrecursive = true,
                "writable" => bind.get_or_insert_default().ro_nonrecursive = true,
                "readonly" => bind.get_or_insert_default().ro_force = true,
                _ => return Err(Error::InvalidBindRecursive(val.to_string())),
            },
            "volume-nocopy" => {
                volume.get_or_insert_default().nocopy = parse_bool(val).ok_or_else(|| invalid_value(val))?
            }
            "volume-label" => {
                return Err(Error::Unsupported {
                    field: field.clone(),
                    why: "label the volume with `mountkit volume create --label` instead",
                });
            }
            "volume-opt" => set_kv(&mut volume.get_or_insert_default().driver_opts, val),
            "volume-driver" => {
                volume.get_or_insert_default();
                if val != "local" {
                    return Err(Error::Unsupported {
                        field: field.clone(),
                        why: "mountkit has only the \"local\" volume driver",
                    });
                }
            }
            "volume-subpath" => {
                return Err(Error::Unsupported {
                    field: field.clone(),
                    why: "volume subpaths are not supported",
                });
            }
            "tmpfs-size" => {
                tmpfs.get_or_insert_default().size =
                    Some(ram_in_bytes(val).ok_or_else(|| invalid_value(val))?)
            }
            "tmpfs-mode" => {
                tmpfs.get_or_insert_default().mode =
                    Some(parse_octal_mode(val).ok_or_else(|| invalid_value(val))?)
            }
            _ => {
                return Err(Error::UnexpectedKey {
                    key,
                    field: field.clone(),
                });
            }
        }
    }

    // The CLI's checks.
    if kind.is_empty() {
        return Err(Error::TypeRequired(raw.to_string()));
    }
    if target.is_empty() {
        return Err(Error::TargetRequired(raw.to_string()));
    }
    for (present, prefix, own) in [
        (volume.is_some(), "volume", "volume"),
        (bind.is_some(), "bind", "bind"),
        (tmpfs.is_some(), "tmpfs", "tmpfs"),
    ] {
        if present && kind != own {
            return Err(Error::MixedOptions {
                prefix,
                kind: kind.clone(),
            });
        }
    }
    if let Some(b) = &bind {
        if b.ro_nonrecursive && !readonly {
            return Err(Error::RecursiveNeedsReadonly("writable"));
        }
        if b.ro_force {
            if !readonly {
                return Err(Error::RecursiveNeedsReadonly("readonly"));
            }
            let p = b.propagation.as_deref().unwrap_or("");
            if p != "rprivate" {
                return Err(Error::RecursiveReadonlyNeedsRprivate(p.to_string()));
            }
        }
    }

    // The daemon's checks.
    let target = validate_target(&kind, &target)?;
    match kind.as_str() {
        "bind" => {
            if source.is_empty() {
                return Err(Error::MissingField {
                    kind,
                    field: "Source",
                });
            }
            let b = bind.unwrap_or_default();
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
                readonly,
                propagation,
                recursive,
                create_source: false,
            })
        }
        "volume" => {
            let v = volume.unwrap_or_default();
            let name = if source.is_empty() {
                None
            } else {
                validate_volume_name(&source)?;
                Some(source)
            };
            if readonly && name.is_none() {
                return Err(Error::ReadonlyAnonymousVolume);
            }
            Ok(MountSpec::Volume {
                name,
                target,
                readonly,
                nocopy: v.nocopy,
                driver_opts: v.driver_opts,
            })
        }
        "tmpfs" => {
            if !source.is_empty() {
                return Err(Error::ExtraField {
                    kind,
                    field: "Source",
                });
            }
            let t = tmpfs.unwrap_or_default();
            let options = TmpfsOptions {
                readonly,
                // Docker leaves a size or mode of 0 out.
                size: t.size.filter(|&s| s != 0).map(TmpfsSize::Bytes),
                mode: t.mode.filter(|&m| m != 0),
                ..TmpfsOptions::default()
            };
            Ok(MountSpec::Tmpfs { target, options })
        }
        _ => Err(Error::UnknownType(kind)),
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

/// Octal permission bits, at most `7777`, digits only (no sign, no `0o`).
fn parse_octal_mode(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(s, 8).ok().filter(|&m| m <= 0o7777)
}

/// docker/go-units `RAMInBytes`: a decimal number, an optional space, and an optional binary unit
/// `b`, `k`, `m`, `g`, `t`, `p` optionally followed by `b` or `ib` (case-insensitive).
fn ram_in_bytes(s: &str) -> Option<u64> {
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

fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One record of Go's `encoding/csv` (what the Docker CLI uses for `--mount`): fields separated by
/// `,`; a field that starts with `"` is quoted, `""` inside it is a quote; a quote elsewhere is an
/// error. Unlike Go, a newline outside quotes is an error rather than the silent end of the value.
fn csv_record(input: &str) -> Result<Vec<String>> {
    let err = |reason: &str| Error::Csv {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    if input.is_empty() {
        return Err(err("empty value"));
    }
    let mut fields = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(err("a quoted field is not closed")),
                    Some('"') => match chars.peek() {
                        Some('"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some(',') | None => break,
                        Some(_) => return Err(err("extraneous \" in quoted field")),
                    },
                    Some(c) => field.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    ',' => break,
                    '"' => return Err(err("bare \" in non-quoted field")),
                    '\n' | '\r' => return Err(err("newline in value")),
                    _ => {
                        field.push(c);
                        chars.next();
                    }
                }
            }
        }
        fields.push(field);
        match chars.next() {
            Some(',') => continue,
            _ => break,
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CWD: &str = "/home/me/proj";

    fn v(s: &str) -> Result<MountSpec> {
        parse_volume_in(s, Some(Path::new(CWD)))
    }
    fn m(s: &str) -> Result<MountSpec> {
        parse_mount_in(s, Some(Path::new(CWD)))
    }
    fn t(s: &str) -> Result<MountSpec> {
        parse_tmpfs_flag(s)
    }
    fn err(r: Result<MountSpec>) -> String {
        match r {
            Ok(spec) => panic!("expected an error, got {spec:?}"),
            Err(e) => e.to_string(),
        }
    }
    fn bind(
        source: &str,
        target: &str,
        readonly: bool,
        propagation: Propagation,
        recursive: BindRecursive,
        create_source: bool,
    ) -> MountSpec {
        MountSpec::Bind {
            source: source.into(),
            target: target.into(),
            readonly,
            propagation,
            recursive,
            create_source,
        }
    }
    fn volume(name: Option<&str>, target: &str, readonly: bool, nocopy: bool) -> MountSpec {
        MountSpec::Volume {
            name: name.map(String::from),
            target: target.into(),
            readonly,
            nocopy,
            driver_opts: vec![],
        }
    }
    use BindRecursive as R;
    use Propagation as P;

    // ---- -v ----

    #[test]
    fn v_anonymous_volume() {
        assert_eq!(v("/data").unwrap(), volume(None, "/data", false, false));
    }

    #[test]
    fn v_named_volume_and_modes() {
        assert_eq!(
            v("todo-list:/data").unwrap(),
            volume(Some("todo-list"), "/data", false, false)
        );
        assert_eq!(
            v("todo-list:/data:ro").unwrap(),
            volume(Some("todo-list"), "/data", true, false)
        );
        assert_eq!(
            v("todo-list:/data:nocopy,rw,z").unwrap(),
            volume(Some("todo-list"), "/data", false, true)
        );
        assert_eq!(
            v("a1:/data:Z,cached").unwrap(),
            volume(Some("a1"), "/data", false, false)
        );
    }

    #[test]
    fn v_bind_and_modes() {
        assert_eq!(
            v("/srv/www:/www").unwrap(),
            bind("/srv/www", "/www", false, P::RPrivate, R::Enabled, true)
        );
        assert_eq!(
            v("/srv/www:/www:ro").unwrap(),
            bind("/srv/www", "/www", true, P::RPrivate, R::Enabled, true)
        );
        assert_eq!(
            v("/srv//www/:/www:rshared,ro,z").unwrap(),
            bind("/srv/www", "/www", true, P::RShared, R::Enabled, true)
        );
        for p in Propagation::ALL {
            let MountSpec::Bind { propagation, .. } = v(&format!("/s:/t:{p}")).unwrap() else {
                panic!()
            };
            assert_eq!(propagation, p);
        }
    }

    #[test]
    fn v_dot_sources_are_made_absolute() {
        assert_eq!(
            v(".:/src").unwrap(),
            bind(CWD, "/src", false, P::RPrivate, R::Enabled, true)
        );
        assert_eq!(
            v("./sub/../x:/src").unwrap(),
            bind("/home/me/proj/x", "/src", false, P::RPrivate, R::Enabled, true)
        );
    }

    #[test]
    fn v_target_is_cleaned() {
        assert_eq!(
            v("/h:/a/./b/../c/").unwrap(),
            bind("/h", "/a/c", false, P::RPrivate, R::Enabled, true)
        );
        assert_eq!(v("/a/../../data").unwrap(), volume(None, "/data", false, false));
    }

    #[test]
    fn v_errors_quote_the_input() {
        assert_eq!(err(v("/a:/b:ro:x")), "invalid volume specification: '/a:/b:ro:x'");
        assert_eq!(err(v(":/b")), "invalid volume specification: ':/b'");
        assert_eq!(err(v("")), "invalid volume specification: ''");
        assert_eq!(err(v("/data:ro")), "invalid volume specification: '/data:ro'");
        assert_eq!(err(v("name:")), "invalid volume specification: 'name:'");
        assert_eq!(err(v("/a:/b:rx")), "invalid mode: rx");
        assert_eq!(err(v("/a:/b:ro,rw")), "invalid mode: ro,rw");
        assert_eq!(err(v("/a:/b:shared,slave")), "invalid mode: shared,slave");
        assert_eq!(err(v("/a:/b:z,Z")), "invalid mode: z,Z");
        assert_eq!(err(v("/a:/b:RO")), "invalid mode: RO");
        assert_eq!(
            err(v("/a:data")),
            "invalid mount config for type \"bind\": invalid mount path: 'data' mount path must be absolute"
        );
        assert_eq!(
            err(v("data")),
            "invalid mount config for type \"volume\": invalid mount path: 'data' mount path must be absolute"
        );
        assert_eq!(
            err(v("/a:/")),
            "invalid mount config for type \"bind\": invalid specification: destination can't be '/' (got '/')"
        );
        assert_eq!(
            err(v("/a:/x/..")),
            "invalid mount config for type \"bind\": invalid specification: destination can't be '/' (got '/x/..')"
        );
        assert_eq!(
            err(v("n1::ro")),
            "invalid mount config for type \"volume\": field Target must not be empty"
        );
        assert_eq!(
            err(v("/a:/b:nocopy")),
            "invalid mount config for type \"bind\": field VolumeOptions must not be specified"
        );
        assert_eq!(
            err(v("vol:/b:rshared")),
            "invalid mount config for type \"volume\": field BindOptions must not be specified"
        );
        for name in ["foo/bar", "a", "_x", "../x", "~/x"] {
            let e = err(v(&format!("{name}:/b")));
            assert!(
                e.starts_with(&format!("\"{name}\" includes invalid characters")),
                "{e}"
            );
            assert!(e.contains("use absolute path"), "{e}");
        }
    }

    // ---- --mount ----

    #[test]
    fn mount_bind_forms() {
        assert_eq!(
            m("type=bind,source=/h,target=/c").unwrap(),
            bind("/h", "/c", false, P::RPrivate, R::Enabled, false)
        );
        assert_eq!(
            m("type=bind,src=/h/,dst=/c/,readonly").unwrap(),
            bind("/h", "/c", true, P::RPrivate, R::Enabled, false)
        );
        assert_eq!(
            m("Type=BIND,Source=/h,Destination=/c,ro=true,bind-propagation=RSLAVE").unwrap(),
            bind("/h", "/c", true, P::RSlave, R::Enabled, false)
        );
        assert_eq!(
            m("type=bind,source=/h,target=/c,ro=false").unwrap(),
            bind("/h", "/c", false, P::RPrivate, R::Enabled, false)
        );
        assert_eq!(
            m("type=bind,source=/h,target=/c,bind-recursive=disabled").unwrap(),
            bind("/h", "/c", false, P::RPrivate, R::Disabled, false)
        );
        assert_eq!(
            m("type=bind,source=/h,target=/c,bind-nonrecursive").unwrap(),
            bind("/h", "/c", false, P::RPrivate, R::Disabled, false)
        );
        assert_eq!(
            m("type=bind,source=/h,target=/c,readonly,bind-recursive=writable").unwrap(),
            bind("/h", "/c", true, P::RPrivate, R::Writable, false)
        );
        assert_eq!(
            m("type=bind,source=/h,target=/c,readonly,bind-recursive=readonly,bind-propagation=rprivate")
                .unwrap(),
            bind("/h", "/c", true, P::RPrivate, R::Readonly, false)
        );
        assert_eq!(
            m("type=bind,source=/h,target=/c,bind-recursive=enabled,consistency=cached").unwrap(),
            bind("/h", "/c", false, P::RPrivate, R::Enabled, false)
        );
        assert_eq!(
            m("type=bind,src=.,target=/c").unwrap(),
            bind(CWD, "/c", false, P::RPrivate, R::Enabled, false)
        );
    }

    #[test]
    fn mount_csv_quoting() {
        assert_eq!(
            m("type=bind,\"source=/h,with,commas\",target=/c").unwrap(),
            bind("/h,with,commas", "/c", false, P::RPrivate, R::Enabled, false)
        );
        assert_eq!(
            m("\"type=bind\",\"source=/say \"\"hi\"\"\",target=/c").unwrap(),
            bind("/say \"hi\"", "/c", false, P::RPrivate, R::Enabled, false)
        );
    }

    #[test]
    fn mount_volume_forms() {
        assert_eq!(m("target=/data").unwrap(), volume(None, "/data", false, false));
        assert_eq!(
            m("type=volume,source=todo-list,target=/data").unwrap(),
            volume(Some("todo-list"), "/data", false, false)
        );
        assert_eq!(
            m("src=todo-list,dst=/data,readonly,volume-nocopy").unwrap(),
            volume(Some("todo-list"), "/data", true, true)
        );
        assert_eq!(
            m("src=todo-list,dst=/data,volume-nocopy=false").unwrap(),
            volume(Some("todo-list"), "/data", false, false)
        );
        let spec = m("type=volume,src=nfs1,dst=/d,volume-driver=local,volume-opt=type=nfs,\"volume-opt=o=addr=10.0.0.1,rw\",volume-opt=device=:/x,volume-opt=type=nfs4")
            .unwrap();
        let MountSpec::Volume { driver_opts, .. } = spec else {
            panic!()
        };
        let kv = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            driver_opts,
            kv(&[("type", "nfs4"), ("o", "addr=10.0.0.1,rw"), ("device", ":/x")])
        );
    }

    #[test]
    fn mount_tmpfs_forms() {
        let MountSpec::Tmpfs { target, options } =
            m("type=tmpfs,target=/run,tmpfs-size=64m,tmpfs-mode=1770,readonly").unwrap()
        else {
            panic!()
        };
        assert_eq!(target, Path::new("/run"));
        assert_eq!(options.size, Some(TmpfsSize::Bytes(64 << 20)));
        assert_eq!(options.mode, Some(0o1770));
        assert!(options.readonly && options.noexec && options.nosuid && options.nodev);
        let MountSpec::Tmpfs { options, .. } = m("type=tmpfs,dst=/run,tmpfs-size=0,tmpfs-mode=0").unwrap()
        else {
            panic!()
        };
        assert_eq!((options.size, options.mode), (None, None));
    }

    #[test]
    fn mount_ram_sizes() {
        for (s, n) in [
            ("100", 100u64),
            ("10b", 10),
            ("1k", 1024),
            ("1K", 1024),
            ("1kb", 1024),
            ("1KiB", 1024),
            ("64m", 64 << 20),
            ("64 MB", 64 << 20),
            ("1.5g", 3 << 29),
            ("2t", 2 << 40),
        ] {
            assert_eq!(ram_in_bytes(s), Some(n), "{s}");
        }
        for s in ["", "m", "-1", "1x", "1kk", "1kibb", "1.2.3", "1bb", " "] {
            assert_eq!(ram_in_bytes(s), None, "{s}");
        }
    }

    #[test]
    fn mount_errors_quote_the_input() {
        let cases: &[(&str, &str)] = &[
            ("", "invalid --mount value '': empty value"),
            (
                "type=bind,source=/a\"b,target=/c",
                "invalid --mount value 'type=bind,source=/a\"b,target=/c': bare \" in non-quoted field",
            ),
            (
                "\"type=bind,target=/c",
                "invalid --mount value '\"type=bind,target=/c': a quoted field is not closed",
            ),
            (
                "\"type=bind\"x,target=/c",
                "invalid --mount value '\"type=bind\"x,target=/c': extraneous \" in quoted field",
            ),
            (
                "type=bind,bogus,target=/c",
                "invalid field 'bogus' must be a key=value pair",
            ),
            (
                "type=bind,source=/a,target=/c,ro=maybe",
                "invalid value for ro: maybe",
            ),
            (
                "type=volume,target=/c,volume-nocopy=yes",
                "invalid value for volume-nocopy: yes",
            ),
            (
                "type=tmpfs,target=/c,tmpfs-size=lots",
                "invalid value for tmpfs-size: lots",
            ),
            (
                "type=tmpfs,target=/c,tmpfs-mode=999",
                "invalid value for tmpfs-mode: 999",
            ),
            (
                "type=tmpfs,target=/c,tmpfs-mode=17777",
                "invalid value for tmpfs-mode: 17777",
            ),
            (
                "type=bind,source=/a,target=/c,bind-recursive=maybe",
                "invalid value for bind-recursive: maybe (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")",
            ),
            (
                "type=bind,source=/a,target=/c,colour=red",
                "unexpected key 'colour' in 'colour=red'",
            ),
            (
                "type=bind,source=/a",
                "target is required (in --mount 'type=bind,source=/a')",
            ),
            (
                "type=,target=/c",
                "type is required (in --mount 'type=,target=/c')",
            ),
            (
                "type=bind,source=/a,target=/c,volume-nocopy",
                "cannot mix 'volume-*' options with mount type 'bind'",
            ),
            (
                "type=volume,target=/c,bind-propagation=shared",
                "cannot mix 'bind-*' options with mount type 'volume'",
            ),
            (
                "type=bind,source=/a,target=/c,tmpfs-size=1m",
                "cannot mix 'tmpfs-*' options with mount type 'bind'",
            ),
            (
                "type=bind,source=/a,target=/c,bind-recursive=writable",
                "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction",
            ),
            (
                "type=bind,source=/a,target=/c,bind-recursive=readonly",
                "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction",
            ),
            (
                "type=bind,source=/a,target=/c,ro,bind-recursive=readonly",
                "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction (got '')",
            ),
            (
                "type=bind,source=/a,target=c",
                "invalid mount config for type \"bind\": invalid mount path: 'c' mount path must be absolute",
            ),
            (
                "type=bind,source=/a,target=/",
                "invalid mount config for type \"bind\": invalid specification: destination can't be '/' (got '/')",
            ),
            (
                "type=bind,target=/c",
                "invalid mount config for type \"bind\": field Source must not be empty",
            ),
            (
                "type=bind,source=a,target=/c",
                "invalid mount config for type \"bind\": invalid mount path: 'a' mount path must be absolute",
            ),
            (
                "type=bind,source=/a,target=/c,bind-propagation=sideways",
                "invalid mount config for type \"bind\": invalid propagation mode: sideways",
            ),
            (
                "type=volume,target=/c,readonly",
                "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes",
            ),
            (
                "type=tmpfs,source=/x,target=/c",
                "invalid mount config for type \"tmpfs\": field Source must not be specified",
            ),
            (
                "type=image,source=x,target=/c",
                "invalid mount config for type \"image\": mount type unknown",
            ),
            (
                "type=volume,source=no/slash,target=/c",
                "\"no/slash\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
            ),
            (
                "type=volume,source=v1,target=/c,volume-driver=nfs",
                "unsupported --mount option 'volume-driver=nfs': mountkit has only the \"local\" volume driver",
            ),
            (
                "type=volume,source=v1,target=/c,volume-subpath=x",
                "unsupported --mount option 'volume-subpath=x': volume subpaths are not supported",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(err(m(input)), *want, "--mount {input:?}");
        }
    }

    // ---- --tmpfs ----

    #[test]
    fn tmpfs_forms() {
        assert_eq!(
            t("/run").unwrap(),
            MountSpec::Tmpfs {
                target: "/run".into(),
                options: TmpfsOptions::default()
            }
        );
        let MountSpec::Tmpfs { target, options } =
            t("/run/:rw,size=64m,mode=1777,uid=1000,gid=100,exec,suid,dev,noatime,nr_inodes=1k,huge=within_size,inode64,ro").unwrap()
        else {
            panic!()
        };
        assert_eq!(target, Path::new("/run"));
        assert_eq!(
            options,
            TmpfsOptions {
                size: Some(TmpfsSize::Bytes(64 << 20)),
                mode: Some(0o1777),
                uid: Some(1000),
                gid: Some(100),
                readonly: true,
                noexec: false,
                nosuid: false,
                nodev: false,
                noatime: true,
                data: vec!["nr_inodes=1k".into(), "huge=within_size".into(), "inode64".into()],
            }
        );
        assert_eq!(
            options.data_string(),
            "size=67108864,mode=1777,uid=1000,gid=100,nr_inodes=1k,huge=within_size,inode64"
        );
        let MountSpec::Tmpfs { options, .. } = t("/x:size=50%,,defaults,noexec").unwrap() else {
            panic!()
        };
        assert_eq!(options.size, Some(TmpfsSize::Percent(50)));
        assert!(options.noexec && !options.nosuid && !options.nodev);
        let MountSpec::Tmpfs { options, .. } = t("/x:size=65536k,size=1G").unwrap() else {
            panic!()
        };
        assert_eq!(options.size, Some(TmpfsSize::Bytes(1 << 30)));
    }

    #[test]
    fn tmpfs_errors_quote_the_input() {
        let cases: &[(&str, &str)] = &[
            (
                "",
                "invalid mount config for type \"tmpfs\": field Target must not be empty",
            ),
            (
                ":size=1m",
                "invalid mount config for type \"tmpfs\": field Target must not be empty",
            ),
            (
                "run",
                "invalid mount config for type \"tmpfs\": invalid mount path: 'run' mount path must be absolute",
            ),
            (
                "/",
                "invalid mount config for type \"tmpfs\": invalid specification: destination can't be '/' (got '/')",
            ),
            (
                "/run:size=big",
                "invalid tmpfs option 'size=big' in '/run:size=big'",
            ),
            ("/run:size=1x", "invalid tmpfs option 'size=1x' in '/run:size=1x'"),
            ("/run:size=%", "invalid tmpfs option 'size=%' in '/run:size=%'"),
            (
                "/run:mode=1779",
                "invalid tmpfs option 'mode=1779' in '/run:mode=1779'",
            ),
            (
                "/run:mode=77777",
                "invalid tmpfs option 'mode=77777' in '/run:mode=77777'",
            ),
            (
                "/run:uid=root",
                "invalid tmpfs option 'uid=root' in '/run:uid=root'",
            ),
            ("/run:gid=-1", "invalid tmpfs option 'gid=-1' in '/run:gid=-1'"),
            ("/run:rw,bogus", "invalid tmpfs option 'bogus' in '/run:rw,bogus'"),
            (
                "/run:nr_inodes=",
                "invalid tmpfs option 'nr_inodes=' in '/run:nr_inodes='",
            ),
            (
                "/run:colour=red",
                "invalid tmpfs option 'colour=red' in '/run:colour=red'",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(err(t(input)), *want, "--tmpfs {input:?}");
        }
    }

    #[test]
    fn duplicates_are_refused() {
        let specs = [v("/a:/x").unwrap(), v("n1:/y").unwrap(), t("/z").unwrap()];
        check_duplicate_targets(&specs).unwrap();
        let specs = [v("/a:/x").unwrap(), m("type=volume,src=n1,dst=/x/").unwrap()];
        assert_eq!(
            check_duplicate_targets(&specs).unwrap_err().to_string(),
            "Duplicate mount point: /x"
        );
    }
}
