//! Reading the guest's serial console: per-test blocks written by `vm/run`, the `VMT-RESULT:`
//! sentinel, and the verdict on the guest itself (completed, panicked, hung, vanished).

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// libtest reported `ok` and the test printed no `SKIP` line.
    Passed,
    /// The test printed `SKIP <name>: <why>` (a missing privilege or kernel feature) or is `#[ignore]`d.
    Skipped(String),
    /// libtest reported `FAILED`, the process exited non-zero, or the guest died during the test.
    Failed(String),
}

/// One test's result and its captured output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// Test binary file name as staged (`mountkit_overlay-0123abcd...`).
    pub bin: String,
    /// Test name as libtest knows it (`tests::mounts_stack`).
    pub name: String,
    /// The verdict.
    pub outcome: Outcome,
    /// The test's console output (between its BEGIN and END markers).
    pub output: Vec<String>,
}

/// Everything parsed from one guest console.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Console {
    /// Finished tests in the order they ran (and an unfinished one, marked failed).
    pub results: Vec<TestResult>,
    /// The status from the `VMT-RESULT: <n>` line, if it was printed.
    pub sentinel: Option<i32>,
    /// `uname -r` inside the guest (`VMT-KERNEL:` line).
    pub kernel_release: Option<String>,
    /// Lines mentioning a kernel panic, for the report.
    pub panic_lines: Vec<String>,
}

/// Decides a test's outcome from its output block and exit status.
pub fn classify(name: &str, body: &[String], rc: i32) -> Outcome {
    let marker = format!("test {name} ...");
    let libtest: Option<&str> = body.iter().rev().find_map(|l| {
        let l = l.trim();
        l.find(&marker).map(|i| l[i + marker.len()..].trim())
    });
    let skip = body.iter().find_map(|l| {
        let t = l.trim_start();
        let t = t.find(" ... SKIP ").map(|i| &t[i + 5..]).unwrap_or(t);
        t.strip_prefix("SKIP ").map(|s| s.trim().to_string())
    });
    let summary_ok = body.iter().any(|l| l.contains("test result: ok. 1 passed"));
    let ignored = body
        .iter()
        .any(|l| l.contains("test result: ok. 0 passed; 0 failed; 1 ignored"))
        || libtest.is_some_and(|s| s.ends_with("ignored") || s.contains("ignored,"));
    if rc != 0 {
        let why = if libtest.is_some_and(|s| s.ends_with("FAILED"))
            || body.iter().any(|l| l.contains("test result: FAILED"))
        {
            "test failed".to_string()
        } else {
            format!("test process exited with status {rc}")
        };
        return Outcome::Failed(why);
    }
    if ignored {
        return Outcome::Skipped("ignored".into());
    }
    if let Some(why) = skip {
        return Outcome::Skipped(why);
    }
    if summary_ok || libtest.is_some_and(|s| s.ends_with("ok")) {
        return Outcome::Passed;
    }
    Outcome::Failed("exit status 0 but libtest reported no result (was the test run at all?)".into())
}

/// Parses a whole console transcript (lines without their line terminators).
pub fn parse_console<S: AsRef<str>>(lines: &[S]) -> Console {
    let mut c = Console::default();
    let mut current: Option<(String, String, Vec<String>)> = None;
    for line in lines {
        let line = line.as_ref().trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("VMT-BEGIN ") {
            if let Some((bin, name, body)) = current.take() {
                c.results
                    .push(unfinished(bin, name, body, "its END marker is missing"));
            }
            let (bin, name) = rest.split_once(' ').unwrap_or((rest, ""));
            current = Some((bin.to_string(), name.to_string(), Vec::new()));
        } else if let Some(rest) = line.strip_prefix("VMT-END ") {
            let mut w = rest.rsplitn(2, ' ');
            let rc = w.next().and_then(|s| s.parse::<i32>().ok()).unwrap_or(-1);
            if let Some((bin, name, body)) = current.take() {
                let outcome = classify(&name, &body, rc);
                c.results.push(TestResult {
                    bin,
                    name,
                    outcome,
                    output: body,
                });
            }
        } else if let Some(rc) = line.strip_prefix("VMT-RESULT: ") {
            c.sentinel = rc.trim().parse().ok();
        } else if let Some(r) = line.strip_prefix("VMT-KERNEL: ") {
            c.kernel_release = Some(r.trim().to_string());
        } else {
            if line.contains("Kernel panic") || line.contains("sysrq: Trigger a crash") {
                c.panic_lines.push(line.to_string());
            }
            if let Some((_, _, body)) = current.as_mut() {
                body.push(line.to_string());
            }
        }
    }
    if let Some((bin, name, body)) = current.take() {
        c.results
            .push(unfinished(bin, name, body, "the guest stopped while it ran"));
    }
    c
}

fn unfinished(bin: String, name: String, body: Vec<String>, why: &str) -> TestResult {
    TestResult {
        bin,
        name,
        outcome: Outcome::Failed(format!("no result: {why}")),
        output: body,
    }
}

/// How the guest as a whole ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestVerdict {
    /// `/init` reported `VMT-RESULT: <n>` and exited through isa-debug-exit.
    Completed(i32),
    /// The kernel panicked (pvpanic made QEMU exit with status 1).
    Panicked,
    /// No exit before the timeout; QEMU was killed.
    Hung(u64),
    /// Anything else (powered off without reporting, QEMU error, inconsistent status).
    Broken(String),
}

/// Combines QEMU's exit status, the timeout and the sentinel into a verdict.
pub fn guest_verdict(qemu_rc: Option<i32>, timed_out: Option<u64>, sentinel: Option<i32>) -> GuestVerdict {
    if let Some(secs) = timed_out {
        return GuestVerdict::Hung(secs);
    }
    match (qemu_rc, sentinel) {
        (Some(33), Some(0)) => GuestVerdict::Completed(0),
        (Some(35), Some(n)) if n != 0 => GuestVerdict::Completed(n),
        (Some(33 | 35), Some(n)) => GuestVerdict::Broken(format!(
            "exit device status {qemu_rc:?} disagrees with VMT-RESULT {n}"
        )),
        (Some(33 | 35), None) => GuestVerdict::Broken("exit device used but no VMT-RESULT line".into()),
        (Some(1), _) => GuestVerdict::Panicked,
        (Some(0), _) => GuestVerdict::Broken("the guest powered off without reporting a result".into()),
        (Some(n), _) => GuestVerdict::Broken(format!("QEMU exited with status {n}")),
        (None, _) => GuestVerdict::Broken("QEMU was killed by a signal".into()),
    }
}

/// `mountkit_overlay-0123456789abcdef` -> `mountkit_overlay` (cargo's metadata hash dropped).
pub fn display_bin(bin: &str) -> &str {
    match bin.rsplit_once('-') {
        Some((stem, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => stem,
        _ => bin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    #[test]
    fn classifies_libtest_output() {
        let ok = v(
            "\nrunning 1 test\ntest a::b ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 9 filtered out; finished in 0.01s\n",
        );
        assert_eq!(classify("a::b", &ok, 0), Outcome::Passed);
        // --nocapture with one thread: the test's stderr lands after "test NAME ... ".
        let skip = v(
            "running 1 test\ntest a::c ... SKIP c: overlay lowerdir+ needs Linux 6.8\nok\ntest result: ok. 1 passed; 0 failed\n",
        );
        assert_eq!(
            classify("a::c", &skip, 0),
            Outcome::Skipped("c: overlay lowerdir+ needs Linux 6.8".into())
        );
        let skip2 = v("running 1 test\nSKIP c: needs root (privileged test)\ntest a::c ... ok\n");
        assert_eq!(
            classify("a::c", &skip2, 0),
            Outcome::Skipped("c: needs root (privileged test)".into())
        );
        let ign = v(
            "running 1 test\ntest a::d ... ignored\n\ntest result: ok. 0 passed; 0 failed; 1 ignored; 0 measured\n",
        );
        assert_eq!(classify("a::d", &ign, 0), Outcome::Skipped("ignored".into()));
        let fail = v(
            "test a::e ... FAILED\nfailures:\n---- a::e stdout ----\nboom\ntest result: FAILED. 0 passed; 1 failed\n",
        );
        assert_eq!(
            classify("a::e", &fail, 101),
            Outcome::Failed("test failed".into())
        );
        assert_eq!(
            classify("a::f", &v("Segmentation fault"), 139),
            Outcome::Failed("test process exited with status 139".into())
        );
        assert!(matches!(
            classify("a::g", &v("running 0 tests\ntest result: ok. 0 passed"), 0),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn parses_console_blocks_and_sentinel() {
        let console = "[    2.1] random kernel line\r\nVMT-KERNEL: 6.1.0-56-cloud-amd64\r\n\
            VMT-BEGIN t-0123456789abcdef x::ok\r\nrunning 1 test\r\ntest x::ok ... ok\r\n\r\nVMT-END t-0123456789abcdef x::ok 0\r\n\
            VMT-BEGIN t-0123456789abcdef x::bad\r\ntest x::bad ... FAILED\r\nVMT-END t-0123456789abcdef x::bad 101\r\n\
            VMT-RESULT: 1\r\n";
        let lines: Vec<&str> = console.split('\n').collect();
        let c = parse_console(&lines);
        assert_eq!(c.kernel_release.as_deref(), Some("6.1.0-56-cloud-amd64"));
        assert_eq!(c.sentinel, Some(1));
        assert_eq!(c.results.len(), 2);
        assert_eq!(c.results[0].outcome, Outcome::Passed);
        assert_eq!(c.results[1].name, "x::bad");
        assert_eq!(c.results[1].outcome, Outcome::Failed("test failed".into()));
        assert_eq!(display_bin(&c.results[0].bin), "t");
    }

    #[test]
    fn unfinished_test_is_a_failure() {
        let c = parse_console(&[
            "VMT-BEGIN b x::hangs",
            "running 1 test",
            "---[ end Kernel panic - not syncing ]---",
        ]);
        assert_eq!(c.results.len(), 1);
        assert!(matches!(&c.results[0].outcome, Outcome::Failed(w) if w.contains("stopped")));
        assert_eq!(c.sentinel, None);
        assert_eq!(c.panic_lines.len(), 1);
    }

    #[test]
    fn verdicts() {
        assert_eq!(guest_verdict(Some(33), None, Some(0)), GuestVerdict::Completed(0));
        assert_eq!(guest_verdict(Some(35), None, Some(1)), GuestVerdict::Completed(1));
        assert_eq!(guest_verdict(Some(1), None, None), GuestVerdict::Panicked);
        assert_eq!(guest_verdict(None, Some(30), None), GuestVerdict::Hung(30));
        assert!(matches!(
            guest_verdict(Some(0), None, None),
            GuestVerdict::Broken(_)
        ));
        assert!(matches!(
            guest_verdict(Some(33), None, None),
            GuestVerdict::Broken(_)
        ));
        assert!(matches!(
            guest_verdict(Some(33), None, Some(1)),
            GuestVerdict::Broken(_)
        ));
    }
}
