//! Running guests: what they boot from (vmt-exit, busybox, the test disk; per kernel its initramfs and
//! scratch disk) and one QEMU boot with live progress.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::results::{self, Console, GuestVerdict, display_bin};
use super::{Paths, Setup, host, image, kernel, qemu, suite};

/// Builds the kernel-independent pieces: vmt-exit, busybox check.
pub fn helpers(p: &Paths) -> Result<(PathBuf, PathBuf)> {
    let vmt_exit = p.vm_dir.join("vmt-exit");
    let src = p.vm_src.join("vmt-exit/main.rs");
    let fresh = |out: &Path| {
        let (Ok(a), Ok(b)) = (
            std::fs::metadata(out).and_then(|m| m.modified()),
            std::fs::metadata(&src).and_then(|m| m.modified()),
        ) else {
            return false;
        };
        a >= b
    };
    if !fresh(&vmt_exit) {
        suite::rustc_static(&src, &vmt_exit, false)?;
    }
    let busybox = PathBuf::from("/bin/busybox");
    let o = std::process::Command::new("ldd").arg(&busybox).output();
    let is_static = o
        .as_ref()
        .map(|o| !o.status.success() || String::from_utf8_lossy(&o.stdout).contains("not a dynamic"))
        .unwrap_or(false);
    if !busybox.is_file() || !is_static {
        bail!("{busybox:?} is missing or not static: install busybox-static (see ensure_host_packages)");
    }
    Ok((vmt_exit, busybox))
}

/// Stages the test disk contents and makes the ext4 image; returns the plan.
pub fn test_disk(p: &Paths, bins: &[suite::TestBinary], mountkit_bin: Option<&Path>) -> Result<PathBuf> {
    let stage = p.work.join("tests");
    std::fs::create_dir_all(stage.join("bin"))?;
    std::fs::copy(p.vm_src.join("run"), stage.join("run")).context("copying vm/run")?;
    std::fs::write(stage.join("plan"), suite::plan_text(bins))?;
    let src = p.root.to_string_lossy();
    if src.contains('\'') {
        bail!("workspace path {src:?} contains a quote; cannot pass it to the guest");
    }
    std::fs::write(stage.join("env"), format!("VMT_SRC='{src}'\n"))?;
    for b in bins {
        image::link_or_copy(&b.path, &stage.join("bin").join(&b.name))?;
    }
    if let Some(m) = mountkit_bin {
        image::link_or_copy(m, &stage.join("bin/mountkit"))?;
    }
    image::copy_sources(&p.root, &stage.join("src"))?;
    let img = p.work.join("tests.img");
    image::ext4_image(&stage, &img)?;
    Ok(img)
}

/// One kernel, ready to boot: its initramfs and a fresh scratch disk.
pub struct Prepared {
    pub kernel: kernel::Kernel,
    pub initrd: PathBuf,
    pub scratch: PathBuf,
}

/// Fetches a pinned kernel and writes its initramfs (its subset of `vm/modules-<label>`) and scratch disk.
pub fn prepare_kernel(p: &Paths, pin: &kernel::KernelPin, base: &image::BaseParts<'_>) -> Result<Prepared> {
    let k = kernel::fetch(pin, &p.vm_dir)?;
    let list = std::fs::read_to_string(p.vm_src.join(format!("modules-{}", pin.label)))
        .with_context(|| format!("reading vm/modules-{}", pin.label))?;
    let wanted: Vec<String> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let subset = kernel::select_modules(&k, &wanted)?;
    let initrd = p.work.join(format!("initrd-{}.cpio", pin.label));
    std::fs::write(&initrd, image::initramfs(base, &k, &subset)?)?;
    // A fresh scratch disk per kernel: no state leaks from one guest to the next.
    let scratch = p.work.join(format!("scratch-{}.img", pin.label));
    image::scratch_image(&scratch, 16)?;
    Ok(Prepared {
        kernel: k,
        initrd,
        scratch,
    })
}

/// One guest's run: what QEMU gave, its console read, and the verdict on the guest.
pub struct GuestRun {
    pub qemu: qemu::QemuRun,
    pub console: Console,
    pub verdict: GuestVerdict,
}

/// Boots one guest on the test disk (`extra` on its kernel command line) and waits for its end or
/// the timeout, printing a line per finished test (of `planned`), or the console with `--verbose`.
pub fn boot(
    s: &Setup<'_>,
    prep: &Prepared,
    planned: usize,
    extra: &str,
    timeout: Duration,
) -> Result<GuestRun> {
    let g = qemu::Guest {
        kernel: &prep.kernel.vmlinuz,
        initrd: &prep.initrd,
        disk: Some(s.disk),
        scratch: Some(&prep.scratch),
        extra_cmdline: extra,
        kvm: host::kvm_usable(),
        timeout,
    };
    let verbose = s.opts.verbose;
    if verbose {
        eprintln!("vm-test: {:?}", qemu::command(&g));
    }
    let label = &prep.kernel.pin.label;
    let (mut done, mut began) = (0usize, Instant::now());
    let mut progress = |line: &str| {
        if verbose {
            eprintln!("[{label} console] {line}");
        }
        if line.starts_with("VMT-BEGIN ") {
            began = Instant::now();
        } else if let Some(end) = line.strip_prefix("VMT-END ") {
            done += 1;
            if !verbose {
                eprintln!("{}", progress_line(label, done, planned, end, began.elapsed()));
            }
        }
    };
    let run = qemu::run(&g, &mut progress)?;
    let console = results::parse_console(&run.lines);
    let verdict = results::guest_verdict(run.rc, run.timed_out, console.sentinel);
    Ok(GuestRun {
        qemu: run,
        console,
        verdict,
    })
}

/// The live line for a finished test, from the rest of its `VMT-END <bin> <name> <rc>` line:
/// `[6.12] 3/40 done   1.2 s  bin::name`, with `exit <rc>` in place of `done` when it failed.
fn progress_line(label: &str, done: usize, planned: usize, end: &str, took: Duration) -> String {
    let mut w = end.split(' ');
    let (bin, name, rc) = (
        w.next().unwrap_or(""),
        w.next().unwrap_or(""),
        w.next().unwrap_or(""),
    );
    let status = if rc == "0" { "done" } else { "exit " };
    format!(
        "[{label}] {done}/{planned} {status}{} {:5.1} s  {}::{name}",
        if rc == "0" { "" } else { rc },
        took.as_secs_f64(),
        display_bin(bin)
    )
}

/// Boots these guests at once, one thread each, with every test of the plan; their runs in order.
pub fn boot_side_by_side(s: &Setup<'_>, preps: &[Prepared], timeout: Duration) -> Vec<Result<GuestRun>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = preps
            .iter()
            .map(|prep| {
                eprintln!(
                    "vm-test: booting {} ({}), {} tests, timeout {} s",
                    prep.kernel.pin.label,
                    prep.kernel.release,
                    s.plan.len(),
                    timeout.as_secs()
                );
                scope.spawn(move || boot(s, prep, s.plan.len(), "", timeout))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("guest thread panicked")))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let took = Duration::from_millis(520);
        assert_eq!(
            progress_line(
                "6.1",
                1,
                3,
                "vmt_selftest-0123456789abcdef deliberate_failure 101",
                took
            ),
            "[6.1] 1/3 exit 101   0.5 s  vmt_selftest::deliberate_failure"
        );
        assert_eq!(
            progress_line("6.12", 2, 3, "vmt_selftest-0123456789abcdef passes 0", took),
            "[6.12] 2/3 done   0.5 s  vmt_selftest::passes"
        );
    }
}
