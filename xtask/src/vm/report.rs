//! Reporting: one guest's results printed line by line, and its tally.

use super::qemu;
use super::results::{Console, GuestVerdict, Outcome, display_bin};

#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// Prints one guest's results; returns its tally (guest-level problems count as one failure).
pub fn report(
    label: &str,
    plan: &[(String, String)],
    run: &qemu::QemuRun,
    c: &Console,
    v: &GuestVerdict,
) -> Tally {
    let mut t = Tally::default();
    let release = c.kernel_release.as_deref().unwrap_or("release unknown");
    for r in &c.results {
        let name = format!("{}::{}", display_bin(&r.bin), r.name);
        match &r.outcome {
            Outcome::Passed => {
                t.passed += 1;
                println!("[{label}] ok      {name}");
            }
            Outcome::Skipped(why) => {
                t.skipped += 1;
                println!("[{label}] skipped {name}: {why}");
            }
            Outcome::Failed(why) => {
                t.failed += 1;
                println!("[{label}] FAILED  {name}: {why}");
            }
        }
    }
    for r in c
        .results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
    {
        println!(
            "---- [{label}] {}::{} output (last 60 lines) ----",
            display_bin(&r.bin),
            r.name
        );
        for l in r.output.iter().skip(r.output.len().saturating_sub(60)) {
            println!("    {l}");
        }
    }
    let not_run: Vec<&(String, String)> = plan
        .iter()
        .filter(|(b, n)| !c.results.iter().any(|r| &r.bin == b && &r.name == n))
        .collect();
    if !not_run.is_empty() {
        t.failed += not_run.len();
        println!(
            "[{label}] FAILED  {} planned test(s) never ran, e.g.:",
            not_run.len()
        );
        for (b, n) in not_run.iter().take(10) {
            println!("[{label}]           {}::{n}", display_bin(b));
        }
    }
    let secs = run.elapsed.as_secs_f64();
    match v {
        GuestVerdict::Completed(n) => {
            println!("[{label}] guest {release}: completed (VMT-RESULT {n}) in {secs:.1} s")
        }
        GuestVerdict::Panicked => {
            t.failed += 1;
            println!("[{label}] FAILED  guest {release}: kernel PANIC after {secs:.1} s");
            for l in &c.panic_lines {
                println!("[{label}]         {l}");
            }
        }
        GuestVerdict::Hung(s) => {
            t.failed += 1;
            println!("[{label}] FAILED  guest {release}: HUNG, no result within {s} s; QEMU killed");
        }
        GuestVerdict::Broken(why) => {
            t.failed += 1;
            println!(
                "[{label}] FAILED  guest {release}: {why} (QEMU status {:?}, {secs:.1} s)",
                run.rc
            );
        }
    }
    if !matches!(v, GuestVerdict::Completed(_)) {
        if !run.stderr.trim().is_empty() {
            println!("[{label}] QEMU stderr: {}", run.stderr.trim());
        }
        println!("[{label}] last console lines:");
        for l in run.lines.iter().skip(run.lines.len().saturating_sub(15)) {
            println!("    {l}");
        }
    }
    t
}
