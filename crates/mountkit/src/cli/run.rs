//! `mountkit run`, and the flags it shares with `container create` turned into [`CreateOptions`].

use mountkit::CreateOptions;
use mountkit::binds::{parse_mount_flag, parse_tmpfs_flag, parse_volume_flag};
use mountkit::cli_args::{CreateArgs, RunArgs};

use super::Ctx;

/// `run`: create, start attached, wait; the exit status is the command's.
pub fn run(ctx: &Ctx, r: &RunArgs) -> anyhow::Result<i32> {
    let mut opts = create_options(&r.create)?;
    opts.auto_remove = r.rm;
    let (_c, exit) = ctx.mk.run(&opts)?;
    Ok(exit.code())
}

/// The options of `container create` and `run`; `-v`, `--mount` and `--tmpfs` are parsed here, in that
/// order (a bad one fails the command before anything is created).
pub fn create_options(a: &CreateArgs) -> mountkit::Result<CreateOptions> {
    let mut mounts = Vec::new();
    for v in &a.volume {
        mounts.push(parse_volume_flag(v)?);
    }
    for m in &a.mount {
        mounts.push(parse_mount_flag(m)?);
    }
    for t in &a.tmpfs {
        mounts.push(parse_tmpfs_flag(t)?);
    }
    Ok(CreateOptions {
        name: a.name.clone(),
        image: a.image.clone(),
        cmd: a.cmd.clone(),
        entrypoint: a.entrypoint.clone(),
        env: a.env.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        mounts,
        volumes_from: a.volumes_from.clone(),
        read_only: a.read_only,
        auto_remove: false,
    })
}
