//! A container's writable layer read back: `diff`, `commit`, `export`.
//!
//! - `diff` lists what the container changed, `docker diff` style, from its writable layer only (the cost
//!   grows with the changes, not with the image): see `mountkit_overlay::changes`.
//! - `commit` turns the writable layer into a new layer (overlay whiteouts become `.wh.` entries, opaque
//!   directories `.wh..wh..opq`) stacked on the container's image, keeping the image's config with the
//!   container's command, environment, user and workdir (as `docker commit`). Volume contents are not
//!   included: volumes are mounts, not part of the writable layer (their empty mount points are).
//!   Consistency: a stopped container gives an exact snapshot. A running container's writable layer is read
//!   while it may change: files being written during the commit can be captured half-written. Docker
//!   pauses the container with the cgroup freezer; mountkit has no cgroups, so stop the container first when
//!   that matters.
//! - `export` writes the flattened filesystem (image layers + writable layer, as the container sees it
//!   without its volumes, binds and tmpfs) as a tar. The overlay is mounted in a short-lived thread's own
//!   mount namespace: nothing is mounted in the host's, and the mount goes with the thread.

use std::io::Write;
use std::os::fd::AsFd;

use mountkit_layer_store::{ImageConfig, ImageInfo, LayerSource};
use mountkit_overlay::Change;

use crate::{Error, Mountkit, Result};

impl Mountkit {
    /// What the container changed relative to its image, sorted by path.
    pub fn diff(&self, reference: &str) -> Result<Vec<Change>> {
        let c = self.container(reference)?;
        let image = self.layers().image(&c.image)?;
        let lowers: Vec<_> = image.layers.iter().map(|l| self.layers().layer_path(l)).collect();
        Ok(mountkit_overlay::changes(
            &self.container_dir(&c.id).join("upper"),
            &lowers,
        )?)
    }

    /// Makes a new image `name` from the container's image plus its writable layer.
    pub fn commit(&self, reference: &str, name: &str) -> Result<ImageInfo> {
        let c = self.container(reference)?;
        let image = self.layers().image(&c.image)?;
        let upper = self.container_dir(&c.id).join("upper");
        let layer = self.layers().import_layer(LayerSource::Dir(upper))?;
        let mut layers = image.layers.clone();
        layers.push(layer.id);
        let env = c.config.env.clone();
        let config = ImageConfig {
            volumes: image.config.volumes.clone(),
            user: c.config.user.clone(),
            workdir: Some(c.config.workdir.clone()),
            env,
            // The container's full command becomes the new image's cmd under the same entrypoint, when the
            // command still starts with it; otherwise the command replaces both.
            entrypoint: image
                .config
                .entrypoint
                .clone()
                .filter(|e| c.config.args.starts_with(e)),
            cmd: Some(match &image.config.entrypoint {
                Some(e) if c.config.args.starts_with(e) => c.config.args[e.len()..].to_vec(),
                _ => c.config.args.clone(),
            }),
            labels: image.config.labels.clone(),
            // The image's steps (when they account for its layers) and this one, as `docker commit`.
            history: {
                let mut h = image.config.history.clone();
                if image
                    .config
                    .layer_history(image.layers.len())
                    .iter()
                    .all(Option::is_none)
                {
                    h.clear();
                }
                if !h.is_empty() {
                    h.push(mountkit_layer_store::HistoryEntry {
                        created: Some(mountkit_safefs::now_rfc3339(
                            mountkit_safefs::TimePrecision::Seconds,
                        )),
                        created_by: Some(c.config.args.join(" ")),
                        comment: Some(format!("mountkit container commit {}", c.name)),
                        empty_layer: false,
                    });
                }
                h
            },
        };
        Ok(self.layers().create_image(Some(name), &layers, config)?)
    }

    /// Writes the container's flattened filesystem as a tar to `out` (volumes, binds and tmpfs excluded).
    pub fn export(&self, reference: &str, out: &mut dyn AsFd) -> Result<()> {
        let c = self.container(reference)?;
        let image = self.layers().image(&c.image)?;
        let stack = self.stack(&c, &image);
        // A private mount point so that a `container mount` of the same container is not disturbed.
        let target = self.staging("export");
        std::fs::create_dir_all(&target).map_err(|e| Error::io("create", &target, e))?;
        let out = std::fs::File::from(
            rustix::io::fcntl_dupfd_cloexec(out.as_fd(), 0)
                .map_err(|e| Error::io("duplicate the output of", &target, e.into()))?,
        );
        let method = Self::overlay_method();
        let result = std::thread::scope(|s| {
            s.spawn(|| export_in_own_namespace(&stack, &target, method, &out))
                .join()
                .unwrap_or_else(|_| {
                    Err(Error::InvalidArgument {
                        what: "container export",
                        value: c.name.clone(),
                        reason: "the exporting thread panicked".into(),
                    })
                })
        });
        let _ = std::fs::remove_dir(&target);
        result
    }
}

/// Runs on a thread of its own: gives the thread a mount namespace of its own (`unshare(CLONE_NEWNS)`,
/// which a thread may do: its filesystem context is unshared with it), makes it private, mounts the
/// overlay on `target` there and writes the canonical tar of it to `out`. Nobody else sees the mount,
/// and the kernel drops it with the namespace when the thread ends, whatever happens.
fn export_in_own_namespace(
    stack: &mountkit_overlay::Stack,
    target: &std::path::Path,
    method: mountkit_overlay::Method,
    out: &std::fs::File,
) -> Result<()> {
    // SAFETY: no descriptor table is unshared (no CLONE_FILES), so no descriptor can be closed behind
    // another thread's back; only this thread's mount namespace and filesystem context change.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| Error::io("give the exporter a mount namespace for", target, e.into()))?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::REC | rustix::mount::MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| Error::io("make / private for", target, e.into()))?;
    mountkit_overlay::mount(stack, target, method)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
    mountkit_layer_store::canonical_tar(target, &mut w)?;
    w.flush().map_err(|e| Error::io("write the tar of", target, e))
}
