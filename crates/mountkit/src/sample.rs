//! The built-in sample image: made from files this machine already has, with no network.
//!
//! The base layer holds a few programs of the host (`/bin/sh`, coreutils) with the shared libraries
//! `ldd` reports for them, copied to the same paths, plus `/etc/passwd` and `/etc/group` with `root` and
//! an unprivileged `app` user (uid and gid 1000). Two more layers show how layers combine:
//!
//! | layer | contents |
//! |---|---|
//! | 1 `base` | programs, libraries, `/etc`, `/app/config.txt` = `v1`, `/app/remove-me.txt`, `/app/old/{a,b}.txt` |
//! | 2 `app` | `/app/message.txt`, `/app/config.txt` = `v2` (a later layer wins) |
//! | 3 `patch` | `/app/.wh.remove-me.txt` (an OCI whiteout: deletes it), `/app/old/.wh..wh..opq` (opaque: hides `a` and `b`) and `/app/old/new.txt` |
//!
//! The demo (`cargo xtask demo`) and the end-to-end tests use it.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Programs copied from the host into the base layer (those that exist there).
pub const PROGRAMS: &[&str] = &[
    "sh", "cat", "echo", "ls", "id", "mkdir", "rm", "rmdir", "touch", "sleep", "stat", "env", "printf",
    "true", "false", "wc", "head", "tail", "mv", "cp", "ln", "chmod", "chown", "grep", "sed", "readlink",
    "hostname", "test", "kill", "df", "cut", "sort", "tr", "uname", "date", "dd", "sync", "find", "seq",
    "md5sum", "pwd",
];

/// The three sample layer directories, bottom first.
#[derive(Debug, Clone)]
pub struct SampleLayers {
    /// Programs, libraries and `/etc`.
    pub base: PathBuf,
    /// The application layer.
    pub app: PathBuf,
    /// The patch layer with whiteouts.
    pub patch: PathBuf,
}

impl SampleLayers {
    /// The layer directories, bottom first.
    pub fn all(&self) -> [&Path; 3] {
        [&self.base, &self.app, &self.patch]
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The shared libraries (and the loader) `ldd` lists for `program`, as the paths the program asks for.
pub fn libraries(program: &Path) -> io::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(program).output()?;
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next().unwrap_or(""),
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

fn copy_to(root: &Path, host: &Path, at: &Path) -> io::Result<()> {
    let dest = root.join(at.strip_prefix("/").unwrap_or(at));
    if dest.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
    std::fs::copy(host, &dest)?; // follows symlinks: the sample gets regular files
    Ok(())
}

/// Writes the base layer into `dir`: host programs and their libraries, `/etc`, and standard directories.
pub fn write_base(dir: &Path) -> io::Result<()> {
    for d in [
        "bin", "usr/bin", "etc", "tmp", "root", "home/app", "proc", "dev", "sys", "app/old", "data",
    ] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    let mut found = 0;
    for name in PROGRAMS {
        let Some(host) = which(name) else { continue };
        let at = if *name == "sh" {
            PathBuf::from("/bin/sh")
        } else {
            PathBuf::from("/usr/bin").join(name)
        };
        copy_to(dir, &host, &at)?;
        for lib in libraries(&host)? {
            copy_to(dir, &lib, &lib)?;
        }
        found += 1;
    }
    if which("sh").is_none() || found < 5 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the host lacks /bin/sh or coreutils for the sample image",
        ));
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:sample app user:/home/app:/bin/sh\n",
    )?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\napp:x:1000:\nstaff:x:50:app\n")?;
    std::os::unix::fs::chown(dir.join("home/app"), Some(1000), Some(1000)).or_else(|e| {
        if e.kind() == io::ErrorKind::PermissionDenied {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    std::fs::write(dir.join("app/config.txt"), "v1\n")?;
    std::fs::write(
        dir.join("app/remove-me.txt"),
        "deleted by a whiteout in layer 3\n",
    )?;
    std::fs::write(dir.join("app/old/a.txt"), "a\n")?;
    std::fs::write(dir.join("app/old/b.txt"), "b\n")?;
    std::fs::write(dir.join("etc/motd"), "mountkit sample image\n")?;
    Ok(())
}

/// Writes the three sample layers under `dir` (`dir/base`, `dir/app`, `dir/patch`).
pub fn write_layers(dir: &Path) -> io::Result<SampleLayers> {
    let l = SampleLayers {
        base: dir.join("base"),
        app: dir.join("app"),
        patch: dir.join("patch"),
    };
    write_base(&l.base)?;
    std::fs::create_dir_all(l.app.join("app"))?;
    std::fs::write(l.app.join("app/message.txt"), "hello from layer 2\n")?;
    std::fs::write(l.app.join("app/config.txt"), "v2\n")?;
    std::fs::create_dir_all(l.patch.join("app/old"))?;
    std::fs::write(l.patch.join("app/.wh.remove-me.txt"), "")?;
    std::fs::write(l.patch.join("app/old/.wh..wh..opq"), "")?;
    std::fs::write(l.patch.join("app/old/new.txt"), "only this one\n")?;
    Ok(l)
}

impl crate::Mountkit {
    /// Builds the sample layers in the store's `tmp/`, imports them and creates image `name` (workdir
    /// `/app`, cmd `/bin/sh`, user root) with `volumes` as its declared volumes.
    pub fn create_sample_image(
        &self,
        name: &str,
        volumes: &[String],
    ) -> crate::Result<mountkit_layer_store::ImageInfo> {
        use mountkit_layer_store::{ImageConfig, LayerSource};
        let dir = self.staging("sample");
        let result = (|| {
            let layers =
                write_layers(&dir).map_err(|e| crate::Error::io("build the sample layers in", &dir, e))?;
            let mut ids = Vec::new();
            for l in layers.all() {
                ids.push(self.layers().import_layer(LayerSource::Dir(l.to_path_buf()))?.id);
            }
            let config = ImageConfig {
                volumes: volumes.to_vec(),
                workdir: Some("/app".into()),
                env: vec!["SAMPLE=1".into()],
                cmd: Some(vec!["/bin/sh".into()]),
                ..Default::default()
            };
            Ok(self.layers().create_image(Some(name), &ids, config)?)
        })();
        let _ = mountkit_safefs::remove_tree(&dir);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed_into_paths() {
        let libs = libraries(&which("sh").expect("the host has sh")).unwrap();
        assert!(
            libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
            "{libs:?}"
        );
        assert!(libs.iter().all(|l| l.is_absolute()));
    }

    #[test]
    fn sample_layers_have_programs_and_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let l = write_layers(dir.path()).unwrap();
        assert!(l.base.join("bin/sh").is_file());
        assert!(l.base.join("usr/bin/cat").is_file());
        assert!(l.patch.join("app/.wh.remove-me.txt").exists());
        assert_eq!(
            std::fs::read_to_string(l.app.join("app/config.txt")).unwrap(),
            "v2\n"
        );
    }
}
