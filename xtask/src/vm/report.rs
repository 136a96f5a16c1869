//! Reporting: one guest's results printed line by line, and its tally.

use super::guest::GuestRun;
use super::qemu;
use super::results::{GuestVerdict, Outcome, TestResult, display_bin};

/// How many tests passed, failed and were skipped, and a short account of each failure (repeated in
/// the run's last lines, where a CI log that keeps only its head and tail still shows it).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub failures: Vec<String>,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, t: Tally) {
        self.passed += t.passed;
        self.failed += t.failed;
        self.skipped += t.skipped;
        self.failures.extend(t.failures);
    }
}

impl Tally {
    /// The failures, a few lines each, for the end of the run.
    pub fn print_failures(&self) {
        if self.failures.is_empty() {
            return;
        }
        println!("vm-test: what failed:");
        for f in &self.failures {
            println!("{f}");
        }
    }
}

/// Prints one guest's results; returns its tally (guest-level problems count as one failure).
pub fn report(label: &str, plan: &[(String, String)], g: &GuestRun) -> Tally {
    let results = &g.console.results;
    let mut t = test_lines(label, results);
    failed_outputs(label, results);
    let missing = never_ran(label, plan, results);
    if missing > 0 {
        t.failed += missing;
        t.failures
            .push(format!("  [{label}] {missing} planned test(s) never ran"));
    }
    if !guest_line(label, g) {
        t.failed += 1;
        t.failures
            .push(format!("  [{label}] the guest did not complete: {:?}", g.verdict));
        console_tail(label, &g.qemu);
    }
    t
}

/// A failed test's account for the end of the run: its name and reason, and the lines of its output
/// from the panic on (at most 6).
fn failure_summary(label: &str, r: &TestResult, why: &str) -> String {
    let mut s = format!("  [{label}] {}::{}: {why}", display_bin(&r.bin), r.name);
    if let Some(at) = r.output.iter().position(|l| l.contains("panicked at")) {
        for l in r.output.iter().skip(at).take(6) {
            s.push_str("\n      ");
            s.push_str(l.trim_end());
        }
    }
    s
}

/// A line per test (`ok`, `skipped` with the reason, `FAILED` with the reason), counted.
fn test_lines(label: &str, results: &[TestResult]) -> Tally {
    let mut t = Tally::default();
    for r in results {
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
                t.failures.push(failure_summary(label, r, why));
                println!("[{label}] FAILED  {name}: {why}");
            }
        }
    }
    t
}

/// The last 60 lines of each failed test's output.
fn failed_outputs(label: &str, results: &[TestResult]) {
    for r in results.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))) {
        println!(
            "---- [{label}] {}::{} output (last 60 lines) ----",
            display_bin(&r.bin),
            r.name
        );
        for l in r.output.iter().skip(r.output.len().saturating_sub(60)) {
            println!("    {l}");
        }
    }
}

/// Names (up to 10 of) the planned tests that have no result; returns how many there are.
fn never_ran(label: &str, plan: &[(String, String)], results: &[TestResult]) -> usize {
    let not_run: Vec<&(String, String)> = plan
        .iter()
        .filter(|(b, n)| !results.iter().any(|r| &r.bin == b && &r.name == n))
        .collect();
    if !not_run.is_empty() {
        println!(
            "[{label}] FAILED  {} planned test(s) never ran, e.g.:",
            not_run.len()
        );
        for (b, n) in not_run.iter().take(10) {
            println!("[{label}]           {}::{n}", display_bin(b));
        }
    }
    not_run.len()
}

/// The line on the guest itself (with a panic's lines); returns whether it completed.
fn guest_line(label: &str, g: &GuestRun) -> bool {
    let c = &g.console;
    let release = c.kernel_release.as_deref().unwrap_or("release unknown");
    let secs = g.qemu.elapsed.as_secs_f64();
    match &g.verdict {
        GuestVerdict::Completed(n) => {
            println!("[{label}] guest {release}: completed (VMT-RESULT {n}) in {secs:.1} s");
            return true;
        }
        GuestVerdict::Panicked => {
            println!("[{label}] FAILED  guest {release}: kernel PANIC after {secs:.1} s");
            for l in &c.panic_lines {
                println!("[{label}]         {l}");
            }
        }
        GuestVerdict::Hung(s) => {
            println!("[{label}] FAILED  guest {release}: HUNG, no result within {s} s; QEMU killed");
        }
        GuestVerdict::Broken(why) => {
            println!(
                "[{label}] FAILED  guest {release}: {why} (QEMU status {:?}, {secs:.1} s)",
                g.qemu.rc
            );
        }
    }
    false
}

/// For a guest that did not complete: QEMU's stderr and the last 15 console lines.
fn console_tail(label: &str, run: &qemu::QemuRun) {
    if !run.stderr.trim().is_empty() {
        println!("[{label}] QEMU stderr: {}", run.stderr.trim());
    }
    println!("[{label}] last console lines:");
    for l in run.lines.iter().skip(run.lines.len().saturating_sub(15)) {
        println!("    {l}");
    }
}
