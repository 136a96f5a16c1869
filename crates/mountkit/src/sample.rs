//! The built-in sample image: made from files this machine already has, with no network.
//!
//! The base layer holds a few programs of the host (`/bin/sh`, coreutils) with the shared libraries
//! they need (read from their ELF headers, found where the loader looks), copied to the same paths, plus `/etc/passwd` and `/etc/group` with `root` and
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

/// The shared libraries a program needs, and its loader, as the loader finds them with no
/// `ld.so.cache` (the sample image has none): `PT_INTERP`, then each `DT_NEEDED` name, and theirs in
/// turn, looked up in the standard library directories. Read from the ELF headers, not by running
/// `ldd`: that forked about a dozen processes per program (a second of the sample's start under the
/// emulated guests of `cargo xtask vm-test` each, for every test). A program that is not a dynamic
/// ELF file (a script, a static binary) has none.
pub fn libraries(program: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut todo = vec![program.to_path_buf()];
    let mut first = true;
    while let Some(file) = todo.pop() {
        let Some(elf) = elf::Dynamic::read(&file)? else {
            continue;
        };
        if first {
            if let Some(interp) = elf.interp {
                out.push(interp);
            }
            first = false;
        }
        for name in elf.needed {
            let Some(found) = elf::find_library(&name) else {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{}: needs {name}, found in no library directory", file.display()),
                ));
            };
            if !out.contains(&found) {
                out.push(found.clone());
                todo.push(found);
            }
        }
    }
    Ok(out)
}

/// Just enough ELF (64-bit, little-endian) to list a program's loader and needed libraries.
mod elf {
    use std::io;
    use std::path::{Path, PathBuf};

    const PT_LOAD: u32 = 1;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NULL: u64 = 0;
    const DT_NEEDED: u64 = 1;
    const DT_STRTAB: u64 = 5;

    /// What a dynamic ELF file asks the loader for.
    pub(super) struct Dynamic {
        pub(super) interp: Option<PathBuf>,
        pub(super) needed: Vec<String>,
    }

    fn u16_at(b: &[u8], o: usize) -> Option<u64> {
        Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?) as u64)
    }
    fn u32_at(b: &[u8], o: usize) -> Option<u64> {
        Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?) as u64)
    }
    fn u64_at(b: &[u8], o: usize) -> Option<u64> {
        Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
    }
    fn c_str(b: &[u8], o: usize) -> Option<String> {
        let rest = b.get(o..)?;
        let end = rest.iter().position(|&c| c == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    impl Dynamic {
        /// `None` for a file that is not a 64-bit little-endian ELF file with a dynamic section.
        pub(super) fn read(path: &Path) -> io::Result<Option<Dynamic>> {
            let b = std::fs::read(path)?;
            Ok(Self::parse(&b))
        }

        fn parse(b: &[u8]) -> Option<Dynamic> {
            // ELF magic, ELFCLASS64, ELFDATA2LSB.
            if b.get(..6)? != b"\x7fELF\x02\x01" {
                return None;
            }
            let (phoff, phentsize, phnum) = (
                u64_at(b, 0x20)? as usize,
                u16_at(b, 0x36)? as usize,
                u16_at(b, 0x38)?,
            );
            let mut interp = None;
            let mut dynamic = None;
            let mut loads = Vec::new();
            for i in 0..phnum as usize {
                let ph = phoff + i * phentsize;
                let (kind, offset, vaddr, filesz) = (
                    u32_at(b, ph)? as u32,
                    u64_at(b, ph + 8)?,
                    u64_at(b, ph + 16)?,
                    u64_at(b, ph + 32)?,
                );
                match kind {
                    PT_INTERP => interp = c_str(b, offset as usize).map(PathBuf::from),
                    PT_DYNAMIC => dynamic = Some((offset as usize, filesz as usize)),
                    PT_LOAD => loads.push((vaddr, offset, filesz)),
                    _ => {}
                }
            }
            let (dyn_off, dyn_len) = dynamic?;
            let mut strtab = None;
            let mut needed_offsets = Vec::new();
            for e in (dyn_off..dyn_off + dyn_len).step_by(16) {
                match u64_at(b, e)? {
                    DT_NULL => break,
                    DT_NEEDED => needed_offsets.push(u64_at(b, e + 8)?),
                    DT_STRTAB => strtab = Some(u64_at(b, e + 8)?),
                    _ => {}
                }
            }
            // The string table's address, as a file offset through the segment that holds it.
            let addr = strtab?;
            let (vaddr, offset, _) = loads.iter().find(|(v, _, sz)| addr >= *v && addr < v + sz)?;
            let base = (addr - vaddr + offset) as usize;
            let needed = needed_offsets
                .iter()
                .filter_map(|o| c_str(b, base + *o as usize))
                .collect();
            Some(Dynamic { interp, needed })
        }
    }

    /// Where the loader finds `name` with no cache: its multiarch and standard directories.
    pub(super) fn find_library(name: &str) -> Option<PathBuf> {
        let triple = if cfg!(target_arch = "aarch64") {
            "aarch64-linux-gnu"
        } else {
            "x86_64-linux-gnu"
        };
        [
            format!("/lib/{triple}"),
            format!("/usr/lib/{triple}"),
            "/lib64".into(),
            "/usr/lib64".into(),
            "/lib".into(),
            "/usr/lib".into(),
        ]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
    }
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
    fn libraries_are_what_the_loader_loads() {
        let Some(sh) = which("sh") else { return };
        let libs = libraries(&sh).unwrap();
        // The loader first, then at least the C library; every one exists.
        assert!(libs[0].to_string_lossy().contains("ld-linux"), "{libs:?}");
        assert!(
            libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
            "{libs:?}"
        );
        assert!(libs.iter().all(|l| l.is_file()), "{libs:?}");
        // The same set as the loader's own trace (`ldd`), where there is one.
        if let Ok(out) = std::process::Command::new("ldd").arg(&sh).output() {
            let text = String::from_utf8_lossy(&out.stdout);
            for l in &libs {
                let name = l.file_name().unwrap().to_string_lossy().into_owned();
                assert!(text.contains(&name), "{name} not in ldd's {text}");
            }
        }
        // A script or a non-ELF file needs nothing.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(libraries(&script).unwrap().is_empty());
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
