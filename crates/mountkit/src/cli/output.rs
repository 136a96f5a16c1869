//! Everything the commands print, in one place: listings (a table, one key per line with `-q`, or JSON),
//! inspect (JSON unless text is asked for where a text form exists), text blocks, and the short forms
//! used in tables (IDs, sizes, a container's status). Handlers pick what to print; how it looks is here.
//!
//! Output goes to stdout; messages go to stderr with the `mountkit: ` prefix ([`report`]).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::Write;

use serde::Serialize;

use mountkit::cli_args::Format;
use mountkit::layer_store::{ImageInfo, LayerInfo};
use mountkit::overlay::Change;
use mountkit::volumes::Volume;
use mountkit::{Container, Status, VolumeInspect};

use super::system::SystemInfo;

/// JSON (pretty, one value) or the text that `text` writes, on stdout.
pub fn print_json_or(
    format: Format,
    value: &impl Serialize,
    text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, value)?;
            writeln!(out)?;
        }
        Format::Text => text(&mut out)?,
    }
    Ok(())
}

/// A listing (`ls`, `ps`): JSON; or with `quiet` one key per line (IDs or names, for scripts); or a
/// header line and one row per item.
pub fn print_listing<T: Serialize>(
    format: Format,
    items: &[T],
    quiet: bool,
    key: impl Fn(&T) -> String,
    header: String,
    row: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    print_json_or(format, &items, |o| {
        if !quiet {
            writeln!(o, "{header}")?;
        }
        for item in items {
            let line = if quiet { key(item) } else { row(item) };
            writeln!(o, "{line}")?;
        }
        Ok(())
    })
}

/// `inspect` prints JSON in either format, as `docker inspect` does.
pub fn inspect_json(value: &impl Serialize) -> anyhow::Result<()> {
    print_json_or(Format::Json, value, |_| Ok(()))
}

/// One value per line: the ID or name of what a command created or removed.
pub fn print_lines<T: Display>(items: impl IntoIterator<Item = T>) {
    for item in items {
        println!("{item}");
    }
}

/// A message about one of several objects that failed, while the command goes on with the others.
pub fn report(error: &dyn Display) {
    eprintln!("mountkit: {error}");
}

/// The first 12 hex digits of an ID, without `sha256:`.
pub fn short(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// A size in decimal units with one decimal: `999B`, `1.5kB`, `2.0MB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// A container's status as `ps` shows it, as Docker words it: `Created`, `Up 3 minutes`,
/// `Exited (0) 2 seconds ago`, `Exited (unknown)` when its runner was killed.
pub fn status_text(c: &Container) -> String {
    let ago = |t: &Option<String>| -> Option<String> {
        let t = humantime::parse_rfc3339_weak(t.as_deref()?).ok()?;
        Some(human_duration(
            std::time::SystemTime::now().duration_since(t).unwrap_or_default(),
        ))
    };
    match c.state.status {
        Status::Created => "Created".into(),
        Status::Running => match ago(&c.state.started) {
            Some(d) => format!("Up {d}"),
            None => "Up".into(),
        },
        Status::Exited => {
            let code = c
                .state
                .exit_code
                .map_or_else(|| "unknown".to_string(), |n| n.to_string());
            match ago(&c.state.finished) {
                Some(d) if c.state.error.is_none() || c.state.exit_code.is_some() => {
                    format!("Exited ({code}) {d} ago")
                }
                _ => format!("Exited ({code})"),
            }
        }
    }
}

/// A duration as Docker's `ps` words it (go-units' HumanDuration): `Less than a second`, `3 seconds`,
/// `About a minute`, `5 minutes`, `About an hour`, `3 hours`, `2 days`, `3 weeks`, `4 months`, `2 years`.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (m, h) = (s / 60, s / 3600);
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if m == 1 => "About a minute".into(),
        _ if m < 60 => format!("{m} minutes"),
        _ if h == 1 => "About an hour".into(),
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 7 * 2 => format!("{} days", h / 24),
        _ if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
        _ if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
        _ => format!("{} years", h / 24 / 365),
    }
}

/// `layer ls`.
pub fn layers(format: Format, layers: &[LayerInfo], quiet: bool) -> anyhow::Result<()> {
    print_listing(
        format,
        layers,
        quiet,
        |l| l.id.to_string(),
        format!("{:<20} {:>12} {:>8}  CREATED", "LAYER ID", "SIZE", "ENTRIES"),
        |l| {
            format!(
                "{:<20} {:>12} {:>8}  {}",
                short(&l.id.to_string()),
                human(l.size),
                l.entries,
                l.created
            )
        },
    )
}

/// `image ls`.
pub fn images(format: Format, images: &[ImageInfo], quiet: bool) -> anyhow::Result<()> {
    print_listing(
        format,
        images,
        quiet,
        |i| i.id.clone(),
        format!("{:<30} {:<14} {:>6}  CREATED", "NAME", "IMAGE ID", "LAYERS"),
        |i| {
            format!(
                "{:<30} {:<14} {:>6}  {}",
                i.name.as_deref().unwrap_or("<none>"),
                short(&i.id),
                i.layers.len(),
                i.created
            )
        },
    )
}

/// `container ls`, `ps`.
pub fn containers(format: Format, containers: &[Container], quiet: bool) -> anyhow::Result<()> {
    print_listing(
        format,
        containers,
        quiet,
        |c| c.id[..12].to_string(),
        format!(
            "{:<12}  {:<20} {:<24} {:<28} NAMES",
            "CONTAINER ID", "IMAGE", "COMMAND", "STATUS"
        ),
        |c| {
            let image = c.image_name.clone().unwrap_or_else(|| short(&c.image));
            let mut cmd = c.config.args.join(" ");
            if cmd.chars().count() > 22 {
                cmd = format!("{}…", cmd.chars().take(21).collect::<String>());
            }
            format!(
                "{:<12}  {:<20} {:<24} {:<28} {}",
                &c.id[..12],
                image,
                format!("\"{cmd}\""),
                status_text(c),
                c.name
            )
        },
    )
}

/// `container diff`: one `A|C|D path` line per change, or JSON.
pub fn changes(format: Format, changes: &[Change]) -> anyhow::Result<()> {
    print_json_or(format, &changes, |o| {
        for c in changes {
            writeln!(o, "{c}")?;
        }
        Ok(())
    })
}

/// `volume ls`.
pub fn volumes(format: Format, volumes: &[Volume], quiet: bool) -> anyhow::Result<()> {
    print_listing(
        format,
        volumes,
        quiet,
        |v| v.name.clone(),
        format!("{:<10} VOLUME NAME", "DRIVER"),
        |v| format!("{:<10} {}", v.driver, v.name),
    )
}

/// `volume inspect`: JSON, or with `--format text` one block per volume, a blank line between them.
pub fn volume_inspect(format: Format, volumes: &[VolumeInspect]) -> anyhow::Result<()> {
    print_json_or(format, &volumes, |o| {
        for (i, v) in volumes.iter().enumerate() {
            if i > 0 {
                writeln!(o)?;
            }
            write_volume_text(o, v)?;
        }
        Ok(())
    })
}

/// One volume of `volume inspect --format text`.
fn write_volume_text(o: &mut dyn Write, v: &VolumeInspect) -> std::io::Result<()> {
    let pairs = |m: &BTreeMap<String, String>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let vol = &v.volume;
    writeln!(o, "Name:       {}", vol.name)?;
    writeln!(o, "Driver:     {}", vol.driver)?;
    writeln!(o, "Mountpoint: {}", vol.mountpoint.display())?;
    writeln!(o, "Labels:     {}", pairs(&vol.labels))?;
    writeln!(o, "Options:    {}", pairs(&vol.options))?;
    if let Some(fs) = &v.filesystem {
        writeln!(
            o,
            "Filesystem: {} ({} at {})",
            fs.fs_type,
            fs.source,
            fs.mount_point.display()
        )?;
    }
    if v.containers.is_empty() {
        return writeln!(o, "Containers: none");
    }
    writeln!(o, "Containers:")?;
    for c in &v.containers {
        writeln!(o, "  {}  {:<24} {}", &c.id[..12], c.name, c.status)?;
    }
    Ok(())
}

/// `system info`: JSON or text.
pub fn system_info(format: Format, info: &SystemInfo) -> anyhow::Result<()> {
    print_json_or(format, info, |o| {
        writeln!(o, "Root:             {}", info.root.display())?;
        writeln!(o, "Kernel:           {}", info.kernel)?;
        writeln!(o, "New mount API:    {}", info.overlay.new_mount_api)?;
        writeln!(o, "Overlay lowerdir+: {}", info.overlay.lowerdir_plus)?;
        writeln!(o, "Max image layers: {}", info.overlay.max_lower_layers)?;
        writeln!(o, "Seccomp filters:  {}", info.seccomp_filter)?;
        if let Some(fs) = &info.volumes_filesystem {
            writeln!(
                o,
                "Volumes on:       {} ({} at {})",
                fs.fs_type,
                fs.source,
                fs.mount_point.display()
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::human_duration;
    use std::time::Duration;

    #[test]
    fn durations_as_docker_words_them() {
        let d = |s| human_duration(Duration::from_secs(s));
        assert_eq!(human_duration(Duration::from_millis(300)), "Less than a second");
        assert_eq!(d(1), "1 second");
        assert_eq!(d(59), "59 seconds");
        assert_eq!(d(61), "About a minute");
        assert_eq!(d(3 * 60), "3 minutes");
        assert_eq!(d(3600 + 5), "About an hour");
        assert_eq!(d(5 * 3600), "5 hours");
        assert_eq!(d(3 * 86400), "3 days");
        assert_eq!(d(21 * 86400), "3 weeks");
        assert_eq!(d(100 * 86400), "3 months");
        assert_eq!(d(800 * 86400), "2 years");
    }
}
