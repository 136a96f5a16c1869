//! The `mountkit` binary's commands, one module per noun. The arguments are the library's
//! ([`mountkit::cli_args`]: the definition xtask also generates completions and man pages from); each
//! handler turns them into library calls and hands the results to [`output`], where everything printed
//! is formatted. A handler returns the command's exit status; an error is mapped to one by `main`.

pub mod container;
pub mod df;
pub mod doctor;
pub mod explain;
pub mod image;
pub mod layer;
pub mod output;
pub mod run;
pub mod system;
pub mod volume;

use std::collections::BTreeMap;

use mountkit::cli_args::{Cmd, ContainerCmd, Format, ImageCmd};
use mountkit::{Error, Mountkit};

/// What every command gets: the open store and the `--format` given before the noun.
pub struct Ctx {
    /// The store.
    pub mk: Mountkit,
    /// `mountkit --format F NOUN ...`.
    pub format: Option<Format>,
}

impl Ctx {
    /// The format of a listing or of `diff`: the command's own `--format`, else the global one, else text.
    pub fn format(&self, own: Option<Format>) -> Format {
        own.or(self.format).unwrap_or(Format::Text)
    }
}

/// Runs the command; returns its exit status.
pub fn dispatch(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<i32> {
    match cmd {
        Cmd::Layer(c) => layer::run(ctx, c),
        Cmd::Image(c) => image::run(ctx, c),
        Cmd::Container(c) => container::run(ctx, c),
        Cmd::Volume(c) => volume::run(ctx, c),
        Cmd::Run(r) => {
            mountkit::set_shadow_warnings(!r.create.quiet);
            run::run(ctx, &r)
        }
        Cmd::Create(a) => container::run(ctx, ContainerCmd::Create(a)),
        Cmd::Ps(a) => container::list(ctx, &a),
        Cmd::Rm(a) => container::run(ctx, ContainerCmd::Rm(a)),
        Cmd::Images(a) => image::run(ctx, ImageCmd::Ls(a)),
        Cmd::Rmi(a) => image::run(ctx, ImageCmd::Rm(a)),
        Cmd::Exec(a) => container::exec(ctx, &a),
        Cmd::Start(a) => container::start(ctx, &a),
        Cmd::Stop(a) => Ok(container::stop(ctx, &a)),
        Cmd::Kill(a) => Ok(container::kill(ctx, &a)),
        Cmd::Restart(a) => Ok(container::restart(ctx, &a)),
        Cmd::Wait(a) => Ok(container::wait(ctx, &a)),
        Cmd::Logs(a) => container::logs(ctx, &a),
        Cmd::Top(a) => container::top(ctx, &a),
        Cmd::Attach(a) => container::attach(ctx, &a),
        Cmd::System(c) => system::run(ctx, c),
    }
}

/// Repeated `K=V` flags (`--label`, `--opt`) as a map; `what` names the flag in the error.
pub fn kv_map(what: &'static str, items: &[String]) -> mountkit::Result<BTreeMap<String, String>> {
    let bad = |kv: &str, reason: &str| Error::InvalidArgument {
        what,
        value: kv.to_string(),
        reason: reason.to_string(),
    };
    let mut m = BTreeMap::new();
    for kv in items {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(bad(kv, "expected KEY=VALUE"));
        };
        if k.is_empty() {
            return Err(bad(kv, "the key is empty"));
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}
