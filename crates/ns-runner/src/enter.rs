//! Entering a running container (`docker exec`): a new process in the namespaces of one of its
//! processes, confined as a container process is.
//!
//! [`Target::open`] pins the process to enter: a descriptor of its `/proc/PID` directory (every later
//! read through it fails once that process is gone, even if its PID has been reused meanwhile) and a
//! pidfd (Linux 5.3), opened in that order; the open ends with a read through the directory, so the
//! pidfd is known to be the same process. The caller checks that the process is the one it means
//! ([`Target::read`]: its `mountinfo`, `status`, ...), then [`Target::exec`] (or
//! [`Target::exec_detached`]):
//!
//! 1. the calling thread joins the target's PID namespace for its children only
//!    (`setns(CLONE_NEWPID)`: a process's own PID namespace never changes), through the pidfd
//!    (Linux 5.8), else `/proc/PID/ns/pid`;
//! 2. clones the new process there as [`crate::spawn`] does (`CLONE_VM | CLONE_VFORK`: it shares the
//!    caller's memory until its exec, with the same rules: see `child.rs`), without a new namespace,
//!    and goes back to its own PID namespace for later children;
//! 3. the new process dies with the caller (not when detached), starts a session of its own, sets the
//!    umask, joins the target's mount, UTS, IPC and network namespaces with one
//!    `setns(pidfd, CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET)` (else one `setns` per
//!    `/proc/PID/ns/*` file), which also puts it at the root of the mount namespace (the container's
//!    root, after the container's `pivot_root`) with that root as its working directory;
//! 4. then the container's own last steps (`child::confine_and_exec`): user, terminal or stdin,
//!    working directory (not created), environment, seccomp, capabilities, descriptors, signals,
//!    `no_new_privs`, exec. Failures come back over the status pipe as for [`crate::spawn`].
//!
//! The new process is in the container's PID namespace but is not a child of its PID 1: it is the
//! caller's child, reaped by [`Running::wait`]. When the container's PID 1 ends, the kernel kills it
//! with the rest of the namespace.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::pipe::PipeFlags;
use rustix::process::{Pid, PidfdFlags};
use rustix::thread::{LinkNameSpaceType, ThreadNameSpaceType};
use tracing::debug;

use crate::{Error, MaskGuard, Result, Running, Spec, child, seccomp_filter_supported, sys, tty, wire};

/// The `op` of the error that says the process to enter has exited ([`Error::is_target_gone`]).
const GONE: &str = "enter the process: it has exited";

/// The namespaces the new process joins itself (the PID namespace is joined by the caller, for it).
const JOINED: &[(&std::ffi::CStr, LinkNameSpaceType)] = &[
    (c"ns/uts", LinkNameSpaceType::HostNameAndNISDomainName),
    (c"ns/ipc", LinkNameSpaceType::InterProcessCommunication),
    (c"ns/net", LinkNameSpaceType::Network),
    // Last: the other namespace files are opened through `/proc/PID`, which stays valid, but the
    // mount namespace changes what every path means.
    (c"ns/mnt", LinkNameSpaceType::Mount),
];

fn gone() -> Error {
    Error::Io {
        op: GONE,
        source: io::Error::from(Errno::SRCH),
    }
}

fn fail(step: &'static str, cause: impl std::fmt::Display) -> Error {
    Error::Setup {
        step,
        cause: cause.to_string(),
    }
}

impl Error {
    /// Whether this is the error of [`Target::open`], [`Target::read`] or [`Target::exec`] when the
    /// process to enter has exited (its container stopped): the caller's "not running".
    pub fn is_target_gone(&self) -> bool {
        matches!(self, Error::Io { op, .. } if *op == GONE)
    }
}

/// A running process whose namespaces a new process can join ([`Target::exec`]), pinned so that a
/// reused PID is never entered by mistake.
#[derive(Debug)]
pub struct Target {
    pid: i32,
    /// `/proc/PID` (`O_PATH`): lookups through it fail once this process is gone, whatever runs
    /// under its number later.
    proc_dir: OwnedFd,
    /// Its pidfd, where the kernel has `pidfd_open` (Linux 5.3).
    pidfd: Option<OwnedFd>,
}

impl Target {
    /// Pins process `pid` (as this process's PID namespace numbers it). An error that
    /// [`Error::is_target_gone`] when there is no such process.
    pub fn open(pid: i32) -> Result<Target> {
        if pid <= 0 {
            return Err(gone());
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let proc_dir = match rustix::fs::open(format!("/proc/{pid}"), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::SRCH) => return Err(gone()),
            Err(e) => return Err(fail("namespaces", format!("cannot open /proc/{pid}: {e}"))),
        };
        let pidfd =
            match rustix::process::pidfd_open(Pid::from_raw(pid).ok_or_else(gone)?, PidfdFlags::empty()) {
                Ok(fd) => Some(fd),
                Err(Errno::SRCH) => return Err(gone()),
                Err(Errno::NOSYS) => None,
                Err(e) => return Err(fail("namespaces", format!("pidfd_open({pid}): {e}"))),
            };
        let target = Target { pid, proc_dir, pidfd };
        // The process of `/proc/PID` still exists after the pidfd was opened: PID was never free in
        // between, so both name the same process.
        target.read("stat")?;
        debug!(pid, pidfd = target.pidfd.is_some(), "target pinned");
        Ok(target)
    }

    /// The process's PID (in the caller's PID namespace).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Its pidfd (`None` on a kernel without `pidfd_open`): signals sent through it reach this process
    /// or nobody, and it becomes readable when the process exits.
    pub fn pidfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// The text of the process's `/proc/PID/NAME` (`mountinfo`, `status`, ...), read through the pinned
    /// directory: what it says is about this process, never about a later one with the same PID (an
    /// error that [`Error::is_target_gone`] instead).
    pub fn read(&self, name: &str) -> Result<String> {
        let file = match rustix::fs::openat(
            &self.proc_dir,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::SRCH) => return Err(gone()),
            Err(e) => {
                return Err(fail(
                    "namespaces",
                    format!("cannot open /proc/{}/{name}: {e}", self.pid),
                ));
            }
        };
        let mut text = String::new();
        match std::fs::File::from(file).read_to_string(&mut text) {
            Ok(_) => Ok(text),
            Err(e) if e.raw_os_error() == Some(Errno::SRCH.raw_os_error()) => Err(gone()),
            Err(e) => Err(fail(
                "namespaces",
                format!("cannot read /proc/{}/{name}: {e}", self.pid),
            )),
        }
    }

    /// Whether the process has exited (its pidfd is readable; without one, its namespaces are gone).
    pub fn has_exited(&self) -> bool {
        match &self.pidfd {
            Some(fd) => {
                let mut p = [PollFd::new(fd, PollFlags::IN)];
                let now = Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                matches!(rustix::event::poll(&mut p, Some(&now)), Ok(n) if n > 0)
            }
            None => rustix::fs::openat(
                &self.proc_dir,
                "ns/pid",
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .is_err(),
        }
    }

    /// Starts `spec` in the process's namespaces and returns once the command was executed (or failed
    /// to be: then the error, after the new process was reaped). The new process is the caller's child
    /// and dies with the calling thread (`PR_SET_PDEATHSIG`), as a container process does with its
    /// runner; [`Running::wait`] forwards SIGINT, SIGTERM and SIGHUP to it. `spec`'s mount, hostname,
    /// network and read-only settings are the container's already and are not used; its working
    /// directory must exist.
    pub fn exec(&self, spec: &Spec) -> Result<Running> {
        self.start(spec, false)
    }

    /// As [`Target::exec`], detached (`docker exec -d`): descriptors 0-2 are the container's
    /// `/dev/null`, the process does not die with the caller (only with the container), and the call
    /// returns its PID once it was executed. It stays the caller's child until the caller exits (then
    /// the host's init, or the caller's subreaper, reaps it). A long-lived caller must reap it (or
    /// ignore `SIGCHLD`): the kernel lets the container's PID 1 be reaped only once every process of
    /// its PID namespace was, so an unreaped one keeps the container's end waiting.
    pub fn exec_detached(&self, spec: &Spec) -> Result<i32> {
        let running = self.start(spec, true)?;
        Ok(running.pid())
    }

    fn start(&self, spec: &Spec, detached: bool) -> Result<Running> {
        spec.validate()?;
        if spec.seccomp.as_deref().is_some_and(|f| !f.is_empty()) && !seccomp_filter_supported() {
            return Err(Error::Seccomp(
                "this kernel has no seccomp filters (CONFIG_SECCOMP_FILTER); run without one".into(),
            ));
        }
        let pipe = || rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(io::Error::from);
        let (rd, wr) = pipe().map_err(Error::io("create the status pipe"))?;
        let (life_r, life_w) = pipe().map_err(Error::io("create the lifeline pipe"))?;
        let stack = sys::ChildStack::new().map_err(Error::io("map the new process's stack"))?;
        let terminal = match spec.tty && !detached {
            true => Some(tty::Channel::new().map_err(Error::io("create the terminal's socket pair"))?),
            false => None,
        };
        // This thread's own PID namespace, to come back to once the new process exists.
        let own_pid_ns = rustix::fs::open(
            "/proc/thread-self/ns/pid",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fail("namespaces", format!("cannot open /proc/thread-self/ns/pid: {e}")))?;
        let use_pidfd = self.join_pid_namespace()?;
        let handoff = Handoff {
            spec,
            proc_dir: self.proc_dir.as_raw_fd(),
            pidfd: self.pidfd.as_ref().filter(|_| use_pidfd).map(|fd| fd.as_raw_fd()),
            detached,
            status: wr.as_raw_fd(),
            lifeline: life_r.as_raw_fd(),
            callers: [rd.as_raw_fd(), life_w.as_raw_fd(), own_pid_ns.as_raw_fd()],
            terminal: terminal.as_ref().map(|t| t.container.as_raw_fd()),
        };
        let guard = sys::sigmask(libc::SIG_BLOCK, &sys::forwarded_signals()).map(MaskGuard);
        debug!(pid = self.pid, args = ?spec.args, detached, "clone(CLONE_VM | CLONE_VFORK) into the container");
        // libc's clone, as in `spawn`: rustix has no clone that starts a function on a given stack.
        let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
        let pid = match &guard {
            // SAFETY: `enter_entry` runs on `stack` (alive until after this call returns: CLONE_VFORK
            // suspends this thread until the child execs or exits) with `handoff`, which outlives it.
            Ok(_) => unsafe {
                libc::clone(
                    enter_entry,
                    stack.top(),
                    flags,
                    (&handoff as *const Handoff<'_>).cast_mut().cast(),
                )
            },
            Err(_) => -1,
        };
        let clone_err = io::Error::last_os_error();
        drop(stack);
        // Back to this thread's own PID namespace for its later children, whatever happened.
        if let Err(e) =
            rustix::thread::move_into_link_name_space(own_pid_ns.as_fd(), Some(LinkNameSpaceType::ProcessID))
        {
            tracing::warn!(error = %e, "cannot return to the caller's own PID namespace");
        }
        let guard = guard.map_err(Error::io("block signals"))?;
        if pid < 0 {
            if self.has_exited() {
                return Err(gone());
            }
            return Err(fail(
                "namespaces",
                format!(
                    "cannot create a process in the PID namespace of process {}: {clone_err}",
                    self.pid
                ),
            ));
        }
        drop(wr);
        drop(life_r);
        let mut running = Running {
            pid,
            old_mask: Some(guard),
            tty: None,
        };
        let mut failure = crate::read_status(rd, life_w);
        if let (None, Some(t)) = (&failure, &terminal) {
            match t.receive() {
                Ok(master) => running.tty = Some(master),
                Err(e) => {
                    let _ = running.signal(libc::SIGKILL);
                    failure = Some(Error::io("receive the terminal")(e));
                }
            }
        }
        match failure {
            None => {
                debug!(pid, "command executed in the container");
                Ok(running)
            }
            Some(e) => {
                debug!(error = %e, "entering failed before exec");
                let _ = running.wait();
                match e {
                    Error::Setup {
                        step: "namespaces", ..
                    } if self.has_exited() => Err(gone()),
                    e => Err(e),
                }
            }
        }
    }

    /// Step 1: this thread's next children go into the target's PID namespace. Returns whether
    /// `setns` takes the pidfd (Linux 5.8); otherwise `/proc/PID/ns/pid` was used, and the new
    /// process uses the `/proc/PID/ns/*` files too.
    fn join_pid_namespace(&self) -> Result<bool> {
        if let Some(pidfd) = &self.pidfd {
            debug!(pid = self.pid, "setns(pidfd, CLONE_NEWPID) for the children");
            match rustix::thread::move_into_thread_name_spaces(pidfd.as_fd(), ThreadNameSpaceType::PROCESS_ID)
            {
                Ok(()) => return Ok(true),
                // Not a namespace descriptor for this kernel: before Linux 5.8.
                Err(Errno::INVAL) => {}
                Err(Errno::SRCH) => return Err(gone()),
                Err(e) => return Err(self.setns_failed(e)),
            }
        }
        debug!(
            pid = self.pid,
            "setns(/proc/PID/ns/pid, CLONE_NEWPID) for the children"
        );
        let ns = rustix::fs::openat(
            &self.proc_dir,
            "ns/pid",
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT | Errno::SRCH => gone(),
            e => fail(
                "namespaces",
                format!("cannot open /proc/{}/ns/pid: {e}", self.pid),
            ),
        })?;
        rustix::thread::move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::ProcessID))
            .map_err(|e| self.setns_failed(e))?;
        Ok(false)
    }

    fn setns_failed(&self, e: Errno) -> Error {
        fail(
            "namespaces",
            format!("cannot join the PID namespace of process {}: {e}", self.pid),
        )
    }
}

/// What the new process takes over from [`Target::start`], through the memory the two share until
/// the exec. Descriptors are numbers in the new process's copy of the caller's table.
struct Handoff<'a> {
    spec: &'a Spec,
    /// The target's `/proc/PID`, and its pidfd when `setns` takes one.
    proc_dir: RawFd,
    pidfd: Option<RawFd>,
    detached: bool,
    /// The status pipe's write end and the lifeline's read end: the new process's.
    status: RawFd,
    lifeline: RawFd,
    /// The caller's descriptors the new process closes (its pipe ends, its PID namespace).
    callers: [RawFd; 3],
    /// With [`Spec::tty`], the new process's end of the socket its pty master is sent on.
    terminal: Option<RawFd>,
}

/// The new process's first function, on its own stack. Never returns.
extern "C" fn enter_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Handoff` that `start` keeps alive on its stack; the caller's thread is
    // suspended (CLONE_VFORK) until this process execs or exits.
    let h = unsafe { &*arg.cast::<Handoff<'_>>() };
    for fd in h.callers {
        // SAFETY: closes this process's copies of the caller's descriptors (its own table).
        unsafe { rustix::io::close(fd) };
    }
    // SAFETY: this process's copies of the two descriptors, owned from here on.
    let (status, lifeline) = unsafe { (OwnedFd::from_raw_fd(h.status), OwnedFd::from_raw_fd(h.lifeline)) };
    let run = std::panic::AssertUnwindSafe(|| enter(h, lifeline));
    let err = match std::panic::catch_unwind(run) {
        Ok(Err(e)) => e,
        Ok(Ok(never)) => match never {},
        Err(payload) => fail("panic", child::panic_text(payload.as_ref())),
    };
    let code = err.exit_code();
    wire::send(status.as_fd(), &wire::Msg::Failed(err));
    sys::exit_now(code)
}

/// The new process, from "die with the caller" to exec. Returns only on failure.
fn enter(h: &Handoff<'_>, lifeline: OwnedFd) -> Result<std::convert::Infallible> {
    if h.detached {
        drop(lifeline);
    } else {
        child::die_with_parent(lifeline)?;
    }
    child::new_session()?;
    child::set_umask();
    join_namespaces(h)?;
    if h.detached {
        null_output()?;
    }
    child::confine_and_exec(h.spec, false, h.terminal)
}

/// Step 3: the target's mount, UTS, IPC and network namespaces; the mount namespace's root becomes
/// this process's root and working directory.
fn join_namespaces(h: &Handoff<'_>) -> Result<()> {
    if let Some(fd) = h.pidfd {
        let all = ThreadNameSpaceType::MOUNT
            | ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME
            | ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION
            | ThreadNameSpaceType::NETWORK;
        debug!(?all, "setns(pidfd)");
        // SAFETY: the target's pidfd, this process's copy, open until its exec.
        let pidfd = unsafe { BorrowedFd::borrow_raw(fd) };
        return rustix::thread::move_into_thread_name_spaces(pidfd, all)
            .map_err(|e| fail("namespaces", format!("setns(pidfd, {all:?}): {e}")));
    }
    // SAFETY: the target's `/proc/PID`, this process's copy, open until its exec.
    let proc_dir = unsafe { BorrowedFd::borrow_raw(h.proc_dir) };
    for (name, kind) in JOINED {
        debug!(?name, "setns(/proc/PID/NAME)");
        let ns = rustix::fs::openat(proc_dir, *name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| fail("namespaces", format!("cannot open {name:?} of the process: {e}")))?;
        rustix::thread::move_into_link_name_space(ns.as_fd(), Some(*kind))
            .map_err(|e| fail("namespaces", format!("setns({name:?}): {e}")))?;
    }
    Ok(())
}

/// Detached: the container's `/dev/null` as descriptors 1 and 2 (descriptor 0 is the spec's stdin,
/// `/dev/null` too when the caller asks, as `docker exec -d` does).
fn null_output() -> Result<()> {
    let null = rustix::fs::open(c"/dev/null", OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| fail("fds", format!("cannot open the container's /dev/null: {e}")))?;
    rustix::stdio::dup2_stdout(&null).map_err(|e| fail("fds", format!("dup2 /dev/null onto 1: {e}")))?;
    rustix::stdio::dup2_stderr(&null).map_err(|e| fail("fds", format!("dup2 /dev/null onto 2: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_process_is_gone() {
        // PIDs above the kernel's limit (4194304 at most) never exist.
        let e = Target::open(i32::MAX).unwrap_err();
        assert!(e.is_target_gone(), "{e}");
        assert!(Target::open(0).unwrap_err().is_target_gone());
        assert_eq!(e.exit_code(), 125);
    }

    #[test]
    fn a_pinned_process_reads_its_own_proc() {
        let me = Target::open(std::process::id() as i32).unwrap();
        assert!(!me.has_exited());
        let status = me.read("status").unwrap();
        assert!(
            status.contains(&format!("Pid:\t{}", std::process::id())),
            "{status}"
        );
    }

    #[test]
    fn a_reaped_process_is_gone_through_its_pin() {
        let mut child = std::process::Command::new("sleep").arg("100").spawn().unwrap();
        let t = Target::open(child.id() as i32).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(t.has_exited());
        assert!(t.read("status").unwrap_err().is_target_gone());
    }
}
