//! `container explain` and `image explain`: the library's [`Explanation`]s as JSON or as one block of
//! text per path. The exit status is 1 when a path does not exist (after every path is shown, as `ls`
//! does), else 0; an unknown container or image fails the command (exit 1, as `container inspect`).

use std::io::Write;

use mountkit::cli_args::{ExplainFlags, Format};
use mountkit::{ExplainOptions, Explanation, Provider, layer_ranges};

use super::output::{human, print_json_or};

/// The library's options from the flags.
pub fn options(x: &ExplainFlags) -> ExplainOptions {
    ExplainOptions {
        no_follow: x.no_follow,
        verbose: x.verbose,
    }
}

/// Prints the explanations; returns the exit status.
pub fn print(format: Format, all: &[Explanation]) -> anyhow::Result<i32> {
    print_json_or(format, &all, |o| {
        for (i, e) in all.iter().enumerate() {
            if i > 0 {
                writeln!(o)?;
            }
            write_text(o, e)?;
        }
        Ok(())
    })?;
    Ok(i32::from(all.iter().any(|e| e.exists == Some(false))))
}

/// One path's block.
fn write_text(o: &mut dyn Write, e: &Explanation) -> std::io::Result<()> {
    if e.resolved == e.path || e.exists == Some(false) && e.links.is_empty() {
        writeln!(o, "{}", e.path)?;
    } else {
        writeln!(o, "{} -> {}", e.path, e.resolved)?;
    }
    for l in &e.links {
        writeln!(o, "  via:         {} -> {}", l.path, l.target)?;
    }
    if e.exists == Some(false) {
        let missing = e.missing.as_deref().unwrap_or(&e.resolved);
        match e.hides.first() {
            Some(h) => writeln!(o, "  not found:   {missing} was {h}")?,
            None if missing != e.resolved => {
                writeln!(o, "  not found:   {missing} does not exist or is not a directory")?
            }
            None => writeln!(o, "  not found:   no layer or mount has it")?,
        }
        return Ok(());
    }
    writeln!(o, "  provided by: {}", e.provider)?;
    match (e.kind, e.size) {
        (Some(mountkit::FileKind::Directory), _) => {
            let n = e.entries.unwrap_or(0);
            writeln!(
                o,
                "  what:        directory, {n} {}",
                if n == 1 { "entry" } else { "entries" }
            )?
        }
        (Some(k), Some(size)) => writeln!(o, "  what:        {}, {}", k.word(), human(size))?,
        _ => writeln!(
            o,
            "  what:        unknown: its contents exist only in the running container's mount namespace"
        )?,
    }
    if !e.merged_with.is_empty() {
        let word = if e.merged_with.len() == 1 {
            "layer"
        } else {
            "layers"
        };
        writeln!(
            o,
            "  merged with: {word} {} (same directory)",
            layer_ranges(&e.merged_with)
        )?;
    }
    for (i, h) in e.hides.iter().enumerate() {
        let label = if i == 0 { "hides:" } else { "" };
        let text = h.to_string();
        // A mount's summary already starts with "hides".
        let text = text.strip_prefix("hides ").unwrap_or(&text);
        writeln!(o, "  {label:<12} {text}")?;
    }
    if !e.listing.is_empty() {
        let width = e.listing.iter().map(|x| x.name.len()).max().unwrap_or(0).min(40);
        writeln!(o, "  entries:")?;
        for x in &e.listing {
            let provider = match &x.provider {
                Provider::None => "?".to_string(),
                p => p.to_string(),
            };
            writeln!(o, "    {:<width$}  {provider}", x.name)?;
        }
    }
    Ok(())
}
