//! The test binaries the guest runs: a static build of the workspace's tests (and the `mountkit`
//! binary), their test lists, the plan file, and the self-test binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The target triple passed explicitly so `RUSTFLAGS` (`+crt-static`) reach only target artefacts,
/// never build scripts or proc-macros.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";
const STATIC_FLAGS: &str = "-C target-feature=+crt-static";

/// A test executable and the tests it holds (after filtering).
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// Path on the host.
    pub path: PathBuf,
    /// File name as staged in the guest (`bin/<name>`).
    pub name: String,
    /// Test names (`--list --format terse`), filtered.
    pub tests: Vec<String>,
}

/// Profile settings for the guest build (passed as `--config`, so Cargo.toml is untouched).
///
/// Under TCG, unoptimized code is painfully slow (sha256 of a layer, tar unpacking: a single
/// end-to-end test took 100 s at opt-level 0), so the guest build optimizes: level 1 for the
/// workspace, 2 for dependencies. Debug assertions and overflow checks stay on (the dev profile's),
/// so the tests assert exactly what they do on the host. Line tables keep backtraces readable
/// while making the binaries (and the test disk) several times smaller.
pub const PROFILE_CONFIG: &[&str] = &[
    "profile.dev.opt-level=1",
    "profile.dev.package.\"*\".opt-level=2",
    "profile.dev.debug=\"line-tables-only\"",
];

/// `cargo <args>` in `root`, static and with the guest profile, for [`TARGET`], with JSON messages.
fn cargo(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.env("RUSTFLAGS", STATIC_FLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    for kv in PROFILE_CONFIG {
        c.args(["--config", kv]);
    }
    c.current_dir(root)
        .args(args)
        .args(["--message-format=json-render-diagnostics", "--target", TARGET]);
    c
}

/// Executables listed in cargo's JSON messages: `(path, is_test_harness, target name)`.
pub fn artifacts_from_json(stdout: &str) -> Vec<(PathBuf, bool, String)> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(exe) = v["executable"].as_str() else {
            continue;
        };
        let test = v["profile"]["test"].as_bool().unwrap_or(false);
        let name = v["target"]["name"].as_str().unwrap_or("").to_string();
        out.push((PathBuf::from(exe), test, name));
    }
    out
}

/// Builds the test executables statically (`cargo test --no-run`) and, when in scope, the `mountkit`
/// binary. `packages` empty means the whole workspace except `xtask`.
pub fn build(root: &Path, packages: &[String]) -> Result<(Vec<PathBuf>, Option<PathBuf>)> {
    let mut c = cargo(root, &["test", "--no-run"]);
    if packages.is_empty() {
        c.args(["--workspace", "--exclude", "xtask"]);
    } else {
        for p in packages {
            c.args(["-p", p]);
        }
    }
    let tests: Vec<PathBuf> = artifacts_from_json(&run_cargo(c, "cargo test --no-run (static)")?)
        .into_iter()
        .filter(|(_, test, _)| *test)
        .map(|(p, _, _)| p)
        .collect();
    let mut bin = None;
    if packages.is_empty() || packages.iter().any(|p| p == "mountkit") {
        let c = cargo(root, &["build", "-p", "mountkit", "--bin", "mountkit"]);
        bin = artifacts_from_json(&run_cargo(c, "cargo build -p mountkit (static)")?)
            .into_iter()
            .find(|(_, test, name)| !test && name == "mountkit")
            .map(|(p, _, _)| p);
    }
    Ok((tests, bin))
}

fn run_cargo(mut c: Command, what: &str) -> Result<String> {
    let out = c
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses `--list --format terse` output (`name: test` lines; benchmarks are left out).
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_string)
        .collect()
}

/// True when `pattern` selects `test` of binary `bin` (substring of the test name or of `bin::test`).
pub fn matches(pattern: Option<&str>, bin: &str, test: &str) -> bool {
    match pattern {
        None => true,
        Some(p) => test.contains(p) || format!("{}::{test}", super::results::display_bin(bin)).contains(p),
    }
}

/// Lists the tests of each executable (listing runs no test, so it is safe on the host) and keeps those
/// that `filter` selects.
pub fn list(executables: &[PathBuf], filter: Option<&str>) -> Result<Vec<TestBinary>> {
    let mut out = Vec::new();
    for path in executables {
        let name = path
            .file_name()
            .context("test executable without a file name")?
            .to_string_lossy()
            .into_owned();
        let listed = super::host::output(
            Command::new(path).args(["--list", "--format", "terse"]),
            &format!("listing tests of {path:?}"),
            &format!("{path:?} --list"),
        )?;
        let tests: Vec<String> = parse_list(&String::from_utf8_lossy(&listed))
            .into_iter()
            .filter(|t| matches(filter, &name, t))
            .collect();
        if !tests.is_empty() {
            out.push(TestBinary {
                path: path.clone(),
                name,
                tests,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The plan file `vm/run` reads: `<bin> <test>` per line.
pub fn plan_text(bins: &[TestBinary]) -> String {
    bins.iter()
        .flat_map(|b| b.tests.iter().map(move |t| format!("{} {t}\n", b.name)))
        .collect()
}

/// Compiles a standalone Rust file statically with plain `rustc` (`test` adds `--test`).
pub fn rustc_static(src: &Path, out: &Path, test: bool) -> Result<()> {
    let mut c = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    c.args([
        "--edition",
        "2024",
        "-O",
        "-C",
        "target-feature=+crt-static",
        "--target",
        TARGET,
    ]);
    if test {
        c.arg("--test");
    } else {
        c.args(["-C", "strip=debuginfo"]);
    }
    c.arg("-o").arg(out).arg(src);
    let o = c
        .output()
        .with_context(|| format!("starting rustc for {src:?}"))?;
    if !o.status.success() {
        bail!("rustc {src:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_json_artifacts() {
        let json = r#"{"reason":"compiler-artifact","target":{"name":"overlay","kind":["lib"]},"profile":{"test":true},"executable":"/t/deps/overlay-0123456789abcdef"}
{"reason":"compiler-artifact","target":{"name":"serde","kind":["lib"]},"profile":{"test":false},"executable":null}
{"reason":"compiler-artifact","target":{"name":"mountkit","kind":["bin"]},"profile":{"test":false},"executable":"/t/mountkit"}
{"reason":"build-finished","success":true}"#;
        let a = artifacts_from_json(json);
        assert_eq!(a.len(), 2);
        assert_eq!(
            a[0],
            (
                PathBuf::from("/t/deps/overlay-0123456789abcdef"),
                true,
                "overlay".into()
            )
        );
        assert_eq!(a[1].2, "mountkit");
        assert!(!a[1].1);
    }

    #[test]
    fn terse_list_and_filter() {
        let l = parse_list("tests::a: test\ntests::b: test\nbench_x: benchmark\n");
        assert_eq!(l, ["tests::a", "tests::b"]);
        assert!(matches(Some("b"), "x-0123456789abcdef", "tests::b"));
        assert!(matches(Some("x::tests"), "x-0123456789abcdef", "tests::a"));
        assert!(!matches(Some("zzz"), "x", "tests::a"));
        let plan = plan_text(&[TestBinary {
            path: "/p".into(),
            name: "x".into(),
            tests: l,
        }]);
        assert_eq!(plan, "x tests::a\nx tests::b\n");
    }
}
