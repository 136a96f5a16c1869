//! Guest kernels: the pins in `vm/kernels`, fetching them with `apt-get download` (cached under
//! `target/vm/debs/`), unpacking with `dpkg-deb -x`, and choosing the module subset the guest loads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// One pinned kernel (a line of `vm/kernels`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPin {
    /// Short label used on the command line and in output (`6.1`, `6.12`).
    pub label: String,
    /// Debian binary package (`linux-image-6.1.0-56-cloud-amd64`).
    pub package: String,
    /// Exact package version.
    pub version: String,
    /// The suite it comes from (informational; apt picks the version from whichever source has it).
    pub suite: String,
}

/// Parses `vm/kernels`: `label package version suite` per line; `#` starts a comment.
pub fn parse_pins(text: &str) -> Result<Vec<KernelPin>> {
    let mut pins = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let [label, package, version, suite] = w[..] else {
            bail!(
                "vm/kernels line {}: expected `label package version suite`, got {line:?}",
                i + 1
            );
        };
        pins.push(KernelPin {
            label: label.into(),
            package: package.into(),
            version: version.into(),
            suite: suite.into(),
        });
    }
    Ok(pins)
}

/// A kernel unpacked under `target/vm/kernel-<label>/`.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The pin it came from.
    pub pin: KernelPin,
    /// The bzImage (`boot/vmlinuz-<release>`).
    pub vmlinuz: PathBuf,
    /// The kernel release (`6.1.0-56-cloud-amd64`).
    pub release: String,
    /// `lib/modules/<release>` in the unpacked tree.
    pub modules_dir: PathBuf,
}

fn deb_file_name(pin: &KernelPin) -> String {
    format!("{}_{}_amd64.deb", pin.package, pin.version.replace(':', "%3a"))
}

/// Downloads (unless cached) and unpacks (unless already unpacked) one pinned kernel.
pub fn fetch(pin: &KernelPin, vm_dir: &Path) -> Result<Kernel> {
    let debs = vm_dir.join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("creating {debs:?}"))?;
    let deb = debs.join(deb_file_name(pin));
    if !deb.is_file() {
        eprintln!(
            "vm-test: downloading {}={} ({})",
            pin.package, pin.version, pin.suite
        );
        let st = Command::new("apt-get")
            .current_dir(&debs)
            .args(["download", "-q", &format!("{}={}", pin.package, pin.version)])
            .status()
            .context("starting apt-get download")?;
        if !st.success() || !deb.is_file() {
            bail!(
                "apt-get download {}={} failed ({st}); is the {} apt source configured? \
                 (`cargo xtask vm-test` runs the host set-up first when root)",
                pin.package,
                pin.version,
                pin.suite
            );
        }
    }
    let tree = vm_dir.join(format!("kernel-{}", pin.label));
    let stamp = tree.join(".vmt-unpacked");
    let want = format!("{}={}\n", pin.package, pin.version);
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        if tree.exists() {
            std::fs::remove_dir_all(&tree).with_context(|| format!("removing stale {tree:?}"))?;
        }
        std::fs::create_dir_all(&tree)?;
        let st = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&tree)
            .status()
            .context("starting dpkg-deb")?;
        if !st.success() {
            bail!("dpkg-deb -x {deb:?} failed ({st})");
        }
        std::fs::write(&stamp, want)?;
    }
    let boot = tree.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .with_context(|| format!("reading {boot:?}"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no boot/vmlinuz-* in {}", deb.display()))?;
    let release = vmlinuz.file_name().unwrap_or_default().to_string_lossy()["vmlinuz-".len()..].to_string();
    let modules_dir = tree.join("lib/modules").join(&release);
    if !modules_dir.is_dir() {
        bail!("{} has no lib/modules/{release}", deb.display());
    }
    Ok(Kernel {
        pin: pin.clone(),
        vmlinuz,
        release,
        modules_dir,
    })
}

/// Module name as the kernel knows it: file stem without `.ko`/`.ko.xz`/..., `-` folded to `_`.
pub fn module_name(file_name: &str) -> Option<String> {
    let stem = file_name.split(".ko").next()?;
    if stem.len() == file_name.len() {
        return None;
    }
    Some(stem.replace('-', "_"))
}

/// Returns the `depends=` list of a module's `.modinfo` (raw `.ko` bytes, uncompressed).
pub fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let key = b"depends=";
    ko.split(|b| *b == 0)
        .filter_map(|s| s.strip_prefix(key.as_slice()))
        .next()
        .map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.replace('-', "_"))
                .collect()
        })
        .unwrap_or_default()
}

/// What the module index knows about one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Path relative to `lib/modules/<release>/`, as shipped (may end in `.xz`).
    pub rel_path: String,
    /// Names of the modules it depends on.
    pub depends: Vec<String>,
}

/// Orders `wanted` plus everything they depend on so that each module comes after its dependencies
/// (the order in which insmod would succeed). Built-in modules are dropped; unknown ones are errors.
pub fn closure(
    wanted: &[String],
    index: &BTreeMap<String, ModuleInfo>,
    builtin: &BTreeSet<String>,
) -> Result<Vec<String>> {
    fn visit(
        name: &str,
        index: &BTreeMap<String, ModuleInfo>,
        builtin: &BTreeSet<String>,
        done: &mut Vec<String>,
        stack: &mut Vec<String>,
    ) -> Result<()> {
        let name = name.replace('-', "_");
        if done.contains(&name) || builtin.contains(&name) {
            return Ok(());
        }
        if stack.contains(&name) {
            bail!("module dependency cycle through {name:?}: {}", stack.join(" -> "));
        }
        let info = index.get(&name).with_context(|| {
            format!("module {name:?} is neither in the kernel's module tree nor built in")
        })?;
        stack.push(name.clone());
        for d in &info.depends {
            visit(d, index, builtin, done, stack)?;
        }
        stack.pop();
        done.push(name);
        Ok(())
    }
    let mut done = Vec::new();
    for w in wanted {
        visit(w, index, builtin, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

/// Reads a module's bytes, decompressing `.ko.xz` with `xz -dc`.
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    if path.extension().is_some_and(|e| e == "xz") {
        super::host::output(
            Command::new("xz").arg("-dc").arg(path),
            "starting xz (package xz-utils)",
            &format!("xz -dc {path:?}"),
        )
    } else {
        std::fs::read(path).with_context(|| format!("reading module {path:?}"))
    }
}

fn walk_modules(dir: &Path, base: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {dir:?}"))? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            walk_modules(&p, base, out)?;
        } else if let Some(n) = module_name(&e.file_name().to_string_lossy()) {
            out.insert(n, p.strip_prefix(base).unwrap_or(&p).to_path_buf());
        }
    }
    Ok(())
}

/// The staged module subset: files (uncompressed, path relative to `lib/modules/<release>/`),
/// a matching `modules.dep`, and the load order for `/etc/vmt-modules`.
#[derive(Debug)]
pub struct ModuleSubset {
    /// `(relative path, bytes)` of each module to put in the initramfs.
    pub files: Vec<(String, Vec<u8>)>,
    /// `modules.dep` text for exactly these files.
    pub modules_dep: String,
    /// Module names in load order (dependencies first).
    pub load_order: Vec<String>,
}

/// Selects `wanted` and their dependencies from an unpacked kernel.
///
/// Dependencies come from each module's `.modinfo` `depends=` (Debian's .deb ships no `modules.dep`,
/// depmod runs in its postinst). Only the modules on a dependency path are read.
pub fn select_modules(kernel: &Kernel, wanted: &[String]) -> Result<ModuleSubset> {
    let mut paths = BTreeMap::new();
    walk_modules(
        &kernel.modules_dir.join("kernel"),
        &kernel.modules_dir,
        &mut paths,
    )?;
    let builtin: BTreeSet<String> = std::fs::read_to_string(kernel.modules_dir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.rsplit('/').next().and_then(module_name))
        .collect();
    // Read lazily: only modules reachable from `wanted`.
    let mut index = BTreeMap::new();
    let mut bytes = BTreeMap::new();
    let mut todo: Vec<String> = wanted.iter().map(|w| w.replace('-', "_")).collect();
    while let Some(name) = todo.pop() {
        if index.contains_key(&name) || builtin.contains(&name) {
            continue;
        }
        let Some(rel) = paths.get(&name) else { continue }; // closure() reports it
        let data = read_module(&kernel.modules_dir.join(rel))?;
        let depends = modinfo_depends(&data);
        todo.extend(depends.iter().cloned());
        index.insert(
            name.clone(),
            ModuleInfo {
                rel_path: rel.to_string_lossy().into_owned(),
                depends,
            },
        );
        bytes.insert(name, data);
    }
    let load_order = closure(wanted, &index, &builtin)?;
    let staged = |n: &str| {
        index[n]
            .rel_path
            .trim_end_matches(".xz")
            .trim_end_matches(".zst")
            .to_string()
    };
    let mut modules_dep = String::new();
    let mut files = Vec::new();
    for n in &load_order {
        // kmod convention: direct and indirect dependencies, the one loaded first listed last.
        let deps = closure(&index[n].depends, &index, &builtin)?;
        let list: Vec<String> = deps.iter().rev().map(|d| staged(d)).collect();
        modules_dep.push_str(&format!("{}: {}\n", staged(n), list.join(" ")).replace(": \n", ":\n"));
        files.push((staged(n), bytes.remove(n).unwrap_or_default()));
    }
    Ok(ModuleSubset {
        files,
        modules_dep,
        load_order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse() {
        let p =
            parse_pins("# c\n6.1 linux-image-6.1.0-56-cloud-amd64 6.1.192-2 bookworm # tail\n\n").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].label, "6.1");
        assert_eq!(p[0].version, "6.1.192-2");
        assert!(
            parse_pins("6.1 pkg\n")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
        assert_eq!(
            deb_file_name(&KernelPin {
                version: "1:2".into(),
                ..p[0].clone()
            }),
            "linux-image-6.1.0-56-cloud-amd64_1%3a2_amd64.deb"
        );
    }

    #[test]
    fn module_names() {
        assert_eq!(module_name("pvpanic-mmio.ko").as_deref(), Some("pvpanic_mmio"));
        assert_eq!(module_name("overlay.ko.xz").as_deref(), Some("overlay"));
        assert_eq!(module_name("modules.dep"), None);
    }

    #[test]
    fn depends_from_modinfo() {
        let ko =
            b"\x7fELF junk\0license=GPL\0depends=virtio,virtio_ring,virtio-pci-modern-dev\0name=virtio_pci\0";
        assert_eq!(
            modinfo_depends(ko),
            ["virtio", "virtio_ring", "virtio_pci_modern_dev"]
        );
        assert!(modinfo_depends(b"\0depends=\0name=loop\0").is_empty());
    }

    fn info(path: &str, deps: &[&str]) -> ModuleInfo {
        ModuleInfo {
            rel_path: path.into(),
            depends: deps.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn closure_orders_dependencies_first_and_skips_builtins() {
        let mut idx = BTreeMap::new();
        idx.insert(
            "virtio_blk".into(),
            info("kernel/drivers/block/virtio_blk.ko", &["virtio", "virtio_ring"]),
        );
        idx.insert(
            "virtio_pci".into(),
            info("a", &["virtio", "virtio_ring", "virtio_pci_modern_dev"]),
        );
        idx.insert("virtio_pci_modern_dev".into(), info("b", &["virtio"]));
        idx.insert("virtio".into(), info("c", &["virtio_ring"]));
        idx.insert("virtio_ring".into(), info("d", &[]));
        idx.insert("pvpanic_mmio".into(), info("e", &["pvpanic"]));
        idx.insert("pvpanic".into(), info("f", &[]));
        let none = BTreeSet::new();
        let want = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let order = closure(&want(&["pvpanic-mmio", "virtio_pci", "virtio_blk"]), &idx, &none).unwrap();
        assert_eq!(
            order,
            [
                "pvpanic",
                "pvpanic_mmio",
                "virtio_ring",
                "virtio",
                "virtio_pci_modern_dev",
                "virtio_pci",
                "virtio_blk"
            ]
        );
        let builtin: BTreeSet<String> = ["virtio".to_string(), "virtio_ring".to_string()].into();
        let order = closure(&want(&["virtio_blk"]), &idx, &builtin).unwrap();
        assert_eq!(order, ["virtio_blk"]);
        let err = closure(&want(&["nosuch"]), &idx, &none).unwrap_err();
        assert!(err.to_string().contains("\"nosuch\""), "{err}");
    }
}
