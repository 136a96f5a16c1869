//! `mountkit image`: create, ls, inspect, rm, import, save, explain, history.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use mountkit::cli_args::{ImageCmd, ImageCreateArgs, SaveFormat};
use mountkit::layer_store::oci::{self, ArchiveFormat, ImportOptions, Progress};
use mountkit::layer_store::{ImageConfig, ImageInfo, LayerId};

use super::{Ctx, explain, kv_map, output};

/// Runs an `image` subcommand.
pub fn run(ctx: &Ctx, c: ImageCmd) -> anyhow::Result<i32> {
    let mk = &ctx.mk;
    match c {
        ImageCmd::Create(a) => println!("{}", create(ctx, &a)?.id),
        ImageCmd::Ls(a) => output::images(ctx.format(a.f.format), &mk.layers().images()?, a.quiet)?,
        ImageCmd::Inspect { name, f: _ } => inspect(ctx, &name)?,
        ImageCmd::Import {
            path,
            tag,
            reference,
            quiet,
        } => import(ctx, &path, tag, reference, quiet)?,
        ImageCmd::Save { name, output, format } => {
            let format = match format {
                Some(SaveFormat::Oci) => ArchiveFormat::Oci,
                Some(SaveFormat::OciArchive) => ArchiveFormat::OciArchive,
                Some(SaveFormat::DockerArchive) => ArchiveFormat::DockerArchive,
                None if output.extension().is_some_and(|e| e == "tar") => ArchiveFormat::OciArchive,
                None => ArchiveFormat::Oci,
            };
            oci::save(mk.layers(), &name, &output, format)?;
        }
        ImageCmd::Explain { image, paths, x } => {
            let all = mk.explain_image(&image, &paths, explain::options(&x))?;
            return explain::print(ctx.format(x.format), &all);
        }
        ImageCmd::History { image, no_trunc, f } => {
            output_history(ctx.format(f.format), &mk.image_history(&image)?, no_trunc)?
        }
        ImageCmd::Rm(a) => {
            for n in &a.name {
                output::print_lines(mk.remove_image(n, a.force)?.iter().map(ImageInfo::display_name));
            }
        }
    }
    Ok(0)
}

/// `image create`: from a recipe file, or from `--layer`s (IDs, or directories and tars to import) and
/// the config flags.
fn create(ctx: &Ctx, a: &ImageCreateArgs) -> anyhow::Result<ImageInfo> {
    let mk = &ctx.mk;
    if let Some(file) = &a.file {
        return Ok(mk.create_image_from_recipe(&a.name, file)?);
    }
    let mut ids: Vec<LayerId> = Vec::new();
    for l in &a.layers {
        ids.push(mk.layer_from_arg(Path::new(l), l)?);
    }
    let config = ImageConfig {
        volumes: a.volumes.clone(),
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        env: a.env.clone(),
        entrypoint: (!a.entrypoint.is_empty()).then(|| a.entrypoint.clone()),
        cmd: (!a.cmd.is_empty()).then(|| a.cmd.clone()),
        labels: kv_map("label", &a.labels)?,
        history: Vec::new(),
    };
    Ok(mk.layers().create_image(Some(&a.name), &ids, config)?)
}

/// `image inspect`: each image's record plus every name it has (Docker's RepoTags).
fn inspect(ctx: &Ctx, references: &[String]) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct View {
        #[serde(flatten)]
        info: ImageInfo,
        names: Vec<String>,
    }
    let mut views = Vec::new();
    for n in references {
        let info = ctx.mk.layers().image(n)?;
        let names = ctx.mk.layers().image_names(&info.id)?;
        views.push(View { info, names });
    }
    output::inspect_json(&views)
}

/// `image import`, with a progress line on a terminal's stderr unless `quiet`.
fn import(
    ctx: &Ctx,
    path: &str,
    tag: Option<String>,
    reference: Option<String>,
    quiet: bool,
) -> anyhow::Result<()> {
    let show = !quiet && std::io::stderr().is_terminal();
    let mut last = Instant::now();
    let mut progress = |p: Progress| {
        if last.elapsed().as_millis() >= 200 || p.bytes == p.total {
            last = Instant::now();
            eprint!(
                "\rimporting layer {}/{}: {} of {}   ",
                p.layer,
                p.layers,
                output::human(p.bytes),
                output::human(p.total)
            );
        }
    };
    let opts = ImportOptions {
        tag,
        reference,
        progress: if show { Some(&mut progress) } else { None },
    };
    let result = oci::import(ctx.mk.layers(), Path::new(path), opts);
    if show {
        eprintln!();
    }
    println!("{}", result?.id);
    Ok(())
}

/// `image history`: one row per layer, newest first (the table's columns as `docker history`'s, with the
/// counts of what each layer adds, changes and deletes), or JSON.
fn output_history(
    format: mountkit::cli_args::Format,
    rows: &[mountkit::HistoryRow],
    no_trunc: bool,
) -> anyhow::Result<()> {
    output::print_json_or(format, &rows, |o| {
        let idw = if no_trunc { 71 } else { 12 };
        writeln!(
            o,
            "{:<5} {:<idw$}  {:<20}  {:>9} {:>7} {:>7} {:>7}  CREATED BY",
            "LAYER", "ID", "CREATED", "SIZE", "ADDED", "CHANGED", "DELETED"
        )?;
        for r in rows {
            let id = if no_trunc {
                r.layer.id.clone()
            } else {
                output::short(&r.layer.id)
            };
            writeln!(
                o,
                "{:<5} {:<idw$}  {:<20}  {:>9} {:>7} {:>7} {:>7}  {}",
                format!("{}/{}", r.layer.index, r.layer.of),
                id,
                r.created,
                output::human(r.size),
                r.added,
                r.changed,
                r.deleted,
                r.layer.created_by.as_deref().unwrap_or("-")
            )?;
        }
        Ok(())
    })
}
