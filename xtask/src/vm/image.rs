//! Building the guest's inputs: the initramfs (newc cpio, per kernel) and the read-only ext4 test disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::cpio::{Entry, Tree};
use super::host::output;
use super::kernel::{Kernel, ModuleSubset};

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

/// Mirrors the host's merged-/usr links (`/bin -> usr/bin`, ...) so host paths resolve the same way.
pub fn add_usr_merge_links(tree: &mut Tree) -> Result<()> {
    for d in ["bin", "sbin", "lib", "lib64"] {
        let host = Path::new("/").join(d);
        if let Ok(t) = std::fs::read_link(&host) {
            let t = t.to_string_lossy().into_owned();
            if !t.starts_with('/') {
                tree.add(&t, Entry::Dir(0o755))?;
            }
            tree.add(d, Entry::Symlink(t))?;
        } else {
            tree.add(d, Entry::Dir(0o755))?;
        }
    }
    Ok(())
}

/// Copies a host file into `tree` at the same path, following (and recreating) symlinks.
/// Parent directories are canonicalized so nothing is written "through" a symlinked directory.
pub fn add_host_path(tree: &mut Tree, path: &Path, depth: u32) -> Result<()> {
    if depth > 16 {
        bail!("too many symlinks at {path:?}");
    }
    let parent = path.parent().with_context(|| format!("{path:?} has no parent"))?;
    let name = path
        .file_name()
        .with_context(|| format!("{path:?} has no file name"))?;
    let real = std::fs::canonicalize(parent)
        .with_context(|| format!("resolving {parent:?}"))?
        .join(name);
    let key = real.to_string_lossy().into_owned();
    if tree.contains(&key) {
        return Ok(());
    }
    let meta = std::fs::symlink_metadata(&real).with_context(|| format!("reading {real:?}"))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&real)?;
        tree.add(&key, Entry::Symlink(target.to_string_lossy().into_owned()))?;
        let next = if target.is_absolute() {
            target
        } else {
            real.parent().unwrap_or(Path::new("/")).join(target)
        };
        add_host_path(tree, &next, depth + 1)
    } else if meta.is_file() {
        let data = std::fs::read(&real).with_context(|| format!("reading {real:?}"))?;
        tree.add(&key, Entry::File(mode_of(&meta), data))
    } else {
        bail!("{real:?} is neither a file nor a symlink")
    }
}

/// Paths of the shared libraries (and the loader) in `ldd` output.
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            out.push(PathBuf::from(p));
        }
    }
    out
}

/// Adds a host program and the libraries `ldd` reports for it.
pub fn add_host_program(tree: &mut Tree, path: &Path) -> Result<()> {
    add_host_path(tree, path, 0)?;
    let o = Command::new("ldd").arg(path).output().context("starting ldd")?;
    if o.status.success() {
        for lib in parse_ldd(&String::from_utf8_lossy(&o.stdout)) {
            add_host_path(tree, &lib, 0)?;
        }
    }
    Ok(())
}

fn add_dir_recursive(tree: &mut Tree, src: &Path, dest: &str) -> Result<()> {
    for e in std::fs::read_dir(src).with_context(|| format!("reading {src:?}"))? {
        let e = e?;
        let p = e.path();
        let d = format!("{dest}/{}", e.file_name().to_string_lossy());
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            tree.add(&d, Entry::Dir(mode_of(&meta)))?;
            add_dir_recursive(tree, &p, &d)?;
        } else if meta.file_type().is_symlink() {
            tree.add(
                &d,
                Entry::Symlink(std::fs::read_link(&p)?.to_string_lossy().into_owned()),
            )?;
        } else {
            tree.add(&d, Entry::File(mode_of(&meta), std::fs::read(&p)?))?;
        }
    }
    Ok(())
}

/// Inputs of the initramfs that do not depend on the kernel.
pub struct BaseParts<'a> {
    /// The repository's `vm/` directory.
    pub vm_src: &'a Path,
    /// A static busybox.
    pub busybox: &'a Path,
    /// The compiled `vmt-exit` helper.
    pub vmt_exit: &'a Path,
}

/// Builds the initramfs for one kernel: `/init`, busybox, vmt-exit, host tools and their libraries,
/// `vm/rootfs/`, the module subset with its `modules.dep`, and `/etc/vmt-modules` (load order).
pub fn initramfs(base: &BaseParts<'_>, kernel: &Kernel, modules: &ModuleSubset) -> Result<Vec<u8>> {
    let mut t = Tree::new();
    add_usr_merge_links(&mut t)?;
    let usr_bin = if std::fs::read_link("/bin").is_ok() {
        "usr/bin"
    } else {
        "bin"
    };
    t.add(
        "init",
        Entry::File(
            0o755,
            std::fs::read(base.vm_src.join("init")).context("reading vm/init")?,
        ),
    )?;
    t.add(
        &format!("{usr_bin}/busybox"),
        Entry::File(0o755, std::fs::read(base.busybox)?),
    )?;
    t.add(
        &format!("{usr_bin}/vmt-exit"),
        Entry::File(0o755, std::fs::read(base.vmt_exit)?),
    )?;
    let tools = std::fs::read_to_string(base.vm_src.join("host-tools")).context("reading vm/host-tools")?;
    for line in tools
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let p = Path::new(line);
        if std::fs::symlink_metadata(p).is_err() {
            eprintln!("vm-test: note: host tool {line} is missing; the guest uses busybox's applet if any");
            continue;
        }
        add_host_program(&mut t, p).with_context(|| format!("staging host tool {line}"))?;
    }
    let rootfs = base.vm_src.join("rootfs");
    if rootfs.is_dir() {
        add_dir_recursive(&mut t, &rootfs, "")?;
    }
    for d in ["proc", "sys", "dev", "tmp", "mnt/tests", "root", "newroot"] {
        t.add(d, Entry::Dir(if d == "tmp" { 0o1777 } else { 0o755 }))?;
    }
    let mdir = format!("lib/modules/{}", kernel.release);
    let mdir = if std::fs::read_link("/lib").is_ok() {
        format!("usr/{mdir}")
    } else {
        mdir
    };
    for (rel, data) in &modules.files {
        t.add(&format!("{mdir}/{rel}"), Entry::File(0o644, data.clone()))?;
    }
    t.add(
        &format!("{mdir}/modules.dep"),
        Entry::File(0o644, modules.modules_dep.clone().into_bytes()),
    )?;
    let order: String = modules.load_order.iter().map(|m| format!("{m}\n")).collect();
    t.add("etc/vmt-modules", Entry::File(0o644, order.into_bytes()))?;
    Ok(t.to_newc())
}

const MKFS_STARTING: &str = "starting mkfs.ext4 (package e2fsprogs)";

/// Makes the read-only ext4 test disk from a staged directory (`mkfs.ext4 -d`, no root needed).
pub fn ext4_image(dir: &Path, img: &Path) -> Result<()> {
    let bytes = du(dir)?;
    // ext4 metadata + 4 KiB block rounding; generous so many small source files fit.
    let mib = bytes / (1 << 20) * 5 / 4 + 64;
    let _ = std::fs::remove_file(img);
    output(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "root_owner=0:0", "-L", "vmt-tests", "-d"])
            .arg(dir)
            .arg(img)
            .arg(format!("{mib}M")),
        MKFS_STARTING,
        &format!("mkfs.ext4 -d {dir:?} {img:?}"),
    )?;
    Ok(())
}

/// Makes the empty, writable ext4 scratch disk the guest mounts on `/tmp` (a sparse file: only
/// what the tests write takes host space; it is deleted with the run's artefacts).
pub fn scratch_image(img: &Path, gib: u64) -> Result<()> {
    let _ = std::fs::remove_file(img);
    output(
        Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-E",
                "root_owner=0:0,lazy_itable_init=1,nodiscard",
                "-L",
                "vmt-scratch",
            ])
            .arg(img)
            .arg(format!("{gib}G")),
        MKFS_STARTING,
        &format!("mkfs.ext4 {img:?}"),
    )?;
    Ok(())
}

fn du(p: &Path) -> Result<u64> {
    let meta = std::fs::symlink_metadata(p)?;
    if meta.is_dir() {
        let mut n = 4096;
        for e in std::fs::read_dir(p)? {
            n += du(&e?.path())?;
        }
        Ok(n)
    } else {
        Ok(meta.len().div_ceil(4096) * 4096)
    }
}

/// Copies the workspace sources (no `target/`, no `.git/`) so tests that read fixtures through
/// `CARGO_MANIFEST_DIR` find them at the same path in the guest.
pub fn copy_sources(src: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    for e in std::fs::read_dir(src).with_context(|| format!("reading {src:?}"))? {
        let e = e?;
        let name = e.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let from = e.path();
        let to = dest.join(&name);
        let ft = e.file_type()?;
        if ft.is_dir() {
            copy_sources(&from, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to).with_context(|| format!("copying {from:?}"))?;
        }
    }
    Ok(())
}

/// Puts `src` at `dest` by hard link (same filesystem, no copy) or by copy.
pub fn link_or_copy(src: &Path, dest: &Path) -> Result<()> {
    let _ = std::fs::remove_file(dest);
    if std::fs::hard_link(src, dest).is_err() {
        std::fs::copy(src, dest).with_context(|| format!("copying {src:?} to {dest:?}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tlibgone.so => not found\n";
        assert_eq!(
            parse_ldd(text),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn host_program_brings_its_loader_and_libc() {
        let mut t = Tree::new();
        add_usr_merge_links(&mut t).unwrap();
        add_host_program(&mut t, Path::new("/bin/sh")).unwrap();
        let archive = super::super::cpio::parse_newc(&t.to_newc()).unwrap();
        let names: Vec<&str> = archive.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.iter().any(|n| n.ends_with("/sh")), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with("libc.so.6")), "{names:?}");
        assert!(names.iter().any(|n| n.contains("ld-linux")), "{names:?}");
    }
}
