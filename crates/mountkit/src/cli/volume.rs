//! `mountkit volume`: create, ls, inspect, rm, prune, export, import, clone.

use std::io::IsTerminal;

use mountkit::ExportTarget;
use mountkit::cli_args::{Format, VolumeCmd};
use mountkit::volumes::CreateOptions;

use super::{Ctx, kv_map, output};

/// Runs a `volume` subcommand.
pub fn run(ctx: &Ctx, c: VolumeCmd) -> anyhow::Result<i32> {
    let mk = &ctx.mk;
    match c {
        VolumeCmd::Create {
            name,
            driver,
            labels,
            opts,
        } => {
            let opts = CreateOptions {
                driver: Some(driver),
                labels: kv_map("label", &labels)?,
                options: kv_map("option", &opts)?,
                anonymous: false,
            };
            println!("{}", mk.volumes().create(name.as_deref(), opts)?.name);
        }
        VolumeCmd::Ls { quiet, filters, f } => {
            output::volumes(ctx.format(f.format), &mk.list_volumes(&filters)?, quiet)?
        }
        VolumeCmd::Inspect { name, f } => {
            // JSON unless text is asked for, here or before the noun.
            let format = f.format.or(ctx.format).unwrap_or(Format::Json);
            output::volume_inspect(format, &mk.inspect_volumes(&name)?)?;
        }
        VolumeCmd::Rm { force, name } => return Ok(remove(ctx, &name, force)),
        VolumeCmd::Export { name, output, force } => {
            let target = ExportTarget::from_arg(&output);
            if target == ExportTarget::Stdout && std::io::stdout().is_terminal() {
                anyhow::bail!(
                    "refusing to write the tar of volume {name} to a terminal: give -o FILE or redirect standard output"
                );
            }
            let done = mk.export_volume(&name, force, &target)?;
            live_copy_note(&name, "export", &done.live_writers);
        }
        VolumeCmd::Import { name, input, force } => {
            let vol = if input == "-" {
                mk.import_volume(&name, std::io::stdin().lock(), force)?
            } else {
                let file = std::fs::File::open(&input).map_err(|e| {
                    anyhow::anyhow!("cannot import into volume {name}: cannot open {input}: {e}")
                })?;
                mk.import_volume(&name, std::io::BufReader::with_capacity(256 << 10, file), force)?
            };
            println!("{}", vol.name);
        }
        VolumeCmd::Clone { src, dst, force } => {
            let (vol, live) = mk.clone_volume(&src, &dst, force)?;
            live_copy_note(&src, "clone", &live);
            println!("{}", vol.name);
        }
        VolumeCmd::Prune {
            all,
            force: _,
            filters,
        } => output::print_lines(mk.prune_volumes(all, &filters)?),
    }
    Ok(0)
}

/// `volume rm`: each volume in turn; one that cannot be removed is reported and the others are still
/// removed (exit status 1 then). With `force`, an unknown name is no error and prints nothing.
fn remove(ctx: &Ctx, names: &[String], force: bool) -> i32 {
    let mut failed = false;
    for n in names {
        match ctx.mk.remove_volume(n, force) {
            Ok(true) => println!("{n}"),
            Ok(false) => {}
            Err(e) => {
                output::report(&e);
                failed = true;
            }
        }
    }
    i32::from(failed)
}

/// The note for a forced export or clone of a volume that running containers write: what the copy is.
fn live_copy_note(name: &str, op: &str, writers: &[String]) {
    if writers.is_empty() {
        return;
    }
    eprintln!(
        "note: {op} of volume {name} while running container(s) {} write it: each file is as it was when it \
         was read, the whole is not a snapshot (files written meanwhile may be old, new or missing; a file \
         whose size changed while it was read failed the {op})",
        writers.join(", ")
    );
}
