//! Shadow warnings (seed S12): a bind or volume mounted over an image directory that is not empty hides
//! that directory's files, and Docker says nothing. `container create` and `run` print one line on
//! stderr per such mount:
//!
//! ```text
//! mountkit: warning: -v /host/x:/app hides 37 files of the image under /app (layers 1-2)
//! ```
//!
//! The count is the directory's own entries (a subdirectory counts once: what `ls -A` would show), read
//! with one `readdir` per layer holding the directory. No warning for a missing or empty target, for a
//! single-file bind (S13: a file over a file merges nothing away that the user did not name), for a tmpfs
//! (`--tmpfs /tmp` over an image's `/tmp` is the point of it), or for a volume that the first start fills
//! from that directory (S8: an empty, never populated volume without `nocopy`). A named volume that
//! already has content does hide the image's files, and is warned about. The mount is shown in `-v`
//! syntax whichever flag made it.
//!
//! Warnings are off in the library unless the program turns them on ([`set_shadow_warnings`]); the
//! `mountkit` binary does, unless `-q`/`--quiet` is given; `MOUNTKIT_NO_WARN=1` silences them in every
//! case. A failure to compute them is logged at debug level and never fails the create.

use std::sync::atomic::{AtomicBool, Ordering};

use mountkit_binds::MountSpec;
use mountkit_layer_store::ImageInfo;

use super::{View, layer_ranges};
use crate::{Container, Mountkit, Result};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the shadow warnings of `create`/`run` on or off for this process (off by default).
pub fn set_shadow_warnings(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether warnings are printed: turned on, and `MOUNTKIT_NO_WARN` unset, empty or `0`.
fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
        && std::env::var_os("MOUNTKIT_NO_WARN").is_none_or(|v| v.is_empty() || v == "0")
}

/// Prints the shadow warnings of a container just created (see the module docs).
pub(crate) fn report(mk: &Mountkit, c: &Container, image: &ImageInfo) {
    if !enabled() || c.mounts.is_empty() {
        return;
    }
    match warnings(mk, c, image) {
        Ok(lines) => {
            for l in lines {
                eprintln!("mountkit: warning: {l}");
            }
        }
        Err(e) => tracing::debug!(error = %e, "shadow warnings not computed"),
    }
}

/// The warning lines for container `c` (without the `mountkit: warning: ` prefix).
pub fn warnings(mk: &Mountkit, c: &Container, image: &ImageInfo) -> Result<Vec<String>> {
    let mut view: Option<View> = None;
    let mut out = Vec::new();
    for m in &c.mounts {
        let target = m.spec.target().to_string_lossy().into_owned();
        let flag = match &m.spec {
            MountSpec::Bind { source, readonly, .. } => {
                if !source.is_dir() {
                    continue; // a single-file bind (or a missing source: create fails on it elsewhere)
                }
                format!(
                    "-v {}:{target}{}",
                    source.display(),
                    if *readonly { ":ro" } else { "" }
                )
            }
            MountSpec::Volume {
                name: Some(name),
                nocopy,
                readonly,
                ..
            } => {
                let populated = mk.volumes().get(name).is_ok_and(|v| v.populated);
                if !populated && !nocopy {
                    continue; // S8: the first start copies the image's directory into it
                }
                let shown = if m.anonymous {
                    &name[..name.len().min(12)]
                } else {
                    name
                };
                format!("-v {shown}:{target}{}", if *readonly { ":ro" } else { "" })
            }
            _ => continue,
        };
        let view = view.get_or_insert_with(|| View::of_image(mk, image));
        if let Some(d) = view.dir_summary(&target)? {
            if d.count > 0 {
                let layers = match d.layers.len() {
                    1 => format!("layer {}", d.layers[0]),
                    _ => format!("layers {}", layer_ranges(&d.layers)),
                };
                out.push(format!(
                    "{flag} hides {} {} of the image under {target} ({layers})",
                    d.count,
                    if d.count == 1 { "file" } else { "files" }
                ));
            }
        }
    }
    Ok(out)
}
