//! The `mountkit` command: parse the arguments, set up diagnostics, open the store, run the command,
//! turn the outcome into an exit status. The arguments are defined in the library
//! ([`mountkit::cli_args`]), the commands are in `cli/` (one module per noun, all printing in
//! `cli/output.rs`), the work is in the library.
//!
//! Exit status, as Docker's:
//! - 0 on success;
//! - `run` and `container start -a` exit with the command's status (`run -d` and a detached `start`:
//!   0 once it runs); 125 when mountkit itself failed, 126
//!   when the command cannot be executed, 127 when it is not found (as `docker run`);
//! - `container create` exits 125 on failure (as `docker create`, which fails like `docker run` does);
//! - other commands exit 1 on failure;
//! - a usage error (an unknown flag, a missing argument, a bad `--filter`) exits 125, whatever the command.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use mountkit::Mountkit;
use mountkit::cli_args::{Cli, Cmd, ContainerCmd};

/// The exit status of a usage error, and of any failure of `run`, `container create` and `container start`
/// that is mountkit's own (Docker's).
const EXIT_MOUNTKIT_FAILED: u8 = 125;

fn main() -> ExitCode {
    // A container's init (`run --init`) before anything else: no argument parsing, no logging.
    mountkit::init::run_if_init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // `--help` and `--version` are "errors" printed on stdout, with success.
            let code = if e.use_stderr() { EXIT_MOUNTKIT_FAILED } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_tracing(cli.debug);
    let docker_run_status = exits_like_docker_run(&cli.cmd);
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("mountkit: {}", error_text(&e));
            ExitCode::from(failure_status(&e, docker_run_status))
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let ctx = cli::Ctx {
        mk: open(cli.root)?,
        format: cli.format,
    };
    cli::dispatch(&ctx, cli.cmd)
}

/// Diagnostics on stderr: `warn` and up, or `-D`'s `debug`, or `MOUNTKIT_LOG`'s filter.
fn init_tracing(debug: bool) {
    let filter = if debug {
        "debug".to_string()
    } else {
        std::env::var("MOUNTKIT_LOG").unwrap_or_else(|_| "warn".into())
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Opens the store at `--root` or [`Mountkit::default_root`], and undoes volume-driver mounts that
/// dead runners left (a failure there is only a warning: the command itself can still work).
fn open(root: Option<PathBuf>) -> anyhow::Result<Mountkit> {
    let root = root.unwrap_or_else(Mountkit::default_root);
    let mk = Mountkit::open(&root).with_context(|| format!("cannot open the store at {}", root.display()))?;
    if let Err(e) = mk.reconcile() {
        tracing::warn!(error = %e, "volume mount reconciliation");
    }
    Ok(mk)
}

/// `run`, `container start` and `container create` report failures with `docker run`'s statuses.
fn exits_like_docker_run(cmd: &Cmd) -> bool {
    matches!(
        cmd,
        Cmd::Run(_)
            | Cmd::Start(_)
            | Cmd::Create(_)
            | Cmd::Container(ContainerCmd::Start(_) | ContainerCmd::Create(_))
    )
}

/// The exit status of a failed command: 125/126/127 ([`mountkit::Error::run_exit_code`]) for the
/// commands that exit like `docker run`, 1 for the others.
fn failure_status(e: &anyhow::Error, docker_run_status: bool) -> u8 {
    if !docker_run_status {
        return 1;
    }
    match e.downcast_ref::<mountkit::Error>() {
        Some(me) => me.run_exit_code() as u8,
        None => EXIT_MOUNTKIT_FAILED,
    }
}

/// The error and its causes, `: `-separated (as anyhow's `{:#}`), leaving out a cause that the text
/// before it already ends with: the library's I/O errors name their cause in their own message too, and
/// "cannot create FILE: No such file or directory" should not say it twice.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.is_empty() {
            text = cause;
        } else if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
