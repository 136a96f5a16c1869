//! The `mountkit` command line's definition: the clap types the binary parses into, and
//! [`cli_command`], the same definition as a [`clap::Command`] for tools that generate shell
//! completions and man pages from it (`cargo xtask completions`, `cargo xtask man`).
//!
//! Why here and not in the binary: the definition must be reachable from outside the binary (xtask),
//! and it is in one place only: the binary parses with these types, xtask documents the same ones.
//! The types are public for the binary's sake only (`#[doc(hidden)]`, no stability promise); their doc
//! comments are the command's `--help` text. Each handler of the binary (`src/cli/`) converts them
//! into the library's own types.
//!
//! The subcommand enums are `#[command(defer = true)]`: clap builds the arguments of the subcommand
//! that is used only, not the whole tree, which every `mountkit run` would otherwise pay for at start-up
//! (heap pages touched for nothing: about 30 page faults per exec).
//!
//! Filters (`--filter`) are parsed here, while the arguments are: a bad filter is a usage error, which
//! exits 125 like every other usage error.

// The doc comments below are `--help` text, where `[SRC:]DST` means an optional part, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::ContainerFilter;

/// The `mountkit` command line as a [`clap::Command`], every subcommand included: what the binary
/// parses, for generating shell completions (`clap_complete`) and man pages (`clap_mangen`).
pub fn cli_command() -> clap::Command {
    Cli::command()
}

#[derive(Parser)]
#[command(
    name = "mountkit",
    version,
    about = "Container storage (layers, volumes, bind mounts) with the Linux kernel, no daemon"
)]
pub struct Cli {
    /// Store directory [default: $MOUNTKIT_ROOT, else /var/lib/mountkit as root, else $XDG_DATA_HOME/mountkit]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Output format of listings and inspect
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Print debug diagnostics on stderr (or set MOUNTKIT_LOG=debug)
    #[arg(long, short = 'D')]
    pub debug: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
#[command(defer = true)]
pub enum Cmd {
    /// Layers: import, list, inspect, export, remove
    #[command(subcommand)]
    Layer(LayerCmd),
    /// Images: ordered layers plus a config
    #[command(subcommand)]
    Image(ImageCmd),
    /// Containers: create, start, list, inspect, remove, mount
    #[command(subcommand)]
    Container(ContainerCmd),
    /// Volumes: storage with its own lifecycle
    #[command(subcommand)]
    Volume(VolumeCmd),
    /// Create and start a container: attached, exiting with its status; with -d in the background
    Run(Box<RunArgs>),
    /// Create a container; prints its ID (same as `container create`)
    Create(Box<CreateArgs>),
    /// List containers (same as `container ls`)
    Ps(ListArgs),
    /// Remove containers (same as `container rm`)
    Rm(RmArgs),
    /// List images (same as `image ls`)
    Images(ImageListArgs),
    /// Remove image names (same as `image rm`)
    Rmi(ImageRmArgs),
    /// Run a command in a running container (same as `container exec`)
    Exec(Box<ExecArgs>),
    /// Start containers (same as `container start`)
    Start(StartArgs),
    /// Stop containers (same as `container stop`)
    Stop(StopArgs),
    /// Signal containers (same as `container kill`)
    Kill(KillArgs),
    /// Restart containers (same as `container restart`)
    Restart(RestartArgs),
    /// Wait for containers (same as `container wait`)
    Wait(WaitArgs),
    /// Attach to a detached container (same as `container attach`)
    Attach(TopArgs),
    /// A container's processes (same as `container top`)
    Top(TopArgs),
    /// A container's output (same as `container logs`)
    Logs(LogsArgs),
    /// The store as a whole
    #[command(subcommand)]
    System(SystemCmd),
}

/// `container rm` (and `rm`).
#[derive(Args)]
pub struct RmArgs {
    /// Kill a running container first; unmount a mounted one
    #[arg(short, long)]
    pub force: bool,
    /// Also remove its anonymous volumes
    #[arg(short, long)]
    pub volumes: bool,
    /// The containers (names, IDs or ID prefixes)
    #[arg(required = true)]
    pub container: Vec<String>,
}

/// `image ls` (and `images`).
#[derive(Args)]
pub struct ImageListArgs {
    /// Only print IDs
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub f: FormatArg,
}

/// `image rm` (and `rmi`).
#[derive(Args)]
pub struct ImageRmArgs {
    /// Given an ID of an image with several names, remove every name
    #[arg(short, long)]
    pub force: bool,
    /// The image names or IDs
    #[arg(required = true)]
    pub name: Vec<String>,
}

#[derive(Args)]
pub struct ListArgs {
    /// Show all containers (default shows running ones)
    #[arg(short, long)]
    pub all: bool,
    /// Only print IDs (or names)
    #[arg(short, long)]
    pub quiet: bool,
    /// Only containers that match: `volume=NAME` or `volume=/DESTINATION` (repeatable)
    #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = parse_container_filter)]
    pub filters: Vec<ContainerFilter>,
    /// Output format
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// `--filter` of `container ls`/`ps`, checked while parsing so that a bad one is a usage error (125).
pub fn parse_container_filter(s: &str) -> Result<ContainerFilter, String> {
    s.parse().map_err(|e: crate::Error| e.to_string())
}

/// `--filter` of `volume ls`/`volume prune`, checked while parsing so that a bad one is a usage error
/// (125), as for `container ls`.
pub fn parse_volume_filter(s: &str) -> Result<crate::volumes::Filter, String> {
    s.parse().map_err(|e: crate::volumes::Error| e.to_string())
}

#[derive(Args)]
pub struct FormatArg {
    /// Output format
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Subcommand)]
#[command(defer = true)]
pub enum LayerCmd {
    /// Import a directory, a tar (plain, gzip or zstd) or `-` (stdin); prints the layer ID
    Import { path: String },
    /// List layers
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Show a layer's details
    Inspect {
        id: Vec<String>,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Remove layers no image uses
    #[command(alias = "remove")]
    Rm { id: Vec<String> },
    /// Write a layer as a tar (OCI whiteouts) to FILE or `-`
    Export {
        id: String,
        #[arg(short, long, value_name = "FILE|-")]
        output: String,
    },
}

#[derive(Subcommand)]
#[command(defer = true)]
pub enum ImageCmd {
    /// Create an image from layers (bottom first) and a config, or from a TOML recipe; prints its ID
    Create(Box<ImageCreateArgs>),
    /// List images
    #[command(alias = "list")]
    Ls(ImageListArgs),
    /// Show an image's details
    Inspect {
        name: Vec<String>,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Remove image names; an image goes with its last name, unless a container uses it
    #[command(alias = "remove", alias = "rmi")]
    Rm(ImageRmArgs),
    /// Import an OCI layout directory, an oci-archive or a docker-archive (`PATH[:REF]`); prints the ID
    Import {
        /// The layout or archive, optionally `:REF` to choose an image in it
        path: String,
        /// Name the image this (default: the archive's own name)
        #[arg(long, short)]
        tag: Option<String>,
        /// Which image of the layout or archive (a ref.name or RepoTags entry)
        #[arg(long = "ref")]
        reference: Option<String>,
        /// No progress on the terminal
        #[arg(short, long)]
        quiet: bool,
    },
    /// Which layer provides each PATH of the image, and what it hides (lower versions, whiteouts)
    Explain {
        /// Image name or ID
        image: String,
        /// Paths inside the image (symlinks followed inside it)
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        x: ExplainFlags,
    },
    /// One row per layer, newest first: ID, size, files added/changed/deleted against the layers below
    History {
        /// Image name or ID
        image: String,
        /// Show full layer IDs
        #[arg(long)]
        no_trunc: bool,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Save an image as an OCI layout directory, an oci-archive or a docker-archive
    Save {
        name: String,
        /// Destination: a directory (oci) or a file (oci-archive, docker-archive)
        #[arg(short, long, value_name = "DIR|FILE.tar")]
        output: PathBuf,
        /// Archive format [default: oci-archive when the output ends in .tar, else oci]
        #[arg(long, value_enum)]
        format: Option<SaveFormat>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SaveFormat {
    Oci,
    OciArchive,
    DockerArchive,
}

#[derive(Args)]
pub struct ImageCreateArgs {
    pub name: String,
    /// A layer ID (or a directory or tar to import), bottom first; repeat for each layer
    #[arg(long = "layer", value_name = "ID")]
    pub layers: Vec<String>,
    /// A TOML recipe with the same fields (layers may be directories or tars)
    #[arg(long, conflicts_with_all = ["layers", "volumes", "user", "workdir", "env", "entrypoint", "cmd", "labels"])]
    pub file: Option<PathBuf>,
    /// A path the image declares as a volume (Dockerfile VOLUME)
    #[arg(long = "volume", value_name = "PATH")]
    pub volumes: Vec<String>,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub workdir: Option<String>,
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Entrypoint argument; repeat for each
    #[arg(long = "entrypoint", value_name = "ARG", allow_hyphen_values = true)]
    pub entrypoint: Vec<String>,
    /// Cmd argument; repeat for each
    #[arg(long = "cmd", value_name = "ARG", allow_hyphen_values = true)]
    pub cmd: Vec<String>,
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
}

#[derive(Args, Clone)]
pub struct CreateArgs {
    /// Container name
    #[arg(long)]
    pub name: Option<String>,
    /// Set an environment variable (K=V, or K to copy it from here)
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User (name|uid[:group|gid])
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Container hostname
    #[arg(long)]
    pub hostname: Option<String>,
    /// Override the image's entrypoint
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Bind mount or volume: [SRC:]DST[:OPTS]
    #[arg(short = 'v', long = "volume", value_name = "SPEC")]
    pub volume: Vec<String>,
    /// Mount: type=bind|volume|tmpfs,source=…,target=…[,readonly]…
    #[arg(long = "mount", value_name = "SPEC")]
    pub mount: Vec<String>,
    /// tmpfs mount: DST[:OPTS]
    #[arg(long = "tmpfs", value_name = "SPEC")]
    pub tmpfs: Vec<String>,
    /// Mount the volumes of another container: C[:ro|:rw]
    #[arg(long = "volumes-from", value_name = "C")]
    pub volumes_from: Vec<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Add a capability to Docker's default set (CHOWN or CAP_CHOWN, any case; ALL)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability from Docker's default set (as --cap-add; ALL)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Every capability, no masked or read-only /proc and /sys paths, /sys read-write (no host devices)
    #[arg(long)]
    pub privileged: bool,
    /// Security option: no-new-privileges[=true|false]
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Network: host (the default: the host's network) or none (only a loopback interface)
    #[arg(long = "network", alias = "net", value_name = "MODE")]
    pub network: Option<String>,
    /// Not supported: mountkit shares the host's network (--network host)
    #[arg(short = 'p', long = "publish", value_name = "PORTS", hide = true)]
    pub publish: Vec<String>,
    /// Restart policy of a detached container: no, on-failure[:N], always, unless-stopped
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Signal `stop` sends first (default SIGTERM)
    #[arg(long = "stop-signal", value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10)
    #[arg(long = "stop-timeout", value_name = "SECONDS")]
    pub stop_timeout: Option<u64>,
    /// Log option of a detached container: max-size=SIZE, max-file=N
    #[arg(long = "log-opt", value_name = "OPT")]
    pub log_opt: Vec<String>,
    /// Run a minimal init as PID 1 (forwards signals, reaps zombies)
    #[arg(long)]
    pub init: bool,
    /// Allocate a pseudo-terminal (the container's own; raw mode and window size follow this terminal)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Keep stdin open (without it, the container's stdin is /dev/null)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Only print the ID
    #[arg(short, long)]
    pub quiet: bool,
    /// Image name or ID
    pub image: String,
    /// Command and arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// Remove the container (and its anonymous volumes) when it exits
    #[arg(long)]
    pub rm: bool,
    /// Run in the background under a monitor; print the ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Subcommand)]
#[command(defer = true)]
pub enum ContainerCmd {
    /// Create a container; prints its ID
    Create(Box<CreateArgs>),
    /// Start containers in the background (with -a: one, attached, exiting with its status)
    Start(StartArgs),
    /// Stop running containers: the stop signal, then SIGKILL after a timeout
    Stop(StopArgs),
    /// Send a signal to running containers (default SIGKILL)
    Kill(KillArgs),
    /// Stop then start containers
    Restart(RestartArgs),
    /// Wait for containers to stop; print each exit code
    Wait(WaitArgs),
    /// Attach to a detached container: its output here, and with -i its input from here (Ctrl-P Ctrl-Q detaches)
    Attach(TopArgs),
    /// The processes of a running container, as the host sees them
    Top(TopArgs),
    /// Print a detached container's output
    Logs(LogsArgs),
    /// Run a command in a running container (its namespaces, user, environment and confinement);
    /// exits with its status
    Exec(Box<ExecArgs>),
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(ListArgs),
    /// Show containers' details, mounts included
    Inspect {
        container: Vec<String>,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Remove containers and their writable layers
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Mount the container's rootfs in the host namespace; prints the path
    Mount { container: String },
    /// List what the container changed (A added, C changed, D deleted), read from its writable layer
    Diff {
        container: String,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Make an image from the container's image plus its writable layer; prints the image ID
    Commit { container: String, name: String },
    /// Write the container's flattened filesystem (volumes excluded) as a tar to FILE or `-`
    Export {
        container: String,
        #[arg(short, long, value_name = "FILE|-")]
        output: String,
    },
    /// Undo `container mount`
    #[command(alias = "umount")]
    Unmount { container: String },
    /// Which source provides each PATH (a layer, the writable layer, a volume, a bind, a tmpfs, the
    /// runtime) and what it hides; reads the store, mounts nothing
    Explain {
        container: String,
        /// Paths inside the container (symlinks followed inside its view)
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        x: ExplainFlags,
    },
}

// `container exec` and `exec` (no doc comment: it would replace the commands' help text).
#[derive(Args)]
pub struct ExecArgs {
    /// Detached: start the command and return at once (its output is discarded)
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep stdin open (without it, the command's stdin is /dev/null)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal (the container's own; raw mode and window size follow this terminal)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// User (name|uid[:group|gid]) instead of the container's
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Working directory inside the container instead of the container's (must exist)
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Set an environment variable (K=V, or K to copy it from here)
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Read environment variables from a file (K=V or K lines; # comments)
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Every capability for the command (the container's seccomp filter still applies)
    #[arg(long)]
    pub privileged: bool,
    /// Container name or ID
    pub container: String,
    /// Command and arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub cmd: Vec<String>,
}

/// The flags of `container explain` and `image explain`.
#[derive(Args)]
pub struct ExplainFlags {
    /// Explain a symlink named last itself, not what it points to
    #[arg(long)]
    pub no_follow: bool,
    /// For a directory, list each entry with its provider
    #[arg(short, long)]
    pub verbose: bool,
    /// Output format
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Subcommand)]
#[command(defer = true)]
pub enum VolumeCmd {
    /// Create a volume; prints its name
    Create {
        name: Option<String>,
        #[arg(short, long, default_value = "local")]
        driver: String,
        #[arg(long = "label", value_name = "K=V")]
        labels: Vec<String>,
        /// A driver option: type, o, device (a mount, as mount(8) takes them), or size (a size limit:
        /// a project quota where the store's filesystem has them, else a loop-mounted ext4 image)
        #[arg(short, long = "opt", value_name = "K=V")]
        opts: Vec<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(short, long = "filter", value_name = "F", value_parser = parse_volume_filter)]
        filters: Vec<crate::volumes::Filter>,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Show volumes' details and the containers that use them (JSON unless --format text)
    Inspect {
        name: Vec<String>,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Remove volumes no container uses
    #[command(alias = "remove")]
    Rm {
        /// Do not fail on unknown names (never removes a volume in use)
        #[arg(short, long)]
        force: bool,
        name: Vec<String>,
    },
    /// Write a tar of a volume's content (owners, modes, xattrs, hard links) to FILE or stdout
    Export {
        name: String,
        /// Where to write (a file appears complete or not at all); default: standard output
        #[arg(short, long, value_name = "FILE|-", default_value = "-")]
        output: String,
        /// Export even while a running container writes the volume (the tar is then not a snapshot)
        #[arg(short, long)]
        force: bool,
    },
    /// Import a tar (FILE, or - for stdin) into a new or empty volume; all or nothing
    Import {
        name: String,
        #[arg(value_name = "FILE|-")]
        input: String,
        /// Replace the content of a volume that is not empty
        #[arg(short, long)]
        force: bool,
    },
    /// Make a new volume DST with a copy of SRC's content (reflinks where the filesystem can)
    Clone {
        src: String,
        dst: String,
        /// Clone even while a running container writes SRC (the copy is then not a snapshot)
        #[arg(short, long)]
        force: bool,
    },
    /// Remove unused anonymous volumes (with -a, unused named ones too)
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Accepted for Docker compatibility: mountkit never prompts
        #[arg(short, long)]
        force: bool,
        #[arg(long = "filter", value_name = "F", value_parser = parse_volume_filter)]
        filters: Vec<crate::volumes::Filter>,
    },
}

#[derive(Subcommand)]
#[command(defer = true)]
pub enum SystemCmd {
    /// What this kernel supports and where the store is
    Info {
        #[command(flatten)]
        f: FormatArg,
    },
    /// Remove layers that no image uses
    Gc,
    /// Problems of the store and of running containers, with their fixes; what the kernel supports
    Doctor {
        /// Sweep what can be swept safely (staging entries of dead processes)
        #[arg(long)]
        fix: bool,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Disk usage: layers, images, containers' writable layers and volumes (size, shared, reclaimable)
    Df {
        /// Show each layer, image, container and volume
        #[arg(short, long)]
        verbose: bool,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Build the built-in sample image from this machine's programs (no network); prints its ID
    SampleImage {
        /// Image name
        #[arg(default_value = "sample")]
        name: String,
        /// Declare these paths as image volumes (Dockerfile VOLUME)
        #[arg(long = "volume", value_name = "PATH")]
        volumes: Vec<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        cli_command().debug_assert();
    }

    /// A bad `--filter` fails the parse (a usage error: exit 125), for containers and volumes alike.
    #[test]
    fn bad_filters_are_usage_errors() {
        for args in [
            &["container", "ls", "--filter", "colour=red"][..],
            &["ps", "-f", "volume"],
            &["volume", "ls", "--filter", "bogus"],
            &["volume", "ls", "-f", "dangling=maybe"],
            &["volume", "prune", "--filter", "bogus"],
        ] {
            let err = Cli::try_parse_from(std::iter::once("mountkit").chain(args.iter().copied()))
                .err()
                .unwrap_or_else(|| panic!("{args:?} parsed"));
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}: {err}"
            );
        }
        let ok = Cli::try_parse_from([
            "mountkit",
            "volume",
            "ls",
            "-f",
            "label=a=b",
            "-f",
            "dangling=true",
        ]);
        assert!(matches!(ok.unwrap().cmd, Cmd::Volume(VolumeCmd::Ls { filters, .. }) if filters.len() == 2));
    }
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach: wait for the container, with its output here, and exit with its status
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach with stdin too (implies -a; the container must have been created with -i)
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL (default: the container's --stop-timeout, else 10)
    #[arg(short = 't', long = "time", alias = "timeout", value_name = "SECONDS")]
    pub time: Option<u64>,
    /// Signal to send first (default: the container's --stop-signal, else SIGTERM)
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send (default SIGKILL)
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct RestartArgs {
    /// Seconds to wait before SIGKILL
    #[arg(short = 't', long = "time", alias = "timeout", value_name = "SECONDS")]
    pub time: Option<u64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct TopArgs {
    pub container: String,
}

#[derive(Args)]
pub struct WaitArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Args)]
pub struct LogsArgs {
    /// Keep printing new output until the container stops
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines ("all" for every one)
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<String>,
    /// Prefix each line with its time
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Only output since this time (RFC 3339) or duration before now (10m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    pub container: String,
}
