//! `system doctor [--fix]`: problems of the store and of running containers, each with the object, what is
//! wrong and the fix; and what the kernel supports, with what it means for the user.
//!
//! Checks (each problem makes the command exit 1):
//!
//! - **Replaced single-file binds** of running containers: an editor's save writes a new file and renames
//!   it over the old one; the container keeps the old inode (moby#15793). Seen by comparing the host
//!   file's inode with the one the container sees (`/proc/<pid>/root/<target>`; needs the right to read
//!   another process's root, so as root).
//! - **Mounts under the store** in this mount namespace that mountkit did not make: `container rm`,
//!   `volume rm` and the layer store refuse to delete through them. A `container mount`'s rootfs (of an
//!   existing container) is on purpose, and so is a volume driver's mount of a volume some running
//!   container holds; a driver mount of a volume no running container holds is reported (every command's
//!   start-up reconciliation unmounts those whose users died; one that stays needs a look).
//! - **Staging entries of dead processes** (`staging/`): every command sweeps them when it opens the
//!   store, so one found here could not be removed (a mount under it, say); `--fix` tries again.
//! - **Records that point at missing objects**: an image whose layer is gone, a container whose image is
//!   gone.
//! - **Layers no image uses**: `system gc` reclaims them.
//!
//! Kernel features are reported, never problems: overlay's new mount API and `lowerdir+` (images of
//! more than ~120 layers need one of the two mount paths' limits), `openat2` (mount targets resolved by the
//! kernel inside the root, else by mountkit's own walk), `mount_setattr` (read-only and `nodev` on a whole
//! tree in one call), idmapped mounts (not used by mountkit yet), seccomp filters (the default confinement
//! needs them), and the overlay module's `index`, `metacopy`, `redirect_dir` defaults (mountkit sets its
//! own options; the defaults matter to other users of the layers).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

use mountkit_binds::MountSpec;

use crate::{Mountkit, Result, Status};

/// One problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// What it concerns (a container, a mount point, a layer...).
    pub object: String,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
    /// `--fix` fixed it.
    pub fixed: bool,
}

/// One kernel feature.
#[derive(Debug, Clone, Serialize)]
pub struct Feature {
    /// Its name.
    pub name: &'static str,
    /// Whether this kernel has it (`null`: unknown).
    pub available: Option<bool>,
    /// What it means for the user.
    pub meaning: String,
}

/// What `system doctor` found.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// The problems (none: all is well).
    pub problems: Vec<Problem>,
    /// What the kernel supports.
    pub kernel: Vec<Feature>,
}

fn problem(object: String, problem: String, fix: String) -> Problem {
    Problem {
        object,
        problem,
        fix,
        fixed: false,
    }
}

impl Mountkit {
    /// `system doctor`: see the module docs. With `fix`, sweeps staging entries of dead processes again.
    /// Reads only otherwise; takes no lock.
    pub fn doctor(&self, fix: bool) -> Result<DoctorReport> {
        let mut problems = Vec::new();
        let containers = self.containers()?;
        let images = self.layers().images()?;
        let layers = self.layers().layers()?;

        // Replaced single-file binds of running containers.
        for c in containers.iter().filter(|c| c.state.status == Status::Running) {
            let Some(pid) = c.state.pid else { continue };
            for m in &c.mounts {
                let MountSpec::Bind { source, target, .. } = &m.spec else {
                    continue;
                };
                let Ok(host) = std::fs::metadata(source) else {
                    continue;
                };
                if host.is_dir() {
                    continue;
                }
                let inside =
                    Path::new(&format!("/proc/{pid}/root")).join(target.strip_prefix("/").unwrap_or(target));
                let Ok(seen) = std::fs::metadata(&inside) else {
                    continue;
                };
                if (seen.dev(), seen.ino()) != (host.dev(), host.ino()) {
                    problems.push(problem(
                        format!("container {}: bind {} -> {}", c.name, source.display(), target.display()),
                        "the host file was replaced (a new inode: an editor's save, a rename over it); the container \
                         still sees the old file"
                            .into(),
                        "restart the container, or bind the directory that holds the file".into(),
                    ));
                }
            }
        }

        // Mounts under the store.
        let root = std::fs::canonicalize(self.root()).unwrap_or_else(|_| self.root().to_path_buf());
        let running: Vec<&str> = containers
            .iter()
            .filter(|c| c.state.status == Status::Running)
            .map(|c| c.id.as_str())
            .collect();
        for mp in mountkit_safefs::mounts_under_canonical(&root)? {
            let Ok(rel) = mp.strip_prefix(&root) else { continue };
            let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            let what = match parts.as_slice() {
                [] => continue, // the store itself on its own filesystem
                ["containers", id, "merged"] if containers.iter().any(|c| c.id == *id) => continue,
                ["volumes", name, "_data"] => match self.volumes().get(name) {
                    Ok(v) if v.active.iter().any(|u| running.contains(&u.as_str())) => continue,
                    Ok(_) => (
                        format!("the driver mount of volume {name} is held though no running container uses it"),
                        format!("stop using it or unmount it: umount {}", mp.display()),
                    ),
                    Err(_) => (
                        format!("a mount on the data of volume {name}, which does not exist"),
                        format!("umount {}", mp.display()),
                    ),
                },
                _ => (
                    "a mount under the store that mountkit did not make (removals refuse to delete through it)"
                        .to_string(),
                    format!("unmount it if nothing needs it: umount {}", mp.display()),
                ),
            };
            problems.push(problem(format!("mount {}", mp.display()), what.0, what.1));
        }

        // Staging entries of dead processes.
        if let Ok(entries) = std::fs::read_dir(self.root().join("staging")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
                if pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists()) {
                    continue; // work in progress
                }
                let mut p = problem(
                    format!("staging entry {}", e.path().display()),
                    "left by a process that is gone, and not swept (something may be mounted under it)"
                        .into(),
                    "mountkit system doctor --fix (after unmounting what is under it)".into(),
                );
                if fix {
                    p.fixed = mountkit_safefs::remove_tree(&e.path()).is_ok();
                }
                problems.push(p);
            }
        }

        // Records that point at missing objects.
        let layer_ids: std::collections::BTreeSet<String> = layers.iter().map(|l| l.id.to_string()).collect();
        for i in &images {
            for l in &i.layers {
                if !layer_ids.contains(&l.to_string()) {
                    problems.push(problem(
                        format!("image {}", i.display_name()),
                        format!("its layer {l} is missing from the store"),
                        "remove the image (mountkit image rm) and import it again".into(),
                    ));
                }
            }
        }
        let image_ids: std::collections::BTreeSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
        for c in &containers {
            if !image_ids.contains(c.image.as_str()) {
                problems.push(problem(
                    format!("container {}", c.name),
                    format!("its image {} is missing from the store", c.image),
                    format!("remove the container (mountkit container rm {})", c.name),
                ));
            }
        }

        // Layers no image uses.
        let used: std::collections::BTreeSet<String> = images
            .iter()
            .flat_map(|i| i.layers.iter().map(ToString::to_string))
            .collect();
        for l in layers.iter().filter(|l| !used.contains(&l.id.to_string())) {
            problems.push(problem(
                format!("layer {}", l.id),
                format!("no image uses it ({} bytes)", l.size),
                "mountkit system gc".into(),
            ));
        }

        Ok(DoctorReport {
            problems,
            kernel: kernel_features(),
        })
    }
}

/// `(major, minor)` of the running kernel.
fn kernel_version() -> Option<(u32, u32)> {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut it = r.trim().split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The overlay module's default for `param` (`Y`/`N`), if the module says.
fn overlay_param(param: &str) -> Option<bool> {
    let v = std::fs::read_to_string(format!("/sys/module/overlay/parameters/{param}")).ok()?;
    Some(v.trim() == "Y")
}

fn kernel_features() -> Vec<Feature> {
    let f = mountkit_overlay::features();
    let at_least = |maj: u32, min: u32| kernel_version().map(|v| v >= (maj, min));
    let openat2 = match rustix::fs::openat2(
        rustix::fs::CWD,
        "/",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::empty(),
    ) {
        Ok(_) => Some(true),
        Err(rustix::io::Errno::NOSYS) => Some(false),
        Err(_) => None,
    };
    let yes_no = |b: Option<bool>| match b {
        Some(true) => "on",
        Some(false) => "off",
        None => "unknown",
    };
    vec![
        Feature {
            name: "overlay new mount API",
            available: Some(f.new_mount_api),
            meaning: "overlays are mounted with fsopen/fsconfig (layer paths of any length); without it, mount(2)".into(),
        },
        Feature {
            name: "overlay lowerdir+",
            available: Some(f.lowerdir_plus),
            meaning: "each layer is passed on its own (up to 500 layers); without it, images are limited by mount(2)'s one-page option string".into(),
        },
        Feature {
            name: "openat2",
            available: openat2,
            meaning: "mount targets are resolved inside the root by the kernel (RESOLVE_IN_ROOT); without it, by mountkit's own walk".into(),
        },
        Feature {
            name: "mount_setattr",
            available: at_least(5, 12),
            meaning: "read-only and nodev are set on a whole tree at once; without it, each mount is remounted".into(),
        },
        Feature {
            name: "idmapped mounts",
            available: at_least(5, 12),
            meaning: "not used by mountkit yet (user namespaces are not supported)".into(),
        },
        Feature {
            name: "seccomp filters",
            available: Some(mountkit_ns_runner::seccomp_filter_supported()),
            meaning: "the default confinement filters system calls; without it, containers need --security-opt seccomp=unconfined".into(),
        },
        Feature {
            name: "overlay defaults",
            available: None,
            meaning: format!(
                "index={}, metacopy={}, redirect_dir={} (the module's defaults; mountkit sets its own options)",
                yes_no(overlay_param("index")),
                yes_no(overlay_param("metacopy")),
                yes_no(overlay_param("redirect_dir")),
            ),
        },
    ]
}
