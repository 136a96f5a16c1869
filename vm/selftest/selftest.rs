//! Test binary for `cargo xtask vm-test --self-test`: compiled with `rustc --test` (static) and run in
//! the guest in place of the workspace's tests, so the harness's own parsing and exit protocol are tested
//! end to end. Expected outcome: `passes` passes, `skips` is counted as skipped, `deliberate_failure` fails.

#[test]
fn passes() {
    assert_eq!(std::fs::read_to_string("/proc/self/comm").map(|s| !s.is_empty()).ok(), Some(true));
}

#[test]
fn skips() {
    eprintln!("SKIP skips: the self-test pretends a kernel feature is missing");
}

#[test]
fn deliberate_failure() {
    assert_eq!(1 + 1, 3, "this failure is deliberate (vm-test self-test)");
}
