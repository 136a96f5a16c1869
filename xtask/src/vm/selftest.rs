//! `--self-test`: a failing test, a panicking guest and a hanging guest must each be reported as such.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};

use super::guest::{GuestRun, Prepared, boot, prepare_kernel, test_disk};
use super::report::{Tally, report};
use super::results::{GuestVerdict, Outcome};
use super::{Paths, Setup, kernel, suite};

/// The self-test binary (`vm/selftest/selftest.rs`: one passing, one skipping, one failing test) on a
/// test disk.
pub fn disk(p: &Paths) -> Result<(Vec<suite::TestBinary>, PathBuf)> {
    let exe = p.work.join("vmt_selftest-0000000000000000");
    suite::rustc_static(&p.vm_src.join("selftest/selftest.rs"), &exe, true)?;
    let bins = suite::list(&[exe], None)?;
    let disk = test_disk(p, &bins, None)?;
    Ok((bins, disk))
}

/// Boots the three self-test guests on each kernel; fails naming every one that was misreported.
pub fn self_test(s: &Setup<'_>, pins: &[kernel::KernelPin]) -> Result<()> {
    let mut problems = Vec::new();
    for pin in pins {
        let prep = prepare_kernel(s.p, pin, &s.base)?;
        problems.extend(failing_test(s, &prep)?);
        problems.extend(panicking_guest(s, &prep)?);
        problems.extend(hanging_guest(s, &prep)?);
    }
    if problems.is_empty() {
        println!("vm-test self-test: a failing test, a panic and a hang were each reported as such");
        Ok(())
    } else {
        bail!("vm-test self-test FAILED:\n{}", problems.join("\n"))
    }
}

/// Boots the self-test guest (`extra` on its kernel command line; `--timeout` or `secs`) and prints
/// its report against `plan`.
fn boot_and_report(
    s: &Setup<'_>,
    prep: &Prepared,
    plan: &[(String, String)],
    extra: &str,
    secs: u64,
) -> Result<(GuestRun, Tally)> {
    let timeout = Duration::from_secs(s.opts.timeout.unwrap_or(secs));
    let g = boot(s, prep, plan.len(), extra, timeout)?;
    let t = report(&prep.kernel.pin.label, plan, &g);
    Ok((g, t))
}

/// 1. A failing test: the guest completes, the failure is named, the status is non-zero.
fn failing_test(s: &Setup<'_>, prep: &Prepared) -> Result<Vec<String>> {
    let l = &prep.kernel.pin.label;
    println!("[{l}] self-test 1/3: a guest with one passing, one skipping and one failing test");
    let (g, t) = boot_and_report(s, prep, &s.plan, "", 120)?;
    let v = &g.verdict;
    let outcome = |n: &str| {
        g.console
            .results
            .iter()
            .find(|r| r.name == n)
            .map(|r| r.outcome.clone())
    };
    let mut problems = Vec::new();
    if !matches!(v, GuestVerdict::Completed(n) if *n != 0) {
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
    if outcome("passes") != Some(Outcome::Passed) || !matches!(outcome("skips"), Some(Outcome::Skipped(_))) {
        problems.push(format!(
            "[{l}] fail: passes/skips misreported: {:?} {:?}",
            outcome("passes"),
            outcome("skips")
        ));
    }
    Ok(problems)
}

/// 2. A guest panic.
fn panicking_guest(s: &Setup<'_>, prep: &Prepared) -> Result<Vec<String>> {
    let l = &prep.kernel.pin.label;
    println!("[{l}] self-test 2/3: a guest whose kernel panics (expect PANIC)");
    let (g, _) = boot_and_report(s, prep, &[], "vmt.selftest=panic", 120)?;
    Ok(match g.verdict {
        GuestVerdict::Panicked => vec![],
        v => vec![format!("[{l}] panic: expected Panicked, got {v:?}")],
    })
}

/// 3. A hung guest (short timeout).
fn hanging_guest(s: &Setup<'_>, prep: &Prepared) -> Result<Vec<String>> {
    let l = &prep.kernel.pin.label;
    println!("[{l}] self-test 3/3: a guest that hangs (expect HUNG after the timeout)");
    let (g, _) = boot_and_report(s, prep, &[], "vmt.selftest=hang", 25)?;
    let said_so = g.qemu.lines.iter().any(|x| x.contains("hanging on purpose"));
    Ok(match g.verdict {
        GuestVerdict::Hung(_) if said_so => vec![],
        v => vec![format!(
            "[{l}] hang: expected Hung after the guest said so, got {v:?}"
        )],
    })
}
