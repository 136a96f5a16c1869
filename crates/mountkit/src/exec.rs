//! `container exec`: a command in a running container, in its namespaces and with its confinement.
//!
//! 1. The record names the container's process (`state.pid`, running while its runner holds the
//!    container's `running.lock`; a record whose runner is gone reads as exited). No store lock is
//!    taken: the record is read as one file, and nothing is changed.
//! 2. `mountkit_ns_runner::Target::open` pins that process (`/proc/PID` and a pidfd), then
//!    [`Mountkit::exec`] checks that it is this container's: the root mount of its mount namespace
//!    is an overlay whose `upperdir` is this container's writable layer (`…/containers/<ID>/upper`;
//!    the ID is 256 random bits, so the suffix names one container, however the store's path was
//!    spelled). A PID reused by another process fails the check (or the pin: every read through a
//!    pinned `/proc/PID` of a process that is gone fails), and the container is "not running".
//! 3. The process runs what `run` would (`process_spec`: the container's environment, user, working
//!    directory, capabilities, the same compiled seccomp policy, `no_new_privs`), with exec's `-u`,
//!    `-w`, `-e`/`--env-file` over them; `--privileged` gives every capability (bounding set, and
//!    effective for root), keeping the container's seccomp filter and `no_new_privs`, as Docker's
//!    `exec --privileged` does.
//! 4. `Target::exec` enters and execs; the caller waits for it (forwarding SIGINT, SIGTERM, SIGHUP),
//!    or with `-d` returns at once.

use crate::container::{Container, Status};
use crate::{Error, Mountkit, Result};
use mountkit_ns_runner::{Exit, Running, Stdin, Target};

/// What `container exec` takes (Docker's flags).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The command and its arguments (looked up in the container's `PATH`).
    pub args: Vec<String>,
    /// `-u`: the user instead of the container's, resolved in the container's `/etc/passwd` and
    /// `/etc/group`.
    pub user: Option<String>,
    /// `-w`: the working directory instead of the container's (it must exist: exec creates nothing).
    pub workdir: Option<String>,
    /// `--env-file` entries, then `-e` ones: `K=V`, or `K` to copy K from the caller's environment;
    /// each replaces the container's value of K.
    pub env: Vec<String>,
    /// `--privileged`: every capability.
    pub privileged: bool,
    /// `-i`: the caller's stdin (otherwise `/dev/null`, as Docker).
    pub interactive: bool,
    /// `-t`: a pty of the container's devpts instance (the caller relays the master).
    pub tty: bool,
    /// With `tty`, its size before the command runs.
    pub tty_size: Option<mountkit_ns_runner::TtySize>,
}

impl Mountkit {
    /// Runs `opts.args` in running container `reference` and waits for it: its exit. With `tty`, its
    /// terminal is relayed to this process's stdout (and stdin with `interactive`, the caller's
    /// terminal in raw mode meanwhile: [`crate::tty::Attached`]). The error is [`Error::NotRunning`]
    /// for a container that is created or exited (or stops meanwhile), [`Error::Runner`] when the
    /// command could not be started (126, 127, 125: as `run`).
    pub fn exec(&self, reference: &str, opts: &ExecOptions) -> Result<Exit> {
        let mut process = self.exec_start(reference, opts)?;
        let Some(master) = process.take_tty() else {
            return Ok(process.wait()?);
        };
        let attached = crate::tty::Attached::start(master, opts.interactive)
            .inspect_err(|e| tracing::warn!(error = %e, "cannot relay the exec's terminal"))
            .ok();
        let exit = process.wait();
        if let Some(Err(e)) = attached.map(crate::tty::Attached::finish) {
            tracing::warn!(error = %e, "terminal relay");
        }
        Ok(exit?)
    }

    /// `exec -d`: starts `opts.args` in running container `reference` and returns once it was executed,
    /// with its PID (in the host's PID namespace). It does not die with the caller, only with the
    /// container; its descriptors 0-2 are the container's `/dev/null`.
    pub fn exec_detached(&self, reference: &str, opts: &ExecOptions) -> Result<i32> {
        let (c, target) = self.exec_target(reference)?;
        let mut opts = opts.clone();
        opts.interactive = false;
        opts.tty = false;
        let spec = self.exec_spec(&c, &opts)?;
        target
            .exec_detached(&spec)
            .map_err(|e| not_running_if_gone(e, &c))
    }

    /// Starts `opts.args` in running container `reference` and returns the process once it was
    /// executed, for the caller to wait for it ([`Running::wait`]) or relay its terminal
    /// ([`Running::take_tty`], with `tty`).
    pub fn exec_start(&self, reference: &str, opts: &ExecOptions) -> Result<Running> {
        let (c, target) = self.exec_target(reference)?;
        let spec = self.exec_spec(&c, opts)?;
        target.exec(&spec).map_err(|e| not_running_if_gone(e, &c))
    }

    /// The container's record and its process, pinned and checked to be the container's.
    fn exec_target(&self, reference: &str) -> Result<(Container, Target)> {
        let c = self.container(reference)?;
        let target = self.container_process(&c)?;
        tracing::debug!(container = %c.name, pid = target.pid(), "entering");
        Ok((c, target))
    }

    /// Container `c`'s process, pinned (`/proc/PID` and a pidfd) and checked to be the container's: its
    /// root is the overlay whose upper layer is the container's. A PID recorded by a run that has
    /// ended (and reused since by any process) is never taken for it. [`Error::NotRunning`] when it
    /// does not run. What `exec`, `stop`, `kill` and `top` act on.
    pub(crate) fn container_process(&self, c: &Container) -> Result<Target> {
        let pid = match (c.state.status, c.state.pid) {
            (Status::Running, Some(pid)) => pid,
            _ => return Err(Error::NotRunning(c.name.clone())),
        };
        let target = Target::open(pid).map_err(|e| not_running_if_gone(e, c))?;
        let mountinfo = target.read("mountinfo").map_err(|e| not_running_if_gone(e, c))?;
        if !root_is_containers(&mountinfo, &c.id) {
            tracing::debug!(container = %c.name, pid, "the recorded PID is not the container's process");
            return Err(Error::NotRunning(c.name.clone()));
        }
        Ok(target)
    }

    /// The process `run` would start for `c` ([`crate::run::process_spec`], seccomp compiled the same
    /// way), with exec's command and flags.
    fn exec_spec(&self, c: &Container, opts: &ExecOptions) -> Result<mountkit_ns_runner::Spec> {
        let mut spec = crate::run::process_spec(&c.config, &self.container_dir(&c.id))?;
        spec.args = opts.args.clone();
        if opts.user.is_some() {
            spec.user = opts.user.clone();
        }
        if opts.workdir.is_some() {
            spec.workdir = opts.workdir.clone();
        }
        spec.env = crate::create::merge_env(&c.config.env, &opts.env)?;
        if opts.privileged {
            spec.capabilities = Some(mountkit_ns_runner::all_capabilities());
        }
        spec.tty = opts.tty;
        spec.tty_size = opts.tty.then_some(opts.tty_size).flatten();
        spec.stdin = if opts.interactive {
            Stdin::Inherit
        } else {
            Stdin::Null
        };
        Ok(spec)
    }
}

/// The entries of an `--env-file` (Docker's format): one `K=V` (taken as written, spaces and quotes
/// included) or `K` (copied from the caller's environment, or dropped) per line; leading whitespace,
/// empty lines and `#` comments are skipped. A name that is empty or holds whitespace is refused,
/// with its line.
pub fn read_env_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read the env file", path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line.split_once('=').map_or(line.trim_end(), |(k, _)| k);
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(Error::InvalidArgument {
                what: "env file line",
                value: line.to_string(),
                reason: format!(
                    "{}, line {}: the variable name is empty or contains whitespace",
                    path.display(),
                    n + 1
                ),
            });
        }
        out.push(if line.contains('=') {
            line.to_string()
        } else {
            name.to_string()
        });
    }
    Ok(out)
}

/// [`Error::NotRunning`] when the process to enter has exited; the error otherwise.
fn not_running_if_gone(e: mountkit_ns_runner::Error, c: &Container) -> Error {
    if e.is_target_gone() {
        Error::NotRunning(c.name.clone())
    } else {
        e.into()
    }
}

/// Whether the root mount of a process's mount namespace (its `mountinfo`) is container `id`'s
/// overlay: mount point `/`, an `upperdir` ending in `containers/<id>/upper`.
fn root_is_containers(mountinfo: &str, id: &str) -> bool {
    let suffix = format!("containers/{id}/upper");
    let root = mountinfo.lines().rfind(|l| l.split(' ').nth(4) == Some("/"));
    let Some((_, fs)) = root.and_then(|l| l.split_once(" - ")) else {
        return false;
    };
    // After the separator: the filesystem type, the source, the super block's options.
    let mut fields = fs.split(' ');
    if fields.next() != Some("overlay") {
        return false;
    }
    let options = fields.nth(1).unwrap_or("");
    options.split(',').any(|o| {
        o.strip_prefix("upperdir=").is_some_and(|dir| {
            let dir = unescape(dir);
            dir == suffix || dir.ends_with(&format!("/{suffix}"))
        })
    })
}

/// `mountinfo`'s octal escapes (`\040` for a space, `\054` for a comma in an overlay option) undone.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3196eaa7c74845e02a86c99c11779b32e466cb9dc6f3e05a99d2aaaaaaaaaaaa";

    fn line(mount_point: &str, fs: &str, options: &str) -> String {
        format!("92 66 0:41 / {mount_point} rw,nodev,relatime - {fs} mountkit rw,{options}\n")
    }

    #[test]
    fn the_root_overlay_names_the_container() {
        let upper = format!("upperdir=st/containers/{ID}/upper,workdir=st/containers/{ID}/work");
        let mi =
            line("/", "overlay", &format!("lowerdir+=st/layers/x/diff,{upper}")) + &line("/proc", "proc", "");
        assert!(root_is_containers(&mi, ID));
        // An absolute store path, with an escaped space and comma.
        let abs = format!("upperdir=/var/my\\040st\\054ore/containers/{ID}/upper");
        assert!(root_is_containers(&line("/", "overlay", &abs), ID));
        // Another container, a host root, the overlay elsewhere, a look-alike directory name.
        assert!(!root_is_containers(&mi, &ID.replace('3', "4")));
        assert!(!root_is_containers(&line("/", "ext4", "errors=remount-ro"), ID));
        assert!(!root_is_containers(&line("/mnt", "overlay", &upper), ID));
        let lookalike = format!("upperdir=/x/notcontainers/{ID}/upper");
        assert!(!root_is_containers(&line("/", "overlay", &lookalike), ID));
        assert!(!root_is_containers("", ID));
    }

    #[test]
    fn env_files_follow_dockers_format() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("env");
        std::fs::write(
            &f,
            "\u{feff}# comment\n\n  A=1\nB= spaced \"q\" \nCOPY_ME\n\tC=x=y\n",
        )
        .unwrap();
        assert_eq!(
            read_env_file(&f).unwrap(),
            ["A=1", "B= spaced \"q\" ", "COPY_ME", "C=x=y"]
        );
        std::fs::write(&f, "OK=1\nBAD NAME=2\n").unwrap();
        let e = read_env_file(&f).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("BAD NAME=2"), "{e}");
        std::fs::write(&f, "=v\n").unwrap();
        assert!(read_env_file(&f).is_err());
        let e = read_env_file(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape("a\\040b\\054c\\134d"), "a b,c\\d");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
        assert_eq!(unescape("no\\x"), "no\\x");
    }
}
