//! `mountkit layer`: import, ls, inspect, rm, export.

use mountkit::cli_args::LayerCmd;
use mountkit::{ExportTarget, layer_source_from_arg};

use super::{Ctx, output};

/// Runs a `layer` subcommand.
pub fn run(ctx: &Ctx, c: LayerCmd) -> anyhow::Result<i32> {
    let layers = ctx.mk.layers();
    match c {
        LayerCmd::Import { path } => {
            let info = layers.import_layer(layer_source_from_arg(&path))?;
            println!("{}", info.id);
        }
        LayerCmd::Ls { quiet, f } => output::layers(ctx.format(f.format), &layers.layers()?, quiet)?,
        LayerCmd::Inspect { id, f: _ } => {
            let infos = id
                .iter()
                .map(|i| layers.layer(i))
                .collect::<Result<Vec<_>, _>>()?;
            output::inspect_json(&infos)?;
        }
        LayerCmd::Rm { id } => {
            for i in &id {
                println!("{}", layers.remove_layer(i)?);
            }
        }
        LayerCmd::Export { id, output } => ctx.mk.export_layer_to(&id, &ExportTarget::from_arg(&output))?,
    }
    Ok(0)
}
