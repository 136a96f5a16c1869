//! `cargo xtask`: project automation (the rust-analyzer pattern).
//!
//! - `cargo xtask ci`: what CI runs (set-up checks, fmt, clippy, the whole test suite with nextest).
//! - `cargo xtask vm-test`: the privileged suite inside QEMU guests on pinned kernels.
//! - `cargo xtask bench`: criterion benchmarks, each figure beside its reference.
//! - `cargo xtask demo`: the storage model on a built-in sample image.
//! - `cargo xtask completions`, `cargo xtask man`: shell completions and man pages from the CLI's definition.

mod bench;
mod ci;
mod demo;
mod docs;
mod vm;

/// Runs the command; an error is printed as its chain of causes and exits 1. No backtrace: CI sets
/// `RUST_BACKTRACE`, and a log that keeps only its tail should end with what failed, not with frames
/// of `main`.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match cmd.as_str() {
        "bench" => bench::main(&rest),
        "ci" => ci::main(&rest),
        "demo" => demo::main(&rest),
        "vm-test" => vm::main(&rest),
        "completions" => docs::completions(&rest),
        "man" => docs::man(&rest),
        "" | "help" | "-h" | "--help" => {
            eprintln!("usage: cargo xtask <ci|vm-test|bench|demo|completions|man> [ARGS]");
            Ok(())
        }
        other => anyhow::bail!("unknown xtask command {other:?}; try `cargo xtask help`"),
    }
}
