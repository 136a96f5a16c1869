//! Container records: what `container create` writes and `ls`/`inspect` show.

use serde::{Deserialize, Serialize};

use mountkit_binds::MountSpec;

/// A container: its identity, the image it was made from, how its process runs, its mounts, its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Unique name (given or generated).
    pub name: String,
    /// The image's ID (`sha256:...`).
    pub image: String,
    /// The name the image was referred to by at creation, if any.
    pub image_name: Option<String>,
    /// Creation time, RFC 3339.
    pub created: String,
    /// How the process runs.
    pub config: ContainerConfig,
    /// Volumes, binds and tmpfs, in the order given (mounting sorts them by depth).
    pub mounts: Vec<MountRecord>,
    /// Lifecycle state.
    pub state: State,
    /// Removed (with its anonymous volumes) when its process exits: `run --rm`.
    #[serde(default)]
    pub auto_remove: bool,
}

/// The process configuration, resolved at creation from the image and the flags.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// The command and its arguments (entrypoint + cmd).
    pub args: Vec<String>,
    /// `K=V` strings.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub workdir: String,
    /// `user[:group]`, names or numbers, when not root.
    pub user: Option<String>,
    /// The UTS hostname.
    pub hostname: String,
    /// Mount the root filesystem read-only (`--read-only`).
    #[serde(default)]
    pub readonly_root: bool,
    /// The capabilities the process keeps (`CAP_*`, sorted): Docker's default set with `--cap-add` and
    /// `--cap-drop` applied, or every one with `--privileged`. They are root's effective set; a non-root
    /// user's effective and permitted sets are empty (Docker's rule). Records older than this field get
    /// Docker's default.
    #[serde(default = "default_capabilities")]
    pub capabilities: Vec<String>,
    /// `--privileged`: every capability, no masked or read-only paths, `/sys` read-write.
    #[serde(default)]
    pub privileged: bool,
    /// `--security-opt no-new-privileges`.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// `--network host|none`.
    #[serde(default)]
    pub network: NetworkMode,
    /// `--security-opt seccomp=...`: the filter the process runs under. Records older than this field
    /// get the default.
    #[serde(default)]
    pub seccomp: Seccomp,
    /// `-t`: the process runs on a pseudo-terminal of the container's own devpts instance, relayed by
    /// the attached side (Docker's `Config.Tty`).
    #[serde(default)]
    pub tty: bool,
    /// `-i`: the process's stdin is kept open (the caller's, or typed into its terminal with `-t`);
    /// without it, stdin is `/dev/null` (Docker's `Config.OpenStdin`).
    #[serde(default)]
    pub open_stdin: bool,
    /// `--stop-signal`: what `stop` sends first (a name like `SIGTERM` or `TERM`, or a number); SIGTERM
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `--stop-timeout`: how many seconds `stop` waits after the stop signal before SIGKILL; 10 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u64>,
    /// `--restart`: what a detached container's monitor does when its process exits.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// `--init`: a minimal init (mountkit itself) runs as PID 1 and the command as its child.
    #[serde(default)]
    pub init: bool,
    /// `--log-opt`: the size bound of a detached container's log.
    #[serde(default)]
    pub log: LogOptions,
}

/// `--restart`, as Docker's: `no` (the default), `on-failure[:N]` (restart after a non-zero exit, at
/// most N times when given), `always` and `unless-stopped` (restart after any exit that `stop` did not
/// cause; the same here, as there is no daemon to restart containers after a reboot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name")]
pub enum RestartPolicy {
    /// Never restart.
    #[default]
    No,
    /// Restart after a non-zero exit, at most `max_retries` times when given.
    OnFailure {
        /// The most restarts (`on-failure:N`); unbounded when `None`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_retries: Option<u32>,
    },
    /// Restart after every exit not caused by `stop`.
    Always,
    /// As `always` (Docker's differs only across daemon restarts).
    UnlessStopped,
}

impl std::str::FromStr for RestartPolicy {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<RestartPolicy> {
        let bad = |reason: &str| crate::Error::InvalidArgument {
            what: "--restart policy",
            value: s.into(),
            reason: reason.into(),
        };
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        match (name, count) {
            ("no", None) => Ok(RestartPolicy::No),
            ("always", None) => Ok(RestartPolicy::Always),
            ("unless-stopped", None) => Ok(RestartPolicy::UnlessStopped),
            ("on-failure", None) => Ok(RestartPolicy::OnFailure { max_retries: None }),
            ("on-failure", Some(n)) => n
                .parse()
                .map(|n| RestartPolicy::OnFailure { max_retries: Some(n) })
                .map_err(|_| bad("the retry count must be a whole number")),
            ("no" | "always" | "unless-stopped", Some(_)) => Err(bad("only on-failure takes a retry count")),
            _ => Err(bad(
                "mountkit supports no, on-failure[:N], always and unless-stopped",
            )),
        }
    }
}

/// `--log-opt` of the json-file log a detached container's monitor writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    /// `max-size`: the log file is rotated when it would grow past this many bytes; unbounded when unset
    /// (Docker's json-file default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// `max-file`: how many files (the current one included) are kept when rotating; 1 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file: Option<u32>,
}

impl LogOptions {
    /// Applies one `--log-opt KEY=VALUE` (`max-size=10m`, `max-file=3`); other keys are refused, named.
    pub fn apply(&mut self, opt: &str) -> crate::Result<()> {
        let bad = |reason: &str| crate::Error::InvalidArgument {
            what: "--log-opt",
            value: opt.into(),
            reason: reason.into(),
        };
        match opt.split_once('=') {
            Some(("max-size", v)) => {
                let size = parse_size(v).ok_or_else(|| bad("max-size takes a size like 10m, 512k or 1g"))?;
                if size == 0 {
                    return Err(bad("max-size must be more than 0"));
                }
                self.max_size = Some(size);
            }
            Some(("max-file", v)) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => self.max_file = Some(n),
                _ => return Err(bad("max-file takes a whole number of at least 1")),
            },
            _ => return Err(bad("mountkit's json-file log takes max-size=SIZE and max-file=N")),
        }
        Ok(())
    }
}

/// `10m`, `512k`, `1g`, `100` (bytes; `b` allowed), as Docker's `--log-opt max-size`.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.trim_end_matches('b').chars().last()? {
        'k' => (&s[..s.trim_end_matches('b').len() - 1], 1u64 << 10),
        'm' => (&s[..s.trim_end_matches('b').len() - 1], 1 << 20),
        'g' => (&s[..s.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (s.trim_end_matches('b'), 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// The seccomp filter of a container, as its record keeps it (and `container inspect` shows it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Seccomp {
    /// The effect of Docker's default profile, for the container's capabilities
    /// ([`mountkit_ns_runner::seccomp::Policy::docker_default`]).
    #[default]
    Default,
    /// No filter: `--security-opt seccomp=unconfined`, or `--privileged` without a profile (Docker's rule).
    Unconfined,
    /// A profile file (`--security-opt seccomp=FILE`): the path given and the SHA-256 of its content.
    /// The content is copied into the container's directory (`seccomp.json`) at creation, so the
    /// container starts the same when the file changes or goes, as Docker keeps it in its config.
    Profile {
        /// The file as given (made absolute).
        path: String,
        /// `sha256:` and the hex digest of the content.
        digest: String,
    },
}

/// What `--security-opt seccomp=` asked for at creation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompOption {
    /// No `seccomp=` option: the default filter (none with `--privileged`).
    #[default]
    Default,
    /// `seccomp=unconfined`.
    Unconfined,
    /// `seccomp=FILE`: a Docker/OCI profile (JSON).
    Profile(std::path::PathBuf),
}

/// `--network`: the host's network namespace (the default), or a new one with only `lo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// Docker's `--network host`: the host's interfaces.
    #[default]
    Host,
    /// Docker's `--network none`: a new network namespace with only the loopback interface.
    None,
}

impl std::str::FromStr for NetworkMode {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<NetworkMode> {
        match s {
            "host" => Ok(NetworkMode::Host),
            "none" => Ok(NetworkMode::None),
            _ => Err(crate::Error::InvalidArgument {
                what: "network",
                value: s.into(),
                reason: "mountkit supports \"host\" (the default: the host's network) and \"none\" (only a loopback interface)".into(),
            }),
        }
    }
}

/// Docker's default capabilities, by name (sorted).
pub(crate) fn default_capabilities() -> Vec<String> {
    cap_names(&mountkit_ns_runner::docker_default_capabilities())
}

/// `CAP_*` names, sorted.
pub(crate) fn cap_names(set: &mountkit_ns_runner::CapsHashSet) -> Vec<String> {
    let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

/// One mount of a container, as resolved at creation (an anonymous volume already has its name).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountRecord {
    /// The specification.
    pub spec: MountSpec,
    /// The volume was created for this container (image `VOLUME` or `-v /path`).
    #[serde(default)]
    pub anonymous: bool,
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started.
    Created,
    /// Its process runs (a runner holds its lock).
    Running,
    /// Its process has exited.
    Exited,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        })
    }
}

/// The container's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Created, running or exited.
    pub status: Status,
    /// The process ID (in the host's PID namespace) while running.
    pub pid: Option<i32>,
    /// The exit status of the last run (128+N for a signal).
    pub exit_code: Option<i32>,
    /// When the last run started.
    pub started: Option<String>,
    /// When the last run ended.
    pub finished: Option<String>,
    /// Why the last start failed, if it did.
    pub error: Option<String>,
    /// How many times its monitor restarted it (`--restart`).
    #[serde(default)]
    pub restart_count: u32,
}

/// The transitions of a container's life: created -> running -> exited (and exited -> running again).
impl State {
    pub(crate) fn created() -> State {
        State {
            status: Status::Created,
            pid: None,
            exit_code: None,
            started: None,
            finished: None,
            error: None,
            restart_count: 0,
        }
    }

    /// Its process is about to be started: the start time, and no error of an earlier start.
    pub(crate) fn starting(&mut self) {
        self.started = Some(now_rfc3339());
        self.error = None;
    }

    /// Its process runs as `pid` (in the host's PID namespace).
    pub(crate) fn running(&mut self, pid: i32) {
        self.status = Status::Running;
        self.pid = Some(pid);
    }

    /// Its process could not be started: exited with the status `docker run` gives for `error`.
    pub(crate) fn failed_to_start(&mut self, error: &mountkit_ns_runner::Error) {
        self.status = Status::Exited;
        self.pid = None;
        self.exit_code = Some(error.exit_code());
        self.finished = Some(now_rfc3339());
        self.error = Some(error.to_string());
    }

    /// Its process ended: with a status, or with an error of the wait itself.
    pub(crate) fn exited(
        &mut self,
        exit: &std::result::Result<mountkit_ns_runner::Exit, mountkit_ns_runner::Error>,
    ) {
        self.status = Status::Exited;
        self.pid = None;
        self.finished = Some(now_rfc3339());
        match exit {
            Ok(e) => self.exit_code = Some(e.code()),
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Its runner died without recording the end (SIGKILL): its process died with it (PDEATHSIG).
    pub(crate) fn runner_lost(&mut self) {
        self.status = Status::Exited;
        self.pid = None;
        self.error
            .get_or_insert_with(|| "runner was killed; exit status unknown".into());
    }
}

/// What `container create` (and `run`) take.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Name; generated when `None`.
    pub name: Option<String>,
    /// Image name, ID or ID prefix.
    pub image: String,
    /// Arguments after the image: replace the image's cmd.
    pub cmd: Vec<String>,
    /// Replaces the image's entrypoint when set (`--entrypoint`; an empty string clears it).
    pub entrypoint: Option<String>,
    /// `-e K=V` (or `-e K` to copy from the caller's environment).
    pub env: Vec<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--hostname`.
    pub hostname: Option<String>,
    /// `-v`, `--mount`, `--tmpfs`, already parsed.
    pub mounts: Vec<MountSpec>,
    /// `--volumes-from C[:ro|:rw]`.
    pub volumes_from: Vec<String>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--cap-add` (names with or without `CAP_`, any case, or `ALL`).
    pub cap_add: Vec<String>,
    /// `--cap-drop` (as `cap_add`).
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--network`.
    pub network: NetworkMode,
    /// `--security-opt seccomp=unconfined|FILE`.
    pub seccomp: SeccompOption,
    /// `--stop-signal`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout`, in seconds.
    pub stop_timeout: Option<u64>,
    /// `--restart`.
    pub restart: RestartPolicy,
    /// `--init`.
    pub init: bool,
    /// `--log-opt`.
    pub log: LogOptions,
    /// `-t`: a pseudo-terminal.
    pub tty: bool,
    /// `-i`: stdin kept open.
    pub open_stdin: bool,
    /// `--rm`.
    pub auto_remove: bool,
}

/// Container record times (created, started, finished): nanoseconds, since records are listed in
/// creation order by comparing these strings.
pub(crate) fn now_rfc3339() -> String {
    mountkit_safefs::now_rfc3339(mountkit_safefs::TimePrecision::Nanoseconds)
}

#[cfg(test)]
mod option_tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert_eq!("no".parse::<RestartPolicy>().unwrap(), RestartPolicy::No);
        assert_eq!(
            "on-failure:3".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure { max_retries: Some(3) }
        );
        assert_eq!(
            "on-failure".parse::<RestartPolicy>().unwrap(),
            RestartPolicy::OnFailure { max_retries: None }
        );
        assert!("always:2".parse::<RestartPolicy>().is_err());
        assert!("sometimes".parse::<RestartPolicy>().is_err());
        assert!("on-failure:x".parse::<RestartPolicy>().is_err());
    }

    #[test]
    fn log_options() {
        let mut o = LogOptions::default();
        o.apply("max-size=10m").unwrap();
        o.apply("max-file=3").unwrap();
        assert_eq!((o.max_size, o.max_file), (Some(10 << 20), Some(3)));
        o.apply("max-size=512k").unwrap();
        assert_eq!(o.max_size, Some(512 << 10));
        o.apply("max-size=100").unwrap();
        assert_eq!(o.max_size, Some(100));
        o.apply("max-size=2MB").unwrap();
        assert_eq!(o.max_size, Some(2 << 20));
        assert!(o.apply("max-size=0").is_err());
        assert!(o.apply("max-size=lots").is_err());
        assert!(o.apply("max-file=0").is_err());
        assert!(o.apply("compress=true").is_err());
    }
}
