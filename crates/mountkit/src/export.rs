//! Exports to a file or to standard output: `layer export` and `container export` (`-o FILE|-`).
//!
//! A file is written as `FILE.partial` and renamed to `FILE` only once the whole tar is written
//! ([`write_atomically`]): whoever waits for `FILE` never reads half a tar, and a failed export leaves
//! neither `FILE` nor the partial file behind. `image save` needs none of this: the layer store's
//! `oci::save` stages its own output the same way.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Mountkit, Result};

/// Where an export writes its tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTarget {
    /// Standard output.
    Stdout,
    /// A file, which appears complete or not at all (see [`write_atomically`]).
    File(PathBuf),
}

impl ExportTarget {
    /// The command line's `-o FILE|-`: `-` is standard output, anything else a file.
    ///
    /// ```
    /// use mountkit::ExportTarget;
    /// assert_eq!(ExportTarget::from_arg("-"), ExportTarget::Stdout);
    /// assert_eq!(ExportTarget::from_arg("out.tar"), ExportTarget::File("out.tar".into()));
    /// ```
    pub fn from_arg(arg: &str) -> ExportTarget {
        if arg == "-" {
            ExportTarget::Stdout
        } else {
            ExportTarget::File(arg.into())
        }
    }
}

/// Writes the file `path` with `write`, which gets `<path>.partial` to write to; renames it to `path`
/// only when `write` succeeded, and removes it otherwise. A reader of `path` sees the complete file or
/// none (an existing `path` stays untouched until the rename replaces it). Nothing is fsynced: an
/// export is not store state, and after a power loss the file may be incomplete.
pub fn write_atomically(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = File::create(&partial).map_err(|e| Error::io("create", &partial, e))?;
    let done = write(&mut file)
        .and_then(|()| std::fs::rename(&partial, path).map_err(|e| Error::io("write", path, e)));
    if done.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    done
}

impl Mountkit {
    /// Writes a layer (an ID or a unique prefix) as a tar with OCI whiteouts to `target`.
    pub fn export_layer_to(&self, reference: &str, target: &ExportTarget) -> Result<()> {
        let id = self.layers().layer(reference)?.id;
        let export = |out: &mut dyn Write, what: &Path| -> Result<()> {
            let mut out = std::io::BufWriter::new(out);
            self.layers().export_layer(&id, &mut out)?;
            out.flush().map_err(|e| Error::io("write", what, e))
        };
        match target {
            ExportTarget::Stdout => export(&mut std::io::stdout().lock(), Path::new("standard output")),
            ExportTarget::File(path) => write_atomically(path, |f| export(f, path)),
        }
    }

    /// Writes the container's flattened filesystem as a tar to `target` (volumes, binds and tmpfs
    /// excluded; see [`Mountkit::export`]).
    pub fn export_to(&self, reference: &str, target: &ExportTarget) -> Result<()> {
        match target {
            ExportTarget::Stdout => self.export(reference, &mut std::io::stdout()),
            ExportTarget::File(path) => write_atomically(path, |f| self.export(reference, f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_write_is_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.tar");
        write_atomically(&path, |f| {
            assert!(dir.path().join("out.tar.partial").exists());
            assert!(!path.exists(), "nothing at the final name while writing");
            f.write_all(b"tar")
                .map_err(|e| Error::io("write", "out.tar.partial", e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"tar");
        assert!(!dir.path().join("out.tar.partial").exists());
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.tar");
        std::fs::write(&path, b"old").unwrap();
        let err = write_atomically(&path, |f| {
            f.write_all(b"half").unwrap();
            Err(Error::NoSuchContainer("c".into()))
        })
        .unwrap_err();
        assert!(matches!(err, Error::NoSuchContainer(_)), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert!(!dir.path().join("out.tar.partial").exists());
        let missing = dir.path().join("no-dir/out.tar");
        let err = write_atomically(&missing, |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("no-dir/out.tar.partial"), "{err}");
    }
}
