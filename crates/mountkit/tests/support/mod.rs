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

/// Runs `body` with a fresh store, in its own mount namespace ([`mountkit_testutil::in_mount_ns`]):
/// what the test mounts, and what `mountkit` mounts in the caller's namespace, goes with it.
pub fn in_store(body: impl FnOnce(&Env)) {
    mountkit_testutil::in_mount_ns(|| body(&Env::new()));
}

/// [`in_store`] with the built-in sample image already there, as `sample`.
pub fn with_sample(body: impl FnOnce(&Env)) {
    in_store(|env| {
        env.sample("sample");
        body(env)
    });
}

/// Polls `done` every 20 ms until it holds (true) or `secs` seconds have passed (false). Generous
/// deadlines: under emulation (the VM suite) a container start takes seconds.
pub fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends SIGKILL to `pid`.
pub fn kill9(pid: i32) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).expect("kill -9");
}

/// `s` as JSON, or a panic quoting it.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
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

    /// Runs `mountkit <args>`, asserts success and parses stdout as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        json(&self.ok(args))
    }

    /// Runs `mountkit <args>`, asserts success and returns stdout's lines.
    pub fn lines(&self, args: &[&str]) -> Vec<String> {
        self.ok(args).lines().map(String::from).collect()
    }

    /// Starts `mountkit <args>` in the background with stderr piped (for [`Env::wait_running`]).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.cmd()
            .args(args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn mountkit")
    }

    /// Builds the built-in sample image under `name` and returns its ID.
    pub fn sample(&self, name: &str) -> String {
        self.ok(&["system", "sample-image", name])
    }

    /// Waits until container `name`, started by `runner` (a `mountkit run` with piped stderr), reports a
    /// pid in `container inspect`, and returns that inspect output. Generous: under emulation (the VM
    /// suite) a start takes seconds. Kills the runner and panics with its stderr if it never does.
    pub fn wait_running(&self, name: &str, runner: &mut std::process::Child) -> serde_json::Value {
        let mut seen = serde_json::Value::Null;
        if wait_until(120, || {
            let out = self.run(&["container", "inspect", name]);
            seen = serde_json::from_slice(&out.stdout).unwrap_or_default();
            seen[0]["state"]["pid"].as_i64().is_some()
        }) {
            return seen;
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

/// A pseudo-terminal of the test's own (the host's devpts), to run `mountkit` on as a shell in a
/// terminal would start it: its own session, the pty's slave as its controlling terminal and as its
/// stdin, stdout and stderr. The test types into the master and reads what `mountkit` writes there.
pub struct Terminal {
    /// The side the test holds.
    pub master: std::os::fd::OwnedFd,
    /// The side `mountkit` runs on (kept open here, so the master never hangs up).
    pub slave: std::os::fd::OwnedFd,
    seen: std::cell::RefCell<Vec<u8>>,
}

impl Terminal {
    /// A new pty of `rows` x `cols`.
    pub fn new(rows: u16, cols: u16) -> Terminal {
        use rustix::pty::OpenptFlags;
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags).expect("posix_openpt");
        rustix::pty::unlockpt(&master).expect("unlockpt");
        let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags).expect("TIOCGPTPEER");
        let t = Terminal {
            master,
            slave,
            seen: Default::default(),
        };
        t.resize(rows, cols);
        t
    }

    /// Sets the window size (the kernel sends SIGWINCH to the pty's foreground process group).
    pub fn resize(&self, rows: u16, cols: u16) {
        let ws = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&self.master, ws).expect("TIOCSWINSZ");
    }

    /// The slave's settings, to compare (termios as text).
    pub fn settings(&self) -> String {
        format!(
            "{:?}",
            rustix::termios::tcgetattr(&self.slave).expect("tcgetattr")
        )
    }

    /// Whether the slave is in raw mode (no canonical input, no echo).
    pub fn is_raw(&self) -> bool {
        use rustix::termios::LocalModes;
        let t = rustix::termios::tcgetattr(&self.slave).expect("tcgetattr");
        !t.local_modes.intersects(LocalModes::ICANON | LocalModes::ECHO)
    }

    /// Starts `cmd` on the slave: a new session whose controlling terminal it is.
    pub fn spawn(&self, mut cmd: Command) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let slave = || std::process::Stdio::from(self.slave.try_clone().expect("dup"));
        cmd.stdin(slave()).stdout(slave()).stderr(slave());
        // SAFETY: only system calls (rustix's, no allocation) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
                Ok(())
            });
        }
        cmd.spawn().expect("spawn on the terminal")
    }

    /// Types `text` (as the keyboard would: bytes into the master).
    pub fn type_in(&self, text: &str) {
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            let n = rustix::io::write(&self.master, rest).expect("write to the master");
            rest = &rest[n..];
        }
    }

    /// Reads what is there now, waiting up to `ms` for something.
    fn read_some(&self, ms: i64) {
        let mut pfd = [rustix::event::PollFd::new(
            &self.master,
            rustix::event::PollFlags::IN,
        )];
        let t = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: ms * 1_000_000,
        };
        if rustix::event::poll(&mut pfd, Some(&t)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            if let Ok(n) = rustix::io::read(&self.master, &mut buf) {
                self.seen.borrow_mut().extend_from_slice(&buf[..n]);
            }
        }
    }

    /// Everything read from the master so far, without carriage returns.
    pub fn output(&self) -> String {
        self.read_some(0);
        String::from_utf8_lossy(&self.seen.borrow()).replace('\r', "")
    }

    /// Waits up to `secs` for the output to contain `needle`.
    pub fn wait_for(&self, needle: &str, secs: u64) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !self.output().contains(needle) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            self.read_some(100);
        }
        true
    }
}
