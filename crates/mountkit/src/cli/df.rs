//! `system df [-v]`: the library's [`DiskUsage`] as `docker system df` prints it (a summary table; with
//! `-v`, one table per kind), or JSON (always everything).

use mountkit::DiskUsage;
use mountkit::cli_args::Format;

use super::output::{human, print_json_or, short};

/// Prints `system df`.
pub fn print(format: Format, du: &DiskUsage, verbose: bool) -> anyhow::Result<()> {
    print_json_or(format, du, |o| {
        writeln!(
            o,
            "{:<12} {:>6} {:>7} {:>10}  RECLAIMABLE",
            "TYPE", "TOTAL", "ACTIVE", "SIZE"
        )?;
        for k in &du.summary {
            let pct = (k.reclaimable * 100).checked_div(k.size).unwrap_or(0);
            let mut kind = k.kind.to_string();
            kind[..1].make_ascii_uppercase();
            writeln!(
                o,
                "{kind:<12} {:>6} {:>7} {:>10}  {} ({pct}%)",
                k.total,
                k.active,
                human(k.size),
                human(k.reclaimable)
            )?;
        }
        if !verbose {
            return Ok(());
        }
        writeln!(o, "\nLayers space usage:\n")?;
        writeln!(o, "{:<14} {:>10} {:>7}", "LAYER ID", "SIZE", "IMAGES")?;
        for l in &du.layers {
            writeln!(o, "{:<14} {:>10} {:>7}", short(&l.id), human(l.size), l.images)?;
        }
        writeln!(o, "\nImages space usage:\n")?;
        writeln!(
            o,
            "{:<30} {:<14} {:>10} {:>12} {:>12} {:>10}",
            "NAME", "IMAGE ID", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"
        )?;
        for i in &du.images {
            writeln!(
                o,
                "{:<30} {:<14} {:>10} {:>12} {:>12} {:>10}",
                i.name.as_deref().unwrap_or("<none>"),
                short(&i.id),
                human(i.size),
                human(i.shared_size),
                human(i.unique_size),
                i.containers
            )?;
        }
        writeln!(o, "\nContainers space usage:\n")?;
        writeln!(
            o,
            "{:<12}  {:<20} {:<10} {:>10}  NAMES",
            "CONTAINER ID", "IMAGE", "STATUS", "SIZE"
        )?;
        for c in &du.containers {
            writeln!(
                o,
                "{:<12}  {:<20} {:<10} {:>10}  {}",
                &c.id[..12.min(c.id.len())],
                if c.image.starts_with("sha256:") {
                    short(&c.image)
                } else {
                    c.image.clone()
                },
                c.status.to_string(),
                human(c.size),
                c.name
            )?;
        }
        writeln!(o, "\nVolumes space usage:\n")?;
        writeln!(o, "{:<66} {:>6} {:>10}", "VOLUME NAME", "LINKS", "SIZE")?;
        for v in &du.volumes {
            writeln!(o, "{:<66} {:>6} {:>10}", v.name, v.links, human(v.size))?;
        }
        Ok(())
    })
}
