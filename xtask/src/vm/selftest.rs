//! `--self-test`: a failing test, a panicking guest and a hanging guest must each be reported as such.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};

use super::guest::{boot, prepare_kernel};
use super::report::report;
use super::results::{GuestVerdict, Outcome};
use super::{Options, Paths, image, kernel, plan_of, suite};

pub fn self_test(
    opts: &Options,
    p: &Paths,
    pins: &[kernel::KernelPin],
    bins: &[suite::TestBinary],
    disk: &Path,
    vmt_exit: &Path,
    busybox: &Path,
) -> Result<()> {
    let base = image::BaseParts {
        vm_src: &p.vm_src,
        busybox,
        vmt_exit,
    };
    let plan = plan_of(bins);
    let mut problems = Vec::new();
    for pin in pins {
        let prep = prepare_kernel(p, pin, &base)?;
        let l = &pin.label;
        // 1. A failing test: the guest completes, the failure is named, the status is non-zero.
        println!("[{l}] self-test 1/3: a guest with one passing, one skipping and one failing test");
        let (run, c, v) = boot(
            opts,
            &prep,
            Some(disk),
            plan.len(),
            "",
            Duration::from_secs(opts.timeout.unwrap_or(120)),
        )?;
        let t = report(l, &plan, &run, &c, &v);
        let outcome = |n: &str| c.results.iter().find(|r| r.name == n).map(|r| r.outcome.clone());
        if !matches!(v, GuestVerdict::Completed(n) if n != 0) {
            problems.push(format!(
                "[{l}] fail: expected a completed guest with a non-zero result, got {v:?}"
            ));
        }
        if !matches!(outcome("deliberate_failure"), Some(Outcome::Failed(_))) || t.failed != 1 {
            problems.push(format!(
                "[{l}] fail: deliberate_failure not reported as the one failure ({:?})",
                outcome("deliberate_failure")
            ));
        }
        if outcome("passes") != Some(Outcome::Passed)
            || !matches!(outcome("skips"), Some(Outcome::Skipped(_)))
        {
            problems.push(format!(
                "[{l}] fail: passes/skips misreported: {:?} {:?}",
                outcome("passes"),
                outcome("skips")
            ));
        }
        // 2. A guest panic.
        println!("[{l}] self-test 2/3: a guest whose kernel panics (expect PANIC)");
        let (run, c, v) = boot(
            opts,
            &prep,
            Some(disk),
            0,
            "vmt.selftest=panic",
            Duration::from_secs(opts.timeout.unwrap_or(120)),
        )?;
        report(l, &[], &run, &c, &v);
        if v != GuestVerdict::Panicked {
            problems.push(format!("[{l}] panic: expected Panicked, got {v:?}"));
        }
        // 3. A hung guest (short timeout).
        println!("[{l}] self-test 3/3: a guest that hangs (expect HUNG after the timeout)");
        let (run, c, v) = boot(
            opts,
            &prep,
            Some(disk),
            0,
            "vmt.selftest=hang",
            Duration::from_secs(opts.timeout.unwrap_or(25)),
        )?;
        report(l, &[], &run, &c, &v);
        if !matches!(v, GuestVerdict::Hung(_)) || !run.lines.iter().any(|x| x.contains("hanging on purpose"))
        {
            problems.push(format!(
                "[{l}] hang: expected Hung after the guest said so, got {v:?}"
            ));
        }
    }
    if problems.is_empty() {
        println!("vm-test self-test: a failing test, a panic and a hang were each reported as such");
        Ok(())
    } else {
        bail!("vm-test self-test FAILED:\n{}", problems.join("\n"))
    }
}
