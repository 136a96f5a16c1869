//! Helpers shared by the volumes test binaries that mount filesystems of their own.

/// Unmounts its path (and what is mounted below it) when dropped: declared after the temp dir, so the
/// mount goes before the dir is removed (a removal must never walk into a mounted filesystem).
pub struct Unmount(pub std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-R")
            .arg(&self.0)
            .status();
    }
}
