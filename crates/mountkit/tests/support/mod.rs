//! Support for the end-to-end tests: a temp store and a way to run the `mountkit` binary against it.
//!
//! Each test file includes it with `mod support;`, so not every file uses every helper.
//!
//! The binary is `$MOUNTKIT_BIN` when set (the VM harness sets it: the guest runs the test binaries away
//! from their build path), else the one cargo built for this package's integration tests
//! (`CARGO_BIN_EXE_mountkit`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Path of the `mountkit` binary under test.
pub fn bin() -> PathBuf {
    std::env::var_os("MOUNTKIT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mountkit")))
}

/// A temporary store (`--root`) and helpers to run commands against it.
pub struct Env {
    /// Holds the temp dir for the test's lifetime.
    pub dir: tempfile::TempDir,
    /// The store root.
    pub root: PathBuf,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    /// A fresh store in a new temp dir.
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("mountkit-e2e-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().join("store");
        Env { dir, root }
    }

    /// A `mountkit --root <root>` command, ready for more arguments.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--root").arg(&self.root);
        c.env_remove("MOUNTKIT_ROOT");
        c
    }

    /// Runs `mountkit <args>` and returns its output, whatever the status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("spawn mountkit")
    }

    /// Runs `mountkit <args>`, asserts success and returns stdout without the trailing newline.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mountkit {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8 stdout")
            .trim_end()
            .to_string()
    }

    /// Runs `mountkit <args>`, asserts failure with `code` and that stderr contains `needle`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32, needle: &str) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "mountkit {args:?}: stderr: {stderr}"
        );
        assert!(
            stderr.contains(needle),
            "mountkit {args:?}: expected {needle:?} in stderr: {stderr}"
        );
        stderr
    }

    /// Builds the built-in sample image under `name` and returns its ID.
    pub fn sample(&self, name: &str) -> String {
        self.ok(&["system", "sample-image", name])
    }

    /// Waits until container `name`, started by `runner` (a `mountkit run` with piped stderr), reports a
    /// pid in `container inspect`, and returns that inspect output. Generous: under emulation (the VM
    /// suite) a start takes seconds. Kills the runner and panics with its stderr if it never does.
    pub fn wait_running(&self, name: &str, runner: &mut std::process::Child) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut seen = serde_json::Value::Null;
        while std::time::Instant::now() < deadline {
            let out = self.run(&["container", "inspect", name]);
            seen = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if seen[0]["state"]["pid"].as_i64().is_some() {
                return seen;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = runner.kill();
        let mut stderr = String::new();
        if let Some(mut e) = runner.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        panic!("container {name} never reported a pid; runner: {stderr}\ninspect: {seen}");
    }

    /// The writable layer of a container.
    pub fn upper(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id).join("upper")
    }

    /// A path inside the temp dir (outside the store).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// Mount points of the calling process's namespace that lie under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let d = dir.to_string_lossy().into_owned();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| mp.starts_with(&d))
        .map(String::from)
        .collect()
}
