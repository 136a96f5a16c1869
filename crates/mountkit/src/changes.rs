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
//!   without its volumes, binds and tmpfs) as a tar. The overlay is mounted in a short-lived child's own
//!   mount namespace: nothing is mounted in the host's.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};

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
        };
        Ok(self.layers().create_image(Some(name), &layers, config)?)
    }

    /// Writes the container's flattened filesystem as a tar to `out` (volumes, binds and tmpfs excluded).
    pub fn export(&self, reference: &str, out: &mut dyn AsRawFd) -> Result<()> {
        let c = self.container(reference)?;
        let image = self.layers().image(&c.image)?;
        let stack = self.stack(&c, &image);
        // A private mount point so that a `container mount` of the same container is not disturbed.
        let target = self.staging("export");
        std::fs::create_dir_all(&target).map_err(|e| Error::io("create", &target, e))?;
        let fd = out.as_raw_fd();
        let (rd, wr) = nix::unistd::pipe().map_err(|e| Error::io("pipe", &target, e.into()))?;
        // SAFETY: mountkit is single-threaded here; the child only mounts, writes the tar and `_exit`s.
        let result = match unsafe { nix::unistd::fork() }.map_err(|e| Error::io("fork", &target, e.into()))? {
            nix::unistd::ForkResult::Child => {
                drop(rd);
                let mut errw = std::fs::File::from(wr);
                let r = (|| -> std::result::Result<(), String> {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
                        .map_err(|e| format!("unshare: {e}"))?;
                    nix::mount::mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                        None::<&str>,
                    )
                    .map_err(|e| format!("make / private: {e}"))?;
                    mountkit_overlay::mount(&stack, &target, Self::overlay_method())
                        .map_err(|e| e.to_string())?;
                    // SAFETY: `fd` stays open in the parent for the child's lifetime; ManuallyDrop keeps
                    // the child from closing the parent's descriptor twice.
                    let file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
                    let mut w = std::io::BufWriter::with_capacity(1 << 20, &*file);
                    mountkit_layer_store::canonical_tar(&target, &mut w).map_err(|e| e.to_string())?;
                    w.flush().map_err(|e| format!("write the tar: {e}"))
                })();
                let code = match r {
                    Ok(()) => 0,
                    Err(msg) => {
                        let _ = errw.write_all(msg.as_bytes());
                        1
                    }
                };
                // SAFETY: a forked child leaves without unwinding or running the parent's destructors.
                unsafe { nix::libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(wr);
                let mut msg = String::new();
                let _ = std::io::Read::read_to_string(&mut std::fs::File::from(rd), &mut msg);
                match nix::sys::wait::waitpid(child, None) {
                    Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                    other => Err(Error::InvalidArgument {
                        what: "container export",
                        value: c.name.clone(),
                        reason: if msg.is_empty() {
                            format!("the exporter ended with {other:?}")
                        } else {
                            msg
                        },
                    }),
                }
            }
        };
        let _ = std::fs::remove_dir(&target);
        result
    }
}
