//! Run a command in new mount, PID, UTS and IPC namespaces over a root that the caller prepares.
//!
//! `mountkit-ns-runner` knows nothing of overlays or volumes. The caller hands [`spawn`] (or [`run`]) a
//! [`Spec`] (argv, environment, working directory, user, hostname, read-only root) and a [`Prepare`]
//! closure. The closure runs in the container process once its new mount namespace exists and `/` has
//! been made recursively private; it mounts whatever it wants and returns the path of the prepared root.
//! Everything mounted there lives only in the container's mount namespace: when the container's last
//! process exits, the kernel drops every mount, and a killed runner leaks nothing into the host.
//!
//! # Example
//! ```no_run
//! use mountkit_ns_runner::{run, Exit, Spec};
//! let spec = Spec::new(["/bin/sh", "-c", "echo hello from $(hostname)"]).hostname("box");
//! let exit = run(&spec, Box::new(|| Ok("/srv/rootfs".into()))).unwrap();
//! assert_eq!(exit, Exit::Code(0));
//! ```
//! (`no_run`: it needs root; the crate's tests run the same calls as root.)
//!
//! # Main items
//!
//! - [`spawn`] starts the process and returns once it was executed ([`Running`]: [`Running::pid`],
//!   [`Running::signal`], [`Running::wait`], which forwards SIGINT/SIGTERM/SIGHUP); [`run`] is both.
//! - [`Spec`]: argv, environment, working directory, user and groups, hostname, read-only root.
//! - [`Prepare`]: the caller's closure that prepares the root inside the new mount namespace.
//! - [`Exit`] (a status or a signal); [`Error`]: [`Error::Setup`] and [`Error::Prepare`] (exit code
//!   125), [`Error::NotFound`] (127), [`Error::CannotExecute`] (126), as `docker run`.
//! - [`resolve_user`], [`build_env`], [`DEFAULT_PATH`]: the user and environment rules, usable alone.
//! - [`Target`]: a running container's process, pinned (`/proc/PID` and a pidfd); [`Target::exec`]
//!   starts a [`Spec`] in its namespaces with the same last steps (user, working directory,
//!   environment, seccomp, capabilities, `no_new_privs`) and returns a [`Running`], as `docker exec`
//!   ([`Target::exec_detached`]: `docker exec -d`). See `enter.rs`.
//!
//! The process is cloned with `CLONE_NEWPID | CLONE_VM | CLONE_VFORK` (it shares the caller's memory
//! until its exec, as `posix_spawn` does), dies with the runner (`PR_SET_PDEATHSIG`), unshares mount,
//! UTS and IPC namespaces, makes `/` private, runs [`Prepare`], mounts /proc, a minimal /dev and /sys
//! (targets resolved inside the root), masks Docker's paths, pivots, drops capabilities
//! ([`Spec::capabilities`], e.g. [`docker_default_capabilities`]), switches user and execs: one step, one
//! function in `child.rs`. It leads a session of its own (`setsid`: no controlling terminal), may get a
//! network namespace with only `lo` ([`Network::None`]), a seccomp filter ([`Spec::seccomp`], e.g.
//! Docker's default profile's effect: [`seccomp::Policy::docker_default`]) and `no_new_privs`
//! ([`Spec::no_new_privs`]);
//! [`Spec::privileged`] skips the masked paths and leaves `/sys` writable. With [`Spec::tty`] its
//! descriptors 0-2 are a pty of the container's own devpts instance, its controlling terminal, whose
//! master the caller takes with [`Running::take_tty`] (sent back over a socket pair: see `tty.rs`);
//! without one, [`Spec::stdin`] keeps the caller's stdin or gives `/dev/null`. The steps in full, and the decisions (no supervisor process, memory
//! shared until exec, signals, users, what is not done here), are in the repository's
//! `docs/ns-runner.md`.
//!
//! # Dependencies
//! - `rustix`: every system call it has, typed (mount, umount2, pivot_root, unshare, prctl,
//!   sethostname, set*id, capset, setsid, mknodat/mkdirat/symlinkat, umask, pipe, mmap, poll, waitpid,
//!   pidfd_open; for the terminal: socketpair, sendmsg/recvmsg with SCM_RIGHTS, the pty ioctls,
//!   TIOCSCTTY, TIOCSWINSZ). Its
//!   `linux_raw` backend makes each call directly (no glibc state, no `errno`), which the container
//!   process, sharing the caller's memory, needs; its set*id are the per-thread system calls.
//! - `libc`: only what rustix lacks, each marked where it is used: `clone` onto a stack of our own,
//!   signal masks, dispositions and `signalfd` (rustix has the first two only for libc-free runtimes,
//!   and no signalfd), `kill` with any signal number, `close_range`, `execve`, `_exit`, the `lo`
//!   ioctls (`SIOCGIFFLAGS`/`SIOCSIFFLAGS`) and the seccomp probe (`prctl(PR_SET_SECCOMP)`).
//! - `mountkit-safefs`: in-root path resolution for every mount target (`inroot`), the root's mount ID,
//!   and the two ways to make a mount read-only (`mount_setattr`, the flag-keeping bind remount).
//! - `caps`: the capability names and sets ([`Capability`], [`CapsHashSet`]; `CAP_` prefix and case
//!   handled, the list of every capability). The container process sets them with rustix's per-thread
//!   calls instead of `caps::set` (one `capset` for the three sets, after `setuid`, in runc's order; see
//!   `confine.rs`); it needs nothing more from `caps`.
//! - `seccompiler` (rust-vmm's, Firecracker's): compiles a [`seccomp::Policy`] into BPF. Pure Rust, so
//!   the static builds stay static and no C library is needed to build or run; a hand-written BPF
//!   assembler would be code to get wrong. Its filters check this machine's architecture only (see
//!   the `seccomp` module: i386 system calls are killed).
//! - `syscalls`: the system call table of this architecture (names to numbers), generated from the
//!   kernel's sources, which a profile's names need.
//! - `serde`/`serde_json`: reading Docker/OCI seccomp profiles ([`seccomp::Policy::from_profile_json`]).
//! - `thiserror` for [`Error`]; `tracing` around every privileged step.
//! - Not used: `nix` (a second typed layer beside rustix), `sys-mount` (rustix's mount calls do),
//!   `procfs` (no /proc table is read on this path), `libseccomp` (a C library to build and link
//!   statically, for what `seccompiler` does here in Rust).
//!
#![deny(missing_docs)]

mod child;
mod confine;
mod enter;
pub mod seccomp;
mod sys;
mod tty;
mod user;
mod wire;

use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::pipe::PipeFlags;
use rustix::process::{Pid, PidfdFlags, WaitOptions, WaitStatus};
use tracing::debug;

pub use confine::{
    Capability, CapsHashSet, DOCKER_DEFAULT_CAPABILITIES, Network, all_capabilities,
    docker_default_capabilities, parse_capability, seccomp_filter_supported,
};
pub use enter::Target;
pub use tty::{Stdin, TtySize};
pub use user::{
    DEFAULT_PATH, GroupEntry, PasswdEntry, ResolvedUser, build_env, parse_group, parse_passwd,
    resolve_additional_groups, resolve_user,
};

/// What to run and how (Docker's `run` flags that concern the process).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    /// The command and its arguments; `args[0]` is looked up in the container's `PATH` unless it
    /// contains a `/`.
    pub args: Vec<String>,
    /// The environment, as `KEY=VALUE` strings, passed exactly (plus defaults, see [`build_env`]).
    pub env: Vec<String>,
    /// Absolute working directory inside the container (created if missing); `/` when `None`.
    pub workdir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved in the container's own passwd/group files;
    /// root when `None`.
    pub user: Option<String>,
    /// Extra supplementary groups (names from the container's group file, or numeric gids).
    pub groups: Vec<String>,
    /// Hostname in the container's UTS namespace.
    pub hostname: Option<String>,
    /// Remount the root read-only after every mount under it is in place.
    pub readonly_root: bool,
    /// The capabilities the process keeps (bounding, inheritable; effective and permitted for uid 0,
    /// none for another user; ambient empty). `None` leaves the caller's credentials as they are.
    pub capabilities: Option<CapsHashSet>,
    /// `prctl(PR_SET_NO_NEW_PRIVS)` right before exec (Docker's `no-new-privileges`).
    pub no_new_privs: bool,
    /// The host's network namespace, or a new one with only `lo`.
    pub network: Network,
    /// The seccomp filter loaded before exec (compiled once: see [`seccomp::Policy::compile`]); `None`
    /// loads none (Docker's `seccomp=unconfined`). Loaded while the process still has
    /// `CAP_SYS_ADMIN`, before the capabilities are dropped (runc's order, so `no_new_privs` is not
    /// needed and setuid programs keep working, as in Docker); with [`Spec::no_new_privs`] it is loaded
    /// last, right before exec, so the filter sees as few of the runner's own calls as possible.
    pub seccomp: Option<std::sync::Arc<seccomp::Filter>>,
    /// Docker's `--privileged` for the mounts: no masked or read-only paths, `/sys` read-write. (The
    /// capabilities are [`Spec::capabilities`]'s, decided by the caller.)
    pub privileged: bool,
    /// Docker's `-t`: a pseudo-terminal from the container's own devpts instance as its descriptors
    /// 0-2 and controlling terminal; its master comes back from [`Running::take_tty`] for the caller
    /// to relay.
    pub tty: bool,
    /// With [`Spec::tty`], the terminal's size before the command runs (Docker's console size: no
    /// race with a command that reads it at once); `None` leaves the kernel's 0x0.
    pub tty_size: Option<TtySize>,
    /// The standard input when there is no terminal: inherited (Docker's `-i`) or `/dev/null`.
    pub stdin: Stdin,
    /// Docker's `--init`: a host program bound read-only at `/dev/init` in the container (the caller
    /// makes it PID 1 by putting `/dev/init` first in [`Spec::args`]). The program must run in any
    /// image: a static executable (mountkit gives its own binary, whose init mode forwards signals to
    /// the command and reaps zombies).
    pub init: Option<PathBuf>,
}

impl Spec {
    /// A spec that runs `args` as root in `/`, with the default environment.
    pub fn new<I, S>(args: I) -> Spec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Spec {
            args: args.into_iter().map(Into::into).collect(),
            ..Spec::default()
        }
    }

    /// Adds one `KEY=VALUE` environment entry.
    pub fn env(mut self, kv: impl Into<String>) -> Spec {
        self.env.push(kv.into());
        self
    }

    /// Sets the working directory.
    pub fn workdir(mut self, dir: impl Into<String>) -> Spec {
        self.workdir = Some(dir.into());
        self
    }

    /// Sets the user (`user[:group]`, numeric or by name).
    pub fn user(mut self, user: impl Into<String>) -> Spec {
        self.user = Some(user.into());
        self
    }

    /// Adds a supplementary group.
    pub fn group(mut self, group: impl Into<String>) -> Spec {
        self.groups.push(group.into());
        self
    }

    /// Sets the hostname.
    pub fn hostname(mut self, name: impl Into<String>) -> Spec {
        self.hostname = Some(name.into());
        self
    }

    /// Makes the root read-only (or not).
    pub fn readonly_root(mut self, yes: bool) -> Spec {
        self.readonly_root = yes;
        self
    }

    /// Sets the capabilities the process keeps.
    pub fn capabilities(mut self, set: CapsHashSet) -> Spec {
        self.capabilities = Some(set);
        self
    }

    /// Sets `no_new_privs` at exec (or not).
    pub fn no_new_privs(mut self, yes: bool) -> Spec {
        self.no_new_privs = yes;
        self
    }

    /// Sets the network.
    pub fn network(mut self, network: Network) -> Spec {
        self.network = network;
        self
    }

    /// Binds a host program at `/dev/init` (see [`Spec::init`]).
    pub fn init(mut self, program: Option<PathBuf>) -> Spec {
        self.init = program;
        self
    }

    /// Sets the seccomp filter (or none).
    pub fn seccomp(mut self, filter: Option<std::sync::Arc<seccomp::Filter>>) -> Spec {
        self.seccomp = filter;
        self
    }

    /// Docker's `--privileged` mounts (or not).
    pub fn privileged(mut self, yes: bool) -> Spec {
        self.privileged = yes;
        self
    }

    /// A terminal (or not), of this size if given.
    pub fn tty(mut self, yes: bool, size: Option<TtySize>) -> Spec {
        self.tty = yes;
        self.tty_size = size;
        self
    }

    /// Sets the standard input used without a terminal.
    pub fn stdin(mut self, stdin: Stdin) -> Spec {
        self.stdin = stdin;
        self
    }

    /// Checks what can be checked before cloning: a command, no NUL bytes, `KEY=VALUE` entries, an
    /// absolute working directory, a hostname the kernel accepts.
    pub fn validate(&self) -> Result<()> {
        let bad = |cause: String| Err(Error::Setup { step: "spec", cause });
        if self.args.is_empty() || self.args[0].is_empty() {
            return bad("no command given".into());
        }
        let all = self
            .args
            .iter()
            .chain(&self.env)
            .chain(&self.groups)
            .chain(self.workdir.iter())
            .chain(self.user.iter())
            .chain(self.hostname.iter());
        for s in all {
            if s.contains('\0') {
                return bad(format!("{s:?} contains a NUL byte"));
            }
        }
        for kv in &self.env {
            if kv.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                return bad(format!("environment entry {kv:?} is not KEY=VALUE"));
            }
        }
        if let Some(w) = &self.workdir
            && !w.starts_with('/')
        {
            return bad(format!(
                "the working directory {w:?} is invalid, it needs to be an absolute path"
            ));
        }
        if let Some(h) = &self.hostname
            && (h.is_empty() || h.len() > 64)
        {
            return bad(format!("hostname {h:?} must be 1 to 64 bytes long"));
        }
        Ok(())
    }
}

/// The caller's root preparation: runs in the container process, in its new mount namespace with `/`
/// recursively private, and returns the path of the prepared root. Its error comes back from [`spawn`]
/// as [`Error::Prepare`], typed.
pub type Prepare = Box<dyn FnOnce() -> std::result::Result<PathBuf, PrepareError>>;

/// The error a [`Prepare`] returns; [`spawn`] gives it back as [`Error::Prepare`].
pub type PrepareError = Box<dyn std::error::Error + Send + Sync>;

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl Exit {
    /// The shell's view: the status, or 128 + the signal number.
    pub fn code(&self) -> i32 {
        match *self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Why a run failed before (or instead of) the command running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A step before exec failed; `step` names it ("prepare", "proc", "user", ...).
    #[error("container setup failed ({step}): {cause}")]
    Setup {
        /// The step that failed.
        step: &'static str,
        /// What went wrong, naming the object.
        cause: String,
    },
    /// The caller's root preparation ([`Prepare`]) failed. `source` is the error it returned, as it made
    /// it (downcast it to the caller's own type; the container process hands it over through the memory
    /// the two share until the exec). A panic in the preparation is a [`Error::Setup`] instead.
    #[error("container setup failed (prepare): {source}")]
    Prepare {
        /// The preparation's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The command was not found (in the container's `PATH` when it has no `/`).
    #[error("exec: {command:?}: {}", if command.contains('/') { "no such file or directory" } else { "executable file not found in $PATH" })]
    NotFound {
        /// `args[0]`.
        command: String,
    },
    /// The command exists but cannot be executed (permission, format, directory...).
    #[error("exec: {command:?}: cannot execute: {cause}")]
    CannotExecute {
        /// `args[0]`.
        command: String,
        /// Why.
        cause: String,
    },
    /// A seccomp policy could not be read or compiled (the profile's place and the problem).
    #[error("{0}")]
    Seccomp(String),
    /// A system call in the caller failed (pipe, stack, wait).
    #[error("cannot {op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The exit status `docker run` would give: 125 (setup, or the runner itself), 126 (cannot
    /// execute), 127 (not found).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Setup { .. } | Error::Prepare { .. } | Error::Seccomp(_) | Error::Io { .. } => 125,
            Error::CannotExecute { .. } => 126,
            Error::NotFound { .. } => 127,
        }
    }

    fn io(op: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { op, source }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A container whose command was executed; [`Running::wait`] for it.
///
/// From [`spawn`] until [`Running::wait`] returns (or the `Running` is dropped), SIGINT, SIGTERM and
/// SIGHUP stay blocked in the thread that called [`spawn`], so none is lost between the two calls;
/// call `wait` on that same thread.
pub struct Running {
    pid: libc::pid_t,
    /// The spawning thread's signal mask before [`spawn`], restored by `wait` or on drop.
    old_mask: Option<MaskGuard>,
    /// The master of the container's terminal ([`Spec::tty`]) until taken.
    tty: Option<OwnedFd>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("pid", &self.pid).finish()
    }
}

/// How long [`Running::wait`] sleeps between checks where the kernel has no pidfd (before Linux 5.3).
const POLL_WITHOUT_PIDFD: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 50_000_000,
};

/// Restores a thread's signal mask on drop.
struct MaskGuard(libc::sigset_t);

impl Drop for MaskGuard {
    fn drop(&mut self) {
        let _ = sys::sigmask(libc::SIG_SETMASK, &self.0);
    }
}

/// What the container process takes over from [`spawn`], through the memory the two share until the
/// exec (see "The container process shares the caller's memory" in the crate docs).
struct Handoff<'a> {
    spec: &'a Spec,
    /// Taken by the container process; still here afterwards only if it never ran.
    prepare: Option<Prepare>,
    /// Where the container process leaves the preparation's error for [`spawn`] to return it typed.
    prepare_error: Option<PrepareError>,
    /// The status pipe's write end and the lifeline's read end: the container process's.
    status: RawFd,
    lifeline: RawFd,
    /// The caller's ends of the two pipes, closed in the container process.
    callers: [RawFd; 2],
    /// With [`Spec::tty`], the container process's end of the socket its pty master is sent on.
    terminal: Option<RawFd>,
}

/// The container process's first function, on its own stack (see [`sys::ChildStack`]). Never returns.
extern "C" fn container_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Handoff` that `spawn` keeps alive on its stack; the caller's thread is
    // suspended (CLONE_VFORK) until this process execs or exits, so nothing else touches it meanwhile.
    let h = unsafe { &mut *arg.cast::<Handoff<'_>>() };
    for fd in h.callers {
        // SAFETY: closes this process's copies of the caller's pipe ends (its own descriptor table).
        unsafe { rustix::io::close(fd) };
    }
    let Some(prepare) = h.prepare.take() else {
        sys::exit_now(125)
    };
    // SAFETY: this process's copies of the two descriptors, owned from here on.
    let (status, lifeline) = unsafe { (OwnedFd::from_raw_fd(h.status), OwnedFd::from_raw_fd(h.lifeline)) };
    child::container_main(
        h.spec,
        prepare,
        &mut h.prepare_error,
        status,
        lifeline,
        h.terminal,
    )
}

/// Starts `spec` over the root that `prepare` makes, and returns once the command was executed (or
/// failed to be: then the error, after the process was reaped).
pub fn spawn(spec: &Spec, prepare: Prepare) -> Result<Running> {
    spec.validate()?;
    if spec.seccomp.as_deref().is_some_and(|f| !f.is_empty()) && !seccomp_filter_supported() {
        return Err(Error::Seccomp(
            "this kernel has no seccomp filters (CONFIG_SECCOMP_FILTER); run without one \
             (mountkit: --security-opt seccomp=unconfined)"
                .into(),
        ));
    }
    let pipe = || rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(io::Error::from);
    let (rd, wr) = pipe().map_err(Error::io("create the status pipe"))?;
    let (life_r, life_w) = pipe().map_err(Error::io("create the lifeline pipe"))?;
    let stack = sys::ChildStack::new().map_err(Error::io("map the container process's stack"))?;
    let terminal = match spec.tty {
        true => Some(tty::Channel::new().map_err(Error::io("create the terminal's socket pair"))?),
        false => None,
    };
    let mut handoff = Handoff {
        spec,
        prepare: Some(prepare),
        prepare_error: None,
        status: wr.as_raw_fd(),
        lifeline: life_r.as_raw_fd(),
        callers: [rd.as_raw_fd(), life_w.as_raw_fd()],
        terminal: terminal.as_ref().map(|t| t.container.as_raw_fd()),
    };
    let guard = MaskGuard(
        sys::sigmask(libc::SIG_BLOCK, &sys::forwarded_signals()).map_err(Error::io("block signals"))?,
    );
    debug!(args = ?spec.args, "clone(CLONE_VM | CLONE_VFORK | CLONE_NEWPID) the container process");
    // libc's clone: rustix has no clone that starts a function on a stack of the caller's choosing.
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_NEWPID | libc::SIGCHLD;
    // SAFETY: `container_entry` runs on `stack` (alive until after this call returns: CLONE_VFORK
    // suspends this thread until the child execs or exits) with `handoff`, which outlives the call.
    let pid = unsafe {
        libc::clone(
            container_entry,
            stack.top(),
            flags,
            (&mut handoff as *mut Handoff<'_>).cast(),
        )
    };
    let clone_err = io::Error::last_os_error();
    drop(stack);
    if pid < 0 {
        return Err(Error::Setup {
            step: "namespaces",
            cause: format!("cannot create the container process in a new PID namespace: {clone_err}"),
        });
    }
    drop(wr);
    drop(life_r);
    // Normally taken (and consumed) by the container process; dropped here only if it never ran.
    drop(handoff.prepare.take());
    let mut running = Running {
        pid,
        old_mask: Some(guard),
        tty: None,
    };
    let mut failure = read_status(rd, life_w);
    // The preparation's own error, left in the hand-off by the container process (now gone or exec'd).
    if let (Some(Error::Setup { step: "prepare", .. }), Some(source)) =
        (&failure, handoff.prepare_error.take())
    {
        failure = Some(Error::Prepare { source });
    }
    // The pty master, queued by the container process before its exec.
    if let (None, Some(t)) = (&failure, &terminal) {
        match t.receive() {
            Ok(master) => running.tty = Some(master),
            Err(e) => {
                let _ = running.signal(libc::SIGKILL);
                failure = Some(Error::io("receive the container's terminal")(e));
            }
        }
    }
    match failure {
        None => {
            debug!(pid = running.pid, "command executed");
            Ok(running)
        }
        Some(e) => {
            debug!(error = %e, "container failed before exec");
            let _ = running.wait();
            Err(e)
        }
    }
}

/// Reads the status pipe to its end (the new process exec'd, or failed and said why), then lets the
/// lifeline go (the process is past its lifeline check once the pipe is closed); the first failure
/// reported, if any. Shared by [`spawn`] and `enter.rs`.
pub(crate) fn read_status(rd: OwnedFd, life_w: OwnedFd) -> Option<Error> {
    let mut buf = Vec::new();
    let read = std::fs::File::from(rd).read_to_end(&mut buf);
    drop(life_w);
    let mut failure = read.err().map(Error::io("read the status pipe"));
    for wire::Msg::Failed(e) in wire::Msg::decode_all(&buf) {
        failure = failure.or(Some(e));
    }
    failure
}

/// [`spawn`] then [`Running::wait`].
pub fn run(spec: &Spec, prepare: Prepare) -> Result<Exit> {
    spawn(spec, prepare)?.wait()
}

impl Running {
    /// The container process's PID, as the caller's PID namespace sees it (PID 1 inside).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The master of the container's terminal ([`Spec::tty`]), once: relay it (stdin to it, it to
    /// stdout) until it hangs up, which it does when the container's processes are gone. Dropped with
    /// the `Running` if not taken (the container then gets a hang-up on its terminal).
    pub fn take_tty(&mut self) -> Option<OwnedFd> {
        self.tty.take()
    }

    /// Sends `sig` to the container process (the caller's child, not reaped before [`Running::wait`],
    /// so the PID cannot have been reused). As PID 1 of its namespace, the process only receives signals
    /// it has a handler for, and SIGKILL.
    pub fn signal(&self, sig: i32) -> Result<()> {
        // Our own child, not reaped yet.
        sys::kill(self.pid, sig).map_err(Error::io("send a signal to the container process"))
    }

    /// Waits for the command to end, forwarding SIGINT, SIGTERM and SIGHUP to it meanwhile; the
    /// calling thread's signal mask is restored before returning.
    pub fn wait(mut self) -> Result<Exit> {
        let set = sys::forwarded_signals();
        let _guard = match self.old_mask.take() {
            Some(g) => g,
            None => MaskGuard(sys::sigmask(libc::SIG_BLOCK, &set).map_err(Error::io("block signals"))?),
        };
        // libc's signalfd: rustix has none (see sys.rs).
        // SAFETY: signalfd over a live set; we own the returned descriptor.
        let sfd = unsafe {
            OwnedFd::from_raw_fd(
                sys::cvt(libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK))
                    .map_err(Error::io("create a signalfd"))?,
            )
        };
        // Before Linux 5.3 there is no pidfd: poll with a timeout instead.
        let pidfd = rustix::process::pidfd_open(self.child_pid(), PidfdFlags::empty()).ok();
        let status = loop {
            if let Some(st) = self.try_reap()? {
                break st;
            }
            let readable = |fd| PollFd::new(fd, PollFlags::IN);
            // Interrupted or not, the loop reaps and forwards again.
            let _ = match &pidfd {
                Some(pidfd) => rustix::event::poll(&mut [readable(&sfd), readable(pidfd)], None),
                None => rustix::event::poll(&mut [readable(&sfd)], Some(&POLL_WITHOUT_PIDFD)),
            };
            self.forward_pending(&sfd);
        };
        // Signals still queued were meant for the container, which is gone: discard them.
        drain(&sfd);
        // Without WUNTRACED or WCONTINUED, the child either exited or was killed.
        Ok(match status.exit_status() {
            Some(code) => Exit::Code(code),
            None => Exit::Signal(status.terminating_signal().unwrap_or_default()),
        })
    }

    /// The container process's PID as rustix types it (a child's PID is never 0).
    fn child_pid(&self) -> Pid {
        Pid::from_raw(self.pid).expect("a child's PID is positive")
    }

    fn try_reap(&self) -> Result<Option<WaitStatus>> {
        match rustix::process::waitpid(Some(self.child_pid()), WaitOptions::NOHANG) {
            Ok(reaped) => Ok(reaped.map(|(_, status)| status)),
            Err(Errno::INTR) => Ok(None),
            Err(e) => Err(Error::io("wait for the container process")(e.into())),
        }
    }

    fn forward_pending(&self, sfd: &OwnedFd) {
        // Every one, a terminal's Ctrl-C (`SI_KERNEL`) too: the container process leads a session of its
        // own, outside the terminal's foreground process group, so the runner is its only way in.
        while let Some((sig, code)) = read_signal(sfd) {
            debug!(sig, code, pid = self.pid, "forwarding signal to the container");
            // Our own child, not reaped yet.
            let _ = sys::kill(self.pid, sig);
        }
    }
}

/// One queued signal: (number, `si_code`), read as libc's `signalfd_siginfo`.
fn read_signal(sfd: &OwnedFd) -> Option<(i32, i32)> {
    // SAFETY: reads one plain-data signalfd_siginfo from a non-blocking signalfd.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let n = libc::read(
            sfd.as_raw_fd(),
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            std::mem::size_of::<libc::signalfd_siginfo>(),
        );
        (n == std::mem::size_of::<libc::signalfd_siginfo>() as isize)
            .then_some((info.ssi_signo as i32, info.ssi_code))
    }
}

fn drain(sfd: &OwnedFd) {
    while read_signal(sfd).is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_and_docker() {
        assert_eq!(Exit::Code(7).code(), 7);
        assert_eq!(Exit::Signal(15).code(), 143);
        let setup = Error::Setup {
            step: "prepare",
            cause: "x".into(),
        };
        assert_eq!(setup.exit_code(), 125);
        assert_eq!(Error::NotFound { command: "x".into() }.exit_code(), 127);
        let ce = Error::CannotExecute {
            command: "x".into(),
            cause: "y".into(),
        };
        assert_eq!(ce.exit_code(), 126);
    }

    #[test]
    fn spec_validation() {
        assert!(Spec::new(["true"]).validate().is_ok());
        assert!(Spec::default().validate().is_err());
        assert!(Spec::new(["a\0b"]).validate().is_err());
        assert!(Spec::new(["true"]).env("NOEQUALS").validate().is_err());
        assert!(Spec::new(["true"]).env("=v").validate().is_err());
        assert!(Spec::new(["true"]).env("K=").validate().is_ok());
        let e = Spec::new(["true"]).workdir("rel").validate().unwrap_err();
        assert!(e.to_string().contains("needs to be an absolute path"), "{e}");
        assert!(Spec::new(["true"]).hostname("x".repeat(65)).validate().is_err());
    }

    #[test]
    fn builder_sets_fields() {
        let s = Spec::new(["sh", "-c", "x"])
            .env("A=1")
            .workdir("/w")
            .user("app")
            .group("audio")
            .hostname("h")
            .readonly_root(true);
        assert_eq!(s.args, ["sh", "-c", "x"]);
        assert_eq!(s.env, ["A=1"]);
        assert_eq!(
            (s.workdir.as_deref(), s.user.as_deref(), s.hostname.as_deref()),
            (Some("/w"), Some("app"), Some("h"))
        );
        assert_eq!(s.groups, ["audio"]);
        assert!(s.readonly_root);
    }
}
