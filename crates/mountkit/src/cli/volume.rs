//! `mountkit volume`: create, ls, inspect, rm, prune.

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
