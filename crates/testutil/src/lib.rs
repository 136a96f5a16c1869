//! Test support shared by the mountkit crates (a dev-dependency only, never published).
//!
//! Privileged tests mount for real. To keep the host clean, every such test runs its body through
//! [`in_mount_ns`]: the body runs in a forked child that has its own mount namespace with `/` made
//! recursively private, so whatever it mounts disappears with the child, even if it panics or is killed.
//!
//! Dependencies: `nix` for fork/unshare/mount/waitpid, `libc` for `_exit`.

use std::io::{Read, Write};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork, pipe};

/// The reason every privileged test gives, word for word: `#[ignore = "privileged: needs root (cargo
/// xtask ci runs these as root)"]` (an attribute takes a literal, so the text is repeated; the
/// `ignore_reasons` test of this crate checks every copy against this one).
///
/// So a non-root `cargo nextest run --workspace` reports those tests as skipped instead of passing them
/// without running; as root, `cargo nextest run --workspace --run-ignored all` (what `cargo xtask ci`
/// runs) includes them, and the VM guests run them with libtest's `--include-ignored`.
pub const PRIVILEGED: &str = "privileged: needs root (cargo xtask ci runs these as root)";

/// True when the test process runs as root (uid 0), which privileged tests require.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The first line of every privileged test (one marked `#[ignore = "privileged: ..."]`, see
/// [`PRIVILEGED`]): returns when the process runs as root, else panics, naming the test and its need.
///
/// A privileged test that is forced to run without root (`--run-ignored all` or `--include-ignored` as
/// another user) thus fails loudly instead of passing without having run.
#[track_caller]
pub fn require_root() {
    if is_root() {
        return;
    }
    // libtest runs each test on a thread named after it (nextest too: one test per process).
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    panic!(
        "{test} is a privileged test and needs root (uid 0): it mounts, unshares namespaces or changes \
         ownership for real, and this process runs as uid {}. It is #[ignore]d so that runs without root \
         report it as skipped; run it as root (`cargo xtask ci`, or `cargo nextest run --run-ignored all`) \
         instead of forcing it.",
        nix::unistd::geteuid()
    );
}

/// Moves the calling thread (and the processes it starts later) into a new mount namespace whose
/// mounts are all private: nothing mounted afterwards is seen outside, nor outlives the process. For
/// benchmarks, which mount fresh filesystems; a test uses [`in_mount_ns`]. Panics if it cannot.
pub fn private_mount_ns() {
    unshare(CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / rprivate");
}

/// Runs `body` in a forked child with a new, recursively private mount namespace and panics (in the
/// parent) with the child's panic message if the body panicked or the child died.
///
/// Nothing the body mounts is visible to the host: the namespace dies with the child.
pub fn in_mount_ns<F: FnOnce()>(body: F) {
    let (rd, wr) = pipe().expect("pipe");
    // SAFETY: the child only runs the test body and then `_exit`s; tests run one per process under
    // nextest, and the body is expected to be async-signal-safe enough for a test (no locks held).
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(rd);
            let mut wr = std::fs::File::from(wr);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                private_mount_ns();
                body();
            }));
            let code = match result {
                Ok(()) => 0,
                Err(payload) => {
                    let msg = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panic with a non-string payload".into());
                    let _ = wr.write_all(msg.as_bytes());
                    1
                }
            };
            let _ = wr.flush();
            // SAFETY: `_exit` skips atexit handlers and destructors the parent owns.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(wr);
            let mut msg = String::new();
            let _ = std::fs::File::from(rd).read_to_string(&mut msg);
            match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, 0) => {}
                WaitStatus::Exited(_, code) => {
                    panic!("test body failed in its mount namespace (exit {code}): {msg}")
                }
                other => panic!("test child ended abnormally: {other:?}: {msg}"),
            }
        }
    }
}
