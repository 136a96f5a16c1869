//! A container's rootfs as an overlay stack, and `container mount`/`unmount`: its rootfs mounted in the
//! *host's* namespace on purpose (everything else mounts only in the container's own namespace).

use std::path::{Path, PathBuf};

use mountkit_layer_store::ImageInfo;

use crate::container::Container;
use crate::{Mountkit, Result};

impl Mountkit {
    /// Mounts the container's rootfs in the *host's* mount namespace at `containers/<id>/merged` and
    /// returns that path (`container mount`, for inspection or copying from a script).
    pub fn mount(&self, reference: &str) -> Result<PathBuf> {
        let _lock = self.lock()?;
        let c = self.container(reference)?;
        let merged = self.container_dir(&c.id).join("merged");
        if !mountkit_safefs::is_mount_point(&merged) {
            let image = self.layers().image(&c.image)?;
            let stack = self.stack(&c, &image);
            mountkit_overlay::mount(&stack, &merged, Self::overlay_method())?;
        }
        Ok(merged)
    }

    /// Undoes [`Mountkit::mount`]. Unmounting a container that is not mounted is not an error.
    pub fn unmount(&self, reference: &str) -> Result<()> {
        let _lock = self.lock()?;
        let c = self.container(reference)?;
        let merged = self.container_dir(&c.id).join("merged");
        if mountkit_safefs::is_mount_point(&merged) {
            mountkit_overlay::unmount(&merged)?;
        }
        Ok(())
    }

    /// The overlay mount method: `Auto` unless `MOUNTKIT_OVERLAY_METHOD` says `new-api` or `classic` (a
    /// knob for tests and for working around a kernel bug; `mountkit system info` shows what is detected).
    pub(crate) fn overlay_method() -> mountkit_overlay::Method {
        match std::env::var("MOUNTKIT_OVERLAY_METHOD").as_deref() {
            Ok("new-api") => mountkit_overlay::Method::NewApi,
            Ok("classic") => mountkit_overlay::Method::Classic,
            _ => mountkit_overlay::Method::Auto,
        }
    }

    pub(crate) fn stack(&self, c: &Container, image: &ImageInfo) -> mountkit_overlay::Stack {
        self.stack_at(&self.container_dir(&c.id), image)
    }

    /// The overlay stack of a container whose directory is `dir` (a pending one's is in `staging/`).
    pub(crate) fn stack_at(&self, dir: &Path, image: &ImageInfo) -> mountkit_overlay::Stack {
        mountkit_overlay::Stack::new()
            .lowers(image.layers.iter().map(|l| self.layers().layer_path(l)))
            .upper(dir.join("upper"), dir.join("work"))
    }
}
