//! Where the store is when no root is given: the command line's policy, so that a program using the
//! library finds the same store as `mountkit` does.

use std::path::{Path, PathBuf};

use crate::Mountkit;

impl Mountkit {
    /// The store's root directory when none is given (`mountkit` without `--root`):
    /// `$MOUNTKIT_ROOT` when set and not empty; else `/var/lib/mountkit` for root; else
    /// `$XDG_DATA_HOME/mountkit`, with `$HOME/.local/share` when `XDG_DATA_HOME` is unset (and `/tmp`
    /// when `HOME` is too).
    pub fn default_root() -> PathBuf {
        if let Some(r) = std::env::var_os("MOUNTKIT_ROOT").filter(|r| !r.is_empty()) {
            return r.into();
        }
        if rustix::process::geteuid().is_root() {
            return "/var/lib/mountkit".into();
        }
        let data = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
            .unwrap_or_else(|| "/tmp".into());
        data.join("mountkit")
    }
}
