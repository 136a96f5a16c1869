//! `cargo xtask vm-test`: the privileged test suite as root inside throwaway QEMU guests, on the
//! pinned Debian kernels listed in `vm/kernels` (6.1: the classic mount(2) fallback; 6.12: the new
//! mount API path), without touching the host's mounts and without network beyond the Debian archive.
//!
//! Steps: host set-up ([`ensure_host_packages`]); a static build of every test executable of the
//! workspace (`cargo test --no-run`, `+crt-static`, explicit `--target`) and of the `mountkit` binary;
//! the test list of each executable (`--list`, filtered on the host); a read-only ext4 test disk
//! (binaries, plan, `vm/run`, a copy of the sources at the same path); per kernel: `apt-get download`
//! (cached in `target/vm/debs/`), `dpkg-deb -x`, the module subset, an initramfs written in Rust
//! (newc), and one QEMU run (TCG unless KVM is really usable) with its own timeout.
//!
//! Exit protocol: the guest prints `VMT-RESULT: <n>` and ends through isa-debug-exit (QEMU status
//! 33 = pass, 35 = fail); a kernel panic ends QEMU through pvpanic (status 1); a timeout is a hang.
//! A guest that panics, hangs or never reports is a failure, never a pass. Each test runs alone
//! (`--exact NAME --include-ignored --test-threads=1 --nocapture`: privileged tests are `#[ignore]`d
//! for non-root host runs, the guest is root) so a `SKIP <name>: <why>` line is attributed to it.
//!
//! Decisions: test names are filtered by substring (of `NAME` or `binary::NAME`), like libtest's
//! filter; `#[ignore]`d tests count as skipped; a test that never reported (the guest died) is failed;
//! `MOUNTKIT_BIN` points at the static `mountkit` binary in the guest. The guest's `/tmp` is ext4 on a
//! fresh sparse scratch disk (user xattrs and overlay upper dirs as on a Docker host; 6.1's tmpfs has
//! no `user.*` xattrs). The guest build is optimized (see [`suite::PROFILE_CONFIG`]): same tests, same
//! assertions, debug assertions on, but TCG runs it 10-20x faster. The guest userland is busybox plus
//! the host programs listed in `vm/host-tools` (with their libraries), at the host's paths, because the
//! tests build sample roots by copying host programs found on `PATH` and their `ldd` libraries. The
//! workspace sources are bind-mounted read-only at their host path, for `CARGO_MANIFEST_DIR` fixtures.
//! Guests on different kernels run side by side (each keeps about one core busy).
//! Dependencies: `anyhow` (errors with context), `serde_json` (cargo's `--message-format=json`).
//!
//! Files: the options and the run's flow here; `host` (packages, KVM, running host programs), `suite`
//! (static build, test lists), `kernel` (pins, fetch, modules), `image` and `cpio` (initramfs, test
//! disk), `guest` (what a guest boots from, one boot), `qemu` (QEMU and its console), `results` (reading
//! the console), `report` (printing a guest's results), `selftest` (`--self-test`).

mod cpio;
mod guest;
mod host;
mod image;
mod kernel;
mod qemu;
mod report;
mod results;
mod selftest;
mod suite;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use guest::{boot_side_by_side, helpers, prepare_kernel, test_disk};
pub use host::ensure_host_packages;
use report::{Tally, report};
use selftest::self_test;

const USAGE: &str =
    "usage: cargo xtask vm-test [--kernel 6.1|6.12|all] [--filter PATTERN] [--keep] [--verbose]
                          [-p|--package PKG]... [--timeout SECS] [--self-test] [--setup-only] [--jobs N]
  --kernel     which pinned kernel(s) of vm/kernels to boot (default: all)
  --filter     run only tests whose name (or binary::name) contains PATTERN
  --keep       keep this run's artefacts (initramfs, test disk, staging) under target/vm/
  --verbose    show the guest console and the QEMU command
  --package    build and run only these packages' tests (default: the workspace except xtask)
  --timeout    kill a guest after SECS seconds (default: 300 + 5 per test)
  --self-test  check the harness: a failing test, a guest panic and a guest hang must all be reported
  --jobs       how many guests (kernels) run at once (default: 2)
  --setup-only install the host packages (root) and fetch the pinned kernels, then stop";

#[derive(Debug, Default)]
struct Options {
    kernel: Option<String>,
    filter: Option<String>,
    keep: bool,
    verbose: bool,
    self_test: bool,
    packages: Vec<String>,
    timeout: Option<u64>,
    setup_only: bool,
    jobs: usize,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut o = Options {
        jobs: 2,
        ..Options::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut val = |f: &str| -> Result<String> { inline.clone().map_or_else(|| value(f), Ok) };
        match flag {
            "--kernel" => o.kernel = Some(val(flag)?).filter(|k| k != "all"),
            "--filter" => o.filter = Some(val(flag)?),
            "-p" | "--package" => o.packages.push(val(flag)?),
            "--timeout" => {
                let v = val(flag)?;
                o.timeout = Some(
                    v.parse()
                        .with_context(|| format!("--timeout {v:?}: not a number of seconds"))?,
                )
            }
            "--keep" => o.keep = true,
            "--verbose" | "-v" => o.verbose = true,
            "--self-test" => o.self_test = true,
            "--setup-only" => o.setup_only = true,
            "--jobs" | "-j" => {
                let v = val(flag)?;
                o.jobs = v.parse().with_context(|| format!("--jobs {v:?}: not a number"))?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("vm-test: unknown option {other:?}\n{USAGE}"),
        }
    }
    Ok(o)
}

struct Paths {
    root: PathBuf,
    vm_src: PathBuf,
    vm_dir: PathBuf,
    work: PathBuf,
}

fn paths() -> Result<Paths> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent dir")?
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let vm_dir = target.join("vm");
    let work = vm_dir.join(format!("run-{}", std::process::id()));
    Ok(Paths {
        vm_src: root.join("vm"),
        root,
        vm_dir,
        work,
    })
}

/// Entry point of `cargo xtask vm-test`.
pub fn main(args: &[String]) -> Result<()> {
    let opts = parse_args(args)?;
    timed("host set-up", ensure_host_packages)?;
    let p = paths()?;
    if opts.setup_only {
        for pin in pins(&opts, &p)? {
            let k = timed(&format!("kernel {}", pin.label), || {
                kernel::fetch(&pin, &p.vm_dir)
            })?;
            eprintln!("vm-test: kernel {} ready: {}", pin.label, k.vmlinuz.display());
        }
        return Ok(());
    }
    std::fs::create_dir_all(&p.work).with_context(|| format!("creating {:?}", p.work))?;
    let result = run_all(&opts, &p);
    if opts.keep {
        eprintln!("vm-test: artefacts kept in {}", p.work.display());
    } else {
        let _ = std::fs::remove_dir_all(&p.work);
    }
    result
}

fn pins(opts: &Options, p: &Paths) -> Result<Vec<kernel::KernelPin>> {
    let all = kernel::parse_pins(
        &std::fs::read_to_string(p.vm_src.join("kernels")).context("reading vm/kernels")?,
    )?;
    let chosen: Vec<_> = match &opts.kernel {
        Some(k) => all.iter().filter(|x| &x.label == k).cloned().collect(),
        None if opts.self_test => all.iter().take(1).cloned().collect(),
        None => all.clone(),
    };
    if chosen.is_empty() {
        let labels: Vec<_> = all.iter().map(|x| x.label.as_str()).collect();
        bail!(
            "no kernel {:?} in vm/kernels (have: {})",
            opts.kernel.as_deref().unwrap_or(""),
            labels.join(", ")
        );
    }
    Ok(chosen)
}

fn timed<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let t = Instant::now();
    let r = f();
    eprintln!("vm-test: {what}: {:.1} s", t.elapsed().as_secs_f64());
    r
}

/// What every guest of this run shares.
struct Setup<'a> {
    opts: &'a Options,
    p: &'a Paths,
    /// The kernel-independent parts of each initramfs.
    base: image::BaseParts<'a>,
    /// The read-only test disk.
    disk: &'a Path,
    /// Every test on the disk, `(binary, test)`, in the order the guest runs them.
    plan: Vec<(String, String)>,
}

fn run_all(opts: &Options, p: &Paths) -> Result<()> {
    let pins = pins(opts, p)?;
    let (vmt_exit, busybox) = helpers(p)?;
    let (bins, disk) = if opts.self_test {
        selftest::disk(p)?
    } else {
        suite_disk(opts, p)?
    };
    let setup = Setup {
        opts,
        p,
        base: image::BaseParts {
            vm_src: &p.vm_src,
            busybox: &busybox,
            vmt_exit: &vmt_exit,
        },
        disk: &disk,
        plan: plan_of(&bins),
    };
    if opts.self_test {
        self_test(&setup, &pins)
    } else {
        run_suite(&setup, &pins)
    }
}

/// The workspace's test executables, built statically and filtered, on a test disk (with the
/// `mountkit` binary when it was built).
fn suite_disk(opts: &Options, p: &Paths) -> Result<(Vec<suite::TestBinary>, PathBuf)> {
    let (tests, mountkit_bin) = timed("static build of the test binaries", || {
        suite::build(&p.root, &opts.packages)
    })?;
    let bins = suite::list(&tests, opts.filter.as_deref())?;
    if bins.is_empty() {
        bail!(
            "no test matches (filter {:?}, {} test executables)",
            opts.filter,
            tests.len()
        );
    }
    let disk = timed("test disk", || test_disk(p, &bins, mountkit_bin.as_deref()))?;
    Ok((bins, disk))
}

fn plan_of(bins: &[suite::TestBinary]) -> Vec<(String, String)> {
    bins.iter()
        .flat_map(|b| b.tests.iter().map(|t| (b.name.clone(), t.clone())))
        .collect()
}

/// Runs the plan on every pinned kernel, prints each guest's report and the summary line.
fn run_suite(s: &Setup<'_>, pins: &[kernel::KernelPin]) -> Result<()> {
    let timeout = Duration::from_secs(s.opts.timeout.unwrap_or(300 + 5 * s.plan.len() as u64));
    let mut preps = Vec::new();
    for pin in pins {
        preps.push(timed(&format!("kernel {} and initramfs", pin.label), || {
            prepare_kernel(s.p, pin, &s.base)
        })?);
    }
    // Each guest runs its tests one at a time, so it keeps about one host core busy: guests on
    // different kernels run side by side (`--jobs`, default 2), and their reports follow in order.
    let mut total = Tally::default();
    for chunk in preps.chunks(s.opts.jobs.max(1)) {
        for (prep, outcome) in chunk.iter().zip(boot_side_by_side(s, chunk, timeout)) {
            total += report(&prep.kernel.pin.label, &s.plan, &outcome?);
        }
    }
    println!(
        "{} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    if total.failed > 0 {
        total.print_failures();
        bail!("vm-test: {} failure(s) (see above)", total.failed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options() {
        let o = parse_args(&s(&[
            "--kernel",
            "6.12",
            "--filter=overlay",
            "--keep",
            "-p",
            "mountkit-overlay",
            "--timeout",
            "60",
        ]))
        .unwrap();
        assert_eq!(o.kernel.as_deref(), Some("6.12"));
        assert_eq!(o.filter.as_deref(), Some("overlay"));
        assert!(o.keep && !o.verbose && !o.self_test);
        assert_eq!(o.packages, ["mountkit-overlay"]);
        assert_eq!(o.timeout, Some(60));
        assert_eq!(o.jobs, 2);
        assert_eq!(parse_args(&s(&["-j", "1"])).unwrap().jobs, 1);
        assert_eq!(parse_args(&s(&["--kernel=all"])).unwrap().kernel, None);
        assert!(
            parse_args(&s(&["--bogus"]))
                .unwrap_err()
                .to_string()
                .contains("\"--bogus\"")
        );
        assert!(parse_args(&s(&["--timeout", "soon"])).is_err());
        assert!(parse_args(&s(&["--filter"])).is_err());
    }

    #[test]
    fn pins_in_repository_parse() {
        let p = paths().unwrap();
        let pins = kernel::parse_pins(&std::fs::read_to_string(p.vm_src.join("kernels")).unwrap()).unwrap();
        let labels: Vec<&str> = pins.iter().map(|x| x.label.as_str()).collect();
        assert_eq!(labels, ["6.1", "6.12"]);
        for l in labels {
            assert!(
                p.vm_src.join(format!("modules-{l}")).is_file(),
                "vm/modules-{l} missing"
            );
        }
    }
}
