//! `container stop`, `kill`, `restart` and `wait`: signals to a running container's process and waiting
//! for its end, attached or detached alike, with no daemon to ask.
//!
//! The process is reached through a pidfd opened on the record's `state.pid` while the container's
//! `running.lock` is held (its runner or monitor holds it until the exit is recorded, after reaping),
//! so the PID cannot belong to another process by then. Nothing here holds the store lock while it
//! waits (ARCHITECTURE.md, "Locks"): the end is awaited on the `running.lock` itself, whose holder lets
//! it go once the exit is recorded and leaves the exit code in it, which `wait` reads even when an
//! `--rm` container is gone by then.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::time::Duration;

use mountkit_ns_runner::Target;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::process::Signal;

use crate::container::Container;
use crate::detach::STOP_REQUESTED;
use crate::signal::{signal_arg, to_signal};
use crate::{Error, Mountkit, Result};

/// `stop`'s wait before SIGKILL when neither `-t` nor `--stop-timeout` says (Docker's).
pub const DEFAULT_STOP_TIMEOUT: u64 = 10;

impl Mountkit {
    /// Container `c`'s process, pinned and checked to be the container's (see
    /// [`Mountkit::container_process`]), with its pidfd; `None` when it does not run (or the kernel has
    /// no pidfds, Linux < 5.3).
    fn process_fd(&self, c: &Container) -> Option<(Target, OwnedFd)> {
        let target = self.container_process(c).ok()?;
        let fd = target.pidfd()?.try_clone_to_owned().ok()?;
        Some((target, fd))
    }

    /// `container stop`: the stop signal (`signal`, else the container's `--stop-signal`, else
    /// SIGTERM), then SIGKILL after `timeout` seconds (else `--stop-timeout`, else 10) if it still runs;
    /// returns once the exit is recorded. A container that does not run is left as it is (Docker's).
    /// A detached container with a `--restart` policy is not restarted after it.
    pub fn stop(&self, reference: &str, timeout: Option<u64>, signal: Option<&str>) -> Result<()> {
        let c = self.container(reference)?;
        let dir = self.container_dir(&c.id);
        let sig = match signal.or(c.config.stop_signal.as_deref()) {
            Some(s) => signal_arg("stop signal", s)?,
            None => Signal::TERM.as_raw(),
        };
        let timeout = timeout.or(c.config.stop_timeout).unwrap_or(DEFAULT_STOP_TIMEOUT);
        let _ = std::fs::write(dir.join(STOP_REQUESTED), b"");
        let Some((_target, fd)) = self.process_fd(&c) else {
            let _ = std::fs::remove_file(dir.join(STOP_REQUESTED));
            return Ok(());
        };
        tracing::debug!(container = %c.name, sig, timeout, "stop");
        let _ = rustix::process::pidfd_send_signal(&fd, to_signal(sig));
        if !exits_within(&fd, Duration::from_secs(timeout)) {
            tracing::debug!(container = %c.name, "still running after the timeout: SIGKILL");
            let _ = rustix::process::pidfd_send_signal(&fd, Signal::KILL);
        }
        self.wait_recorded(&c.id);
        Ok(())
    }

    /// `container kill`: sends `signal` (SIGKILL by default); does not wait.
    pub fn kill(&self, reference: &str, signal: Option<&str>) -> Result<()> {
        let c = self.container(reference)?;
        let sig = match signal {
            Some(s) => signal_arg("signal", s)?,
            None => Signal::KILL.as_raw(),
        };
        let (_target, fd) = self
            .process_fd(&c)
            .ok_or_else(|| Error::NotRunning(c.name.clone()))?;
        rustix::process::pidfd_send_signal(&fd, to_signal(sig))
            .map_err(|e| Error::io("send a signal to", format!("container {}", c.name), e.into()))
    }

    /// `container restart`: [`Mountkit::stop`], then a detached start.
    pub fn restart(&self, reference: &str, timeout: Option<u64>) -> Result<()> {
        self.stop(reference, timeout, None)?;
        self.start_detached(reference)?;
        Ok(())
    }

    /// `container wait`: blocks until the container does not run, then returns its exit code (of an
    /// `--rm` container too, removed meanwhile); `None` when it is unknown (its runner was killed).
    pub fn wait(&self, reference: &str) -> Result<Option<i32>> {
        let c = self.container(reference)?;
        let path = self.container_dir(&c.id).join("running.lock");
        // Opened before the wait and read after it: the runner leaves the exit code in the file, which
        // this descriptor keeps readable after an `--rm` container's directory is gone.
        let mut file = std::fs::File::open(&path).ok();
        // Shared: see `is_running` (an exclusive hold would look like a runner to the `--rm` removal).
        let lock = mountkit_safefs::Lock::shared(&path);
        let mut note = String::new();
        if let Some(f) = &mut file {
            let _ = f.read_to_string(&mut note);
        }
        drop(lock);
        // The runner's note is the freshest word (an `--rm` record may be gone, or not yet updated
        // while it is being removed); without one, the record says.
        if let Ok(code) = note.trim().parse() {
            return Ok(Some(code));
        }
        match self.container(&c.id) {
            Ok(now) if now.state.error.is_some() && now.state.exit_code.is_none() => Ok(None),
            Ok(now) => Ok(now.state.exit_code.or(Some(0))),
            Err(Error::NoSuchContainer(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits until the runner or monitor of container `id` has recorded its exit (it lets the
    /// `running.lock` go after that).
    fn wait_recorded(&self, id: &str) {
        let _ = mountkit_safefs::Lock::shared(&self.container_dir(id).join("running.lock"));
    }
}

/// One process of a container, as `container top` lists it (host view).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TopProcess {
    /// Its real user ID.
    pub uid: u32,
    /// Its PID in the host's PID namespace.
    pub pid: i32,
    /// Its parent's PID, host view (the container's PID 1's parent is the runner or monitor).
    pub ppid: i32,
    /// Its command line (`[name]` when it has none).
    pub cmd: String,
}

impl Mountkit {
    /// `container top`: every process in the container's PID namespace (found by comparing each
    /// process's `/proc/PID/ns/pid` with the container process's), sorted by PID.
    pub fn top(&self, reference: &str) -> Result<Vec<TopProcess>> {
        let c = self.container(reference)?;
        let not_running = || Error::NotRunning(c.name.clone());
        let target = self.container_process(&c)?;
        let pid = target.pid();
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).map_err(|_| not_running())?;
        // Still the pinned process after the read: the namespace read is the container's.
        if target.has_exited() {
            return Err(not_running());
        }
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc")
            .map_err(|e| Error::io("list", "/proc", e))?
            .flatten()
        {
            let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if std::fs::read_link(format!("/proc/{p}/ns/pid")).ok().as_ref() != Some(&ns) {
                continue;
            }
            // Gone meanwhile: skipped.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let Some(close) = stat.rfind(')') else { continue };
            let ppid = stat[close + 2..]
                .split(' ')
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let name = stat
                .get(stat.find('(').map_or(0, |i| i + 1)..close)
                .unwrap_or("")
                .to_string();
            let uid = std::fs::read_to_string(format!("/proc/{p}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|v| v.split_whitespace().next())
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(0);
            let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = if cmdline.is_empty() {
                format!("[{name}]")
            } else {
                String::from_utf8_lossy(&cmdline)
                    .trim_end_matches('\0')
                    .replace('\0', " ")
            };
            out.push(TopProcess {
                uid,
                pid: p,
                ppid,
                cmd,
            });
        }
        out.sort_by_key(|p| p.pid);
        Ok(out)
    }
}

/// Whether the process of `fd` exits within `d` (the pidfd becomes readable when it does).
fn exits_within(fd: &OwnedFd, d: Duration) -> bool {
    let deadline = std::time::Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => return true,
            Ok(_) => return false,
            Err(rustix::io::Errno::INTR) if !left.is_zero() => continue,
            Err(_) => return false,
        }
    }
}
