//! `mountkit system`: info, gc, sample-image.

use std::path::PathBuf;

use serde::Serialize;

use mountkit::cli_args::SystemCmd;
use mountkit::overlay::{MAX_LOWER_LAYERS, features};

use super::{Ctx, output};

/// What `system info` shows. Keys are in alphabetical order, the order of the JSON it has always printed.
#[derive(Serialize)]
pub struct SystemInfo {
    /// The running kernel's release.
    pub kernel: String,
    /// What overlayfs supports here.
    pub overlay: OverlayInfo,
    /// The store's root directory.
    pub root: PathBuf,
    /// The kernel has seccomp filters (`CONFIG_SECCOMP_FILTER`), which every confined container needs.
    pub seccomp_filter: bool,
    /// The filesystem the store's volumes (directory volumes' data) are on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes_filesystem: Option<mountkit::FilesystemInfo>,
}

/// The overlay part of [`SystemInfo`].
#[derive(Serialize)]
pub struct OverlayInfo {
    /// `lowerdir+` through the new mount API.
    pub lowerdir_plus: bool,
    /// The most layers an image may have.
    pub max_lower_layers: usize,
    /// `fsopen("overlay")` works.
    pub new_mount_api: bool,
}

/// Runs a `system` subcommand.
pub fn run(ctx: &Ctx, c: SystemCmd) -> anyhow::Result<i32> {
    let mk = &ctx.mk;
    match c {
        SystemCmd::Info { f } => {
            let features = features();
            let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let info = SystemInfo {
                kernel: kernel.trim().to_string(),
                overlay: OverlayInfo {
                    lowerdir_plus: features.lowerdir_plus,
                    max_lower_layers: MAX_LOWER_LAYERS,
                    new_mount_api: features.new_mount_api,
                },
                root: mk.root().to_path_buf(),
                seccomp_filter: mountkit::ns_runner::seccomp_filter_supported(),
                volumes_filesystem: mountkit::filesystem_of(mk.volumes().root()),
            };
            output::system_info(ctx.format(f.format), &info)?;
        }
        SystemCmd::SampleImage { name, volumes } => {
            println!("{}", mk.create_sample_image(&name, &volumes)?.id)
        }
        SystemCmd::Gc => output::print_lines(mk.layers().gc()?),
        SystemCmd::Df { verbose, f } => super::df::print(ctx.format(f.format), &mk.disk_usage()?, verbose)?,
        SystemCmd::Doctor { fix, f } => return super::doctor::print(ctx.format(f.format), &mk.doctor(fix)?),
    }
    Ok(0)
}
