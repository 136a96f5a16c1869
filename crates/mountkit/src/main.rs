//! The `mountkit` command: argument parsing and output only; the work is in the `mountkit` library.
//!
//! Exit status: 0 on success; `run` and `container start` exit with the command's status, 125 when
//! mountkit itself failed, 126 when the command cannot be executed, 127 when it is not found (as
//! `docker run`); other commands exit 1 on failure; a usage error exits 125.
//!
//! The subcommand enums are `#[command(defer = true)]`: clap builds the arguments of the subcommand
//! that is used only, not the whole tree, which every `mountkit run` would otherwise pay for at start-up
//! (heap pages touched for nothing: about 30 page faults per exec).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use mountkit::layer_store::{ImageConfig, LayerId, LayerSource};
use mountkit::{Container, ContainerFilter, CreateOptions, Mountkit, Status};

#[derive(Parser)]
#[command(
    name = "mountkit",
    version,
    about = "Container storage (layers, volumes, bind mounts) with the Linux kernel, no daemon"
)]
struct Cli {
    /// Store directory [default: $MOUNTKIT_ROOT, else /var/lib/mountkit as root, else $XDG_DATA_HOME/mountkit]
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Output format of listings and inspect
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Print debug diagnostics on stderr (or set MOUNTKIT_LOG=debug)
    #[arg(long, short = 'D')]
    debug: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
#[command(defer = true)]
enum Cmd {
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
    /// Create a container, start it attached, wait for it (exits with its status)
    Run(Box<RunArgs>),
    /// List containers (same as `container ls`)
    Ps(ListArgs),
    /// The store as a whole
    #[command(subcommand)]
    System(SystemCmd),
}

#[derive(Args)]
struct ListArgs {
    /// Show all containers (default shows running ones)
    #[arg(short, long)]
    all: bool,
    /// Only print IDs (or names)
    #[arg(short, long)]
    quiet: bool,
    /// Only containers that match: `volume=NAME` or `volume=/DESTINATION` (repeatable)
    #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = parse_container_filter)]
    filters: Vec<ContainerFilter>,
    /// Output format
    #[arg(long, value_enum)]
    format: Option<Format>,
}

/// `--filter` of `container ls`/`ps`, checked while parsing so that a bad one is a usage error (125).
fn parse_container_filter(s: &str) -> Result<ContainerFilter, String> {
    s.parse().map_err(|e: mountkit::Error| e.to_string())
}

#[derive(Args)]
struct FormatArg {
    /// Output format
    #[arg(long, value_enum)]
    format: Option<Format>,
}

#[derive(Subcommand)]
#[command(defer = true)]
enum LayerCmd {
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
enum ImageCmd {
    /// Create an image from layers (bottom first) and a config, or from a TOML recipe; prints its ID
    Create(Box<ImageCreateArgs>),
    /// List images
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Show an image's details
    Inspect {
        name: Vec<String>,
        #[command(flatten)]
        f: FormatArg,
    },
    /// Remove image names; an image goes with its last name, unless a container uses it
    #[command(alias = "remove", alias = "rmi")]
    Rm {
        /// Given an ID of an image with several names, remove every name
        #[arg(short, long)]
        force: bool,
        name: Vec<String>,
    },
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
enum SaveFormat {
    Oci,
    OciArchive,
    DockerArchive,
}

#[derive(Args)]
struct ImageCreateArgs {
    name: String,
    /// A layer ID (or a directory or tar to import), bottom first; repeat for each layer
    #[arg(long = "layer", value_name = "ID")]
    layers: Vec<String>,
    /// A TOML recipe with the same fields (layers may be directories or tars)
    #[arg(long, conflicts_with_all = ["layers", "volumes", "user", "workdir", "env", "entrypoint", "cmd", "labels"])]
    file: Option<PathBuf>,
    /// A path the image declares as a volume (Dockerfile VOLUME)
    #[arg(long = "volume", value_name = "PATH")]
    volumes: Vec<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    workdir: Option<String>,
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Entrypoint argument; repeat for each
    #[arg(long = "entrypoint", value_name = "ARG", allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// Cmd argument; repeat for each
    #[arg(long = "cmd", value_name = "ARG", allow_hyphen_values = true)]
    cmd: Vec<String>,
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
}

#[derive(Args, Clone)]
struct CreateArgs {
    /// Container name
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (K=V, or K to copy it from here)
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// User (name|uid[:group|gid])
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Container hostname
    #[arg(long)]
    hostname: Option<String>,
    /// Override the image's entrypoint
    #[arg(long)]
    entrypoint: Option<String>,
    /// Bind mount or volume: [SRC:]DST[:OPTS]
    #[arg(short = 'v', long = "volume", value_name = "SPEC")]
    volume: Vec<String>,
    /// Mount: type=bind|volume|tmpfs,source=…,target=…[,readonly]…
    #[arg(long = "mount", value_name = "SPEC")]
    mount: Vec<String>,
    /// tmpfs mount: DST[:OPTS]
    #[arg(long = "tmpfs", value_name = "SPEC")]
    tmpfs: Vec<String>,
    /// Mount the volumes of another container: C[:ro|:rw]
    #[arg(long = "volumes-from", value_name = "C")]
    volumes_from: Vec<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long)]
    read_only: bool,
    /// Only print the ID
    #[arg(short, long)]
    quiet: bool,
    /// Image name or ID
    image: String,
    /// Command and arguments (default: the image's)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    cmd: Vec<String>,
}

#[derive(Args)]
struct RunArgs {
    /// Remove the container (and its anonymous volumes) when it exits
    #[arg(long)]
    rm: bool,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(Subcommand)]
#[command(defer = true)]
enum ContainerCmd {
    /// Create a container; prints its ID
    Create(Box<CreateArgs>),
    /// Start a container attached; exits with its status
    Start { container: String },
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
    Rm {
        /// Kill a running container first; unmount a mounted one
        #[arg(short, long)]
        force: bool,
        /// Also remove its anonymous volumes
        #[arg(short, long)]
        volumes: bool,
        container: Vec<String>,
    },
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
}

#[derive(Subcommand)]
#[command(defer = true)]
enum VolumeCmd {
    /// Create a volume; prints its name
    Create {
        name: Option<String>,
        #[arg(short, long, default_value = "local")]
        driver: String,
        #[arg(long = "label", value_name = "K=V")]
        labels: Vec<String>,
        #[arg(short, long = "opt", value_name = "K=V")]
        opts: Vec<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(short, long = "filter", value_name = "F")]
        filters: Vec<String>,
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
    /// Remove unused anonymous volumes (with -a, unused named ones too)
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Accepted for Docker compatibility: mountkit never prompts
        #[arg(short, long)]
        force: bool,
        #[arg(long = "filter", value_name = "F")]
        filters: Vec<String>,
    },
}

#[derive(Subcommand)]
#[command(defer = true)]
enum SystemCmd {
    /// What this kernel supports and where the store is
    Info {
        #[command(flatten)]
        f: FormatArg,
    },
    /// Remove layers that no image uses
    Gc,
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

fn default_root() -> PathBuf {
    if let Some(r) = std::env::var_os("MOUNTKIT_ROOT").filter(|r| !r.is_empty()) {
        return r.into();
    }
    if nix::unistd::geteuid().is_root() {
        return "/var/lib/mountkit".into();
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| "/tmp".into());
    data.join("mountkit")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let filter = if cli.debug {
        "debug".to_string()
    } else {
        std::env::var("MOUNTKIT_LOG").unwrap_or_else(|_| "warn".into())
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runs = matches!(
        cli.cmd,
        Cmd::Run(_) | Cmd::Container(ContainerCmd::Start { .. } | ContainerCmd::Create(_))
    );
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("mountkit: {e:#}");
            let code = match e.downcast_ref::<mountkit::Error>() {
                Some(me) if runs => me.run_exit_code(),
                _ if runs => 125,
                _ => 1,
            };
            ExitCode::from(code as u8)
        }
    }
}

fn open(root: &Option<PathBuf>) -> anyhow::Result<Mountkit> {
    let root = root.clone().unwrap_or_else(default_root);
    let mk = Mountkit::open(&root).with_context(|| format!("cannot open the store at {}", root.display()))?;
    if let Err(e) = mk.reconcile() {
        tracing::warn!(error = %e, "volume mount reconciliation");
    }
    Ok(mk)
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let mk = open(&cli.root)?;
    let fmt = |f: Option<Format>| f.or(cli.format).unwrap_or(Format::Text);
    match cli.cmd {
        Cmd::Layer(c) => layer(&mk, c, &fmt),
        Cmd::Image(c) => image(&mk, c, &fmt),
        Cmd::Container(c) => container(&mk, c, &fmt),
        Cmd::Volume(c) => volume(&mk, c, &fmt, cli.format),
        Cmd::Run(r) => {
            let mut opts = create_options(&r.create)?;
            opts.auto_remove = r.rm;
            let (_c, exit) = mk.run(&opts)?;
            Ok(exit.code())
        }
        Cmd::Ps(a) => list_containers(&mk, &a, fmt(a.format)),
        Cmd::System(SystemCmd::Info { f }) => {
            let features = mountkit::overlay::features();
            let info = serde_json::json!({
                "root": mk.root(),
                "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
                "overlay": {
                    "new_mount_api": features.new_mount_api,
                    "lowerdir_plus": features.lowerdir_plus,
                    "max_lower_layers": mountkit::overlay::MAX_LOWER_LAYERS,
                },
            });
            print_json_or(fmt(f.format), &info, |o| {
                writeln!(o, "Root:             {}", mk.root().display())?;
                writeln!(o, "Kernel:           {}", info["kernel"].as_str().unwrap_or(""))?;
                writeln!(o, "New mount API:    {}", features.new_mount_api)?;
                writeln!(o, "Overlay lowerdir+: {}", features.lowerdir_plus)?;
                writeln!(o, "Max image layers: {}", mountkit::overlay::MAX_LOWER_LAYERS)
            })?;
            Ok(0)
        }
        Cmd::System(SystemCmd::SampleImage { name, volumes }) => {
            let info = mk.create_sample_image(&name, &volumes)?;
            println!("{}", info.id);
            Ok(0)
        }
        Cmd::System(SystemCmd::Gc) => {
            for id in mk.layers().gc()? {
                println!("{id}");
            }
            Ok(0)
        }
    }
}

fn print_json_or(
    format: Format,
    value: &impl Serialize,
    text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, value)?;
            writeln!(out)?;
        }
        Format::Text => text(&mut out)?,
    }
    Ok(())
}

/// A listing (`ls`, `ps`): JSON; or with `quiet` one key per line (IDs or names, for scripts); or a
/// header line and one row per item.
fn print_listing<T: Serialize>(
    format: Format,
    items: &[T],
    quiet: bool,
    key: impl Fn(&T) -> String,
    header: String,
    row: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    print_json_or(format, &items, |o| {
        if !quiet {
            writeln!(o, "{header}")?;
        }
        for item in items {
            let line = if quiet { key(item) } else { row(item) };
            writeln!(o, "{line}")?;
        }
        Ok(())
    })
}

fn inspect_json(value: &impl Serialize) -> anyhow::Result<()> {
    // inspect prints JSON in either format, as `docker inspect` does.
    print_json_or(Format::Json, value, |_| Ok(()))
}

fn layer(mk: &Mountkit, c: LayerCmd, fmt: &dyn Fn(Option<Format>) -> Format) -> anyhow::Result<i32> {
    match c {
        LayerCmd::Import { path } => {
            let src = if path == "-" {
                LayerSource::Reader(Box::new(std::io::stdin()))
            } else if Path::new(&path).is_dir() {
                LayerSource::Dir(path.into())
            } else {
                LayerSource::Tar(path.into())
            };
            let info = mk.layers().import_layer(src)?;
            println!("{}", info.id);
        }
        LayerCmd::Ls { quiet, f } => {
            let layers = mk.layers().layers()?;
            print_listing(
                fmt(f.format),
                &layers,
                quiet,
                |l| l.id.to_string(),
                format!("{:<20} {:>12} {:>8}  CREATED", "LAYER ID", "SIZE", "ENTRIES"),
                |l| {
                    format!(
                        "{:<20} {:>12} {:>8}  {}",
                        short(&l.id.to_string()),
                        human(l.size),
                        l.entries,
                        l.created
                    )
                },
            )?;
        }
        LayerCmd::Inspect { id, f: _ } => {
            let infos = id
                .iter()
                .map(|i| mk.layers().layer(i))
                .collect::<Result<Vec<_>, _>>()?;
            inspect_json(&infos)?;
        }
        LayerCmd::Rm { id } => {
            for i in &id {
                let removed = mk.layers().remove_layer(i)?;
                println!("{removed}");
            }
        }
        LayerCmd::Export { id, output } => {
            let info = mk.layers().layer(&id)?;
            if output == "-" {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                mk.layers().export_layer(&info.id, &mut out)?;
                out.flush()?;
            } else {
                let tmp = format!("{output}.partial");
                let mut f = std::io::BufWriter::new(
                    std::fs::File::create(&tmp).with_context(|| format!("cannot create {tmp}"))?,
                );
                let done = mk
                    .layers()
                    .export_layer(&info.id, &mut f)
                    .map_err(anyhow::Error::from)
                    .and_then(|_| {
                        f.flush()?;
                        std::fs::rename(&tmp, &output).with_context(|| format!("cannot write {output}"))
                    });
                if done.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                done?;
            }
        }
    }
    Ok(0)
}

fn kv_map(what: &str, items: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut m = std::collections::BTreeMap::new();
    for kv in items {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("invalid {what} {kv:?}: expected KEY=VALUE")
        };
        if k.is_empty() {
            bail!("invalid {what} {kv:?}: the key is empty");
        }
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

fn image(mk: &Mountkit, c: ImageCmd, fmt: &dyn Fn(Option<Format>) -> Format) -> anyhow::Result<i32> {
    match c {
        ImageCmd::Create(a) => {
            let info = if let Some(file) = &a.file {
                mk.create_image_from_recipe(&a.name, file)?
            } else {
                let mut ids: Vec<LayerId> = Vec::new();
                for l in &a.layers {
                    ids.push(mk.layer_from_arg(Path::new(l), l)?);
                }
                let config = ImageConfig {
                    volumes: a.volumes.clone(),
                    user: a.user.clone(),
                    workdir: a.workdir.clone(),
                    env: a.env.clone(),
                    entrypoint: (!a.entrypoint.is_empty()).then(|| a.entrypoint.clone()),
                    cmd: (!a.cmd.is_empty()).then(|| a.cmd.clone()),
                    labels: kv_map("label", &a.labels)?,
                };
                mk.layers().create_image(Some(&a.name), &ids, config)?
            };
            println!("{}", info.id);
        }
        ImageCmd::Ls { quiet, f } => {
            let images = mk.layers().images()?;
            print_listing(
                fmt(f.format),
                &images,
                quiet,
                |i| i.id.clone(),
                format!("{:<30} {:<14} {:>6}  CREATED", "NAME", "IMAGE ID", "LAYERS"),
                |i| {
                    format!(
                        "{:<30} {:<14} {:>6}  {}",
                        i.name.as_deref().unwrap_or("<none>"),
                        short(&i.id),
                        i.layers.len(),
                        i.created
                    )
                },
            )?;
        }
        ImageCmd::Inspect { name, f: _ } => {
            /// The record plus every name of the image (Docker's RepoTags).
            #[derive(Serialize)]
            struct View {
                #[serde(flatten)]
                info: mountkit::layer_store::ImageInfo,
                names: Vec<String>,
            }
            let mut views = Vec::new();
            for n in &name {
                let info = mk.layers().image(n)?;
                let names = mk.layers().image_names(&info.id)?;
                views.push(View { info, names });
            }
            inspect_json(&views)?;
        }
        ImageCmd::Import {
            path,
            tag,
            reference,
            quiet,
        } => {
            use std::io::IsTerminal;
            let show = !quiet && std::io::stderr().is_terminal();
            let mut last = std::time::Instant::now();
            let mut progress = |p: mountkit::layer_store::oci::Progress| {
                if last.elapsed().as_millis() >= 200 || p.bytes == p.total {
                    last = std::time::Instant::now();
                    eprint!(
                        "\rimporting layer {}/{}: {} of {}   ",
                        p.layer,
                        p.layers,
                        human(p.bytes),
                        human(p.total)
                    );
                }
            };
            let opts = mountkit::layer_store::oci::ImportOptions {
                tag,
                reference,
                progress: if show { Some(&mut progress) } else { None },
            };
            let result = mountkit::layer_store::oci::import(mk.layers(), Path::new(&path), opts);
            if show {
                eprintln!();
            }
            println!("{}", result?.id);
        }
        ImageCmd::Save { name, output, format } => {
            use mountkit::layer_store::oci::ArchiveFormat;
            let format = match format {
                Some(SaveFormat::Oci) => ArchiveFormat::Oci,
                Some(SaveFormat::OciArchive) => ArchiveFormat::OciArchive,
                Some(SaveFormat::DockerArchive) => ArchiveFormat::DockerArchive,
                None if output.extension().is_some_and(|e| e == "tar") => ArchiveFormat::OciArchive,
                None => ArchiveFormat::Oci,
            };
            mountkit::layer_store::oci::save(mk.layers(), &name, &output, format)?;
        }
        ImageCmd::Rm { force, name } => {
            for n in &name {
                for info in mk.remove_image(n, force)? {
                    println!("{}", info.display_name());
                }
            }
        }
    }
    Ok(0)
}

fn create_options(a: &CreateArgs) -> anyhow::Result<CreateOptions> {
    let mut mounts = Vec::new();
    for v in &a.volume {
        mounts.push(mountkit::binds::parse_volume_flag(v)?);
    }
    for m in &a.mount {
        mounts.push(mountkit::binds::parse_mount_flag(m)?);
    }
    for t in &a.tmpfs {
        mounts.push(mountkit::binds::parse_tmpfs_flag(t)?);
    }
    Ok(CreateOptions {
        name: a.name.clone(),
        image: a.image.clone(),
        cmd: a.cmd.clone(),
        entrypoint: a.entrypoint.clone(),
        env: a.env.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        mounts,
        volumes_from: a.volumes_from.clone(),
        read_only: a.read_only,
        auto_remove: false,
    })
}

fn short(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

fn status_text(c: &Container) -> String {
    match c.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up (pid {})", c.state.pid.unwrap_or(0)),
        Status::Exited => match c.state.exit_code {
            Some(code) => format!("Exited ({code})"),
            None => "Exited (unknown)".into(),
        },
    }
}

fn list_containers(mk: &Mountkit, a: &ListArgs, format: Format) -> anyhow::Result<i32> {
    let cs = mk.list_containers(a.all, &a.filters)?;
    print_listing(
        format,
        &cs,
        a.quiet,
        |c| c.id[..12].to_string(),
        format!(
            "{:<12}  {:<20} {:<24} {:<16} NAMES",
            "CONTAINER ID", "IMAGE", "COMMAND", "STATUS"
        ),
        |c| {
            let image = c.image_name.clone().unwrap_or_else(|| short(&c.image));
            let mut cmd = c.config.args.join(" ");
            if cmd.chars().count() > 22 {
                cmd = format!("{}…", cmd.chars().take(21).collect::<String>());
            }
            format!(
                "{:<12}  {:<20} {:<24} {:<16} {}",
                &c.id[..12],
                image,
                format!("\"{cmd}\""),
                status_text(c),
                c.name
            )
        },
    )?;
    Ok(0)
}

/// `container inspect`: the record plus a Docker-like `Mounts` list.
#[derive(Serialize)]
struct InspectView<'a> {
    #[serde(flatten)]
    container: &'a Container,
    #[serde(rename = "Mounts")]
    mounts_view: Vec<serde_json::Value>,
}

fn container(mk: &Mountkit, c: ContainerCmd, fmt: &dyn Fn(Option<Format>) -> Format) -> anyhow::Result<i32> {
    match c {
        ContainerCmd::Create(a) => {
            let opts = create_options(&a)?;
            let c = mk.create(&opts)?;
            println!("{}", c.id);
        }
        ContainerCmd::Start { container } => {
            let exit = mk.start(&container)?;
            return Ok(exit.code());
        }
        ContainerCmd::Ls(a) => return list_containers(mk, &a, fmt(a.format)),
        ContainerCmd::Inspect { container, f: _ } => {
            let cs = container
                .iter()
                .map(|n| mk.container(n))
                .collect::<Result<Vec<_>, _>>()?;
            let views: Vec<InspectView> = cs
                .iter()
                .map(|c| InspectView {
                    container: c,
                    mounts_view: c.mounts.iter().map(|m| mount_view(mk, m)).collect(),
                })
                .collect();
            inspect_json(&views)?;
        }
        ContainerCmd::Rm {
            force,
            volumes,
            container,
        } => {
            let mut failed = false;
            for n in &container {
                match mk.remove(n, force, volumes) {
                    // As Docker: echo the reference that was removed.
                    Ok(_) => println!("{n}"),
                    Err(e) => {
                        eprintln!("mountkit: {e}");
                        failed = true;
                    }
                }
            }
            return Ok(if failed { 1 } else { 0 });
        }
        ContainerCmd::Mount { container } => {
            eprintln!(
                "mountkit: mounting in the host's mount namespace (undo with `mountkit container unmount`)"
            );
            println!("{}", mk.mount(&container)?.display());
        }
        ContainerCmd::Unmount { container } => mk.unmount(&container)?,
        ContainerCmd::Diff { container, f } => {
            let changes = mk.diff(&container)?;
            print_json_or(fmt(f.format), &changes, |o| {
                for c in &changes {
                    writeln!(o, "{c}")?;
                }
                Ok(())
            })?;
        }
        ContainerCmd::Commit { container, name } => {
            let info = mk.commit(&container, &name)?;
            println!("{}", info.id);
        }
        ContainerCmd::Export { container, output } => {
            if output == "-" {
                mk.export(&container, &mut std::io::stdout())?;
            } else {
                let tmp = format!("{output}.partial");
                let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot create {tmp}"))?;
                let done = mk
                    .export(&container, &mut f)
                    .map_err(anyhow::Error::from)
                    .and_then(|_| {
                        std::fs::rename(&tmp, &output).with_context(|| format!("cannot write {output}"))
                    });
                if done.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                done?;
            }
        }
    }
    Ok(0)
}

fn mount_view(mk: &Mountkit, m: &mountkit::MountRecord) -> serde_json::Value {
    use mountkit::binds::MountSpec;
    match &m.spec {
        MountSpec::Volume {
            name,
            target,
            readonly,
            ..
        } => {
            let name = name.clone().unwrap_or_default();
            let source = mk
                .volumes()
                .get(&name)
                .map(|v| v.mountpoint.display().to_string())
                .unwrap_or_default();
            serde_json::json!({"Type": "volume", "Name": name, "Source": source, "Destination": target,
                "Mode": if *readonly { "ro" } else { "rw" }, "RW": !readonly, "Anonymous": m.anonymous})
        }
        MountSpec::Bind {
            source,
            target,
            readonly,
            propagation,
            ..
        } => {
            serde_json::json!({"Type": "bind", "Source": source, "Destination": target,
                "Mode": if *readonly { "ro" } else { "rw" }, "RW": !readonly, "Propagation": propagation})
        }
        MountSpec::Tmpfs { target, options } => {
            serde_json::json!({"Type": "tmpfs", "Source": "", "Destination": target, "Options": options, "RW": true})
        }
    }
}

/// `volume inspect --format text`: one block per volume.
fn write_volume_text(o: &mut dyn Write, v: &mountkit::VolumeInspect) -> std::io::Result<()> {
    let pairs = |m: &std::collections::BTreeMap<String, String>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let vol = &v.volume;
    writeln!(o, "Name:       {}", vol.name)?;
    writeln!(o, "Driver:     {}", vol.driver)?;
    writeln!(o, "Mountpoint: {}", vol.mountpoint.display())?;
    writeln!(o, "Labels:     {}", pairs(&vol.labels))?;
    writeln!(o, "Options:    {}", pairs(&vol.options))?;
    if v.containers.is_empty() {
        return writeln!(o, "Containers: none");
    }
    writeln!(o, "Containers:")?;
    for c in &v.containers {
        writeln!(o, "  {}  {:<24} {}", &c.id[..12], c.name, c.status)?;
    }
    Ok(())
}

/// `global` is the `--format` given before the subcommand, if any: inspect prints JSON unless text is
/// asked for explicitly.
fn volume(
    mk: &Mountkit,
    c: VolumeCmd,
    fmt: &dyn Fn(Option<Format>) -> Format,
    global: Option<Format>,
) -> anyhow::Result<i32> {
    use mountkit::volumes::{CreateOptions as VolOpts, Filter};
    let parse_filters = |fs: &[String]| -> anyhow::Result<Vec<Filter>> {
        fs.iter()
            .map(|f| f.parse::<Filter>().map_err(anyhow::Error::from))
            .collect()
    };
    match c {
        VolumeCmd::Create {
            name,
            driver,
            labels,
            opts,
        } => {
            let v = mk.volumes().create(
                name.as_deref(),
                VolOpts {
                    driver: Some(driver),
                    labels: kv_map("label", &labels)?,
                    options: kv_map("option", &opts)?,
                    anonymous: false,
                },
            )?;
            println!("{}", v.name);
        }
        VolumeCmd::Ls { quiet, filters, f } => {
            let vs = mk.list_volumes(&parse_filters(&filters)?)?;
            print_listing(
                fmt(f.format),
                &vs,
                quiet,
                |v| v.name.clone(),
                format!("{:<10} VOLUME NAME", "DRIVER"),
                |v| format!("{:<10} {}", v.driver, v.name),
            )?;
        }
        VolumeCmd::Inspect { name, f } => {
            let vs = mk.inspect_volumes(&name)?;
            let format = f.format.or(global).unwrap_or(Format::Json);
            print_json_or(format, &vs, |o| {
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        writeln!(o)?;
                    }
                    write_volume_text(o, v)?;
                }
                Ok(())
            })?;
        }
        VolumeCmd::Rm { force, name } => {
            let mut failed = false;
            for n in &name {
                match mk.remove_volume(n, force) {
                    Ok(true) => println!("{n}"),
                    Ok(false) => {}
                    Err(e) => {
                        eprintln!("mountkit: {e}");
                        failed = true;
                    }
                }
            }
            return Ok(if failed { 1 } else { 0 });
        }
        VolumeCmd::Prune {
            all,
            force: _,
            filters,
        } => {
            let removed = mk.prune_volumes(all, &parse_filters(&filters)?)?;
            for n in &removed {
                println!("{n}");
            }
        }
    }
    Ok(0)
}
